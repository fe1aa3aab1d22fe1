"""What the commands that rework stored volumes share: ``--volume ID`` (repeatable, default every
volume), one store operation per volume, one line printed per volume, one-line errors.

Not a command itself (Django skips modules whose name starts with ``_``).
"""

from django.core.management.base import BaseCommand, CommandError


class EachVolumeCommand(BaseCommand):
    """Calls the :class:`~annotation.storage.VolumeStore` method named by ``operation`` on the
    store of every volume named (or all), in id order; it returns the names of what it did
    (empty: nothing to do).
    """

    operation: str  # a VolumeStore method, set by each command

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
                done = getattr(VolumeStore.open(volume.storage_path), self.operation)()
            except (StorageError, OSError) as exc:
                raise CommandError(f"volume {volume.id} ({volume.name!r}): {exc}") from None
            what = ", ".join(done) if done else "nothing to do"
            self.stdout.write(f"volume {volume.id} ({volume.name}): {what}")
