"""`pumpctl ui`'s web application: a WSGI app (Werkzeug) that renders Jinja2 templates with
autoescaping, for one pump (host_tools/ui/pump.py), on the loopback interface.

Every request is checked before anything else (docs/security.md, "The clinician's page"):
- the Host header names this server on the loopback (a DNS-rebound name is refused, 403);
- the token from the printed URL is present (401 without it) and right (403), as `token` in the
  query or the X-Token header;
- a POST comes from this origin (the Origin header, 403 otherwise) and carries the CSRF token
  of a page this server rendered (403 otherwise); other methods get 405; no CORS header is ever
  sent, so no other origin can read a reply;
- responses forbid framing, inline script, caching and referrers.
"""

from __future__ import annotations

import hmac
import secrets
import tomllib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from host_tools import clinical, druglib, fmt, program, therapy, units, views
from host_tools.context import Failure, Plan, Report, UsageError, volume_words
from host_tools.errors import InputError
from host_tools.prescription import parse_prescription
from host_tools.ui import charts
from host_tools.ui.pump import PumpView, failure_text

HERE = Path(__file__).resolve().parent
MAX_UPLOAD = 64 * 1024          # a prescription file is a few hundred bytes
UPLOADS_KEPT = 8
LOOPBACK = ("127.0.0.1", "localhost")
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",   # (no-referrer would make the Origin of a POST "null")
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CARRIED = ("assume_24h", "trial_dose", "trial_effect")   # kept when a program is checked again
STATIC = {"ui.css": "text/css; charset=utf-8", "ui.js": "text/javascript; charset=utf-8"}


def rows(lines: list[str]) -> list[tuple[str, str]]:
    """pumpctl's lines ("label" padded to 12 columns, a space, the value) as (label, value)
    pairs: the same words on the page as in the terminal."""
    return [(line[:12].strip(), line[13:].strip()) if line[12:13] == " " else ("", line)
            for line in lines]


class App:
    """The page's WSGI application. port: the TCP port it is served on (the Host and Origin it
    accepts name it); refresh_s: how often the page reads the pump again."""

    def __init__(self, pump: PumpView, token: str, port: int, refresh_s: float = 10.0):
        self.pump = pump
        self.token = token
        self.port = port
        self.refresh_s = refresh_s
        self.uploads: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"),
                               autoescape=select_autoescape(["html"]), trim_blocks=True,
                               lstrip_blocks=True)
        self.routes = Map([
            Rule("/", endpoint="page", methods=["GET"]),
            Rule("/live", endpoint="live", methods=["GET"]),
            Rule("/static/<name>", endpoint="static", methods=["GET"]),
            Rule("/preview/<what>", endpoint="preview", methods=["POST"]),
            Rule("/confirm", endpoint="confirm", methods=["POST"]),
            Rule("/ack", endpoint="ack", methods=["POST"]),
        ])

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- WSGI ----------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        request.max_content_length = MAX_UPLOAD
        request.max_form_memory_size = MAX_UPLOAD
        response = self.handle(request)
        response.headers.update(HEADERS)
        return response(environ, start_response)

    def handle(self, request: Request) -> Response:
        refused = self.refuse(request)
        if refused is not None:
            return refused
        try:
            endpoint, values = self.routes.bind_to_environ(request.environ).match()
            return getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as e:
            return Response(e.description or e.name, e.code or 400,
                            content_type="text/plain; charset=utf-8")

    def refuse(self, request: Request) -> Response | None:
        """The checks every request passes before it is routed (the module's docstring)."""
        host = request.host.rsplit(":", 1)
        if host[0] not in LOOPBACK or host[-1] != str(self.port):
            return self.plain(403, "this page answers on its loopback address only")
        given = request.args.get("token") or request.headers.get("X-Token")
        if not given:
            return self.plain(401, "this page needs the token from the URL pumpctl ui printed")
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return self.plain(403, "wrong token: use the URL pumpctl ui printed")
        if request.method == "POST":
            if request.headers.get("Origin") != self.origin:
                return self.plain(403, "a change must come from this page (cross-origin "
                                       "request refused)")
            if not self.pump.page_ok(request.form.get("page")):
                return self.plain(403, "this form is not from a page this server showed "
                                       "(CSRF check): reload the page")
        elif request.method not in ("GET", "HEAD"):
            return self.plain(405, "only GET and POST")
        return None

    @staticmethod
    def plain(status: int, text: str) -> Response:
        return Response(text + "\n", status, content_type="text/plain; charset=utf-8")

    # -- rendering -----------------------------------------------------------------------------
    def url(self, path: str, **query) -> str:
        return f"{path}?{urlencode({'token': self.token, **query})}"

    def render(self, name: str, status: int = 200, **values) -> Response:
        values.setdefault("page", self.pump.new_page())
        values.update(url=self.url, role=self.pump.role, refresh_ms=int(self.refresh_s * 1000),
                      volume_words=volume_words, vol=fmt.vol)
        html = self.env.get_template(name).render(**values)
        return Response(html, status, content_type="text/html; charset=utf-8")

    def live_values(self, snap: dict[str, Any]) -> dict[str, Any]:
        """The figures of the live part of the page, from one snapshot."""
        out: dict[str, Any] = {"snap": snap, "rows": rows}
        st, settings = snap.get("status"), snap.get("settings")
        if st is None or "gone" in snap:
            return out
        clock = st.get("clock_ts", 0)
        if settings and settings.get("steps"):
            out["schedule_svg"] = charts.schedule(settings["steps"], snap.get("unit"),
                                                  now_minute=(clock % clinical.DAY_S) // 60)
        low = st.get("low_reservoir_nl", 0)
        out["reservoir_svg"] = charts.reservoir(
            st.get("reservoir_nl", 0), low, st.get("projected_nl_day", 0), clock,
            st.get("refill_ts", -1), st.get("expiry_ts", -1))
        if st.get("max_daily_nl"):
            text = snap["view"]["text"]
            out["cap_svg"] = charts.against_cap(
                st.get("delivered_24h_nl", 0), st["max_daily_nl"],
                f"last 24 h {text['delivered_24h']} of at most {text['max_daily']}")
        out["patient"] = self.patient_values(st)
        return out

    def read_back(self) -> list[tuple[str, str]] | None:
        """The pump read again after a change (its status lines, as pumpctl status prints
        them; for the patient, the lockout and today's count); None when it did not answer."""
        got = self.pump.read_now()
        if got is None:
            return None
        st, settings = got
        if self.pump.role == "patient":
            pb = self.patient_values(st)
            return [(k, v) for k, v in (("lockout", pb.get("lockout")),
                                        ("today", pb.get("count"))) if v]
        return rows(views.status_lines(st, settings, views.status_view(st, settings)))

    @staticmethod
    def patient_values(st: dict) -> dict[str, str]:
        """The patient bolus's lockout left and today's count, in `pumpctl status`'s words,
        when the firmware reports them (`status.patient_bolus`)."""
        pb = st.get("patient_bolus")
        if not isinstance(pb, dict):
            return {}
        count, lockout = views.patient_bolus_text(pb)
        return {"lockout": lockout, "count": count}

    # -- pages ---------------------------------------------------------------------------------
    def on_page(self, request: Request) -> Response:
        snap = self.pump.snapshot()
        page = self.pump.new_page()
        return self.render("page.html", page=page, drugs=sorted(druglib.load()),
                           **self.live_values(snap))

    def on_live(self, request: Request) -> Response:
        page = request.args.get("page", "")
        snap = self.pump.snapshot()
        return self.render("live.html", page=page, fresh=self.pump.page_ok(page),
                           **self.live_values(snap))

    def on_static(self, request: Request, name: str) -> Response:
        if name not in STATIC:
            raise NotFound()
        return Response((HERE / "static" / name).read_bytes(), content_type=STATIC[name])

    # -- changes -------------------------------------------------------------------------------
    def on_preview(self, request: Request, what: str) -> Response:
        page = request.form.get("page", "")
        make = self.plans().get(what)
        if make is None or (self.pump.role == "patient") != (what == "patient-bolus"):
            raise NotFound()
        form = request.form
        try:
            upload = self.upload(request) if what == "program" else None
            action, plan = self.pump.preview(page, lambda lk: make(lk, form, upload))
        except Exception as e:
            return self.failed(e, page, what)
        return self.render("preview.html", page=page, plan=plan, action=action, what=what,
                           upload=upload, override=form.get("override", ""),
                           carried={k: form.get(k, "") for k in CARRIED if form.get(k)},
                           chart=self.plan_chart(plan))

    def on_confirm(self, request: Request) -> Response:
        page = request.form.get("page", "")
        try:
            rep, follow = self.pump.confirm(request.form.get("action", ""), page,
                                            request.form.get("typed"))
        except Exception as e:
            return self.failed(e, page, "confirm")
        then = self.pump.pending.get(follow) if follow else None
        return self.render("result.html", page=page, report=rep, follow=follow,
                           then=then.plan if then else None, now=self.read_back())

    def on_ack(self, request: Request) -> Response:
        page = request.form.get("page", "")
        code = request.form.get("code", "")
        try:
            if code not in views.alarm_codes():
                raise InputError("CODE", code, "an alarm code: " + ", ".join(views.alarm_codes()))
            reply = self.pump.act("ack", {"code": code})
        except Exception as e:
            return self.failed(e, page, "ack")
        return self.render("result.html", page=page, follow=None, then=None,
                           report=Report(reply, [f"{code} acknowledged"]),
                           now=self.read_back())

    def failed(self, e: Exception, page: str, what: str) -> Response:
        f: Failure = failure_text(e)
        # refused by the pump, or its answer lost: show what it holds now
        now = self.read_back() if f.status in (1, 3) else None
        return self.render("result.html", status=200, page=page, failure=f, what=what,
                           report=None, follow=None, then=None, now=now)

    def upload(self, request: Request) -> tuple[str, dict]:
        """The prescription file sent with the form (or the one sent before it, kept under its
        id so a refused change can be sent again with an override reason)."""
        kept = request.form.get("upload")
        f = request.files.get("file")
        if f is not None and f.filename:
            name = Path(f.filename).name or "prescription.toml"
            data = f.read(MAX_UPLOAD + 1)
            if len(data) > MAX_UPLOAD:
                raise InputError("file", name, f"a prescription file of at most {MAX_UPLOAD} "
                                 "bytes")
            kept = secrets.token_urlsafe(12)
            self.uploads[kept] = (name, data)
            while len(self.uploads) > UPLOADS_KEPT:
                self.uploads.popitem(last=False)
        if not kept or kept not in self.uploads:
            raise InputError("file", "(none)", "a prescription file (TOML) chosen in the form")
        name, data = self.uploads[kept]
        try:
            raw = tomllib.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise InputError("(file)", name, f"valid TOML in UTF-8 ({e})", name) from None
        return kept, {"name": name, "raw": raw}

    def plans(self) -> dict[str, Callable[..., Plan | tuple[Plan, Plan | None]]]:
        """Each change the page offers: the form's fields parsed as pumpctl parses its options,
        then the same Plan pumpctl carries out."""
        def text(form, key):
            v = (form.get(key) or "").strip()
            return v or None

        def prog(lk, form, upload):
            kept, up = upload
            raw = up["raw"]
            rx = parse_prescription(raw, path=up["name"])
            override = text(form, "override")
            program.check_override(override)
            trial = program.parse_trial(rx, text(form, "trial_dose"), text(form, "trial_effect"))
            params = program.build_params(raw, rx, override)
            return program.plan_program(lk, rx, params, up["name"], override,
                                        text(form, "assume_24h"), trial)

        def refill(lk, form, _):
            vol_text = text(form, "volume") or ""
            conc_text = text(form, "concentration")
            r = therapy.plan_refill(
                lk, units.volume_nl(vol_text, "--volume"), vol_text,
                therapy.parse_concentration(conc_text, "--concentration") if conc_text else 0,
                conc_text, units.volume_nl(text(form, "residual"), "--residual")
                if text(form, "residual") else -1,
                therapy.parse_stable_for(text(form, "stable_for")), text(form, "drug"))
            return r.plan, r.bridge

        def bolus(lk, form, _):
            dose = text(form, "dose") or ""
            return therapy.plan_bolus(lk, dose, therapy.parse_duration_s(text(form, "duration")))

        def prime(lk, form, _):
            v = text(form, "volume") or ""
            return therapy.plan_prime(lk, therapy.parse_prime_volume(v), v)

        def bridge(lk, form, _):
            c = text(form, "old_concentration") or ""
            return therapy.plan_bridge(lk, therapy.parse_concentration(c, "--old-concentration"),
                                       c)

        def catheter(lk, form, _):
            if form.get("revised") != "yes":     # pumpctl's --revised, said in the form
                raise UsageError("catheter: tick that the catheter is new or revised (the "
                                 "pump then takes it as empty)")
            return therapy.plan_catheter(lk)

        return {"program": prog, "refill": refill, "bolus": bolus, "prime": prime,
                "bridge": bridge, "catheter": catheter,
                "stop": lambda lk, form, _: therapy.plan_stop(
                    lk, therapy.parse_stop_for(text(form, "for"))),
                "resume": lambda lk, form, _: therapy.plan_resume(),
                "patient-bolus": lambda lk, form, _: therapy.plan_patient_bolus()}

    @staticmethod
    def plan_chart(plan: Plan):
        """A program's old and new schedules on one chart, and its rows side by side."""
        old, new = plan.data.get("old"), plan.data.get("new")
        if not new:
            return None
        unit = views.settings_unit(new)
        return {"svg": charts.schedule((old or {}).get("steps"), unit, new["steps"]),
                "rows": views.side_by_side_rows(old, new)}

