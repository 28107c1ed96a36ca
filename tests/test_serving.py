"""Where the dashboard listens when nothing on its command line says: a real server started as
`curation-dashboard` starts it, its listening sockets read from /proc; and the defaults it passes."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from processes import listening_addresses, proc_address

from dashboard.launch import CONFIG, streamlit_command
from dashboard.local_server import serve

PROJECT = Path(__file__).resolve().parents[1]


def test_the_address_decoder_reads_proc_net_tcp() -> None:
    assert proc_address("0100007F") == "127.0.0.1" and proc_address("00000000") == "0.0.0.0"
    assert proc_address("00000000000000000000000001000000") == "::1"


@pytest.mark.slow
def test_by_default_the_dashboard_listens_on_loopback_only(tmp_path: Path) -> None:
    config = tomllib.loads(CONFIG.read_text())
    if config.get("server", {}).get("address") != "127.0.0.1":  # never start a server on every interface here
        pytest.fail("the project config does not set server.address = 127.0.0.1", pytrace=False)
    env = {**os.environ, "CURATION_RUNS_DIR": str(tmp_path / "runs"), "CURATION_EXPORT_DIR": str(tmp_path / "exports")}
    with serve(tmp_path / "streamlit.log", env, timeout_s=60, address=None) as served:
        port = int(served.url.rsplit(":", 1)[1])
        addresses = listening_addresses(served.pid, port)
    assert addresses == ["127.0.0.1"], addresses


def test_the_launcher_passes_the_packaged_defaults_unless_given() -> None:
    command = streamlit_command(["--server.port", "8600", "--server.address=0.0.0.0"])
    assert command[1:5] == ["-m", "streamlit", "run", str(Path(command[4]))] and command[4].endswith("app.py")
    flags = command[5:]
    assert flags[flags.index("--browser.gatherUsageStats") + 1] == "false"
    assert flags[flags.index("--client.toolbarMode") + 1] == "minimal"
    assert "--server.address" not in flags and flags[-3:] == ["--server.port", "8600", "--server.address=0.0.0.0"]
    assert streamlit_command([])[5:].count("--server.address") == 1


def test_a_checkout_reads_the_same_config_as_the_launcher() -> None:
    """`streamlit run dashboard/app.py` from the project root reads .streamlit/config.toml: the very file
    the launcher passes, not a copy that could drift."""
    assert (PROJECT / ".streamlit" / "config.toml").resolve() == CONFIG.resolve()
