"""Promoting a model version (``model_version_promote``, ``POST .../default-model/``): a version
that was not scored is promoted only when the admin says so knowingly."""

import pytest
from django.urls import reverse

from ezquant_web.api import ApplicationError
from segmentation.models import ModelPromotion, ModelVersion
from segmentation.services import model_version_promote


def _version(project, number, scores):
    """A model version's row as a training leaves it (the adapter file is not read here)."""
    return ModelVersion.objects.create(
        project=project, number=number, name=f"ezq_nuclei_v1-lora-{number:04d}.pt", base_model="ezq_nuclei_v1",
        base_sha256="0" * 64, adapter_path=f"models/{number}.pt", adapter_sha256="1" * 64, adapter_bytes=10,
        correction_ids=[1, 2], held_out_ids=[], params={}, scores=scores)


@pytest.mark.django_db
def test_it_promotes_an_unscored_version_only_when_told_it_is(project, ada):
    unscored = _version(project, 1, {"evaluated": False, "reason": "fewer than 10 corrections: none held out"})
    with pytest.raises(ApplicationError) as refused:
        model_version_promote(project=project, model_version=unscored, user=ada)
    assert refused.value.status == 400 and "was not scored (fewer than 10 corrections" in refused.value.message
    assert not ModelPromotion.objects.exists()
    promotion = model_version_promote(project=project, model_version=unscored, user=ada, unscored=True)
    assert promotion.model_version == unscored
    scored = _version(project, 2, {"evaluated": True, "better": True})
    assert model_version_promote(project=project, model_version=scored, user=ada).model_version == scored
    assert model_version_promote(project=project, model_version=None, user=ada).model_version is None  # roll back


@pytest.mark.django_db
def test_it_asks_the_api_caller_to_confirm(project, ada, client_for):
    _version(project, 1, {"evaluated": False, "reason": "no held-out corrections"})
    url = reverse("default-model", args=[project.id])
    refused = client_for(ada).post(url, {"model_version": 1}, format="json")
    assert refused.status_code == 400 and refused.json()["extra"] == {"field": "unscored"}
    assert client_for(ada).post(url, {"model_version": 1, "unscored": True}, format="json").status_code == 201
