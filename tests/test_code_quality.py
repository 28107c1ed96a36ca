"""Lint, format and the import layers, as part of the test command (so the README's command and CI
both fail on a finding): ruff with the project's configuration and import-linter's contracts, both
in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _check(command: list[str]) -> None:
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command[:4])} found problems:\n{done.stdout[-4000:]}{done.stderr[-2000:]}", pytrace=False
        )


def test_ruff_finds_nothing() -> None:
    _check([sys.executable, "-m", "ruff", "check", "--no-cache", "."])


def test_the_tree_is_formatted() -> None:
    _check([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."])


def test_the_import_layers_hold() -> None:
    """dashboard -> curation -> metadata -> studio_common, and DuckDB only where a query runs."""
    _check([str(BIN / "lint-imports"), "--no-cache"])


def test_the_command_line_imports_neither_duckdb_nor_streamlit() -> None:
    """A pure counting or matching job never pays for the dashboard's stack."""
    script = "import sys, curation.cli, metadata.cli; print(sorted({'duckdb', 'streamlit', 'ray'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_every_module_but_the_run_directory_is_kept_from_the_mirror() -> None:
    """The contract that keeps storage behind RunDir names its modules one by one (import-linter does not
    check a package against its own child): a new module must join the list."""
    import tomllib

    contracts = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c.get("forbidden_modules") == ["curation.mirror"]]
    allowed = {"curation.rundir", "curation.mirror", "curation.jobs", "curation.__init__", "curation.__main__"}
    modules = {f"curation.{p.stem}" for p in (PROJECT / "curation").glob("*.py")} - allowed
    assert modules | {"curation.engines", "dashboard"} == set(contract["source_modules"])
