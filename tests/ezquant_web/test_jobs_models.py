"""The job machinery's abstract Job (ezquant_web.jobs.models) sits below both apps: each kind of
job derives it in its own app and keeps its own table, and moving the base there changed no
table (makemigrations finds nothing to do)."""

import io

import pytest
from django.core.management import call_command

from annotation.models import VolumeImportJob
from ezquant_web.jobs.models import Job
from segmentation.models import SegmentationJob, TrainingJob


def test_the_job_models_keep_their_tables_and_every_job_field():
    common = {f.name for f in Job._meta.fields}
    assert {"status", "progress", "heartbeat_at", "cancel_requested"} <= common
    for model, table in ((SegmentationJob, "segmentation_segmentationjob"), (TrainingJob, "segmentation_trainingjob"),
                         (VolumeImportJob, "annotation_volumeimportjob")):
        assert issubclass(model, Job) and model._meta.db_table == table
        assert common <= {f.name for f in model._meta.fields}, model


@pytest.mark.django_db
def test_no_model_differs_from_its_migrations():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)  # exits 1 when one does
    assert "No changes detected" in out.getvalue()
