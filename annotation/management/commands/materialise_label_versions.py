"""``manage.py materialise_label_versions [--volume ID ...]``: make the label versions that edits
stored as deltas (the chunks they changed and a manifest, see ``annotation.storage.manifest``)
complete in place, so that any zarr or OME-Zarr reader pointed at the data folder opens them.

The app reads deltas as they are and exports complete copies; this is for reading the stored
volumes with other tools. Each version made complete costs one hard link per chunk of the
volume (what every edit cost before deltas) and is then listed in the volume's NGFF
``labels``. Values never change; a server may keep running; a stopped run is finished by the
next. Prints one line per volume.
"""

from ._each_volume import EachVolumeCommand


class Command(EachVolumeCommand):
    help = "Make delta label versions complete in place, for OME-Zarr readers of the data folder."
    operation = "materialise_label_versions"
