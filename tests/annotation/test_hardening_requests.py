"""Malformed requests get a 4xx in the documented shape, never a 500 (issue 14, part 4): ids
past any database integer, JSON nested thousands deep, tile indices of thousands of digits."""

import json

import pytest
from django.urls import reverse

from annotation.models import Correction, Nucleus

pytestmark = pytest.mark.django_db

HUGE = 2 ** 63


def _json(client, url, body):
    return client.generic("POST", url, body, content_type="application/json")


def _assert_error_shape(response, statuses):
    assert response.status_code in statuses, response.content
    body = response.json()
    assert set(body) == {"message", "extra"}
    return body


@pytest.fixture
def assigned(labels_v1, ivy, alice):
    from annotation.services import assignment_create

    volume = labels_v1.volume
    return assignment_create(project=volume.project, volume=volume, student=alice, assigned_by=ivy)


def test_it_answers_400_to_a_nucleus_id_of_2_to_the_63_in_a_body(labels_v1, assigned, client_for, alice):
    url = reverse("correction-list", args=[labels_v1.volume.id])
    body = _assert_error_shape(_json(client_for(alice), url, json.dumps(
        {"label_version": "v1", "type": "delete", "nucleus_ids": [HUGE]})), {400})
    assert "nucleus_ids" in body["extra"]["fields"]
    assert not Correction.objects.exists()


@pytest.mark.parametrize("param", ["label_id_min", "label_id_max", "z", "min_volume_voxels"])
def test_it_answers_400_to_a_filter_of_2_to_the_63(labels_v1, client_for, alice, param):
    url = reverse("nucleus-list", args=[labels_v1.volume.id, "v1"])
    _assert_error_shape(client_for(alice).get(url, {param: HUGE}), {400})


@pytest.mark.parametrize("path", [
    "volumes/{id}/", "projects/{id}/", "corrections/{id}/", "volumes/{id}/label-versions/",
    "volumes/{id}/label-versions/v1/nuclei/", "segmentation-jobs/{id}/", "projects/{id}/training-jobs/",
])
@pytest.mark.parametrize("big", [str(HUGE), "9" * 5000])
def test_it_answers_404_to_an_id_past_64_bits_in_a_url(labels_v1, client_for, alice, path, big):
    _assert_error_shape(client_for(alice).get("/api/v1/" + path.format(id=big)), {404})


def test_it_answers_404_to_a_page_of_an_id_past_64_bits(labels_v1, client_for, alice):
    assert client_for(alice).get(f"/volumes/{HUGE}/").status_code == 404


def test_it_answers_400_to_a_json_body_nested_5000_deep(labels_v1, assigned, client_for, alice):
    url = reverse("correction-list", args=[labels_v1.volume.id])
    nested = "[" * 5000 + "]" * 5000
    body = _assert_error_shape(_json(client_for(alice), url, '{"label_version": "v1", "nucleus_ids": %s}' % nested),
                               {400})
    assert "nested" in body["message"]
    assert Nucleus.objects.of(labels_v1).exists()


@pytest.mark.parametrize("part", ["level", "z", "ty", "tx"])
def test_it_refuses_a_tile_index_of_5000_digits(labels_v1, client_for, alice, part):
    volume = labels_v1.volume
    index = {"level": "0", "z": "0", "ty": "0", "tx": "0", part: "9" * 5000}
    client = client_for(alice)
    for name, extra in (("image-tile", []), ("label-tile", ["v1"])):
        url = reverse(name, args=[volume.id, *extra, index["level"], index["z"], index["ty"], index["tx"], "png"])
        response = client.get(url)
        assert response.status_code in (400, 404), (name, response.status_code)
        assert set(response.json()) == {"message", "extra"}


@pytest.mark.parametrize("volume_id", [str(HUGE), "9" * 5000])
def test_it_answers_404_to_a_tile_of_a_volume_id_past_any_integer(labels_v1, client_for, alice, volume_id):
    response = client_for(alice).get(f"/api/v1/volumes/{volume_id}/tiles/0/0/0/0.png")
    assert response.status_code == 404 and set(response.json()) == {"message", "extra"}
