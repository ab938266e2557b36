"""Virtual boards on a shared machine: each says where its flash is and which checkout started
it, a flash directory belongs to one board at a time, and the pump clock never runs backwards
when a board is started again on its flash (after a flash, or a new `pumpsim board`)."""

import subprocess

from sim.runner import ROOT
from tests.board.vboard_fixture import BOARD, LiveBoard


def test_a_flash_directory_is_locked_by_the_board_using_it(tmp_path):
    board = LiveBoard(tmp_path / "flash", runtime="cpython")
    try:
        assert board.info["root"] == str(ROOT) and board.info["flash"] == str(tmp_path / "flash")
        second = subprocess.run([*BOARD, "--runtime", "cpython", "--flash",
                                 str(tmp_path / "flash")], capture_output=True, text=True,
                                timeout=60)
        assert second.returncode == 2
        assert "in use by the virtual board of pid" in second.stderr
        assert str(board.proc.pid) in second.stderr
    finally:
        assert board.close() == 0
    # once it stopped, the flash is free again
    again = LiveBoard(tmp_path / "flash", runtime="cpython")
    assert again.close() == 0


def test_the_clock_never_runs_backwards_when_the_board_starts_again(tmp_path):
    board = LiveBoard(tmp_path / "flash", runtime="cpython")
    try:
        board.inject("advance", "3 d")      # virtual time far ahead of the wall clock
        before = board.ask({"cmd": "info"}, sign=True)["clock_ts"]
    finally:
        assert board.close() == 0
    board = LiveBoard(tmp_path / "flash", runtime="cpython")
    try:
        after = board.ask({"cmd": "info"}, sign=True)["clock_ts"]
        assert after >= before
    finally:
        assert board.close() == 0


def test_the_harness_socket_listens_before_the_first_line_names_it(tmp_path, monkeypatch, capsys):
    # A client that reads the first line and connects at once must find the socket, even when
    # the thread that accepts has not run yet (it raced under load: FileNotFoundError).
    import json
    import socket
    from types import SimpleNamespace

    from sim import board as boardmod

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    started = []
    monkeypatch.setattr(boardmod.threading, "Thread",
                        lambda **kw: SimpleNamespace(start=lambda: started.append(kw)))
    b = boardmod.Board(SimpleNamespace(runtime="cpython", flash=str(tmp_path / "flash"),
                                       speed="1", seed=0))
    reg = b._announce()
    try:
        info = json.loads(capsys.readouterr().out.splitlines()[0])
        assert started, "the accepting thread was never started"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(info["control"])      # queued by listen(): nobody has accepted yet
    finally:
        b._unannounce(reg)
        started[0]["args"][0].close()


def test_ports_calls_an_emulated_pico_by_its_name(tmp_path, monkeypatch):
    """`pumpsim board --runtime rp2` registers as every board does; `pumpctl ports` says what
    it is (the rp2 port in an emulated RP2040), not "virtual board"."""
    import json
    import os

    from host_tools import link
    from tests.board.test_terminals import run_pumpctl

    reg = tmp_path / "reg"
    reg.mkdir()
    for pid, runtime in ((os.getpid(), "rp2"), (os.getppid(), "micropython")):
        (reg / f"{pid}.json").write_text(json.dumps({
            "port": f"/dev/pts/{pid}", "control": "c", "flash": f"/f{pid}", "pid": pid,
            "runtime": runtime, "root": "/elsewhere"}))
    monkeypatch.setattr(link, "registry_dir", lambda: reg)
    monkeypatch.setattr(link, "picos", lambda: [])
    rc, out, _ = run_pumpctl("ports")
    assert rc == 0
    assert f"/dev/pts/{os.getpid()}" in out and "emulated Pico (MicroPython rp2 port" in out
    assert f"virtual  virtual board, pid {os.getppid()}" in out
    rc, out, _ = run_pumpctl("--json", "ports")
    kinds = {p["port"]: (p["kind"], p["runtime"]) for p in json.loads(out)["ports"]}
    assert kinds == {f"/dev/pts/{os.getpid()}": ("emulated", "rp2"),
                     f"/dev/pts/{os.getppid()}": ("virtual", "micropython")}
