"""What the nucleus rows cost an edit: the corrections API timed on one small volume whose
label version carries 0 and then ``--rows`` extra nucleus rows, in the same run.

Builds, in a temporary folder with its own SQLite database (``--database-url`` for
PostgreSQL), a generated 16 x 256 x 256 stack with its true labels, measured by
``label_version_create``. The second volume is the same stack with ``--rows`` more nucleus
rows in its version (copies of the measured ones under ids from 2**23 on, which no voxel
carries): the pixel work of an edit is the same on both, so the difference is what the rows
cost. Then, through the REST API as an admin, ``--repeat`` rounds, each on the small and then
the large volume: delete the largest nucleus, undo it, redo it, undo the redo, check a nucleus
and withdraw the check (six requests, four of them new label versions). Prints p50 and p95 per
operation and volume.

    python bench/nucleus_rows.py [--rows 200000] [--repeat 5] [--database-url postgres://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPE = (16, 256, 256)
FILLER_FIRST_ID = 2 ** 23


def _setup(work: Path, database_url: str | None) -> None:
    os.environ["EZQUANT_DATA_DIR"] = str(work / "data")
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{work / 'db.sqlite3'}"
    os.environ["EZQUANT_EMBEDDED_WORKER"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ezquant_web.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _volume(work: Path, project, user, image, labels, name: str):
    import tifffile

    from annotation.models import LabelVersion
    from annotation.services import label_version_create, volume_import

    path = work / f"{name}.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(2.0, 2.0),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    volume = volume_import(project=project, src_path=path, name=name, user=user)
    ids = np.unique(labels)[1:]
    return label_version_create(volume=volume, labels=labels, user=user, source=LabelVersion.Source.SEGMENTATION,
                                uncertainty={int(i): float(i) / 1000 for i in ids})


def _add_rows(version, n: int) -> None:
    """``n`` more rows in ``version``: the measured rows again, under ids no voxel carries."""
    from annotation.models import Nucleus

    measured = list(Nucleus.objects.of(version).values())
    extra = []
    for k in range(n):
        row = dict(measured[k % len(measured)])
        row.pop("id")
        row["label_id"] = FILLER_FIRST_ID + k
        extra.append(Nucleus(**row))
    Nucleus.objects.bulk_create(extra, batch_size=5000)


def _timed(client, method: str, url: str, body: dict) -> tuple[float, dict]:
    t = time.perf_counter()
    response = getattr(client, method)(url, body, format="json")
    elapsed = time.perf_counter() - t
    if response.status_code not in (200, 201):
        raise SystemExit(f"{method.upper()} {url} answered {response.status_code}: {response.content[:300]!r}")
    return elapsed, response.json()


def _edits(client, volume, repeat: int) -> dict[str, list[float]]:
    from django.urls import reverse

    from annotation.models import LabelVersion, Nucleus

    times: dict[str, list[float]] = {}

    def head() -> str:
        return LabelVersion.objects.filter(volume=volume).order_by("-number").first().name

    for _ in range(repeat):
        version = LabelVersion.objects.filter(volume=volume).order_by("-number").first()
        target = Nucleus.objects.of(version).filter(label_id__lt=FILLER_FIRST_ID).order_by("-volume_voxels").first()
        elapsed, made = _timed(client, "post", reverse("correction-list", args=[volume.id]),
                               {"label_version": head(), "type": "delete", "nucleus_ids": [target.label_id]})
        times.setdefault("delete", []).append(elapsed)
        correction = made["id"]
        for name, route in (("undo", "correction-undo"), ("redo", "correction-redo"), ("undo redo", "correction-undo")):
            elapsed, step = _timed(client, "post", reverse(route, args=[correction]), {"label_version": head()})
            times.setdefault(name, []).append(elapsed)
            correction = step["correction"]["id"]  # a redo is a new correction
        checked = Nucleus.objects.of(LabelVersion.objects.get(volume=volume, name=head())).filter(
            label_id__lt=FILLER_FIRST_ID, curation="").order_by("label_id").first()
        elapsed, made = _timed(client, "post", reverse("correction-list", args=[volume.id]),
                               {"label_version": head(), "type": "confirm", "nucleus_ids": [checked.label_id]})
        times.setdefault("check", []).append(elapsed)
        elapsed, _ = _timed(client, "post", reverse("correction-undo", args=[made["id"]]), {"label_version": head()})
        times.setdefault("withdraw check", []).append(elapsed)
    return times


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="extra nucleus rows in the large version")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in the work folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ezq-nucleus-rows-") as tmp:
        work = Path(tmp)
        _setup(work, args.database_url)
        from django.contrib.auth import get_user_model
        from rest_framework.test import APIClient

        from annotation.models import Nucleus
        from annotation.services import project_create
        from segmentation.core import synthetic

        user = get_user_model().objects.create_user(username=f"bench{os.getpid()}", password="x")
        project = project_create(name=f"bench nucleus rows {os.getpid()}", user=user)
        sample = synthetic.generate_3d(shape=SHAPE, seed=3)
        image = np.clip(np.round(sample.image), 0, 65535).astype(np.uint16)
        small = _volume(work, project, user, image, sample.labels, "small")
        large = _volume(work, project, user, image, sample.labels, "large")
        t = time.perf_counter()
        _add_rows(large, args.rows)
        print(f"{Nucleus.objects.of(small).count():,} nuclei in the small version, "
              f"{Nucleus.objects.of(large).count():,} in the large one (rows added in {time.perf_counter() - t:.1f} s)")
        client = APIClient(SERVER_NAME="localhost")
        client.force_authenticate(user)
        results: dict[str, dict[str, list[float]]] = {"small": {}, "large": {}}
        for _ in range(args.repeat):  # rounds interleaved: a change of the machine's load meets both
            for name, version in (("small", small), ("large", large)):
                for op, values in _edits(client, version.volume, 1).items():
                    results[name].setdefault(op, []).extend(values)
        print(f"{'operation':<16}{'small p50':>11}{'p95':>8}{'large p50':>11}{'p95':>8}{'large/small':>13}")
        for op in results["small"]:
            s, lg = results["small"][op], results["large"][op]
            print(f"{op:<16}{statistics.median(s) * 1000:>9.0f}ms{_p(s, .95) * 1000:>6.0f}ms"
                  f"{statistics.median(lg) * 1000:>9.0f}ms{_p(lg, .95) * 1000:>6.0f}ms"
                  f"{statistics.median(lg) / statistics.median(s):>12.2f}x")
        rows = Nucleus.objects.filter(volume=large.volume).count()
        print(f"nucleus rows stored for the large volume after its {len(large.volume.label_versions.all())} "
              f"versions: {rows:,}")


if __name__ == "__main__":
    main()
