"""The 3D look, the drawings across planes and the viewer's UX fixes, in Debian's headless
Chromium against the running app (daphne, SQLite; no job worker, so a started job stays queued).

The volume (10 x 128 x 128, voxels 2 x 0.5 x 0.5 µm) carries labels made for the purpose:
nucleus 1 two discs stacked in z and joined (a z-merge, waist at planes 4-5), 2 a block
touching it, 3 a ring with a hole, 4 a block to split, 5 a tiny disc. ivy (who made the
project) sees nucleus 1 in 3D, turns it, splits 4 and merges the halves back, interpolates a
new nucleus between outlines on two planes, grows 2 with the ball brush and trims it with the
ball eraser, fills 3's hole, opens the key help, shuffles the colours, jumps to the tiny
nucleus with `n` and sees Start greyed out while a job is queued. alice (a student assigned
the top-left quarter) sees her region, a queue that keeps to it and tools that are off outside
it (drawing a split in XZ / YZ too); bob (not assigned) sees them off.

Screenshots go to var/test-artifacts/viewer3d-e2e/ (git-ignored).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in

SHAPE = (10, 128, 128)
TIMEOUT_MS = 30_000
SHOTS = ARTIFACTS / "viewer3d-e2e"

ASSIGN = """
from django.contrib.auth import get_user_model
from annotation.models import Volume
from annotation.services import assignment_create
volume = Volume.objects.get()
users = get_user_model().objects
assignment_create(project=volume.project, volume=volume, student=users.get(username="alice"),
                  assigned_by=users.get(username="ivy"), region=[0, 10, 0, 64, 0, 64])
"""


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint32)
    yy, xx = np.ogrid[: SHAPE[1], : SHAPE[2]]

    def disc(cy, cx, r):
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    for z, r in enumerate((5, 10, 11, 10, 4, 4, 10, 11, 10, 5)):  # a snowman: waist at planes 4-5
        labels[z][disc(40, 40, r)] = 1
    labels[2:8, 30:50, 52:62] = 2  # touches 1 on planes 2 and 7
    labels[3:7][:, disc(95, 95, 12) & ~disc(95, 95, 4)] = 3
    labels[2:8, 15:35, 85:115] = 4
    labels[4:6][:, disc(112, 20, 3)] = 5
    return labels


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import tifffile

    work = tmp_path_factory.mktemp("viewer3d-e2e")
    labels = _labels()
    rng = np.random.default_rng(0)
    image = (200 + 1800 * (labels > 0) + rng.normal(0, 40, SHAPE)).clip(0, 65535).astype(np.uint16)
    tifffile.imwrite(work / "stack.tif", image, photometric="minisblack", metadata={"axes": "ZYX"})
    labels.tofile(work / "labels.u32")
    # No worker: a job started in the page stays queued until it is cancelled.
    live = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})
    try:
        live.migrate()
        seed = live.seed(username="ivy", password=PASSWORD, members=[["alice", "student"], ["bob", "student"]],
                         project="Nuclei 3D", tiff=str(work / "stack.tif"), name="made stack",
                         voxel_size=[2.0, 0.5, 0.5], labels=str(work / "labels.u32"))
        live.manage("shell", "-c", ASSIGN)
        live.start()
        yield live, seed
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    print(f"\nviewer 3D screenshots: {SHOTS}")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _wait(page, condition: str, arg=None, timeout: float = TIMEOUT_MS) -> None:
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except TimeoutError:
        state = page.evaluate("JSON.stringify(document.getElementById('viewer')?.dataset ?? {})")
        page.screenshot(path=SHOTS / "failure.png")
        banner = page.text_content("#banner-text") if page.locator("#banner").is_visible() else ""
        raise AssertionError(f"timed out waiting for {condition}; viewer {state}; banner {banner!r}") from None


def _open(browser, live, seed, user: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sign_in(page, live.url, user)
    page.goto(f"{live.url}/volumes/{seed['volume']}/")
    page.wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)
    _settled(page)
    return page, errors


def _settled(page) -> None:
    page.evaluate("ezqViewer.nextFullRender()")  # the tiles of a new plane or version are asked for
    _wait(page, "(() => { const d = document.getElementById('viewer').dataset;"
                " return d.busy === 'false' && d.tilesPending === '0' && d.overlayVersion === d.version; })()")


def _screen(page, y: float, x: float) -> tuple[float, float]:
    px, py = page.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])", [x + 0.5, y + 0.5])
    box = page.locator("#map").bounding_box()
    return box["x"] + px, box["y"] + py


def _edit(page, act) -> dict:
    """Do `act`; wait for the new version on screen; the record the page made."""
    before = page.evaluate("ezqViewer.editor.done.length")
    act()
    _wait(page, f"ezqViewer.editor.done.length > {before} || !document.getElementById('banner').hidden")
    banner = page.text_content("#banner-text") if page.locator("#banner").is_visible() else ""
    assert page.evaluate("ezqViewer.editor.done.length") > before, banner
    _settled(page)
    return page.evaluate("ezqViewer.editor.done[ezqViewer.editor.done.length - 1]")


def _nucleus(page, version: str, label_id: int):
    response = page.request.get(f"/api/v1/volumes/1/label-versions/{version}/nuclei/?label_id_min={label_id}"
                                f"&label_id_max={label_id}")
    results = response.json()["results"]
    return results[0] if results else None


def _colours_differ_where_nuclei_touch(page) -> int:
    """How many touching pairs the page knows, asserting each pair has two colours."""
    same = page.evaluate("""(() => {
        const c = ezqViewer.colouring; const out = [];
        for (const [a, others] of c.neighbours) for (const b of others) if (c.of(a) === c.of(b)) out.push([a, b]);
        return out; })()""")
    assert same == [], same
    return page.evaluate("[...ezqViewer.colouring.neighbours.values()].reduce((n, s) => n + s.size, 0) / 2")


def test_it_shows_a_z_merge_in_3d_and_edits_across_planes(app, browser):
    live, seed = app
    page, errors = _open(browser, live, seed, "ivy")
    page.locator("#map").focus()

    # The key help lists the tools' keys and the new ones; Esc closes it.
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    keys = page.text_content("#help dl")
    for text in ("interpolate", "ball brush", "fill", "3D view", "shuffle the label colours"):
        assert text in keys, text
    page.screenshot(path=SHOTS / "01-help.png")
    page.keyboard.press("Escape")
    assert page.locator("#help").is_hidden()

    # Touching nuclei differ in colour; a shuffle deals them again, and they still differ.
    page.evaluate("ezqViewer.setZ(2)")
    _settled(page)
    assert _colours_differ_where_nuclei_touch(page) >= 1  # 1 and 2 touch on plane 2
    before = page.evaluate("[1, 2, 3, 4, 5].map((id) => ezqViewer.colouring.of(id))")
    page.keyboard.press("c")
    page.keyboard.press("c")
    after = page.evaluate("[1, 2, 3, 4, 5].map((id) => ezqViewer.colouring.of(id))")
    assert after != before and page.get_attribute("#viewer", "data-colour-seed")
    _colours_differ_where_nuclei_touch(page)

    # The 3D view of nucleus 1: its neighbour, its waist, words that say "z-merge"; it turns.
    page.evaluate("ezqViewer.select([1])")
    page.keyboard.press("d")
    _wait(page, "document.getElementById('mesh-panel').dataset.state === 'ready'")
    panel = page.locator("#mesh-panel")
    assert panel.get_attribute("data-label-id") == "1" and panel.get_attribute("data-neighbours") == "2"
    assert panel.get_attribute("data-waist") in ("4", "5") and int(panel.get_attribute("data-triangles")) > 100
    assert "two nuclei joined in z" in page.text_content("#mesh-signs")
    info = page.text_content("#mesh-info")
    assert "z 0–9 (10 planes, 20 µm)" in info and "µm³" in info and "touches #2" in info
    lit = page.evaluate("""(() => { const c = document.getElementById('mesh-canvas');
        const t = document.createElement('canvas'); t.width = c.width; t.height = c.height;
        const g = t.getContext('2d'); g.drawImage(c, 0, 0);
        const d = g.getImageData(0, 0, t.width, t.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 150) n += 1;
        return n / (t.width * t.height); })()""")
    assert lit > 0.02, lit  # the mesh is drawn, not an empty background
    azimuth = panel.get_attribute("data-azimuth")
    page.locator("#mesh-canvas").scroll_into_view_if_needed()
    box = page.locator("#mesh-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 80, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert panel.get_attribute("data-azimuth") != azimuth
    page.screenshot(path=SHOTS / "02-mesh-z-merge.png")
    page.locator("#map").focus()

    # Split nucleus 4, then merge its halves back with the merge tool: clicking the picked
    # halves keeps them picked (it toggled them off before).
    page.evaluate("ezqViewer.setZ(4)")
    _settled(page)
    page.keyboard.press("s")
    record = _edit(page, lambda: (page.mouse.click(*_screen(page, 10, 100)), page.mouse.click(*_screen(page, 40, 100))))
    assert record["type"] == "split" and len(record["new_ids"]) == 2
    halves = sorted(record["new_ids"])
    assert sorted(page.evaluate("ezqViewer.state.selection")) == halves
    assert page.evaluate(f"ezqViewer.colouring.of({halves[0]}) !== ezqViewer.colouring.of({halves[1]})")
    page.keyboard.press("m")
    page.mouse.click(*_screen(page, 25, 92))
    page.mouse.click(*_screen(page, 25, 108))
    assert sorted(page.evaluate("ezqViewer.state.selection")) == halves
    record = _edit(page, lambda: page.keyboard.press("Enter"))
    assert record["type"] == "merge" and sorted(record["nucleus_ids"]) == halves

    # Interpolate: outlines on planes 2 and 6, then Enter: one add spanning 2-6.
    page.keyboard.press("Escape")
    page.keyboard.press("i")
    for z, (y0, x0, side) in ((2, (84, 34, 6)), (6, (80, 30, 14))):
        page.evaluate(f"ezqViewer.setZ({z})")
        _settled(page)
        for y, x in ((y0, x0), (y0, x0 + side), (y0 + side, x0 + side), (y0 + side, x0)):
            page.mouse.click(*_screen(page, y, x))
        page.keyboard.press("Enter")  # closes the outline
    assert page.get_attribute("#sections-text", "data-planes") == "2,6"
    page.screenshot(path=SHOTS / "03-outlines.png")
    record = _edit(page, lambda: page.keyboard.press("Enter"))
    assert record["type"] == "add" and [s["z"] for s in record["geometry"]["sections"]] == [2, 6]
    made = _nucleus(page, record["result_version"], record["new_ids"][0])
    assert (made["z_min"], made["z_max"]) == (2, 6)
    assert 5 * 6 * 6 < made["volume_voxels"] < 5 * 14 * 14  # morphed, not one outline stacked

    # The ball brush grows nucleus 2 through the planes a 2 µm ball reaches (one up, one down).
    page.evaluate("ezqViewer.setZ(4)")
    page.evaluate("ezqViewer.select([2])")
    _settled(page)
    grown_from = _nucleus(page, record["result_version"], 2)["volume_voxels"]
    page.keyboard.press("k")
    start = _screen(page, 40, 61)

    def stroke():
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(start[0] + 20, start[1], steps=6)
        page.mouse.up()

    record = _edit(page, stroke)
    assert record["type"] == "modify" and record["geometry"]["radius_um"] == 2.0 and record["bbox"][:2] == [2, 8]
    assert _nucleus(page, record["result_version"], 2)["volume_voxels"] > grown_from

    # The ball eraser takes a 2 µm ball out of it along a stroke: voxels go, its planes stay.
    grown = _nucleus(page, record["result_version"], 2)
    page.keyboard.press("j")

    def erase():
        page.mouse.move(*_screen(page, 34, 53))
        page.mouse.down()
        page.mouse.move(*_screen(page, 34, 60), steps=6)
        page.mouse.up()

    record = _edit(page, erase)
    assert record["type"] == "modify" and record["nucleus_ids"] == [2]
    assert record["geometry"]["erase"] is True and record["geometry"]["radius_um"] == 2.0
    erased = _nucleus(page, record["result_version"], 2)
    assert erased["volume_voxels"] < grown["volume_voxels"]
    assert (erased["z_min"], erased["z_max"]) == (grown["z_min"], grown["z_max"])  # a ball, not a column

    # Fill the hole of nucleus 3 on its plane.
    page.evaluate("ezqViewer.select([3])")
    page.keyboard.press("f")
    was = _nucleus(page, record["result_version"], 3)["volume_voxels"]
    record = _edit(page, lambda: page.mouse.click(*_screen(page, 95, 95)))
    assert record["type"] == "modify" and np.allclose(record["geometry"]["fill"], [95.5, 95.5], atol=0.6)
    assert _nucleus(page, record["result_version"], 3)["volume_voxels"] - was == pytest.approx(49, abs=6)
    page.screenshot(path=SHOTS / "04-edited.png")
    assert errors == []
    page.context.close()


def test_it_fixes_what_tripped_people(app, browser):
    live, seed = app
    page, errors = _open(browser, live, seed, "ivy")
    page.locator("#map").focus()

    # A banner floats over the map: the map does not move when one shows.
    top = page.locator("#map").bounding_box()["y"]
    page.keyboard.press("v")
    page.evaluate("ezqViewer.select([])")
    page.keyboard.press("Delete")  # nothing selected: a notice
    assert page.locator("#banner").is_visible()
    assert page.locator("#map").bounding_box()["y"] == top

    # `n` zooms in on a small nucleus as far as it needs (past the old limit of 4x).
    for _ in range(10):
        page.keyboard.press("n")
        if page.evaluate("ezqViewer.state.selection[0]") == 5:
            break
    _wait(page, "!ezqViewer.map.getView().getAnimating()")
    assert page.evaluate("ezqViewer.state.selection") == [5]
    assert page.evaluate("ezqViewer.map.getView().getResolution()") < 1 / 4

    # Start segmentation is off while a job is queued; on again once it is cancelled.
    page.get_by_role("button", name="Start segmentation").click()
    _wait(page, "document.getElementById('job-status').dataset.status === 'queued'"
                " || document.getElementById('job-curation')?.hidden === false")
    if page.get_attribute("#job-status", "data-status") != "queued":  # people's edits: Start again to go ahead
        page.get_by_role("button", name="Start segmentation").click()
        _wait(page, "document.getElementById('job-status').dataset.status === 'queued'")
    assert page.locator("#job-start").is_disabled()
    page.get_by_role("button", name="Cancel").click()
    _wait(page, "document.getElementById('job-status').dataset.status === 'cancelled'")
    assert page.locator("#job-start").is_enabled()
    assert errors == []
    page.context.close()

    # alice: her region is drawn, the queue keeps to it, the tools are off outside it.
    page, errors = _open(browser, live, seed, "alice")
    assert page.evaluate("ezqViewer.regions.regions") == [[0, 10, 0, 64, 0, 64]]
    # Drawn in every view: the XY map and the XZ and YZ views each carry the box.
    boxes = page.evaluate("""[ezqViewer.map, ezqViewer.ortho.views.xz.layers.map, ezqViewer.ortho.views.yz.layers.map]
        .map((m) => m.getLayers().getArray().filter((l) => l.getSource?.()?.getFeatures?.().some(
            (f) => f.getGeometry().getType() === 'Polygon')).length)""")
    assert boxes == [1, 1, 1], boxes
    queue = page.locator("#nuclei-list button.nucleus")
    assert sorted(int(queue.nth(i).get_attribute("data-label-id")) for i in range(queue.count())) == [1, 2]
    assert page.get_attribute("#viewer", "data-locked") == "true"  # the view is centred outside it
    assert page.locator("button.tool[data-tool=split-line]").is_disabled()
    assert "Outside the region assigned to you" in page.text_content("#region-note")
    page.screenshot(path=SHOTS / "05-alice-outside.png")
    page.locator("#map").focus()
    page.keyboard.press("s")  # the key still picks the tool; drawing with it stays off here, in XZ and YZ too
    assert page.evaluate("['xz', 'yz'].map((p) => ezqViewer.ortho.views[p].draw.getActive())") == [False, False]
    page.keyboard.press("n")
    _wait(page, "document.getElementById('viewer').dataset.locked === 'false'")
    assert page.locator("button.tool[data-tool=split-line]").is_enabled()
    assert page.evaluate("['xz', 'yz'].map((p) => ezqViewer.ortho.views[p].draw.getActive())") == [True, True]
    page.keyboard.press("v")
    assert page.locator("#region-note").is_hidden()
    page.screenshot(path=SHOTS / "06-alice-inside.png")
    assert errors == []
    page.context.close()

    # bob, assigned nothing: every edit tool is off, and the page says why.
    page, errors = _open(browser, live, seed, "bob")
    assert page.locator("button.tool[data-tool=ball-brush]").is_disabled()
    assert page.locator("button.tool[data-tool=select]").is_enabled()
    assert "not assigned to you" in page.text_content("#region-note")
    assert errors == []
    page.context.close()
