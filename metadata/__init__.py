"""Metadata for curation: the ordered entry list (an entry's id is its 0-based position), where each
entry came from, and the tools that load, fetch and build such lists (``curation-metadata``)."""

from metadata.loading import Metadata, MetadataError, fingerprint, load_entries, load_metadata

__all__ = ["Metadata", "MetadataError", "fingerprint", "load_entries", "load_metadata"]
