"""A 3D backend's options reach the job as a person sets them in the viewer's form, in Debian's
headless Chromium against the running app (daphne, SQLite; no job worker, so a started job
stays queued until it is cancelled).

The form's fields come from segmentation.core.backend_options (through backend_catalogue): ivy
sees true3d's box (the stacks' default) with ``isotropic_masks`` a ticked check box, switches
to hybrid2d3d and back (each backend shows only its own box), unticks it, sets the flow
smoothing and starts a job: the job's stored parameters carry both, and the hybrid2d3d fields
she did not see are left at their defaults.
"""

from __future__ import annotations

import numpy as np
import pytest

from segmentation.core.backend_options import BACKEND_OPTIONS
from segmentation.core.params import DEFAULT_3D_RESTORATION
from tests.frontend.live import PASSWORD, LiveApp, launch_chromium, sign_in

TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    import tifffile

    work = tmp_path_factory.mktemp("backend-options-e2e")
    image = np.random.default_rng(0).integers(100, 2000, (4, 64, 64)).astype(np.uint16)
    tifffile.imwrite(work / "stack.tif", image, photometric="minisblack", metadata={"axes": "ZYX"})
    live = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})  # the job stays queued
    try:
        live.migrate()
        seed = live.seed(username="ivy", password=PASSWORD, project="Options", tiff=str(work / "stack.tif"),
                         name="small stack", voxel_size=[2.0, 0.5, 0.5])
        live.start()
        yield live, seed
    finally:
        live.stop()


def test_it_sends_the_options_set_in_the_form_with_the_job(app):
    from playwright.sync_api import sync_playwright

    live, seed = app
    volume = seed["volume"]
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_context(base_url=live.url).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, live.url, "ivy")
            page.goto(f"{live.url}/volumes/{volume}/")
            page.wait_for_selector("#viewer[data-state=ready]", timeout=TIMEOUT_MS)

            true3d = page.locator('.backend-options[data-backend="true3d"]')
            hybrid = page.locator('.backend-options[data-backend="hybrid2d3d"]')
            assert page.locator("#job-backend").input_value() == "true3d"
            assert true3d.is_visible() and hybrid.is_hidden()
            page.locator("#job-backend").select_option("hybrid2d3d")
            assert true3d.is_hidden() and hybrid.is_visible()
            page.locator("#job-backend").select_option("true3d")

            true3d.locator("summary").click()  # the box opens on its summary, as a person does
            isotropic = true3d.get_by_label("Isotropic masks")
            assert isotropic.get_attribute("type") == "checkbox" and isotropic.is_checked()
            isotropic.uncheck()
            true3d.get_by_label("Flow smoothing (voxels)").fill("0.5")
            with page.expect_request(lambda r: r.method == "POST" and "segmentation-jobs" in r.url) as sent:
                page.get_by_role("button", name="Start segmentation").click()
            params = sent.value.post_data_json["params"]
            assert (params["use_3d_backend"], params["isotropic_masks"], params["flow3d_smooth"]) == ("true3d", False,
                                                                                                       0.5)
            assert "split_dip" not in params  # another backend's field: not sent
            # Restoration left at "default": not sent, so the server fills in the stack's (auto).
            assert page.locator("#job-restoration").input_value() == "" and "restoration_mode" not in params
            page.wait_for_function("document.getElementById('job-status').dataset.status === 'queued'",
                                   timeout=TIMEOUT_MS)

            # As the server stored it (validated, every field): the options set, the others' defaults.
            job = page.request.get(f"/api/v1/volumes/{volume}/segmentation-jobs/").json()[0]  # newest first
            assert (job["params"]["isotropic_masks"], job["params"]["flow3d_smooth"]) == (False, 0.5)
            assert job["params"]["split_dip"] == BACKEND_OPTIONS["split_dip"].default
            assert job["params"]["restoration_mode"] == DEFAULT_3D_RESTORATION
            page.get_by_role("button", name="Cancel").click()
            page.wait_for_function("document.getElementById('job-status').dataset.status === 'cancelled'",
                                   timeout=TIMEOUT_MS)
            assert errors == []
        finally:
            browser.close()
