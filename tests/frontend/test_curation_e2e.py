"""Curation in Debian's headless Chromium against the running app (tests/frontend/live.py):
alice checks a nucleus (the key ``y``: the queue marks it checked) and deletes another; ivy
rejects the deletion on the review page, which says the edit was taken out of the latest
labels, and the nucleus is back in them voxel for voxel; in the viewer, Start segmentation
first says what a new segmentation keeps, and starts nothing.

Screenshots go to var/test-artifacts/curation-e2e/ (git-ignored).
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in, write_generated_stack

TIMEOUT_MS = 20_000

ASSIGN = """
from django.contrib.auth import get_user_model
from annotation.models import Volume
from annotation.services import assignment_create
users = get_user_model().objects
volume = Volume.objects.get()
assignment_create(project=volume.project, volume=volume, student=users.get(username="alice"),
                  assigned_by=users.get(username="ivy"))
"""

SAME = """
import json
import numpy as np
from annotation.models import Volume
from annotation.stores import volume_store
store = volume_store(Volume.objects.get())
print(json.dumps(bool(np.array_equal(store.read_labels("v1"), store.read_labels(sys.argv[-1])))))
"""

# alice merges the two largest unchecked nuclei of the latest version, then checks the merged
# one (a later edit of the same nuclei). Prints the ids and versions as JSON.
MERGE_THEN_CHECK = """
import json
from django.contrib.auth import get_user_model
from annotation.models import LabelVersion, Nucleus, Volume
from annotation.services import correction_create
alice = get_user_model().objects.get(username="alice")
volume = Volume.objects.get()
head = LabelVersion.objects.filter(volume=volume).order_by("-number").first()
n, m = Nucleus.objects.of(head).filter(curation="").order_by("-volume_voxels")[:2]
merge = correction_create(volume=volume, user=alice, label_version=head.name,
                          edit={"correction_type": "merge", "nucleus_ids": [n.label_id, m.label_id]})
check = correction_create(volume=volume, user=alice, label_version=merge.result_version.name,
                          edit={"correction_type": "confirm", "nucleus_ids": [min(n.label_id, m.label_id)]})
print(json.dumps({"merge": merge.id, "check": check.id, "before": head.name, "after": merge.result_version.name}))
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("curation-e2e")
    write_generated_stack(work, (6, 128, 128), seed=3)
    live = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})  # nothing is segmented here
    with live.running(prepare=ASSIGN, username="ada", password=PASSWORD,
                      members=[["ivy", "instructor"], ["alice", "student"]],
                      project="Nuclei 101", tiff=str(work / "stack.tif"), name="generated stack",
                      voxel_size=[2.0, 0.5, 0.5], labels=str(work / "labels.raw")) as seed:
        yield live, seed


def test_it_checks_rejects_and_keeps_in_the_browser(app):
    from playwright.sync_api import expect, sync_playwright

    live, seed = app
    shots = ARTIFACTS / "curation-e2e"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    errors: list[str] = []
    viewer = f"{live.url}/volumes/{seed['volume']}/"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            alice = browser.new_page(viewport={"width": 1400, "height": 900})
            alice.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(alice, live.url, "alice")
            alice.goto(viewer)
            alice.wait_for_selector("#viewer[data-state='ready']", timeout=TIMEOUT_MS)
            queue = alice.locator("#nuclei-list button.nucleus")
            expect(queue.first).to_be_visible(timeout=TIMEOUT_MS)
            checked = int(queue.nth(0).get_attribute("data-label-id"))
            deleted = int(queue.nth(1).get_attribute("data-label-id"))
            queue.nth(0).click()
            alice.wait_for_function(f"document.querySelector('#viewer').dataset.selected === '{checked}'")
            alice.keyboard.press("y")
            expect(alice.locator("#edit-log li[data-type='confirm']").first).to_have_text(
                f"checked #{checked} (v1)", timeout=TIMEOUT_MS)
            mark = alice.locator(f"#nuclei-list button[data-label-id='{checked}']")
            expect(mark).to_have_attribute("data-curation", "checked", timeout=TIMEOUT_MS)
            # The mark shows before the check's version has finished loading; an undo pressed
            # meanwhile is refused ("wait for the edit in progress"), as a person would see.
            expect(alice.locator("#viewer")).to_have_attribute("data-busy", "false", timeout=TIMEOUT_MS)
            alice.keyboard.press("Control+z")  # a slip: the check is withdrawn, then made again
            expect(alice.locator("#edit-log li[data-type='confirm']")).to_have_text(
                f"checked #{checked} (v1) · withdrawn", timeout=TIMEOUT_MS)
            expect(mark).to_have_attribute("data-curation", "", timeout=TIMEOUT_MS)
            alice.keyboard.press("y")
            expect(mark).to_have_attribute("data-curation", "checked", timeout=TIMEOUT_MS)
            expect(mark).to_contain_text("checked")
            expect(alice.locator("#selection-text")).to_contain_text("checked")
            alice.locator(f"#nuclei-list button[data-label-id='{deleted}']").click()
            alice.wait_for_function(f"document.querySelector('#viewer').dataset.selected === '{deleted}'")
            alice.locator("#delete-apply").click()
            alice.wait_for_selector("#viewer[data-version='v2']", timeout=TIMEOUT_MS)
            alice.screenshot(path=shots / "alice-viewer.png")

            ivy = browser.new_page(viewport={"width": 1200, "height": 900})
            ivy.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(ivy, live.url, "ivy")
            ivy.goto(f"{live.url}/projects/{seed['project']}/review/")
            items = ivy.locator("article.review-item")
            expect(items).to_have_count(2)
            deletion = items.filter(has=ivy.locator("h2", has_text="Delete"))
            expect(deletion.locator("input[name='labels'][value='revert']")).to_be_checked()
            deletion.locator("textarea").fill("that nucleus is real")
            deletion.get_by_role("button", name="Reject").click()
            expect(items).to_have_count(1, timeout=TIMEOUT_MS)
            verdicts = ivy.locator("#verdicts")
            expect(verdicts).to_contain_text("taken out of the latest labels in v3")
            ivy.screenshot(path=shots / "review.png", full_page=True)
            back = ivy.request.get(f"{live.url}/api/v1/volumes/{seed['volume']}/label-versions/v3/nuclei/"
                                   f"?label_id_min={deleted}&label_id_max={deleted}").json()
            assert back["count"] == 1
            same = live.manage("shell", "-c", SAME.replace("sys.argv[-1]", '"v3"')).strip().splitlines()[-1]
            assert json.loads(same) is True  # v3 is v1 again: the deleted nucleus back voxel for voxel

            ivy.goto(viewer)
            ivy.wait_for_selector("#viewer[data-state='ready']", timeout=TIMEOUT_MS)
            ivy.locator("#job-start").click()
            notice = ivy.locator("#job-curation")
            expect(notice).to_be_visible(timeout=TIMEOUT_MS)
            expect(notice).to_contain_text("v3 has 1 nucleus people checked")
            expect(notice).to_contain_text("1 assignment is still open")
            expect(ivy.locator("#job-status")).to_have_attribute("data-status", "none")  # nothing started yet
            ivy.screenshot(path=shots / "start.png")
        finally:
            browser.close()
    assert not errors, errors


def test_it_asks_the_reviewer_when_later_edits_changed_the_same_nuclei(app):
    """Runs after the test above, on the labels it left."""
    from playwright.sync_api import expect, sync_playwright

    live, seed = app
    made = json.loads(live.manage("shell", "-c", MERGE_THEN_CHECK).strip().splitlines()[-1])
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            ivy = browser.new_page(viewport={"width": 1200, "height": 900})
            ivy.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(ivy, live.url, "ivy")
            ivy.goto(f"{live.url}/projects/{seed['project']}/review/")
            merge = ivy.locator(f"article.review-item[data-correction='{made['merge']}']")
            expect(merge.locator("[data-later]")).to_have_attribute("data-later", str(made["check"]))
            merge.locator("textarea").fill("those are two nuclei")
            merge.locator(".verdict").get_by_role("button", name="Reject").click()  # "lose this edit", the default
            error = merge.locator(".verdict [data-error]")
            expect(error).to_be_visible(timeout=TIMEOUT_MS)
            expect(error).to_contain_text(f"#{made['check']} confirm")
            expect(error).to_contain_text("revert anyway (their changes to these nuclei are lost, the checks "
                                          "withdrawn)")
            assert merge.get_attribute("data-correction") == str(made["merge"])  # still waiting: nothing done
            anyway = merge.locator("label", has=ivy.locator("input[name='labels'][value='revert_anyway']"))
            expect(anyway).to_contain_text("later checks of its nuclei are withdrawn with it")
            anyway.locator("input").check()
            with ivy.expect_navigation(timeout=TIMEOUT_MS):
                merge.locator(".verdict").get_by_role("button", name="Reject").click()
            verdict = ivy.locator(f"#verdicts li[data-correction='{made['merge']}']")
            expect(verdict).to_have_attribute("data-review-labels", "reverted")
            expect(verdict).to_contain_text("taken out of the latest labels in")
            reverted = verdict.text_content().rsplit(" ", 1)[-1].strip()
            same = live.manage("shell", "-c", SAME.replace('"v1"', f'"{made["before"]}"')
                               .replace("sys.argv[-1]", f'"{reverted}"')).strip().splitlines()[-1]
            assert json.loads(same) is True  # both nuclei back as they were before the merge

            # alice's check of the merged nucleus went with it: nothing of it waits for review.
            expect(ivy.locator(f"article.review-item[data-correction='{made['check']}']")).to_have_count(0)
            # Her first check (the test above) is rejected keeping the labels: the mark stays.
            first = ivy.locator("article.review-item", has=ivy.locator("h2", has_text="Checked"))
            expect(first).to_have_count(1)
            first_id = first.get_attribute("data-correction")
            first.locator("textarea").fill("not sure it is one nucleus")
            first.locator("input[name='labels'][value='keep']").check()
            with ivy.expect_navigation(timeout=TIMEOUT_MS):
                first.locator(".verdict").get_by_role("button", name="Reject").click()
            kept = ivy.locator(f"#verdicts li[data-correction='{first_id}']")
            expect(kept).to_have_attribute("data-review-labels", "kept")
            expect(kept).to_contain_text("the labels kept as they were")
            ivy.screenshot(path=ARTIFACTS / "curation-e2e" / "conflict.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
