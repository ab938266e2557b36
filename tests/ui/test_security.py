"""The page's defences (docs/security.md, "The clinician's page"), one test each: the token on
every request, the loopback Host, the same origin and the page's CSRF token on every change, no
CORS, a confirmation taken once, from its own page, while it is the newest and while the pump
holds what was shown; every string from the pump escaped; a clear page when the pump goes away;
the patient key's page offers the patient bolus only."""

import http.client
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from host_tools import link
from host_tools.ui.pump import PumpView
from tests.host_tools.serial_peer import SECRET, Peer, body_of
from tests.ui.conftest import board_view, served, shot


def request(ui, method: str, path: str, body: dict | None = None, headers: dict | None = None,
            host: str | None = None) -> tuple[int, dict, str]:
    """One raw HTTP request to the page's server: (status, headers, text)."""
    conn = http.client.HTTPConnection("127.0.0.1", ui.srv.server_port, timeout=30)
    data = None
    h = {"Host": host or f"127.0.0.1:{ui.srv.server_port}", **(headers or {})}
    if body is not None:
        data = "&".join(f"{k}={v}" for k, v in body.items())
        h["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    conn.close()
    return out


def page_token(ui) -> str:
    status, _, html = request(ui, "GET", ui.app.url("/"))
    assert status == 200
    return re.search(r'name="page" value="([^"]+)"', html).group(1)


def post(ui, path: str, page: str, **fields) -> tuple[int, str]:
    status, _, html = request(ui, "POST", ui.app.url(path), {"page": page, **fields},
                              {"Origin": ui.origin})
    return status, html


def action_of(html: str) -> str:
    return re.search(r'name="action" value="([^"]+)"', html).group(1)


# ---- the token, the host, the origin, CSRF, CORS -----------------------------------------------

@pytest.mark.parametrize("method, path", [("GET", "/"), ("GET", "/live"),
                                          ("GET", "/static/ui.js"), ("POST", "/preview/stop"),
                                          ("POST", "/confirm")])
def test_without_the_token_every_request_is_refused(ui, method, path):
    status, _, text = request(ui, method, path, {} if method == "POST" else None)
    assert status == 401 and "token" in text
    status, _, text = request(ui, method, path + "?token=" + "x" * len(ui.token),
                              {} if method == "POST" else None)
    assert status == 403 and "wrong token" in text


def test_the_page_answers_on_the_loopback_only(ui):
    assert ui.srv.server_address[0] == "127.0.0.1"
    # a name rebound to 127.0.0.1 by someone's DNS is not this page, even with the token
    status, _, _ = request(ui, "GET", ui.app.url("/"), host=f"evil.example:{ui.srv.server_port}")
    assert status == 403
    assert request(ui, "GET", ui.app.url("/"), host=f"localhost:{ui.srv.server_port}")[0] == 200


def test_a_change_needs_this_origin_and_a_page_this_server_showed(ui, board):
    page = page_token(ui)
    fields = {"page": page}
    for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://127.0.0.1:{ui.srv.server_port + 1}"}):
        status, _, text = request(ui, "POST", ui.app.url("/preview/stop"), fields, headers)
        assert status == 403 and "cross-origin" in text, headers
    for fields in ({}, {"page": "made-up"}):
        status, _, text = request(ui, "POST", ui.app.url("/preview/stop"), fields,
                                  {"Origin": ui.origin})
        assert status == 403 and "CSRF" in text
    assert request(ui, "PUT", ui.app.url("/confirm"))[0] == 405
    assert board.status()["stopped"] is False


def test_no_other_origin_may_read_a_reply(ui):
    status, headers, _ = request(ui, "GET", ui.app.url("/live"),
                                 headers={"Origin": "http://evil.example"})
    assert status == 200 and not any(h.startswith("access-control-") for h in headers)
    status, headers, _ = request(ui, "OPTIONS", ui.app.url("/preview/stop"), headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert status == 405 and not any(h.startswith("access-control-") for h in headers)
    _, headers, _ = request(ui, "GET", ui.app.url("/"))
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


class _Attacker(BaseHTTPRequestHandler):
    """Another site on this computer, whose page posts a change to the pump's page."""
    html = ""

    def do_GET(self):
        body = self.html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_cross_site_post_from_a_browser_is_refused(ui, board, page):
    """Even knowing the token and a live page's CSRF token, another site's form cannot stop
    the pump: its Origin is not the page's."""
    target = ui.origin + ui.app.url("/preview/stop")
    _Attacker.html = (f'<form id="f" method="post" action="{target}">'
                      f'<input name="page" value="{page_token(ui)}"><input name="for" value="1 h">'
                      '</form><script>document.getElementById("f").submit()</script>')
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with page.expect_navigation(url=re.compile(r".*/preview/stop.*")) as nav:
            page.goto(f"http://127.0.0.1:{evil.server_port}/")
        assert nav.value.status == 403
        assert "cross-origin request refused" in page.inner_text("body")
    finally:
        evil.shutdown()
        evil.server_close()
    assert board.status()["stopped"] is False


# ---- confirmations ------------------------------------------------------------------------------

def test_a_confirmation_is_taken_once_from_its_page_while_it_is_the_newest(ui, board):
    """Resume is the harmless change used here (the pump delivers on)."""
    a, b = page_token(ui), page_token(ui)
    status, html = post(ui, "/preview/resume", a)
    assert status == 200 and "Resume: the basal starts again" in html
    act = action_of(html)
    status, html = post(ui, "/confirm", b, action=act)           # a second tab
    assert "belongs to another page" in html and "nothing was sent" in html
    status, html = post(ui, "/confirm", a, action=act)
    assert "delivery resumed" in html
    status, html = post(ui, "/confirm", a, action=act)           # the same again: a replay
    assert "E_STALE" in html and "already used" in html

    first = action_of(post(ui, "/preview/resume", a)[1])
    second = action_of(post(ui, "/preview/resume", b)[1])        # a newer preview elsewhere
    assert "no longer valid" in post(ui, "/confirm", a, action=first)[1]
    assert "delivery resumed" in post(ui, "/confirm", b, action=second)[1]


def test_a_confirmation_is_void_once_the_pump_changed_under_it(ui, board):
    a = page_token(ui)
    act = action_of(post(ui, "/preview/resume", a)[1])
    assert board.ctl("stop", "--for", "10 min", "--yes")[0] == 0   # pumpctl, meanwhile
    try:
        html = post(ui, "/confirm", a, action=act)[1]
        assert "changed since this was shown" in html and "nothing was sent" in html
        assert board.status()["stopped"] is True
    finally:
        assert board.ctl("resume", "--yes")[0] == 0


def test_a_stale_tab_cannot_confirm_what_it_shows(ui, board, page):
    other = page.context.new_page()
    page.goto(ui.url)
    page.fill("#stop-form input[name=for]", "5 min")
    page.click("#stop-form button[type=submit]")              # tab 1 shows a stop
    other.goto(ui.url)
    other.click("#stop-form button[formaction]")              # tab 2 shows a resume since
    page.click("#confirm-form button.confirm")                # tab 1 confirms its stop
    assert "no longer valid" in page.inner_text("#failure-message")
    shot(page, "stale-tab")
    assert board.status()["stopped"] is False
    other.close()


# ---- what the pump says, and when it goes away --------------------------------------------------

EVIL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
LIMITS = {"stroke_nl": 250, "reservoir_nl": 20_000_000, "reservoir_min_nl": 500_000,
          "min_rate_nl_day": 48_000, "max_strokes_per_min": 600, "max_rate_nl_day": 216_000_000,
          "catheter_nl": 200_000}


def fake_pump(peer):
    """A pump (the scripted pty peer) whose every string is markup."""
    def script(p, line):
        cmd = json.loads(body_of(line))["cmd"]
        if cmd == "info":
            return p.reply(line, ok=True, cmd="info", pump_id="pump-1", firmware=EVIL,
                           board="virtual-pico", build=EVIL, keys="ok", clock_ts=1000,
                           ctr={"clinician": 0, "patient": 0}, limits=LIMITS,
                           self_test={"when_ts": 900, "passed": False,
                                      "parts": {"code": True, EVIL: False}})
        if cmd == "status":
            return p.reply(line, ok=True, cmd="status", programmed=True, delivering=True,
                           rate_nl_day=96_000, basal_nl_day=96_000, max_daily_nl=768_000,
                           reservoir_nl=10_000_000, low_reservoir_nl=2_000_000, refill_ts=-1,
                           delivered_24h_nl=1000, battery_mv=3100, clock_ts=1000, step=0,
                           alarms=[{"code": EVIL, "priority": "warning", "acked": False}],
                           bolus={}, refusing=EVIL)
        if cmd == "settings":
            return p.reply(line, ok=True, cmd="settings", settings={
                "conc_ng_ml": 25_000, "steps": [[0, 2400]], "max_daily_ng": 19_200,
                "low_res_nl": 2_000_000, "meta": {"drug": EVIL, "units": "mcg"}})
        if cmd == "log":
            return p.reply(line, ok=True, cmd="log", total=1, next=1, chain_ok=True,
                           entries=[[0, 900, EVIL, EVIL, 0]])
        if cmd == "history":
            return p.reply(line, ok=True, cmd="history", total=2, next=2, first=0, unsaved=0,
                           dropped=0, today=None, entries=[
                               {"seq": 0, "ts": 900, "kind": "program", "by": "clinician",
                                "program": 1, "conc_ng_ml": 25_000, "basal_ng_day": 2400,
                                "basal_nl_day": 96_000, "max_daily_ng": 19_200,
                                "old_basal_ng_day": -1, "old_basal_nl_day": -1,
                                "old_max_daily_ng": -1,
                                "notes": {"drug": EVIL, "titration_override": EVIL,
                                          "library": EVIL}},
                               {"seq": 1, "ts": 950, "kind": EVIL, "by": EVIL}])
        return p.reply(line, ok=True, cmd=cmd)
    peer.script = script
    return PumpView(peer.path, link.Key("clinician", SECRET, "pump-1"), timeout_s=1)


def test_every_string_from_the_pump_is_escaped(page):
    peer = Peer()
    try:
        with served(fake_pump(peer)) as s:
            status, _, html = request(s, "GET", s.app.url("/"))
            assert status == 200 and "<script>window" not in html and "<img src=x" not in html
            assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
            page.goto(s.url)
            page.wait_for_timeout(1500)                 # the live part refreshed twice since
            assert page.evaluate("window.pwned") is None
            assert EVIL in page.inner_text("#pump") and EVIL in page.inner_text("#alarms")
            assert EVIL in page.inner_text("#log") and EVIL in page.inner_text("#history")
            assert f"self-test    FAILED at 2024-01-01 00:15:00 (code ok, {EVIL} FAILED)" \
                not in html and "FAILED at 2024-01-01 00:15:00" in page.inner_text("#pump")
            shot(page, "escaped")
    finally:
        peer.close()


def test_a_clear_page_when_the_pump_goes_away(page):
    peer = Peer()
    with served(fake_pump(peer), refresh_s=0.3) as s:
        page.goto(s.url)
        assert page.locator("#status-table").is_visible()
        assert page.locator("#program-form").is_visible()
        peer.close()                                    # the cable is pulled
        page.wait_for_selector("[data-gone]", timeout=15_000)
        assert "The pump is not answering" in page.inner_text("#live")
        assert page.locator("#status-table").count() == 0
        assert not page.locator("#program-form").is_visible()   # no change can be made
        shot(page, "gone")
    # (a locator's wait: a wait_for_function would need eval, which the page's CSP forbids)
    page.locator("#live").get_by_text("pumpctl ui is not answering").wait_for(timeout=15_000)


def test_the_patient_key_shows_only_the_patient_bolus(board, page, request):
    with served(board_view(board, "patient_key", request.config.getoption("--rp2"))) as s:
        page.goto(s.url)
        assert page.locator("#patient-bolus-form button").inner_text() == "Patient bolus"
        for hidden in ("#program-form", "#refill-form", "#status-table", "#log", "#reservoir",
                       "#pump"):
            assert page.locator(hidden).count() == 0, hidden
        assert page.locator("#lockout").is_visible() and page.locator("#today-count").is_visible()
        assert page.inner_text("#today-count").endswith("boluses in the last 24 h")
        shot(page, "patient")
        status, html = post(s, "/preview/program", page_token(s))
        assert status == 404                           # no other change, not even by hand
        page.click("#patient-bolus-form button")
        page.click("#confirm-form button.confirm")
        page.wait_for_selector("#report, #failure-message")
        text = page.inner_text("#result")
        assert "patient bolus started" in text or "E_REFUSED" in text
        if "patient bolus started" in text:           # read back: the lockout has begun
            assert page.inner_text("#read-back").count("next allowed in") == 1
        shot(page, "patient-bolus")


def test_the_therapy_history_panel_shows_the_pumps_history_escaped_and_read_once_a_minute():
    """The history panel shows host_tools.commands.history_lines(link), pumpctl history's own
    lines; the pump's words in it are escaped; it is read once a minute, not at every
    refresh (each signed read moves the key's counter)."""
    peer = Peer()
    try:
        view = fake_pump(peer)
        with served(view) as s:
            html = request(s, "GET", s.app.url("/"))[2]
            assert 'id="history"' in html and "<script>window" not in html
            assert "why: &lt;script&gt;window.pwned=1&lt;/script&gt;" in html
            def asked():
                return [r.get("cmd") for r in peer.requests()].count("history")

            assert asked() == 1
            request(s, "GET", s.app.url("/"))
            assert asked() == 1
    finally:
        peer.close()
