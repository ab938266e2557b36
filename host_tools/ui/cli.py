"""`pumpctl ui`: serve the page for one pump on the loopback interface (docs/ui.md).

The pump is chosen as every pumpctl command chooses it (--port, PUMPCTL_PORT, or the one pump
it finds) and the key likewise (--key, PUMPCTL_KEY, or a virtual board's clinician key). The
first line on stdout is one JSON object: {"url": "http://127.0.0.1:PORT/?token=...", ...}; the
server then runs until Ctrl-C or SIGTERM. The token is new each run; the key never leaves this
process.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import webbrowser

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from host_tools.context import Context
from host_tools.ui.pump import PumpView
from host_tools.ui.server import App

HOST = "127.0.0.1"      # loopback only: nothing else on the network can reach the page


class _QuietHandler(WSGIRequestHandler):
    """No request log: each line would carry the token in its URL."""

    def log_request(self, code="-", size="-") -> None:
        pass


def start(pump: PumpView, refresh_s: float = 10.0) -> tuple[BaseWSGIServer, str]:
    """A server for the pump on a free loopback port, not yet serving: (server, the URL with
    its token)."""
    token = secrets.token_urlsafe(32)
    app = App(pump, token, 0, refresh_s)
    srv = make_server(HOST, 0, app, threaded=True, request_handler=_QuietHandler)
    app.port = srv.server_port
    return srv, f"http://{HOST}:{srv.server_port}/?token={token}"


def do_ui(ctx: Context, args) -> int:
    port, key = ctx.target()
    pump = PumpView(port, key, ctx.found, timeout_s=getattr(args, "timeout", None) or 3.0)
    with pump.link() as lk:          # the pump answers, or no page: LinkError (exit 3)
        pump_id = lk.public_info().get("pump_id")
    srv, url = start(pump, args.refresh)
    print(json.dumps({"url": url, "pump_id": pump_id, "port": port, "role": pump.role}),
          file=ctx.out, flush=True)
    ctx.warn(f"the page for pump {pump_id} is at the URL above (this computer only); "
             "Ctrl-C stops it")

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    if not args.no_browser:
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0
