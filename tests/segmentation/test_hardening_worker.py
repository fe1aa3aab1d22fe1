"""The embedded job worker survives database errors and ``/healthz`` tells of a dead worker and
of a queue that does not move (issue 14, part 1)."""

import threading
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from segmentation import worker
from segmentation.models import SegmentationJob


class _FailingWorker:
    """A worker loop that dies of a real database error (a query SQLite refuses)."""

    def __init__(self, worker_id):
        self.worker_id = worker_id

    def run(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_at_all")


@pytest.mark.django_db
def test_it_runs_the_worker_loop_again_after_database_errors():
    made, waits = [], []
    stop = threading.Event()
    real_wait = stop.wait

    def wait(delay):
        waits.append(delay)
        return real_wait(0)

    stop.wait = wait

    class _Done:
        def __init__(self, worker_id):
            pass

        def run(self):
            made.append("ran")

    def make(*, worker_id):
        made.append(worker_id)
        return _FailingWorker(worker_id) if len(made) < 5 else _Done(worker_id)

    worker.run_worker_forever(worker_id="w1", stop=stop, make=make, first_delay=1.0, max_delay=4.0)
    assert made == ["w1", "w1", "w1", "w1", "w1", "ran"]  # four errors, then a loop that returned
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling back-off, capped


def test_the_failing_worker_raises_a_database_error(db):
    with pytest.raises(OperationalError):
        _FailingWorker("x").run()


@pytest.fixture
def dead_embedded_worker(monkeypatch, settings):
    """This process "runs" an embedded worker whose thread has died; a restarted one blocks
    until the test ends (no real worker loop runs in the test process)."""
    settings.EZQUANT_EMBEDDED_WORKER = True
    release = threading.Event()
    monkeypatch.setattr(worker, "_embedded_main", lambda: release.wait(30))
    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    monkeypatch.setattr(worker, "_embedded", dead)
    yield dead
    release.set()


@pytest.mark.django_db
def test_healthz_reports_a_dead_embedded_worker_and_starts_it_again(client, dead_embedded_worker):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["worker"] == "error" and response.json()["database"] == "ok"
    assert worker._embedded is not dead_embedded_worker and worker._embedded.is_alive()
    again = client.get("/healthz")
    assert again.status_code == 200 and again.json()["worker"] == "ok"


@pytest.mark.django_db
def test_healthz_says_nothing_of_a_worker_where_none_runs(client, settings):
    settings.EZQUANT_EMBEDDED_WORKER = False
    assert "worker" not in client.get("/healthz").json()


@pytest.mark.django_db
def test_healthz_reports_a_job_queue_that_does_not_move(client, volume_2d, ivy, settings):
    settings.EZQUANT_JOB_QUEUE_STUCK_SECONDS = 600
    job = SegmentationJob.objects.create(volume=volume_2d, project=volume_2d.project, created_by=ivy, params={})
    assert client.get("/healthz").json()["job_queue"] == "ok"  # it has not waited long yet
    SegmentationJob.objects.filter(id=job.id).update(created_at=timezone.now() - timedelta(seconds=601))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["job_queue"] == "error"
    # Another job started a minute ago: the queue moves (one worker, busy), all is well.
    now = timezone.now()
    SegmentationJob.objects.create(volume=volume_2d, project=volume_2d.project, created_by=ivy, params={},
                                   status="running",
                                   started_at=now - timedelta(seconds=60), heartbeat_at=now)
    assert client.get("/healthz").status_code == 200


@pytest.mark.django_db
def test_a_job_on_a_volume_too_large_for_this_machine_fails_in_one_line(volume_2d, ivy, monkeypatch):
    """The estimate (20 bytes a voxel plus the image) is judged before the pixels are read or
    torch imported; here the machine is made small by its memory probe (no database involved)."""
    from segmentation import resources
    from segmentation.services import segmentation_job_create, segmentation_job_run

    monkeypatch.setattr(resources, "available_memory", lambda: 1000)
    job = segmentation_job_create(volume=volume_2d, user=ivy, params={"diameter": 8.0})
    assert segmentation_job_run(job_id=job.id) == "failed"
    job.refresh_from_db()
    assert "too large for this machine" in job.error and "1,000 are available" in job.error
    assert job.label_version is None
