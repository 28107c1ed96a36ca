"""The dashboard (as `curation-dashboard` starts it) or another Streamlit script on a free loopback port,
for the browser tests and the benchmarks: started, awaited until it answers its health check, and
stopped by its own process handle."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dashboard.launch import APP, streamlit_command


@dataclass(frozen=True)
class Served:
    url: str
    started: float  # time.perf_counter() when the process was started
    health_s: float  # seconds until /_stcore/health answered
    pid: int = 0  # the server's process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def serve(
    log_path: Path,
    env: Mapping[str, str] | None = None,
    script: Path = APP,
    timeout_s: float = 120.0,
    address: str | None = "127.0.0.1",
) -> Iterator[Served]:
    """Run ``script`` with Streamlit until the block ends; RuntimeError (with the log's tail) if it
    exits or stays silent for ``timeout_s``. The dashboard's app starts with `curation-dashboard`'s
    command and defaults, and ``address=None`` leaves the address to those defaults (what a test of
    that default needs); another script runs bare, from its own folder."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    flags = [
        "--server.headless",
        "true",
        *(["--server.address", address] if address else []),
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    if script == APP:
        command, cwd = streamlit_command(flags), None
    else:
        command, cwd = [sys.executable, "-m", "streamlit", "run", str(script), *flags], script.parent
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not healthy(url):
            if process.poll() is not None or time.perf_counter() - started > timeout_s:
                state = (
                    f"exited with {process.returncode}"
                    if process.poll() is not None
                    else f"did not answer within {timeout_s:g} s"
                )
                raise RuntimeError(f"streamlit {state} on {url}:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield Served(url, started, time.perf_counter() - started, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
