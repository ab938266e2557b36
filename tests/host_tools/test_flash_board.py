"""`make flash` picks the board to build for from what answers on the port
(host_tools/flash.py): a pump says its board in `info`; MicroPython's REPL says its platform and
machine. Who started the port (a registered virtual board, say) never decides it. A first
install's keys never land in the checkout unless git ignores the place."""

import subprocess

import pytest

from host_tools import flash, link

RP2_PICO = "PLATFORM rp2 | Raspberry Pi Pico with RP2040\n"
UNIX = "PLATFORM linux | linux [GCC 14.2.1] version\n"


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """Stops right after the tool chose the build: the make build it ran is recorded."""
    builds = []

    def fake_run(cmd, **kw):
        builds.append(cmd)
        return subprocess.CompletedProcess(cmd, 1)
    monkeypatch.setattr(flash.subprocess, "run", fake_run)
    monkeypatch.setattr(flash, "_wait_repl", lambda port: True)
    monkeypatch.setattr(flash, "_info", lambda port, timeout_s=3.0: None)
    return builds


def repl_says(monkeypatch, text):
    asked = []

    def fake_exec(port, code):
        asked.append(code)
        return text
    monkeypatch.setattr(flash, "_repl_exec", fake_exec)
    return asked


def a_virtual_board_registered_on(monkeypatch):
    monkeypatch.setattr(link, "board_for_port",
                        lambda port: link.Found(port, "virtual", "virtual board", {"pid": 1}))


def test_an_emulated_pico_at_the_repl_builds_for_the_pico_whoever_started_it(monkeypatch,
                                                                             recorded):
    # `pumpsim board --runtime rp2 --blank` registers its port as a virtual board does
    a_virtual_board_registered_on(monkeypatch)
    asked = repl_says(monkeypatch, RP2_PICO)
    assert flash.main(["--port", "/dev/pts/99"]) == 2
    assert asked == [flash.REPL_PROBE]
    assert [c for c in recorded if "build" in c] == [
        ["make", "-s", "-C", str(flash.ROOT), "build", "BOARD=pico"]]


def test_a_development_build_is_built_for_the_board_the_repl_names(monkeypatch, recorded):
    a_virtual_board_registered_on(monkeypatch)
    repl_says(monkeypatch, RP2_PICO)
    flash.main(["--port", "/dev/pts/99", "--dev"])
    assert "BOARD=pico" in recorded[-1] and "DEV=1" in recorded[-1]


def test_the_unix_port_at_the_repl_is_the_virtual_board(monkeypatch, recorded):
    monkeypatch.setattr(link, "board_for_port", lambda port: None)
    repl_says(monkeypatch, UNIX)
    flash.main(["--port", "/dev/pts/98"])
    assert "BOARD=virtual" in recorded[-1]


def test_a_board_that_does_not_fit_the_repl_is_refused_before_anything_is_built(
        monkeypatch, recorded, capsys):
    repl_says(monkeypatch, RP2_PICO)
    assert flash.main(["--port", "/dev/ttyACM0", "--board", "virtual"]) == 2
    assert not [c for c in recorded if "build" in c]
    assert "runs on rp2 (Raspberry Pi Pico with RP2040)" in capsys.readouterr().err


def test_an_rp2040_board_that_is_not_a_pico_must_be_named(monkeypatch, recorded, capsys):
    repl_says(monkeypatch, "PLATFORM rp2 | Raspberry Pi Pico W with RP2040\n")
    assert flash.main(["--port", "/dev/ttyACM0"]) == 2
    assert "Pico W with RP2040" in capsys.readouterr().err and not recorded
    flash.main(["--port", "/dev/ttyACM0", "--board", "implant"])
    assert "BOARD=implant" in recorded[-1]


def test_a_pump_that_answers_names_its_own_board(monkeypatch, recorded):
    a_virtual_board_registered_on(monkeypatch)
    monkeypatch.setattr(flash, "_info", lambda port, timeout_s=3.0: {
        "board": "pico", "keys": "ok", "firmware": "0.5.0", "build": "production"})
    assert flash.main(["--port", "/dev/pts/97", "--key", "k"]) == 2
    assert "BOARD=pico" in recorded[-1]


def test_the_maintenance_hint_names_the_board():
    from host_tools import boardlimits

    assert boardlimits.name_of("virtual-pico") == "virtual"
    assert boardlimits.name_of("implant") == "implant" and boardlimits.name_of("x") is None


def test_keys_go_to_the_users_data_directory_not_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    out = flash.keys_dir(None, "e66038b7131c4b2a")
    assert out == tmp_path / "data" / "pumpctl" / "keys" / "pump-keys-e66038b7131c4b2a"
    assert not out.is_relative_to(flash.ROOT)


def test_keys_out_in_the_checkout_only_where_git_ignores_it(capsys):
    flash.check_keys_out(str(flash.ROOT / "pump-keys-0123"))     # .gitignore: pump-keys-*
    with pytest.raises(flash.InputError) as e:
        flash.check_keys_out(str(flash.ROOT / "docs" / "keys"))
    assert "one `git add` from a commit" in str(e.value)
    assert flash.main(["--port", "/dev/null", "--keys-out", str(flash.ROOT / "sim")]) == 2
