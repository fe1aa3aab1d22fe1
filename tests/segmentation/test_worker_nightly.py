"""The nightly retraining of segmentation.worker: when it is due, and which projects it queues."""

import datetime as dt

import numpy as np
import pytest

from annotation.models import LabelVersion
from annotation.services import correction_create, label_version_create, project_create
from segmentation.models import TrainingJob
from segmentation.worker import _nightly_due, retrain_due_projects, start_nightly_retraining

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("now, last_day, due", [
    (dt.datetime(2026, 3, 4, 1, 59), None, False),  # before the hour
    (dt.datetime(2026, 3, 4, 2, 0), None, True),
    (dt.datetime(2026, 3, 4, 23, 10), None, True),  # started late: still that day's run
    (dt.datetime(2026, 3, 4, 2, 30), dt.date(2026, 3, 4), False),  # ran today already
    (dt.datetime(2026, 3, 5, 2, 0), dt.date(2026, 3, 4), True),
])
def test_it_is_due_once_a_day_from_the_hour_set(now, last_day, due):
    assert _nightly_due(now, "02:00", last_day) is due


def test_it_starts_no_thread_when_no_hour_is_set(settings):
    settings.EZQUANT_RETRAIN_NIGHTLY_AT = ""
    assert start_nightly_retraining() is None


def _twenty_approved_deletions(volume, user):
    labels = np.zeros((96, 96), np.uint32)
    for i in range(20):  # 20 squares of 8x8 on a 5 x 4 grid
        y, x = divmod(i, 5)
        labels[4 + 18 * y: 12 + 18 * y, 4 + 18 * x: 12 + 18 * x] = i + 1
    label_version_create(volume=volume, labels=labels, user=user, source=LabelVersion.Source.UPLOAD)
    for step in range(1, 21):
        correction_create(volume=volume, user=user, label_version=f"v{step}", approved=True,
                          edit={"correction_type": "delete", "nucleus_ids": [step]})


def test_it_queues_one_training_a_day_for_projects_with_enough_new_corrections(volume_2d, ivy, ada):
    quiet = project_create(name="Quiet", user=ada)  # no corrections: nothing to train on
    _twenty_approved_deletions(volume_2d, ivy)
    queued = retrain_due_projects()
    job = TrainingJob.objects.get()
    assert queued == [job.id] and job.project_id == volume_2d.project_id != quiet.id
    assert len(job.correction_ids) == 20 and job.created_by is None  # the schedule, not a person
    assert retrain_due_projects() == []  # one a day per project
