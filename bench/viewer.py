"""The viewer in the browser: time to the first full screen of tiles, and from an edit to the
updated overlay, on a 64 x 2048 x 2048 uint16 volume with a label version (``--shape`` for
another size), in one view and in three (XY, XZ, YZ).

Builds, in a temporary folder, the volume (a generated 16 x 256 x 256 block of nuclei repeated
across the field and down the stack, each copy with its own ids; written plane by plane as a
TIFF, so memory stays at a few planes) and its labels (a memory-mapped raw file), imports them
with annotation's services (``volume_import``, then ``label_version_create``, which measures
every nucleus: the corrections need their rows), and serves them with daphne on a free port
(tests/frontend/live.py). Debian's headless Chromium then, in a 1600 x 1000 window:

* opens the viewer in a new browser context (nothing cached in the browser) and takes the
  time from navigation start to the first frame in which every tile on screen is drawn
  (OpenLayers' ``rendercomplete``), for the whole volume fitted to the screen (pyramid level 2
  or 3) and for a level-0 view at the centre (``#z=&y=&x=&r=1``); the first opening meets a
  server that never read a tile, the later ones its tile cache;
* edits: deletes a nucleus at the centre, undoes that, merges two nuclei, and takes the time
  from the request leaving the page to the first complete frame of the new version's overlay
  (the edit itself, the new label tiles and their decoding in the browser);
* three views (XY, XZ, YZ; ``#...&v=3``): the time from navigation start to the first frame in
  which all three are drawn; from a cursor move (a new y and x: the XZ and YZ views show other
  planes) to both redrawn; and from an edit made in the XZ view (select a nucleus there and
  delete it, undo, split one with a line across it: a z-cut) to the overlay updated in all
  three views.

Prints each figure and the median of ``--repeat`` runs.

    python bench/viewer.py [--repeat 3] [--work DIR] [--shape 64 2048 2048]

``--work DIR`` keeps the data there and, on a later run, uses it again instead of building and
measuring it anew (some minutes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.frontend.live import PASSWORD, LiveApp, launch_chromium, sign_in  # noqa: E402

SHAPE = (64, 2048, 2048)
BLOCK = (16, 256, 256)
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 120_000


def _tiled_plane(block: np.ndarray, z: int, change) -> np.ndarray:
    """Plane z of the field: copies (bz, by, bx) of the block, each passed through ``change``."""
    bz, zz = divmod(z, BLOCK[0])
    ny, nx = SHAPE[1] // BLOCK[1], SHAPE[2] // BLOCK[2]
    return np.concatenate([np.concatenate([change(block[zz], (bz * ny + by) * nx + bx) for bx in range(nx)], axis=1)
                           for by in range(ny)], axis=0)


def build_data(work: Path) -> tuple[Path, Path]:
    import tifffile

    from segmentation.core.synthetic import generate_3d

    sample = generate_3d(shape=BLOCK, seed=11)
    image = np.clip(np.round(sample.image * 100), 0, 60000).astype(np.uint16)
    labels = sample.labels.astype(np.uint32)
    per_block = int(labels.max())
    tiff = work / "stack.tif"
    with tifffile.TiffWriter(tiff, bigtiff=True) as writer:
        writer.write((_tiled_plane(image, z, lambda p, k: p + np.uint16(k % 50 * 20)) for z in range(SHAPE[0])),
                     shape=SHAPE, dtype=np.uint16, photometric="minisblack", metadata={"axes": "ZYX"})
    raw = work / "labels.u32"
    mapped = np.memmap(raw, dtype=np.uint32, mode="w+", shape=SHAPE)
    for z in range(SHAPE[0]):
        mapped[z] = _tiled_plane(labels, z, lambda p, k: np.where(p > 0, p + np.uint32(k * per_block), 0))
    mapped.flush()
    del mapped
    return tiff, raw


def _wait(page, condition: str, arg=None) -> None:
    page.wait_for_function(condition, arg=arg, timeout=TIMEOUT_MS)


def _open(browser, base: str, volume: int, place: str) -> float:
    """A fresh context: sign in, open the viewer at ``place``; ms from navigation start to the
    first complete frame."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    try:
        page = context.new_page()
        sign_in(page, base, "bench")
        page.goto(f"/volumes/{volume}/{place}")
        _wait(page, "document.getElementById('viewer').dataset.firstRenderMs")
        return float(page.get_attribute("#viewer", "data-first-render-ms"))
    finally:
        context.close()


def _nucleus_at_centre(page, exclude=()) -> dict:
    found = page.evaluate("ezqViewer.nucleiOnPlane()")
    size = page.evaluate("ezqViewer.map.getSize()")
    centre = page.evaluate("([w, h]) => ezqViewer.map.getCoordinateFromPixel([w / 2, h / 2])", size)
    cy, cx = -centre[1], centre[0]
    candidates = [n for n in found if n["id"] not in exclude and n["n"] > 50]
    return min(candidates, key=lambda n: (n["y"] - cy) ** 2 + (n["x"] - cx) ** 2)


def _click(page, n: dict) -> None:
    px, py = page.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])", [n["x"] + 0.5, n["y"] + 0.5])
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + px, box["y"] + py)


def _edit(page, act) -> dict:
    """Run ``act`` (keys and clicks that make one edit); the page's timing marks of it (ms):
    ``ms`` from the request to the new overlay drawn, ``serverMs`` until the answer came,
    ``overlayMs`` from the answer to the overlay drawn."""
    before = page.evaluate("ezqViewer.marks.edits.length")
    version = page.get_attribute("#viewer", "data-version")
    _wait(page, "document.getElementById('viewer').dataset.busy === 'false'")
    act()
    _wait(page, "([n, v]) => document.getElementById('viewer').dataset.busy === 'false' && ("
                "ezqViewer.marks.edits.length > n || (!document.getElementById('banner').hidden"
                " && document.getElementById('banner').dataset.kind !== 'info'))", [before, version])
    edits = page.evaluate("ezqViewer.marks.edits")
    if len(edits) <= before:
        raise SystemExit(f"the edit failed: {page.text_content('#banner-text')}")
    return edits[-1]


def _edits(browser, base: str, volume: int, place: str, repeat: int) -> dict[str, list[float]]:
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    page = context.new_page()
    sign_in(page, base, "bench")
    page.goto(f"/volumes/{volume}/{place}")
    _wait(page, "document.getElementById('viewer').dataset.firstRenderMs")
    figures: dict[str, list[dict]] = {"delete": [], "undo": [], "merge": []}
    try:
        for _ in range(repeat):
            page.keyboard.press("v")
            doomed = _nucleus_at_centre(page)
            _click(page, doomed)
            _wait(page, "id => document.getElementById('viewer').dataset.selected === String(id)", doomed["id"])
            figures["delete"].append(_edit(page, lambda: page.keyboard.press("Delete")))
            _progress("delete", figures["delete"][-1])
            figures["undo"].append(_edit(page, lambda: page.keyboard.press("Control+z")))
            _progress("undo", figures["undo"][-1])
            page.keyboard.press("Escape")
            page.keyboard.press("m")
            first = _nucleus_at_centre(page)
            second = _nucleus_at_centre(page, exclude={first["id"]})
            for n in (first, second):
                _click(page, n)
                _wait(page, "id => document.getElementById('viewer').dataset.selected.split(',').includes(String(id))",
                      n["id"])
            figures["merge"].append(_edit(page, lambda: page.keyboard.press("Enter")))
            _progress("merge", figures["merge"][-1])
    finally:
        context.close()
    return figures


def _open_three(browser, base: str, volume: int, place: str) -> float:
    """Like ``_open``, in three views: ms to the first frame in which XY, XZ and YZ are drawn."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    try:
        page = context.new_page()
        sign_in(page, base, "bench")
        page.goto(f"/volumes/{volume}/{place}")
        _wait(page, "document.getElementById('viewer').dataset.firstRenderAllMs")
        return float(page.get_attribute("#viewer", "data-first-render-all-ms"))
    finally:
        context.close()


def _xz_point(page, z: float, across: float) -> tuple[float, float]:
    px, py = page.evaluate("([z, a]) => ezqViewer.ortho.pixelOf('xz', z, a)", [z, across])
    box = page.locator("#map-xz").bounding_box()
    return box["x"] + px, box["y"] + py


def _xz_nucleus(page, cx: float, exclude=()) -> dict:
    found = [n for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')") if n["n"] > 50 and n["id"] not in exclude
             and n["z1"] - n["z0"] >= 3]
    return min(found, key=lambda n: abs((n["a0"] + n["a1"]) / 2 - cx))


def _three_views(browser, base: str, volume: int, place: str, repeat: int) -> dict[str, list[float]]:
    """Cursor moves and edits made in the XZ view, in three views (ms)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=base)
    page = context.new_page()
    sign_in(page, base, "bench")
    page.goto(f"/volumes/{volume}/{place}")
    _wait(page, "document.getElementById('viewer').dataset.firstRenderAllMs")
    rng = np.random.default_rng(1)
    figures: dict[str, list] = {"cursor": [], "delete in xz": [], "undo": [], "split in xz": []}
    zoom = """() => { for (const v of Object.values(ezqViewer.ortho.views)) {
        const c = v.plane === 'xz' ? ezqViewer.state.cursor.x : ezqViewer.state.cursor.y;
        v.layers.view.setCenter([c, -v.rows / 2]); v.layers.view.setResolution(1); } }"""
    try:
        for _ in range(3 * repeat):
            y, x = (int(v) for v in rng.integers(SHAPE[1] // 4, 3 * SHAPE[1] // 4, 2))
            figures["cursor"].append(page.evaluate(
                "async ([y, x]) => { const t = performance.now(); await ezqViewer.ortho.setCursor({ y, x });"
                " return performance.now() - t; }", [y, x]))
        page.evaluate(zoom)
        page.evaluate("Promise.all([ezqViewer.nextFullRender(), ezqViewer.ortho.nextFullRender()])")
        for _ in range(repeat):
            cx = page.evaluate("ezqViewer.state.cursor.x")
            page.keyboard.press("v")
            doomed = _xz_nucleus(page, cx)
            page.mouse.click(*_xz_point(page, (doomed["z0"] + doomed["z1"]) / 2 + 0.5,
                                        (doomed["a0"] + doomed["a1"]) / 2))
            _wait(page, "id => document.getElementById('viewer').dataset.selected === String(id)", doomed["id"])
            page.evaluate(zoom)
            figures["delete in xz"].append(_edit(page, lambda: page.keyboard.press("Delete")))
            _progress("delete in xz", figures["delete in xz"][-1])
            figures["undo"].append(_edit(page, lambda: page.keyboard.press("Control+z")))
            _progress("undo", figures["undo"][-1])
            page.evaluate(zoom)
            page.evaluate("Promise.all([ezqViewer.nextFullRender(), ezqViewer.ortho.nextFullRender()])")
            target = _xz_nucleus(page, page.evaluate("ezqViewer.state.cursor.x"))
            page.keyboard.press("Escape")
            page.keyboard.press("s")
            # Across the boundary between its middle planes: pixelOf takes a plane's middle.
            boundary = (target["z0"] + target["z1"] + 1) // 2 - 0.5

            def split(n=target, boundary=boundary):
                page.mouse.click(*_xz_point(page, boundary, n["a0"] - 4))
                page.mouse.click(*_xz_point(page, boundary, n["a1"] + 4))
            figures["split in xz"].append(_edit(page, split))
            _progress("split in xz", figures["split in xz"][-1])
            page.keyboard.press("v")
            page.evaluate("([y, x]) => ezqViewer.ortho.setCursor({ y, x })",
                          [int(v) for v in rng.integers(SHAPE[1] // 4, 3 * SHAPE[1] // 4, 2)])
            page.evaluate(zoom)
            page.evaluate("Promise.all([ezqViewer.nextFullRender(), ezqViewer.ortho.nextFullRender()])")
    finally:
        context.close()
    return figures


def _progress(name: str, mark: dict) -> None:
    print(f"  {name}: {mark['ms']:.0f} ms (answer {mark['serverMs']:.0f} ms, then overlay {mark['overlayMs']:.0f} ms)",
          flush=True)


def _row(name: str, values: list[float]) -> str:
    return f"{name:<44} median {statistics.median(values):7.0f} ms   runs: {', '.join(f'{v:.0f}' for v in values)}"


def main() -> None:
    global SHAPE  # --shape: the module's functions build and read the volume of this shape
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="openings and edits of each kind")
    parser.add_argument("--work", type=Path, help="keep the data in this folder, and reuse it if it is there")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), default=SHAPE,
                        help="the volume's shape: multiples of 16 x 256 x 256 (default %(default)s)")
    args = parser.parse_args()
    SHAPE = tuple(args.shape)
    if any(s % b for s, b in zip(SHAPE, BLOCK, strict=True)):
        parser.error(f"--shape must be multiples of {BLOCK}")

    from playwright.sync_api import sync_playwright

    work = args.work or Path(tempfile.mkdtemp(prefix="ezquant-bench-viewer-"))
    app = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})
    try:
        if (work / "seed.json").exists():
            seed = json.loads((work / "seed.json").read_text())
            print(f"using the data in {work} (the edits of earlier runs included)", flush=True)
        else:
            t = time.perf_counter()
            tiff, raw = build_data(work)
            print(f"generated {SHAPE} uint16 and its labels in {time.perf_counter() - t:.1f} s", flush=True)
            app.migrate()
            t = time.perf_counter()
            seed = app.seed(username="bench", password=PASSWORD, project="bench", tiff=str(tiff), name="bench",
                            voxel_size=[2.0, 0.5, 0.5], labels=str(raw))
            print(f"imported the volume and label version {seed['label_version']} (nuclei measured) in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
            raw.unlink()
            tiff.unlink()
            (work / "seed.json").write_text(json.dumps(seed))
        app.start()
        volume = seed["volume"]
        z, cy, cx = SHAPE[0] // 2, SHAPE[1] // 2, SHAPE[2] // 2
        level0 = f"#z={z}&y={cy}&x={cx}&r=1"
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            try:
                fitted = [_open(browser, app.url, volume, f"#z={z}") for _ in range(args.repeat)]
                centred = [_open(browser, app.url, volume, level0) for _ in range(args.repeat)]
                edits = _edits(browser, app.url, volume, level0, args.repeat)
                three = f"&v=3&cy={cy}&cx={cx}"
                three_fitted = [_open_three(browser, app.url, volume, f"#z={z}{three}") for _ in range(args.repeat)]
                three_centred = [_open_three(browser, app.url, volume, level0 + three) for _ in range(args.repeat)]
                ortho = _three_views(browser, app.url, volume, level0 + three, args.repeat)
            finally:
                browser.close()
        print(f"\nviewer, {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} uint16, window {VIEWPORT['width']}x{VIEWPORT['height']}, "
              "Debian Chromium headless (software rendering)")
        print("page open to first full screen of tiles (image + labels), fresh browser context each time:")
        print(_row("  whole volume fitted (first: cold server)", fitted))
        print(_row("  level 0 at the centre", centred))
        print("edit request to the updated overlay drawn (= the API's answer + new label tiles fetched and drawn):")
        for name, marks in edits.items():
            print(_row(f"  {name}", [m["ms"] for m in marks]))
            print(_row("    of which the API's answer", [m["serverMs"] for m in marks]))
            print(_row("    of which the overlay after it", [m["overlayMs"] for m in marks]))
        print("three views (XY, XZ, YZ), fresh browser context each time: page open to all three drawn:")
        print(_row("  XY fitted, XZ and YZ fitted", three_fitted))
        print(_row("  XY at level 0, XZ and YZ fitted", three_centred))
        print("  cursor moved (new y and x) to the XZ and YZ views redrawn:")
        print(_row("    cursor move", ortho["cursor"]))
        print("  edit made in the XZ view to the overlay updated in all three views:")
        for name in ("delete in xz", "undo", "split in xz"):
            print(_row(f"    {name}", [m["ms"] for m in ortho[name]]))
            print(_row("      of which the API's answer", [m["serverMs"] for m in ortho[name]]))
            print(_row("      of which the three overlays after it", [m["overlayMs"] for m in ortho[name]]))
    finally:
        app.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
