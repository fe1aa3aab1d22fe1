"""segmentation.blockwise: jobs on volumes above EZQUANT_BLOCK_VOXELS run block by block, on
Dask's local scheduler in the worker's process or on a real dask.distributed cluster (a
scheduler and two workers started here, one of them killed mid-job)."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from annotation.models import LabelVersion, Nucleus
from annotation.stores import volume_store
from segmentation.models import SegmentationJob
from segmentation.services import segmentation_job_cancel, segmentation_job_create, segmentation_job_run

from . import test_services_jobs_curation as whole_path
from .conftest import FAST_PARAMS

# The whole-volume path's curated volume and its check, the same here.
curated = whole_path.curated
_assert_kept = whole_path._assert_kept

REPO = Path(__file__).resolve().parents[2]
# A 96 x 96 image in 2 x 2 blocks of at most 78 x 78 pixels (15-pixel margins).
FOUR_BLOCKS_2D = 78 * 78


def _work_folders(data_dir):
    root = Path(data_dir) / "tmp"
    return sorted(root.iterdir()) if root.is_dir() else []


@pytest.mark.django_db
def test_it_segments_a_volume_above_the_threshold_block_by_block(volume_2d, ivy, settings, data_dir):
    settings.EZQUANT_BLOCK_VOXELS = FOUR_BLOCKS_2D
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_run(job_id=job.id) == "succeeded"
    job.refresh_from_db()
    assert job.timings["blocks"] == 4 and job.progress == 1.0
    version = job.label_version
    labels = volume_store(volume_2d).read_labels(version.name)
    ids = np.unique(labels)[1:]
    assert ids.size >= 5
    rows = Nucleus.objects.of(version)
    assert version.n_labels == int(labels.max()) and rows.count() == ids.size
    row = rows.order_by("-volume_voxels").first()
    assert row.volume_voxels == int(np.count_nonzero(labels == row.label_id))
    assert row.uncertainty is not None and 0 <= row.uncertainty <= 1
    assert _work_folders(data_dir) == []


@pytest.mark.django_db
def test_a_blockwise_job_keeps_what_people_made_changed_checked_or_deleted(curated, ivy, settings, data_dir):
    """The whole-volume path's rule, plane by plane: the kept nuclei voxel for voxel with their
    marks, the deleted place empty, the model's nuclei numbered after them and scored."""
    head = curated["head"]
    settings.EZQUANT_BLOCK_VOXELS = FOUR_BLOCKS_2D
    job = segmentation_job_create(volume=head.volume, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_run(job_id=job.id) == "succeeded", SegmentationJob.objects.get(id=job.id).error
    job = SegmentationJob.objects.get(id=job.id)
    assert job.timings["blocks"] == 4
    new = job.label_version
    kept = _assert_kept(head, new, curated["deleted"])
    assert sorted(kept.values()) == ["checked", "edited", "edited", "edited"] and job.kept_nuclei == 4
    assert (new.source, new.parent) == ("segmentation", head)
    model = Nucleus.objects.of(new).filter(curation="")
    assert model.count() >= 3 and not model.filter(uncertainty__isnull=True).exists()
    assert model.order_by("label_id").first().label_id > max(kept)
    # Each row measures the stored labels (the pasted ones).
    labels = volume_store(head.volume).read_labels(new.name)
    assert Nucleus.objects.of(new).count() == np.unique(labels).size - 1 and new.n_labels == int(labels.max())
    for row in Nucleus.objects.of(new):
        assert row.volume_voxels == int(np.count_nonzero(labels == row.label_id)), row.label_id
    assert _work_folders(data_dir) == []


@pytest.mark.django_db
def test_a_model_nucleus_a_kept_one_trims_is_measured_on_what_is_left_of_it(volume_2d, ivy, settings, data_dir):
    """A checked nucleus that bites into one the model finds: the model's nucleus stays without
    the bite (less than half of it lies under the kept one), and its row's solidity is that of
    what is left, as the whole-volume path measures it, not that of the block's whole view."""
    from scipy import ndimage as ndi

    from annotation.services import correction_create, label_version_create
    from segmentation.core import synthetic
    from segmentation.core.measurements import solidities

    truth = synthetic.generate_2d(shape=(96, 96), seed=3).labels
    boxes = {i + 1: box for i, box in enumerate(ndi.find_objects(truth)) if box}
    inner = [k for k, (ys, xs) in boxes.items() if ys.start > 2 and xs.start > 2 and ys.stop < 94 and xs.stop < 94]
    target = max(inner, key=lambda k: int(np.count_nonzero(truth == k)))
    ys, xs = boxes[target]
    cy, cx = (ys.start + ys.stop) // 2, (xs.start + xs.stop) // 2
    bite = np.zeros(truth.shape, bool)
    bite[ys.start - 2:cy, cx - 2:cx + 3] = True  # a notch from the top edge to the centre
    labels = truth.copy()
    checked = int(truth.max()) + 1
    labels[bite] = checked
    assert np.count_nonzero(bite & (truth == target)) < 0.3 * np.count_nonzero(truth == target)
    label_version_create(volume=volume_2d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    correction_create(volume=volume_2d, user=ivy, label_version="v1", approved=True,
                      edit={"correction_type": "confirm", "nucleus_ids": [checked]})
    settings.EZQUANT_BLOCK_VOXELS = FOUR_BLOCKS_2D
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_run(job_id=job.id) == "succeeded", SegmentationJob.objects.get(id=job.id).error
    new = SegmentationJob.objects.get(id=job.id).label_version
    stored = volume_store(volume_2d).read_labels(new.name).reshape(truth.shape)
    assert np.array_equal(stored == checked, bite)  # kept voxel for voxel
    ids, counts = np.unique(stored[(truth == target) & ~bite], return_counts=True)
    model_id = int(ids[np.argmax(counts)])
    assert model_id not in (0, checked)
    row = Nucleus.objects.of(new).get(label_id=model_id)
    assert row.curation == "" and row.volume_voxels == int(np.count_nonzero(stored == model_id))
    assert row.solidity == pytest.approx(float(solidities(stored[np.newaxis])[model_id]), rel=1e-9)
    assert row.solidity < 0.9  # the notch shows: a whole nucleus here measures above 0.9


@pytest.mark.django_db
def test_a_model_nucleus_another_block_s_view_trims_is_measured_on_what_is_left_with_kept_ones(
        volume_2d, ivy, tmp_path):
    """With people's nuclei kept, a model nucleus that lost voxels where two blocks' views
    overlap (the stitch's trim, not a person's) is measured on what is left of it too."""
    from annotation.services import correction_create, label_version_create
    from segmentation.blockwise import _kept_blockwise
    from segmentation.core.blockwise import BlockwiseResult, ZarrVolume, _block_summary, _stitch, block_grid
    from segmentation.core.measurements import nucleus_table
    from segmentation.services import _curation_key

    shape, overlap = (1, 96, 96), (0, 0, 12)
    blocks = block_grid(shape, block_voxels=96 * 72, overlap=overlap)
    assert [b.outer[2] for b in blocks] == [slice(0, 60), slice(36, 96)]
    _, yy, xx = np.ogrid[:1, :96, :96]
    a = (yy - 48) ** 2 + (xx - 41) ** 2 <= 81  # block 1's edge (x = 36) cuts it
    b = (yy - 48) ** 2 + (xx - 53) ** 2 <= 81  # block 0's edge (x = 59) cuts it
    (tmp_path / "work" / "blocks").mkdir(parents=True)
    summaries = []
    for block, lens_to in zip(blocks, (1, 2), strict=True):  # the two blocks disagree about the lens
        view = np.zeros(shape, np.uint32)
        view[a], view[b & ~a if lens_to == 1 else b] = 1, 2
        summaries.append(_block_summary(str(tmp_path / "work"), block, view[block.outer], shape, overlap))
    lookups, n, measures, _ = _stitch(str(tmp_path / "work"), blocks, summaries, 0.5, None, lambda d, t: None)
    result = BlockwiseResult(shape=shape, blocks=blocks, lookups=lookups, n_labels=n, info={},
                             workdir=str(tmp_path / "work"), _measures=measures)
    assert result.trimmed.size == 1
    person = np.zeros((96, 96), np.uint32)
    person[80:88, 5:13] = 9  # a checked nucleus far from both
    label_version_create(volume=volume_2d, labels=person, user=ivy, source=LabelVersion.Source.UPLOAD)
    correction_create(volume=volume_2d, user=ivy, label_version="v1", approved=True,
                      edit={"correction_type": "confirm", "nucleus_ids": [9]})
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    store = volume_store(volume_2d)
    image = ZarrVolume(store.level_path(0))
    try:
        kept = _kept_blockwise(job, store, image, result, _curation_key(job))
        labels = np.stack([kept.plane(z) for z in range(shape[0])])
    finally:
        result.close()
    assert kept.paste.kept == (9,) and not kept.paste.trimmed  # no model nucleus under the person's
    expected = {row["label_id"]: row["solidity"] for row in nucleus_table(labels, image[...], (1.0, 1.0, 1.0))}
    rows = {row["label_id"]: row["solidity"] for row in kept.rows}
    assert rows == pytest.approx(expected, rel=1e-9) and len(rows) == 3
    trimmed = int(labels[0][(b & ~a)[0]].max())
    assert rows[trimmed] < float(result.solidity[result.trimmed[0]]) - 0.03  # the bite shows


@pytest.mark.django_db(transaction=True)
def test_it_cancels_a_blockwise_job_between_blocks(volume_3d, ivy, settings, data_dir):
    settings.EZQUANT_BLOCK_VOXELS = 16 * 100 * 100
    job = segmentation_job_create(volume=volume_3d, user=ivy, params={"diameter": 15.0, "do_3d": True,
                                                                       "use_3d_backend": "slice"})
    outcome = {}

    def work():
        from django.db import connection

        outcome["status"] = segmentation_job_run(job_id=job.id)
        connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status == "running" and "block" in job.message:
            break
        time.sleep(0.05)
    assert job.status == "running" and job.progress < 0.9, (job.status, job.progress, job.message)
    segmentation_job_cancel(job=job, user=ivy)
    worker.join(60)
    job.refresh_from_db()
    assert outcome["status"] == "cancelled" and job.status == "cancelled"
    assert job.label_version is None and not LabelVersion.objects.exists()
    assert _work_folders(data_dir) == []


def _start(args, log):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.fixture
def cluster(tmp_path):
    """``dask scheduler`` and two single-threaded ``dask worker`` processes on this machine."""
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    scheduler = _start(["distributed.cli.dask_scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
                        "--no-dashboard"], log)
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = [_start(["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--nthreads", "1",
                       "--nworkers", "1", "--no-nanny", "--no-dashboard", "--name", f"w{k}"], log) for k in range(2)]
    import json

    from distributed import Client

    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
        # Each worker imports torch and loads the shipped model once, before the job's clock.
        client.run(lambda: __import__("segmentation.core.modelzoo", fromlist=["load_model"]).load_model(None))
    try:
        yield address, workers
    finally:
        for process in [*workers, scheduler]:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [*workers, scheduler]:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_blocks_on_a_cluster_and_survives_a_lost_worker(cluster, volume_2d, ivy, settings, data_dir):
    address, workers = cluster
    settings.EZQUANT_BLOCK_VOXELS = FOUR_BLOCKS_2D
    settings.DASK_SCHEDULER_ADDRESS = address
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    killed = {}

    def kill_after_first_block():
        # A worker is killed as soon as the first block's labels are written: its running or
        # queued blocks go to the other worker.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "at" not in killed:
            for folder in _work_folders(data_dir):
                if (folder / "blocks").is_dir() and any(p.name.isdigit() for p in (folder / "blocks").iterdir()):
                    os.killpg(workers[0].pid, signal.SIGKILL)
                    killed["at"] = time.monotonic()
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_after_first_block)
    killer.start()
    status = segmentation_job_run(job_id=job.id)
    killer.join(5)
    job.refresh_from_db()
    assert "at" in killed and workers[0].wait(10) is not None
    assert status == "succeeded", job.error
    assert job.timings["blocks"] == 4
    labels = volume_store(volume_2d).read_labels(job.label_version.name)
    assert job.label_version.n_labels == int(labels.max()) > 0
    assert Nucleus.objects.of(job.label_version).count() == np.unique(labels).size - 1
    assert _work_folders(data_dir) == []


@pytest.mark.django_db(transaction=True)
def test_it_fails_cleanly_when_the_cluster_is_gone(volume_2d, ivy, settings, data_dir):
    settings.EZQUANT_BLOCK_VOXELS = FOUR_BLOCKS_2D
    settings.DASK_SCHEDULER_ADDRESS = "tcp://127.0.0.1:9"  # nothing listens there
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert job.error and job.label_version is None and not LabelVersion.objects.exists()
    assert not [p for p in (volume_store(volume_2d).path / "labels").glob("*") if p.is_dir()]
    assert _work_folders(data_dir) == []
