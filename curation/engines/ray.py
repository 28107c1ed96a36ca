"""The Ray engine: the same stage functions as Ray tasks, on a private local Ray or on a cluster.

Why plain tasks rather than Ray Data: a stage already streams its own shard in bounded record batches
and writes its own outputs to the run directory, so the engine only has to decide where each call
runs. Tasks keep that a few lines long, and avoid Ray Data's read tasks competing with an actor pool
for the CPUs of a small machine. Ray reuses a worker process for task after task (``max_calls=0``),
so the per-process caches of curation.stages (the automaton, the global counts) are built once per
worker process, as with the local engine.

Ray is optional: nothing imports this module (or ``ray``) unless ``--engine ray`` is asked for, and
then a missing Ray is one line that says how to install it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

from studio_common import storage
from studio_common.errors import CurationError

INSTALL_HINT = (
    "the Ray engine needs Ray, which is not installed here: pip install 'curation-studio[ray]' "
    "(in a checkout: pip install -r requirements-ray.txt)"
)
# Tasks submitted per CPU of the cluster: one running and one queued, so a CPU never waits for the
# driver, while the driver holds only a few results and Ray a few task descriptions at a time.
IN_FLIGHT_PER_CPU = 2
CONNECT_TIMEOUT_S = 10.0
# How long a failed map waits for its cancelled tasks to settle before giving up on them.
CANCEL_WAIT_S = 30.0


def import_ray() -> Any:
    """The ray module, or a CurationError that says how to install it (exit code 2 in the CLI)."""
    try:
        import ray
    except ModuleNotFoundError as error:
        if error.name == "ray":
            raise CurationError(INSTALL_HINT) from None
        raise
    return ray


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong host:port: Ray itself retries an unreachable head for minutes."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise CurationError(
            f"cannot reach the Ray cluster at {address}: {error.strerror or error}; "
            "is `ray start --head` running there?"
        ) from None


def _run_stage(stage: Callable[[Any, Any], Any], item: Any, config: Any) -> Any:
    """What a Ray worker runs: the stage itself, in a process that lives on for the next task."""
    from curation.memory import keep_freed_memory

    keep_freed_memory()  # once per worker process; see curation/memory.py
    return stage(item, config)


class RayEngine:
    """Stages as Ray tasks. Starts (and later stops) a local Ray unless one is given or already joined.

    ``address``: a cluster to join (``host:port`` of its head, or ``auto`` for the one ``ray start``
    runs on this machine). Without it, ``RAY_ADDRESS`` is honoured (``ray job submit`` sets it);
    otherwise a private local Ray is started with ``workers`` CPUs and no dashboard.
    """

    name = "ray"

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers = max(1, int(workers))
        self.address = address
        self._ray = import_ray()
        self._started = False
        self._remote: Any = None

    def __enter__(self) -> RayEngine:
        ray = self._ray
        if not ray.is_initialized():
            self._connect()
            self._started = True
        forwarded = storage.forwarded_environment()  # credentials and endpoints for pools in object storage
        runtime_env = {"runtime_env": {"env_vars": forwarded}} if forwarded else {}
        self._remote = ray.remote(num_cpus=1, max_calls=0, **runtime_env)(_run_stage)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False

    def _connect(self) -> None:
        ray = self._ray
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        if address:
            _check_reachable(address)
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                # "local": never join a cluster that `ray start` left running on this machine by accident.
                ray.init(address="local", num_cpus=self.workers, include_dashboard=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            first = str(error).strip().splitlines()
            raise CurationError(
                f"cannot start or join {where}: {first[0] if first else type(error).__name__}"
            ) from None

    def _in_flight(self) -> int:
        cpus = int(self._ray.cluster_resources().get("CPU", 1)) or 1
        return IN_FLIGHT_PER_CPU * cpus

    def map(
        self,
        stage: Callable[[Any, Any], Any],
        items: Sequence[Any],
        config: Any,
        on_result: Callable[[Any, Any], None],
    ) -> list[Any]:
        if self._remote is None:
            raise RuntimeError("use the Ray engine as a context manager")
        ray = self._ray
        limit = self._in_flight()
        config_ref = ray.put(config)  # shipped once, not once per task
        pending: dict[Any, int] = {}
        results: dict[int, Any] = {}
        submitted = 0
        try:
            while submitted < len(items) or pending:
                while submitted < len(items) and len(pending) < limit:
                    pending[self._remote.remote(stage, items[submitted], config_ref)] = submitted
                    submitted += 1
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    index = pending.pop(ref)
                    results[index] = self._result(ref)
                    on_result(items[index], results[index])
        except BaseException:
            self._cancel(list(pending))
            raise
        return [results[i] for i in range(len(items))]

    def _result(self, ref: Any) -> Any:
        """A task's value; a stage's CurationError comes back as itself, not wrapped by Ray."""
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayTaskError as error:
            if isinstance(error.cause, CurationError):
                raise CurationError(str(error.cause)) from None
            raise

    def _cancel(self, refs: list[Any]) -> None:
        """Stop the other tasks of a failed map, and collect their outcomes so Ray does not log them."""
        ray = self._ray
        for ref in refs:
            ray.cancel(ref)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_WAIT_S)
        for ref in ready:
            try:
                ray.get(ref)
            except Exception:  # cancelled, or failed too: the first error is the one reported
                pass
