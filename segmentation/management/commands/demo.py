"""``manage.py demo``: a demo project to try the application with (``make run`` runs it).

Creates, once: the users ``admin`` (also a Django superuser, for /admin/), ``instructor``,
``student`` and ``student2`` with generated passwords; the project "Demo lab" with them in those
roles; a generated 2D image and a generated 3D stack (``segmentation.core.synthetic``), each
segmented by the shipped model through a real segmentation job, so there are nuclei to review;
and an assignment of each volume to a student. Later runs change nothing and print the same
sign-in lines. The passwords are kept in ``EZQUANT_DATA_DIR/demo-credentials.json`` (readable by
its owner only): a demo for one machine, not accounts for a shared server.
"""

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

PROJECT = "Demo lab"
USERS = (("admin", "admin"), ("instructor", "instructor"), ("student", "student"), ("student2", "student"))


class Command(BaseCommand):
    help = "Create the demo project, volumes and users (once) and print how to sign in as each role."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the app will answer")

    def handle(self, *args, url, **options):
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from annotation.selectors import project_find

        path = Path(settings.EZQUANT_DATA_DIR) / "demo-credentials.json"
        if project_find(name=PROJECT) is not None and path.exists():
            credentials = json.loads(path.read_text())
        elif project_find(name=PROJECT) is not None:
            # Not an error for `make run`: the app starts, the demo is just not re-made.
            self.stderr.write(f"the demo project {PROJECT!r} exists but {path} is gone: reset the demo users' "
                              "passwords in /admin/, or rename the project to make a new demo")
            return
        else:
            taken = [name for name, _ in USERS if get_user_model().objects.filter(username=name).exists()]
            if taken:
                self.stderr.write(f"no demo project: the users {', '.join(taken)} exist already and the demo needs "
                                  "accounts of its own")
                return
            credentials = self._create(path)
        self.stdout.write(f"Demo project {PROJECT!r}: sign in at {url}/accounts/login/ as")
        for username, role in USERS:
            self.stdout.write(f"  {role:<10} {username:<10} password {credentials[username]}")

    def _create(self, path: Path) -> dict[str, str]:
        import secrets
        import tempfile
        from datetime import date, timedelta

        import numpy as np
        import tifffile
        from django.contrib.auth import get_user_model
        from django.db import transaction

        from annotation.services import assignment_create, membership_add, project_create, volume_import
        from segmentation.core import synthetic
        from segmentation.services import segmentation_job_create, segmentation_job_run

        users = get_user_model()
        credentials = {name: secrets.token_urlsafe(9) for name, _ in USERS}
        with transaction.atomic():
            accounts = {}
            for name, role in USERS:
                make = users.objects.create_superuser if role == "admin" else users.objects.create_user
                accounts[name] = make(name, email=f"{name}@demo.invalid", password=credentials[name])
            project = project_create(name=PROJECT, user=accounts["admin"],
                                     description="Generated fluorescence nuclei to try segmentation and review on.")
            for name, role in USERS[1:]:
                membership_add(project=project, user=accounts[name], role=role, added_by=accounts["admin"])
        images = {
            "Generated 2D nuclei": (synthetic.generate_2d(shape=(512, 512), seed=101).image, (0.5, 0.5), {}),
            "Generated 3D stack": (synthetic.generate_3d(shape=(24, 256, 256), seed=102).image, (2.0, 0.5, 0.5),
                                   {"do_3d": True, "use_3d_backend": "hybrid2d3d",
                                    "overlap_measure": "intersection_over_smaller", "min_overlap_ratio": 0.7}),
        }
        volumes = []
        with tempfile.TemporaryDirectory() as folder:
            for index, (name, (image, voxel_size, params)) in enumerate(images.items()):
                tif = Path(folder) / f"demo-{index}.tif"
                tifffile.imwrite(tif, np.clip(np.round(image), 0, 65535).astype(np.uint16))
                volume = volume_import(project=project, src_path=tif, name=name, user=accounts["instructor"],
                                       voxel_size=voxel_size)
                job = segmentation_job_create(volume=volume, user=accounts["instructor"],
                                              params={**params, "voxel_size": list(voxel_size)})
                self.stdout.write(f"segmenting {name} ...")
                if segmentation_job_run(job_id=job.id) != "succeeded":
                    job.refresh_from_db()
                    raise CommandError(f"segmenting the demo volume {name!r} failed: {job.error}")
                volumes.append(volume)
        due = date.today() + timedelta(days=7)
        for volume, student in zip(volumes, ("student", "student2"), strict=True):
            assignment_create(project=project, volume=volume, student=accounts[student],
                              assigned_by=accounts["instructor"], due=due,
                              note="Check the most uncertain nuclei first; split, merge or delete what is wrong.")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(credentials, indent=1))
        os.chmod(path, 0o600)
        return credentials
