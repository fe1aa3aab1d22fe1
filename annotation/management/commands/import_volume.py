"""``manage.py import_volume PATH --project NAME``: import a TIFF / OME-TIFF / OME-Zarr as a volume.

Prints the new volume's id on stdout. Every mistake (a missing file, an unknown project or
user, an image that cannot be imported, a bad voxel size) ends the command with exit status 1
and one line saying what is wrong; nothing is left behind.
"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Import a TIFF, OME-TIFF or OME-Zarr image into a project as a new volume; prints its id."

    def add_arguments(self, parser):
        parser.add_argument("path", help="a TIFF / OME-TIFF file or an OME-Zarr image directory")
        parser.add_argument("--project", required=True, help="name of an existing project")
        parser.add_argument("--name", default="", help="name of the volume (default: the file name)")
        parser.add_argument("--voxel-size", nargs=3, type=float, metavar=("Z", "Y", "X"),
                            help="micrometres; overrides what the file says")
        parser.add_argument("--channel", type=int, help="the channel to import, for a multi-channel image")
        parser.add_argument("--user", help="username recorded as the volume's creator")

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model

        from annotation.models import Project
        from annotation.services import volume_import
        from annotation.storage import StorageError
        from ezquant_web.errors import ApplicationError

        project = Project.objects.filter(name=options["project"]).first()
        if project is None:
            raise CommandError(f"no project named {options['project']!r}")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user named {options['user']!r}")
        try:
            volume = volume_import(project=project, src_path=options["path"], name=options["name"], user=user,
                                   channel=options["channel"], voxel_size=options["voxel_size"])
        except (StorageError, ApplicationError) as exc:
            raise CommandError((str(exc).strip().splitlines() or [type(exc).__name__])[0]) from None
        self.stdout.write(str(volume.id))
