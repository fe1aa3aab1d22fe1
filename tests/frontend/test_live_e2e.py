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

import io
import shutil
from pathlib import Path

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


_RECORD_BARS = """() => {
    // Each change of the form's texts (one per upload event, one per job state heard): the bars then.
    window.bars = [];
    const form = document.getElementById('volume-upload');
    new MutationObserver(() => {
        const now = [...form.querySelectorAll('progress')].map((bar) => bar.value);
        const last = window.bars[window.bars.length - 1];
        if (!last || now.some((v, i) => v !== last[i])) window.bars.push(now);
    }).observe(form, { subtree: true, childList: true, characterData: true });
}"""


def test_it_uploads_a_volume_from_the_project_page(app, shots):
    import tifffile
    from playwright.sync_api import sync_playwright

    live, seed, work = app
    # The worker reports each plane (at most five a second, the first at once) and the page hears
    # each report on the job's socket, so the bar stops between 0 and 1 however fast the import.
    stack = np.random.default_rng(2).integers(0, 4000, (24, 256, 256), dtype=np.uint16)
    path = work / "Big stack, day 3.tif"
    tifffile.imwrite(path, stack, photometric="minisblack", metadata={"axes": "ZYX"})
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(viewport={"width": 1300, "height": 900}, base_url=live.url).new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))
            sign_in(page, live.url, "ivy")
            page.goto(f"{live.url}/projects/{seed['project']}/")
            form = page.locator("#volume-upload")
            form.locator("input[type=file]").set_input_files(str(path))
            assert "Big stack, day 3.tif" in form.locator("[data-drop-text]").text_content()
            form.get_by_label("z", exact=True).fill("2")
            form.get_by_label("y", exact=True).fill("0.25")
            form.get_by_label("x", exact=True).fill("0.25")
            page.evaluate(_RECORD_BARS)
            # A slow line (2 MB/s up), as from a lab's network: the upload's bar moves too.
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 20,
                                                          "downloadThroughput": -1, "uploadThroughput": 2_000_000})
            form.get_by_role("button", name="Upload and import").click()
            page.wait_for_function(
                "['done', 'failed'].includes(document.getElementById('volume-upload').dataset.state)",
                timeout=120_000)
            page.screenshot(path=shots / "02-imported.png")
            assert form.get_attribute("data-state") == "done", form.locator("[data-error]").text_content()
            bars = page.evaluate("window.bars")
            assert bars[-1] == [1, 1]
            uploading = [b[0] for b in bars]
            assert any(0 < v < 1 for v in uploading) and uploading == sorted(uploading), bars
            importing = [b[1] for b in bars if b[0] == 1]
            assert any(0 < v < 1 for v in importing), bars  # a real bar: the worker's planes
            assert importing == sorted(importing)
            assert any("/ws/import-jobs/" in url for url in sockets), sockets  # heard, not polled
            assert "plane" in page.text_content("[data-status=import]") or bars[-1][1] == 1

            # The new volume opens in the viewer with the voxel size given.
            page.get_by_role("link", name="Open Big stack, day 3.tif in the viewer").click()
            page.wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)
            config = page.evaluate("JSON.parse(document.getElementById('viewer-config').textContent)")
            assert config["volume"]["shape"] == [24, 256, 256]
            assert config["volume"]["voxel_size"] == [2.0, 0.25, 0.25]
            page.wait_for_function("document.getElementById('viewer').dataset.firstRenderMs", timeout=TIMEOUT_MS)

            # A corrupt file, dropped on the zone: one message, naming the file.
            page.goto(f"{live.url}/projects/{seed['project']}/")
            page.evaluate("""() => {
                const zone = document.querySelector('#volume-upload [data-drop]');
                const transfer = new DataTransfer();
                transfer.items.add(new File([new Uint8Array([73, 73, 42, 0, 8, 0, 0, 0, 9, 9, 9])], 'broken scan.tif'));
                zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }""")
            assert "broken scan.tif" in form.locator("[data-drop-text]").text_content()
            form.get_by_role("button", name="Upload and import").click()
            page.wait_for_function("document.getElementById('volume-upload').dataset.state === 'failed'",
                                   timeout=60_000)
            shown = [e.text_content() for e in page.locator("[data-error]:visible").all()]
            assert len(shown) == 1, shown
            assert "'broken scan.tif'" in shown[0] and ".upload" not in shown[0] and "tmp" not in shown[0], shown
            page.screenshot(path=shots / "03-corrupt.png")
        finally:
            browser.close()
    assert errors == []


def test_it_sends_the_segmentation_thresholds_from_the_viewer(app):
    import json

    from playwright.sync_api import sync_playwright

    live, seed, _ = app
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context, page = _open(browser, live, "ada", seed["volume"])
            sent = []

            def refuse(route):  # no job runs here: the request is read and answered by the test
                sent.append(json.loads(route.request.post_data))
                route.fulfill(status=400, content_type="application/json",
                              body=json.dumps({"message": "read by the test", "extra": {}}))

            page.route("**/segmentation-jobs/", refuse)
            page.locator("details.more-params summary").click()
            assert page.get_attribute("input[name=flow_threshold]", "placeholder") == "0.4"
            page.get_by_label("Flow threshold").fill("0.6")
            page.get_by_label("Cell probability threshold").fill("-1.5")
            page.get_by_label("Smallest nucleus (voxels)").fill("40")
            page.get_by_role("button", name="Start segmentation").click()
            # Earlier tests of this module edit the volume: the curation notice comes first, and
            # a second Start goes ahead.
            page.wait_for_function("document.querySelector('#banner:not([hidden])')"
                                   " || document.getElementById('job-curation')?.hidden === false",
                                   timeout=TIMEOUT_MS)
            if not sent:
                page.get_by_role("button", name="Start segmentation").click()
            page.wait_for_selector("#banner:not([hidden])", timeout=TIMEOUT_MS)
            assert "read by the test" in page.text_content("#banner-text")
            params = sent[0]["params"]
            assert (params["flow_threshold"], params["cellprob_threshold"], params["min_size"]) == (0.6, -1.5, 40)
            context.close()
        finally:
            browser.close()


def test_it_uploads_labels_for_a_volume_from_the_project_page(app):
    import tifffile
    from playwright.sync_api import sync_playwright

    live, seed, work = app
    labels = np.fromfile(work / "labels.raw", dtype=np.uint32).reshape(SHAPE)
    tifffile.imwrite(work / "curated labels.tif", labels, photometric="minisblack", metadata={"axes": "ZYX"})
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(base_url=live.url).new_page()
            sign_in(page, live.url, "ivy")
            page.goto(f"{live.url}/projects/{seed['project']}/")
            row = page.locator("tr", has=page.get_by_role("link", name="generated stack", exact=True))
            before = row.locator("form.labels-upload").get_attribute("data-parent")
            row.locator("form.labels-upload input[type=file]").set_input_files(str(work / "curated labels.tif"))
            with page.expect_navigation(timeout=TIMEOUT_MS):
                row.get_by_role("button", name="Send").click()
            after = row.locator("form.labels-upload").get_attribute("data-parent")
            assert int(after[1:]) == int(before[1:]) + 1, (before, after)
            assert row.locator("a", has_text="Labels OME-TIFF").get_attribute("href").endswith(
                f"/label-versions/{after}/export.ome.tif")
            # The three downloads, clicked: the files of the new version.
            files = {}
            for name in ("Nuclei CSV", "Labels OME-TIFF", "Labels OME-Zarr"):
                with page.expect_download(timeout=TIMEOUT_MS) as download:
                    row.get_by_role("link", name=name).click()
                files[name] = (download.value.suggested_filename, Path(download.value.path()).read_bytes())
            csv_name, csv = files["Nuclei CSV"]
            assert csv_name.endswith(f"{after}-nuclei.csv") and csv.startswith(b"label_id,"), csv_name
            assert len(csv.strip().splitlines()) - 1 == len(np.unique(labels)) - 1  # a row per nucleus
            tiff_name, tiff = files["Labels OME-TIFF"]
            assert tiff_name.endswith(".ome.tif") and np.array_equal(tifffile.imread(io.BytesIO(tiff)), labels)
            zarr_name, zipped = files["Labels OME-Zarr"]
            assert zarr_name.endswith(".ome.zarr.zip") and zipped[:2] == b"PK"

            # Labels of another shape: one message naming the file, nothing made.
            tifffile.imwrite(work / "wrong.tif", labels[:, :64], photometric="minisblack", metadata={"axes": "ZYX"})
            row.locator("form.labels-upload input[type=file]").set_input_files(str(work / "wrong.tif"))
            row.get_by_role("button", name="Send").click()
            error = row.locator("form.labels-upload [data-error]")
            error.wait_for(state="visible", timeout=TIMEOUT_MS)
            assert error.text_content().startswith("wrong.tif: labels have shape"), error.text_content()
            assert row.locator("form.labels-upload").get_attribute("data-parent") == after
        finally:
            browser.close()


_TRAINED = """
import json, os
from annotation.models import Project
from segmentation.models import TrainingJob
project = Project.objects.get(name="Nuclei 101")
loss = json.loads(os.environ["LOSS"])
job = TrainingJob.objects.create(project=project, params={}, correction_ids=[], status="succeeded", progress=1.0,
                                 message="done", metrics={"loss": loss, "steps": len(loss)})
print(job.id)
"""


def test_it_draws_the_smoothed_loss_beside_the_raw_one(app):
    import json

    from playwright.sync_api import sync_playwright

    live, seed, _ = app
    rng = np.random.default_rng(4)
    loss = [[step, round(float(1 / (1 + step / 10) + rng.normal(0, 0.1)), 5)] for step in range(1, 41)]
    live.manage("shell", "-c", _TRAINED, env={"LOSS": json.dumps(loss)})
    expected, average = 0.0, 0.0
    for i, (_, value) in enumerate(loss):  # the page's exponential moving average, bias-corrected
        average = 0.8 * average + 0.2 * value
        expected = average / (1 - 0.8 ** (i + 1))
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(base_url=live.url).new_page()
            sign_in(page, live.url, "ada")
            page.goto(f"{live.url}/projects/{seed['project']}/training/")
            canvas = page.locator("#loss-curve")
            page.wait_for_function("document.getElementById('loss-curve').dataset.smoothed === '40'",
                                   timeout=TIMEOUT_MS)
            assert canvas.get_attribute("data-points") == "40"
            assert float(canvas.get_attribute("data-last-smoothed")) == pytest.approx(expected, rel=1e-5)
            assert "smoothed" in page.text_content(".curve-legend")
        finally:
            browser.close()


def test_it_forgets_a_viewer_whose_connection_died_without_a_word(app):
    """ivy's socket stays open on the server (no leave is ever said) but nothing of hers gets
    through any more, as when her network died: ada's page forgets her 45 s after her last
    ping. Both pages' clocks are Playwright's, so minutes pass in a moment."""
    from playwright.sync_api import sync_playwright

    live, seed, _ = app
    volume = seed["volume"]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            contexts = {}
            pages = {}
            dead = {"ivy": False}
            for user in ("ada", "ivy"):
                contexts[user] = browser.new_context(viewport={"width": 1200, "height": 800}, base_url=live.url)
                contexts[user].clock.install()
                pages[user] = contexts[user].new_page()

            def through(ws):  # ivy's live socket, relayed by the test so it can go silent
                server = ws.connect_to_server()
                ws.on_message(lambda message: None if dead["ivy"] else server.send(message))
                server.on_message(lambda message: None if dead["ivy"] else ws.send(message))

            pages["ivy"].route_web_socket("**/live/", through)
            for user in ("ada", "ivy"):
                sign_in(pages[user], live.url, user)
                pages[user].goto(f"{live.url}/volumes/{volume}/")
                pages[user].wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)
            ada, ivy = pages["ada"], pages["ivy"]
            ada.wait_for_function("document.getElementById('presence').dataset.users === 'ivy'", timeout=TIMEOUT_MS)

            # Alive: ivy's pings keep her listed however long it lasts.
            for _ in range(3):
                ada.clock.fast_forward(30_000)
                ivy.clock.fast_forward(15_000)  # her ping goes out, ada hears "here"
                ada.wait_for_timeout(500)
            ada.clock.fast_forward(30_000)
            assert _presence(ada) == "ivy"

            # Dead: nothing of hers arrives; her socket is never closed, so no leave is said.
            dead["ivy"] = True
            ivy.clock.fast_forward(15_000)
            ada.clock.fast_forward(30_000)
            ada.wait_for_timeout(300)
            ada.clock.fast_forward(30_000)
            ada.wait_for_function("document.getElementById('presence').dataset.users === ''", timeout=TIMEOUT_MS)
            assert "Nobody else" in ada.text_content("#presence")
        finally:
            browser.close()
