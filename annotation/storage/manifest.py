"""Label versions that hold only the chunks they changed, over a complete base version.

Two kinds of version live side by side in a volume's ``labels/`` group:

complete
    ``vN/<array>/`` is a plain zarr v3 array holding every chunk (files of its own, or hard
    links to its parent's). Segmentations, uploads and versions written before deltas are
    complete. Any zarr or OME-Zarr reader opens one as it is.
delta
    What an edit makes. ``vN/manifest.json`` names the complete version it is read over (its
    *base*) and, for every chunk changed since that base, the version whose folder holds it::

        {"format": 1, "base": "v3", "ortho": true,
         "chunks": {"0": {"4/1/2": "v9", "5/1/2": null}, "xz/0": {"0/3/1": "v9"}, ...}}

    ``null`` is a chunk that became all background (the fill value: no file). The version's
    own folder holds only the chunk files it wrote itself, at their usual keys, and no array
    metadata (``zarr.json`` of an array), so a plain zarr client refuses to open it rather than
    read zeros where the base's chunks belong. Our readers open it through
    :class:`DeltaStore`, a read-only zarr store that answers each key from the folder named by
    the manifest, so it is an ordinary ``zarr.Array`` for every caller. ``ortho`` says whether
    the XZ / YZ layouts are kept in step (the base had them when the first delta over it was
    written).

The chunks of an edit's coarse levels (1 and up, and their layouts) are named in its manifest
before they are written: the version's ``coarse-owed.json`` lists them until they are (see
:mod:`.labels`), and :meth:`VersionLayout.file`, the one way readers find a chunk's file, has
them written first.

The manifest of a version is its parent's with the edit's own chunks added (an edit of a
delta parent keeps the parent's base), so opening any version reads one small JSON file, never
a chain; its size is the number of chunks changed since the base, at most one entry per chunk.

:func:`materialise` turns a delta version into a complete one in place (hard links to the
holders' files, the arrays' metadata, then the manifest removed: readers see the same values
throughout), for an OME-Zarr reader pointed at the data folder (``manage.py
materialise_label_versions``); exports copy the resolved chunks (:func:`copy_arrays`).
Versions are never removed, so a holder named by a manifest always exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import LabelVersionError
from .zarrio import open_direct, read_json, write_json

__all__ = ["COARSE_PENDING", "MANIFEST", "DeltaStore", "Manifest", "VersionLayout", "array_names", "copy_arrays",
           "is_settled", "mark_settled", "materialise", "read_manifest", "write_manifest"]

MANIFEST = "manifest.json"
#: In a delta version's folder while the chunks of its coarse levels (1 and up, and their XZ /
#: YZ layouts) are still to be written: see :func:`.labels.finish_coarse_levels`. The manifest
#: names them already; a reader of one of them has them written first.
COARSE_PENDING = "coarse-owed.json"
_FORMAT = 1
_MISSING = object()
#: Version folders known to owe no coarse chunk (a version never changes once they are written).
_SETTLED: set[Path] = set()


def is_settled(folder: Path) -> bool:
    return folder in _SETTLED


def mark_settled(folder: Path) -> None:
    _SETTLED.add(folder)


def _is_coarse(array: str) -> bool:
    """``"1"``, ``"xz/2"``: an array of level 1 or above (level 0 is written before a version is published)."""
    return array.rpartition("/")[2] != "0"


def _settle(folder: Path, array: str) -> None:
    """Before a chunk of ``array`` is read from the version in ``folder``: its coarse levels written."""
    if folder not in _SETTLED and _is_coarse(array):
        from .labels import finish_coarse_levels  # the writer lives with the edits

        finish_coarse_levels(folder)


@dataclass(frozen=True)
class Manifest:
    """Where a delta version's chunks are: see the module docstring.

    Parameters
    ----------
    base : the complete version it is read over.
    ortho : True if the XZ / YZ layouts are kept (and so listed in ``chunks``).
    chunks : array name (``"0"``, ``"xz/0"``) -> {``"z/y/x"``: holding version, or ``None`` for
        a chunk of background}.
    """

    base: str
    ortho: bool
    chunks: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "base": self.base, "ortho": self.ortho, "chunks": self.chunks}

    @classmethod
    def from_dict(cls, data: dict) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("base"), str) \
                or not isinstance(data.get("chunks"), dict):
            raise LabelVersionError("a label version's manifest is not one this version reads")
        return cls(base=data["base"], ortho=bool(data.get("ortho")), chunks=data["chunks"])

    def holder(self, array: str, key: str):
        """The version holding chunk ``key`` of ``array``: a name, ``None`` (background), or
        :data:`_MISSING` (unchanged since the base)."""
        return self.chunks.get(array, {}).get(key, _MISSING)

    def with_changes(self, changes: dict[str, dict[str, str | None]]) -> "Manifest":
        merged = {name: dict(entries) for name, entries in self.chunks.items()}
        for name, entries in changes.items():
            merged.setdefault(name, {}).update(entries)
        return Manifest(base=self.base, ortho=self.ortho, chunks=merged)


def read_manifest(version_dir: Path) -> Manifest | None:
    """The manifest of the version in ``version_dir``; ``None`` for a complete version."""
    try:
        return Manifest.from_dict(read_json(version_dir / MANIFEST))
    except FileNotFoundError:
        return None


def write_manifest(version_dir: Path, manifest: Manifest) -> None:
    # Compact: every edit writes its version's manifest, which holds every chunk changed since
    # the base (14 kB after 130 edits of the bench's large volume), so it grows with the edits.
    write_json(version_dir / MANIFEST, manifest.to_dict(), compact=True)


def _chunk_key(relative: str) -> tuple[str, str] | None:
    """``"xz/0/c/1/2/3"`` -> (``"xz/0"``, ``"1/2/3"``); ``None`` for a key that is not a chunk."""
    array, sep, key = relative.partition("/c/")
    return (array, key) if sep else None


class VersionLayout:
    """Where the files of one version are (complete or delta), for reading and copying.

    Parameters
    ----------
    group : the volume's ``labels/`` folder.
    name : the version's name.
    folder : its folder, when it is not ``group / name`` (a version being written).
    manifest : its manifest (read from the folder when not given; ``None`` there: complete).
    """

    def __init__(self, group: Path, name: str, folder: Path | None = None, manifest: Manifest | None = _MISSING):
        self.group, self.name = Path(group), name
        self.folder = Path(folder) if folder is not None else self.group / name
        self.manifest = read_manifest(self.folder) if manifest is _MISSING else manifest

    @property
    def is_delta(self) -> bool:
        return self.manifest is not None

    def _folder_of(self, version: str) -> Path:
        return self.folder if version == self.name else self.group / version

    def metadata_file(self, array: str) -> Path:
        """The ``zarr.json`` that describes ``array`` (the base's, for a delta version)."""
        owner = self.folder if self.manifest is None else self.group / self.manifest.base
        return owner / array / "zarr.json"

    def has_ortho(self) -> bool:
        from .ortho import ORTHO_PLANES

        if self.manifest is not None and not self.manifest.ortho:
            return False
        return all(self.metadata_file(f"{plane}/0").exists() for plane in ORTHO_PLANES)

    def file(self, relative: str) -> Path | None:
        """The file holding ``relative`` (``"<array>/zarr.json"`` or ``"<array>/c/z/y/x"``);
        ``None`` where the key is background in this version."""
        if self.manifest is None:
            return self.folder / relative
        if relative.endswith("zarr.json") and _chunk_key(relative) is None:
            return self.metadata_file(relative[:-len("/zarr.json")])
        parts = _chunk_key(relative)
        if parts is None:
            return self.folder / relative
        holder = self.manifest.holder(*parts)
        if holder is None:
            return None
        if holder is _MISSING:
            return self.group / self.manifest.base / relative
        folder = self._folder_of(holder)
        _settle(folder, parts[0])
        return folder / relative

    def chunk_file(self, array: str, key: tuple[int, ...]) -> Path | None:
        return self.file(f"{array}/c/{'/'.join(str(i) for i in key)}")

    def chunk_files(self, array: str) -> Iterator[tuple[str, Path]]:
        """(``"z/y/x"``, file) of every stored chunk of ``array`` in this version."""
        root = self.folder if self.manifest is None else self.group / self.manifest.base
        changed = {} if self.manifest is None else self.manifest.chunks.get(array, {})
        for key in _stored_keys(root / array):
            if key not in changed:
                yield key, root / array / "c" / key
        for key, holder in changed.items():
            if holder is not None:
                folder = self._folder_of(holder)
                _settle(folder, array)
                yield key, folder / array / "c" / key

    def open(self, array: str):
        """``array`` of this version for reading: a :class:`.zarrio.DirectArray` (chunk files
        decoded in the calling thread) when it is in this package's encoding, else as
        :meth:`open_zarr`."""
        direct = open_direct(self.metadata_file(array), lambda key: self.chunk_file(array, key))
        return direct if direct is not None else self.open_zarr(array)

    def open_zarr(self, array: str):
        """``array`` of this version as a read-only ``zarr.Array``."""
        import zarr

        if self.manifest is None:
            return zarr.open_array(store=str(self.folder / array), mode="r", zarr_format=3)
        return zarr.open_array(store=DeltaStore(self, array), mode="r", zarr_format=3)


def _stored_keys(array_dir: Path) -> Iterator[str]:
    root = array_dir / "c"
    if not root.is_dir():
        return
    for zdir in os.scandir(root):
        for ydir in os.scandir(zdir.path):
            for xfile in os.scandir(ydir.path):
                if xfile.is_file() and not xfile.name.endswith(".partial"):
                    yield f"{zdir.name}/{ydir.name}/{xfile.name}"


def _store_class():
    from zarr.storage import LocalStore

    class _DeltaStore(LocalStore):
        """A read-only zarr store of one array of a delta version: each key is read from the
        file its manifest names (see :class:`VersionLayout.file`), background as missing."""

        def __init__(self, layout: VersionLayout, array: str) -> None:
            super().__init__(layout.folder, read_only=True)
            self._layout, self._prefix = layout, array

        def with_read_only(self, read_only: bool = False):
            if not read_only:
                raise ValueError("a delta label version is read-only")
            return self

        def __eq__(self, other: object) -> bool:
            return isinstance(other, _DeltaStore) and (self._layout.folder, self._prefix) == (
                other._layout.folder, other._prefix)

        def __hash__(self) -> int:
            return hash((self._layout.folder, self._prefix))

        def _path(self, key: str) -> Path | None:
            return self._layout.file(f"{self._prefix}/{key}")

        @staticmethod
        def _read(path: Path | None, prototype, byte_range):
            from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest

            if path is None:
                return None
            try:
                data = path.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            if isinstance(byte_range, RangeByteRequest):
                data = data[byte_range.start:byte_range.end]
            elif isinstance(byte_range, OffsetByteRequest):
                data = data[byte_range.offset:]
            elif isinstance(byte_range, SuffixByteRequest):
                data = data[max(0, len(data) - byte_range.suffix):]
            elif byte_range is not None:
                raise TypeError(f"unexpected byte range {byte_range!r}")
            return prototype.buffer.from_bytes(data)

        def _prototype(self, prototype):
            from zarr.core.buffer import default_buffer_prototype

            return prototype if prototype is not None else default_buffer_prototype()

        def get_sync(self, key, *, prototype=None, byte_range=None):
            return self._read(self._path(key), self._prototype(prototype), byte_range)

        async def get(self, key, prototype=None, byte_range=None):
            return await asyncio.to_thread(self._read, self._path(key), self._prototype(prototype), byte_range)

        async def get_partial_values(self, prototype, key_ranges):
            return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

        async def exists(self, key: str) -> bool:
            path = self._path(key)
            return path is not None and path.is_file()

    return _DeltaStore


_DELTA_STORE = None


def DeltaStore(layout: VersionLayout, array: str):  # noqa: N802 - a class, built once zarr is imported
    """The read-only zarr store of ``array`` of a delta version (zarr is imported lazily)."""
    global _DELTA_STORE
    if _DELTA_STORE is None:
        _DELTA_STORE = _store_class()
    return _DELTA_STORE(layout, array)


def _place(source: Path, dest: Path, *, link: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(source, dest)
            return
        except FileExistsError:
            return  # placed by an earlier, stopped run: the same bytes
        except OSError:  # EXDEV, EPERM, EMLINK: the same bytes, at the price of a copy
            pass
    tmp = dest.with_name(f".{dest.name}.copy")
    shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def array_names(layout: VersionLayout, n_levels: int) -> list[str]:
    """The arrays of a version: its levels, and the XZ / YZ layouts where it keeps them."""
    from .ortho import ORTHO_PLANES

    names = [str(level) for level in range(n_levels)]
    if layout.has_ortho():
        names += [f"{plane}/{level}" for plane in ORTHO_PLANES for level in range(n_levels)]
    return names


def copy_arrays(layout: VersionLayout, dest: Path, arrays: list[str], *, link: bool) -> None:
    """Write ``arrays`` of a version as complete zarr arrays under ``dest`` (copies, or hard
    links where ``link``): the array metadata and every stored chunk, resolved through the
    manifest. ``dest`` may be the version's own folder (see :func:`materialise`)."""
    for array in arrays:
        target = dest / array
        for key, source in layout.chunk_files(array):
            if source == target / "c" / key:  # already there: a chunk this version wrote
                continue
            _place(source, target / "c" / key, link=link)
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / ".zarr.json.copy"
        shutil.copyfile(layout.metadata_file(array), tmp)
        os.replace(tmp, target / "zarr.json")


def materialise(layout: VersionLayout, n_levels: int) -> bool:
    """Make a delta version complete in place; False if it already was.

    The missing chunk files are hard-linked from the versions that hold them (copied where the
    file system refuses), then the arrays' metadata written, then the manifest removed: a reader
    using the manifest and one reading the files see the same values at every step, and a run
    stopped half-way is finished by the next one.
    """
    if not layout.is_delta:
        return False
    copy_arrays(layout, layout.folder, array_names(layout, n_levels), link=True)
    (layout.folder / MANIFEST).unlink()
    return True
