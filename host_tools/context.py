"""What every pumpctl command gets (a Context: the open link, output streams, what the person
may be asked), and the one way a change reaches the pump: a Plan shown, confirmed, sent and
reported (carry_out). The page (host_tools/ui) carries out the same Plans, so a change checked
here is checked the same way there.

Errors travel as exceptions; failure_of() turns one into what pumpctl prints and exits with
(INTERFACES.md): InputError and UsageError 2 (nothing was sent that changes anything),
PumpError 1, LinkError 3.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools import boardlimits, link, units
from host_tools.errors import InputError
from host_tools.fmt import vol
from host_tools.link import Key, Link, LinkError, PumpError, ReplyUnverified

ROOT = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """The command cannot go ahead as given (exit 2); nothing that changes the pump was sent."""


class Failure(Exception):
    """An error as pumpctl reports it: exit status, a stable code, the message."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def failure_of(e: BaseException) -> Failure | None:
    """The exit status, code and message of an error from a command (None: not one of ours).
    pumpctl prints it; the page shows it."""
    if isinstance(e, Failure):
        return e
    if isinstance(e, InputError):
        return Failure(2, "E_INPUT", str(e), key=e.key)
    if isinstance(e, UsageError):
        return Failure(2, "E_USAGE", str(e))
    if isinstance(e, PumpError):
        return Failure(1, e.code, f"the pump refused: {e}", reason=e.reason)
    if isinstance(e, ReplyUnverified):
        return Failure(3, "E_UNVERIFIED", str(e), uncertain=e.uncertain)
    if isinstance(e, LinkError):
        code = "E_UNCERTAIN" if e.uncertain else "E_NO_CONNECTION"
        return Failure(3, code, f"no connection: {e}", uncertain=e.uncertain)
    return None


def reads_as(typed_nl: int, volume_nl: int) -> bool:
    """A volume typed to confirm one shown: the same figure as shown (a worked-out bridge of
    26,666 nL is shown, and typed, as 0.02667 mL; the pump gets the volume worked out)."""
    return vol(typed_nl) == vol(volume_nl)


def volume_words(what: str) -> str:
    """What is typed again, in words: "priming bolus volume", "catheter's volume"."""
    return what if what.endswith("volume") else f"{what} volume"


def check_typed_volume(what: str, volume_nl: int, typed: str | None) -> None:
    """The second step of a bolus that empties into the patient: the volume typed again must
    be the one shown (pumpctl asks for it; the page has a field for it)."""
    if typed is None:
        raise UsageError(f"type the {volume_words(what)} again to confirm ({vol(volume_nl)})")
    if not reads_as(units.volume_nl(typed, "typed volume"), volume_nl):
        raise UsageError(f"the typed volume {typed!r} is not {vol(volume_nl)}: nothing was "
                         "given")


def body(reply: dict) -> dict:
    """A reply without the envelope (id, ok, cmd, repeat)."""
    return {k: v for k, v in reply.items() if k not in ("id", "ok", "cmd", "repeat")}


# ---- a change, ready to show and confirm -------------------------------------------------------

@dataclass
class Report:
    """What came of a change: the JSON object, the lines for the person, the exit status and
    warnings (stderr in pumpctl)."""
    obj: dict
    lines: list[str]
    status: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A change the pump will be asked to make, worked out and checked but not yet sent.

    lines: what will happen, shown before asking; question: asked once (yes/no); volume_nl:
    when set, a second step: that volume typed again (a bolus that empties into the patient);
    send: the request(s), given the link, returning the reply's body (a refusal raises
    PumpError); report: the reply in words. blocked: why it cannot go ahead (shown as
    warnings, then `refusal` is raised): the page shows both beside the lines.
    """
    title: str
    lines: list[str]
    question: str
    send: Callable[[Link], dict]
    report: Callable[[dict], Report]
    role: str = "clinician"
    volume_nl: int | None = None
    volume_what: str = ""
    blocked: list[str] = field(default_factory=list)
    refusal: Exception | None = None
    data: dict[str, Any] = field(default_factory=dict)   # figures for the page (charts)


def show_and_ask(ctx: Context, plan: Plan, yes: int, confirm: str | None = None) -> dict:
    """Show what will happen, confirm, call the pump: the reply's body. A plan that is blocked
    shows its lines and reasons and raises its refusal before anything is asked or sent."""
    for line in plan.lines:
        ctx.show(line)
    if plan.refusal is not None:
        for why in plan.blocked:
            ctx.warn(why)
        raise plan.refusal
    if plan.volume_nl is not None:
        ctx.confirm_volume(plan.volume_what, plan.volume_nl, yes, confirm)
    else:
        ctx.confirm(plan.question, yes)
    return plan.send(ctx.link(plan.role))


def carry_out(ctx: Context, plan: Plan, yes: int, confirm: str | None = None) -> int:
    """Show, confirm, call, report: the exit status. A refusal from the pump travels on as
    PumpError (exit 1), a reply that does not verify as LinkError (exit 3)."""
    rep = plan.report(show_and_ask(ctx, plan, yes, confirm))
    ctx.result(rep.obj, rep.lines)
    for w in rep.warnings:
        ctx.warn(w)
    return rep.status


# ---- the context every command gets ------------------------------------------------------------

class Context:
    """Options, streams and the (lazily opened) link to the pump."""

    def __init__(self, opts, stdout=None, stderr=None, stdin=None):
        self.opts = opts
        self.out = stdout or sys.stdout
        self.err = stderr or sys.stderr
        self.stdin = stdin or sys.stdin
        self.json = bool(getattr(opts, "json", False))
        self._link: Link | None = None
        self.found: link.Found | None = None

    # -- output --------------------------------------------------------------------------------
    def show(self, text: str = "") -> None:
        """Text for the person: on stdout, or on stderr when stdout carries JSON."""
        print(text, file=self.err if self.json else self.out)

    def warn(self, text: str) -> None:
        print(f"pumpctl: {text}", file=self.err)

    def result(self, obj: dict, lines=()) -> None:
        if self.json:
            print(json.dumps(obj), file=self.out)
        else:
            for line in lines:
                print(line, file=self.out)

    # -- asking --------------------------------------------------------------------------------
    @property
    def interactive(self) -> bool:
        try:
            return self.stdin.isatty()
        except (AttributeError, ValueError):
            return False

    def ask(self, prompt: str) -> str:
        print(prompt, end="", file=self.err, flush=True)
        line = self.stdin.readline()
        if not line:
            raise UsageError("no answer (end of input): nothing was changed")
        return line.strip()

    def need_confirmation(self, yes: int, twice: bool, what: str, confirm=None) -> None:
        """Before anything is sent: make sure the person can be asked, or has already said yes."""
        if confirm is not None or yes >= (2 if twice else 1) or self.interactive:
            return
        how = ("--yes --yes or --confirm VOLUME" if twice else "--yes")
        raise UsageError(f"{what} needs confirmation and standard input is not a terminal: "
                         f"give {how} to confirm without a prompt")

    def confirm(self, question: str, yes: int) -> None:
        if yes >= 1:
            return
        if self.ask(f"{question} [y/N] ").lower() not in ("y", "yes"):
            raise UsageError("not confirmed: nothing was changed")

    def confirm_volume(self, what: str, volume_nl: int, yes: int, confirm) -> None:
        """Two steps for a bolus that empties into the patient: yes, then the volume typed
        again (or --yes --yes, or --confirm VOLUME given beforehand)."""
        if confirm is not None:
            if not reads_as(units.volume_nl(confirm, "--confirm"), volume_nl):
                raise InputError("--confirm", confirm, f"the {what} volume shown, {vol(volume_nl)}")
            return
        if yes >= 2:
            return
        self.confirm(f"Give the {what} of {vol(volume_nl)}?", yes)
        check_typed_volume(what, volume_nl,
                           self.ask(f"Type the {volume_words(what)} again to confirm "
                                    f"({vol(volume_nl)}): "))

    # -- the pump ------------------------------------------------------------------------------
    def link(self, role: str = "clinician") -> Link:
        """Open the link on first use: find the port, pick the key."""
        if self._link is None:
            port = self._port()
            key = self._key(role)
            timeout = getattr(self.opts, "timeout", None) or 3.0
            refuse_if_shared(port, self.found)
            self._link = Link.open(port, key, timeout_s=timeout)
        return self._link

    def target(self) -> tuple[str, Key | None]:
        """The port and the key a command would use, without opening the port (pumpctl ui
        opens it for each exchange)."""
        port = self._port()
        return port, self._key("clinician")

    def limits(self) -> boardlimits.BoardLimits:
        """The board limits of the pump this command talks to (boardlimits.pump_limits)."""
        return boardlimits.pump_limits(self.link())

    def _port(self) -> str:
        given = getattr(self.opts, "port", None) or os.environ.get("PUMPCTL_PORT")
        if given:
            self.found = link.board_for_port(given)
            return given
        pumps = link.find_pumps()
        if not pumps:
            raise LinkError("no pump found: connect a Pico by USB, start `pumpsim board`, or "
                            "give --port")
        ours = [p for p in pumps if is_ours(p)]
        if len(pumps) > 1 and len(ours) == 1:
            # Other checkouts' boards are someone else's: take the one this tree started.
            self.warn(f"{len(pumps)} pumps found; using {ours[0].port}, the virtual board "
                      f"started from this checkout (flash {(ours[0].board or {}).get('flash')})")
            pumps = ours
        if len(pumps) > 1:
            listed = "; ".join(f"{p.port} ({p.description}"
                               + (f", flash {p.board.get('flash')}" if p.board else "") + ")"
                               for p in pumps)
            raise UsageError(f"{len(pumps)} pumps found, choose one with --port: {listed}")
        self.found = pumps[0]
        return self.found.port

    def _key(self, role: str) -> Key | None:
        path = getattr(self.opts, "key", None) or os.environ.get("PUMPCTL_KEY")
        if path:
            return link.load_key(path)
        board = self.found.board if self.found else None
        if board:
            order = ("patient_key", "clinician_key") if role == "patient" else ("clinician_key",)
            for name in order:
                if board.get(name) and os.path.exists(board[name]):
                    return link.load_key(board[name])
        return None

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


def is_ours(found: link.Found) -> bool:
    """A virtual board started from this checkout (its registry record names the tree)."""
    return bool(found.board) and (found.board or {}).get("root") == str(ROOT)


# ---- a port someone else has open -----------------------------------------------------------

def port_holders(path: str) -> list[tuple[int, str]]:
    """Other processes that have this device open, (pid, program name), from /proc (Linux;
    elsewhere, or for a URL, none are seen). Terminal programs that take no lock (screen, tio)
    are found this way; those that lock (picocom) also fail pyserial's exclusive open."""
    proc = Path("/proc")
    try:
        target = os.stat(path)
    except OSError:
        return []
    if not proc.is_dir():
        return []
    out = []
    for d in proc.iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            for fd in (d / "fd").iterdir():
                st = os.stat(fd)
                if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                    out.append((int(d.name), (d / "comm").read_text().strip()))
                    break
        except OSError:
            continue  # gone, or not ours to look at
    return out


def refuse_if_shared(port: str, found: link.Found | None) -> None:
    """Another program on the port would read the pump's replies (and we its): say so at once
    instead of timing out, or worse, acting on half a conversation."""
    board_pid = (found.board or {}).get("pid") if found else None
    others = [(pid, name) for pid, name in port_holders(port) if pid != board_pid]
    if others:
        who = ", ".join(f"{name} (pid {pid})" for pid, name in others)
        raise LinkError(f"port in use by another program: {port} is open in {who}; close it "
                        "and try again")
