"""MetaCLIP-style curation of image-text pairs: matching, counting and balancing over Parquet pools."""

from curation.errors import CurationError
from curation.summary import Run

__all__ = ["CurationError", "Run"]
