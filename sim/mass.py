"""Drug mass from a run's volumes: what a clinician reads, integrated per concentration.

The engine counts nanolitres (the plant's truth) and notes, for each concentration the
reservoir held, when it began and how much had been delivered and prescribed by then
(`concentrations` in the summary). The mass of a stretch is its volume times the concentration
pumped during it, so a refill at a new concentration changes the mass per mL from that moment
on, never backwards. The drug already in the catheter at a change reaches the patient first;
that lag (at most the catheter's volume, `catheter_nl`) is a matter for the bridge bolus and is
not modelled here: the mass is the mass pumped.
"""

from __future__ import annotations

from fractions import Fraction


def segments(summary: dict) -> list[dict]:
    """Each concentration's stretch: t_s, end_s, conc_ng_ml, delivered_nl, ideal_nl,
    delivered_ng, ideal_ng (masses as exact fractions)."""
    rows = summary["concentrations"]
    out = []
    for i, c in enumerate(rows):
        nxt = rows[i + 1] if i + 1 < len(rows) else {
            "t_s": summary["duration_s"], "delivered_nl": summary["delivered_nl"],
            "ideal_nl": summary["ideal_nl"]}
        dv = nxt["delivered_nl"] - c["delivered_nl"]
        iv = nxt["ideal_nl"] - c["ideal_nl"]
        out.append({"t_s": c["t_s"], "end_s": nxt["t_s"], "conc_ng_ml": c["conc_ng_ml"],
                    "delivered_nl": dv, "ideal_nl": iv,
                    "delivered_ng": Fraction(dv * c["conc_ng_ml"], 1_000_000),
                    "ideal_ng": Fraction(iv * c["conc_ng_ml"], 1_000_000)})
    return out


def delivered_ng(summary: dict) -> Fraction:
    return sum((s["delivered_ng"] for s in segments(summary)), Fraction(0))


def ideal_ng(summary: dict) -> Fraction:
    return sum((s["ideal_ng"] for s in segments(summary)), Fraction(0))


def conc_at(summary: dict, t_ms: int) -> int:
    """The concentration in the reservoir at t_ms from the start."""
    conc = summary["concentrations"][0]["conc_ng_ml"]
    for c in summary["concentrations"]:
        if c["t_s"] * 1000 <= t_ms:
            conc = c["conc_ng_ml"]
    return conc


def cumulative_ng(summary: dict, t_ms: list[int], delivered_nl: list[int]) -> list[float]:
    """The mass delivered by each sample time, from the sampled volumes."""
    rows = summary["concentrations"]
    out = []
    j = 0
    base_ng = Fraction(0)
    for t, v in zip(t_ms, delivered_nl):
        while j + 1 < len(rows) and rows[j + 1]["t_s"] * 1000 <= t:
            base_ng += Fraction((rows[j + 1]["delivered_nl"] - rows[j]["delivered_nl"])
                                * rows[j]["conc_ng_ml"], 1_000_000)
            j += 1
        out.append(float(base_ng + Fraction((v - rows[j]["delivered_nl"])
                                            * rows[j]["conc_ng_ml"], 1_000_000)))
    return out
