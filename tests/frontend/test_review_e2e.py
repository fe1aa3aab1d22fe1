"""The review page in Debian's headless Chromium against the running app (tests/frontend/live.py):
ivy, the instructor, opens the queue, sees each correction's before and after drawn from the
tiles, tries to reject without a comment (refused in the page, nothing sent), rejects with one and
approves the other; alice then finds the verdicts and the comment on her project page.

Screenshots go to var/test-artifacts/review-e2e/ (git-ignored). Needs /usr/bin/chromium, as the
viewer's browser test does (`make test` installs it).
"""

from __future__ import annotations

import shutil

import pytest

from tests.frontend.live import ARTIFACTS, PASSWORD, LiveApp, launch_chromium, sign_in, write_generated_stack

TIMEOUT_MS = 20_000

# Run in the server's environment after the seed: alice trims the largest nucleus and deletes the
# second largest, each a correction waiting for review.
CORRECTIONS = """
from django.contrib.auth import get_user_model
from annotation.models import Assignment, Nucleus, Volume
from annotation.services import assignment_create, correction_create
users = get_user_model().objects
ivy, alice = users.get(username="ivy"), users.get(username="alice")
volume = Volume.objects.get()
assignment_create(project=volume.project, volume=volume, student=alice, assigned_by=ivy)
first, second = Nucleus.objects.of(volume.label_versions.get(name="v1")).order_by("-volume_voxels")[:2]
z = round(first.centroid_z)
correction_create(volume=volume, user=alice, label_version="v1", edit={
    "correction_type": "modify", "nucleus_ids": [first.label_id], "z": z,
    "stroke": [[float(first.y_min + 1), float(first.centroid_x)]], "radius": 3, "erase": True})
correction_create(volume=volume, user=alice, label_version="v2",
                  edit={"correction_type": "delete", "nucleus_ids": [second.label_id]})
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    work = tmp_path_factory.mktemp("review-e2e")
    write_generated_stack(work, (6, 128, 128), seed=3)
    live = LiveApp(work, extra_env={"EZQUANT_EMBEDDED_WORKER": "0"})  # no jobs here
    with live.running(prepare=CORRECTIONS, username="ada", password=PASSWORD,
                      members=[["ivy", "instructor"], ["alice", "student"]],
                      project="Nuclei 101", tiff=str(work / "stack.tif"), name="generated stack",
                      voxel_size=[2.0, 0.5, 0.5], labels=str(work / "labels.raw")) as seed:
        yield live, seed


def test_it_reviews_alices_corrections_in_the_browser(app):
    from playwright.sync_api import expect, sync_playwright

    live, seed = app
    shots = ARTIFACTS / "review-e2e"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            sign_in(page, live.url, "ivy")
            page.goto(f"{live.url}/projects/{seed['project']}/review/")
            items = page.locator("article.review-item")
            expect(items).to_have_count(2)
            page.wait_for_function("[...document.querySelectorAll('canvas.thumb')]"
                                   ".every((c) => c.dataset.state === 'drawn')", timeout=TIMEOUT_MS)
            # Something was drawn: the thumbnails are not one flat colour.
            spread = page.evaluate("""() => [...document.querySelectorAll('canvas.thumb')].map((c) => {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let lo = 255, hi = 0;
                for (let i = 0; i < d.length; i += 4) { lo = Math.min(lo, d[i]); hi = Math.max(hi, d[i]); }
                return hi - lo; })""")
            assert len(spread) == 4 and min(spread) > 50, spread
            page.screenshot(path=shots / "queue.png", full_page=True)

            first = items.nth(0)
            first.get_by_role("button", name="Reject").click()
            expect(first.locator("[data-error]").first).to_have_text(
                "Say why it is rejected: the student sees the comment.")
            first.locator("textarea").fill("you cut into the next nucleus")
            first.get_by_role("button", name="Reject").click()
            expect(items).to_have_count(1, timeout=TIMEOUT_MS)  # the page reloaded without it
            items.nth(0).get_by_role("button", name="Approve").click()
            expect(page.get_by_text("Nothing is waiting for review")).to_be_visible(timeout=TIMEOUT_MS)

            alice = browser.new_page(viewport={"width": 1200, "height": 900})
            sign_in(alice, live.url, "alice")
            alice.goto(f"{live.url}/projects/{seed['project']}/")
            corrections = alice.locator("#corrections")
            expect(corrections).to_contain_text("Rejected")
            expect(corrections).to_contain_text("you cut into the next nucleus")
            expect(corrections).to_contain_text("Approved")
            alice.screenshot(path=shots / "alice.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
