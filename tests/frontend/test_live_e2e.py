"""Others' edits arrive live, and everything from the project page, in Debian's headless
Chromium against the running app (daphne, SQLite, the embedded job worker):

* ada and ivy open the same volume: each sees the other in "Also here"; ivy deletes a nucleus
  and ada's page, without reloading, says who did what and shows the new version with one
  click; when ivy closes her page ada sees her leave.
* ivy uploads a TIFF stack from the project page: the upload's and the import's progress
  bars fill, and the new volume opens in the viewer; a corrupt file gives one message that
  names it.

Screenshots go to var/test-artifacts/live-e2e/ (git-ignored).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in

SHAPE = (4, 128, 128)
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import tifffile

    from segmentation.core import synthetic

    work = tmp_path_factory.mktemp("live-e2e")
    sample = synthetic.generate_3d(shape=SHAPE, seed=5)
    image = np.clip(np.round(sample.image * 100), 0, 65535).astype(np.uint16)
    tifffile.imwrite(work / "stack.tif", image, photometric="minisblack", metadata={"axes": "ZYX"})
    sample.labels.astype(np.uint32).tofile(work / "labels.raw")
    live = LiveApp(work)
    try:
        live.migrate()
        seed = live.seed(username="ada", password=PASSWORD, members=[["ivy", "instructor"]], project="Nuclei 101",
                         tiff=str(work / "stack.tif"), name="generated stack", voxel_size=[2.0, 0.5, 0.5],
                         labels=str(work / "labels.raw"))
        live.start()
        yield live, seed, work
    finally:
        live.stop()


@pytest.fixture(scope="module")
def shots():
    folder = ARTIFACTS / "live-e2e"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _open(browser, live, user: str, volume: int):
    context = browser.new_context(viewport={"width": 1300, "height": 850}, base_url=live.url)
    page = context.new_page()
    sign_in(page, live.url, user)
    page.goto(f"{live.url}/volumes/{volume}/")
    page.wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)
    return context, page


def _presence(page) -> str:
    return page.get_attribute("#presence", "data-users") or ""


def test_it_shows_who_is_here_and_their_edits_as_they_happen(app, shots):
    from playwright.sync_api import sync_playwright

    live, seed, _ = app
    volume = seed["volume"]
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            ada_context, ada = _open(browser, live, "ada", volume)
            ada.on("pageerror", lambda error: errors.append(f"ada: {error}"))
            ivy_context, ivy = _open(browser, live, "ivy", volume)
            ivy.on("pageerror", lambda error: errors.append(f"ivy: {error}"))

            ada.wait_for_function("document.getElementById('presence').dataset.users === 'ivy'", timeout=TIMEOUT_MS)
            ivy.wait_for_function("document.getElementById('presence').dataset.users === 'ada'", timeout=TIMEOUT_MS)
            assert "Also here: ivy" in ada.text_content("#presence")
            assert ada.get_attribute("#viewer", "data-version") == "v1"

            # ivy deletes the largest nucleus of her plane (select it, Delete), as a person does.
            ivy.evaluate("ezqViewer.map.getView().fit(ezqViewer.layers.grid.extent)")
            ivy.wait_for_function("document.getElementById('viewer').dataset.tilesPending === '0'",
                                  timeout=TIMEOUT_MS)
            ivy.evaluate("ezqViewer.nextFullRender()")
            nucleus = max(ivy.evaluate("ezqViewer.nucleiOnPlane()"), key=lambda n: n["n"])
            px, py = ivy.evaluate("([x, y]) => ezqViewer.map.getPixelFromCoordinate([x, -y])",
                                  [nucleus["x"] + 0.5, nucleus["y"] + 0.5])
            box = ivy.locator("#map").bounding_box()
            ivy.mouse.click(box["x"] + px, box["y"] + py)
            ivy.wait_for_function(f"document.getElementById('viewer').dataset.selected === '{nucleus['id']}'",
                                  timeout=TIMEOUT_MS)
            ivy.keyboard.press("Delete")
            ivy.wait_for_function("document.getElementById('viewer').dataset.version === 'v2'", timeout=TIMEOUT_MS)
            assert ivy.locator("#live-notice").is_hidden(), "her own edit is not announced to her"

            # ada's page hears it without reloading: who, what, and one click to see it.
            ada.wait_for_selector("#live-notice:not([hidden])", timeout=TIMEOUT_MS)
            notice = ada.text_content("#live-notice-text")
            assert f"ivy deleted nucleus {nucleus['id']}" in notice and "v2" in notice, notice
            assert ada.get_attribute("#viewer", "data-version") == "v1"
            assert "v2" in ada.eval_on_selector_all("#version-select option", "os => os.map(o => o.value)")
            ada.screenshot(path=shots / "01-edit-arrived.png")
            ada.get_by_role("button", name="Show v2").click()
            ada.wait_for_function("() => { const d = document.getElementById('viewer').dataset;"
                                  " return d.version === 'v2' && d.overlayVersion === 'v2'; }", timeout=TIMEOUT_MS)
            assert ada.locator("#live-notice").is_hidden()
            assert ada.evaluate("ezqViewer.state.versions") == ["v1", "v2"]

            # ivy closes her page: ada sees her leave.
            ivy_context.close()
            ada.wait_for_function("document.getElementById('presence').dataset.users === ''", timeout=TIMEOUT_MS)
            assert "Nobody else" in ada.text_content("#presence")
            ada_context.close()
        finally:
            browser.close()
    assert errors == []
