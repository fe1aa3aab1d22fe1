"""Edits through the corrections API: p50 and p95 of split, merge, delete, add and undo on a
large volume (64 x 2048 x 2048 uint16 by default, as bench/viewer.py builds) against the same
edits on a 16 x 256 x 256 one, in the same run, and the ratio large / small.

The target (issue 15): p50 <= 100 ms on the large volume and large / small <= 1.5.

What is built, in ``--work`` (a temporary folder unless given):

* one generated 16 x 256 x 256 block of nuclei (``generate_3d``, seed 11, as bench/viewer.py);
* the small volume: that block; the large one: copies of it across the field and down the
  stack, each with its own ids and an intensity offset (bench/viewer.py's construction),
  imported from a TIFF with annotation's ``volume_import``;
* their label versions with ``label_version_create_planes``. The small volume's nuclei are
  measured (``nucleus_table``). Measuring every copy of the large one takes hours on 2 shared
  cores (35 s a block under load, 256 blocks), so its rows are the block's rows moved to each
  copy: ids + the copy's id offset, boxes and centroids + its position, mean intensity + its
  intensity offset, integrated intensity + offset x voxels, the rest equal. That is exactly what
  measuring would give, since each copy is the block shifted, its intensities plus a constant
  (no value reaches the uint16 limit), and no nucleus crosses from one copy into the next
  (ids are unique per copy).

Then, in one process (Django's test client against the real URLs, views, services, SQLite
database and data folder; signed in as the project's owner), ``--rounds`` rounds, each on the
small and then the large volume, each edit on nuclei picked at random near the middle planes:
split a nucleus across its centre line, undo; merge a nucleus with its nearest neighbour,
undo; delete one, undo; add a 9 x 9 square on background, undo (after one delete and undo on
each volume, not counted). The time of each POST is the
API's answer (request in, JSON out). Run it with ``nice -n 15`` on a shared machine.

    python bench/edits.py [--rounds 10] [--work DIR] [--shape 64 2048 2048]

``--work DIR`` keeps the data and database there and uses them again on a later run (the
edits of earlier runs included; each round undoes its edits).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BLOCK = (16, 256, 256)
SMALL = BLOCK
KINDS = ("split", "merge", "delete", "add", "undo")


def _setup_django(work: Path) -> None:
    os.environ.update({"DATABASE_URL": f"sqlite:///{work}/db.sqlite3", "EZQUANT_DATA_DIR": str(work / "data"),
                       "EZQUANT_EMBEDDED_WORKER": "0", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "ezquant_web.settings"})
    import django

    django.setup()


def _block(work: Path):
    """The generated block: (image uint16, labels uint32), cached in ``work``."""
    cached = work / "block.npz"
    if cached.exists():
        with np.load(cached) as data:
            return data["image"], data["labels"]
    from segmentation.core.synthetic import generate_3d

    sample = generate_3d(shape=BLOCK, seed=11)
    image = np.clip(np.round(sample.image * 100), 0, 60000).astype(np.uint16)
    labels = sample.labels.astype(np.uint32)
    np.savez(cached, image=image, labels=labels)
    return image, labels


class _Tiling:
    """Copies of the block over a (Z, Y, X) field: copy k at block (bz, by, bx), ids + k * per_block,
    intensities + k % 50 * 20 (bench/viewer.py's field)."""

    def __init__(self, shape, image, labels):
        self.shape, self.image, self.labels = shape, image, labels
        self.per_block = int(labels.max())
        self.grid = tuple(s // b for s, b in zip(shape, BLOCK, strict=True))

    def copy_index(self, bz, by, bx) -> int:
        return (bz * self.grid[1] + by) * self.grid[2] + bx

    def plane(self, z: int, labels: bool) -> np.ndarray:
        bz, zz = divmod(z, BLOCK[0])
        rows = []
        for by in range(self.grid[1]):
            row = []
            for bx in range(self.grid[2]):
                k = self.copy_index(bz, by, bx)
                if labels:
                    p = self.labels[zz]
                    row.append(np.where(p > 0, p + np.uint32(k * self.per_block), 0).astype(np.uint32))
                else:
                    row.append(self.image[zz] + np.uint16(k % 50 * 20))
            rows.append(np.concatenate(row, axis=1))
        return np.concatenate(rows, axis=0)

    def rows(self, block_rows: list[dict]) -> list[dict]:
        out = []
        for bz in range(self.grid[0]):
            for by in range(self.grid[1]):
                for bx in range(self.grid[2]):
                    k = self.copy_index(bz, by, bx)
                    dz, dy, dx = bz * BLOCK[0], by * BLOCK[1], bx * BLOCK[2]
                    c = k % 50 * 20
                    for r in block_rows:
                        row = dict(r)
                        row["label_id"] = r["label_id"] + k * self.per_block
                        for axis, d in (("z", dz), ("y", dy), ("x", dx)):
                            row[f"{axis}_min"] += d
                            row[f"{axis}_max"] += d
                            row[f"centroid_{axis}"] += d
                        row["mean_intensity"] = r["mean_intensity"] + c
                        row["integrated_intensity"] = r["integrated_intensity"] + c * r["volume_voxels"]
                        out.append(row)
        return out


def _build(work: Path, shape, name: str, image, labels, block_rows, user, project) -> int:
    import tifffile

    from annotation.services import label_version_create_planes, volume_import

    tiling = _Tiling(shape, image, labels)
    tiff = work / f"{name}.tif"
    with tifffile.TiffWriter(tiff, bigtiff=True) as writer:
        writer.write((tiling.plane(z, labels=False) for z in range(shape[0])), shape=shape, dtype=np.uint16,
                     photometric="minisblack", metadata={"axes": "ZYX"})
    volume = volume_import(project=project, src_path=tiff, name=name, user=user, voxel_size=(2.0, 0.5, 0.5))
    tiff.unlink()
    rows = tiling.rows(block_rows)
    n_labels = max(r["label_id"] for r in rows)
    label_version_create_planes(volume=volume, plane_of=lambda z: tiling.plane(z, labels=True), n_labels=n_labels,
                                rows=rows, user=user, source="upload")
    return volume.id


def _seed(work: Path, shape) -> dict:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from annotation.services import project_create
    from segmentation.core.measurements import nucleus_table

    call_command("migrate", "--noinput", verbosity=0)
    t = time.perf_counter()
    image, labels = _block(work)
    print(f"generated the {BLOCK} block ({int(labels.max())} nuclei) in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    block_rows = nucleus_table(labels, image, (2.0, 0.5, 0.5))
    print(f"measured its nuclei in {time.perf_counter() - t:.0f} s", flush=True)
    user = get_user_model().objects.create_user("bench", password="bench bench bench")
    project = project_create(name="bench", user=user)
    seed = {}
    for name, size in (("small", SMALL), ("large", shape)):
        t = time.perf_counter()
        seed[name] = _build(work, size, name, image, labels, block_rows, user, project)
        print(f"built the {name} volume {size} in {time.perf_counter() - t:.0f} s", flush=True)
    (work / "seed.json").write_text(json.dumps({**seed, "shape": list(shape)}))
    return seed


class _Editor:
    """The edits of one volume through the API; each call returns the API's time in ms."""

    def __init__(self, client, volume_id: int, rng) -> None:
        from annotation.models import Volume

        self.client, self.rng = client, rng
        self.volume = Volume.objects.get(id=volume_id)
        self.head = self._head()

    def _head(self) -> str:
        from annotation.models import LabelVersion

        return LabelVersion.objects.filter(volume=self.volume).order_by("-number").first().name

    def _post(self, url: str, body: dict) -> tuple[float, dict]:
        t = time.perf_counter()
        response = self.client.post(url, json.dumps(body), content_type="application/json")
        ms = (time.perf_counter() - t) * 1000
        if response.status_code != 201:
            raise SystemExit(f"{url} {body}: {response.status_code} {response.content[:400]!r}")
        return ms, response.json()

    def _nuclei(self):
        """Nuclei of the head that reach the middle planes, of 80 voxels or more."""
        from annotation.models import LabelVersion
        from annotation.selectors import nucleus_list

        version = LabelVersion.objects.get(volume=self.volume, name=self.head)
        z_mid = self.volume.shape[0] // 2
        return nucleus_list(label_version=version).filter(volume_voxels__gte=80, z_min__lte=z_mid,
                                                          z_max__gte=z_mid - 1)

    def _pick(self, count: int = 1):
        candidates = list(self._nuclei().values("label_id", "z_min", "z_max", "y_min", "y_max", "x_min", "x_max",
                                                "centroid_y", "centroid_x")[:4000])
        picked = [candidates[int(i)] for i in self.rng.choice(len(candidates), size=1, replace=False)]
        if count == 2:
            first = picked[0]
            near = min((c for c in candidates if c["label_id"] != first["label_id"]),
                       key=lambda c: (c["centroid_y"] - first["centroid_y"]) ** 2
                       + (c["centroid_x"] - first["centroid_x"]) ** 2)
            picked.append(near)
        return picked

    def edit(self, body: dict) -> tuple[float, int]:
        from django.urls import reverse

        ms, made = self._post(reverse("correction-list", args=[self.volume.id]), {"label_version": self.head, **body})
        self.head = made["result_version"]
        return ms, made["id"]

    def undo(self, correction_id: int) -> float:
        from django.urls import reverse

        ms, made = self._post(reverse("correction-undo", args=[correction_id]), {"label_version": self.head})
        self.head = made["result_version"]
        return ms

    def split(self) -> dict:
        n = self._pick()[0]
        z = (n["z_min"] + n["z_max"]) // 2
        cx = round(n["centroid_x"])
        return {"type": "split", "nucleus_ids": [n["label_id"]], "z": z,
                "line": [[n["y_min"] - 2, cx], [n["y_max"] + 2, cx]]}

    def merge(self) -> dict:
        a, b = self._pick(2)
        return {"type": "merge", "nucleus_ids": [a["label_id"], b["label_id"]]}

    def delete(self) -> dict:
        return {"type": "delete", "nucleus_ids": [self._pick()[0]["label_id"]]}

    def add(self, spots) -> dict:
        z, y, x = spots[int(self.rng.integers(len(spots)))]
        Z, Y, X = self.volume.shape
        bz, by, bx = (int(self.rng.integers(s // b)) for s, b in zip((Z, Y, X), BLOCK, strict=True))
        y0, x0 = by * BLOCK[1] + y, bx * BLOCK[2] + x
        return {"type": "add", "z": bz * BLOCK[0] + z,
                "polygon": [[y0, x0], [y0, x0 + 8], [y0 + 8, x0 + 8], [y0 + 8, x0]]}


def _background_spots(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(z, y, x) of the block where a 9 x 9 square (and a pixel around it) is background."""
    spots = []
    for z in range(labels.shape[0]):
        for y in range(8, labels.shape[1] - 20, 10):
            for x in range(8, labels.shape[2] - 20, 10):
                if not labels[z, y - 1:y + 10, x - 1:x + 10].any():
                    spots.append((z, y, x))
    return spots


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the eight edits on each volume")
    parser.add_argument("--work", type=Path, help="keep the data in this folder, and reuse it if it is there")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=(64, 2048, 2048),
                        help="the large volume: multiples of 16 x 256 x 256 (default %(default)s)")
    args = parser.parse_args()
    shape = tuple(args.shape)
    if any(s % b for s, b in zip(shape, BLOCK, strict=True)):
        parser.error(f"--shape must be multiples of {BLOCK}")
    work = args.work or Path(tempfile.mkdtemp(prefix="ezquant-bench-edits-"))
    work.mkdir(parents=True, exist_ok=True)
    _setup_django(work)

    from django.contrib.auth import get_user_model
    from django.test import Client

    from annotation.models import LabelVersion
    from annotation.selectors import nucleus_list

    if (work / "seed.json").exists():
        seed = json.loads((work / "seed.json").read_text())
        if tuple(seed["shape"]) != shape:
            raise SystemExit(f"{work} holds a large volume of {tuple(seed['shape'])}, not {shape}")
        print(f"using the data in {work}", flush=True)
    else:
        seed = _seed(work, shape)
    _, block_labels = _block(work)
    spots = _background_spots(block_labels)
    client = Client(SERVER_NAME="localhost")
    client.force_login(get_user_model().objects.get(username="bench"))
    rng = np.random.default_rng(7)
    editors = {name: _Editor(client, seed[name], rng) for name in ("small", "large")}
    for name, editor in editors.items():
        count = nucleus_list(label_version=LabelVersion.objects.get(volume=editor.volume, name=editor.head)).count()
        print(f"{name}: {tuple(editor.volume.shape)}, {count:,} nuclei in {editor.head}", flush=True)
    for editor in editors.values():  # one edit and its undo, not counted: imports, caches, first queries
        editor.undo(editor.edit(editor.delete())[1])
    times = {name: {kind: [] for kind in KINDS} for name in editors}
    for round_ in range(args.rounds):
        for name, editor in editors.items():
            for kind in ("split", "merge", "delete", "add"):
                body = editor.add(spots) if kind == "add" else getattr(editor, kind)()
                ms, made = editor.edit(body)
                times[name][kind].append(ms)
                times[name]["undo"].append(editor.undo(made))
            print(f"  round {round_ + 1} {name}: " + ", ".join(
                f"{kind} {times[name][kind][-1]:.0f}" for kind in KINDS) + " ms", flush=True)

    large = editors["large"].volume.shape
    print(f"\ncorrections API, ms (Django test client, in process; {args.rounds} of each edit per volume, "
          f"undo {4 * args.rounds}; interleaved)")
    print(f"{'edit':<8} {'small p50':>10} {'p95':>7} {'large p50':>10} {'p95':>7} {'p50 ratio':>10} {'p95 ratio':>10}")
    print(f"{'':<8} {'x'.join(map(str, SMALL)):>18} {'x'.join(map(str, large)):>18}")
    for kind in KINDS:
        s, g = times["small"][kind], times["large"][kind]
        sp, s95, gp, g95 = _percentile(s, 50), _percentile(s, 95), _percentile(g, 50), _percentile(g, 95)
        print(f"{kind:<8} {sp:>10.0f} {s95:>7.0f} {gp:>10.0f} {g95:>7.0f} {gp / sp:>10.2f} {g95 / s95:>10.2f}")
    every = {name: [v for kind in KINDS for v in times[name][kind]] for name in times}
    sp, gp = _percentile(every["small"], 50), _percentile(every["large"], 50)
    print(f"{'all':<8} {sp:>10.0f} {_percentile(every['small'], 95):>7.0f} {gp:>10.0f} "
          f"{_percentile(every['large'], 95):>7.0f} {gp / sp:>10.2f} "
          f"{_percentile(every['large'], 95) / _percentile(every['small'], 95):>10.2f}")
    print(f"target: large p50 <= 100 ms, large / small <= 1.5 (worst p50 ratio "
          f"{max(_percentile(times['large'][k], 50) / _percentile(times['small'][k], 50) for k in KINDS):.2f})")


if __name__ == "__main__":
    main()
