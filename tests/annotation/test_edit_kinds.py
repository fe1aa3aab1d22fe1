"""The web app's kinds of correction come from the core's registry: a kind registered there is
in the API's choices and schema, a choice of the model and a correction people can make."""

import json

import pytest
from django.urls import reverse

from annotation.models import Correction
from segmentation.core.editing import EDIT_KINDS

pytestmark = pytest.mark.django_db


def _type_choices(client) -> list:
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    body = schema["paths"]["/api/v1/volumes/{volume_id}/corrections/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    kind = schema["components"]["schemas"][ref]["properties"]["type"]
    if "$ref" in kind:
        kind = schema["components"]["schemas"][kind["$ref"].rsplit("/", 1)[1]]
    elif "allOf" in kind:
        kind = schema["components"]["schemas"][kind["allOf"][0]["$ref"].rsplit("/", 1)[1]]
    return kind["enum"]


def test_it_lists_the_registry_in_the_schema_and_the_model_choices(client, shrink):
    assert _type_choices(client) == [*EDIT_KINDS]
    assert "shrink" in _type_choices(client)
    assert ("shrink", "Shrink") in Correction._meta.get_field("correction_type").choices


def test_it_makes_a_correction_of_a_registered_kind(labels_v1, client_for, ivy, shrink):
    volume = labels_v1.volume
    client = client_for(ivy)
    nuclei = client.get(reverse("nucleus-list", args=[volume.id, "v1"]), {"ordering": "-volume_voxels"}).json()
    largest = nuclei["results"][0]
    response = client.post(reverse("correction-list", args=[volume.id]),
                           {"label_version": "v1", "type": "shrink", "nucleus_ids": [largest["label_id"]]},
                           format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["type"], response.json()["result_version"]) == ("shrink", "v2")
    after = client.get(reverse("nucleus-list", args=[volume.id, "v2"]),
                       {"label_id_min": largest["label_id"], "label_id_max": largest["label_id"]}).json()
    assert after["results"][0]["volume_voxels"] < largest["volume_voxels"]
    correction = Correction.objects.get(id=response.json()["id"])
    assert correction.get_correction_type_display() == "Shrink" and correction.changes_voxels


def test_it_answers_400_to_an_unknown_kind(labels_v1, client_for, ivy):
    response = client_for(ivy).post(reverse("correction-list", args=[labels_v1.volume.id]),
                                    {"label_version": "v1", "type": "shrink", "nucleus_ids": [1]}, format="json")
    assert response.status_code == 400 and "shrink" in json.dumps(response.json())
