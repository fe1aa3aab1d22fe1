"""Settings for EZQuant Web, read from environment variables.

Every variable is listed, with its default, in ``.env.example``. The defaults run the whole
application on one machine with nothing else installed: SQLite in ``var/db.sqlite3`` and the
in-memory channel layer. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and Redis.

The helpers below fail loudly: a value that cannot be parsed stops start-up with the
variable's name, rather than running with a silent fallback.
"""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from ezquant_web import __version__

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_str(name: str, default: str | None = None) -> str:
    """The variable as a string; without a default, a missing variable is an error."""
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list; blanks around items and empty items are dropped."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    """A ``DATABASES`` entry from ``postgres://user:password@host:port/name?option=value``
    (``postgresql://`` too) or ``sqlite:///relative/path`` / ``sqlite:////absolute/path``."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL names no database (postgres://user:pass@host:5432/NAME)")
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            # 0 by default: under ASGI each request runs in its own thread, which cannot reuse a
            # persistent connection (Django docs, "Asynchronous support"); workers may raise it.
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 0),
            "CONN_HEALTH_CHECKS": True,
        }
    if parts.scheme == "sqlite":
        path = unquote(parts.path)[1:]  # sqlite:///var/x.db -> var/x.db; sqlite:////tmp/x.db -> /tmp/x.db
        if not path:
            raise ImproperlyConfigured("DATABASE_URL names no SQLite file (sqlite:///var/db.sqlite3)")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / path}
    raise ImproperlyConfigured(f"DATABASE_URL must start with postgres://, postgresql:// or sqlite://; got {url!r}")


#: Django's own deploy check (security.W009) wants at least 50 characters.
SECRET_KEY_MIN_LENGTH = 50


def secret_key(given: str | None, path: Path) -> str:
    """``SECRET_KEY`` as given (refused when shorter than 50 characters), else the key kept in
    ``path``, generated the first time. Several processes may start at once: each writes a
    whole key to a file of its own and links it into place, which fails if one is there, so
    they all end up with the first key and none reads a half-written one."""
    if given is not None:
        if len(given) < SECRET_KEY_MIN_LENGTH or len(set(given)) < 5:
            raise ImproperlyConfigured(
                f"SECRET_KEY must be at least {SECRET_KEY_MIN_LENGTH} characters (of at least 5 different ones); "
                f"got {len(given)}. Unset it to use a generated key kept in {path}, or make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(50))'")
        return given
    import secrets

    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process was first: use its key
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < SECRET_KEY_MIN_LENGTH:
        raise ImproperlyConfigured(f"the kept SECRET_KEY in {path} is shorter than {SECRET_KEY_MIN_LENGTH} "
                                   "characters: delete the file to generate a new one")
    return key


VERSION = __version__

# Off unless asked for: debug pages show every URL pattern and the settings to whoever gets one.
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Behind HTTPS (the production settings in the README: `manage.py check --deploy` is clean) ---
# Trust the proxy's X-Forwarded-Proto: https (set only behind a proxy that sets it itself).
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# /healthz stays reachable over plain HTTP for a load balancer's probe.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Send the session and CSRF cookies over HTTPS only; turn on wherever the site is served over HTTPS.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)

INSTALLED_APPS = [
    "daphne",  # first, so `manage.py runserver` serves ASGI (HTTP and WebSockets)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here: nothing loads from a CDN
    "channels",
    "axes",  # sign-in throttling (ezquant_web/login_throttle.py)
    "django_tasks",
    "django_tasks_db",  # the task queue's database backend: job rows any worker can claim
    "segmentation",
    "annotation",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns a locked-out sign-in into its answer
]

ROOT_URLCONF = "ezquant_web.urls"
ASGI_APPLICATION = "ezquant_web.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", "sqlite:///var/db.sqlite3"))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # SQLite creates the file but not its folder; var/ is git-ignored.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The embedded worker thread writes progress while requests write too: wait for the lock
    # rather than failing at once with "database is locked". IMMEDIATE: a transaction takes the
    # write lock when it begins, so two edits of one volume are serialised (PostgreSQL does it
    # with SELECT ... FOR UPDATE, which SQLite ignores) and no reader-turned-writer deadlocks.
    # WAL + synchronous=NORMAL: a commit appends to the write-ahead log without an fsync (18-29 ms
    # of an edit under load), readers never wait for the writer, and the file is never corrupted;
    # on a power loss (not a crash of the process) the last commits since a checkpoint may be
    # lost. WAL needs a local disk (not NFS): the default database is one machine's.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE",
                                       "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        # socket_timeout None: channels-redis blocks up to 5 s on Redis per receive, and redis-py 8
        # times sockets out at 5 s by default, which closed every idle job WebSocket (code 1011).
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                    "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]}},
    }
else:
    # One process only: fine for `make run` and tests, not for a separate worker process.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Background jobs (segmentation) -----------------------------------------------------------
# django-tasks with its database backend: a job is a row any worker pointing at the same
# database can claim (`make worker`, as many machines as wanted).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Run a worker thread inside the ASGI process: on by default when DATABASE_URL is unset (one
# machine, SQLite, nothing else to start); off in the scale configuration.
EZQUANT_EMBEDDED_WORKER = env_bool("EZQUANT_EMBEDDED_WORKER", "DATABASE_URL" not in os.environ)
# A folder of model files that the admins of any project may name in a job's model_name
# (relative to it). Empty: none; jobs use the shipped models, Cellpose's built-in ones and
# their project's own model versions only.
EZQUANT_MODELS_DIR = str(BASE_DIR / env_str("EZQUANT_MODELS_DIR")) if os.environ.get("EZQUANT_MODELS_DIR") else ""
# Jobs waiting at once, per user and per project: more are refused (429) until some have run.
EZQUANT_MAX_QUEUED_JOBS_PER_USER = env_int("EZQUANT_MAX_QUEUED_JOBS_PER_USER", 10)
EZQUANT_MAX_QUEUED_JOBS_PER_PROJECT = env_int("EZQUANT_MAX_QUEUED_JOBS_PER_PROJECT", 30)
# A running job whose heartbeat is older than this is taken for dead (its worker was killed)
# and marked failed by the reaper that every worker runs at start and every minute.
EZQUANT_JOB_STALE_SECONDS = env_int("EZQUANT_JOB_STALE_SECONDS", 600)
# /healthz answers 503 when the oldest queued job has waited this long while no job started or
# gave a heartbeat (the queue does not move: no worker, or a stuck one).
EZQUANT_JOB_QUEUE_STUCK_SECONDS = env_int("EZQUANT_JOB_QUEUE_STUCK_SECONDS", 900)
# "HH:MM" (local time): every worker queues, once a day from then, a retraining of each project
# with at least 20 approved corrections not trained on yet. Empty: no schedule.
EZQUANT_RETRAIN_NIGHTLY_AT = env_str("EZQUANT_RETRAIN_NIGHTLY_AT", "")
if EZQUANT_RETRAIN_NIGHTLY_AT and not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", EZQUANT_RETRAIN_NIGHTLY_AT):
    raise ImproperlyConfigured(f"EZQUANT_RETRAIN_NIGHTLY_AT must be HH:MM, got {EZQUANT_RETRAIN_NIGHTLY_AT!r}")

# Sign-in pages (frontend): Django's LoginView and LogoutView under /accounts/.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "project-list-page"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes, ezquant_web/login_throttle.py): after this many failures for
# one account or from one address (each counted on its own), every sign-in of that account or
# from that address is refused (429) for the cool-off, the right password included; a success
# before that clears the count.
AUTHENTICATION_BACKENDS = ["ezquant_web.login_throttle.LoginThrottleBackend",
                           "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("EZQUANT_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("EZQUANT_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "ezquant_web.login_throttle.lockout_response"
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Serve /static/ from the ASGI app itself (see asgi.py); turn off behind a web server that does.
SERVE_STATIC = env_bool("SERVE_STATIC", True)

# --- Volumes and the REST API ---------------------------------------------------------------
# Where volumes (OME-Zarr directories), uploads in progress and exports live; relative paths are
# relative to the repository. Volume rows store their path relative to this folder.
EZQUANT_DATA_DIR = BASE_DIR / env_str("EZQUANT_DATA_DIR", "var/data")
EZQUANT_DATA_DIR.mkdir(parents=True, exist_ok=True)
# Empty counts as unset (an env file's "SECRET_KEY=").
SECRET_KEY = secret_key(os.environ.get("SECRET_KEY") or None, EZQUANT_DATA_DIR / "secret_key")
# Largest image accepted, in voxels (Z * Y * X), checked before anything is written.
EZQUANT_MAX_VOXELS = env_int("EZQUANT_MAX_VOXELS", 2 ** 31)
# Largest image accepted once decoded, in bytes (voxels x bytes per voxel of its type), read
# from the file's header before any pixel is decoded: what one volume may cost in memory. A volume
# above EZQUANT_BLOCK_VOXELS is never read whole, so for it this bounds one plane.
EZQUANT_MAX_IMAGE_BYTES = env_int("EZQUANT_MAX_IMAGE_BYTES", 2 ** 30)
# Volumes of more voxels than this are segmented block by block (segmentation.core.blockwise),
# jobs and `manage.py segment` alike, in blocks of at most this many voxels, margins included:
# memory is then bounded by the block (about 20 bytes a voxel), not by the volume.
EZQUANT_BLOCK_VOXELS = env_int("EZQUANT_BLOCK_VOXELS", 2 ** 25)
# A dask.distributed scheduler (tcp://host:8786) whose workers run the blocks; its workers must
# see EZQUANT_DATA_DIR at the same path. Empty: the blocks run in the job's own process.
DASK_SCHEDULER_ADDRESS = env_str("DASK_SCHEDULER_ADDRESS", "")
# What one edit may cost: points of its drawing, brush radius (pixels), voxels of the region
# it reads and rewrites. Larger edits are refused with 400 before any pixel is touched.
EZQUANT_EDIT_MAX_POINTS = env_int("EZQUANT_EDIT_MAX_POINTS", 10_000)
EZQUANT_EDIT_MAX_RADIUS = env_int("EZQUANT_EDIT_MAX_RADIUS", 100)
EZQUANT_EDIT_MAX_VOXELS = env_int("EZQUANT_EDIT_MAX_VOXELS", 2 ** 24)
# Largest upload accepted (an image or a label TIFF), in bytes; larger ones get 413.
EZQUANT_MAX_UPLOAD_BYTES = env_int("EZQUANT_MAX_UPLOAD_BYTES", 8 * 2 ** 30)
# Encoded tiles kept in memory per server process (LRU), in bytes; 0 turns the cache off.
EZQUANT_TILE_CACHE_BYTES = env_int("EZQUANT_TILE_CACHE_BYTES", 64 * 2 ** 20)

# Uploaded files always stream to a temporary file, never into memory (only the temporary-file
# handler), in the data folder so that a multi-gigabyte stack does not fill a small /tmp and the
# import reads it from the same disk.
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.TemporaryFileUploadHandler"]
FILE_UPLOAD_TEMP_DIR = EZQUANT_DATA_DIR / "uploads"
FILE_UPLOAD_TEMP_DIR.mkdir(parents=True, exist_ok=True)
# Under ASGI, Django first spools the whole request body into a SpooledTemporaryFile of this
# size that rolls over to the system temp folder (TMPDIR): it must be small but not 0, which
# would mean "never roll over", i.e. the whole upload in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
# The non-file part of a request body (form fields, JSON) stays small.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

REST_FRAMEWORK = {
    # Token first: an unauthenticated request gets 401 with "WWW-Authenticate: Token".
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "ezquant_web.api.AutoSchema",
    "EXCEPTION_HANDLER": "ezquant_web.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EZQuant Web API",
    "DESCRIPTION": "Projects, volumes, label versions, nuclei and exports. Image and label tiles are "
                   "served beside it: GET /api/v1/volumes/{id}/tiles/{level}/{z}/{ty}/{tx}.png|webp and "
                   "/api/v1/volumes/{id}/labels/{version}/tiles/{level}/{z}/{ty}/{tx}.png.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
