"""`hean engine serve-reports`: a read-only HTTP file server for a Backtest's report directory.

Why it exists: a Backtest's full report is on its output volume (a
PersistentVolumeClaim), which neither `kubectl hean` nor the API server can
read. The desk starts a short-lived "reader" pod with the claim mounted
read-only, running this server, and fetches the report through the API
server's pod proxy, with the user's own credentials and RBAC.

What it serves, and nothing else:
- `GET /healthz`: `ok` (the pod's readiness probe);
- `GET /`: the report files in the directory, as JSON (`{"files": [...]}`);
- `GET /NAME`: one regular file under the directory, as a download
  (application/octet-stream: the pod proxy passes it through unchanged).
A path with a `..` or `.` segment, a backslash, a NUL, an encoded slash, or a
hidden name (a run writing a file aside) is refused with 400; a path whose
real location (symlinks followed) is outside the directory, or that is not a
regular file, is 404. Only GET and HEAD exist (405 otherwise): nothing is ever
written. Standard library only: it runs in any image derived from the engine's.

It ends by itself after `idle` seconds without a request, so a reader pod a
crashed client left behind stops costing a node anything.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Every file is a download, byte for byte: the API server's pod proxy rewrites a
# text/html answer (it re-renders it with Go's HTML parser, which lowercases SVG's
# `viewBox`, and rewrites links), and a page rendered through the proxy would run
# in the API server's origin. The desk serves the bytes as HTML itself.
FILE_TYPE = "application/octet-stream"
# Should a browser render something anyway: no script, nothing loaded.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CHECK_SECONDS = 5.0  # how often the idle watch looks


class Refused(Exception):
    """A request path the server will not serve: `status` and a reason for the client."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def resolve(root: Path, url_path: str) -> Path:
    """The file `url_path` names under `root`; Refused (400 or 404) otherwise.

    `root` must be absolute and already resolved (ReportFiles does it once)."""
    raw = urlsplit(url_path).path
    if "%2f" in raw.lower() or "%5c" in raw.lower():
        raise Refused(HTTPStatus.BAD_REQUEST, "encoded slashes are refused")
    path = unquote(raw)
    if "\x00" in path or "\\" in path:
        raise Refused(HTTPStatus.BAD_REQUEST, "refused: NUL or backslash in the path")
    parts = [p for p in path.split("/") if p != ""]
    if not parts:
        raise Refused(HTTPStatus.NOT_FOUND, "no file named")
    for part in parts:
        if part in (".", ".."):
            raise Refused(HTTPStatus.BAD_REQUEST, "refused: '.' and '..' are not paths here")
        if part.startswith("."):
            raise Refused(HTTPStatus.BAD_REQUEST, "refused: hidden names are not served")
    candidate = root.joinpath(*parts)
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise Refused(HTTPStatus.NOT_FOUND, f"no file {'/'.join(parts)}") from None
    except (OSError, RuntimeError):  # a symlink loop, a permission problem
        raise Refused(HTTPStatus.NOT_FOUND, f"no file {'/'.join(parts)}") from None
    if not real.is_relative_to(root) or not real.is_file():
        raise Refused(HTTPStatus.NOT_FOUND, f"no file {'/'.join(parts)}")
    return real


@dataclass
class ReportFiles:
    """The served directory, and when it was last asked for something."""

    root: Path
    clock: Callable[[], float] = time.monotonic
    last_request: float = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.root.resolve()
        self.last_request = self.clock()

    def touch(self) -> None:
        self.last_request = self.clock()

    def idle_for(self) -> float:
        return self.clock() - self.last_request

    def listing(self) -> list[str]:
        """The servable files, relative to the root, sorted (hidden ones left out)."""
        if not self.root.is_dir():
            return []
        names = []
        for path in self.root.rglob("*"):
            relative = path.relative_to(self.root)
            if any(part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and path.resolve().is_relative_to(self.root):
                names.append(relative.as_posix())
        return sorted(names)


def _handler(files: ReportFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "hean-reports"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            # One line per request, without the client's address (a pod proxy's).
            print(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}", flush=True)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _refuse_method(self) -> None:
            self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"read-only\n", "text/plain", True)

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse_method

        def _answer(self, body: bool) -> None:
            files.touch()
            path = urlsplit(self.path).path
            if path == "/healthz":
                self._send(HTTPStatus.OK, b"ok\n", "text/plain", body)
                return
            if path == "/":
                listing = json.dumps({"files": files.listing()}).encode()
                self._send(HTTPStatus.OK, listing, "application/json", body)
                return
            try:
                found = resolve(files.root, self.path)
                content = found.read_bytes()
            except Refused as exc:
                self._send(exc.status, f"{exc.reason}\n".encode(), "text/plain", body)
                return
            except OSError:
                self._send(HTTPStatus.NOT_FOUND, b"unreadable\n", "text/plain", body)
                return
            download = {"Content-Disposition": f'attachment; filename="{found.name}"'}
            self._send(HTTPStatus.OK, content, FILE_TYPE, body, download)

        def _send(
            self,
            status: HTTPStatus,
            content: bytes,
            kind: str,
            body: bool,
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(content)))
            for name, value in {**HEADERS, **(extra or {})}.items():
                self.send_header(name, value)
            self.end_headers()
            if body:
                self.wfile.write(content)

    return Handler


def make_server(files: ReportFiles, host: str, port: int) -> ThreadingHTTPServer:
    """The server, bound (port 0: any free one), not yet serving."""
    server = ThreadingHTTPServer((host, port), _handler(files))
    server.daemon_threads = True
    return server


def watch_idle(
    server: ThreadingHTTPServer, files: ReportFiles, idle: float, stop: threading.Event
) -> None:
    """Shut `server` down once `files` saw no request for `idle` seconds (or `stop` is set)."""
    while not stop.wait(min(CHECK_SECONDS, idle)):
        if files.idle_for() >= idle:
            break
    server.shutdown()


def serve(root: Path, host: str, port: int, idle: float) -> None:
    """Serve `root` until `idle` seconds pass without a request, or SIGTERM."""
    import signal

    files = ReportFiles(root)
    server = make_server(files, host, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    watcher = threading.Thread(target=watch_idle, args=(server, files, idle, stop), daemon=True)
    watcher.start()
    print(
        json.dumps({"serving": str(files.root), "address": f"{host}:{server.server_port}"}),
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        stop.set()
        server.server_close()
