"""The firmware's exception classes work on the MicroPython VM, not only on CPython."""

from pathlib import Path

from tests.vm.test_alloc import run_in_vm

HERE = Path(__file__).resolve().parent


def test_firmware_exceptions_carry_their_fields_on_the_vm():
    out = run_in_vm(HERE / "errors_check.py").splitlines()
    assert out[0].startswith("RX conc_ng_ml must be an integer"), out
    assert out[1] == "REFUSAL E_ARGS bad why", out
