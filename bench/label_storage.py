"""What one edit of a label version costs in storage, by scheme, on a large volume: the figures
behind the choice of delta versions (annotation/storage/manifest.py) in the README.

On a (Z, Y, X) volume (default 64 x 2048 x 2048) with a complete label version whose every chunk
holds ids, it times, median of ``--repeat``:

* **hard links** (the scheme before delta versions): a new version directory in which every
  chunk file of every level and of the XZ / YZ layouts is a hard link to the parent's, which is
  what that scheme paid per edit on top of the few chunks it wrote;
* **delta**: ``VolumeStore.write_label_edit`` of a 3 x 40 x 40 region, as an edit makes it now
  (the changed chunks and a manifest), over the complete version and, taking turns with it,
  over a version after ``--chain`` earlier edits (a manifest that has grown), and a label tile
  read through the manifest against one from a complete version;
* **icechunk** (``--icechunk``, when the package is importable): the same levels and XZ / YZ
  layouts in an icechunk repository on the local file system, the edit's chunks written in a
  session (through zarr) and committed.

    python bench/label_storage.py [--shape 64 2048 2048] [--repeat 5] [--chain 50] [--icechunk]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _plane(shape, z: int) -> np.ndarray:
    """Plane z of labels with an id per 16 x 16 square: every chunk holds ids."""
    _, y, x = shape
    rows, cols = np.indices((y, x))
    return (1 + (rows // 16) * (x // 16) + cols // 16 + z * 7).astype(np.uint32)


def _region(shape, i: int):
    """The i-th edit's (z, y, x) bounds: 3 x 40 x 40 voxels (fewer planes in a thin stack), in
    the middle, moving by 40 rows an edit."""
    z, y, x = shape
    z0 = max(0, z // 2 - 1)
    y0 = y // 4 + (40 * i) % (y // 2)
    return (z0, min(z, z0 + 3)), (y0, y0 + 40), (x // 2, x // 2 + 40)


def _ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def _link_all(source: Path, dest: Path) -> int:
    count = 0
    for directory, _, names in os.walk(source):
        target = dest / os.path.relpath(directory, source)
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            if name not in ("zarr.json", "manifest.json", "chunk_max.npy"):
                os.link(os.path.join(directory, name), target / name)
                count += 1
    return count


def _icechunk(work: Path, store, shape, repeat: int) -> list[float] | None:
    try:
        import icechunk
        import zarr
    except ImportError:
        print("icechunk is not importable: skipped")
        return None
    from annotation.storage.ortho import LABEL_DEPTH, ORTHO_PLANES, ortho_chunk
    from annotation.storage.zarrio import _codec

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(work / "icechunk")))
    session = repo.writable_session("main")
    names = []  # the levels and, as our versions have, their XZ / YZ layouts
    for level, level_shape in enumerate(store.meta.level_shapes):
        layouts = [(str(level), (1, 256, 256))] + [(f"{p}/{level}", ortho_chunk(p, level_shape[0], LABEL_DEPTH))
                                                   for p in ORTHO_PLANES]
        for name, chunk in layouts:
            array = zarr.create_array(store=session.store, name=name, shape=level_shape, dtype=np.uint32,
                                      chunks=chunk, compressors=[_codec()], fill_value=0)
            depth = chunk[0]
            for z0 in range(0, level_shape[0], depth):
                array[z0:z0 + depth] = np.stack([_plane(shape, z)[::2 ** level, ::2 ** level]
                                                 for z in range(z0, min(z0 + depth, level_shape[0]))])
            names.append((name, level))
    session.commit("v1")
    times = []
    for i in range(repeat):
        def edit(i=i):
            s = repo.writable_session("main")
            (z0, z1), (y0, y1), (x0, x1) = _region(shape, i)
            for name, level in names:
                a = zarr.open_array(store=s.store, path=name, mode="r+")
                step = 2 ** level
                a[z0:z1, -(-y0 // step):-(-y1 // step), -(-x0 // step):-(-x1 // step)] = 9
            s.commit(f"edit {i}")
        times.append(_ms(edit))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 2048, 2048), metavar=("Z", "Y", "X"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chain", type=int, default=50)
    parser.add_argument("--icechunk", action="store_true", help="also time an icechunk repository")
    args = parser.parse_args()
    shape = tuple(args.shape)

    from annotation.storage import VolumeStore
    from annotation.storage.manifest import read_manifest

    work = Path(tempfile.mkdtemp(prefix="ezquant-bench-labels-"))
    try:
        t = time.perf_counter()
        store = VolumeStore.create(work / "vol.zarr", np.zeros(shape, np.uint8), voxel_size=(2.0, 0.5, 0.5))
        meta = store.write_label_planes(lambda z: _plane(shape, z), n_labels=int(_plane(shape, shape[0] - 1).max()))
        print(f"built {shape} with a complete label version ({meta.chunks_written:,} chunks written at the levels) "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        group = store.path / "labels"
        links, linked = [], 0
        for i in range(args.repeat):
            dest = work / f"links-{i}"
            links.append(_ms(lambda dest=dest: _link_all(group / "v1", dest)))
            linked = sum(1 for _ in dest.rglob("*") if _.is_file())
            shutil.rmtree(dest)

        def edit(parent: str, i: int):
            (z0, z1), (y0, y1), (x0, x1) = _region(shape, i)
            return store.write_label_edit(parent, (slice(z0, z1), slice(y0, y1), slice(x0, x1)),
                                          np.full((z1 - z0, 40, 40), 9 + i, np.uint32))

        head = edit("v1", 0).name
        for i in range(1, args.chain):
            head = edit(head, i).name
        first, chained = [], []
        for i in range(args.repeat):  # taking turns: a changing load weighs on both alike
            first.append(_ms(lambda i=i: edit("v1", i)))
            made = []
            chained.append(_ms(lambda i=i, head=head, made=made: made.append(edit(head, i))))
            head = made[-1].name
        entries = sum(len(v) for v in read_manifest(group / head).chunks.values())
        fresh = VolumeStore.open(store.path)
        (z0, _), (y0, _), (x0, _) = _region(shape, args.repeat - 1)  # a tile the last edit wrote
        tile = (z0, y0 // 256, x0 // 256)
        plain = [_ms(lambda: fresh.read_label_tile("v1", 0, *tile)) for _ in range(20)]
        delta = [_ms(lambda: fresh.read_label_tile(head, 0, *tile)) for _ in range(20)]
        ice = _icechunk(work, store, shape, args.repeat) if args.icechunk else None

        med = statistics.median
        print(f"\nlabel storage, one edit of 3 x 40 x 40 voxels, {shape[0]}x{shape[1]}x{shape[2]}, "
              f"median of {args.repeat} (ms)")
        print(f"  hard links (before): linking the parent's {linked:,} chunk files   {med(links):8.1f}")
        print(f"  delta, over the complete version                        {med(first):8.1f}")
        print(f"  delta, after {args.chain} chained edits ({entries:,} manifest entries)   {med(chained):8.1f}")
        if ice is not None:
            print(f"  icechunk, write the edit's chunks and commit            {med(ice):8.1f}")
        print(f"label tile read (level 0, after the first), complete {med(plain[1:]):.2f} ms, "
              f"delta {med(delta[1:]):.2f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
