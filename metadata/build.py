"""Building an entry list from the paper's sources: which source comes from where, in which order.

Each ``*_source`` function turns one input into a ``Source`` (entries in the source's own order plus
notes for the report); ``build`` merges them (``metadata.merge``) and returns the result with a report
that the CLI prints and stores in the Parquet output's file metadata.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metadata import omw, pageviews, segment, wikipedia
from metadata.loading import MetadataError, read_raw_entries
from metadata.merge import NUMBERS, Merged, Source, merge
from metadata.wordnet import read_wordnet


def wordnet_source(directory: str | Path) -> Source:
    names = read_wordnet(directory)
    return Source(
        "wordnet",
        names.per_synset,
        {
            "directory": str(directory),
            "synsets": names.synset_count,
            "synsets_per_file": names.synsets,
            "distinct_names": len(names.entries),
            "markers_stripped": names.markers_stripped,
            "names_with_a_dot": len(names.dotted),
            "names_with_a_dot_examples": names.dotted[:5],
            "metaclip_cut_at_first_dot": names.metaclip_count(),
        },
    )


def omw_source(directory: str | Path, language: str) -> Source:
    """MetaCLIP 2's WordNet source for a language other than English: OMW lemmas, one per lemma line."""
    lemmas = omw.read_omw(directory, language)
    return Source("wordnet", lemmas.per_line, {"directory": str(directory), **lemmas.notes()})


def wikipedia_sources(
    counts_dir: str | Path,
    min_unigram: int,
    min_pmi: float,
    min_bigram_count: int = 1,
    entry_language: str | None = None,
) -> list[Source]:
    """Unigrams and PMI bigrams of the counts. For a language written without spaces (from counts.json;
    ``entry_language`` must not contradict it) a bigram is written as that language writes it, its two
    words joined without the space where the language's script meets (``segment.join_bigrams``)."""
    record = wikipedia.read_record(counts_dir)
    language = segment.check_entry_language(record["language"], entry_language, f"{counts_dir}")
    unigrams = wikipedia.frequent_unigrams(counts_dir, min_unigram)
    bigrams = wikipedia.pmi_bigrams(counts_dir, min_pmi, min_bigram_count)
    spec = segment.spec_for(record["language"])
    joined = segment.join_bigrams(bigrams, spec) if spec else bigrams
    common = {
        "counts": str(counts_dir),
        "dump": record.get("dump"),
        "language": language,
        "segmenter": record.get("segmenter"),
        "articles": record.get("articles"),
        "tokens": record.get("tokens"),
    }
    return [
        Source(
            "wiki_unigram",
            unigrams,
            {**common, "min_count": min_unigram, "distinct_unigrams": record.get("distinct_unigrams")},
        ),
        Source(
            "wiki_bigram",
            joined,
            {
                **common,
                "min_pmi": min_pmi,
                "min_bigram_count": min_bigram_count,
                "distinct_bigrams": record.get("distinct_bigrams"),
                "joined_without_space": sum(a != b for a, b in zip(bigrams, joined)),
            },
        ),
    ]


def pageview_source(
    paths: Sequence[str | Path],
    min_views: int,
    codes: Sequence[str],
    min_hourly: int = 1,
    keep_namespaces: bool = False,
    progress: bool = True,
) -> Source:
    found = pageviews.popular_titles(
        paths,
        min_views=min_views,
        codes=codes,
        min_hourly=min_hourly,
        keep_namespaces=keep_namespaces,
        progress=progress,
    )
    return Source(
        "wiki_title",
        found.entries,
        {
            "min_views": min_views,
            "codes": list(codes),
            "min_hourly_views": min_hourly,
            "keep_namespaces": keep_namespaces,
            "distinct_titles": found.distinct_titles,
            **found.stats.as_dict(),
        },
    )


def extra_source(path: str | Path) -> Source:
    entries = read_raw_entries(path)
    if not entries:
        raise MetadataError(f"extra entries file {path} is empty (empty source)")
    return Source("extra", entries, {"file": str(path)})


@dataclass
class BuildRequest:
    """Everything ``build`` may use; a None source is simply not part of the build."""

    wordnet: str | Path | None = None
    omw: str | Path | None = None  # OMW tab files, read for wordnet_language (else entry_language)
    wordnet_language: str | None = None
    wikipedia_counts: str | Path | None = None
    wikipedia_dump: str | Path | None = None
    counts_out: str | Path | None = None  # where a dump's counts are kept (default: a temporary directory)
    min_unigram: int = 100
    min_pmi: float = 30.0
    min_bigram_count: int = 1
    pageviews: Sequence[str | Path] = ()
    min_views: int = 70
    codes: Sequence[str] = ("en",)
    min_hourly_views: int = 1
    keep_namespaces: bool = False
    extra: str | Path | None = None
    extra_entries: Sequence[str] | None = None  # extra entries given directly (scripts)
    numbers: bool = True
    budgets: dict[str, int] = field(default_factory=dict)
    entry_language: str | None = None  # the list's language: checked against the counts', counts a dump in it
    workers: int | None = None
    progress: bool = True


@dataclass
class Built:
    merged: Merged
    notes: dict[str, dict]

    def info(self) -> dict:
        """What went into the list, for the report and the Parquet file metadata."""
        return {
            "entries": len(self.merged.entries),
            "sources": [{**r.as_dict(), "notes": self.notes.get(r.name, {})} for r in self.merged.reports],
        }


def _omw_language(request: BuildRequest) -> str:
    """Whose OMW lemmas to read: --wordnet-language, else the list's language; they must agree."""
    if request.wordnet is not None:
        raise MetadataError("give --wordnet (English WordNet 3.0) or --omw (another language's), not both")
    language = request.wordnet_language or request.entry_language
    if language is None:
        raise MetadataError("--omw needs a language: --wordnet-language CODE (or --entry-language CODE)")
    entry = request.entry_language
    if entry is not None and segment.normalize_language(entry) != segment.normalize_language(language):
        raise MetadataError(f"--wordnet-language {language} contradicts --entry-language {entry}")
    return language


def build(request: BuildRequest) -> Built:
    """Collect the requested sources in MetaCLIP's order, then numbers, and merge them."""
    if request.wikipedia_counts and request.wikipedia_dump:
        raise MetadataError("give --wikipedia-counts or --wikipedia-dump, not both")
    if request.omw is None and request.wordnet_language is not None:
        raise MetadataError("--wordnet-language only applies with --omw DIR")
    omw_language = _omw_language(request) if request.omw is not None else None  # contradictions first
    sources: list[Source] = []
    if request.wordnet is not None:
        sources.append(wordnet_source(request.wordnet))
    if request.omw is not None and omw_language is not None:
        sources.append(omw_source(request.omw, omw_language))
    counts_args = (request.min_unigram, request.min_pmi, request.min_bigram_count, request.entry_language)
    if request.wikipedia_dump is not None:
        with tempfile.TemporaryDirectory(prefix="wikipedia-counts-") as scratch:
            counts = request.counts_out if request.counts_out is not None else scratch
            wikipedia.count_dump(
                request.wikipedia_dump,
                counts,
                workers=request.workers,
                progress=request.progress,
                language=request.entry_language,  # else the dump's name says
            )
            sources += wikipedia_sources(counts, *counts_args)
    elif request.wikipedia_counts is not None:
        sources += wikipedia_sources(request.wikipedia_counts, *counts_args)
    if request.pageviews:
        sources.append(
            pageview_source(
                request.pageviews,
                request.min_views,
                request.codes,
                request.min_hourly_views,
                request.keep_namespaces,
                request.progress,
            )
        )
    if request.extra is not None:
        sources.append(extra_source(request.extra))
    elif request.extra_entries is not None:
        if not request.extra_entries:
            raise MetadataError("no extra entries given (empty source)")
        sources.append(Source("extra", list(request.extra_entries), {"given": "directly"}))
    if not sources:
        raise MetadataError(
            "no source given: use --wordnet, --omw, --wikipedia-counts/--wikipedia-dump, --pageviews or --extra"
        )
    if request.numbers:
        sources.append(Source("numbers", list(NUMBERS), {"range": "0-99"}))
    merged = merge(sources, request.budgets)
    return Built(merged, {source.name: source.notes for source in sources})
