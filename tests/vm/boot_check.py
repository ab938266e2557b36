# Runs inside the MicroPython VM (see test_boot_vm.py): the Pico's boot path, loader.boot_board,
# with a firmware in slot a that fails at import. A production build records the exception
# and resets (never the REPL); a development build lets it through to the REPL. The board's
# reset is a function here that says it was called.
#   boot_check.py ROOT_DIR KIND
import os
import sys

root, kind = sys.argv[1], sys.argv[2]
os.chdir(root)
sys.path.insert(0, sys.argv[3])   # where loader.py is (the repository's firmware/)
import loader  # noqa: E402

resets = []


def run():
    # main.py's part: import the chosen firmware's app and run it on the board (none here:
    # the app fails at import)
    from firmware import app
    return app.main(None)


try:
    loader.boot_board(run, lambda: resets.append(1))
    print("RETURNED resets %d" % len(resets))
except Exception as e:  # noqa: BLE001
    print("RAISED %s resets %d" % (type(e).__name__, len(resets)))
crash = loader.Fs("").read(loader.CRASH)
print("CRASH " + (crash.decode() if crash else "-"))
print("POINTER " + loader.Fs("").read(loader.POINTER).decode())
