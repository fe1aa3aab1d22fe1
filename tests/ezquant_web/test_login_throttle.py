"""Sign-in throttling: failures per account and per address lock both out for the cool-off,
the right password included, on the sign-in page and the API token endpoint alike."""

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from tests.conftest import PASSWORD


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _page_login(username, password, address="10.0.0.1"):
    return Client(REMOTE_ADDR=address).post(reverse("login"), {"username": username, "password": password})


def _token(username, password, address="10.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(reverse("api-token"), {"username": username, "password": password})


@pytest.mark.django_db
def test_it_locks_an_account_out_of_the_sign_in_page_after_failures(alice):
    for _ in range(2):
        assert _page_login("alice", "wrong").status_code == 200  # the form again, with its error
    assert _page_login("alice", "wrong").status_code == 429  # the third: locked out from now on
    refused = _page_login("alice", PASSWORD)
    assert refused.status_code == 429
    assert b"too many failed sign-ins" in refused.content.lower() and "_auth_user_id" not in refused.client.session
    # Per account: from another address too.
    assert _page_login("alice", PASSWORD, address="10.0.0.2").status_code == 429


@pytest.mark.django_db
def test_it_locks_the_token_endpoint_with_the_error_shape(alice):
    for _ in range(3):
        assert _token("alice", "wrong").status_code in (400, 429)
    refused = _token("alice", PASSWORD)
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("too many failed sign-ins")
    assert refused.json()["extra"]["retry_after_s"] == 15 * 60 and refused["Retry-After"] == "900"


@pytest.mark.django_db
def test_it_locks_out_an_address_that_tries_many_accounts(alice, bob, ivy):
    for name in ("alice", "bob", "ivy"):
        assert _token(name, "wrong", address="10.9.9.9").status_code in (400, 429)
    assert _token("alice", PASSWORD, address="10.9.9.9").status_code == 429
    assert _token("ada-not-there", "x", address="10.9.9.9").status_code == 429
    assert _token("bob", PASSWORD, address="10.0.0.5").status_code == 200  # bob from elsewhere: 1 failure only


@pytest.mark.django_db
def test_it_forgets_an_accounts_failures_after_a_success(alice):
    for address in ("10.0.1.1", "10.0.1.2"):
        _token("alice", "wrong", address=address)
    assert _token("alice", PASSWORD, address="10.0.1.3").status_code == 200
    for address in ("10.0.1.4", "10.0.1.5"):
        _token("alice", "wrong", address=address)
    assert _token("alice", PASSWORD, address="10.0.1.6").status_code == 200
