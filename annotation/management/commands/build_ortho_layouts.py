"""``manage.py build_ortho_layouts [--volume ID ...]``: give volumes stored before the XZ / YZ
chunk layouts existed their layouts, so their XZ / YZ tiles cost what an XY tile costs.

Every volume (or only those named) and each of its label versions that lack the layouts get
them; those that have them are left alone, so the command can be run again at any time, and a
run that is stopped leaves nothing half-written that a reader would use. Prints one line per
volume. A running server reads the new layouts once it is restarted.
"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Write the XZ/YZ chunk layouts for stored volumes and label versions that lack them."

    def add_arguments(self, parser):
        parser.add_argument("--volume", type=int, action="append", metavar="ID",
                            help="only this volume (repeatable); default: every volume")

    def handle(self, *args, **options):
        from annotation.models import Volume
        from annotation.storage import StorageError, VolumeStore

        volumes = Volume.objects.order_by("id")
        if options["volume"]:
            volumes = volumes.filter(id__in=options["volume"])
            missing = sorted(set(options["volume"]) - set(volumes.values_list("id", flat=True)))
            if missing:
                raise CommandError(f"no volume with id {', '.join(map(str, missing))}")
        for volume in volumes:
            try:
                built = VolumeStore.open(volume.storage_path).build_ortho_layouts()
            except (StorageError, OSError) as exc:
                raise CommandError(f"volume {volume.id} ({volume.name!r}): {exc}") from None
            what = ", ".join(built) if built else "nothing to do"
            self.stdout.write(f"volume {volume.id} ({volume.name}): {what}")
