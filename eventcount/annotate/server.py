"""The local web server of `eventcount annotate`: the page, its assets and a small JSON API (standard library).

Only the session's clips can be read: they are addressed by index (`/api/clips/<i>`), never by path;
paths with `..`, `//`, backslashes or encoded separators are refused (400) and anything else unknown is 404.
"""

from __future__ import annotations

import json
import logging
import re
import webbrowser
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote

from eventcount.annotate.app import Annotation, NotFound
from eventcount.errors import EventcountError

log = logging.getLogger("eventcount")

STATIC = {"annotate.js": "text/javascript; charset=utf-8", "annotate.css": "text/css; charset=utf-8"}
MAX_BODY = 1 << 20
LOOPBACK = {"127.0.0.1", "localhost", "[::1]"}
ROUTES = [
    ("GET", re.compile(r"/"), "page"),
    ("GET", re.compile(r"/static/([a-z]+\.(?:js|css))"), "static"),
    ("GET", re.compile(r"/api/state"), "state"),
    ("GET", re.compile(r"/api/clips/([0-9]{1,9})"), "clip"),
    ("GET", re.compile(r"/api/clips/([0-9]{1,9})/audio\.wav"), "audio"),
    ("POST", re.compile(r"/api/clips/([0-9]{1,9})/answer"), "answer"),
]


class Refused(Exception):
    """A request answered with an HTTP error status."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def route(method: str, target: str) -> tuple[str, str | None]:
    """(handler name, captured index or file name) for a request target; `Refused` for anything else."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    decoded = unquote(path)
    segments = decoded.split("/")
    if (not path.startswith("/") or "\\" in decoded or "\x00" in decoded or "//" in decoded or ".." in segments
            or decoded != path):
        raise Refused(HTTPStatus.BAD_REQUEST, "clips are addressed by index; paths are not accepted")
    for verb, pattern, name in ROUTES:
        match = pattern.fullmatch(path)
        if match:
            if verb != method:
                raise Refused(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
            return name, match.group(1) if match.groups() else None
    raise Refused(HTTPStatus.NOT_FOUND, f"no such page: {path}")


class Handler(BaseHTTPRequestHandler):
    """One request: checks the Host header (no DNS rebinding), routes, and answers with JSON or bytes."""

    server: AnnotationServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  (the standard library's naming)
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.debug("annotate: " + format, *args)

    def _handle(self, method: str) -> None:
        try:
            self._check_host()
            name, argument = route(method, self.path)
            getattr(self, f"_{name}")(argument)
        except Refused as refusal:
            self._json({"error": str(refusal)}, refusal.status)
        except NotFound as error:
            self._json({"error": str(error)}, HTTPStatus.NOT_FOUND)
        except EventcountError as error:
            self._json({"error": str(error)}, HTTPStatus.BAD_REQUEST)
        except ConnectionError:  # the page went on (a clip's audio no longer wanted) or was closed
            self.close_connection = True
        except OSError as error:  # the disk is full or gone: the page says so (and that the answer was not saved)
            log.error("annotate: %s", error)
            prefix = "not saved: " if method == "POST" else ""
            self._json({"error": f"{prefix}{error.strerror or error}"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def _check_host(self) -> None:
        if self.server.check_host:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if host not in LOOPBACK:
                raise Refused(HTTPStatus.FORBIDDEN, f"unexpected Host {host!r}; open the page at {self.server.url}")

    def _page(self, _: str | None) -> None:
        self._send(_asset("index.html"), "text/html; charset=utf-8")

    def _static(self, name: str | None) -> None:
        if name not in STATIC:
            raise Refused(HTTPStatus.NOT_FOUND, f"no such file: {name}")
        self._send(_asset(name), STATIC[name])

    def _state(self, _: str | None) -> None:
        self._json(self.server.annotation.state())

    def _clip(self, index: str | None) -> None:
        self._json(self.server.annotation.clip(int(index or 0)))

    def _audio(self, index: str | None) -> None:
        data = self.server.annotation.audio(int(index or 0))
        self._send(data, "audio/wav", cache=True)

    def _answer(self, index: str | None) -> None:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "answers are sent as application/json")
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            raise Refused(HTTPStatus.BAD_REQUEST, "an answer needs a JSON body of at most 1 MiB")
        try:
            body = json.loads(self.rfile.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise Refused(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({error})") from None
        self._json(self.server.annotation.answer(int(index or 0), body))

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(data, separators=(",", ":")).encode(), "application/json", status)

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK, cache: bool = False) -> None:
        start, end = 0, len(body)
        span = byte_range(self.headers.get("Range"), len(body)) if status == HTTPStatus.OK and cache else None
        if span is not None:  # media elements ask for byte ranges
            start, end = span
            status = HTTPStatus.PARTIAL_CONTENT if start < end else HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if cache:
            self.send_header("Accept-Ranges", "bytes")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(body)}")
        payload = body[start:end] if status != HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE else b""
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `Range: bytes=a-b` (or `bytes=-n`, the last n bytes) header; None without one."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if not match or not any(match.groups()):
        return None
    first, last = match.groups()
    if not first:
        return max(0, size - int(last)), size
    return int(first), min(int(last) + 1 if last else size, size)


def _asset(name: str) -> bytes:
    return (resources.files("eventcount.annotate") / "static" / name).read_bytes()


class AnnotationServer(ThreadingHTTPServer):
    """A threading HTTP server holding the session; `url` is where the page is."""

    daemon_threads = True

    def __init__(self, annotation: Annotation, host: str = "127.0.0.1", port: int = 0) -> None:
        try:
            super().__init__((host, port), Handler)
        except OSError as error:
            raise EventcountError(f"cannot listen on {host}:{port} ({error.strerror or error}); "
                                  "give another --port") from None
        self.annotation = annotation
        self.check_host = host in LOOPBACK or host == "::1"
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"http://{shown}:{self.server_address[1]}/"


def serve(annotation: Annotation, host: str = "127.0.0.1", port: int = 0, open_browser: bool = True,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the page until Ctrl-C (every answer is already saved when it stops)."""
    server = AnnotationServer(annotation, host, port)
    if on_ready is not None:
        on_ready(server.url)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
