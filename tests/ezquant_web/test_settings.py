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


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=base | env,
                          capture_output=True, text=True, timeout=120)


#: The production settings the README documents, behind an HTTPS proxy.
PRODUCTION = {"SECRET_KEY": "p" + "roduction-key-" * 5, "ALLOWED_HOSTS": "ezquant.lab.example",
              "CSRF_TRUSTED_ORIGINS": "https://ezquant.lab.example", "SECURE_PROXY_SSL_HEADER": "1",
              "SECURE_SSL_REDIRECT": "1", "SECURE_COOKIES": "1", "SECURE_HSTS_SECONDS": "31536000",
              "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1", "SECURE_HSTS_PRELOAD": "1"}


def test_it_does_not_debug_unless_asked(monkeypatch):
    monkeypatch.delenv("DEBUG", raising=False)
    result = subprocess.run([sys.executable, "-c", "from ezquant_web import settings; print(settings.DEBUG)"],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "DEBUG"})
    assert result.stdout.split() == ["False"], result.stderr


def test_it_refuses_a_short_secret_key():
    result = _manage("check", SECRET_KEY="too-short-for-a-lab-server", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 50 characters" in result.stderr


def test_it_generates_a_secret_key_once_and_keeps_it(tmp_path):
    path = tmp_path / "secret_key"
    from ezquant_web.settings import secret_key

    first = secret_key(None, path)
    assert len(first) >= 50
    assert secret_key(None, path) == first
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert secret_key("g" + "iven-key-" * 6, path) == "g" + "iven-key-" * 6


def test_it_starts_without_a_secret_key_and_keeps_the_one_it_made(tmp_path):
    data = tmp_path / "data"
    result = _manage("check", DEBUG="0", EZQUANT_DATA_DIR=str(data))
    assert result.returncode == 0, result.stderr
    key = (data / "secret_key").read_text()
    assert _manage("check", DEBUG="0", EZQUANT_DATA_DIR=str(data)).returncode == 0
    assert (data / "secret_key").read_text() == key


def test_it_passes_the_deploy_check_under_the_production_settings(tmp_path):
    result = _manage("check", "--deploy", "--fail-level", "WARNING", EZQUANT_DATA_DIR=str(tmp_path), **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_it_runs_sqlite_in_wal_mode_with_normal_sync(tmp_path):
    script = ("import django; django.setup(); from django.db import connection; c = connection.cursor(); "
              "print(c.execute('PRAGMA journal_mode').fetchone()[0], c.execute('PRAGMA synchronous').fetchone()[0])")
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"} | {
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", "EZQUANT_DATA_DIR": str(tmp_path / "data"),
        "EZQUANT_EMBEDDED_WORKER": "0", "DJANGO_SETTINGS_MODULE": "ezquant_web.settings"}
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.stdout.split() == ["wal", "1"], result.stderr  # synchronous 1 = NORMAL
