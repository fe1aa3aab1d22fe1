"""Tile latency through the real server (daphne, ASGI) against reading the same tiles from zarr.

Builds, in a temporary folder, a 64 x 2048 x 2048 uint16 volume (a generated 16 x 256 x 256
block of nuclei repeated across the field and down the stack, each copy offset in brightness
and ids; written plane by plane as a TIFF and imported through ``volume_import``, so memory
stays at a few planes) and a label version of it (written from a memory-mapped array; nuclei
are not measured: this bench is about tiles). Then it starts daphne on a free port with a
temporary SQLite database, and requests level-0 tiles with an API token over one keep-alive
connection:

* cold: tiles never requested before, in a new server process (the OS page cache cannot be
  dropped here, so the files may be in memory: cold means the server's first read, not disk);
* warm: the same tiles again (same URLs, no If-None-Match: full responses);
* 304: the same tiles with their ETag (revalidation);
* and with 4 connections in parallel (warm), for throughput;

for 256 x 256 and 512 x 512 image tiles (PNG) and label tiles, and 256 x 256 image and label
tiles of the XZ and YZ planes (``tiles/xz/...``, ``tiles/yz/...``: one 256-row tile spans the 64
planes at the voxel size's aspect of 4). Each kind reads its own planes (rows, columns), so no
tile of one kind warms another's chunks. The kinds take turns, one tile of each at a time, so
a change in the machine's load meets all of them alike. The XZ and YZ figures are compared with the XY ones of
the same size and layer (target: p50 within 2x). The same tiles are read straight from the store
(``VolumeStore.read_tile``) and encoded (``encode_image_tile``/``encode_label_tile``) in this
process, timed separately. Prints p50/p95 in milliseconds, tiles/s, and the ratio of HTTP to
direct.

    python bench/tiles.py [--tiles 150] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPE = (64, 2048, 2048)
BLOCK = (16, 256, 256)
TARGET_WARM_MS, TARGET_COLD_MS = 10.0, 30.0
TARGET_ORTHO_RATIO = 2.0  # XZ / YZ tiles' p50 over XY's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _blocks():
    from segmentation.core.synthetic import generate_3d

    sample = generate_3d(shape=BLOCK, seed=11)
    image = np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16)
    return image, sample.labels.astype(np.uint32), int(sample.labels.max())


def _plane(block: np.ndarray, z: int, per_block) -> np.ndarray:
    """Plane z of the tiled field: copy (bz, by, bx) of the block, changed by ``per_block``."""
    bz, zz = divmod(z, BLOCK[0])
    ny, nx = SHAPE[1] // BLOCK[1], SHAPE[2] // BLOCK[2]
    rows = []
    for by in range(ny):
        rows.append(np.concatenate([per_block(block[zz], (bz * ny + by) * nx + bx) for bx in range(nx)], axis=1))
    return np.concatenate(rows, axis=0)


def build_data(work: Path) -> tuple[Path, Path]:
    import tifffile

    image, labels, max_id = _blocks()
    tiff = work / "stack.tif"
    with tifffile.TiffWriter(tiff, bigtiff=True) as writer:
        writer.write((_plane(image, z, lambda p, k: p + np.uint16(k % 50 * 20)) for z in range(SHAPE[0])),
                     shape=SHAPE, dtype=np.uint16, photometric="minisblack", metadata={"axes": "ZYX"})
    label_file = work / "labels.u32"
    mapped = np.memmap(label_file, dtype=np.uint32, mode="w+", shape=SHAPE)
    for z in range(SHAPE[0]):
        mapped[z] = _plane(labels, z, lambda p, k: np.where(p > 0, p + np.uint32(k * max_id), 0).astype(np.uint32))
    mapped.flush()
    del mapped
    return tiff, label_file


def setup_django(work: Path) -> None:
    os.environ.update(_server_env(work))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _server_env(work: Path) -> dict:
    return {"DATABASE_URL": f"sqlite:///{work}/db.sqlite3", "EZQUANT_DATA_DIR": str(work / "data"),
            "DEBUG": "0", "SECRET_KEY": "bench-only-" + "x" * 40, "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "ezquant_web.settings"}


def create_rows(tiff: Path, label_file: Path):
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from annotation.models import LabelVersion
    from annotation.services import project_create, volume_import
    from annotation.stores import volume_store

    user = get_user_model().objects.create_user("bench", password="bench-password-1")
    project = project_create(name="bench", user=user)
    t = time.perf_counter()
    volume = volume_import(project=project, src_path=tiff, name="bench", user=user, voxel_size=(2.0, 0.5, 0.5))
    print(f"imported {SHAPE} uint16 in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    store = volume_store(volume)
    meta = store.write_labels(np.memmap(label_file, dtype=np.uint32, mode="r", shape=SHAPE))
    LabelVersion.objects.create(volume=volume, number=meta.number, name=meta.name, source="upload",
                                n_labels=meta.n_labels, created_by=user)
    print(f"wrote label version {meta.name} ({meta.n_labels} ids) in {time.perf_counter() - t:.1f} s", flush=True)
    _time_layouts(store, meta.name)
    return volume, meta.name, Token.objects.create(user=user).key


def _time_layouts(store, version: str) -> None:
    """What the XZ / YZ chunk layouts (annotation.storage.ortho) add to the import and to a
    label version: the same writes again, into a scratch folder, from the stored levels."""
    from annotation.storage.ortho import write_ortho_levels
    from annotation.storage.zarrio import open_array

    scratch = store.path.parent / "layouts-timed"
    for name, root, dtype in (("image", store.path, store.meta.dtype), ("labels", store.path / "labels" / version,
                                                                          np.uint32)):
        levels = [open_array(root / str(k)) for k in range(store.meta.n_levels)]
        t = time.perf_counter()
        write_ortho_levels(scratch / name, lambda k, levels=levels: levels[k], store.meta.level_shapes, dtype)
        print(f"  of which the {name} XZ and YZ layouts (written again from the levels): "
              f"{time.perf_counter() - t:.1f} s", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


class Server:
    def __init__(self, work: Path, extra_env: dict) -> None:
        self.port = _free_port()
        self.log = open(work / "daphne.log", "a")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
             "ezquant_web.asgi:application"],
            cwd=ROOT, env={**os.environ, **_server_env(work), **extra_env}, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"daphne did not start; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


def _fetch(conn: http.client.HTTPConnection, url: str, headers: dict) -> tuple[float, int, bytes, str]:
    t = time.perf_counter()
    conn.request("GET", url, headers=headers)
    response = conn.getresponse()
    body = response.read()
    return (time.perf_counter() - t) * 1000, response.status, body, response.getheader("ETag")


def _stats(ms: list[float]) -> tuple[float, float, float]:
    a = np.asarray(ms)
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), 1000 * len(a) / float(a.sum())


def _parallel(port: int, urls: list[str], headers: dict, n_threads: int) -> float:
    """Tiles per second with ``n_threads`` keep-alive connections sharing the URLs."""
    parts = [urls[i::n_threads] for i in range(n_threads)]

    def run(part):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for url in part:
            _fetch(conn, url, headers)
        conn.close()

    threads = [threading.Thread(target=run, args=(p,)) for p in parts]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(urls) / (time.perf_counter() - t)


def _measure(port: int, urls: dict[str, list[str]], headers: dict, *, full: bool) -> dict[str, dict]:
    """Each kind's figures; the kinds take turns tile by tile (one of each, then the next), so a
    change of the machine's load meets all of them alike and their ratios hold."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    out = {name: {"first": [], "again": [], "304": []} for name in urls}
    etags, sizes = {name: [] for name in urls}, {name: [] for name in urls}
    n = max(len(u) for u in urls.values())
    for i in range(n):
        for name, kind_urls in urls.items():
            if i < len(kind_urls):
                ms, status, body, etag = _fetch(conn, kind_urls[i], headers)
                assert status == 200, (kind_urls[i], status, body[:200])
                out[name]["first"].append(ms)
                etags[name].append(etag)
                sizes[name].append(len(body))
    for i in range(n):
        for name, kind_urls in urls.items():
            if i < len(kind_urls):
                out[name]["again"].append(_fetch(conn, kind_urls[i], headers)[0])
    for name in urls:
        out[name]["kb"] = float(np.mean(sizes[name])) / 1024
    if full:
        for i in range(n):
            for name, kind_urls in urls.items():
                if i < len(kind_urls):
                    ms, status, _, _ = _fetch(conn, kind_urls[i], {**headers, "If-None-Match": etags[name][i]})
                    assert status == 304
                    out[name]["304"].append(ms)
        for name, kind_urls in urls.items():
            out[name]["parallel"] = _parallel(port, kind_urls * 2, headers, 4)
    conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=150, help="distinct tiles per kind")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ezquant-bench-tiles-"))
    server = None
    try:
        t = time.perf_counter()
        tiff, label_file = build_data(work)
        print(f"generated the TIFF and labels in {time.perf_counter() - t:.1f} s", flush=True)
        setup_django(work)
        volume, version, token = create_rows(tiff, label_file)
        tiff.unlink()
        label_file.unlink()

        from annotation.storage import encode_image_tile, encode_label_tile
        from annotation.storage.ortho import ortho_shape
        from annotation.stores import volume_store

        rng = np.random.default_rng(0)
        kinds = {}  # name -> (size, is_label, planes, plane): planes are z (XY) or rows / columns
        for k, (size, is_label) in enumerate([(256, False), (512, False), (256, True), (512, True)]):
            kinds[("label" if is_label else "image") + f" {size}"] = (size, is_label, range(16 * k, 16 * k + 16), "xy")
        for k, (plane, is_label) in enumerate([("xz", False), ("yz", False), ("xz", True), ("yz", True)]):
            kinds[f"{plane} {'label' if is_label else 'image'}"] = (256, is_label, range(512 * k, 512 * k + 512), plane)
        meta = volume_store(volume).meta
        tiles = {}
        for name, (size, _, planes, plane) in kinds.items():
            rows, cols = (SHAPE[1], SHAPE[2]) if plane == "xy" else ortho_shape(meta, plane, 0)[1:]
            every = [(z, ty, tx) for z in planes for ty in range(-(-rows // size)) for tx in range(-(-cols // size))]
            pick = rng.choice(len(every), size=min(args.tiles, len(every)), replace=False)
            tiles[name] = [every[i] for i in pick]

        def urls(name):
            size, is_label, _, plane = kinds[name]
            base = f"/api/v1/volumes/{volume.id}/labels/{version}" if is_label else f"/api/v1/volumes/{volume.id}"
            where = "" if plane == "xy" else f"{plane}/"
            return [f"{base}/tiles/{where}0/{z}/{ty}/{tx}.png?size={size}" for z, ty, tx in tiles[name]]

        headers = {"Authorization": f"Token {token}"}
        runs = {}
        for cache in (True, False):  # a new server process each: its first request of a tile is cold
            server = Server(work, {} if cache else {"EZQUANT_TILE_CACHE_BYTES": "0"})
            conn = http.client.HTTPConnection("127.0.0.1", server.port)
            _fetch(conn, "/healthz", {})  # the process's start-up, not a tile
            conn.close()
            runs[cache] = _measure(server.port, {name: urls(name) for name in kinds}, headers, full=cache)
            server.stop()
            server = None

        store = volume_store(volume)
        lo, hi = store.meta.contrast_limits
        direct = {name: ([], [], []) for name in kinds}
        for i in range(max(len(t) for t in tiles.values())):  # the kinds take turns, as over HTTP
            for name, (size, is_label, _, plane) in kinds.items():
                if i >= len(tiles[name]):
                    continue
                z, ty, tx = tiles[name][i]
                reads, encodes, totals = direct[name]
                t0 = time.perf_counter()
                if plane != "xy":
                    tile = (store.read_label_ortho_tile(version, plane, 0, z, ty, tx, size) if is_label
                            else store.read_ortho_tile(plane, 0, z, ty, tx, size))
                else:
                    tile = (store.read_label_tile(version, 0, z, ty, tx, size) if is_label
                            else store.read_tile(0, z, ty, tx, size))
                t1 = time.perf_counter()
                encode_label_tile(tile) if is_label else encode_image_tile(tile, lo, hi, "png")
                t2 = time.perf_counter()
                reads.append((t1 - t0) * 1000)
                encodes.append((t2 - t1) * 1000)
                totals.append((t2 - t0) * 1000)

        print()
        print(f"Level-0 PNG tiles of a {SHAPE[0]} x {SHAPE[1]} x {SHAPE[2]} uint16 volume and its labels, "
              f"{args.tiles} distinct tiles per kind, daphne, one keep-alive connection, API token; times in ms")
        print("cold: first request of each tile in a new server process; warm: the same again (served from the "
              "tile cache); no cache: the second request with EZQUANT_TILE_CACHE_BYTES=0 (read and encoded again); "
              "304: revalidation with the ETag; 4 conn: tiles/s over 4 parallel connections (warm); direct: "
              "VolumeStore.read_tile + encode in-process")
        head = (f"{'kind':10s} {'KB':>4s} | {'cold p50':>8s} {'p95':>5s} |"
                f" {'warm p50':>8s} {'p95':>5s} {'tiles/s':>7s} |"
                f" {'no cache p50':>12s} {'p95':>5s} {'tiles/s':>7s} | {'304 p50':>7s} | {'4 conn/s':>8s} |"
                f" {'read':>5s} {'encode':>6s} {'direct':>6s} {'tiles/s':>7s} |"
                f" {'cold/direct':>11s} {'nocache/direct':>14s}")
        print(head)
        print("-" * len(head))
        verdicts = []
        for name in kinds:
            on, off = runs[True][name], runs[False][name]
            reads, encodes, totals = direct[name]
            c50, c95, _ = _stats(on["first"])
            w50, w95, wrate = _stats(on["again"])
            n50, n95, nrate = _stats(off["again"])
            d50, _, drate = _stats(totals)
            print(f"{name:10s} {on['kb']:4.0f} | {c50:8.2f} {c95:5.1f} | {w50:8.2f} {w95:5.1f} {wrate:7.0f} |"
                  f" {n50:12.2f} {n95:5.1f} {nrate:7.0f} | {_stats(on['304'])[0]:7.2f} | {on['parallel']:8.0f} |"
                  f" {_stats(reads)[0]:5.2f} {_stats(encodes)[0]:6.2f} {d50:6.2f} {drate:7.0f} |"
                  f" {c50 / d50:11.2f} {n50 / d50:14.2f}")
            verdicts.append(f"{name}: warm {w50:.1f} ({'ok' if w50 <= TARGET_WARM_MS else 'OVER'}), no cache "
                            f"{n50:.1f} ({'ok' if n50 <= TARGET_WARM_MS else 'OVER'}), cold {c50:.1f} "
                            f"({'ok' if c50 <= TARGET_COLD_MS else 'OVER'})")
        print()
        print("HTTP cost per tile (no-cache p50 - direct p50): " + ", ".join(
            f"{name} {_stats(runs[False][name]['again'])[0] - _stats(direct[name][2])[0]:.2f}" for name in kinds))
        print(f"targets p50 warm <= {TARGET_WARM_MS:g} ms, cold <= {TARGET_COLD_MS:g} ms: " + "; ".join(verdicts))
        print()
        print("XZ / YZ against XY, 256 x 256 tiles of the same layer: p50 (p95) in ms, and the p50 ratio "
              f"(target <= {TARGET_ORTHO_RATIO:g})")
        ratios = []
        for name, (_, is_label, _, plane) in kinds.items():
            if plane == "xy":
                continue
            reference = "label 256" if is_label else "image 256"
            cells = []
            for run, key in ((True, "first"), (True, "again"), (False, "again")):
                p50, p95, _ = _stats(runs[run][name][key])
                x50, x95, _ = _stats(runs[run][reference][key])
                cells.append(f"{p50:.2f} ({p95:.1f}) vs {x50:.2f} ({x95:.1f}) = {p50 / x50:.2f}x")
                ratios.append(p50 / x50)
            d50, x50 = _stats(direct[name][2])[0], _stats(direct[reference][2])[0]
            print(f"  {name:10s} cold {cells[0]} | warm {cells[1]} | no cache {cells[2]} | direct {d50:.2f} vs "
                  f"{x50:.2f} = {d50 / x50:.2f}x")
        print(f"  worst p50 ratio {max(ratios):.2f}x: {'ok' if max(ratios) <= TARGET_ORTHO_RATIO else 'OVER'}")
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
