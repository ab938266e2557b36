"""The one pump a page shows: how the page reaches it, what it reads, and the changes waiting
for Confirm.

The port is opened for each exchange and closed after it (under one lock: one request at a time
crosses the line), so pumpctl in a terminal can use the pump while the page is open. The key
file is read once by `pumpctl ui` and stays in this process.

A change goes through the same Plan as pumpctl (host_tools/program.py, host_tools/therapy.py):
`preview` works it out and keeps it as a Pending change; `confirm` sends it. A Pending change
is taken once, only from the page that previewed it, only while it is the newest one (a second
tab's preview, or a later one in the same tab, voids it), only within its expiry, and only if
what the pump holds has not changed since it was shown.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from host_tools import boardlimits, commands, context, fmt, pumpdata, views
from host_tools.context import Failure, Plan, Report
from host_tools.link import Key, Link, LinkError

LOG_ROWS = 40            # the event log's newest entries on the page
INFO_S = 60              # how long the page shows `info` before reading it again
PENDING_S = 300          # a change shown and not confirmed within this is void
PAGES_KEPT = 32          # pages (their CSRF tokens) a server remembers
BUSY_WAIT_S = 3.0        # how long the page waits for a port pumpctl has open for a moment


class Stale(Exception):
    """A confirmation that may no longer be carried out: nothing was sent."""


@dataclass
class Pending:
    plan: Plan
    page: str                    # the CSRF token of the page that previewed it
    made: float                  # time.monotonic()
    expires_s: float
    held: str                    # what the pump held when it was shown (fingerprint)
    then: Plan | None = None     # a follow-up offered after it (the bridge after a refill)


class PumpView:
    """The pump behind the page: reads, previews and confirmed changes."""

    def __init__(self, port: str, key: Key | None, found=None, timeout_s: float = 3.0,
                 clock: Callable[[], float] = time.monotonic):
        self.port = port
        self.key = key
        self.found = found
        self.timeout_s = timeout_s
        self.clock = clock
        self.lock = threading.RLock()
        self.pages: OrderedDict[str, float] = OrderedDict()
        self.pending: dict[str, Pending] = {}
        # Each signed request moves the role's counter, and the pump writes its key record every
        # 64 counters (docs/security.md): the page reads no more than it shows. `info` (uptime,
        # counters) and the therapy history's newest entries once a minute, the log from where
        # it ended last time.
        self._info: tuple[float, dict] | None = None
        self._history: tuple[float, list[str]] | None = None
        self._log_total = 0

    @property
    def role(self) -> str:
        return self.key.role if self.key else "none"

    @contextmanager
    def link(self) -> Iterator[Link]:
        """The pump's link for one exchange (the port opened, then closed again). A port that
        another program (pumpctl in a terminal) has open is waited for a little, then refused
        as pumpctl refuses it."""
        with self.lock:
            lk = self._open(self.clock() + BUSY_WAIT_S)
            try:
                yield lk
            finally:
                lk.close()

    def _open(self, deadline: float) -> Link:
        while True:
            try:
                context.refuse_if_shared(self.port, self.found)
                return Link.open(self.port, self.key, timeout_s=self.timeout_s)
            except LinkError as e:
                if not str(e).startswith("port in use") or self.clock() >= deadline:
                    raise
            time.sleep(0.2)

    # -- pages and their CSRF tokens -----------------------------------------------------------
    def new_page(self) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.pages[token] = self.clock()
            while len(self.pages) > PAGES_KEPT:
                self.pages.popitem(last=False)
        return token

    def page_ok(self, token: str | None) -> bool:
        if not token:
            return False
        with self.lock:
            return any(hmac.compare_digest(token, t) for t in self.pages)

    # -- reading -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, read in one go; {"gone": why} when the pump does not
        answer (the page then shows nothing of the pump as current)."""
        try:
            with self.link() as lk:
                return self._read(lk)
        except (LinkError, OSError) as e:
            return {"gone": str(e)}
        except Exception as e:   # a refusal or a reply that does not verify: nothing is shown
            f = context.failure_of(e)
            if f is None:
                raise
            return {"gone": f.message}

    def _read(self, lk: Link) -> dict[str, Any]:
        if self._info is None or self.clock() - self._info[0] >= INFO_S:
            self._info = (self.clock(), context.body(lk.info(refresh=True)))
        info = self._info[1]
        out: dict[str, Any] = {"role": self.role, "info": info}
        if self.role == "none":
            out["info_lines"] = views.info_lines(info, boardlimits.pump_limits(lk))
            return out
        st = context.body(lk.call("status", changes=False))
        if "clock_ts" in info and "clock_ts" in st:
            # `info` is read once a minute, `status` every time: one pump clock on the page
            info = out["info"] = {**info, "clock_ts": st["clock_ts"]}
        settings = pumpdata.settings_or_none(lk)
        view = views.status_view(st, settings)
        out.update(status=st, settings=settings, view=view,
                   info_lines=views.info_lines(info, boardlimits.pump_limits(lk)),
                   status_lines=views.status_lines(st, settings, view),
                   unit=views.settings_unit(settings))
        if self.role == "clinician":
            entries, total, chain_ok = commands.read_log(lk, max(self._log_total - LOG_ROWS, 0))
            if total > self._log_total + LOG_ROWS or total < self._log_total:
                # more than a page since (or a log that restarted): read its end again
                entries, total, chain_ok = commands.read_log(lk, max(total - LOG_ROWS, 0))
            self._log_total = total
            out["log"] = [views.log_line(e) for e in reversed(entries[-LOG_ROWS:])]
            out["log_chain_ok"] = chain_ok
            # The therapy history changes with a change of therapy, not by the minute: its
            # newest entries are read once a minute (and after a change the page confirmed).
            if self._history is None or self.clock() - self._history[0] >= INFO_S:
                self._history = (self.clock(), commands.history_lines(lk))
            out["history"] = self._history[1]
        return out

    def read_now(self) -> tuple[dict, dict | None] | None:
        """The pump's status and settings read now (the read-back after a change; the patient
        key reads status only); None when it does not answer."""
        try:
            with self.link() as lk:
                st = context.body(lk.call("status", changes=False))
                settings = pumpdata.settings_or_none(lk) if self.role == "clinician" else None
                return st, settings
        except Exception as e:
            if isinstance(e, OSError) or context.failure_of(e) is not None:
                return None
            raise

    # -- changes -------------------------------------------------------------------------------
    def held(self, lk: Link) -> str:
        """What a confirmation must find unchanged: the prescription, the fills, stopped."""
        st = lk.call("status", changes=False)
        settings = pumpdata.settings_or_none(lk)
        return json.dumps([settings, st.get("fills"), st.get("stopped"), st.get("programmed")],
                          sort_keys=True)

    def preview(self, page: str, make: Callable[[Link], Plan | tuple[Plan, Plan | None]]) -> \
            tuple[str | None, Plan]:
        """Work a change out (make: given the link, its Plan, or the Plan and its follow-up) and
        keep it for Confirm: (its id, the Plan). A blocked Plan is shown, never kept (None).
        Every change kept before it is void from now on."""
        with self.lock:
            with self.link() as lk:
                made = make(lk)
                plan, then = made if isinstance(made, tuple) else (made, None)
                held = self.held(lk) if self.role == "clinician" else ""
            self.pending.clear()
            if plan.refusal is not None:
                return None, plan
            action = secrets.token_urlsafe(24)
            expires = min(float(plan.data.get("expires_s", PENDING_S)), PENDING_S)
            self.pending[action] = Pending(plan, page, self.clock(), expires, held, then)
            return action, plan

    def take(self, action: str, page: str) -> Pending:
        """The Pending change to carry out now, removed so it is carried out once."""
        with self.lock:
            p = self.pending.get(action)
            if p is None:
                raise Stale("this confirmation is no longer valid: it was already used, or "
                            "another preview was made since (in this tab or another). Nothing "
                            "was sent; look at the pump again and start over.")
            if not hmac.compare_digest(p.page, page):
                raise Stale("this confirmation belongs to another page: nothing was sent.")
            del self.pending[action]
            if self.clock() - p.made > p.expires_s:
                raise Stale(f"this confirmation expired ({fmt.span(int(p.expires_s))} after it "
                            "was shown): nothing was sent; start over.")
            return p

    def confirm(self, action: str, page: str, typed: str | None = None) -> tuple[Report, str | None]:
        """Carry out a confirmed change: its Report, and the id of a follow-up now kept for
        Confirm (the bridge bolus after a refill), if any. Raises Stale, or what the command
        raises (context.failure_of says how it is shown)."""
        with self.lock:
            p = self.take(action, page)
            plan = p.plan
            if plan.volume_nl is not None:
                context.check_typed_volume(plan.volume_what, plan.volume_nl, typed)
            with self.link() as lk:
                if p.held and self.held(lk) != p.held:
                    raise Stale("the pump's settings, fills or stop changed since this was "
                                "shown: nothing was sent; look at the pump again and start "
                                "over.")
                rep = plan.report(plan.send(lk))
                self._history = None     # what was just done is read at the next refresh
                follow = None
                if p.then is not None:
                    follow = secrets.token_urlsafe(24)
                    self.pending[follow] = Pending(p.then, page, self.clock(), PENDING_S,
                                                   self.held(lk))
            return rep, follow

    def act(self, cmd: str, args: dict) -> dict:
        """A request that needs no preview (acknowledging an alarm), as pumpctl sends it."""
        with self.link() as lk:
            return context.body(lk.call(cmd, args))


def failure_text(e: BaseException) -> Failure:
    """How an error from a change is shown on the page: pumpctl's code, message and exit
    status (Stale: exit 2, nothing was sent)."""
    if isinstance(e, Stale):
        return Failure(2, "E_STALE", str(e))
    f = context.failure_of(e)
    if f is None:
        raise e
    return f

