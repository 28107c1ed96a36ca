"""Metadata for curation: the ordered entry list (an entry's id is its 0-based position)."""

from metadata.loading import MetadataError, fingerprint, load_entries

__all__ = ["MetadataError", "fingerprint", "load_entries"]
