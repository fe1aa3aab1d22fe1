"""What a job's listeners are told, on which groups, and only after commit: the shared job events
(ezquant_web.jobs.events) with segmentation's kinds (segmentation.events: their fields and groups,
registered by SegmentationConfig.ready())."""

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ezquant_web.jobs.events import job_groups, job_publish, job_state
from ezquant_web.jobs.kinds import job_kind, job_models
from segmentation import events
from segmentation.models import TrainingJob
from segmentation.services import segmentation_job_create

from .conftest import FAST_PARAMS

pytestmark = pytest.mark.django_db(transaction=True)


def _nothing_waiting(layer, channel) -> bool:
    return channel not in layer.channels or layer.channels[channel].empty()  # emptied queues are dropped


def _listen(*groups):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    for group in groups:
        async_to_sync(layer.group_add)(group, channel)
    return layer, channel


def test_it_tells_a_segmentation_job_on_its_own_group_and_its_volume(volume_2d, ivy):
    from django.db import transaction

    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    layer, mine = _listen(events.job_group(job.id))
    _, volume_listener = _listen(events.volume_group(volume_2d.id))
    with transaction.atomic():
        job_publish(job)
        # Not before the commit: a client must never hear of a state that may roll back.
        assert _nothing_waiting(layer, mine)
    for channel in (mine, volume_listener):
        event = async_to_sync(layer.receive)(channel)
        assert event["type"] == "job.event"
        state = event["state"]
        assert (state["kind"], state["id"], state["volume"], state["status"]) == ("segmentation", job.id,
                                                                                 volume_2d.id, "queued")
        assert {"progress", "message", "error", "label_version", "kept_nuclei", "from_scratch"} <= set(state)


def test_it_sends_nothing_when_the_transaction_rolls_back(volume_2d, ivy):
    from django.db import transaction

    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    layer, mine = _listen(events.job_group(job.id))
    with pytest.raises(RuntimeError), transaction.atomic():
        job_publish(job)
        raise RuntimeError("rolled back")
    job_publish(job)  # outside a transaction: at once
    assert async_to_sync(layer.receive)(mine)["state"]["id"] == job.id
    assert _nothing_waiting(layer, mine)  # and only that one


def test_it_tells_a_training_on_its_project_with_the_tail_of_the_loss(project, ada):
    job = TrainingJob.objects.create(project=project, created_by=ada, params={}, correction_ids=[1],
                                     metrics={"loss": [[i, 1.0 / (i + 1)] for i in range(500)], "steps": 500})
    state = job_state(job)
    assert (state["kind"], state["project"], state["steps"], state["model_version"]) == ("training", project.id,
                                                                                          500, None)
    assert len(state["loss"]) == 200 and state["loss"][-1] == [499, 1.0 / 500]
    assert job_groups(state) == [events.training_job_group(job.id), events.training_group(project.id)]


def test_every_kind_of_job_is_registered_by_its_app():
    from annotation.models import VolumeImportJob
    from segmentation.models import SegmentationJob

    assert set(job_models()) == {SegmentationJob, TrainingJob, VolumeImportJob}
    assert job_kind("segmentation").related == ("label_version",) and job_kind(VolumeImportJob).related == ("volume",)
    with pytest.raises(LookupError, match="'nightly' is not a registered job kind"):
        job_kind("nightly")
