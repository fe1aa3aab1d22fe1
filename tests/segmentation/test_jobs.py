"""How workers choose the next job (ezquant_web.jobs.runner): fair across projects, each project's
own jobs oldest first, so one project's long queue does not hold the lab's workers."""

import pytest

from ezquant_web.jobs import runner
from segmentation.models import SegmentationJob
from segmentation.services import segmentation_job_cancel, segmentation_job_create

from .conftest import FAST_PARAMS, import_volume


@pytest.fixture
def other_volume(ada, tmp_path):
    from annotation.services import project_create

    other = project_create(name="Other lab", user=ada)
    return import_volume(tmp_path, other, ada, (32, 32), name="other")


def _queue(volume, user, n):
    return [segmentation_job_create(volume=volume, user=user, params=FAST_PARAMS).id for _ in range(n)]


@pytest.mark.django_db
def test_it_takes_turns_between_projects(volume_2d, other_volume, ivy, ada):
    a = _queue(volume_2d, ivy, 3)
    b = _queue(other_volume, ada, 2)
    assert runner.job_fair_order(SegmentationJob) == [a[0], b[0], a[1], b[1], a[2]]


@pytest.mark.django_db
def test_it_serves_first_the_project_that_has_had_the_least(volume_2d, other_volume, ivy, ada):
    a = _queue(volume_2d, ivy, 3)
    assert runner.job_claim_next(SegmentationJob, worker_id="w1") == a[0]  # a[0] now runs
    b = _queue(other_volume, ada, 1)
    # The other project waited less, but has nothing running: its job goes before a[1].
    assert runner.job_claim_next(SegmentationJob, worker_id="w2") == b[0]
    assert runner.job_claim_next(SegmentationJob, worker_id="w3") == a[1]
    assert SegmentationJob.objects.get(id=a[1]).worker_id == "w3"


@pytest.mark.django_db
def test_it_skips_cancelled_jobs_and_answers_none_when_nothing_waits(volume_2d, ivy):
    a = _queue(volume_2d, ivy, 2)
    segmentation_job_cancel(job=SegmentationJob.objects.get(id=a[0]), user=ivy)
    assert runner.job_claim_next(SegmentationJob, worker_id="w") == a[1]
    assert runner.job_claim_next(SegmentationJob, worker_id="w") is None
