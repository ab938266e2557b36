"""Progress for work that takes more than a few seconds (a first install, an update, the
emulated Pico's factory image): a line per stage, and for a transfer a bar (tqdm) on a terminal
or a line at each quarter in a log. Nothing here talks to a pump."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


def seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else f"{int(s) // 60} min {int(s) % 60} s"


class Stages:
    """`stages("copying the bundle")` starts the next of `total` stages of `job` with a line
    (`first install [3/6 at 12.5 s] copying the bundle`: the time since the job started);
    `stages.end(text)` says how it ended and how long the whole job took. `out` defaults to
    standard output."""

    def __init__(self, job: str, total: int, out: TextIO | None = None):
        self.job = job
        self.total = total
        self.n = 0
        self.out = out
        self.started = time.monotonic()

    def _print(self, text: str) -> None:
        out = self.out or sys.stdout
        out.write(text + "\n")     # one write: jobs in threads do not mix their lines
        out.flush()

    def __call__(self, text: str) -> None:
        self.n += 1
        at = seconds(time.monotonic() - self.started)
        self._print(f"{self.job} [{self.n}/{self.total} at {at}] {text}")

    def note(self, text: str) -> None:
        """A line inside the current stage."""
        self._print(f"{' ' * len(self.job)}   {text}")

    def end(self, text: str) -> None:
        self._print(f"{self.job}: {text} ({seconds(time.monotonic() - self.started)})")


def transfer(desc: str, out: TextIO | None = None) -> Callable[[int, int], None]:
    """A callback (bytes done, bytes in all) for a transfer: a tqdm bar when `out` (standard
    output by default) is a terminal, else a line at each quarter."""
    stream = out or sys.stdout
    started = time.monotonic()
    if stream.isatty():
        from tqdm import tqdm

        bar: list = []

        def on_tty(done: int, total: int) -> None:
            if not bar:
                bar.append(tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=stream))
            bar[0].update(done - bar[0].n)
            if done >= total:
                bar[0].close()
        return on_tty
    shown = [-1]

    def on_log(done: int, total: int) -> None:
        quarter = done * 4 // max(total, 1)
        if quarter > shown[0]:
            shown[0] = quarter
            print(f"{desc}: {done} of {total} bytes ({done * 100 // max(total, 1)} %, "
                  f"{seconds(time.monotonic() - started)})", file=stream, flush=True)
    return on_log
