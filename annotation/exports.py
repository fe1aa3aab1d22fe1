"""Streams for downloads: a directory as a ZIP archive and rows as CSV, produced as they are sent.

Both are generators of ``bytes`` for a ``StreamingHttpResponse``: memory stays at one chunk
whatever the size of the export, and the client starts receiving at once.
"""

from __future__ import annotations

import csv
import os
import shutil
import zipfile
from pathlib import Path
from typing import Iterable, Iterator

__all__ = ["csv_stream", "zip_directory_stream"]

_CHUNK = 1 << 20


class _Sink:
    """A write-only file object that hands what was written to the generator, bit by bit."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> list[bytes]:
        """What was written since the last call, as one chunk (none if nothing was)."""
        data, self._parts = b"".join(self._parts), []
        return [data] if data else []


def zip_directory_stream(directory: Path, *, root_name: str, remove: Path | None = None) -> Iterator[bytes]:
    """The files under ``directory`` as a ZIP archive, entries named ``root_name/<relative path>``.

    Entries are stored, not deflated: zarr chunks are already compressed. ZIP64 is used where
    sizes need it. ``remove``, if given, is deleted (recursively) when the stream ends, is
    closed early (the client went away) or fails.
    """
    sink = _Sink()
    try:
        # An unseekable sink: zipfile writes data descriptors after each entry instead of seeking back.
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for folder, subfolders, files in os.walk(directory):
                subfolders.sort()
                for name in sorted(files):
                    path = Path(folder) / name
                    info = zipfile.ZipInfo.from_file(path, f"{root_name}/{path.relative_to(directory).as_posix()}")
                    with open(path, "rb") as src, archive.open(info, "w") as dst:
                        while block := src.read(_CHUNK):
                            dst.write(block)
                            yield from sink.take()
                    yield from sink.take()
        yield from sink.take()
    finally:
        if remove is not None:
            shutil.rmtree(remove, ignore_errors=True)


class _Line:
    def write(self, line: str) -> str:
        return line


def csv_stream(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[bytes]:
    """``header`` then ``rows`` as UTF-8 CSV lines (``None`` becomes an empty field)."""
    writer = csv.writer(_Line())
    yield writer.writerow(list(header)).encode()
    batch = []
    for row in rows:
        batch.append(writer.writerow(["" if v is None else v for v in row]))
        if len(batch) >= 1000:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()
