"""MetaCLIP-style curation of image-text pairs: matching, counting and balancing over Parquet pools."""

from curation.errors import CurationError

__all__ = ["CurationError", "Run"]


def __getattr__(name: str) -> object:
    """``Run`` is imported on first use, so that light modules (curation.storage, which the metadata
    package reads through) import without the whole engine."""
    if name == "Run":
        from curation.summary import Run

        return Run
    raise AttributeError(f"module 'curation' has no attribute {name!r}")
