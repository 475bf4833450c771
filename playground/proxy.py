"""The playground's own small HTTP server: the static page, the API's field declarations as
JSON, and the page's API requests forwarded to TorchServe with the inference key.

Why a forwarding process: TorchServe's token authorization stays on, and a key in the page's
JavaScript (or pasted into it) would be readable by every script and extension of the page.
This process reads ``key_file.json`` from the server's run folder at each request (keys
change at every server start) and adds the key itself; the page never sees it. What it
accepts (SECURITY.md, "The playground"):

- it listens on 127.0.0.1 only, answers only a ``Host`` of 127.0.0.1 or localhost with its
  port (a DNS-rebinding page cannot reach it) and forwards only POSTs whose ``Origin`` is
  itself (another site's page cannot use it);
- every request but the first needs a cookie holding a random token printed in the URL by
  `make playground` (like Jupyter's): another local user cannot borrow the key through it;
- it forwards only ``POST /predictions/<model>`` for the served models, bodies up to the
  API's own limit, and passes the answer through chunk by chunk.

A stream the page stops (``POST /playground/stop``) or drops (tab closed) is cut upstream,
which is how TorchServe learns a client left: it leaves the job out of the handler's next
call, and the handler then frees its row. TorchServe 0.12 makes that next call only when
some job is waiting, so after a cut stream this process sends one short request
(``RELEASE``: one greedy token) so that the row, its session lock and the ActiveRows gauge
are freed now rather than at someone's next request.
"""

from __future__ import annotations

import contextlib
import hmac
import http.client
import json
import socket
import subprocess
import sys
import threading
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from handlers import registry
from handlers.schema import MAX_BODY_BYTES, RequestError
from serving.connection import Connection
from serving.server_config import ServerError

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {  # path -> (file in STATIC, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/playground.css": ("playground.css", "text/css; charset=utf-8"),
}
FIELDS_PATH = "/api/fields"
STOP_PATH = "/playground/stop"
STREAM_HEADER = "X-Playground-Stream"  # the page's id for a stream it may stop
LM = "lm"  # the model whose streams hold rows (handlers/lm)
RELEASE = {"prompt": "\n", "max_new_tokens": 1, "temperature": 0}
UPSTREAM_TIMEOUT = 180.0  # seconds without a byte from TorchServe (its responseTimeout: 120)
STOP_WAIT = 15.0  # seconds /playground/stop waits for the cut stream to be released
CHUNK = 64 * 1024
SECURITY_HEADERS = {
    # Only this origin's own files; no inline script, no frames, nothing from outside.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def declared_fields() -> dict[str, dict[str, Any]]:
    """Each served model's request fields as JSON Schema properties (defaults, limits, docs),
    from the declarations that validate requests (handlers/*/api.py via handlers.openapi).

    Generated in a child process: the api modules import torch, which this long-running
    process has no other use for (it would hold ~200 MB for nothing)."""
    text = subprocess.run(
        [sys.executable, "-m", "handlers.openapi"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    document = json.loads(text)
    fields = {}
    for model in registry.names():
        body = document["paths"][f"/predictions/{model}"]["post"]["requestBody"]
        reference = body["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][reference.rsplit("/", 1)[1]]
        fields[model] = schema["properties"]
    return fields


class Relay:
    """One forwarded request, which another thread may cut (`cancel`)."""

    def __init__(self) -> None:
        self.upstream: http.client.HTTPConnection | None = None
        self.cancelled = threading.Event()
        self.done = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()
        sock = self.upstream.sock if self.upstream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):  # wakes the relaying thread's read at once
                sock.shutdown(socket.SHUT_RDWR)


class PlaygroundServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, run_dir: Path, token: str, fields: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", port), PlaygroundHandler)
        self.port = self.server_address[1]
        self.run_dir = Path(run_dir)
        self.token = token
        self.fields_json = json.dumps(fields).encode()
        self.hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.cookie = f"playground_{self.port}"  # cookies ignore ports: one name per server
        self.relays: dict[str, Relay] = {}
        self.relays_lock = threading.Lock()

    def release_rows(self, connection: Connection) -> None:
        """One short request, so that TorchServe calls the LM handler once more and it drops
        the rows of the streams just cut (see the module's docstring)."""
        try:
            url = urlsplit(connection.inference_url)
            upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            headers = {"Content-Type": "application/json", **connection.inference_headers()}
            upstream.request("POST", f"/predictions/{LM}", json.dumps(RELEASE), headers)
            upstream.getresponse().read()
            upstream.close()
        except (OSError, http.client.HTTPException) as exc:
            sys.stderr.write(f"releasing cut rows failed: {exc}\n")


class PlaygroundHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: PlaygroundServer

    # --- answers -------------------------------------------------------------------------

    def _start(self, status: int, content_type: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))

    def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self._start(status, content_type, len(body))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, field: str, message: str) -> None:
        """An error shaped as the API's own (``{"error", "field", "code"}``). The connection
        closes after it: a refused request's body may still be unread."""
        body = json.dumps(RequestError(field, message, status).to_json()).encode()
        self.close_connection = True
        self._send(status, body, "application/json", Connection="close")

    def log_message(self, format: str, *args: Any) -> None:
        # The first request's query holds the token: it never reaches the log.
        line = (format % args).replace(self.server.token, "<token>")
        sys.stderr.write(f"{self.log_date_time_string()} {line}\n")

    # --- who may ask ---------------------------------------------------------------------

    def _allowed(self, needs_origin: bool) -> bool:
        if self.headers.get("Host") not in self.server.hosts:
            self._error(403, "Host", "the playground answers only 127.0.0.1 and localhost")
            return False
        if needs_origin and self.headers.get("Origin") not in self.server.origins:
            self._error(403, "Origin", "only the playground's own page may send requests")
            return False
        return True

    def _has_cookie(self) -> bool:
        cookies = SimpleCookie(self.headers.get("Cookie", ""))
        morsel = cookies.get(self.server.cookie)
        return morsel is not None and self._is_token(morsel.value)

    def _is_token(self, text: str) -> bool:
        return hmac.compare_digest(text.encode(), self.server.token.encode())

    def _refuse_without_cookie(self) -> bool:
        if self._has_cookie():
            return False
        self._error(403, "token", "open the URL that `make playground` printed (it holds a token)")
        return True

    # --- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._allowed(needs_origin=False):
            return
        url = urlsplit(self.path)
        token = parse_qs(url.query).get("token", [""])[0]
        if url.path == "/" and token:
            if not self._is_token(token):
                self._error(403, "token", "wrong token: open the URL `make playground` printed")
                return
            cookie = f"{self.server.cookie}={token}; HttpOnly; SameSite=Strict; Path=/"
            self._send(303, b"", "text/plain", Location="/", Set_Cookie=cookie)
            return
        if url.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        if self._refuse_without_cookie():
            return
        if url.path == FIELDS_PATH:
            self._send(200, self.server.fields_json, "application/json")
        elif url.path in PAGES:
            name, content_type = PAGES[url.path]
            self._send(200, (STATIC / name).read_bytes(), content_type)
        else:
            self._error(404, "url", f"no such page: {url.path}")

    def do_POST(self) -> None:
        if not self._allowed(needs_origin=True) or self._refuse_without_cookie():
            return
        path = urlsplit(self.path).path
        body = self._read_body()
        if body is None:
            return
        if path == STOP_PATH:
            self._stop(body)
            return
        model = path.removeprefix("/predictions/")
        if model not in registry.names() or path != f"/predictions/{model}":
            self._error(404, "url", f"the playground forwards only /predictions/<model>: {path}")
            return
        self._forward(model, body)

    def _read_body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            self._error(411, "body", "send a Content-Length")
            return None
        if length > MAX_BODY_BYTES:
            self._error(413, "body", f"is {length:,} bytes; the limit is {MAX_BODY_BYTES:,} bytes")
            return None
        return self.rfile.read(length)

    def _stop(self, body: bytes) -> None:
        """Cut the page's stream ``{"stream": id}`` and answer once its row is released."""
        try:
            stream = json.loads(body)["stream"]
        except (ValueError, KeyError, TypeError):
            self._error(400, "stream", 'send {"stream": "<the id the page sent>"}')
            return
        with self.server.relays_lock:
            relay = self.server.relays.get(str(stream))
        if relay is not None:
            relay.cancel()
            relay.done.wait(STOP_WAIT)
        answer = {"stopped": relay is not None}
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _forward(self, model: str, body: bytes) -> None:
        try:
            connection = Connection.from_run_dir(self.server.run_dir)
        except (ServerError, OSError, ValueError, KeyError) as exc:
            self._error(503, "server", str(exc))
            return
        stream = self.headers.get(STREAM_HEADER)
        relay = Relay()
        if stream:
            with self.server.relays_lock:
                self.server.relays[stream] = relay
        try:
            completed = self._relay(relay, connection, model, body)
            if not completed or relay.cancelled.is_set():
                self.close_connection = True  # the answer was cut or never sent
            if not completed and model == LM:
                self.server.release_rows(connection)
        finally:
            if stream:
                with self.server.relays_lock:
                    self.server.relays.pop(stream, None)
            relay.done.set()

    def _relay(self, relay: Relay, connection: Connection, model: str, body: bytes) -> bool:
        """Pass TorchServe's answer on, chunk by chunk; False when the answer was cut short
        (Stop, the page went away, or TorchServe did)."""
        url = urlsplit(connection.inference_url)
        upstream = http.client.HTTPConnection(url.hostname, url.port, timeout=UPSTREAM_TIMEOUT)
        relay.upstream = upstream
        headers = {"Content-Type": "application/json", **connection.inference_headers()}
        try:
            if relay.cancelled.is_set():
                return True  # stopped before it was sent: nothing runs upstream
            upstream.request("POST", f"/predictions/{model}", body, headers)
            reply = upstream.getresponse()
        except OSError as exc:
            upstream.close()
            if relay.cancelled.is_set():
                return False  # cut while TorchServe held it: its row may be running
            where = connection.inference_url
            self._error(502, "server", f"could not reach TorchServe at {where}: {exc}")
            return True
        try:
            return self._pass_on(reply) and not relay.cancelled.is_set()
        finally:
            upstream.close()

    def _pass_on(self, reply: http.client.HTTPResponse) -> bool:
        content_type = reply.getheader("Content-Type", "application/json")
        if not reply.chunked:
            try:
                data = reply.read()
            except (OSError, http.client.HTTPException):
                return False
            self._start(reply.status, content_type, len(data))
            self.end_headers()
            self.wfile.write(data)
            return True
        self._start(reply.status, content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            try:
                data = reply.read1(CHUNK)
            except (OSError, http.client.HTTPException):
                return False
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            except OSError:
                return False  # the page went away
            if not data:
                return True  # that was the closing zero-length chunk
