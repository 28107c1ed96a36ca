"""`curation materialize`: the samples a run keeps at (t, seed), copied out of WebDataset tar shards
the user already has (img2dataset's or DataComp's) into new shards of N samples each.

The kept keys are read from the run as `export` reads its kept pairs (``browse.kept_batches``, the
run's own keep rule: a worldwide run keeps each pair at its language's t) and held as sorted xxHash64
values with one written flag each; the shards are streamed member by member, a kept sample's members
copied byte for byte (curation/tar_members.py), the others skipped. Nothing but the key hashes and
one member's chunk is held in memory.

Resume: after each output shard is published, the key hashes it holds and a small state (its number,
where in the input the next sample starts, the counters so far) are written; a rerun of the same
command restores them and continues from there, so no sample is written twice or lost, and the
shards are byte-identical to an uninterrupted run's. A rerun with other options is refused.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curation.browse import kept_batches
from curation.keys import hash_keys
from curation.output_folder import OutputFolder
from curation.pairs import PairReader
from curation.shard_specs import InputShard, input_shards, open_shard
from curation.summary import Run
from curation.tar_members import TarReader, TarWriter, sample_key
from studio_common import storage
from studio_common.errors import CurationError
from studio_common.progress import Bar, Silent

MATERIALIZE_HELP = """\
Copy the samples a run keeps at t (and seed) out of the WebDataset tar shards you downloaded
(img2dataset's or DataComp's: the members of a sample share a key, as 000000123.jpg, 000000123.txt,
000000123.json) into new shards DIR/00000.tar, DIR/00001.tar, ... of --samples-per-shard samples each,
ready for a WebDataset loader. The pool's 'key' column (img2dataset writes it; else '__key__', or
--key-column) names each pair's sample; in a worldwide run each pair is kept at its language's t.

Every member of a kept sample is copied as it is (bytes, name, order); other samples are skipped.
Memory stays flat (the kept keys as 8-byte hashes, nothing of the samples); each new shard appears
whole; the same command gives the same bytes, and a killed one continues where it stopped when run
again the same way (other options are refused). At the end: samples written, kept samples that no
input shard holds (missing), samples skipped, bytes and rates; also in DIR/materialize.json.

example:
  curation materialize runs/laion --t 20000 --shards 'shards/{00000..00099}.tar' --out curated/
  then, in Python: webdataset.WebDataset('curated/{00000..00009}.tar')"""
SUMMARY = "materialize.json"
STATE = "materialize.state.json"
KEYS = "materialize.keys"  # the key hashes of each finished output shard, for a resume
KEY_COLUMNS = ("key", "__key__")  # img2dataset's name, then webdataset's own
DEFAULT_SAMPLES_PER_SHARD = 10_000
SPELLINGS = ("shards",)  # options recorded as given but not compared: the inputs they expand to are
Progress = Callable[[int], None]  # bytes of input read since the last call


@dataclass(frozen=True)
class Request:
    run: str
    t: float
    seed: int | None
    shards: str
    out: str
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD
    key_column: str | None = None


@dataclass
class Counts:
    """What has been read and written so far; saved with each output shard, so a resume adds to it."""

    input_samples: int = 0
    skipped: int = 0  # samples the run does not keep
    repeated: int = 0  # kept samples met again after their first copy (not written twice)
    written: int = 0
    output_shards: int = 0
    output_bytes: int = 0


@dataclass
class State:
    options: dict
    counts: Counts = field(default_factory=Counts)
    input: int = 0  # the next sample starts in this input shard...
    offset: int = 0  # ...at this byte

    def as_json(self) -> dict:
        return {"options": self.options, "counts": asdict(self.counts), "input": self.input, "offset": self.offset}

    @classmethod
    def from_json(cls, value: dict) -> State:
        return cls(value["options"], Counts(**value["counts"]), value["input"], value["offset"])


def output_name(index: int) -> str:
    return f"{index:05d}.tar"


def key_hash(key: str) -> int:
    """The same hash as ``keys.hash_keys`` gives the pool's key column."""
    return xxhash.xxh64_intdigest(key.encode("utf-8", "surrogateescape"))


class KeptKeys:
    """The keys kept at (t, seed) as sorted unique 64-bit hashes (8 bytes a key), each with a flag
    saying whether its sample has been written."""

    def __init__(self, hashes: np.ndarray, pairs: int, without_key: int) -> None:
        self.hashes = np.unique(hashes.astype(np.uint64))
        self.written = np.zeros(len(self.hashes), dtype=bool)
        self.pairs, self.without_key = pairs, without_key

    def find(self, value: int) -> int | None:
        """The key's place, None when the run does not keep it."""
        at = int(np.searchsorted(self.hashes, np.uint64(value)))
        return at if at < len(self.hashes) and int(self.hashes[at]) == value else None

    def mark_written(self, hashes: np.ndarray) -> None:
        self.written[np.searchsorted(self.hashes, hashes)] = True


def key_column_of(pairs: PairReader, asked: str | None) -> str:
    """--key-column, else the pool's 'key' (img2dataset), else its '__key__'."""
    names = pairs.pool_schema.names
    if asked is not None:
        if asked not in names:
            raise CurationError(f"the pool has no column {asked!r} for --key-column; its columns: {', '.join(names)}")
        return asked
    found = next((name for name in KEY_COLUMNS if name in names), None)
    if found is None:
        raise CurationError(
            f"the pool has no 'key' or '__key__' column naming each sample's tar members; "
            f"name one with --key-column (its columns: {', '.join(names)})"
        )
    return found


def kept_keys(run: Run, t: float, seed: int, key_column: str) -> KeptKeys:
    """The hashes of the keys of every pair the run keeps at (t, seed), read shard by shard."""
    parts, pairs, without_key = [], 0, 0
    for _, table in kept_batches(run.dir.root, seed, t, [key_column]):
        if table is None:
            continue
        keys = table.column(key_column).combine_chunks()
        pairs += len(keys)
        without_key += keys.null_count
        keys = pc.drop_null(keys)
        if not pa.types.is_string(keys.type) and not pa.types.is_large_string(keys.type):
            keys = pc.cast(keys, pa.string())
        parts.append(hash_keys(keys))
    hashes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)
    return KeptKeys(hashes, pairs, without_key)


class Materializer:
    """One materialization: its inputs, the kept keys, the output folder and the state it resumes from."""

    def __init__(self, request: Request, inputs: list[InputShard], kept: KeptKeys, out: OutputFolder, state: State):
        self.request, self.inputs, self.kept, self.out, self.state = request, inputs, kept, out, state
        self.counts = state.counts
        self.writer: TarWriter | None = None
        self.scratch = None
        self.shard_keys: list[int] = []
        self.samples_in_shard = 0

    def run(self, progress: Progress) -> None:
        for index in range(self.state.input, len(self.inputs)):
            start = self.state.offset if index == self.state.input else 0
            self._read(index, start, progress)
        if self.writer is not None:
            self._finish_shard(len(self.inputs), 0)

    def _read(self, index: int, start: int, progress: Progress) -> None:
        shard = self.inputs[index]
        try:
            with open_shard(shard.path) as stream:
                reader = TarReader(stream, shard.path, start)
                reported, key, keep = start, None, False
                while (member := reader.next_member()) is not None:
                    if key is None or sample_key(member.name) != key:
                        key = sample_key(member.name)
                        keep = self._begin_sample(key.removeprefix("./"), index, member.offset)
                        progress(member.offset - reported)
                        reported = member.offset
                    if keep:
                        self.writer.copy(reader, member)
                    else:
                        reader.skip_data(member)
                progress(max(shard.size - reported, 0))
        except OSError as error:  # a store gone mid-read, a disk error: one line naming the shard
            raise CurationError(f"cannot read input shard {shard.path}: {storage.first_line(error)}") from None

    def _begin_sample(self, key: str, index: int, offset: int) -> bool:
        """Whether the sample starting here is written; a full output shard is finished first, so the
        state it saves resumes at this very sample."""
        value = key_hash(key)
        place = self.kept.find(value)
        if (
            place is not None
            and not self.kept.written[place]
            and self.samples_in_shard == self.request.samples_per_shard
        ):
            self._finish_shard(index, offset)
        self.counts.input_samples += 1
        if place is None:
            self.counts.skipped += 1
            return False
        if self.kept.written[place]:
            self.counts.repeated += 1
            return False
        if self.writer is None:
            self.scratch = self.out.scratch(output_name(self.counts.output_shards))
            name = self.out.where(output_name(self.counts.output_shards))
            self.writer = TarWriter(open(self.scratch, "wb", buffering=1 << 20), name)
        self.kept.written[place] = True
        self.shard_keys.append(value)
        self.samples_in_shard += 1
        self.counts.written += 1
        return True

    def _finish_shard(self, next_input: int, next_offset: int) -> None:
        """Close and publish the output shard, then its key hashes, then the state that counts it."""
        number = self.counts.output_shards
        self.writer.finish()
        self.writer.stream.close()
        self.out.publish(self.scratch, output_name(number))
        self.out.write_bytes(f"{KEYS}/{number:05d}.u64", np.array(self.shard_keys, dtype="<u8").tobytes())
        self.counts.output_shards += 1
        self.counts.output_bytes += self.writer.bytes
        self.state.input, self.state.offset = next_input, next_offset
        self.out.write_json(STATE, self.state.as_json())
        self.writer, self.scratch, self.shard_keys, self.samples_in_shard = None, None, [], 0

    def abandon(self) -> None:
        """A half-written output shard (an error or an interrupt): dropped, the resume redoes it."""
        if self.writer is not None:
            self.writer.stream.close()
            self.out.discard(self.scratch)


def materialize(request: Request, progress_bar: Callable[[int], Bar] | None = None) -> dict:
    """Write the output shards (resuming a killed run of the same request) and return the summary,
    also written as DIR/materialize.json. ``progress_bar(total_bytes)``: a bar with ``update(n)``."""
    started = time.perf_counter()
    run = Run(request.run)
    seed = request.seed if request.seed is not None else (run.seed if run.seed is not None else 0)
    if not run.dir.has_thresholds(seed, run.plan):
        raise CurationError(
            f"no keep thresholds for seed {seed} in {request.run}; "
            f"run `curation balance {request.run} --t {request.t:g} --seed {seed}` first"
        )
    key_column = key_column_of(PairReader(run.dir), request.key_column)
    inputs = input_shards(request.shards)
    options = {
        "run": _resolved(request.run),
        "t": request.t,
        "seed": seed,
        "shards": request.shards,
        "inputs": [_resolved(shard.path) for shard in inputs],
        "samples_per_shard": request.samples_per_shard,
        "key_column": key_column,
    }
    with OutputFolder(request.out) as out:
        done = out.read_json(SUMMARY)
        if done is not None:
            _check_same(done["options"], options, request.out)
            return {**done, "already_complete": True}
        saved = out.read_json(STATE)
        if saved is None and out.names(".tar"):
            raise CurationError(
                f"{request.out} holds .tar files that no `curation materialize` state accounts for; "
                "write to an empty folder"
            )
        if saved is not None:
            _check_same(saved["options"], options, request.out)
        state = State.from_json(saved) if saved is not None else State(options)
        reading_keys = time.perf_counter()
        kept = kept_keys(run, request.t, seed, key_column)
        keys_seconds = time.perf_counter() - reading_keys
        for number in range(state.counts.output_shards):
            kept.mark_written(np.frombuffer(out.read_bytes(f"{KEYS}/{number:05d}.u64") or b"", dtype="<u8"))
        before = _progress_of(state, inputs)
        total = sum(shard.size for shard in inputs)
        bar = progress_bar(total) if progress_bar else Silent(total, "materialize", "B", sys.stderr)
        counts_before = Counts(**asdict(state.counts))
        work = Materializer(request, inputs, kept, out, state)
        copying = time.perf_counter()
        with bar:  # closed (a last line in a log) only when every shard is read: an error says why instead
            bar.update(before)
            try:
                work.run(bar.update)
            finally:
                work.abandon()
        seconds = {
            "seconds": time.perf_counter() - started,
            "kept_keys_seconds": keys_seconds,
            "copy_seconds": time.perf_counter() - copying,
        }
        summary = _summary(options, kept, state.counts, counts_before, total, total - before, seconds, out)
        out.write_json(SUMMARY, summary)
        out.remove([STATE, *(f"{KEYS}/{n:05d}.u64" for n in range(state.counts.output_shards))])
        return summary


def _resolved(path: str) -> str:
    """A local path as an absolute one (the same folder however it is spelled); a URI as it is."""
    return path if storage.is_uri(path) else str(Path(path).resolve())


def _check_same(recorded: dict, options: dict, out: str) -> None:
    """A rerun continues only the same materialization: other options are refused in one line."""
    differing = [name for name in options if name not in SPELLINGS and recorded.get(name) != options[name]]
    if differing:
        name = differing[0]
        shown = f"{len(recorded.get(name) or [])} input shards" if name == "inputs" else repr(recorded.get(name))
        now = f"{len(options[name])}" if name == "inputs" else repr(options[name])
        raise CurationError(
            f"{out} holds a materialization made with other options ({name}: {shown} there, {now} now); "
            "run the same command to resume it, or write to another folder"
        )


def _progress_of(state: State, inputs: list[InputShard]) -> int:
    """Bytes of input before the place a resume starts at."""
    return sum(shard.size for shard in inputs[: state.input]) + state.offset


def _summary(
    options: dict,
    kept: KeptKeys,
    counts: Counts,
    before: Counts,
    input_bytes: int,
    read_now: int,
    seconds: dict[str, float],
    out: OutputFolder,
) -> dict:
    copying = max(seconds["copy_seconds"], 1e-9)
    kept_keys_count = len(kept.hashes)
    return {
        "options": options,
        "kept_pairs": kept.pairs,
        "kept_pairs_without_key": kept.without_key,
        "kept": kept_keys_count,
        "written": counts.written,
        "missing": kept_keys_count - counts.written,
        "skipped": counts.skipped,
        "repeated": counts.repeated,
        "input_shards": len(options["inputs"]),
        "input_samples": counts.input_samples,
        "input_bytes": input_bytes,
        "output_shards": counts.output_shards,
        "output_bytes": counts.output_bytes,
        "out": out.spec,
        # this invocation's work (a resumed run's own), rates over the copy (the kept keys read first)
        "this_run": {
            **{name: round(value, 3) for name, value in seconds.items()},
            "samples_per_s": round((counts.input_samples - before.input_samples) / copying, 1),
            "written_per_s": round((counts.written - before.written) / copying, 1),
            "input_mb_per_s": round(read_now / copying / 1e6, 2),
            "output_mb_per_s": round((counts.output_bytes - before.output_bytes) / copying / 1e6, 2),
        },
    }


def summary_lines(summary: dict) -> list[str]:
    """The summary as the command prints it."""
    options, rates = summary["options"], summary["this_run"]
    head = "already complete" if summary.get("already_complete") else "materialized"
    lines = [
        f"{head}: {summary['written']:,} samples kept at t={options['t']:g} (seed {options['seed']}) in "
        f"{summary['output_shards']:,} shards in {summary['out']}",
        f"kept keys   {summary['kept']:>12,}  (pairs the run keeps at t, by their {options['key_column']!r})",
        f"written     {summary['written']:>12,}",
        f"missing     {summary['missing']:>12,}  (kept, but no input shard holds them)",
        f"skipped     {summary['skipped']:>12,}  (samples not kept)",
    ]
    if summary["repeated"]:
        lines.append(f"repeated    {summary['repeated']:>12,}  (kept samples met again after their copy: written once)")
    if summary["kept_pairs_without_key"]:
        lines.append(f"no key      {summary['kept_pairs_without_key']:>12,}  (kept pairs whose key is empty)")
    lines += [
        f"input       {summary['input_samples']:>12,} samples in {summary['input_shards']:,} shards, "
        f"{summary['input_bytes'] / 1e6:,.1f} MB",
        f"output      {summary['output_bytes'] / 1e6:>12,.1f} MB",
        f"rate        {rates['samples_per_s']:>12,.0f} samples/s, {rates['input_mb_per_s']:,.1f} MB/s in, "
        f"{rates['output_mb_per_s']:,.1f} MB/s out ({rates['copy_seconds']:,.1f} s copying, "
        f"{rates['seconds']:,.1f} s in all)",
        f"summary in {summary['out']}/{SUMMARY}",
    ]
    return lines
