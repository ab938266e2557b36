# Runs inside the MicroPython VM (test_errors_vm.py): the firmware's own exceptions construct
# and carry their fields there too (MicroPython's Exception has no __init__ attribute to call
# directly, which once turned every refused prescription into an AttributeError on the VM).
from boards import virtual
from firmware.proto import Refusal
from firmware.rx import Rx, RxError

try:
    Rx({"conc_ng_ml": 0}, virtual)
except RxError as e:
    print("RX", e.key, e.message)
try:
    raise Refusal("E_ARGS", "bad", "why")
except Refusal as e:
    print("REFUSAL", e.code, e.message, e.reason)
