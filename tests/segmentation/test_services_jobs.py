"""segmentation.services: a job from submission to its end, in the embedded configuration (the
test's own process, SQLite, the in-memory channel layer), with the shipped default model."""

import asyncio
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse
from django.utils import timezone

from annotation.models import LabelVersion, Nucleus
from ezquant_web.jobs import events as job_events
from segmentation import events
from segmentation.core.modelzoo import DEFAULT_MODEL
from segmentation.models import SegmentationJob
from segmentation.services import (
    segmentation_job_cancel,
    segmentation_job_claim,
    segmentation_job_create,
    segmentation_job_reap_stale,
    segmentation_job_run,
)

from .conftest import FAST_PARAMS, run_queued_jobs


class _Listener:
    """A member of a job's group on the channel layer: what a WebSocket client would hear."""

    def __init__(self, group: str):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(group, self.channel)

    def drain(self) -> list[dict]:
        async def receive_all():
            states = []
            while True:
                try:
                    event = await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.2)
                except asyncio.TimeoutError:
                    return states
                states.append(event["state"])
        return async_to_sync(receive_all)()


@pytest.mark.django_db
def test_it_runs_a_job_submitted_through_the_api(volume_2d, ivy, client_for, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(ivy).post(reverse("segmentation-job-list", kwargs={"volume_id": volume_2d.id}),
                                          {"params": FAST_PARAMS}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    assert response.json()["status"] == "queued"
    listener = _Listener(events.job_group(job_id))

    with django_capture_on_commit_callbacks(execute=True):
        run_queued_jobs()  # django-tasks-db's worker loop, in this thread

    job = SegmentationJob.objects.get(id=job_id)
    assert job.status == "succeeded", job.error
    assert (job.progress, job.attempts, job.error) == (1.0, 1, "")
    assert job.started_at <= job.finished_at
    assert job.model_version.startswith(DEFAULT_MODEL)
    assert {"read", "segment", "save", "total"} <= set(job.timings)
    version = job.label_version
    assert (version.source, version.model_version, version.created_by) == ("segmentation", job.model_version, ivy)
    nuclei = Nucleus.objects.of(version)
    assert nuclei.count() >= 5
    assert not nuclei.filter(uncertainty__isnull=True).exists()

    states = listener.drain()
    progress = [s["progress"] for s in states if s["status"] == "running"]
    assert len(progress) >= 2 and progress == sorted(progress)
    assert states[-1]["status"] == "succeeded" and states[-1]["label_version"] == version.name
    # Rate-limited: never more than about 5 per second of running.
    seconds = (job.finished_at - job.started_at).total_seconds()
    assert len(states) <= 5 * seconds + 5


@pytest.mark.django_db
def test_it_refuses_bad_params_before_writing(volume_2d, ivy):
    from ezquant_web.api import ApplicationError

    for params in ({"flow_threshold": -1}, {"use_3d_backend": "nope"}, {"colour": "blue"}, []):
        with pytest.raises(ApplicationError):
            segmentation_job_create(volume=volume_2d, user=ivy, params=params)
    assert not SegmentationJob.objects.exists()


@pytest.mark.django_db
def test_it_fails_cleanly_when_the_engine_raises(volume_2d, ivy, django_capture_on_commit_callbacks):
    # Valid parameters that do not fit this image: three voxel sizes for a 2D image.
    job = segmentation_job_create(volume=volume_2d, user=ivy, params={**FAST_PARAMS, "voxel_size": [2, 1, 1]})
    with django_capture_on_commit_callbacks(execute=True):
        assert segmentation_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "voxel_size" in job.error and job.finished_at is not None
    assert job.label_version is None and not LabelVersion.objects.exists()
    # Re-running it is safe: it is no longer queued, so nothing runs again.
    assert segmentation_job_run(job_id=job.id) == "failed"


@pytest.mark.django_db
def test_it_fails_cleanly_when_the_volume_is_deleted(volume_2d, ivy, django_capture_on_commit_callbacks):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    volume_2d.delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert segmentation_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error, job.volume) == ("failed", "the volume was deleted", None)
    assert not LabelVersion.objects.exists()


@pytest.mark.django_db
def test_it_lets_exactly_one_claim_win(volume_2d, ivy):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_claim(job_id=job.id, worker_id="a") is True
    assert segmentation_job_claim(job_id=job.id, worker_id="b") is False
    job.refresh_from_db()
    assert (job.status, job.worker_id) == ("running", "a")


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_threads_claim(volume_2d, ivy):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    barrier = threading.Barrier(2)
    won = {}

    def claim(name):
        from django.db import connection

        barrier.wait()
        for _ in range(50):  # SQLite's shared-cache test database refuses a busy table at once: retry
            try:
                won[name] = segmentation_job_claim(job_id=job.id, worker_id=name)
                break
            except Exception as exc:
                if "locked" not in str(exc):
                    raise
                time.sleep(0.01)
        connection.close()

    threads = [threading.Thread(target=claim, args=(name,)) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(won.values()) == [False, True]
    job.refresh_from_db()
    assert job.worker_id == next(name for name, ok in won.items() if ok)


@pytest.mark.django_db
def test_it_cancels_a_queued_job_at_once(volume_2d, ivy):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    job = segmentation_job_cancel(job=job, user=ivy)
    assert (job.status, job.cancel_requested) == ("cancelled", True)
    assert segmentation_job_run(job_id=job.id) == "cancelled"  # the queued task finds nothing to do


@pytest.mark.django_db(transaction=True)
def test_it_stops_a_running_job_within_seconds(volume_3d, ivy, monkeypatch):
    job = segmentation_job_create(volume=volume_3d, user=ivy, params={"diameter": 15.0, "do_3d": True,
                                                                       "use_3d_backend": "hybrid2d3d"})
    outcome = {}
    # The test hears the job's progress as a browser would, from its published states, and does
    # not poll the row: SQLite's shared-cache test database locks per table and fails the worker's
    # write at once ("database table is locked") when it meets the test's read.
    under_way = threading.Event()
    publish = job_events._send

    def hear(state):
        publish(state)
        if state["id"] == job.id and state["status"] == "running" and 0.05 < state["progress"] < 0.9:
            under_way.set()
    monkeypatch.setattr(job_events, "_send", hear)

    def work():
        from django.db import connection

        outcome["status"] = segmentation_job_run(job_id=job.id)
        connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    assert under_way.wait(60), "the job published no progress between 5 and 90 %"
    asked = time.monotonic()
    segmentation_job_cancel(job=job, user=ivy)
    worker.join(30)
    stopped_after = time.monotonic() - asked
    job.refresh_from_db()
    assert outcome["status"] == "cancelled" and job.status == "cancelled"
    assert stopped_after < 5, stopped_after
    assert job.label_version is None and not LabelVersion.objects.exists()


@pytest.mark.django_db
def test_it_reaps_a_job_whose_worker_died(volume_2d, ivy):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_claim(job_id=job.id, worker_id="gone")
    fresh = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_claim(job_id=fresh.id, worker_id="alive")
    SegmentationJob.objects.filter(id=job.id).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
    assert segmentation_job_reap_stale() == 1
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.status == "failed" and "no heartbeat" in job.error
    assert fresh.status == "running"


def _refusal(volume, user, model_name) -> str:
    from ezquant_web.api import ApplicationError

    with pytest.raises(ApplicationError) as refused:
        segmentation_job_create(volume=volume, user=user, params={**FAST_PARAMS, "model_name": model_name})
    assert refused.value.status == 400
    return refused.value.message.replace(repr(model_name), "NAME")


@pytest.mark.django_db
def test_it_lets_jobs_use_only_the_models_a_lab_may(volume_2d, ivy, ada, settings, tmp_path):
    from segmentation.models import ModelVersion

    for name in (DEFAULT_MODEL, "nuclei", "cyto3", None):
        job = segmentation_job_create(volume=volume_2d, user=ivy, params={**FAST_PARAMS, "model_name": name})
        assert job.params["model_name"] == name
    ModelVersion.objects.create(project=volume_2d.project, number=1, name="ezq_nuclei_v1-lora-abc123",
                                base_model=DEFAULT_MODEL, adapter_path="models/1/adapter.pt", adapter_bytes=1,
                                correction_ids=[], held_out_ids=[], params={}, scores={})
    assert segmentation_job_create(volume=volume_2d, user=ivy, params={
        **FAST_PARAMS, "model_name": "ezq_nuclei_v1-lora-abc123"}).params["model_name"] == "ezq_nuclei_v1-lora-abc123"
    # Server paths are refused with one message, whether the file is there or not.
    existing, missing = __file__, str(tmp_path / "no-such-model.pt")
    messages = {_refusal(volume_2d, user, name) for user in (ivy, ada) for name in (existing, missing, "/etc/passwd")}
    assert len(messages) == 1, messages
    assert "unknown model NAME" in messages.pop()
    assert SegmentationJob.objects.count() == 5


@pytest.mark.django_db
def test_it_lets_admins_use_the_models_folder_only(volume_2d, ivy, ada, settings, tmp_path):
    folder = tmp_path / "lab-models"
    folder.mkdir()
    (folder / "ours.pt").write_bytes(b"weights")
    (tmp_path / "outside.pt").write_bytes(b"weights")
    settings.EZQUANT_MODELS_DIR = str(folder)
    job = segmentation_job_create(volume=volume_2d, user=ada, params={**FAST_PARAMS, "model_name": "ours.pt"})
    assert job.params["model_name"] == "ours.pt"
    refused = {_refusal(volume_2d, ada, name) for name in ("../outside.pt", str(tmp_path / "outside.pt"), "gone.pt")}
    assert len(refused) == 1 and "models folder" in refused.pop()
    assert "models folder" not in _refusal(volume_2d, ivy, "ours.pt")  # instructors: not at all


def test_it_knows_the_cellpose_built_in_names():
    from cellpose import models

    from segmentation.services import CELLPOSE_BUILTIN_MODELS

    assert set(CELLPOSE_BUILTIN_MODELS) == set(models.MODEL_NAMES)


@pytest.mark.django_db
def test_it_segments_a_stack_in_3d_with_the_default_backend_and_its_voxel_size(volume_3d, volume_2d, ivy):
    from segmentation.core.params import DEFAULT_3D_BACKEND

    job = segmentation_job_create(volume=volume_3d, user=ivy, params={"diameter": 15.0})
    assert (job.params["do_3d"], job.params["use_3d_backend"]) == (True, DEFAULT_3D_BACKEND)
    assert job.params["voxel_size"] == list(volume_3d.voxel_size)
    kept = segmentation_job_create(volume=volume_3d, user=ivy, params={"use_3d_backend": "hybrid2d3d",
                                                                        "voxel_size": [1.0, 0.5, 0.5]})
    assert (kept.params["use_3d_backend"], kept.params["voxel_size"]) == ("hybrid2d3d", [1.0, 0.5, 0.5])
    flat = segmentation_job_create(volume=volume_2d, user=ivy, params={"diameter": 15.0})
    assert (flat.params["do_3d"], flat.params["voxel_size"]) == (False, list(volume_2d.voxel_size[1:]))
