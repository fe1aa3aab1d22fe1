"""``manage.py materialise_label_versions [--volume ID ...]``: make the label versions that edits
stored as deltas (the chunks they changed and a manifest, see ``annotation.storage.manifest``)
complete in place, so that any zarr or OME-Zarr reader pointed at the data folder opens them.

The app reads deltas as they are and exports complete copies; this is for reading the stored
volumes with other tools. Each version made complete costs one hard link per chunk of the
volume (what every edit cost before deltas) and is then listed in the volume's NGFF
``labels``. Values never change; a server may keep running; a stopped run is finished by the
next. Prints one line per volume.
"""

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Make delta label versions complete in place, for OME-Zarr readers of the data folder."

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
                done = VolumeStore.open(volume.storage_path).materialise_label_versions()
            except (StorageError, OSError) as exc:
                raise CommandError(f"volume {volume.id} ({volume.name!r}): {exc}") from None
            what = ", ".join(done) if done else "nothing to do"
            self.stdout.write(f"volume {volume.id} ({volume.name}): {what}")
