"""`make flash` picks the board to build for from the port (host_tools/flash.py): a pump that
answers says its board; one already at the REPL (after `pumpctl maintenance`) on a registered
virtual board's port is the virtual board, not a Pico."""

import subprocess

import pytest

from host_tools import flash, link


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    builds = []

    def fake_run(cmd, **kw):
        builds.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)   # stop right after choosing the build
    monkeypatch.setattr(flash.subprocess, "run", fake_run)
    monkeypatch.setattr(flash, "_wait_repl", lambda port: True)
    return builds


def test_a_virtual_board_already_at_the_repl_builds_for_virtual(monkeypatch, recorded):
    monkeypatch.setattr(flash, "_info", lambda port, timeout_s=3.0: None)
    monkeypatch.setattr(link, "board_for_port",
                        lambda port: link.Found(port, "virtual", "virtual board", {"pid": 1}))
    assert flash.main(["--port", "/dev/pts/99"]) == 2
    assert "BOARD=virtual" in recorded[0]


def test_an_unknown_port_at_the_repl_builds_for_the_pico(monkeypatch, recorded):
    monkeypatch.setattr(flash, "_info", lambda port, timeout_s=3.0: None)
    monkeypatch.setattr(link, "board_for_port", lambda port: None)
    flash.main(["--port", "/dev/ttyACM0"])
    assert "BOARD=pico" in recorded[0]


def test_the_maintenance_hint_names_the_board():
    from host_tools import boardlimits

    assert boardlimits.name_of("virtual-pico") == "virtual"
    assert boardlimits.name_of("implant") == "implant" and boardlimits.name_of("x") is None
