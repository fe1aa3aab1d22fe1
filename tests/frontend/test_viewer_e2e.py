"""The viewer end to end, in Debian's headless Chromium against the running app (daphne, SQLite,
the embedded job worker), doing what a person does:

alice signs in, opens a generated 12 x 128 x 128 volume, runs a segmentation and watches its
progress bar fill, picks the most uncertain nucleus from the queue, splits it with a line,
merges two nuclei, deletes one and undoes that; then the records are read back from the API.
Meanwhile bob (an instructor) edits the same volume in his own browser, and alice's next edit, made on the
version she still sees, is refused with 409 and offered a reload: nothing is overwritten.

Screenshots of each step go to var/test-artifacts/viewer-e2e/ (git-ignored; the path is
printed). Part of `make test`, which installs /usr/bin/chromium: without it the test fails.
"""

from __future__ import annotations

import math
import shutil
import time

import numpy as np
import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in

SHAPE = (12, 128, 128)
TIMEOUT_MS = 30_000
JOB_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import tifffile

    from segmentation.core import synthetic

    work = tmp_path_factory.mktemp("viewer-e2e")
    sample = synthetic.generate_3d(shape=SHAPE, seed=3)
    tifffile.imwrite(work / "stack.tif", np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16),
                     photometric="minisblack", metadata={"axes": "ZYX"})
    live = LiveApp(work)
    try:
        live.migrate()
        seed = live.seed(username="alice", password=PASSWORD, members=[["bob", "instructor"]], outsiders=["eve"],
                         project="Nuclei 101", tiff=str(work / "stack.tif"), name="generated stack",
                         voxel_size=[2.0, 0.5, 0.5])
        live.start()
        yield live, seed
    finally:
        live.stop()


@pytest.fixture(scope="module")
def shots():
    folder = ARTIFACTS / "viewer-e2e"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nviewer screenshots: {folder}")
    return folder


def _wait(page, condition: str, arg=None, timeout: float = TIMEOUT_MS) -> None:
    """page.wait_for_function, failing with what the page shows (state, banner, status bar)."""
    from playwright.sync_api import TimeoutError

    try:
        page.wait_for_function(condition, arg=arg, timeout=timeout)
    except TimeoutError:
        state = page.evaluate("JSON.stringify(document.getElementById('viewer')?.dataset ?? {})")
        shot = ARTIFACTS / "viewer-e2e" / "failure.png"
        page.screenshot(path=shot)
        raise AssertionError(f"timed out waiting for {condition} ({arg!r}); viewer {state}; banner {_banner(page)!r}; "
                             f"status {page.text_content('.statusbar')!r}; screenshot {shot}") from None


def _viewer(page, key: str) -> str:
    return page.get_attribute("#viewer", f"data-{key}") or ""


def _wait_version(page, version: str) -> None:
    """Until the page shows `version` with every tile on screen drawn."""
    _wait(page, "v => { const d = document.getElementById('viewer').dataset;"
                " return d.version === v && d.overlayVersion === v && d.busy === 'false'; }", version)


_NEW_VERSION_OR_REFUSAL = """before => {
    const d = document.getElementById('viewer').dataset;
    const banner = document.getElementById('banner');
    const refused = !banner.hidden && banner.dataset.kind !== 'info';
    return d.busy === 'false' && ((d.version !== before && d.overlayVersion === d.version) || refused);
}"""


def _wait_new_version(page, before: str) -> str:
    """Until the page shows a version other than `before`, or says why not; the version shown."""
    _wait(page, _NEW_VERSION_OR_REFUSAL, before)
    return _viewer(page, "version")


def _screen(page, y: float, x: float) -> tuple[float, float]:
    """Page coordinates of level-0 pixel (y, x)'s centre."""
    px, py = page.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])", [x + 0.5, y + 0.5])
    box = page.locator("#map").bounding_box()
    return box["x"] + px, box["y"] + py


def _on_plane(page) -> dict[int, dict]:
    return {n["id"]: n for n in page.evaluate("ezqViewer.nucleiOnPlane()")}


def _banner(page) -> str:
    return "" if page.locator("#banner").is_hidden() else page.text_content("#banner-text")


def _fit(page) -> None:
    page.evaluate("ezqViewer.map.getView().fit(ezqViewer.layers.grid.extent)")
    _wait(page, "document.getElementById('viewer').dataset.tilesPending === '0'")
    page.evaluate("ezqViewer.nextFullRender()")


def _api(page, path: str):
    response = page.request.get(f"/api/v1/{path}")
    assert response.ok, (path, response.status, response.text()[:500])
    return response.json()


def _open_volume(page, base: str, user: str, volume: int) -> None:
    sign_in(page, base, user)
    page.get_by_role("link", name="generated stack").click()
    page.wait_for_url(f"{base}/volumes/{volume}/")
    page.wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)


def _segment(page, shots) -> list[float]:
    page.get_by_label("Diameter (px)").fill("15")
    page.locator("#job-backend").select_option("hybrid2d3d")
    page.get_by_role("button", name="Start segmentation").click()
    seen: list[tuple[str, float]] = []
    deadline = time.monotonic() + JOB_TIMEOUT_S
    shot_taken = False
    while True:
        status = page.get_attribute("#job-status", "data-status")
        value = page.eval_on_selector("#job-progress", "e => e.value")
        if not seen or seen[-1] != (status, value):
            seen.append((status, value))
        if status == "running" and 0 < value < 1 and not shot_taken:
            page.screenshot(path=shots / "02-segmentation-running.png")
            shot_taken = True
        if status in ("succeeded", "failed", "cancelled"):
            break
        assert time.monotonic() < deadline, seen[-5:]
        time.sleep(0.1)
    assert status == "succeeded", (seen[-3:], page.text_content("#job-text"))
    return [value for status, value in seen if status == "running"]


def _split_with_a_line(page, nucleus: dict, z_row: dict) -> None:
    """Draw a line across the nucleus through its pixel nearest the centre, perpendicular to its
    longer side on this plane; if the server says it does not cut it in two, draw the other
    way (as a person would)."""
    before = _viewer(page, "version")
    height, width = z_row["y1"] - z_row["y0"] + 1, z_row["x1"] - z_row["x0"] + 1
    reach = 2 * math.sqrt(nucleus["volume_voxels"] / (nucleus["z_max"] - nucleus["z_min"] + 1)) + 4
    lines = [((z_row["y"], z_row["x"] - reach), (z_row["y"], z_row["x"] + reach)),
             ((z_row["y"] - reach, z_row["x"]), (z_row["y"] + reach, z_row["x"]))]
    if width > height:
        lines.reverse()
    page.keyboard.press("s")
    for (y0, x0), (y1, x1) in lines:
        page.mouse.click(*_screen(page, y0, x0))
        page.mouse.click(*_screen(page, y1, x1))
        if _wait_new_version(page, before) != before:
            return
        page.click("#banner-close")
    raise AssertionError(f"no line split nucleus {nucleus['label_id']}")


def test_it_segments_and_corrects_a_volume_in_the_browser(app, shots):
    from playwright.sync_api import sync_playwright

    live, seed = app
    volume = seed["volume"]
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            alice = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live.url)
            page = alice.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))

            # Sign in and open the volume: tiles on screen, no labels yet.
            _open_volume(page, live.url, "alice", volume)
            _wait(page, "document.getElementById('viewer').dataset.firstRenderMs")
            assert _viewer(page, "version") == ""
            assert page.text_content("#head-version") == "no labels"
            page.screenshot(path=shots / "01-opened.png")

            # Step through z with the keys; change the contrast: new tiles with the new window.
            tiles: list[str] = []
            page.on("response", lambda r: "/tiles/" in r.url and r.status == 200 and tiles.append(r.url))
            z0 = int(_viewer(page, "z"))
            page.locator("#map").focus()
            page.keyboard.press(".")
            page.keyboard.press(".")
            page.keyboard.press(",")
            assert _viewer(page, "z") == str(z0 + 1)
            assert page.text_content("#z-value") == str(z0 + 1)
            page.keyboard.press("PageDown")
            assert _viewer(page, "z") == str(z0)
            page.locator("#contrast-lo").fill("500")
            page.locator("#contrast-hi").fill("20000")
            _wait(page, "document.getElementById('viewer').dataset.tilesPending === '0'"
                        " && performance.getEntriesByType('resource').some(e => e.name.includes('lo=500&hi=20000'))")
            assert any(f"/tiles/0/{z0}/" in url and "lo=500&hi=20000" in url for url in tiles), tiles[-5:]
            page.get_by_role("button", name="Reset").click()
            assert page.input_value("#contrast-lo") != "500"

            # Run a segmentation and watch the progress bar move to done.
            progress = _segment(page, shots)
            assert any(0 < value < 1 for value in progress), progress  # it moved while running
            assert progress == sorted(progress), progress
            assert page.eval_on_selector("#job-progress", "e => e.value") == 1
            _wait_version(page, "v1")
            assert page.text_content("#head-version") == "labels v1"
            page.screenshot(path=shots / "03-segmented.png")

            # The heat map of the uncertainty, on and off again; outlines only, and back.
            page.keyboard.press("h")
            _wait(page, "performance.getEntriesByType('resource')"
                        ".some(e => e.name.includes('/labels/v1/uncertainty/'))")
            _wait(page, "document.getElementById('viewer').dataset.tilesPending === '0'")
            assert page.evaluate("ezqViewer.layers.loads.heat.errors") == 0
            page.screenshot(path=shots / "03-heat-map.png")
            page.keyboard.press("h")
            page.keyboard.press("o")
            assert page.is_checked("#labels-outline")
            page.screenshot(path=shots / "03-outlines.png")
            page.keyboard.press("o")

            # The queue is the API's ranking, least certain first.
            ranked = _api(page, f"volumes/{volume}/label-versions/v1/nuclei/?ordering=-uncertainty&page_size=20")
            rows = page.locator("#nuclei-list button.nucleus")
            assert rows.count() == min(ranked["count"], 200)
            top = ranked["results"][0]
            assert rows.first.get_attribute("data-label-id") == str(top["label_id"])

            # Pick the most uncertain nucleus: the view jumps to its plane and selects it.
            rows.first.click()
            _wait(page, f"document.getElementById('viewer').dataset.selected === '{top['label_id']}'")
            assert _viewer(page, "z") == str(round(top["centroid_z"]))
            assert "selected" in rows.first.get_attribute("class")
            _wait(page, "document.getElementById('viewer').dataset.tilesPending === '0'")
            page.evaluate("ezqViewer.nextFullRender()")
            plane = _on_plane(page)
            assert top["label_id"] in plane, "the picked nucleus is not on the plane shown"
            target = plane[top["label_id"]]
            page.mouse.move(*_screen(page, target["y"], target["x"]))
            _wait(page, f"document.getElementById('viewer').dataset.hoverId === '{top['label_id']}'")
            assert page.text_content("#status-id") == f"nucleus #{top['label_id']}"
            page.screenshot(path=shots / "04-picked-most-uncertain.png")

            # Split it with a line across it.
            _split_with_a_line(page, top, target)
            split_version = _viewer(page, "version")
            halves = [int(i) for i in _viewer(page, "selected").split(",")]
            assert len(halves) == 2 and top["label_id"] in halves
            page.screenshot(path=shots / "05-split.png")

            # Merge two other nuclei of this plane: merge tool, click both, Enter.
            _fit(page)
            plane = _on_plane(page)
            others = sorted((n for i, n in plane.items() if i not in halves), key=lambda n: -n["n"])[:2]
            assert len(others) == 2, plane.keys()
            page.keyboard.press("Escape")
            page.keyboard.press("m")
            for n in others:  # one at a time: two quick clicks would be a double click
                page.mouse.click(*_screen(page, n["y"], n["x"]))
                _wait(page, f"document.getElementById('viewer').dataset.selected.split(',').includes('{n['id']}')")
            picked = sorted(int(i) for i in _viewer(page, "selected").split(","))
            assert picked == sorted(n["id"] for n in others)
            page.keyboard.press("Enter")
            merge_version = _wait_new_version(page, split_version)
            assert merge_version != split_version, _banner(page)
            merged = min(picked)
            assert _viewer(page, "selected") == str(merged)
            page.screenshot(path=shots / "06-merged.png")

            # Delete one: select it, press Delete.
            page.keyboard.press("v")
            plane = _on_plane(page)
            doomed = next(n for i, n in sorted(plane.items(), key=lambda item: -item[1]["n"])
                          if i not in halves and i != merged)
            page.mouse.click(*_screen(page, doomed["y"], doomed["x"]))
            _wait(page, f"document.getElementById('viewer').dataset.selected === '{doomed['id']}'")
            page.keyboard.press("Delete")
            delete_version = _wait_new_version(page, merge_version)
            assert delete_version != merge_version, _banner(page)
            assert doomed["id"] not in _on_plane(page)
            page.screenshot(path=shots / "07-deleted.png")

            # Undo the delete: the nucleus is back in a new version.
            page.keyboard.press("Control+z")
            undo_version = _wait_new_version(page, delete_version)
            assert undo_version != delete_version, _banner(page)
            assert doomed["id"] in _on_plane(page)
            assert page.locator("#edit-log li.undone").count() == 1
            page.screenshot(path=shots / "08-undone.png")

            # The records, from the API.
            records = _api(page, f"volumes/{volume}/corrections/")["results"]
            assert [r["type"] for r in records] == ["delete", "merge", "split"]
            delete, merge, split = records
            assert split["nucleus_ids"] == [top["label_id"]] and sorted(split["new_ids"]) == sorted(halves)
            assert (split["label_version"], split["result_version"]) == ("v1", split_version)
            assert sorted(merge["nucleus_ids"]) == picked
            assert (merge["label_version"], merge["result_version"]) == (split_version, merge_version)
            assert delete["nucleus_ids"] == [doomed["id"]] and delete["undone"] is True
            assert (delete["label_version"], delete["result_version"]) == (merge_version, delete_version)
            assert all(r["created_by"] == "alice" for r in records)
            assert _api(page, f"volumes/{volume}/")["latest_label_version"] == undo_version

            # bob edits the same volume in his own browser; alice's page still shows the old
            # version, so her next edit is refused and the page offers to reload.
            bob = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live.url)
            bob_page = bob.new_page()
            bob_page.on("pageerror", lambda error: errors.append(f"bob: {error}"))
            _open_volume(bob_page, live.url, "bob", volume)
            _wait_version(bob_page, undo_version)
            _fit(bob_page)
            bob_plane = _on_plane(bob_page)
            bobs = next(n for i, n in sorted(bob_plane.items(), key=lambda item: -item[1]["n"]) if i != doomed["id"])
            bob_page.mouse.click(*_screen(bob_page, bobs["y"], bobs["x"]))
            _wait(bob_page, f"document.getElementById('viewer').dataset.selected === '{bobs['id']}'")
            bob_page.keyboard.press("Delete")
            bob_version = _wait_new_version(bob_page, undo_version)
            assert bob_version != undo_version, _banner(bob_page)

            page.mouse.click(*_screen(page, doomed["y"], doomed["x"]))
            _wait(page, f"document.getElementById('viewer').dataset.selected === '{doomed['id']}'")
            page.keyboard.press("Delete")
            page.wait_for_selector("#banner[data-kind=conflict]", timeout=TIMEOUT_MS)
            assert bob_version in _banner(page) and "Nothing was changed" in _banner(page)
            assert _viewer(page, "version") == undo_version
            page.screenshot(path=shots / "09-conflict.png")
            page.get_by_role("button", name="Reload").click()
            _wait_version(page, bob_version)
            assert bobs["id"] not in _on_plane(page) or _viewer(page, "z") != _viewer(bob_page, "z")
            page.screenshot(path=shots / "10-reloaded.png")
            latest = _api(page, f"volumes/{volume}/corrections/")["results"]
            assert [r["type"] for r in latest][:2] == ["delete", "delete"]
            assert latest[0]["created_by"] == "bob" and len(latest) == 4  # alice's refused edit left none
        finally:
            browser.close()
    assert errors == []


def test_it_answers_eve_404_for_the_viewer_in_the_browser(app):
    from playwright.sync_api import sync_playwright

    live, seed = app
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(base_url=live.url)
            sign_in(page, live.url, "eve")
            assert "not a member of any project" in page.text_content("main")
            response = page.goto(f"/volumes/{seed['volume']}/")
            assert response.status == 404
        finally:
            browser.close()
