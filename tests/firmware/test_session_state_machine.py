"""The session rules (firmware/proto.py, docs/protocol.md "Sessions") under any interleaving of
honest sessions, reboots, idle time, other hosts opening sessions, and lines held back,
released late or replayed by someone on the line.

Invariants:
- nothing is accepted twice (a repeat of the last accepted line is answered from the cache,
  marked "repeat", and acts on nothing);
- nothing is accepted outside its session: a line is accepted only while the session it was
  made for is the pump's current one for that role (no reboot, no newer hello, not idle for
  more than 5 minutes since);
- the counter the pump keeps only goes up, across reboots too;
- an honest session (hello, then requests one after another) always succeeds;
- a hello opens a session only by answering the challenge the pump gave last for its role,
  within CHALLENGE_MS: a replayed or stale hello (either step) never ends the current session.
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from firmware import auth
from firmware.proto import CHALLENGE_MS, SESSION_IDLE_MS
from tests.firmware.proto_bench import PAT, Signer, ask, boot, provisioned

ROLES = ("clinician", "patient")
# Refusals that come from the command after its session and counter were accepted.
AFTER_ACCEPT = ("E_REFUSED", "E_ARGS", "E_RX", "E_INTERNAL")


def accepted(reply):
    if reply.get("repeat"):
        return False
    return reply["ok"] is True or reply.get("error") in AFTER_ACCEPT


class Sessions(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.app = provisioned()
        self.hosts = {"clinician": Signer(self.app), "patient": Signer(self.app, key=PAT,
                                                                       role="patient")}
        self.current = {r: h.sn for r, h in self.hosts.items()}   # the pump's session, per role
        self.active_at = {r: self.app.hal.t for r in ROLES}
        self.sent = []          # (line, role, sn) of every line that went to the pump
        self.held = []          # lines made and kept back by someone on the line
        self.ever = set()       # lines the pump accepted
        self.last_ctr = {r: 0 for r in ROLES}
        self.hellos = []        # (line, role) of both steps of every hello that was sent
        self.held_hellos = []   # (second-step line, role, its challenge) kept back
        self.challenge = {r: None for r in ROLES}   # the pump's last challenge, per role
        self.challenge_at = {r: 0 for r in ROLES}

    def _send(self, line, role, sn):
        reply = ask(self.app, line)
        self.sent.append((line, role, sn))
        if accepted(reply):
            assert line not in self.ever, ("accepted twice", line, reply)
            assert sn is not None and sn == self.current[role], ("outside its session", reply)
            self.ever.add(line)
            self.active_at[role] = self.app.hal.t
        return reply

    def _expire(self):
        for r in ROLES:
            if self.app.hal.t - self.active_at[r] > SESSION_IDLE_MS:
                self.current[r] = None

    def _hello(self, host, role):
        """Both steps of an honest hello, recorded for replays."""
        r = host.hello(self.app)
        self.hellos += [(host.first_hello, role), (host.last_hello, role)]
        self.challenge[role] = None
        return r

    @rule(role=st.sampled_from(ROLES), n=st.integers(1, 3))
    def honest_session(self, role, n):
        host = self.hosts[role]
        r = self._hello(host, role)
        self.current[role] = r["sn"]
        self.active_at[role] = self.app.hal.t
        for _ in range(n):
            reply = self._send(host.line("status"), role, host.sn)
            assert reply["ok"] is True and not reply.get("repeat"), reply

    @rule(role=st.sampled_from(ROLES))
    def another_host_opens_a_session(self, role):
        other = Signer(key=self.hosts[role].key, role=role)
        self.current[role] = self._hello(other, role)["sn"]
        self.active_at[role] = self.app.hal.t

    def _check_current(self, role):
        """The role's current session, if it is still open, takes an honest request."""
        host = self.hosts[role]
        self._expire()
        if host.sn is not None and host.sn == self.current[role]:
            reply = self._send(host.line("status"), role, host.sn)
            assert reply["ok"] is True and not reply.get("repeat"), reply

    @precondition(lambda self: self.hellos)
    @rule(i=st.integers(0, 1000))
    def replay_a_hello(self, i):
        """Someone on the line replays a recorded hello, either step: it may get a challenge
        (which replaces the pump's last one), never a session."""
        line, role = self.hellos[i % len(self.hellos)]
        reply = ask(self.app, line)
        assert "sn" not in reply, ("a replayed hello opened a session", reply)
        if reply["ok"]:
            self.challenge[role] = reply["pn"]
            self.challenge_at[role] = self.app.hal.t
        else:
            assert reply["error"] == "E_REPLAY", reply
        self._check_current(role)

    @precondition(lambda self: len(self.held_hellos) < 4)
    @rule(role=st.sampled_from(ROLES))
    def hold_a_hello(self, role):
        """The second step of someone's hello is kept back by the line."""
        host = Signer(key=self.hosts[role].key, role=role)
        pn = host.challenge(self.app)
        self.challenge[role] = pn
        self.challenge_at[role] = self.app.hal.t
        self.held_hellos.append((host.hello_line(pn=pn), role, pn))

    @precondition(lambda self: self.held_hellos)
    @rule(i=st.integers(0, 3))
    def release_a_held_hello(self, i):
        line, role, pn = self.held_hellos.pop(i % len(self.held_hellos))
        reply = ask(self.app, line)
        fresh = (pn == self.challenge[role]
                 and self.app.hal.t - self.challenge_at[role] <= CHALLENGE_MS)
        if reply["ok"]:
            assert fresh and "sn" in reply, ("a stale hello opened a session", reply)
            self.current[role] = reply["sn"]
            self.active_at[role] = self.app.hal.t
            self.challenge[role] = None
        else:
            assert not fresh and reply["error"] == "E_REPLAY", reply
            self._check_current(role)

    @precondition(lambda self: len(self.held) < 6)
    @rule(role=st.sampled_from(ROLES))
    def hold_a_line(self, role):
        host = self.hosts[role]
        if host.sn is not None:
            self.held.append((host.line("status"), role, host.sn))

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 5))
    def release_a_held_line(self, i):
        self._expire()
        line, role, sn = self.held.pop(i % len(self.held))
        self._send(line, role, sn)

    @precondition(lambda self: self.sent)
    @rule(i=st.integers(0, 1000))
    def replay_a_line(self, i):
        self._expire()
        line, role, sn = self.sent[i % len(self.sent)]
        self._send(line, role, sn)

    @rule(ms=st.sampled_from([1000, 60_000, SESSION_IDLE_MS - 1, SESSION_IDLE_MS + 1,
                              3_600_000]))
    def time_passes(self, ms):
        self.app.hal.t += ms
        self._expire()

    @rule()
    def reboot(self):
        self.app = boot(self.app.hal.dev)
        self.current = {r: None for r in ROLES}
        self.challenge = {r: None for r in ROLES}

    @invariant()
    def counters_only_go_up(self):
        if not hasattr(self, "app"):
            return
        for r in ROLES:
            n = self.app.keys.last[auth.ROLES[r]]
            assert n >= self.last_ctr[r]
            self.last_ctr[r] = n


Sessions.TestCase.settings = settings(stateful_step_count=30, deadline=None)
test_session_rules_hold_under_any_interleaving = Sessions.TestCase
