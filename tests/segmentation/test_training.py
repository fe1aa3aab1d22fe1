"""Retraining in the app: admins start a training job on the approved corrections, it runs in the
worker loop with its loss curve in the row, makes a model version scored against the current
default, and promotion / roll-back change what segmentation jobs use. The shipped model and a
few real optimiser steps: nothing is mocked."""

import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import LabelVersion, Nucleus
from annotation.services import correction_create, label_version_create
from segmentation.core.modelzoo import DEFAULT_MODEL, SHIPPED_MODELS_DIR
from segmentation.models import ModelPromotion, ModelVersion, SegmentationJob, TrainingJob
from segmentation.services import project_default_model, segmentation_job_create, training_job_create

from .conftest import FAST_PARAMS, run_queued_jobs

pytestmark = pytest.mark.django_db

# A handful of steps on small crops: enough to train and save a real adapter in seconds.
QUICK = {"training": {"steps": 4, "batch_size": 2, "crop_size": 64, "checkpoint_every": 2},
         "holdout_fraction": 0.5, "min_holdout_corrections": 2}


@pytest.fixture
def corrected(volume_2d, ivy):
    """v1 the generated image's true nuclei; ivy (an instructor: approved at once) deletes three."""
    from segmentation.core import synthetic

    labels = synthetic.generate_2d(shape=(96, 96), seed=3).labels
    label_version_create(volume=volume_2d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    ids = list(volume_2d.label_versions.get().nuclei.order_by("-volume_voxels")
               .values_list("label_id", flat=True)[:3])
    made = []
    for step, nucleus in enumerate(ids, start=1):
        made.append(correction_create(volume=volume_2d, user=ivy, label_version=f"v{step}", approved=True,
                                      edit={"correction_type": "delete", "nucleus_ids": [nucleus]}))
    return made


def test_it_trains_promotes_and_rolls_back(corrected, client_for, ada, ivy, alice, settings,
                                           django_capture_on_commit_callbacks):
    project = corrected[0].volume.project
    url = reverse("training-job-list", args=[project.id])
    assert client_for(ivy).post(url, {"params": QUICK}, format="json").status_code == 403  # admins only
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(ada).post(url, {"params": QUICK}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["correction_ids"] == [c.id for c in corrected]
    with django_capture_on_commit_callbacks(execute=True):
        run_queued_jobs()
    job = TrainingJob.objects.get()
    assert job.status == "succeeded", job.error
    assert [step for step, _ in job.metrics["loss"]] == sorted(step for step, _ in job.metrics["loss"])
    assert len(job.metrics["loss"]) >= 2 and all(np.isfinite(loss) for _, loss in job.metrics["loss"])
    version = job.model_version
    path = Path(settings.EZQUANT_DATA_DIR) / version.adapter_path
    base = SHIPPED_MODELS_DIR / f"{DEFAULT_MODEL}.pt"
    assert path.is_file() and version.adapter_bytes == path.stat().st_size < base.stat().st_size / 5
    assert (version.number, version.base_model) == (1, DEFAULT_MODEL)
    assert sorted(version.correction_ids + version.held_out_ids) == [c.id for c in corrected]
    assert version.scores["evaluated"] and {"ap50", "ap75", "splits", "merges"} <= set(version.scores["candidate"])
    # The adapter's record names it final_loss (the mean loss of the last logged steps).
    assert np.isfinite(version.scores["loss_final"]) and version.scores["loss_final"] > 0
    listed = client_for(ivy).get(reverse("model-version-list", args=[project.id])).json()
    assert [(v["number"], v["is_default"]) for v in listed] == [(1, False)]
    assert client_for(alice).get(reverse("model-version-list", args=[project.id])).status_code == 403

    default = reverse("default-model", args=[project.id])
    assert client_for(ivy).post(default, {"model_version": 1}, format="json").status_code == 403
    assert client_for(ada).post(default, {"model_version": 1, "note": "better on dim nuclei"},
                                format="json").status_code == 201
    assert project_default_model(project=project) == str(path)
    # Re-segmenting with the promoted adapter keeps the curated nuclei: ivy checks one first.
    head = corrected[-1].result_version
    checked = Nucleus.objects.of(head).order_by("-volume_voxels").first()
    correction_create(volume=head.volume, user=ivy, label_version=head.name, approved=True,
                      edit={"correction_type": "confirm", "nucleus_ids": [checked.label_id]})
    seg = segmentation_job_create(volume=corrected[0].volume, user=ivy, params=FAST_PARAMS)
    from annotation.stores import volume_store
    from segmentation.services import segmentation_job_run

    assert segmentation_job_run(job_id=seg.id) == "succeeded"
    seg = SegmentationJob.objects.get(id=seg.id)
    assert seg.model_version.startswith(version.name)  # the adapter ran
    store = volume_store(head.volume)
    assert seg.kept_nuclei == 1 and np.array_equal(store.read_labels(seg.label_version.name) == checked.label_id,
                                                   store.read_labels(head.name) == checked.label_id)
    assert client_for(ada).post(default, {"model_version": None}, format="json").status_code == 201  # roll back
    assert project_default_model(project=project) is None
    history = client_for(ivy).get(default).json()
    assert [h["model_version"] for h in history] == [None, 1] and ModelPromotion.objects.count() == 2
    assert ModelVersion.objects.count() == 1  # nothing lost


def test_it_cancels_and_resumes_a_training(corrected, client_for, ada):
    project = corrected[0].volume.project
    job = training_job_create(project=project, user=ada, params=QUICK)
    with pytest.raises(Exception, match="is queued"):
        training_job_create(project=project, user=ada, params=QUICK)  # one at a time
    cancelled = client_for(ada).post(reverse("training-job-cancel", args=[job.id]))
    assert cancelled.json()["status"] == "cancelled"
    resumed = client_for(ada).post(reverse("training-job-resume", args=[job.id]))
    assert resumed.status_code == 201 and resumed.json()["resumed_from"] == job.id
    assert resumed.json()["correction_ids"] == job.correction_ids
    again = client_for(ada).post(reverse("training-job-resume", args=[resumed.json()["id"]]))
    assert again.status_code == 409  # it is queued, not failed or cancelled


def test_it_refuses_training_without_approved_corrections(volume_2d, client_for, ada):
    response = client_for(ada).post(reverse("training-job-list", args=[volume_2d.project_id]), {}, format="json")
    assert response.status_code == 400 and "no approved corrections" in response.json()["message"]
    bad = client_for(ada).post(reverse("training-job-list", args=[volume_2d.project_id]),
                               {"params": {"holdout_fraction": 2}}, format="json")
    assert bad.status_code == 400


def test_the_retrain_command_waits_for_enough_corrections(corrected, capsys):
    project = corrected[0].volume.project
    call_command("retrain", "--project", project.name, "--if-needed")
    assert "not needed" in capsys.readouterr().out
    call_command("retrain", "--project", project.name, "--wait", "--params", json.dumps(QUICK))
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["model_version"] == 1 and result["adapter_bytes"] > 0
    with pytest.raises(CommandError, match="no project named"):
        call_command("retrain", "--project", "Nope")


def test_it_tells_a_student_that_trainings_are_for_staff(project, client_for, ada, alice, eve):
    job = TrainingJob.objects.create(project=project, created_by=ada, params={}, correction_ids=[1])
    for name in ("training-job-detail", "training-job-cancel", "training-job-resume"):
        url = reverse(name, args=[job.id])
        response = client_for(alice).get(url) if name == "training-job-detail" else client_for(alice).post(url)
        assert response.status_code == 403, name
        assert "is for the instructors and admins" in response.json()["message"], name
        outsider = client_for(eve).get(url) if name == "training-job-detail" else client_for(eve).post(url)
        assert outsider.status_code == 404, name
    assert client_for(ada).get(reverse("training-job-detail", args=[job.id])).status_code == 200
