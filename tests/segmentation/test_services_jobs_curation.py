"""A person's work outranks the model's: a segmentation job on a volume people corrected keeps
every nucleus they made, changed or checked voxel for voxel, leaves the places they deleted
nuclei from empty and fills in the rest with the model's nuclei; from scratch it keeps nothing
and the audit trail says so. The shipped default model on a generated 96x96 image."""

import numpy as np
import pytest

from annotation.models import AuditEvent, LabelVersion, Nucleus
from annotation.services import correction_create, label_version_create
from annotation.stores import volume_store
from ezquant_web.jobs import runner
from segmentation.models import SegmentationJob
from segmentation.services import _segmentation_work, segmentation_job_create, segmentation_job_run

from .conftest import FAST_PARAMS

pytestmark = pytest.mark.django_db


def _labels(version: LabelVersion) -> np.ndarray:
    return volume_store(version.volume).read_labels(version.name)


@pytest.fixture
def curated(volume_2d, ivy, alice):
    """v1 the image's true nuclei; alice splits the largest (v2), adds one in the background
    (v3) and deletes the second largest (v4); ivy checks the third largest."""
    from segmentation.core import synthetic

    labels = synthetic.generate_2d(shape=(96, 96), seed=3).labels
    v1 = label_version_create(volume=volume_2d, labels=labels, user=ivy, source=LabelVersion.Source.UPLOAD)
    big, second, third = Nucleus.objects.of(v1).order_by("-volume_voxels")[:3]
    x = round(big.centroid_x) + 0.5
    correction_create(volume=volume_2d, user=alice, label_version="v1", edit={
        "correction_type": "split", "nucleus_ids": [big.label_id], "line": [[big.y_min - 2, x], [big.y_max + 2, x]]})
    free = np.argwhere(labels == 0)[0]  # a background corner
    y, x = (int(v) for v in free)
    correction_create(volume=volume_2d, user=alice, label_version="v2", edit={
        "correction_type": "add", "polygon": [[y, x], [y, x + 4], [y + 4, x + 4], [y + 4, x]]})
    deleted = correction_create(volume=volume_2d, user=alice, label_version="v3",
                                edit={"correction_type": "delete", "nucleus_ids": [second.label_id]})
    correction_create(volume=volume_2d, user=ivy, label_version="v4", approved=True,
                      edit={"correction_type": "confirm", "nucleus_ids": [third.label_id]})
    return {"head": deleted.result_version, "deleted": labels == second.label_id, "checked": third.label_id}


def _assert_kept(head: LabelVersion, new: LabelVersion, deleted: np.ndarray) -> dict[int, str]:
    kept = dict(Nucleus.objects.of(head).exclude(curation="").values_list("label_id", "curation"))
    before, after = _labels(head), _labels(new)
    for label_id, curation in kept.items():
        assert np.array_equal(after == label_id, before == label_id), label_id  # voxel for voxel
        assert Nucleus.objects.of(new).get(label_id=label_id).curation == curation
    assert not after[deleted.reshape(after.shape)].any()  # a person deleted it: the model does not bring it back
    return kept


def test_it_keeps_what_people_made_changed_or_checked_and_fills_in_the_rest(curated, ivy):
    head = curated["head"]
    job = segmentation_job_create(volume=head.volume, user=ivy, params=FAST_PARAMS)
    assert segmentation_job_run(job_id=job.id) == "succeeded"
    job = SegmentationJob.objects.get(id=job.id)
    new = job.label_version
    kept = _assert_kept(head, new, curated["deleted"])
    assert sorted(kept.values()) == ["checked", "edited", "edited", "edited"]  # two halves, the added one
    assert job.kept_nuclei == 4 and not job.from_scratch
    assert (new.source, new.parent) == ("segmentation", head)
    # The model filled in the rest: its nuclei, scored, numbered after the kept ones.
    model = Nucleus.objects.of(new).filter(curation="")
    assert model.count() >= 3 and not model.filter(uncertainty__isnull=True).exists()
    assert model.order_by("label_id").first().label_id > max(kept)


def test_a_correction_made_while_the_job_runs_is_kept_too(curated, ivy, alice):
    head = curated["head"]
    late = Nucleus.objects.of(head).filter(curation="").order_by("-volume_voxels").first()
    job = segmentation_job_create(volume=head.volume, user=ivy, params=FAST_PARAMS)

    def work(job, progress, timings):
        commit = _segmentation_work(job, progress, timings)
        correction_create(volume=head.volume, user=alice, label_version=head.name,
                          edit={"correction_type": "confirm", "nucleus_ids": [late.label_id]})
        return commit

    assert runner.run_job(SegmentationJob, job_id=job.id, work=work) == "succeeded"
    job = SegmentationJob.objects.get(id=job.id)
    kept = _assert_kept(head, job.label_version, curated["deleted"])
    assert kept[late.label_id] == "checked" and job.kept_nuclei == 5


def test_from_scratch_keeps_nothing_and_says_so_in_the_audit_trail(curated, ivy):
    head = curated["head"]
    job = segmentation_job_create(volume=head.volume, user=ivy, params=FAST_PARAMS, from_scratch=True)
    event = AuditEvent.objects.get(action="segmentation_job.create", object_id=job.id)
    assert event.details["from_scratch"] is True
    assert event.details["drops"] == {"label_version": head.name, "edited": 3, "checked": 1, "open_assignments": 0,
                                      "pending_corrections": 3, "deleted": 1}
    assert segmentation_job_run(job_id=job.id) == "succeeded"
    job = SegmentationJob.objects.get(id=job.id)
    assert (job.kept_nuclei, job.label_version.parent) == (0, None)
    assert not Nucleus.objects.of(job.label_version).exclude(curation="").exists()
