"""A check is training data and people's work outlives a new segmentation, in Debian's headless
Chromium against the running app (tests/frontend/live.py, the embedded job worker):

alice checks the most uncertain nucleus of her queue (key ``y``) and deletes another; her
project page and ivy's assignment list count it ("1 of N uncertain nuclei checked"). ivy
approves both on the review page; ada's training page counts them as training data, trains
a version on them from the page (the check among its corrections), promotes it unscored (the
box ticked, the question answered) and the viewer names it as the default. ada segments again
from the viewer: the notice says what is kept, the job runs with the promoted adapter, the
banner says it kept the checked nucleus, which is in the new labels voxel for voxel, and the
deleted one's place stays empty. From scratch, after ticking the box, keeps nothing and the
audit trail says so.

Screenshots go to var/test-artifacts/resegment-e2e/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in, write_generated_stack

TIMEOUT_MS = 30_000
JOB_TIMEOUT_MS = 240_000

# Every other nucleus of v1 uncertain (the labels were uploaded, so unscored), and alice's
# assignment on the whole volume.
PREPARE = """
from django.contrib.auth import get_user_model
from annotation.models import LabelVersion, Volume
from annotation.services import assignment_create
users = get_user_model().objects
volume = Volume.objects.get()
v1 = LabelVersion.objects.get(volume=volume, name="v1")
ids = sorted(v1.nuclei.values_list("label_id", flat=True))
v1.nuclei.filter(label_id__in=ids[::2]).update(uncertainty=0.9)
assignment_create(project=volume.project, volume=volume, student=users.get(username="alice"),
                  assigned_by=users.get(username="ivy"))
"""

# What the last segmentation job did, as JSON: its fields, the kept nucleus and the deleted
# place compared with the version it replaced (argv: the checked and the deleted ids).
JUDGE = """
import json, sys
import numpy as np
from annotation.models import AuditEvent, Volume
from annotation.stores import volume_store
from segmentation.models import SegmentationJob
checked, deleted = int(sys.argv[-2]), int(sys.argv[-1])
store = volume_store(Volume.objects.get())
job = SegmentationJob.objects.order_by("-id").first()
before, after = store.read_labels("v2"), store.read_labels(job.label_version.name)
was = store.read_labels("v1") == deleted
event = AuditEvent.objects.get(action="segmentation_job.create", object_id=job.id)
print(json.dumps({"version": job.label_version.name, "kept": job.kept_nuclei, "from_scratch": job.from_scratch,
                  "model": job.model_version, "same": bool(np.array_equal(after == checked, before == checked)),
                  "filled": int(len(np.unique(after)) - 1), "deleted_place": int(after[was].astype(bool).sum()),
                  "audit_from_scratch": event.details.get("from_scratch", False),
                  "audit_drops": event.details.get("drops")}))
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("resegment-e2e")
    write_generated_stack(work, (4, 96, 96), seed=2)
    live = LiveApp(work)
    with live.running(prepare=PREPARE, username="ada", password=PASSWORD,
                      members=[["ivy", "instructor"], ["alice", "student"]],
                      project="Nuclei 101", tiff=str(work / "stack.tif"), name="generated stack",
                      voxel_size=[2.0, 0.5, 0.5], labels=str(work / "labels.raw")) as seed:
        yield live, seed


def _judge(live, checked: int, deleted: int) -> dict:
    script = JUDGE.replace("int(sys.argv[-2]), int(sys.argv[-1])", f"{checked}, {deleted}")
    return json.loads(live.manage("shell", "-c", script).strip().splitlines()[-1])


def _segment(page) -> None:
    """Start, read the notice, Start again; wait for the job to end and return its banner."""
    page.get_by_label("Diameter (px)").fill("15")
    page.get_by_role("button", name="Start segmentation").click()
    page.locator("#job-curation").wait_for(state="visible", timeout=TIMEOUT_MS)


def _wait_job(page) -> str:
    page.wait_for_function("['succeeded', 'failed', 'cancelled'].includes("
                           "document.getElementById('job-status').dataset.status)", timeout=JOB_TIMEOUT_MS)
    assert page.get_attribute("#job-status", "data-status") == "succeeded", page.text_content("#job-text")
    page.wait_for_selector("#banner:not([hidden])", timeout=TIMEOUT_MS)
    return page.text_content("#banner-text")


def test_a_check_is_training_data_and_a_new_segmentation_keeps_it(app):
    from playwright.sync_api import expect, sync_playwright

    live, seed = app
    shots = ARTIFACTS / "resegment-e2e"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    errors: list[str] = []
    project = f"{live.url}/projects/{seed['project']}/"
    viewer = f"{live.url}/volumes/{seed['volume']}/"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            def page_of(user: str):
                page = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live.url).new_page()
                page.on("pageerror", lambda error: errors.append(f"{user}: {error}"))
                sign_in(page, live.url, user)
                return page

            # alice checks the most uncertain nucleus of her queue and deletes another.
            alice = page_of("alice")
            alice.goto(viewer)
            alice.wait_for_selector("#viewer[data-state='ready']", timeout=TIMEOUT_MS)
            queue = alice.locator("#nuclei-list button.nucleus")
            expect(queue.first).to_be_visible(timeout=TIMEOUT_MS)
            checked = int(queue.nth(0).get_attribute("data-label-id"))
            deleted = int(queue.nth(1).get_attribute("data-label-id"))
            queue.nth(0).click()
            alice.wait_for_function(f"document.querySelector('#viewer').dataset.selected === '{checked}'")
            alice.keyboard.press("y")
            mark = alice.locator(f"#nuclei-list button[data-label-id='{checked}']")
            expect(mark).to_have_attribute("data-curation", "checked", timeout=TIMEOUT_MS)
            expect(alice.locator("#viewer")).to_have_attribute("data-busy", "false", timeout=TIMEOUT_MS)
            alice.locator(f"#nuclei-list button[data-label-id='{deleted}']").click()
            alice.wait_for_function(f"document.querySelector('#viewer').dataset.selected === '{deleted}'")
            alice.locator("#delete-apply").click()
            alice.wait_for_selector("#viewer[data-version='v2']", timeout=TIMEOUT_MS)

            # Her progress, on her queue and on the staff's list: the uncertain nuclei of v2.
            uncertain = alice.request.get(f"{live.url}/api/v1/assignments/").json()[0]["progress"]["uncertain"]
            assert uncertain > 1
            alice.goto(project)
            expect(alice.locator(".progress-text").first).to_have_text(f"1 of {uncertain} uncertain nuclei checked")
            ivy = page_of("ivy")
            ivy.goto(project)
            expect(ivy.locator(".progress-text").first).to_have_text(f"1 of {uncertain} uncertain nuclei checked")

            # ivy approves both; ada's training page counts them as training data.
            ivy.goto(f"{project}review/")
            items = ivy.locator("article.review-item")
            expect(items).to_have_count(2)
            for kind in ("Checked", "Delete"):
                with ivy.expect_navigation(timeout=TIMEOUT_MS):
                    items.filter(has=ivy.locator("h2", has_text=kind)).get_by_role("button", name="Approve").click()
            expect(items).to_have_count(0, timeout=TIMEOUT_MS)

            ada = page_of("ada")
            ada.goto(f"{project}training/")
            expect(ada.locator("main")).to_contain_text("2 approved corrections to train on")
            ada.get_by_label("Steps").fill("2")
            with ada.expect_navigation(timeout=TIMEOUT_MS):
                ada.get_by_role("button", name="Start retraining").click()
            ada.wait_for_function("document.getElementById('live-text').textContent.includes('succeeded')",
                                  timeout=JOB_TIMEOUT_MS)
            ada.reload()
            version = ada.locator("article.model-version[data-model-version='1']")
            expect(version).to_contain_text("trained on 2 corrections")
            trained = ada.request.get(f"{live.url}/api/v1/projects/{seed['project']}/model-versions/").json()
            listed = ada.request.get(f"{live.url}/api/v1/volumes/{seed['volume']}/corrections/").json()
            check_ids = [c["id"] for c in listed["results"] if c["type"] == "confirm"]
            assert len(check_ids) == 1
            assert check_ids[0] in trained[0]["correction_ids"] + trained[0]["held_out_ids"]

            # Promoted unscored: not without the box, then with the box and the question answered.
            promote = version.get_by_role("button", name="Promote unscored version 1")
            promote.click()
            expect(version.locator("[data-error]")).to_contain_text("Tick")
            asked: list[str] = []
            ada.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
            version.get_by_label("I promote it without scores").check()
            with ada.expect_navigation(timeout=TIMEOUT_MS):
                promote.click()
            assert asked and "was not scored" in asked[0], asked
            expect(ada.locator("article.model-version.is-default")).to_have_attribute("data-model-version", "1")
            ada.screenshot(path=shots / "training.png", full_page=True)

            # The viewer names it as the default; a new segmentation keeps alice's check.
            ada.goto(viewer)
            ada.wait_for_selector("#viewer[data-state='ready']", timeout=TIMEOUT_MS)
            assert "model version 1 of Nuclei 101, promoted" in ada.get_attribute("#job-model", "placeholder")
            _segment(ada)
            notice = ada.text_content("#job-curation-text")
            assert "v2 has 1 nucleus people checked and 1 deletion" in notice, notice
            assert "keeps them exactly" in notice and "1 assignment is still open" in notice, notice
            ada.get_by_role("button", name="Start segmentation").click()
            banner = _wait_job(ada)
            assert "It kept the 1 nucleus people made, changed or checked" in banner, banner
            ada.screenshot(path=shots / "kept.png")
            done = _judge(live, checked, deleted)
            assert done["version"] == "v3" and ada.get_attribute("#viewer", "data-version") == "v3"
            assert (done["kept"], done["from_scratch"], done["audit_from_scratch"]) == (1, False, False), done
            assert done["model"].startswith(trained[0]["name"]), done  # the promoted adapter ran
            assert done["same"], done  # the checked nucleus voxel for voxel
            assert done["deleted_place"] == 0 and done["filled"] > 1, done  # the model filled the rest
            ada.locator("#banner-close").click()

            # From scratch: the box ticked after the notice; nothing kept, the audit trail says so.
            _segment(ada)
            ada.locator("#job-from-scratch").check()
            ada.get_by_role("button", name="Start segmentation").click()
            banner = _wait_job(ada)
            assert "It kept" not in banner, banner
            done = _judge(live, checked, deleted)
            assert done["version"] == "v4" and (done["kept"], done["from_scratch"], done["audit_from_scratch"]) == (
                0, True, True), done
            assert done["audit_drops"]["label_version"] == "v3" and done["audit_drops"]["checked"] == 1, done
            ada.goto(f"{project}audit/")
            row = ada.locator("tr", has=ada.locator("code", has_text="segmentation_job.create")).first
            expect(row).to_contain_text("from_scratch True")
        finally:
            browser.close()
    assert not errors, errors
