# Which kind of build this is, reported by `info` and read by the boot loader. The repository
# says "production": the firmware never hands out MicroPython's REPL and an uncaught exception
# resets the board. `make build DEV=1` puts "development" here in the bundle it builds, which
# keeps the REPL for `pumpctl maintenance` and shows a traceback instead of resetting.
KIND = "production"
