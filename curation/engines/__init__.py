"""Where stages run. An engine maps a stage function over work items with a frozen config and
reports each result as it arrives; it knows nothing of what the stage computes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Engine(Protocol):
    """Used as a context manager: workers (and what they cached) live until it closes."""

    name: str

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def map(
        self,
        stage: Callable[[Any, Any], Any],
        items: Sequence[Any],
        config: Any,
        on_result: Callable[[Any, Any], None],
    ) -> list[Any]:
        """Run ``stage(item, config)`` for every item; results in the order of ``items``."""
        ...


ENGINES = ("local", "ray")


def make_engine(name: str, workers: int, **options: Any) -> Engine:
    """The engine called ``name``; ``workers`` is the number of parallel stage runs.

    Nothing starts until the engine is entered, so a missing optional dependency (Ray) is reported
    before any file is touched. Options: ``address`` (ray) names a Ray cluster to join.
    """
    if name == "local":
        from curation.engines.local import LocalEngine

        return LocalEngine(workers)
    if name == "ray":
        from curation.engines.ray import RayEngine  # imports ray only when this engine is chosen

        return RayEngine(workers, address=options.get("address"))
    from studio_common.errors import CurationError

    raise CurationError(f"unknown engine '{name}'; choose one of: {', '.join(ENGINES)}")
