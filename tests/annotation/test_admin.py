"""The admin lists the annotation tables to ada and refuses eve."""

import pytest

from tests.conftest import PASSWORD


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["project", "membership", "volume", "labelversion", "nucleus", "volumeimportjob"])
def test_it_lists_the_tables_to_ada_only(labels_v1, client, model, ada, eve):
    client.login(username="ada", password=PASSWORD)
    assert client.get(f"/admin/annotation/{model}/").status_code == 200
    client.logout()
    client.login(username="eve", password=PASSWORD)
    assert client.get(f"/admin/annotation/{model}/").status_code == 302  # to the login page
