"""The pages behind a sign-in: login and logout, the projects page and the volume viewer.

ivy owns the project "Nuclei 101" with one small generated volume; alice is a student in it;
eve is in no project and gets 404 for the viewer, exactly as the API answers her.
"""

import json
import re

import numpy as np
import pytest
from django.urls import reverse

from tests.conftest import PASSWORD


@pytest.fixture
def volume(tmp_path, ivy, alice):
    import tifffile

    from annotation.services import label_version_create, membership_add, project_create, volume_import
    from segmentation.core import synthetic

    sample = synthetic.generate_3d(shape=(4, 96, 80), seed=2)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    project = project_create(name="Nuclei 101", user=ivy)
    membership_add(project=project, user=alice)
    volume = volume_import(project=project, src_path=path, name="stack one", user=ivy, voxel_size=(2.0, 0.5, 0.5))
    label_version_create(volume=volume, labels=sample.labels, user=ivy, source="upload")
    return volume


def _config(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="viewer-config" type="application/json">') + len(
        '<script id="viewer-config" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


@pytest.mark.django_db
def test_it_shows_the_login_page(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html and "csrfmiddlewaretoken" in html


@pytest.mark.django_db
def test_it_signs_alice_in_and_sends_her_to_her_projects(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("project-list-page")


@pytest.mark.django_db
def test_it_refuses_a_wrong_password(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "not it"})
    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_it_signs_out_with_a_post(client, alice):
    client.login(username="alice", password=PASSWORD)
    response = client.post(reverse("logout"))
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
@pytest.mark.parametrize("name, kwargs", [("project-list-page", {}), ("volume-viewer", {"volume_id": 1})])
def test_it_sends_anonymous_visitors_to_the_login_page(client, name, kwargs):
    url = reverse(name, kwargs=kwargs)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
def test_it_lists_alices_projects_and_links_their_volumes(client, alice, volume):
    client.login(username="alice", password=PASSWORD)
    response = client.get(reverse("project-list-page"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nuclei 101" in html and "stack one" in html
    assert f'href="{reverse("volume-viewer", kwargs={"volume_id": volume.id})}"' in html
    assert "4 × 96 × 80" in html


@pytest.mark.django_db
def test_it_shows_eve_no_project(client, eve, volume):
    client.login(username="eve", password=PASSWORD)
    response = client.get(reverse("project-list-page"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Nuclei 101" not in html and "stack one" not in html
    assert "not a member of any project" in html


@pytest.mark.django_db
def test_it_renders_the_viewer_with_its_config(client, alice, volume):
    client.login(username="alice", password=PASSWORD)
    response = client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id}))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<div id="map"' in html
    assert '/static/frontend/dist/viewer.js' in html and '/static/frontend/viewer.css' in html
    config = _config(response)
    assert config["volume"]["id"] == volume.id
    assert config["volume"]["shape"] == [4, 96, 80]
    assert config["volume"]["voxel_size"] == [2.0, 0.5, 0.5]
    assert config["volume"]["level_shapes"][0] == [4, 96, 80]
    assert config["label_versions"] == ["v1"] and config["head"] == "v1"
    assert config["api"] == "/api/v1/"
    assert config["websocket"] == f"/ws/volumes/{volume.id}/jobs/"
    assert config["csrf_token"]
    assert config["user"] == "alice"


@pytest.mark.django_db
def test_it_renders_the_viewer_of_a_volume_without_labels(client, alice, volume):
    from annotation.services import volume_import

    client.login(username="alice", password=PASSWORD)
    bare = volume_import(project=volume.project, src_path=volume.storage_path, name="bare", user=alice)
    config = _config(client.get(reverse("volume-viewer", kwargs={"volume_id": bare.id})))
    assert config["label_versions"] == [] and config["head"] is None


@pytest.mark.django_db
def test_it_answers_404_to_eve_for_the_viewer(client, eve, volume):
    client.login(username="eve", password=PASSWORD)
    assert client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})).status_code == 404


@pytest.mark.django_db
def test_it_answers_404_for_a_volume_that_does_not_exist(client, alice, volume):
    client.login(username="alice", password=PASSWORD)
    assert client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id + 100})).status_code == 404


@pytest.mark.django_db
def test_it_refuses_to_post_to_the_viewer(client, alice, volume):
    client.login(username="alice", password=PASSWORD)
    assert client.post(reverse("volume-viewer", kwargs={"volume_id": volume.id})).status_code == 405


def test_it_finds_the_viewer_bundle():
    """`make test` builds it (npm ci + esbuild) before the tests run."""
    from django.contrib.staticfiles import finders

    assert finders.find("frontend/dist/viewer.js"), "no bundle: run `make frontend`"
    assert finders.find("frontend/viewer.css")


@pytest.mark.django_db
def test_it_offers_the_default_3d_backend_and_model_first_for_a_stack(client, alice, volume):
    from segmentation.core.modelzoo import DEFAULT_MODEL_3D
    from segmentation.core.params import DEFAULT_3D_BACKEND

    client.login(username="alice", password=PASSWORD)
    html = client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})).content.decode()
    options = re.findall(r'<option value="([a-z0-9]+)"( selected)?>', html[html.index('id="job-backend"'):])
    assert options[0] == (DEFAULT_3D_BACKEND, " selected")
    assert {name for name, _ in options[:3]} == {"slice", "hybrid2d3d", "true3d"}
    assert f'placeholder="{DEFAULT_MODEL_3D} (default)"' in html


@pytest.mark.django_db
def test_it_tells_the_viewer_where_each_person_may_edit(client, alice, ivy, volume):
    from annotation.services import assignment_create

    client.login(username="ivy", password=PASSWORD)
    staff = _config(client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})))
    assert (staff["can_edit"], staff["editable_regions"], staff["edit_note"]) == (True, None, "")
    client.login(username="alice", password=PASSWORD)
    unassigned = _config(client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})))
    assert unassigned["can_edit"] is False and unassigned["editable_regions"] == []
    assert "not edit it: this volume is not assigned to you" in unassigned["edit_note"]
    assignment_create(project=volume.project, volume=volume, student=alice, assigned_by=ivy,
                      region=[0, 4, 0, 48, 0, 40])
    assigned = _config(client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})))
    assert assigned["can_edit"] is True and assigned["editable_regions"] == [[0, 4, 0, 48, 0, 40]]


@pytest.mark.django_db
def test_it_hides_the_plane_controls_of_a_2d_image(client, alice, ivy, volume, tmp_path):
    import tifffile

    from annotation.services import volume_import

    tifffile.imwrite(tmp_path / "flat.tif", np.zeros((64, 64), np.uint16))
    flat = volume_import(project=volume.project, src_path=tmp_path / "flat.tif", name="flat", user=ivy)
    client.login(username="alice", password=PASSWORD)
    plane_row = r'<div class="row"( hidden)?>\s*<label for="z-slider">'
    assert re.search(plane_row, client.get(reverse("volume-viewer", args=[flat.id])).content.decode()).group(1)
    assert not re.search(plane_row, client.get(reverse("volume-viewer", args=[volume.id])).content.decode()).group(1)


@pytest.mark.django_db
def test_it_gives_the_viewer_the_registries_of_kinds_strategies_and_backend_options(client, alice, volume):
    from segmentation.core.backends import BACKENDS
    from segmentation.core.corrections import SELECTION_STRATEGIES
    from segmentation.core.editing import EDIT_KINDS

    client.login(username="alice", password=PASSWORD)
    response = client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id}))
    config = _config(response)
    assert [k["name"] for k in config["edit_kinds"]] == list(EDIT_KINDS)
    assert config["edit_kinds"][0]["drawings"] == ["line", "seeds"]
    assert [s["name"] for s in config["selection_strategies"]] == list(SELECTION_STRATEGIES)
    html = response.content.decode()
    assert 'class="tools"' in html and 'data-tool="split-line"' not in html  # edits.js makes the buttons
    for name, backend in BACKENDS.items():
        for option in backend.options:
            assert f'name="{option.name}"' in html[html.index(f'data-backend="{name}"'):], (name, option.name)
    # A yes-or-no option is a check box, ticked when its default is yes.
    true3d = html[html.index('data-backend="true3d"'):]
    box = '<input type="checkbox" name="isotropic_masks" data-kind="bool" checked>'
    assert box in true3d[:true3d.index("</details>")]


@pytest.mark.django_db
def test_the_viewers_threshold_fields_take_the_bounds_the_server_checks(client, alice, volume):
    from segmentation.core.errors import InvalidParameterError
    from segmentation.core.params import MASK_STEP_BOUNDS, SegmentationParams

    client.login(username="alice", password=PASSWORD)
    html = client.get(reverse("volume-viewer", kwargs={"volume_id": volume.id})).content.decode()
    defaults = SegmentationParams()
    for name, bounds in MASK_STEP_BOUNDS.items():
        field = re.search(rf'<input type="number" name="{name}"[^>]*>', html).group(0)
        assert f'min="{bounds["low"]}"' in field
        assert (f'max="{bounds["high"]}"' in field) if "high" in bounds else ("max=" not in field), field
        assert f'placeholder="{getattr(defaults, name)}"' in field
        # The form's bound is the server's: one step below it is refused by the parameters.
        with pytest.raises(InvalidParameterError, match=name):
            SegmentationParams(**{name: bounds["low"] - 1})
