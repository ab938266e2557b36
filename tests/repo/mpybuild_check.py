# Runs inside the MicroPython VM (tests/repo/test_mpybuild.py), once over the tree as it is and
# once over the tree as make build rewrites it (host_tools/mpybuild.py): the pump boots on a board
# in memory and answers the requests anyone may send; both runs must print the same.
from firmware.app import App
from tests.testboard import MemBoard

REQUESTS = ("ping", "help", "info", "status", "log", "alarms", "history", "nonsense")

hal = MemBoard()
app = App(hal)
app.boot()
for i, cmd in enumerate(REQUESTS):
    start = len(hal.out)
    for b in b'{"id": %d, "cmd": "%s"}\n' % (i + 1, cmd.encode()):
        app.proto.feed(b, hal.ticks_ms())
    print(cmd, bytes(hal.out[start:]).decode().strip())
for b in b'{"id": 99, "cmd": "update_begin", "args": {"manifest_len": 999999}}\n':
    app.proto.feed(b, hal.ticks_ms())
print("DONE")
