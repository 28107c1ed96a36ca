"""Where `streamlit run dashboard/app.py` listens when nothing on its command line says: a real server,
started by the test from the project root, its listening sockets read from /proc."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path

import pytest

from dashboard.local_server import PROJECT, serve


def _address(hex_address: str) -> str:
    """An address as /proc/net/tcp{,6} writes it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hex_address)
    return str(ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))))


def listening_addresses(pid: int, port: int) -> list[str]:
    """The local addresses of the sockets that process ``pid`` listens on at ``port``, IPv4 and IPv6."""
    inodes = {
        os.readlink(fd)[len("socket:[") : -1]
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if os.readlink(fd).startswith("socket:[")
    }
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            hex_address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and fields[9] in inodes and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(_address(hex_address))
    return found


def test_the_address_decoder_reads_proc_net_tcp() -> None:
    assert _address("0100007F") == "127.0.0.1" and _address("00000000") == "0.0.0.0"
    assert _address("00000000000000000000000001000000") == "::1"


def test_by_default_the_dashboard_listens_on_loopback_only(tmp_path: Path) -> None:
    config = tomllib.loads((PROJECT / ".streamlit" / "config.toml").read_text())
    if config.get("server", {}).get("address") != "127.0.0.1":  # never start a server on every interface here
        pytest.fail("the project config does not set server.address = 127.0.0.1", pytrace=False)
    env = {**os.environ, "CURATION_RUNS_DIR": str(tmp_path / "runs"), "CURATION_EXPORT_DIR": str(tmp_path / "exports")}
    with serve(tmp_path / "streamlit.log", env, timeout_s=60, address=None) as served:
        port = int(served.url.rsplit(":", 1)[1])
        addresses = listening_addresses(served.pid, port)
    assert addresses == ["127.0.0.1"], addresses
