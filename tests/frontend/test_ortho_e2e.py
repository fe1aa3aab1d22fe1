"""The three views end to end, in Debian's headless Chromium against the running app: alice opens
a stack whose segmentation joined two nuclei stacked in z into one, switches to three views
(XY, XZ, YZ), sees the contrast, the heat map and the outlines follow in the XZ and YZ views,
moves the cursor through the stack and sees in the XZ view the nucleus that spans twice the
planes of its neighbours (its id under the pointer), clicks it there (the cursor and the XY
plane follow), splits it with one line (a z-cut), sees the two halves in the XZ and YZ views
and as two nuclei in the 3D view, merges them again there (what a z-split needs), undoes
both, and deletes a nucleus picked in the YZ view (and undoes that). The place, layout and
cursor survive a reload through the address; the queue's jump centres all three views on a
nucleus, an Alt-drag moves the cursor and `t` toggles the layout. A 2D image has one view and
no plane slider.

Screenshots of each step go to var/test-artifacts/ortho-e2e/ (git-ignored; the path is printed).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in

SHAPE = (16, 96, 128)
TIMEOUT_MS = 30_000
MERGED = 3  # the id of the two nuclei joined in z
THREE_MAPS = "[ezqViewer.map, ezqViewer.ortho.views.xz.layers.map, ezqViewer.ortho.views.yz.layers.map]"


def _stack():
    """(image uint16, labels uint32): six nuclei of ~5 planes, and nucleus 3, two of them one
    above the other (planes ~2-13) under one id."""
    z, y, x = np.indices(SHAPE, dtype=np.float32)
    labels = np.zeros(SHAPE, np.uint32)
    centres = [(1, 7.5, 24, 24), (2, 7.5, 24, 64), (MERGED, 4.5, 60, 64), (MERGED, 10.5, 62, 66), (4, 7.5, 24, 104),
               (5, 7.5, 70, 20), (6, 7.5, 72, 104)]
    for label, cz, cy, cx in centres:
        inside = ((z - cz) / 2.7) ** 2 + ((y - cy) / 11) ** 2 + ((x - cx) / 11) ** 2 <= 1
        labels[inside & (labels == 0)] = label
    rng = np.random.default_rng(5)
    image = np.where(labels > 0, 1400.0, 200.0) + rng.normal(0, 40, SHAPE)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import tifffile

    work = tmp_path_factory.mktemp("ortho-e2e")
    image, labels = _stack()
    tifffile.imwrite(work / "stack.tif", image, photometric="minisblack", metadata={"axes": "ZYX"})
    labels.tofile(work / "labels.u32")
    live = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})
    try:
        live.migrate()
        seed = live.seed(username="alice", password=PASSWORD, project="Embryo", tiff=str(work / "stack.tif"),
                         name="merged stack", voxel_size=[2.0, 0.5, 0.5], labels=str(work / "labels.u32"))
        live.start()
        yield live, seed
    finally:
        live.stop()


@pytest.fixture(scope="module")
def shots():
    folder = ARTIFACTS / "ortho-e2e"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\northo screenshots: {folder}")
    return folder


def _wait(page, condition: str, arg=None) -> None:
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(condition, arg=arg, timeout=TIMEOUT_MS)
    except TimeoutError:
        state = page.evaluate("JSON.stringify(document.getElementById('viewer')?.dataset ?? {})")
        shot = ARTIFACTS / "ortho-e2e" / "failure.png"
        page.screenshot(path=shot)
        banner = "" if page.locator("#banner").is_hidden() else page.text_content("#banner-text")
        raise AssertionError(f"timed out waiting for {condition} ({arg!r}); viewer {state}; banner {banner!r}; "
                             f"screenshot {shot}") from None


def _drawn(page) -> None:
    """Until the three views are drawn with every tile of the version on screen."""
    page.evaluate("Promise.all([ezqViewer.nextFullRender(), ezqViewer.ortho.nextFullRender()])")


def _wait_version(page, version: str) -> None:
    _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                " return d.version === v && d.overlayVersion === v && d.busy === 'false'; }", version)
    _drawn(page)


def _in_view(page, plane: str, z: float, across: float) -> tuple[float, float]:
    """Page coordinates of level-0 (z, x) in the XZ view (z, y in YZ)."""
    px, py = page.evaluate("([p, z, a]) => ezqViewer.ortho.pixelOf(p, z, a)", [plane, z, across])
    box = page.locator(f"#map-{plane}").bounding_box()
    return box["x"] + px, box["y"] + py


def test_it_finds_and_splits_a_z_merge_in_the_xz_view_and_undoes_it(app, shots):
    from playwright.sync_api import sync_playwright

    live, seed = app
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(viewport={"width": 1500, "height": 950}, base_url=live.url).new_page()
            sign_in(page, live.url, "alice")
            page.goto(f"/volumes/{seed['volume']}/#z=7")
            _wait(page, "document.getElementById('viewer').dataset.state === 'ready'")
            assert page.locator("#map-xz").is_hidden()
            page.click("#layout-toggle")
            _wait(page, "document.getElementById('viewer').dataset.firstRenderAllMs")
            assert page.get_attribute("#viewer", "data-layout") == "3"
            assert page.locator("#map-xz").is_visible() and page.locator("#map-yz").is_visible()
            # At the physical aspect: 16 planes of 2 µm over pixels of 0.5 µm are 64 rows high.
            assert page.evaluate("[ezqViewer.ortho.views.xz.rows, ezqViewer.ortho.views.yz.rows]") == [64, 64]
            _drawn(page)
            page.screenshot(path=shots / "1-three-views.png")

            # The XZ and YZ views carry what the XY view does: its contrast, the heat map with
            # the labels as outlines under it, and (below) the id under the pointer.
            page.locator("#contrast-lo").fill("300")
            page.locator("#contrast-hi").fill("3000")
            for plane in ("xz", "yz"):
                _wait(page, "p => performance.getEntriesByType('resource').some((e) =>"
                            " e.name.includes(`/tiles/${p}/`) && e.name.includes('lo=300&hi=3000'))", plane)
            assert page.evaluate("['xz', 'yz'].map((p) => { const s = ezqViewer.ortho.views[p].layers.showing();"
                                 " return [s.lo, s.hi]; })") == [[300, 3000], [300, 3000]]
            page.check("#heatmap-visible")
            for plane in ("xz", "yz"):
                _wait(page, "p => performance.getEntriesByType('resource').some((e) =>"
                            " e.name.includes(`/uncertainty/${p}/`))", plane)
            _drawn(page)
            heat = page.evaluate("['xz', 'yz'].map((p) => { const l = ezqViewer.ortho.views[p].layers;"
                                 " return [l.heatLayer.getVisible(), l.loads.heat.errors, l.labelTiles.style.outline];"
                                 " })")
            assert heat == [[True, 0, True], [True, 0, True]], heat
            page.screenshot(path=shots / "1b-heat-map-in-three-views.png")
            page.uncheck("#heatmap-visible")
            assert page.evaluate("ezqViewer.ortho.views.xz.layers.labelTiles.style.outline") is False
            page.get_by_role("button", name="Reset").click()

            # Move the cursor down the stack, row by row, watching the XZ view: one nucleus
            # spans about twice the planes of the others.
            spans: dict[int, tuple[int, int, int]] = {}  # id -> (planes, at y, z0)
            for y in range(8, SHAPE[1], 6):
                page.evaluate("y => ezqViewer.ortho.setCursor({ y })", y)
                for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')"):
                    planes = n["z1"] - n["z0"] + 1
                    if planes > spans.get(n["id"], (0,))[0]:
                        spans[n["id"]] = (planes, y, n["z0"])
            tallest = max(spans, key=lambda i: spans[i][0])
            others = sorted(p for i, (p, _, _) in spans.items() if i != tallest)
            assert tallest == MERGED and spans[tallest][0] >= 1.8 * others[len(others) // 2], spans
            page.evaluate("y => ezqViewer.ortho.setCursor({ y })", spans[tallest][1])
            _drawn(page)
            found = {n["id"]: n for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")}[tallest]
            middle = (found["a0"] + found["a1"]) / 2
            page.mouse.move(*_in_view(page, "xz", 10, middle))  # its id under the pointer
            _wait(page, "id => document.getElementById('viewer').dataset.hoverId === String(id)", tallest)
            assert page.text_content("#status-id") == f"nucleus #{tallest}"
            assert page.text_content("#status-pos").endswith("(xz)")

            # A click on it in the XZ view selects it and moves the cursor (the XY view to its
            # plane, the YZ view to its column); then one line across its waist (between planes
            # 7 and 8) with the split tool.
            page.mouse.click(*_in_view(page, "xz", 10, middle))
            _wait(page, "id => document.getElementById('viewer').dataset.selected === String(id)", tallest)
            z, y, x = map(int, page.get_attribute("#viewer", "data-cursor").split(","))
            assert (z, y) == (10, spans[tallest][1]) and abs(x - middle) <= 1, (z, y, x)
            assert page.get_attribute("#viewer", "data-z") == "10"
            page.screenshot(path=shots / "2-found-in-xz.png")
            page.keyboard.press("s")
            before = page.get_attribute("#viewer", "data-version")
            page.mouse.click(*_in_view(page, "xz", 7.0, found["a0"] - 6))
            page.mouse.click(*_in_view(page, "xz", 7.0, found["a1"] + 6))
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", before)
            after = page.get_attribute("#viewer", "data-version")
            _drawn(page)
            page.screenshot(path=shots / "3-split-in-xz.png")
            halves = {n["id"]: n for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")
                      if found["a0"] - 2 <= (n["a0"] + n["a1"]) / 2 <= found["a1"] + 2 and n["id"] != 2}
            assert len(halves) == 2 and tallest in halves, halves
            upper, lower = sorted(halves.values(), key=lambda n: n["z0"])
            assert upper["z1"] < lower["z0"]  # one above the other: a z-cut
            # They touch only across planes, which the XZ view's tiles show: two colours.
            assert page.evaluate(f"ezqViewer.colouring.of({upper['id']}) !== ezqViewer.colouring.of({lower['id']})")
            in_yz = {n["id"] for n in page.evaluate("ezqViewer.ortho.nucleiOn('yz')")}
            assert set(halves) <= in_yz
            record = page.evaluate("ezqViewer.editor.done[ezqViewer.editor.done.length - 1]")
            assert record["type"] == "split" and record["geometry"]["plane"] == "xz"
            assert record["label_version"] == before and record["result_version"] == after

            # The 3D view of the upper half shows the lower one beside it: two nuclei.
            page.keyboard.press("v")
            page.mouse.click(*_in_view(page, "xz", (upper["z0"] + upper["z1"]) / 2 + 0.5,
                                       (upper["a0"] + upper["a1"]) / 2))
            page.evaluate("document.getElementById('mesh-panel').open = true")
            _wait(page, "id => { const d = document.getElementById('mesh-panel').dataset;"
                        " return d.state === 'ready' && d.labelId === String(id); }", upper["id"])
            assert str(lower["id"]) in page.get_attribute("#mesh-panel", "data-neighbours").split(",")
            info = page.text_content("#mesh-info")
            assert "µm³" in info and "uncertainty" in info and f"#{lower['id']}" in info, info
            page.locator("#mesh-panel").scroll_into_view_if_needed()  # the side panel scrolls
            page.screenshot(path=shots / "4-two-nuclei-in-3d.png")
            page.locator("#mesh-panel").screenshot(path=shots / "4b-3d-view.png")

            # A z-split (one nucleus cut in two along z) is fixed there too: the merge tool, a
            # click on each half in the XZ view, Enter.
            page.keyboard.press("m")
            for half in (upper, lower):
                page.mouse.click(*_in_view(page, "xz", (half["z0"] + half["z1"]) / 2 + 0.5,
                                           (half["a0"] + half["a1"]) / 2))
                page.wait_for_timeout(400)  # two clicks within OpenLayers' 250 ms are a double click
            _wait(page, "ids => ids.every((id) => document.getElementById('viewer').dataset.selected.split(',')"
                        ".includes(String(id)))", [upper["id"], lower["id"]])
            page.keyboard.press("Enter")
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", after)
            merged = page.get_attribute("#viewer", "data-version")
            _drawn(page)
            whole = {n["id"]: n for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")}[min(halves)]
            assert (whole["z0"], whole["z1"]) == (upper["z0"], lower["z1"]) and max(halves) not in {
                n["id"] for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")}
            # The 3D view, still open, follows the merged nucleus: one, the other half gone.
            _wait(page, "id => { const d = document.getElementById('mesh-panel').dataset;"
                        " return d.state === 'ready' && d.labelId === String(id); }", min(halves))
            assert str(max(halves)) not in page.get_attribute("#mesh-panel", "data-neighbours").split(",")
            page.screenshot(path=shots / "5-merged-in-xz.png")
            page.locator("#mesh-panel").screenshot(path=shots / "5b-3d-view-merged.png")

            page.keyboard.press("Control+z")  # the merge, then the split
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", merged)
            unmerged = page.get_attribute("#viewer", "data-version")
            page.keyboard.press("Control+z")
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", unmerged)
            _drawn(page)
            again = {n["id"]: n for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")}
            assert again[tallest]["z0"] == found["z0"] and again[tallest]["z1"] == found["z1"]
            assert not set(halves) - {tallest} & set(again)
            page.screenshot(path=shots / "6-undone.png")

            # Select and delete from the YZ view: a click on nucleus 2 there, Del; then undo.
            page.keyboard.press("v")
            beside = {n["id"]: n for n in page.evaluate("ezqViewer.ortho.nucleiOn('yz')")}[2]
            page.mouse.click(*_in_view(page, "yz", (beside["z0"] + beside["z1"]) / 2 + 0.5,
                                       (beside["a0"] + beside["a1"]) / 2))
            _wait(page, "() => document.getElementById('viewer').dataset.selected === '2'")
            restored = page.get_attribute("#viewer", "data-version")
            page.keyboard.press("Delete")
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", restored)
            deleted = page.get_attribute("#viewer", "data-version")
            _drawn(page)
            record = page.evaluate("ezqViewer.editor.done[ezqViewer.editor.done.length - 1]")
            assert record["type"] == "delete" and record["nucleus_ids"] == [2]
            assert record["label_version"] == restored and record["result_version"] == deleted
            assert 2 not in {n["id"] for n in page.evaluate("ezqViewer.ortho.nucleiOn('yz')")}
            page.keyboard.press("Control+z")
            _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                        " return d.busy === 'false' && d.version !== v && d.overlayVersion === d.version; }", deleted)
            _drawn(page)
            assert 2 in {n["id"] for n in page.evaluate("ezqViewer.ortho.nucleiOn('yz')")}

            # The address keeps the layout and the cursor: a reload opens the same three views.
            # The address is rewritten 300 ms after the view rests: wait for the cursor there.
            cursor = page.get_attribute("#viewer", "data-cursor")
            _, cy, cx = cursor.split(",")
            page.wait_for_function(f"location.hash.includes('v=3&cy={cy}&cx={cx}')", timeout=TIMEOUT_MS)
            page.reload()
            _wait(page, "document.getElementById('viewer').dataset.firstRenderAllMs")
            assert page.get_attribute("#viewer", "data-layout") == "3"
            assert page.get_attribute("#viewer", "data-cursor").split(",")[1:] == cursor.split(",")[1:]

            # The queue's jump centres all three views on a nucleus: the cursor goes to its centre.
            page.click("#nuclei-list button.nucleus[data-label-id='5']")
            _wait(page, "() => document.getElementById('viewer').dataset.cursor.endsWith(',70,20')")
            _wait(page, f"() => {THREE_MAPS}.every((m) => !m.getView().getAnimating())")
            centres = page.evaluate(f"{THREE_MAPS}.map((m) => m.getView().getCenter())")
            rows = {p: page.evaluate(f"ezqViewer.ortho.views.{p}.rows") for p in ("xz", "yz")}
            (xy_x, xy_y), (xz_x, xz_row), (yz_y, yz_row) = centres
            assert abs(xy_x - 20.5) <= 1.5 and abs(-xy_y - 70.5) <= 1.5, centres
            assert abs(xz_x - 20.5) <= 1.5 and abs(yz_y - 70.5) <= 1.5, centres
            for plane, row in (("xz", xz_row), ("yz", yz_row)):  # at the nucleus' middle plane, 7-8
                assert 6.5 <= -row * SHAPE[0] / rows[plane] - 0.5 <= 8.5, (plane, row, rows)
            # zoomed in as far as the small nucleus needs, past 4x (where the XZ / YZ views stopped)
            zooms = page.evaluate(f"{THREE_MAPS}.map((m) => m.getView().getResolution())")
            assert all(r < 1 / 4 for r in zooms), zooms
            # An Alt-drag in the XY view moves the cursor with the pointer; the XZ view follows.
            page.evaluate("ezqViewer.map.getView().fit(ezqViewer.layers.grid.extent)")
            _drawn(page)
            box = page.locator("#map").bounding_box()
            start = page.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])", [64.5, 24.5])
            end = page.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])", [104.5, 30.5])
            page.keyboard.down("Alt")
            page.mouse.move(box["x"] + start[0], box["y"] + start[1])
            page.mouse.down()
            page.mouse.move(box["x"] + end[0], box["y"] + end[1], steps=5)
            page.mouse.up()
            page.keyboard.up("Alt")
            _wait(page, "() => document.getElementById('viewer').dataset.cursor.endsWith(',30,104')")
            _drawn(page)
            # nucleus 4 is at y 24, x 104
            assert 4 in {n["id"] for n in page.evaluate("ezqViewer.ortho.nucleiOn('xz')")}
            page.screenshot(path=shots / "7-cursor-dragged.png")

            # The key help names the three views' key and the Alt-drag; `t` toggles the layout.
            page.locator("#map").focus()
            page.keyboard.press("?")
            keys = page.text_content("#help dl")
            assert "one view / three views" in keys and "Alt-drag" in keys, keys
            page.keyboard.press("Escape")
            page.keyboard.press("t")
            assert page.get_attribute("#viewer", "data-layout") == "1" and page.locator("#map-xz").is_hidden()
            page.keyboard.press("t")
            assert page.get_attribute("#viewer", "data-layout") == "3" and page.locator("#map-yz").is_visible()
        finally:
            browser.close()


def test_it_keeps_one_view_for_a_2d_image(app, tmp_path):
    """A 2D image has no XZ / YZ planes: no toggle, and ``v=3`` in the address is ignored."""
    import tifffile
    from playwright.sync_api import sync_playwright

    live, seed = app
    tifffile.imwrite(tmp_path / "flat.tif", _stack()[0][7], photometric="minisblack")
    out = live.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        "from annotation.models import Project\n"
        "from annotation.services import volume_import\n"
        f"v = volume_import(project=Project.objects.get(id={seed['project']}), src_path={str(tmp_path / 'flat.tif')!r},"
        " name='flat', user=get_user_model().objects.get(username='alice'))\n"
        "print(v.id)\n"))
    flat = int(out.strip().splitlines()[-1])
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(base_url=live.url).new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, live.url, "alice")
            page.goto(f"/volumes/{flat}/#z=0&v=3&cy=5&cx=5")
            _wait(page, "document.getElementById('viewer').dataset.state === 'ready'")
            assert page.locator("#layout-toggle").count() == 0 and page.locator("#map-xz").count() == 0
            # One plane: no plane slider and no z-range for the drawing tools (both rows were shown,
            # their display: flex beat the hidden attribute).
            assert page.locator("#z-slider").is_hidden() and page.locator("#zrange-this").is_hidden()
            page.locator("#map").focus()
            page.keyboard.press("?")
            assert "three views" not in page.text_content("#help dl")
            page.keyboard.press("Escape")
            page.keyboard.press("t")
            assert page.get_attribute("#viewer", "data-layout") == "1" and errors == []
        finally:
            browser.close()
