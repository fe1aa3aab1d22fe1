"""The running app for browser tests and bench/viewer.py: daphne as a subprocess on a free
port with its own SQLite database and data folder, seeded through ``manage.py shell -c``, and
Debian's headless Chromium driven by Playwright.

Nothing here is a test; ``tests/frontend/test_viewer_e2e.py`` and ``bench/viewer.py`` use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery staple"
ARTIFACTS = ROOT / "var" / "test-artifacts"

# Run by `manage.py shell -c` in the server's environment, with the JSON in $SEED: a user who
# creates a project, other members and outsiders, and one volume imported from a TIFF
# (annotation's own import), optionally with a label version from a raw (Z, Y, X) uint32 file.
# Prints the ids as JSON on its last line.
SEED = """
import json, os
import numpy as np
from django.contrib.auth import get_user_model
from annotation.services import label_version_create, membership_add, project_create, volume_import
seed = json.loads(os.environ["SEED"])
users = get_user_model().objects
user = users.create_user(seed["username"], password=seed["password"])
project = project_create(name=seed["project"], user=user)
for name, role in seed.get("members", []):
    membership_add(project=project, user=users.create_user(name, password=seed["password"]), role=role)
for name in seed.get("outsiders", []):
    users.create_user(name, password=seed["password"])
volume = volume_import(project=project, src_path=seed["tiff"], name=seed["name"], user=user,
                       voxel_size=tuple(seed["voxel_size"]))
out = {"volume": volume.id, "project": project.id}
if seed.get("labels"):
    labels = np.memmap(seed["labels"], dtype=np.uint32, mode="r", shape=tuple(volume.shape))
    out["label_version"] = label_version_create(volume=volume, labels=labels, user=user, source="upload").name
print(json.dumps(out))
"""


def write_generated_stack(work: Path, shape: tuple[int, int, int], seed: int) -> Path:
    """A generated stack for a live app to import: ``work/stack.tif`` (uint16 counts, ZYX) and its
    ground truth ``work/labels.raw`` (uint32, for ``seed(labels=...)``); returns the TIFF's path."""
    import numpy as np
    import tifffile

    from segmentation.core import synthetic

    sample = synthetic.generate_3d(shape=shape, seed=seed)
    tifffile.imwrite(work / "stack.tif", np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    sample.labels.astype(np.uint32).tofile(work / "labels.raw")
    return work / "stack.tif"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveApp:
    """daphne serving the app from ``work`` (database, data folder, log); stop() ends it."""

    def __init__(self, work: Path, *, extra_env: dict | None = None) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "DATABASE_URL": f"sqlite:///{self.work}/db.sqlite3",
                    "EZQUANT_DATA_DIR": str(self.work / "data"), "DEBUG": "1", "PYTHONUNBUFFERED": "1",
                    "LOG_LEVEL": "WARNING", **(extra_env or {})}
        # No DATABASE_URL in the parent means the embedded worker; here DATABASE_URL is set,
        # so ask for it explicitly unless the caller said otherwise.
        self.env.setdefault("EZQUANT_EMBEDDED_WORKER", "1")
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.process: subprocess.Popen | None = None
        self.port = free_port()
        self.log_path = self.work / "daphne.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def manage(self, *args: str, env: dict | None = None, timeout: float = 600) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stderr[-4000:]}")
        return done.stdout

    def migrate(self) -> None:
        self.manage("migrate", "--noinput")

    def seed(self, **seed) -> dict:
        """Create the user, project and volume described by ``seed`` (see SEED)."""
        out = self.manage("shell", "-c", SEED, env={"SEED": json.dumps(seed)})
        return json.loads(out.strip().splitlines()[-1])

    @contextlib.contextmanager
    def running(self, *, prepare: str | None = None, **seed):
        """Migrate, :meth:`seed`, run the ``prepare`` script (``manage.py shell -c``) if any and
        start daphne; yields the seed's answer and stops daphne at the end, even on a failure."""
        try:
            self.migrate()
            answer = self.seed(**seed)
            if prepare is not None:
                self.manage("shell", "-c", prepare)
            self.start()
            yield answer
        finally:
            self.stop()

    def start(self, timeout: float = 60) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
             "ezquant_web.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/healthz", timeout=2)
                return
            except OSError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"daphne did not start:\n{self.log_tail()}") from exc
                time.sleep(0.2)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def launch_chromium(playwright):
    """Debian's Chromium, headless; never a browser Playwright downloaded."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def sign_in(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person does."""
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/projects/")
