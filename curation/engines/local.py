"""The local engine: stages in worker processes on this machine (or in this process for one worker).

Workers are started with ``spawn`` (forking a process that already runs Arrow's thread pools can
deadlock) and live as long as the engine, so each builds its automaton once for all its shards.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from typing import Any


class LocalEngine:
    name = "local"

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(
        self,
        stage: Callable[[Any, Any], Any],
        items: Sequence[Any],
        config: Any,
        on_result: Callable[[Any, Any], None],
    ) -> list[Any]:
        if self.workers == 1 or len(items) <= 1:
            results = []
            for item in items:
                result = stage(item, config)
                on_result(item, result)
                results.append(result)
            return results
        return self._map_in_processes(stage, items, config, on_result)

    def _map_in_processes(self, stage, items, config, on_result) -> list[Any]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        futures: dict[Future, int] = {self._pool.submit(stage, item, config): i for i, item in enumerate(items)}
        results: dict[int, Any] = {}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    index = futures[future]
                    results[index] = future.result()  # a stage's error is raised here
                    on_result(items[index], results[index])
        except BaseException:
            for future in pending:
                future.cancel()
            self.close()
            raise
        return [results[i] for i in range(len(items))]
