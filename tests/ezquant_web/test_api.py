"""The API's shared parts: schema and docs page, API tokens, the one error shape."""

import re

import pytest
from django.urls import reverse
from rest_framework.test import APIClient, APIRequestFactory

from annotation.storage import LabelShapeError
from ezquant_web.api import ApplicationError, exception_handler
from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_it_serves_the_openapi_schema(client):
    response = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "EZQuant Web API"
    paths = schema["paths"]
    assert "/api/v1/projects/" in paths and "/api/v1/volumes/{volume_id}/label-versions/{version}/nuclei/" in paths
    names = set(schema["components"]["schemas"])
    assert {"ProjectCreateInput", "VolumeOutput", "NucleusListOutput"} <= names


@pytest.mark.django_db
def test_it_serves_the_docs_page_without_loading_anything_from_the_internet(client):
    response = client.get(reverse("api-docs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", html)
    assert external == [], "the docs page must load its files from this site (drf-spectacular-sidecar)"
    from django.contrib.staticfiles import finders

    local = re.findall(r"""(?:src|href)=["'](/static/[^"']+)""", html)
    assert any(path.endswith("swagger-ui-bundle.js") for path in local)
    for path in local:
        assert finders.find(path.removeprefix("/static/")), path


@pytest.mark.django_db
def test_it_gives_and_accepts_api_tokens(alice):
    client = APIClient()
    response = client.post(reverse("api-token"), {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    assert client.get(reverse("project-list")).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("project-list")).status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert client.get(reverse("project-list")).status_code == 401
    wrong = APIClient().post(reverse("api-token"), {"username": "alice", "password": "no"}, format="json")
    assert wrong.status_code == 400 and wrong.json()["message"] == "Validation error"


def _handled(exc):
    request = APIRequestFactory().get("/")
    return exception_handler(exc, {"request": request, "view": None})


def test_it_renders_errors_in_one_shape():
    response = _handled(ApplicationError("too big", status=413, extra={"limit": 1}))
    assert (response.status_code, response.data) == (413, {"message": "too big", "extra": {"limit": 1}})
    response = _handled(LabelShapeError("labels have shape (1, 2, 3)"))
    assert (response.status_code, response.data) == (400, {"message": "labels have shape (1, 2, 3)", "extra": {}})
    from django.core.exceptions import ObjectDoesNotExist, ValidationError

    assert _handled(ObjectDoesNotExist()).data == {"message": "Not found.", "extra": {}}
    response = _handled(ValidationError({"name": ["taken"]}))
    assert response.status_code == 400 and response.data["extra"]["fields"] == {"name": ["taken"]}
    assert _handled(RuntimeError("bug")) is None


@pytest.mark.django_db
def test_it_answers_an_unknown_api_url_in_the_error_shape_with_debug_off(settings, alice):
    settings.DEBUG = False
    client = APIClient()
    client.force_authenticate(alice)
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "Not found.", "extra": {}}


@pytest.mark.django_db
def test_it_answers_a_server_error_of_the_api_in_the_error_shape(settings, monkeypatch, alice):
    from annotation import apis

    settings.DEBUG = False

    def broken(self, request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(apis.ProjectListApi, "get", broken)
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(alice)
    response = client.get("/api/v1/projects/")
    assert response.status_code == 500
    assert response.json() == {"message": "Server error.", "extra": {}}


@pytest.mark.django_db
def test_it_keeps_html_error_pages_outside_the_api(settings, client):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_it_documents_pages_and_errors_in_the_schema(client):
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    lists = {"/api/v1/volumes/{volume_id}/label-versions/{version}/nuclei/": "PaginatedNucleusListOutputList",
             "/api/v1/volumes/{volume_id}/corrections/": "PaginatedCorrectionOutputList",
             "/api/v1/projects/{project_id}/reviews/": "PaginatedCorrectionOutputList",
             "/api/v1/projects/{project_id}/audit/": "PaginatedAuditEventListOutputList"}
    for path, name in lists.items():
        get = paths[path]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(name), path
        assert {"page", "page_size"} <= {p["name"] for p in get["parameters"]}, path
    error = {"$ref": "#/components/schemas/Error"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            for code in ("400", "401", "403", "404"):
                assert operation["responses"][code]["content"]["application/json"]["schema"] == error, (method, path)
    cancel = paths["/api/v1/segmentation-jobs/{job_id}/cancel/"]["post"]["responses"]
    assert {"409", "429"} <= set(cancel)
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"message", "extra"}
