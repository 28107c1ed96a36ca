"""`curation-dashboard`: Streamlit on the installed app, with the project's defaults (loopback only, no
usage statistics, a minimal toolbar) from streamlit_config.toml beside this file. Any Streamlit flag
given on the command line wins over its default and passes through."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP = HERE / "app.py"
CONFIG = HERE / "streamlit_config.toml"

HELP = """usage: curation-dashboard [STREAMLIT FLAGS ...]

Open the curation studio's dashboard (Streamlit) in the current folder: run directories go under
./runs (CURATION_RUNS_DIR), exports under ./exports (CURATION_EXPORT_DIR), and the first start
curates the bundled sample into runs/sample.

Defaults, each overridden by the same flag on this command line:
{defaults}

Any other `streamlit run` flag passes through, e.g. --server.port 8600 or --server.headless true.
Serving beyond loopback (--server.address 0.0.0.0) asks every browser for CURATION_DASHBOARD_TOKEN.
"""


def default_flags() -> list[tuple[str, str]]:
    """(flag, value) for every option of the packaged config, in file order."""
    config = tomllib.loads(CONFIG.read_text())
    return [
        (f"--{section}.{option}", str(value).lower() if isinstance(value, bool) else str(value))
        for section, options in config.items()
        for option, value in options.items()
    ]


def streamlit_command(arguments: Sequence[str]) -> list[str]:
    """``python -m streamlit run APP`` with every default the arguments do not set, then the arguments."""
    given = {argument.split("=", 1)[0] for argument in arguments if argument.startswith("--")}
    defaults = [part for flag, value in default_flags() if flag not in given for part in (flag, value)]
    return [sys.executable, "-m", "streamlit", "run", str(APP), *defaults, *arguments]


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] in (["-h"], ["--help"]):
        print(HELP.format(defaults="\n".join(f"  {flag} {value}" for flag, value in default_flags())))
        return 0
    command = streamlit_command(arguments)
    sys.stdout.flush()
    os.execv(command[0], command)  # Streamlit takes this process over: Ctrl-C and signals reach it directly
    return 0  # not reached
