"""Latency of a segmentation job end to end, against the bare core call on the same image.

A job is submitted over HTTP (``POST /api/v1/volumes/<id>/segmentation-jobs/``, API token) and
followed over a real WebSocket (``ws/volumes/<id>/jobs/``, session cookie) opened before the
submission; every message is timestamped as it arrives. Three moments are measured from the
moment before the POST is sent: the 201 answer, the first event with status ``running`` (a
worker has claimed the job: the first progress the user sees) and the event that ends it
(``succeeded``). The bare call is ``SegmentationEngine().segment(image, SegmentationParams(...))``
in this process on the same pixels (the uint16 array imported as the volume). Bare calls and
jobs alternate. A socket the server closes during a job is opened again at once (the consumer
sends the current state on connecting) and counted.

Two configurations, each started for real in a temporary folder:

* embedded: SQLite, the in-memory channel layer, one daphne process whose worker thread runs
  the jobs (``EZQUANT_EMBEDDED_WORKER=1``), as ``make run``;
* scale: a PostgreSQL database created (and dropped) by this script at 127.0.0.1:5432, the
  Redis channel layer at 127.0.0.1:6379, daphne with ``EZQUANT_EMBEDDED_WORKER=0`` and a
  separate ``manage.py jobs_worker`` process, as ``make worker`` (default poll interval).

The first job of each case in a configuration is reported apart ("cold": the worker imports
torch and loads the model on its first job); the bare call is warmed up once beforehand. The
medians are over the ``--repeats`` warm runs. The worker's own timings (``job.timings``: read,
segment, save), the wait from submission to claim (``started_at - created_at``) and the time
from the row's ``finished_at`` to the final event's arrival (same machine, same clock) break
the overhead down; "done - worker segment" is the job's cost beside the engine call, which
holds up on a shared machine better than the difference of two engine calls does.

    python bench/jobs.py [--repeats 3] [--only embedded|scale] [--keep]

Needs PostgreSQL (trust auth for ``root``, or ``EZQUANT_BENCH_PG_URL``) and Redis
(``EZQUANT_BENCH_REDIS_URL``, database 11 by default) for the scale configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_ADMIN_URL = os.environ.get("EZQUANT_BENCH_PG_URL", "postgres://root@127.0.0.1:5432/postgres")
# Not the tests' database (9): group names (segjob.<id>) would collide with a test run's.
REDIS_URL = os.environ.get("EZQUANT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
FINISHED = ("succeeded", "failed", "cancelled")
JOB_TIMEOUT_S = 180
DIAMETER = 15.0

# What settings.py reads that this script sets itself, per configuration.
_OWN_VARIABLES = ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "EZQUANT_EMBEDDED_WORKER",
                  "EZQUANT_JOB_STALE_SECONDS", "EZQUANT_DATA_DIR")

SEED = """
import json, os
from django.contrib.auth import get_user_model
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from rest_framework.authtoken.models import Token
from annotation.services import project_create, volume_import
user = get_user_model().objects.create_user("bench", password="bench-password-1")
project = project_create(name="bench jobs", user=user)
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


def _cases() -> dict[str, tuple[np.ndarray, dict]]:
    """Name -> (uint16 image as imported, job params)."""
    from segmentation.core.synthetic import generate_2d, generate_3d

    image2d = generate_2d(shape=(256, 256), seed=7001, diameter=DIAMETER).image
    image3d = generate_3d(shape=(16, 128, 128), seed=7001, diameter=DIAMETER).image
    def counts(image):  # the generator's values are photon counts: stored as they are
        return np.clip(np.round(image), 0, 65535).astype(np.uint16)

    return {
        "2D 256x256": (counts(image2d), {"diameter": DIAMETER}),
        "3D 16x128x128 hybrid2d3d": (counts(image3d),
                                     {"diameter": DIAMETER, "do_3d": True, "use_3d_backend": "hybrid2d3d"}),
    }


def _bare(image: np.ndarray, params: dict) -> tuple[float, int]:
    """Seconds of the bare core call, and its nucleus count."""
    from segmentation.core import SegmentationEngine, SegmentationParams

    t = time.perf_counter()
    result = SegmentationEngine().segment(image, SegmentationParams(**params))
    return time.perf_counter() - t, int(result.info["nucleus_count"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


class Stack:
    """One configuration's processes: migrate and seed, then daphne (and a worker)."""

    def __init__(self, env: dict, tmp: Path) -> None:
        self.env, self.tmp = env, tmp
        self.processes: list[subprocess.Popen] = []
        self.port = 0
        self.seed: dict = {}

    def _manage(self, *args: str, extra: dict | None = None) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**self.env, **(extra or {})},
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise SystemExit(f"manage.py {args[0]} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def _start(self, args: list[str], name: str) -> subprocess.Popen:
        log = open(self.tmp / f"{name}.log", "wb")
        process = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()  # the child holds its own copy
        self.processes.append(process)
        return process

    def start(self, paths: dict[str, str], *, worker: bool) -> None:
        self._manage("migrate", "--noinput")
        out = self._manage("shell", "-c", SEED, extra={"SEED_PATHS": json.dumps(paths)})
        self.seed = json.loads(out.strip().splitlines()[-1])
        if worker:
            self._start([sys.executable, "manage.py", "jobs_worker", "--worker-id", "bench-worker"], "worker")
        self.port = _free_port()
        daphne = self._start([str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                              "ezquant_web.asgi:application"], "daphne")
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2)
                break
            except OSError:
                if daphne.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"daphne did not start:\n{_tail(self.tmp / 'daphne.log')}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/{path}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"Token {self.seed['token']}",
                                                  "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    async def _socket(self, volume: int):
        import websockets

        return await websockets.connect(f"ws://127.0.0.1:{self.port}/ws/volumes/{volume}/jobs/",
                                        origin=f"http://127.0.0.1:{self.port}",
                                        additional_headers={"Cookie": f"sessionid={self.seed['session']}"},
                                        open_timeout=20)

    async def job(self, volume: int, params: dict) -> dict:
        """Submit one job and follow it to its end; seconds from just before the POST.

        A socket the server closes is opened again, as a browser would: the consumer sends the
        current states on connecting, so the end is still seen. Each such close is counted.
        """
        import websockets

        sockets = [await self._socket(volume)]
        closes: list[int | None] = []  # close codes of sockets the server ended
        arrivals: list[tuple[float, float, dict]] = []  # perf_counter, wall clock, state
        arrived = asyncio.Event()

        async def read() -> None:
            while len(closes) < 50:
                try:
                    async for message in sockets[-1]:
                        arrivals.append((time.perf_counter(), time.time(), json.loads(message)))
                        arrived.set()
                except websockets.ConnectionClosed:
                    pass
                closes.append(sockets[-1].close_code)
                sockets.append(await self._socket(volume))

        reader = asyncio.create_task(read())
        try:
            await asyncio.sleep(0.2)  # let the states of earlier jobs, sent on connect, go by
            t0 = time.perf_counter()
            # In a thread, so the reader stamps events that arrive before the answer does.
            job = await asyncio.to_thread(self.api, "POST", f"volumes/{volume}/segmentation-jobs/", {"params": params})
            t_created = time.perf_counter() - t0
            deadline = t0 + JOB_TIMEOUT_S
            while True:
                mine = [a for a in arrivals if a[2]["id"] == job["id"]]
                if mine and mine[-1][2]["status"] in FINISHED:
                    break
                if reader.done() or time.perf_counter() > deadline:
                    why = (f"the WebSocket failed: {reader.exception()!r}" if reader.done()
                           else f"no end within {JOB_TIMEOUT_S} s")
                    row = self.api("GET", f"segmentation-jobs/{job['id']}/")
                    raise SystemExit(f"job {job['id']}: {why}; server closes {closes}; last event {mine[-1:]}; "
                                     f"row: {row}\nworker log:\n{_tail(self.tmp / 'worker.log')}\n"
                                     f"daphne log:\n{_tail(self.tmp / 'daphne.log')}")
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        finally:
            reader.cancel()
            await sockets[-1].close()
        running = [t for t, _, s in mine if s["status"] == "running"]
        final = self.api("GET", f"segmentation-jobs/{job['id']}/")
        if final["status"] != "succeeded":
            raise SystemExit(f"job {job['id']} ended {final['status']}: {final['error']}")
        version = self.api("GET", f"volumes/{volume}/label-versions/{final['label_version']}/")
        wait = datetime.fromisoformat(final["started_at"]) - datetime.fromisoformat(final["created_at"])
        # From the row's finished_at (written just before the event is sent) to the event's arrival.
        delivery = mine[-1][1] - datetime.fromisoformat(final["finished_at"]).timestamp()
        return {"created": t_created, "first": running[0] - t0 if running else float("nan"),
                "done": mine[-1][0] - t0, "wait": wait.total_seconds(), "delivery": delivery,
                "timings": final["timings"],
                "n_labels": version["n_labels"], "events": len(mine), "closes": len(closes),
                "close_codes": closes}


def _measure(stack: Stack, cases: dict, repeats: int) -> list[dict]:
    rows = []
    for run in ["cold", *range(1, repeats + 1)]:
        for name, (image, params) in cases.items():
            bare, count = _bare(image, params)
            job = asyncio.run(stack.job(stack.seed["volumes"][name], params))
            if job["closes"]:
                print(f"  note: {name}: the server closed the WebSocket {job['closes']} time(s) during the job "
                      f"(codes {sorted(set(job['close_codes']))}); reopened each time", flush=True)
            if job["n_labels"] != count:
                print(f"  note: {name}: the job found {job['n_labels']} nuclei, the bare call {count}", flush=True)
            rows.append({"case": name, "run": run, "bare": bare, **job})
            print(f"  {name:<26} {run!s:>4}: bare {bare:.2f} s ({count} nuclei), job done after {job['done']:.2f} s",
                  flush=True)
    return rows


def _print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    header = ("case", "run", "bare s", "->201 s", "->first progress s", "->done s", "overhead s", "ratio",
              "done - worker segment s", "claim wait s", "worker segment s", "worker save s",
              "done event delivery s", "events", "sockets closed by the server")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))

    def line(case, run, r):
        cells = [case, str(run), f"{r['bare']:.2f}", f"{r['created']:.3f}", f"{r['first']:.2f}", f"{r['done']:.2f}",
                 f"{r['overhead']:+.2f}", f"{r['ratio']:.2f}x", f"{r['fixed']:.2f}", f"{r['wait']:.2f}",
                 f"{r['segment']:.2f}", f"{r['save']:.2f}", f"{r['delivery']:.3f}", f"{r['events']:.0f}",
                 f"{r['closes']:.0f}"]
        print("| " + " | ".join(cells) + " |")

    nan = float("nan")
    flat = [{**r, "overhead": r["done"] - r["bare"], "ratio": r["done"] / r["bare"],
             "fixed": r["done"] - r["timings"].get("segment", nan),
             "segment": r["timings"].get("segment", nan), "save": r["timings"].get("save", nan)}
            for r in rows]
    for case in dict.fromkeys(r["case"] for r in flat):
        mine = [r for r in flat if r["case"] == case]
        for r in mine:
            line(case, r["run"], r)
        warm = [r for r in mine if r["run"] != "cold"]
        if warm:
            # Per column, over the warm runs: overhead and ratio are the medians of each pair's
            # (a bare call and the job right after it), not the difference of two medians.
            line(case, "median", {k: statistics.median(r[k] for r in warm) for k in warm[0]
                                  if isinstance(warm[0][k], (int, float)) and k != "run"})


def _base_env(data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _OWN_VARIABLES}
    env.update({"DEBUG": "0", "SECRET_KEY": "bench-only-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
                "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", "EZQUANT_OFFLINE": "1",
                "EZQUANT_DATA_DIR": str(data_dir)})
    return env


def run_embedded(tmp: Path, paths: dict, cases: dict, repeats: int) -> list[dict]:
    env = {**_base_env(tmp / "data"), "EZQUANT_EMBEDDED_WORKER": "1",
           # SQLite in the temporary folder, not the repository's var/db.sqlite3; with this set,
           # the embedded worker must be asked for (its default is on only without DATABASE_URL).
           "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3"}
    stack = Stack(env, tmp)
    try:
        stack.start(paths, worker=False)
        return _measure(stack, cases, repeats)
    finally:
        stack.stop()


def run_scale(tmp: Path, paths: dict, cases: dict, repeats: int) -> list[dict]:
    import psycopg

    name = f"ezquant_bench_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(PG_ADMIN_URL.replace("postgres://", "postgresql://"), autocommit=True)
    try:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        env = {**_base_env(tmp / "data"), "EZQUANT_EMBEDDED_WORKER": "0", "DATABASE_URL": f"{base}/{name}",
               "REDIS_URL": REDIS_URL}
        stack = Stack(env, tmp)
        try:
            stack.start(paths, worker=True)
            return _measure(stack, cases, repeats)
        finally:
            stack.stop()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per case and configuration")
    parser.add_argument("--only", choices=("embedded", "scale"), help="run one configuration")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, SQLite)")
    args = parser.parse_args()

    import tifffile
    import torch

    tmp = Path(tempfile.mkdtemp(prefix="ezquant-bench-jobs-"))
    try:
        cases = _cases()
        paths = {}
        for name, (image, _params) in cases.items():
            paths[name] = str(tmp / f"{len(paths)}.tif")
            tifffile.imwrite(paths[name], image)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CUDA {torch.cuda.is_available()}; "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
        for image, params in cases.values():
            _bare(image, params)  # model load and first-call costs, so every bare run is warm
        results = {}
        for config, run in (("embedded", run_embedded), ("scale", run_scale)):
            if args.only in (None, config):
                print(f"== {config}", flush=True)
                (tmp / config).mkdir()
                results[config] = run(tmp / config, paths, cases, args.repeats)
        titles = {"embedded": "Embedded: SQLite, in-memory channel layer, worker thread in daphne",
                  "scale": "Scale: PostgreSQL, Redis channel layer, daphne + manage.py jobs_worker"}
        for config, rows in results.items():
            _print_table(titles[config], rows)
        print("\nseconds from just before the POST; overhead = done - bare; ratio = done / bare; done - worker "
              "segment: the job's cost beside the engine call, whatever the CPU contention; "
              f"load at the end {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
