"""Tar archives read and written block by block, so that a member is copied exactly as it was stored:
its header blocks (with any pax or GNU long-name blocks before them) and its data, byte for byte.

A WebDataset shard is a plain tar whose members come grouped by sample: the members of one sample
are adjacent and share a key, the name up to the first dot of its last component (000123.jpg,
000123.txt and 000123.json are sample 000123), as webdataset's readers group them. Of a header only
the name, size and type are read (and its checksum checked), as tarfile reads them; nothing else of a
member is interpreted.
"""

from __future__ import annotations

import struct
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from studio_common.errors import CurationError

BLOCK = 512
RECORD = 20 * BLOCK  # tar's record: an archive's length is a multiple of it, as GNU tar and tarfile write
ZERO_BLOCK = bytes(BLOCK)
COPY_CHUNK = 1 << 20
_EXTENSION_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_LONG_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
_SIGNED = struct.Struct("148b8x356b")  # a header's bytes but its checksum, as old tars summed them


def padded(size: int) -> int:
    """Bytes a member's data takes in the archive: its size rounded up to whole blocks."""
    return -(-size // BLOCK) * BLOCK


def sample_key(name: str) -> str:
    """The sample a member belongs to: its name up to the first dot of its last component."""
    folder, slash, base = name.rpartition("/")
    return folder + slash + base.split(".", 1)[0]


def _number(field: bytes) -> int:
    """A header's number: octal digits ended by NUL or space, or base-256 (GNU) past what octal holds."""
    if field[0] & 0x80:
        return int.from_bytes(field[1:], "big") - (256 ** (len(field) - 1) if field[0] == 0xFF else 0)
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def parse_header(block: bytes) -> tuple[str, int, bytes] | None:
    """(name, size, type) of one 512-byte header as tarfile reads them (the ustar prefix joined to the
    name), or None when the block is no tar header (its checksum is wrong). tarfile's own
    ``TarInfo.frombuf`` reads every field, which took most of the time of a copy."""
    try:
        stored = _number(block[148:156])
        size = _number(block[124:136])
    except ValueError:
        return None
    if size < 0:
        return None
    unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20  # the checksum field counts as spaces
    if stored != unsigned and stored != sum(_SIGNED.unpack_from(block)) + 8 * 0x20:
        return None
    kind = block[156:157]
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if kind == tarfile.AREGTYPE and name.endswith("/"):
        kind = tarfile.DIRTYPE
    prefix = block[345:500].split(b"\0", 1)[0]
    if prefix and kind not in tarfile.GNU_TYPES:
        name = prefix.decode("utf-8", "surrogateescape") + "/" + name
    return name, size, kind


@dataclass(frozen=True)
class Member:
    name: str
    header: bytes  # every header block as stored: pax / long-name blocks, then the member's own
    size: int  # bytes of data after the header (padded to whole blocks in the archive)
    offset: int  # where ``header`` starts in the archive


class TarReader:
    """Members of one archive read front to back from a stream; ``position`` is the byte reached."""

    def __init__(self, stream: BinaryIO, name: str, start: int = 0) -> None:
        self.stream, self.name, self.position = stream, name, 0
        if start:  # a resumed shard: the samples before ``start`` are done
            self._skip(start, f"input shard {name} is shorter than when it was last read")

    def _read(self, size: int) -> bytes:
        data = self.stream.read(size)
        self.position += len(data)
        return data

    def _read_exact(self, size: int, member: str) -> bytes:
        data = self._read(size)
        if len(data) != size:
            raise CurationError(f"input shard {self.name} is truncated: it ends inside {member}")
        return data

    def _skip(self, size: int, ended: str) -> None:
        """Read past ``size`` bytes (a stream cannot seek); ``ended``: the error if the file ends first."""
        while size:
            data = self._read(min(size, COPY_CHUNK))
            if not data:
                raise CurationError(ended)
            size -= len(data)

    def next_member(self) -> Member | None:
        """The next member's header, or None at the end of the archive (its zero block, or the end of
        the file between members). Its data must be copied or skipped before the next call."""
        start = self.position
        blocks: list[bytes] = []
        long_name = pax_name = pax_size = None
        while True:
            block = self._read(BLOCK)
            if not blocks and not block and start == 0:
                raise CurationError(f"input shard {self.name} is empty, not a tar file")
            if not blocks and (not block or block == ZERO_BLOCK):
                return None
            if len(block) != BLOCK:
                raise CurationError(f"input shard {self.name} is truncated: it ends inside a header at byte {start}")
            header = parse_header(block)
            if header is None:
                if start == 0:
                    raise CurationError(f"input shard {self.name} is not a tar file")
                raise CurationError(f"input shard {self.name} is damaged: no tar header at byte {start}")
            name, size, kind = header
            blocks.append(block)
            if kind in _EXTENSION_TYPES or kind in _LONG_TYPES:
                payload = self._read_exact(padded(size), f"the header of the member at byte {start}")
                blocks.append(payload)
                if kind == tarfile.GNUTYPE_LONGNAME:
                    long_name = payload[:size].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind != tarfile.GNUTYPE_LONGLINK and kind != tarfile.XGLTYPE:
                    records = self._pax_records(payload[:size], start)
                    pax_name, pax_size = records.get("path", pax_name), records.get("size", pax_size)
                continue
            has_data = kind in tarfile.REGULAR_TYPES or kind not in tarfile.SUPPORTED_TYPES
            size = int(pax_size) if pax_size is not None else size
            return Member(pax_name or long_name or name, b"".join(blocks), size if has_data else 0, start)

    def _pax_records(self, payload: bytes, start: int) -> dict[str, str]:
        """A pax header's 'LENGTH KEY=VALUE\\n' records."""
        records, at = {}, 0
        try:
            while at < len(payload) and payload[at : at + 1] != b"\0":
                space = payload.index(b" ", at)
                length = int(payload[at:space])
                key, _, value = payload[space + 1 : at + length - 1].partition(b"=")
                records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
                at += length
        except ValueError:
            raise CurationError(f"input shard {self.name} is damaged: a bad pax header at byte {start}") from None
        return records

    def copy_data(self, member: Member, target: TarWriter) -> None:
        """The member's data blocks, padding included, written to ``target`` as they are."""
        left = padded(member.size)
        while left:
            chunk = self._read_exact(min(left, COPY_CHUNK), member.name)
            target.write(chunk)
            left -= len(chunk)

    def skip_data(self, member: Member) -> None:
        self._skip(padded(member.size), f"input shard {self.name} is truncated: it ends inside {member.name}")


class TarWriter:
    """An archive made of copied members, closed as tar closes one: two zero blocks, then zeros to a
    whole record."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream, self.name, self.bytes = stream, name, 0

    def write(self, data: bytes) -> None:
        try:
            self.stream.write(data)
        except OSError as error:  # a full disk: named here, not taken for an input's error
            raise CurationError(f"cannot write output shard {self.name}: {error.strerror or error}") from None
        self.bytes += len(data)

    def copy(self, reader: TarReader, member: Member) -> None:
        self.write(member.header)
        reader.copy_data(member, self)

    def finish(self) -> None:
        end = self.bytes + 2 * BLOCK
        self.write(bytes(-(-end // RECORD) * RECORD - self.bytes))
