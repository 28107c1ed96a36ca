"""Processes seen from /proc: killing a real run with everything it started (the kill tests' one way to
do it), a job's process group, and the addresses a server listens on."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), to make sure none outlives the test."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent = int(Path(f"/proc/{entry.name}/stat").read_bytes().rpartition(b")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state != b"Z"


def environment_once_set(pid: int, marker: bytes, seconds: float = 30.0) -> list[bytes]:
    """The environment of ``pid`` once it holds ``marker``. Popen returns once exec has passed its point
    of no return, a moment before the new image's environment is in place, so read until it is. (Not
    SIGSTOP: a shell stopped while its vfork child has not yet exec'd never reaches the stopped state.)"""
    deadline = time.monotonic() + seconds
    while True:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if marker in environ:
            return environ
        assert time.monotonic() < deadline, f"process {pid} had no {marker!r} in its environment within {seconds} s"
        time.sleep(0.001)


def start_run(args: list[object], **options: object) -> subprocess.Popen:
    """`python -m curation ARGS` from the repository, in a session of its own (so ``kill_when`` kills it
    with everything it starts), its stdout dropped and its stderr kept for the test's messages."""
    streams = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, **options}
    return subprocess.Popen(
        [sys.executable, "-m", "curation", *map(str, args)],
        cwd=Path(__file__).resolve().parents[1],
        start_new_session=True,
        **streams,
    )


def kill_when(
    process: subprocess.Popen, ready: Callable[[], bool], seconds: float = 90.0, poll_s: float = 0.01
) -> list[int]:
    """SIGKILL a run (started with ``start_new_session=True``) once ``ready()`` holds, then wait for
    every process it started to die. Returns those that outlived it by 30 s (killed then): a test
    asserts there are none. Ray's own processes die with the process that started them; a worker may
    still finish the shard it holds meanwhile, so callers count outputs after this returns. ``ready``
    is asked every ``poll_s``: a question to a server costs the server, which the run shares cores with."""
    family: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None and not ready():
        family |= descendants(process.pid)
        time.sleep(poll_s)
    family |= descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the run ended on its own (the caller's assertions say so): nothing to kill
        pass
    process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(pid) for pid in family):
        time.sleep(0.1)
    leftovers = [pid for pid in family if alive(pid)]
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    return leftovers


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group, read from /proc independently of curation/jobs.py."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_bytes().rpartition(b")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":
                found.append(int(entry.name))
    return found


def proc_address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    return str(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))


def listening_addresses(pid: int, port: int) -> list[str]:
    """The local addresses of the sockets that process ``pid`` listens on at ``port``, IPv4 and IPv6."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed between the listing and the read: the server is busy
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            hex_address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and fields[9] in inodes and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(proc_address(hex_address))
    return found
