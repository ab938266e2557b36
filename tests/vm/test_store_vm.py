"""The record store and the event log on the MicroPython VM: same behaviour, same bytes."""

import os
import shutil
import subprocess
import sys
from array import array
from pathlib import Path

from firmware.eventlog import EventLog
from firmware.store import FileDev, RecordStore, pack_ints, unpack_ints
from sim.runner import ROOT, micropython_exe

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "store_check.py"


def run_vm(*args, path=None):
    env = dict(os.environ, MICROPYPATH=f"{path or ROOT}:.frozen")
    proc = subprocess.run([micropython_exe(), str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def run_cpython(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_power_cuts_and_log_checks_pass_in_the_vm():
    out = run_vm("check")
    lines = out.strip().splitlines()
    assert lines[-1] == "DONE", out
    assert not [x for x in lines if x.startswith("FAIL")], out
    cuts = next(x for x in lines if x.startswith("OK cuts"))
    assert int(cuts.split()[2]) >= 300, cuts
    caught = next(x for x in lines if x.startswith("OK log caught"))
    assert int(caught.split()[3]) == 40, caught


def test_vm_and_cpython_print_identical_output():
    vm = run_vm("check")
    cp = run_cpython("check")
    assert "REC " in vm and "LOG " in vm, vm
    assert vm == cp


def expected_state():
    vals = array("i", [0, 1, -1, 123456789, -2147483648, 2147483647, 1 << 29, 42])
    vals[0] = 4
    return list(vals)


def test_store_written_by_the_vm_loads_on_cpython(tmp_path):
    vm_dir = tmp_path / "vm"
    cp_dir = tmp_path / "cp"
    vm_dir.mkdir()
    cp_dir.mkdir()
    assert run_vm("write", vm_dir).strip() == "DONE"
    dev = FileDev(str(vm_dir))
    store = RecordStore(dev, "state")
    data = store.load()
    assert data is not None and not store.corrupt
    assert store.seq == 5
    assert list(unpack_ints(data)) == expected_state()
    log = EventLog.load(RecordStore(dev, "log"), 6)
    assert log is not None and log.verify()
    assert log.entries() == [(500 * i, i, i, 2 * i) for i in range(4, 10)]
    # The same steps on CPython leave byte-identical files.
    assert run_cpython("write", cp_dir).strip() == "DONE"
    names = sorted(p.name for p in vm_dir.iterdir())
    assert names == ["log.a", "state.a", "state.b"]
    assert names == sorted(p.name for p in cp_dir.iterdir())
    for name in names:
        assert (vm_dir / name).read_bytes() == (cp_dir / name).read_bytes(), name


def test_store_written_by_cpython_loads_in_the_vm(tmp_path):
    dev = FileDev(str(tmp_path))
    store = RecordStore(dev, "state")
    vals = array("i", [7, -7, 2147483647, -2147483648, 0, 0, 0, 0])
    for i in range(3):
        vals[4] = i
        store.save(pack_ints(vals))
    log = EventLog(6)
    for i in range(9):
        log.add(i, 100 * i, -i, i)
    log.save(RecordStore(dev, "log"))
    out = run_vm("read", tmp_path).strip().splitlines()
    assert out[0] == "STATE 3 " + str(list(vals)), out
    assert out[1] == "LOG True " + str(log.entries()), out
    assert out[-1] == "DONE"


def test_the_vm_check_bites_on_a_store_that_overwrites_its_newest_record(tmp_path):
    """Sanity: a store that writes over its newest slot fails the VM's power-cut check."""
    pkg = tmp_path / "firmware"
    pkg.mkdir()
    for name in ("__init__.py", "eventlog.py", "compat.py", "loader.py"):
        shutil.copy(ROOT / "firmware" / name, pkg / name)
    src = (ROOT / "firmware" / "store.py").read_text()
    broken = src.replace("target = 1 - self.slot", "target = self.slot")
    assert broken != src
    (pkg / "store.py").write_text(broken)
    out = run_vm("check", path=tmp_path)
    assert "FAIL cut" in out and out.strip().endswith("FAILED"), out
