"""/api/v1/volumes/<id>/label-versions/<v>/nuclei/: pages, filters, ordering."""

import numpy as np
import pytest
from django.urls import reverse

from annotation.models import Nucleus


def _get(client, version, **params):
    return client.get(reverse("nucleus-list", args=[version.volume_id, version.name]), params)


@pytest.mark.django_db
def test_it_pages_through_the_nuclei_by_label_id(labels_v1, client_for, alice, sample_3d):
    ids = np.unique(sample_3d[1])[1:].tolist()
    first = _get(client_for(alice), labels_v1, page_size=50).json()
    assert first["count"] == len(ids)
    assert [n["label_id"] for n in first["results"]] == ids[:50]
    assert first["next"] and first["previous"] is None
    second = _get(client_for(alice), labels_v1, page_size=50, page=2).json()
    assert [n["label_id"] for n in second["results"]] == ids[50:100]
    row = first["results"][0]
    stored = Nucleus.objects.of(labels_v1).get(label_id=row["label_id"])
    assert row["volume_um3"] == stored.volume_um3 and row["solidity"] == stored.solidity


@pytest.mark.django_db
def test_it_filters_by_id_range_plane_and_volume(labels_v1, client_for, alice, sample_3d):
    labels = sample_3d[1]
    client = client_for(alice)
    got = _get(client, labels_v1, label_id_min=10, label_id_max=20, page_size=1000).json()["results"]
    assert [n["label_id"] for n in got] == [i for i in np.unique(labels).tolist() if 10 <= i <= 20]
    in_plane = _get(client, labels_v1, z=3, page_size=1000).json()["results"]
    assert {n["label_id"] for n in in_plane} == set(np.unique(labels[3]).tolist()) - {0}
    sizes = np.bincount(labels.ravel())
    big = _get(client, labels_v1, min_volume_voxels=200, page_size=1000).json()["results"]
    assert {n["label_id"] for n in big} == {i for i in range(1, len(sizes)) if sizes[i] >= 200}
    big_um3 = _get(client, labels_v1, min_volume_um3=100.0, page_size=1000).json()["results"]
    assert {n["label_id"] for n in big_um3} == {i for i in range(1, len(sizes)) if sizes[i] * 0.5 >= 100.0}


@pytest.mark.django_db
def test_it_orders_by_uncertainty_with_unscored_nuclei_last(labels_v1, client_for, alice):
    got = _get(client_for(alice), labels_v1, ordering="-uncertainty", page_size=1000).json()["results"]
    scores = [n["uncertainty"] for n in got]
    scored = [s for s in scores if s is not None]
    assert scored == sorted(scored, reverse=True) and scored
    assert scores == scored + [None] * (len(scores) - len(scored))
    up = _get(client_for(alice), labels_v1, ordering="uncertainty", page_size=1000).json()["results"]
    assert [n["uncertainty"] for n in up][: len(scored)] == sorted(scored)


@pytest.mark.django_db
@pytest.mark.parametrize("params", [{"ordering": "name"}, {"z": "-1"}, {"label_id_min": "x"},
                                    {"min_volume_um3": "big"}, {"page_size": "0", "page": "99"}])
def test_it_refuses_bad_filters(labels_v1, client_for, alice, params):
    response = _get(client_for(alice), labels_v1, **params)
    assert response.status_code in (400, 404)
    assert response.json()["message"]


@pytest.mark.django_db
def test_it_refuses_outsiders(labels_v1, client_for, eve):
    assert _get(client_for(eve), labels_v1).status_code == 404
