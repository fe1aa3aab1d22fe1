"""Open volume stores, kept per process.

Opening a :class:`~annotation.storage.VolumeStore` reads its metadata, and a store caches its
opened zarr arrays, so a tile server that opened one per request would pay both on every
tile. Stores are therefore kept in a small LRU keyed by the directory's absolute path. That is
safe because a volume's intensities never change and its label versions are immutable (a new
version is a new array, looked up by name); a store object may be shared between threads.
"""

from __future__ import annotations

from functools import lru_cache

from annotation.models import Volume
from annotation.storage import VolumeStore

__all__ = ["volume_store", "volume_store_at"]

_CACHED_STORES = 32


@lru_cache(maxsize=_CACHED_STORES)
def volume_store_at(path: str) -> VolumeStore:
    """The store at an absolute path, opened once per process (LRU of the last 32)."""
    return VolumeStore.open(path)


def volume_store(volume: Volume) -> VolumeStore:
    """The store of a volume row."""
    return volume_store_at(str(volume.storage_path))
