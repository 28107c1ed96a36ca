"""Fetching a released metadata.json: served from a local HTTP server on 127.0.0.1, never the internet."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metadata.cli import main
from metadata.fetch import FetchError, cache_name, fetch

ENTRIES = ["dog", "hot dog", "new york", "Café", "0", "1"]
GOOD = json.dumps(ENTRIES, ensure_ascii=False).encode("utf-8")
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()


class Server:
    """A local server; ``routes`` maps a path to (status, body, declared length or None)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, int | None]] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                status, body, declared = server.routes.get(self.path, (404, b"not found", None))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body) if declared is None else declared))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def server() -> Iterator[Server]:
    instance = Server()
    instance.routes = {
        "/metadata.json": (200, GOOD, None),
        "/short.json": (200, GOOD[:10], len(GOOD)),  # declares more than it sends
        "/dict.json": (200, b'{"entries": ["a"]}', None),
        "/repeats.json": (200, b'["a", "b", "a"]', None),
        "/empty-entry.json": (200, b'["a", ""]', None),
        "/broken.json": (200, b'["a", ', None),
    }
    instance.thread.start()
    yield instance
    instance.httpd.shutdown()
    instance.httpd.server_close()


def free_port() -> int:
    """A port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def leftovers(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.exists() else []


@pytest.mark.remote
def test_download_verifies_and_records(tmp_path, server):
    result = fetch(server.url("/metadata.json"), tmp_path, progress=False)
    assert result.downloaded and result.entries == len(ENTRIES) and result.sha256 == GOOD_SHA
    assert result.path.read_bytes() == GOOD and result.size == len(GOOD)
    record = json.loads(result.path.with_name(result.path.name + ".fetch.json").read_text())
    assert record["sha256"] == GOOD_SHA and record["bytes"] == len(GOOD) and record["entries"] == 6
    assert record["verified"]["content_length"] is True
    assert leftovers(tmp_path) == sorted([result.path.name, result.path.name + ".fetch.json"])


@pytest.mark.remote
def test_expected_checksum_and_size_are_checked(tmp_path, server):
    result = fetch(
        server.url("/metadata.json"),
        tmp_path,
        expected_sha256=GOOD_SHA.upper(),
        expected_size=len(GOOD),
        progress=False,
    )
    assert result.sha256 == GOOD_SHA


@pytest.mark.remote
def test_a_verified_copy_is_reused_and_force_downloads_again(tmp_path, server):
    fetch(server.url("/metadata.json"), tmp_path, progress=False)
    again = fetch(server.url("/metadata.json"), tmp_path, progress=False)
    assert not again.downloaded and len(server.requests) == 1
    forced = fetch(server.url("/metadata.json"), tmp_path, force=True, progress=False)
    assert forced.downloaded and len(server.requests) == 2


@pytest.mark.remote
def test_a_tampered_cache_is_downloaded_again(tmp_path, server):
    first = fetch(server.url("/metadata.json"), tmp_path, progress=False)
    first.path.write_bytes(b'["changed"]')
    again = fetch(server.url("/metadata.json"), tmp_path, progress=False)
    assert again.downloaded and again.path.read_bytes() == GOOD


@pytest.mark.remote
def test_checksum_mismatch_leaves_nothing_in_the_cache(tmp_path, server):
    with pytest.raises(FetchError) as error:
        fetch(server.url("/metadata.json"), tmp_path, expected_sha256="0" * 64, progress=False)
    assert "checksum mismatch" in str(error.value) and GOOD_SHA in str(error.value)
    assert leftovers(tmp_path) == []


@pytest.mark.remote
def test_size_mismatch_and_short_download(tmp_path, server):
    with pytest.raises(FetchError, match="expected 1,000,000"):
        fetch(server.url("/metadata.json"), tmp_path, expected_size=1_000_000, progress=False)
    with pytest.raises(FetchError, match="ended"):
        fetch(server.url("/short.json"), tmp_path, progress=False)
    assert leftovers(tmp_path) == []


@pytest.mark.remote
@pytest.mark.parametrize(
    "path, words",
    [
        ("/dict.json", "not a list"),
        ("/repeats.json", "repeated"),
        ("/empty-entry.json", "item 1"),
        ("/broken.json", "not valid JSON"),
        ("/missing.json", "HTTP 404"),
    ],
)
def test_content_that_is_not_a_usable_list_is_refused(tmp_path, server, path, words):
    with pytest.raises(FetchError) as error:
        fetch(server.url(path), tmp_path, progress=False)
    assert words in str(error.value) and "\n" not in str(error.value)
    assert leftovers(tmp_path) == []


def test_server_down_gives_a_clear_offline_message(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/metadata.json"
    with pytest.raises(FetchError) as error:
        fetch(url, tmp_path, timeout=5, progress=False)
    message = str(error.value)
    assert message.startswith(f"cannot download {url}") and "offline" in message and "\n" not in message


def test_cache_names_do_not_collide():
    assert cache_name("https://a.example/x/metadata.json") != cache_name("https://b.example/x/metadata.json")
    assert cache_name("https://a.example/x/metadata.json").endswith("-metadata.json")


@pytest.mark.remote
def test_cli_prints_the_path_and_fails_with_exit_code_1_when_offline(tmp_path, server, capsys):
    code = main(["fetch", "--url", server.url("/metadata.json"), "--cache-dir", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out.strip()
    assert code == 0 and Path(out).read_bytes() == GOOD
    code = main(
        [
            "fetch",
            "--url",
            f"http://127.0.0.1:{free_port()}/m.json",
            "--cache-dir",
            str(tmp_path),
            "--quiet",
            "--timeout",
            "5",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: cannot download") and len(err.strip().splitlines()) == 1
    code = main(
        [
            "fetch",
            "--url",
            server.url("/metadata.json"),
            "--cache-dir",
            str(tmp_path / "other"),
            "--sha256",
            "1" * 64,
            "--quiet",
        ]
    )
    assert code == 1 and "checksum mismatch" in capsys.readouterr().err
