"""The therapy history on the emulated Pico (firmware/history.py through the rp2 port's littlefs
and flash driver): a `program` cut by the power inside its flash writes leaves the history
holding exactly the program the settings hold, and the history reads back after the restart."""

from tests.rp2.pico import PARAMS
from tests.rp2.test_power import cut_by_saves

REASONS = ("ward round: pain not controlled", "titration day 2", "titration day 3")


def params_with(i):
    steps = [[0, 2_000_000 + 100_000 * (i + 1)], [420, 3_000_000]]
    return dict(PARAMS, steps=steps, meta={"drug": "morphine", "units": "mg",
                                           "library": "0123456789ab",
                                           "titration_override": REASONS[i]})


def history(pico):
    rows, since = [], 0
    while True:
        r = pico.ask({"cmd": "history", "args": {"since": since}}, sign=True)
        assert r["ok"], r
        rows += r["entries"]
        if not r["entries"] or r["next"] >= r["total"]:
            return rows, r
        since = r["next"]


def test_a_program_cut_by_the_power_is_in_the_history_once_it_took_effect(pico):
    pico.program()
    # Cuts right after the Nth flash page programmed from the request on: inside the settings
    # record, inside the history's open page (4 KB: 16 pages), after both.
    for i, n in enumerate((1, 6, 40)):
        boots = pico.inject("truth")["boots"]
        pico.inject("power_loss", "for=1min", f"at_program={n}")
        pico.send_signed("program", {"params": params_with(i)})   # its reply may never come
        pico.answers()
        cut_by_saves(pico, boots)       # (a cut the program's writes did not reach comes later)
        pico.answers()
        held = pico.ask({"cmd": "settings"}, sign=True)["settings"]
        rows, last = history(pico)
        progs = [r for r in rows if r["kind"] == "program"]
        assert [p["program"] for p in progs] == list(range(1, len(progs) + 1))
        assert progs[-1]["notes"].get("titration_override") == \
            held["meta"].get("titration_override"), (n, progs[-1], held)
        assert progs[-1]["basal_ng_day"] == (held["steps"][0][1] * 420
                                             + held["steps"][1][1] * 1020 + 720) // 1440
        assert last["unsaved"] == 0 and not [r for r in rows if r["kind"] == "lost"]
    assert [r["kind"] for r in rows][:2] == ["program", "refill"]
    assert pico.status()["delivering"] is True
