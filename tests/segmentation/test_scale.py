"""The scale configuration, end to end: daphne and separate job workers as subprocesses, on a
fresh PostgreSQL database and the Redis channel layer (127.0.0.1). A job submitted over HTTP
with a token is run by the worker process, its progress arrives over a real WebSocket from
daphne, and a worker killed with SIGKILL mid-job leaves the job failed with no label version.

Part of ``make test`` (not skipped): PostgreSQL and Redis must be running. Each step has a
timeout; processes are stopped and the database dropped afterwards.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest

from segmentation.core.modelzoo import DEFAULT_MODEL

pytestmark = pytest.mark.scale

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN_URL = os.environ.get("EZQUANT_TEST_PG_URL", "postgres://root@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EZQUANT_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
STALE_S = 4  # the reaper's limit in these processes: a killed worker's job fails within seconds

SEED = """
import json, os
from django.contrib.auth import get_user_model
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from rest_framework.authtoken.models import Token
from annotation.services import project_create, volume_import
user = get_user_model().objects.create_user("alice", password="x")
project = project_create(name="Scale", user=user)
volumes = {name: volume_import(project=project, src_path=path, name=name, user=user).id
           for name, path in json.loads(os.environ["SEED_PATHS"]).items()}
session = SessionStore()
session[SESSION_KEY] = str(user.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = user.get_session_auth_hash()
session.create()
print(json.dumps({"token": Token.objects.create(user=user).key, "session": session.session_key,
                  "volumes": volumes}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env, *args, timeout=180) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _start(env, args, log: Path) -> subprocess.Popen:
    handle = open(log, "wb")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class Stack:
    def __init__(self, env, port, seed, tmp):
        self.env, self.port, self.seed, self.tmp = env, port, seed, tmp
        self.workers: list[subprocess.Popen] = []

    def api(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {self.seed['token']}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def start_worker(self, name):
        worker = _start(self.env, [sys.executable, "manage.py", "jobs_worker", "--interval", "0.2",
                                   "--reap-interval", "1", "--worker-id", name], self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker

    async def socket(self, path):
        import websockets

        return await websockets.connect(f"ws://127.0.0.1:{self.port}/{path}", origin=f"http://127.0.0.1:{self.port}",
                                        additional_headers={"Cookie": f"sessionid={self.seed['session']}"},
                                        open_timeout=20)

    def label_version_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
            return conn.execute("select count(*) from annotation_labelversion").fetchone()[0]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    import psycopg
    import tifffile

    from segmentation.core import synthetic

    tmp = tmp_path_factory.mktemp("scale")
    name = f"ezquant_scale_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    processes = []
    stack = None
    try:
        env = {**os.environ, "DATABASE_URL": f"postgres://root@127.0.0.1:5432/{name}", "REDIS_URL": REDIS_URL,
               "EZQUANT_DATA_DIR": str(tmp / "data"), "EZQUANT_EMBEDDED_WORKER": "0",
               "EZQUANT_JOB_STALE_SECONDS": str(STALE_S), "DEBUG": "1", "PYTHONUNBUFFERED": "1"}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        _manage(env, "migrate", "--noinput")
        images = {"image2d": synthetic.generate_2d(shape=(96, 96), seed=3).image,
                  "stack3d": synthetic.generate_3d(shape=(24, 128, 128), seed=3).image}
        paths = {}
        for key, image in images.items():
            paths[key] = str(tmp / f"{key}.tif")
            tifffile.imwrite(paths[key], np.clip(np.round(image), 0, 65535).astype(np.uint16))
        seeded = _manage({**env, "SEED_PATHS": json.dumps(paths)}, "shell", "-c", SEED)
        seed = json.loads(seeded.strip().splitlines()[-1])
        port = _free_port()
        processes.append(_start(env, [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                      "ezquant_web.asgi:application"], tmp / "daphne.log"))
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp / "daphne.log").read_text()[-3000:]
                time.sleep(0.2)
        stack = Stack(env, port, seed, tmp)
        yield stack
    finally:
        for process in processes + (stack.workers if stack else []):
            _stop(process)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


async def _states_until(ws, done, timeout):
    import asyncio

    states = []
    deadline = time.monotonic() + timeout
    while not states or not done(states[-1]):
        remaining = deadline - time.monotonic()
        assert remaining > 0, states[-3:]
        states.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=remaining)))
    return states


def test_it_runs_a_job_in_a_worker_process_and_streams_its_progress(stack):
    from asgiref.sync import async_to_sync

    volume = stack.seed["volumes"]["image2d"]
    worker = stack.start_worker("scale-worker-a")

    async def scenario():
        ws = await stack.socket(f"ws/volumes/{volume}/jobs/")
        try:
            job = stack.api("POST", f"volumes/{volume}/segmentation-jobs/", {"params": {"diameter": 15.0}})
            states = await _states_until(ws, lambda s: s["id"] == job["id"] and s["status"] in (
                "succeeded", "failed", "cancelled"), timeout=180)
        finally:
            await ws.close()
        return job, states

    job, states = async_to_sync(scenario)()
    assert worker.poll() is None
    assert states[-1]["status"] == "succeeded", (states[-1], (stack.tmp / "scale-worker-a.log").read_text()[-3000:])
    progress = [s["progress"] for s in states if s["status"] == "running"]
    assert len(progress) >= 2 and progress == sorted(progress)
    final = stack.api("GET", f"segmentation-jobs/{job['id']}/")
    assert (final["status"], final["label_version"], final["worker_id"]) == ("succeeded", "v1", "scale-worker-a")
    assert final["model_version"].startswith(DEFAULT_MODEL)
    _stop(worker)


def test_it_fails_a_job_whose_worker_was_killed(stack):
    from asgiref.sync import async_to_sync

    volume = stack.seed["volumes"]["stack3d"]
    before = stack.label_version_rows()
    doomed = stack.start_worker("scale-worker-doomed")

    async def until_running():
        ws = await stack.socket(f"ws/volumes/{volume}/jobs/")
        try:
            job = stack.api("POST", f"volumes/{volume}/segmentation-jobs/",
                            {"params": {"diameter": 15.0, "do_3d": True, "use_3d_backend": "hybrid2d3d"}})
            await _states_until(ws, lambda s: s["id"] == job["id"] and (
                s["status"] != "queued" and s["progress"] >= 0.1 or s["status"] in ("succeeded", "failed")),
                timeout=180)
        finally:
            await ws.close()
        return job

    job = async_to_sync(until_running)()
    assert stack.api("GET", f"segmentation-jobs/{job['id']}/")["status"] == "running"
    os.killpg(doomed.pid, signal.SIGKILL)  # no chance to clean up: the job is left "running"
    doomed.wait(10)
    stack.start_worker("scale-worker-b")  # reaps at start and every second
    deadline = time.monotonic() + 60
    while (state := stack.api("GET", f"segmentation-jobs/{job['id']}/"))["status"] == "running":
        assert time.monotonic() < deadline, state
        time.sleep(0.5)
    assert state["status"] == "failed" and "no heartbeat" in state["error"], state
    assert state["label_version"] is None
    assert stack.api("GET", f"volumes/{volume}/label-versions/") in ([], {"count": 0, "next": None,
                                                                       "previous": None, "results": []})
    assert stack.label_version_rows() == before


def test_it_keeps_an_idle_job_socket_open(stack):
    """Redis' client once timed its sockets out after 5 s, which closed every quiet job socket."""
    import asyncio

    import websockets
    from asgiref.sync import async_to_sync

    volume = stack.seed["volumes"]["image2d"]

    async def idle():
        ws = await stack.socket(f"ws/volumes/{volume}/jobs/")
        try:
            deadline = time.monotonic() + 7
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(ws.recv(), timeout=remaining)  # the persisted states, then quiet
                except asyncio.TimeoutError:
                    break
                except websockets.ConnectionClosed as exc:
                    raise AssertionError(f"the server closed an idle socket: {exc}") from None
            await ws.ping()
        finally:
            await ws.close()

    async_to_sync(idle)()


def test_it_tells_open_viewers_of_a_workers_label_version_and_who_is_here(stack):
    """The live socket (annotation/consumers.py) across processes: the worker's label version
    reaches a viewer through Redis, and two viewers hear of each other."""
    from asgiref.sync import async_to_sync

    volume = stack.seed["volumes"]["image2d"]
    worker = stack.start_worker("scale-worker-live")

    async def scenario():
        first = await stack.socket(f"ws/volumes/{volume}/live/")
        second = await stack.socket(f"ws/volumes/{volume}/live/")
        try:
            hello = json.loads(await first.recv())
            assert hello["type"] == "hello" and hello["you"]["user"] == "alice"
            joined = await _states_until(first, lambda s: s["type"] == "presence", timeout=20)
            assert (joined[-1]["action"], joined[-1]["user"]) == ("join", "alice")  # her other window
            job = stack.api("POST", f"volumes/{volume}/segmentation-jobs/", {"params": {"diameter": 15.0}})
            heard = await _states_until(second, lambda s: s["type"] == "label_version", timeout=180)
        finally:
            await first.close()
            await second.close()
        return job, heard[-1]

    job, event = async_to_sync(scenario)()
    final = stack.api("GET", f"segmentation-jobs/{job['id']}/")
    assert final["status"] == "succeeded", (stack.tmp / "scale-worker-live.log").read_text()[-3000:]
    assert (event["volume"], event["name"], event["source"], event["by"]) == (volume, final["label_version"],
                                                                              "segmentation", "alice")
    assert event["what"].startswith("a segmentation by alice made new labels")
    _stop(worker)


def test_it_imports_an_upload_in_a_worker_process(stack):
    """An upload answered 202 by daphne is imported by a worker process (the file shared through
    EZQUANT_DATA_DIR), its progress pushed on ws/import-jobs/<id>/ through Redis."""
    import tifffile
    from asgiref.sync import async_to_sync

    project = stack.api("GET", "projects/")[0]["id"]
    path = stack.tmp / "uploaded stack.tif"
    tifffile.imwrite(path, np.arange(6 * 64 * 64, dtype=np.uint16).reshape(6, 64, 64), photometric="minisblack",
                     metadata={"axes": "ZYX"})
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: image/tiff\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://127.0.0.1:{stack.port}/api/v1/projects/{project}/volumes/import-jobs/",
                                     method="POST", data=body,
                                     headers={"Authorization": f"Token {stack.seed['token']}",
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        job = json.loads(response.read())
    worker = stack.start_worker("scale-worker-import")

    async def follow():
        ws = await stack.socket(f"ws/import-jobs/{job['id']}/")
        try:
            return await _states_until(ws, lambda s: s["status"] in ("succeeded", "failed", "cancelled"), timeout=120)
        finally:
            await ws.close()

    states = async_to_sync(follow)()
    log = stack.tmp / "scale-worker-import.log"
    assert states[-1]["status"] == "succeeded", (states[-1], log.read_text()[-3000:])
    assert states[-1]["volume_name"] == "uploaded stack.tif" and states[-1]["progress"] == 1.0
    volume = stack.api("GET", f"volumes/{states[-1]['volume']}/")
    assert volume["shape"] == [6, 64, 64]
    assert not any((stack.tmp / "data" / "imports").iterdir())  # the upload is gone
    _stop(worker)
