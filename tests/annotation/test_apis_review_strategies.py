"""The review queues take a strategy of the core's registry (?strategy=): the viewer's queue of
nuclei (default top: the least certain first) and the project's queue of corrections awaiting
review (default oldest); an unknown strategy is a 400 that names the choices."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def _queue(client, version, **params):
    return client.get(reverse("nucleus-review-queue", args=[version.volume_id, version.name]), params)


def test_it_queues_the_least_certain_nuclei_first_by_default(labels_v1, client_for, ivy):
    client = client_for(ivy)
    body = _queue(client, labels_v1).json()
    listed = client.get(reverse("nucleus-list", args=[labels_v1.volume_id, "v1"]),
                        {"ordering": "-uncertainty", "page_size": 200}).json()
    assert body["strategy"] == "top" and body["count"] == listed["count"]
    assert [n["label_id"] for n in body["results"]] == [n["label_id"] for n in listed["results"]]
    assert body["results"][0]["uncertainty"] == max(n["uncertainty"] or 0 for n in listed["results"])


def test_it_takes_the_planes_in_turn_with_round_robin(labels_v1, client_for, ivy):
    client = client_for(ivy)
    top = _queue(client, labels_v1).json()["results"]
    planes = {round(n["centroid_z"]) for n in top if n["uncertainty"] is not None}
    queue = _queue(client, labels_v1, strategy="round_robin", size=len(planes)).json()["results"]
    assert len(planes) > 1 and {round(n["centroid_z"]) for n in queue} == planes
    assert [n["label_id"] for n in queue] != [n["label_id"] for n in top[:len(planes)]]


def test_it_draws_a_random_queue_from_its_seed(labels_v1, client_for, ivy):
    client = client_for(ivy)
    first = _queue(client, labels_v1, strategy="random", seed=4, size=10).json()["results"]
    assert first == _queue(client, labels_v1, strategy="random", seed=4, size=10).json()["results"]
    scored = [n["label_id"] for n in _queue(client, labels_v1).json()["results"] if n["uncertainty"] is not None]
    assert len(first) == 10 and {n["label_id"] for n in first} <= set(scored)


@pytest.mark.parametrize("route", ["nucleus-review-queue", "review-queue"])
def test_it_answers_400_to_an_unknown_strategy(labels_v1, client_for, ivy, route):
    args = [labels_v1.volume_id, "v1"] if route == "nucleus-review-queue" else [labels_v1.volume.project_id]
    response = client_for(ivy).get(reverse(route, args=args), {"strategy": "loudest"})
    assert response.status_code == 400
    assert "loudest" in str(response.json()) and response.json()["extra"]["fields"]["strategy"]


def test_it_orders_the_corrections_awaiting_review_by_strategy(labels_v1, client_for, ivy, alice):
    from annotation.selectors import uncertainty_scores
    from annotation.services import correction_create

    volume = labels_v1.volume
    scores = dict(uncertainty_scores(volume_id=volume.id, name="v1"))
    calm, doubtful = min(scores, key=scores.get), max(scores, key=scores.get)
    made = [correction_create(volume=volume, user=alice, label_version=v, approved=False,
                              edit={"correction_type": "delete", "nucleus_ids": [i]}).id
            for v, i in (("v1", calm), ("v2", doubtful))]
    client = client_for(ivy)
    url = reverse("review-queue", args=[volume.project_id])
    assert [c["id"] for c in client.get(url).json()["results"]] == made  # oldest first, as before
    assert [c["id"] for c in client.get(url, {"strategy": "top"}).json()["results"]] == made[::-1]
    assert client.get(url, {"strategy": "round_robin"}).json()["count"] == 2


def test_it_documents_the_strategies_in_the_schema(client):
    from segmentation.core.corrections import SELECTION_STRATEGIES

    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, extra in (("/api/v1/projects/{project_id}/reviews/", ["oldest"]),
                        ("/api/v1/volumes/{volume_id}/label-versions/{version}/nuclei/queue/", [])):
        parameter = next(p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "strategy")
        assert parameter["schema"]["enum"] == [*extra, *SELECTION_STRATEGIES], path
        assert "round_robin:" in parameter["description"]
