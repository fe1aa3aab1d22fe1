"""The REST API of segmentation jobs: submit, read, list, cancel; and who is refused."""

import pytest
from django.urls import reverse

from segmentation.models import ModelPromotion, SegmentationJob, TrainingJob
from segmentation.services import segmentation_job_create

from .conftest import FAST_PARAMS


def _list_url(volume):
    return reverse("segmentation-job-list", kwargs={"volume_id": volume.id})


@pytest.mark.django_db
def test_it_answers_400_on_bad_params(volume_2d, ivy, client_for):
    client = client_for(ivy)
    for params in ({"flow_threshold": -1}, {"use_3d_backend": "nope"}, {"colour": "blue"}, [1]):
        response = client.post(_list_url(volume_2d), {"params": params}, format="json")
        assert response.status_code == 400, (params, response.content)
        assert response.json()["message"]
    assert not SegmentationJob.objects.exists()


@pytest.mark.django_db
def test_it_describes_each_backends_options_in_the_schema_and_refuses_them_by_their_rule(volume_2d, ivy, client,
                                                                                          client_for):
    from segmentation.core.backend_options import BACKEND_OPTIONS

    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    body = schema["paths"]["/api/v1/volumes/{volume_id}/segmentation-jobs/"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    described = schema["components"]["schemas"][ref]["properties"]["params"]["description"]
    for option in BACKEND_OPTIONS.values():
        assert f"{option.name} ({option.rule}, default " in described, option.name
    assert "isotropic_masks (true or false, default true)" in described
    assert "max_z_elongation (0 (off) or a number in [1, 100], default 2.5)" in described
    for params in ({"isotropic_masks": 1}, {"max_z_elongation": 0.5}, {"overlap_measure": "dice"}):
        response = client_for(ivy).post(_list_url(volume_2d), {"params": params}, format="json")
        assert response.status_code == 400 and next(iter(params)) in response.json()["message"], response.content
    assert not SegmentationJob.objects.exists()


@pytest.mark.django_db
def test_it_reads_lists_and_cancels(volume_2d, ivy, ada, bob, client_for):
    assert client_for(bob).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json").status_code == 403
    created = client_for(ivy).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json").json()
    assert created["params"]["diameter"] == 15.0 and created["params"]["flow_threshold"] == 0.4
    detail = client_for(bob).get(reverse("segmentation-job-detail", kwargs={"job_id": created["id"]}))
    assert detail.status_code == 200 and detail.json()["status"] == "queued"
    listed = client_for(bob).get(_list_url(volume_2d)).json()
    assert [job["id"] for job in listed] == [created["id"]]
    cancel_url = reverse("segmentation-job-cancel", kwargs={"job_id": created["id"]})
    refused = client_for(bob).post(cancel_url)  # a student, and not the job's creator
    assert refused.status_code == 403 and "instructors and admins" in refused.json()["message"]
    response = client_for(ada).post(cancel_url)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client_for(ivy).post(cancel_url)
    assert again.status_code == 409 and again.json()["message"] == "the job has already cancelled"


ROUTES = {
    "segmentation-job-list": ("get", lambda job: {"volume_id": job.volume_id}),
    "segmentation-job-create": ("post", lambda job: {"volume_id": job.volume_id}),
    "segmentation-job-detail": ("get", lambda job: {"job_id": job.id}),
    "segmentation-job-cancel": ("post", lambda job: {"job_id": job.id}),
    "training-job-list": ("get", lambda job: {"project_id": job.project_id}),
    "training-job-create": ("post", lambda job: {"project_id": job.project_id}),
    "training-job-detail": ("get", lambda job: {"job_id": TrainingJob.objects.get().id}),
    "training-job-cancel": ("post", lambda job: {"job_id": TrainingJob.objects.get().id}),
    "training-job-resume": ("post", lambda job: {"job_id": TrainingJob.objects.get().id}),
    "model-version-list": ("get", lambda job: {"project_id": job.project_id}),
    "default-model": ("get", lambda job: {"project_id": job.project_id}),
    "default-model-promote": ("post", lambda job: {"project_id": job.project_id}),
}


def _call(client, name, job):
    method, kwargs = ROUTES[name]
    url = reverse(name.replace("-create", "-list").replace("-promote", ""), kwargs=kwargs(job))
    if method == "get":
        return client.get(url)
    body = {"model_version": None} if name == "default-model-promote" else \
        {"params": {} if name.startswith("training") else FAST_PARAMS}
    return client.post(url, body, format="json")


def test_it_covers_every_route():
    from segmentation import urls

    assert {p.name for p in urls.urlpatterns} | {"segmentation-job-create", "training-job-create",
                                                  "default-model-promote"} == set(ROUTES)


@pytest.fixture
def training_job(volume_2d, ada):
    """A queued training of the project (ada's, its admin)."""
    return TrainingJob.objects.create(project=volume_2d.project, created_by=ada, params={}, correction_ids=[1])


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_eve_everywhere(volume_2d, ivy, eve, client_for, name, training_job):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    response = _call(client_for(eve), name, job)
    assert response.status_code == 404, response.content[:200]
    assert response.json() == {"message": "Not found.", "extra": {}}
    job.refresh_from_db()
    assert (SegmentationJob.objects.count(), job.status, job.cancel_requested) == (1, "queued", False)
    assert (TrainingJob.objects.count(), TrainingJob.objects.get().status) == (1, "queued")
    assert not ModelPromotion.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ROUTES))
def test_it_refuses_anonymous_callers(volume_2d, ivy, client_for, name, training_job):
    job = segmentation_job_create(volume=volume_2d, user=ivy, params=FAST_PARAMS)
    assert _call(client_for(None), name, job).status_code == 401
    assert SegmentationJob.objects.count() == 1


@pytest.mark.django_db
def test_it_limits_the_jobs_one_user_and_one_project_may_queue(volume_2d, ivy, ada, client_for, settings):
    settings.EZQUANT_MAX_QUEUED_JOBS_PER_USER = 2
    settings.EZQUANT_MAX_QUEUED_JOBS_PER_PROJECT = 3
    for _ in range(2):
        assert client_for(ivy).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json").status_code == 201
    refused = client_for(ivy).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json")
    assert refused.status_code == 429
    assert refused.json() == {"message": "you already have 2 jobs waiting, the most allowed: wait for some to run, "
                                         "or cancel some", "extra": {"limit": 2}}
    assert client_for(ada).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json").status_code == 201
    full = client_for(ada).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json")
    assert (full.status_code, full.json()["extra"]) == (429, {"limit": 3})
    assert "this project already has 3 jobs waiting" in full.json()["message"]
    assert SegmentationJob.objects.count() == 3
    # A job that no longer waits frees its place.
    job = SegmentationJob.objects.filter(created_by=ivy).first()
    assert client_for(ivy).post(reverse("segmentation-job-cancel", kwargs={"job_id": job.id})).status_code == 200
    assert client_for(ivy).post(_list_url(volume_2d), {"params": FAST_PARAMS}, format="json").status_code == 201
