"""MetaCLIP-style curation of image-text pairs: matching, counting and balancing over Parquet pools."""

from curation.summary import Run
from studio_common.errors import CurationError

__all__ = ["CurationError", "Run"]
