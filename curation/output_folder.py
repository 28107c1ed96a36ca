"""A folder of finished files, on disk or under an object-storage prefix, where every file appears whole:
on disk it is written under a temporary name and renamed; for a store it is finished in a local
scratch folder and uploaded in one piece (an object appears whole or not at all).

Writers ask ``scratch`` for where to write a file, then ``publish`` it; everything else is read back
by name. Local and store paths part here, and nowhere else.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from curation.rundir import temporary_path
from studio_common import storage

TEMPORARY = ".*.tmp-*"  # the names rundir.temporary_path gives files being written


class OutputFolder:
    def __init__(self, spec: str) -> None:
        self.spec = spec.rstrip("/") or spec
        self.remote = storage.is_uri(spec)
        self._scratch = Path(tempfile.mkdtemp(prefix="materialize-")) if self.remote else None
        if not self.remote:
            root = Path(spec)
            root.mkdir(parents=True, exist_ok=True)
            for leftover in [*root.glob(TEMPORARY), *root.glob(f"*/{TEMPORARY}")]:
                leftover.unlink(missing_ok=True)  # half-written files of a killed run: never complete

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def where(self, name: str) -> str:
        """How the user names the file: a path or a URI."""
        return f"{self.spec}/{name}" if self.remote else str(Path(self.spec) / name)

    def scratch(self, name: str) -> Path:
        """A temporary local path to write ``name`` to, made whole by ``publish``."""
        if self._scratch is not None:
            path = self._scratch / name
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        final = Path(self.spec) / name
        final.parent.mkdir(parents=True, exist_ok=True)
        return temporary_path(final)

    def publish(self, scratch: Path, name: str) -> None:
        """The finished scratch file becomes ``name``."""
        if self.remote:
            try:
                storage.upload(scratch, self.where(name))
            finally:
                scratch.unlink(missing_ok=True)
        else:
            scratch.replace(Path(self.spec) / name)

    def discard(self, scratch: Path) -> None:
        scratch.unlink(missing_ok=True)

    def write_bytes(self, name: str, data: bytes) -> None:
        scratch = self.scratch(name)
        scratch.write_bytes(data)
        self.publish(scratch, name)

    def write_json(self, name: str, value: object) -> None:
        self.write_bytes(name, (json.dumps(value, indent=2) + "\n").encode())

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, None when there is none."""
        if self.remote:
            return storage.read_bytes(self.where(name)) if storage.exists(self.where(name)) else None
        path = Path(self.spec) / name
        return path.read_bytes() if path.is_file() else None

    def read_json(self, name: str) -> dict | None:
        data = self.read_bytes(name)
        return None if data is None else json.loads(data)

    def names(self, suffix: str) -> list[str]:
        """Names of the files directly in the folder ending with ``suffix``."""
        if self.remote:
            return [storage.name_of(uri) for uri, _ in storage.glob_files(f"{self.spec}/*{suffix}")]
        return sorted(p.name for p in Path(self.spec).glob(f"*{suffix}") if p.is_file())

    def remove(self, names: list[str]) -> None:
        """Delete files, and on disk the folders among them left empty."""
        for name in names:
            if self.remote:
                storage.delete(self.where(name))
            else:
                (Path(self.spec) / name).unlink(missing_ok=True)
        if not self.remote:
            for folder in sorted({(Path(self.spec) / name).parent for name in names} - {Path(self.spec)}):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
