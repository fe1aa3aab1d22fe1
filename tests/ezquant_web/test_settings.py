"""The settings helpers: typed, and loud about values they cannot read."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from ezquant_web.settings import BASE_DIR, database_from_url, env_bool, env_int, env_list, env_str

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw, expected", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                           ("0", False), ("false", False), ("No", False), ("off", False)])
def test_it_reads_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("EZQ_TEST", raw)
    assert env_bool("EZQ_TEST", not expected) is expected


def test_it_refuses_what_it_cannot_read(monkeypatch):
    monkeypatch.setenv("EZQ_TEST", "maybe")
    with pytest.raises(ImproperlyConfigured, match="EZQ_TEST"):
        env_bool("EZQ_TEST", False)
    monkeypatch.setenv("EZQ_TEST", "8k")
    with pytest.raises(ImproperlyConfigured, match="EZQ_TEST"):
        env_int("EZQ_TEST", 1)
    monkeypatch.delenv("EZQ_TEST")
    with pytest.raises(ImproperlyConfigured, match="EZQ_TEST is required"):
        env_str("EZQ_TEST")


def test_it_uses_defaults_only_when_unset(monkeypatch):
    monkeypatch.delenv("EZQ_TEST", raising=False)
    assert env_int("EZQ_TEST", 7) == 7
    assert env_list("EZQ_TEST", ["a"]) == ["a"]
    monkeypatch.setenv("EZQ_TEST", " a.example, ,b.example ")
    assert env_list("EZQ_TEST", ["x"]) == ["a.example", "b.example"]
    monkeypatch.setenv("EZQ_TEST", "")
    assert env_list("EZQ_TEST", ["x"]) == []


def test_it_parses_a_postgres_url():
    db = database_from_url("postgres://ez%40user:p%2Fss@db.example:5433/ezquant?sslmode=require")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"], db["HOST"], db["PORT"]) == (
        "ezquant", "ez@user", "p/ss", "db.example", "5433")
    assert db["OPTIONS"] == {"sslmode": "require"}


def test_it_parses_sqlite_urls():
    assert database_from_url("sqlite:///var/x.sqlite3")["NAME"] == BASE_DIR / "var" / "x.sqlite3"
    assert database_from_url("sqlite:////tmp/x.sqlite3")["NAME"] == Path("/tmp/x.sqlite3")


@pytest.mark.parametrize("url", ["mysql://u:p@h/db", "postgres://u:p@h:5432/", "sqlite://"])
def test_it_refuses_other_database_urls(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url(url)


def test_it_refuses_to_start_without_a_secret_key_when_not_debugging():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"} | {"DEBUG": "0"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr
