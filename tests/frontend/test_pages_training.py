"""The training page says what training and scoring really do (the parameters' defaults, the
rule that scoring needs held-out corrections), asks twice before an unscored version is
promoted, and draws the smoothed loss beside the raw one; the viewer names the promoted model
as the default."""

import numpy as np
import pytest
from django.urls import reverse

from segmentation.core.corrections import RetrainingParams
from segmentation.models import ModelVersion
from tests.conftest import PASSWORD


@pytest.fixture
def project(ada):
    from annotation.services import project_create

    return project_create(name="Nuclei 101", user=ada)


def _version(project, number, scores):
    return ModelVersion.objects.create(
        project=project, number=number, name=f"ezq_nuclei_v1-lora-{number:04d}.pt", base_model="ezq_nuclei_v1",
        base_sha256="0" * 64, adapter_path=f"models/{number}.pt", adapter_sha256="1" * 64, adapter_bytes=10,
        correction_ids=[1, 2], held_out_ids=[], params={}, scores=scores)


def _html(client, user, name, *args) -> str:
    client.login(username=user.username, password=PASSWORD)
    response = client.get(reverse(name, args=args))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_it_states_the_real_defaults_and_the_scoring_rule(client, project, ada):
    defaults = RetrainingParams()
    html = _html(client, ada, "project-training-page", project.id)
    assert f'placeholder="{defaults.training.steps} (the default)"' in html
    assert f"at least <strong>{defaults.min_holdout_corrections}</strong> approved corrections" in html
    assert "With 0, the next version will <strong>not be scored</strong>" in html
    assert f"approve\n    {defaults.min_holdout_corrections} more first" in html
    assert "smoothed (exponential moving average" in html and "(raw)" in html


@pytest.mark.django_db
def test_it_asks_twice_before_promoting_an_unscored_version(client, project, ada):
    _version(project, 1, {"evaluated": False, "reason": "fewer than 10 corrections: none held out"})
    _version(project, 2, {"evaluated": True, "better": True, "candidate": {}, "reference": {}, "delta": {}})
    html = _html(client, ada, "project-training-page", project.id)
    assert "Promote unscored version 1" in html and 'name="unscored" value="true"' in html
    assert 'data-require="unscored"' in html and "was not scored: nothing shows it segments better" in html
    assert "Promote version 2" in html and "Promote unscored version 2" not in html


@pytest.mark.django_db
def test_it_names_the_promoted_model_as_the_viewers_default(client, project, ada, tmp_path):
    import tifffile

    from annotation.services import volume_import
    from segmentation.services import model_version_promote

    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))
    volume = volume_import(project=project, src_path=path, name="plane", user=ada)
    version = _version(project, 3, {"evaluated": True, "better": True})
    model_version_promote(project=project, model_version=version, user=ada)
    html = _html(client, ada, "volume-viewer", volume.id)
    assert 'placeholder="model version 3 of Nuclei 101, promoted (ezq_nuclei_v1-lora-0003.pt) (default)"' in html
    model_version_promote(project=project, model_version=None, user=ada)  # back to the shipped one
    assert "promoted" not in _html(client, ada, "volume-viewer", volume.id).split('id="job-model"')[1][:200]


@pytest.mark.django_db
def test_it_says_how_many_corrections_the_next_version_is_scored_on(client, project, ada, tmp_path):
    import tifffile

    from annotation.models import LabelVersion, Nucleus
    from annotation.services import correction_create, label_version_create, volume_import
    from segmentation.core import synthetic
    from segmentation.services import training_holdout

    sample = synthetic.generate_2d(shape=(256, 256), seed=2)
    path = tmp_path / "plane.tif"
    tifffile.imwrite(path, np.clip(sample.image * 100, 0, 65535).astype(np.uint16))
    volume = volume_import(project=project, src_path=path, name="plane", user=ada)
    head = label_version_create(volume=volume, labels=sample.labels[None], user=ada, source=LabelVersion.Source.UPLOAD)
    ids = list(Nucleus.objects.of(head).order_by("label_id").values_list("label_id", flat=True))
    assert len(ids) >= 12
    corrections = []
    for label_id in ids[:12]:  # ada's own edits are approved: training data
        corrections.append(correction_create(volume=volume, user=ada, label_version=head.name, approved=True,
                                             edit={"correction_type": "delete", "nucleus_ids": [label_id]}))
        head = corrections[-1].result_version
    held = training_holdout([c.id for c in corrections], params=RetrainingParams())
    html = _html(client, ada, "project-training-page", project.id)
    if held:
        assert (f"With\n    12, the next version is trained on {12 - len(held)} and scored on the {len(held)} held"
                in html)
    else:  # the hash left none of these twelve out
        assert "none happens to be held out by the hash yet" in html
    assert training_holdout([c.id for c in corrections[:9]], params=RetrainingParams()) == []
