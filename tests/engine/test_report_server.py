"""`hean engine serve-reports`: only files under the report directory, never anything else.

The server runs on loopback in a thread; requests are sent raw (http.client), so
that paths a client library would normalise (`/../`) reach the server as written.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hean_engine.app.report_server import (
    HEADERS,
    Refused,
    ReportFiles,
    make_server,
    resolve,
    watch_idle,
)
from hean_engine.cli import main


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A report directory inside a volume that holds other Backtests' files and a secret."""
    root = tmp_path / "volume" / "reports" / "ns" / "bt" / "abcd1234"
    root.mkdir(parents=True)
    (root / "0.html").write_text("<html><body>report 0</body></html>", encoding="utf-8")
    (root / "0.json").write_text('{"fills": 3}', encoding="utf-8")
    (root / ".1.html.123").write_text("half written", encoding="utf-8")
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("nested", encoding="utf-8")
    (tmp_path / "volume" / "secret.txt").write_text("not yours", encoding="utf-8")
    (root / "escape.html").symlink_to(tmp_path / "volume" / "secret.txt")
    return root


@pytest.fixture
def server(tree: Path) -> Iterator[tuple[str, int]]:
    files = ReportFiles(tree)
    httpd = make_server(files, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_port
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def request(
    address: tuple[str, int], path: str, method: str = "GET"
) -> tuple[int, bytes, dict[str, str]]:
    connection = http.client.HTTPConnection(*address, timeout=5)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


def test_a_report_is_served_with_its_type_and_a_no_script_policy(
    server: tuple[str, int],
) -> None:
    status, body, headers = request(server, "/0.html")
    assert (status, body) == (200, b"<html><body>report 0</body></html>")
    # a download, which the API server's proxy passes through unchanged (not text/html)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"] == 'attachment; filename="0.html"'
    assert headers["Content-Security-Policy"] == HEADERS["Content-Security-Policy"]
    assert "sandbox" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert request(server, "/0.json")[:2] == (200, b'{"fills": 3}')
    assert request(server, "/sub/a.txt")[:2] == (200, b"nested")


def test_health_and_the_listing_leave_hidden_and_escaping_files_out(
    server: tuple[str, int],
) -> None:
    assert request(server, "/healthz")[:2] == (200, b"ok\n")
    status, body, _ = request(server, "/")
    assert status == 200
    assert json.loads(body) == {"files": ["0.html", "0.json", "sub/a.txt"]}


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/../../../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/../../secret.txt",
        "/..%2fsecret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%5csecret.txt",
        "/sub\\..\\..\\secret.txt",
        "/./0.html",
        "/0.html%00.txt",
        "/.1.html.123",
    ],
)
def test_traversal_and_hidden_files_are_refused(server: tuple[str, int], path: str) -> None:
    status, body, _ = request(server, path)
    assert status == 400, (path, body)
    assert b"not yours" not in body


@pytest.mark.parametrize("path", ["/missing.html", "/sub", "/escape.html", "/0.html/x"])
def test_missing_directories_and_symlinks_out_of_the_directory_are_not_found(
    server: tuple[str, int], path: str
) -> None:
    status, body, _ = request(server, path)
    assert status == 404, (path, body)
    assert b"not yours" not in body


def test_absolute_form_and_query_strings_do_not_change_the_file(
    server: tuple[str, int], tree: Path
) -> None:
    assert request(server, "/0.html?x=/../secret.txt")[:2] == (
        200,
        b"<html><body>report 0</body></html>",
    )
    status, body, _ = request(server, f"/{tree.parent.parent}/secret.txt")
    assert status == 404 and b"not yours" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_it_is_read_only(server: tuple[str, int], tree: Path, method: str) -> None:
    assert request(server, "/0.html", method)[0] == 405
    assert (tree / "0.html").read_text(encoding="utf-8").startswith("<html>")


def test_head_answers_without_a_body(server: tuple[str, int]) -> None:
    status, body, headers = request(server, "/0.html", "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len("<html><body>report 0</body></html>"))


def test_resolve_alone(tree: Path) -> None:
    root = tree.resolve()
    assert resolve(root, "/0.html") == root / "0.html"
    with pytest.raises(Refused) as refused:
        resolve(root, "/..")
    assert refused.value.status == 400
    with pytest.raises(Refused) as missing:
        resolve(root, "/")
    assert missing.value.status == 404


def test_a_missing_directory_serves_nothing(tmp_path: Path) -> None:
    files = ReportFiles(tmp_path / "absent")
    assert files.listing() == []
    with pytest.raises(Refused) as missing:
        resolve(files.root, "/0.html")
    assert missing.value.status == 404


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeServer:
    def __init__(self) -> None:
        self.stopped = False

    def shutdown(self) -> None:
        self.stopped = True


class SteppingStop(threading.Event):
    """A stop event whose wait advances the fake clock instead of sleeping."""

    def __init__(self, clock: FakeClock, files: ReportFiles, touch_at: set[float]) -> None:
        super().__init__()
        self.clock, self.files, self.touch_at = clock, files, touch_at
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(self.clock.now)
        self.clock.now += timeout
        if self.clock.now in self.touch_at:
            self.files.touch()
        return False


def test_the_server_ends_after_the_idle_time_counted_from_the_last_request(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    files = ReportFiles(tmp_path, clock=clock)
    stop = SteppingStop(clock, files, touch_at={110.0})  # a request at t=110
    server = FakeServer()
    watch_idle(server, files, 30.0, stop)  # type: ignore[arg-type]
    assert server.stopped
    # checks every 5 s; idle from 110: shut down at the first check at or after 140
    assert clock.now == 140.0


def test_the_command_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            [
                "engine",
                "serve-reports",
                "--dir",
                str(tmp_path),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
        )
    assert result.exit_code == 1
    assert f"--port: cannot listen on 127.0.0.1:{port}" in result.stderr
