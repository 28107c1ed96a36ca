"""The distribution as a user gets it: the wheel built from this checkout, installed into a fresh virtual
environment outside the repository, its three commands run from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from processes import listening_addresses

from dashboard.local_server import free_port, healthy

PROJECT = Path(__file__).resolve().parents[1]
NOT_IN_A_CLONE = (".git", ".venv", "runs", "exports", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis")

# Building the wheel and installing it into a fresh environment takes a minute or two, more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{command[:3]} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(the fresh environment's bin folder, a working folder outside the repository, its environment)."""
    base = tmp_path_factory.mktemp("packaging")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    source = base / "source"  # a copy of the checkout as a clone would hold it: the build writes nothing here
    shutil.copytree(PROJECT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(base / "dist"), str(source)], base, env)
    (wheel,) = (base / "dist").glob("curation_studio-*.whl")
    _run([sys.executable, "-m", "venv", str(base / "venv")], base, env)
    bin_dir = base / "venv" / "bin"
    # A current pip first, as a user would have: the pip that venv bundles with Python 3.11 takes 29 s
    # to resolve the dependencies here, a current one 12 s.
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], base, env)
    # --no-compile: bytecode is written on first import instead of for every file of every dependency
    # (a third of the install's time); what is installed is the same.
    install = [str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check", "--no-compile", str(wheel)]
    _run(install, base, env)
    work = base / "elsewhere"
    work.mkdir()
    return bin_dir, work, env


def test_the_installed_packages_come_from_the_environment_not_the_checkout(installed) -> None:
    bin_dir, work, env = installed
    names = ("curation", "metadata", "dashboard", "studio_common", "data_samples")
    script = f"import importlib, json; print(json.dumps({{n: importlib.import_module(n).__file__ for n in {names}}}))"
    files = json.loads(_run([str(bin_dir / "python"), "-c", script], work, env).stdout)
    for name, file in files.items():
        assert Path(file).is_relative_to(bin_dir.parent) and not Path(file).is_relative_to(PROJECT), (name, file)
    assert (Path(files["data_samples"]).parent / "pool").is_dir()
    assert (Path(files["dashboard"]).parent / "views" / "overview.py").is_file()


def test_curation_help_and_python_dash_m(installed) -> None:
    bin_dir, work, env = installed
    assert _run([str(bin_dir / "curation"), "--help"], work, env).stdout.startswith("usage: curation ")
    assert "usage: curation " in _run([str(bin_dir / "python"), "-m", "curation", "--help"], work, env).stdout
    assert _run([str(bin_dir / "curation-metadata"), "--help"], work, env).stdout.startswith("usage: curation-metadata")


def test_curation_run_on_the_bundled_sample_from_another_folder(installed) -> None:
    bin_dir, work, env = installed
    sample = _run([str(bin_dir / "python"), "-c", "import data_samples; print(data_samples.SAMPLE_DIR)"], work, env)
    sample_dir = Path(sample.stdout.strip())
    command = [str(bin_dir / "curation"), "run", "--pool", str(sample_dir / "pool"), "--metadata"]
    command += [str(sample_dir / "metadata.json"), "--t", "200", "--seed", "0", "--out", "runs/sample", "--quiet"]
    _run(command, work, env)
    record = json.loads((work / "runs" / "sample" / "run.json").read_text())
    assert record["rows"]["in"] == 30_000 and 0 < record["rows"]["kept"] < record["rows"]["matched"]
    stats = _run([str(bin_dir / "curation"), "stats", "runs/sample", "--t", "200", "--json"], work, env)
    assert json.loads(stats.stdout)["at_t"][0]["kept"] == record["rows"]["kept"]


def test_curation_dashboard_answers_on_loopback_from_another_folder(installed) -> None:
    bin_dir, work, env = installed
    port = free_port()
    log = work / "dashboard.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(bin_dir / "curation-dashboard"), "--server.headless", "true", "--server.port", str(port)],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while not healthy(url):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no answer within 120 s:\n" + log.read_text()[-3000:]
            time.sleep(0.1)
        assert listening_addresses(process.pid, port) == ["127.0.0.1"]  # the packaged default, no config file here
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200 and b"<noscript>" in page.read()
    finally:
        process.terminate()
        process.wait(timeout=30)
