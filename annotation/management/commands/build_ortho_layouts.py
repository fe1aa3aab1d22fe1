"""``manage.py build_ortho_layouts [--volume ID ...]``: give volumes stored before the XZ / YZ
chunk layouts existed their layouts, so their XZ / YZ tiles cost what an XY tile costs.

Every volume (or only those named) and each of its label versions that lack the layouts get
them; those that have them are left alone, so the command can be run again at any time, and a
run that is stopped leaves nothing half-written that a reader would use. Prints one line per
volume. A running server reads the new layouts once it is restarted.
"""

from ._each_volume import EachVolumeCommand


class Command(EachVolumeCommand):
    help = "Write the XZ/YZ chunk layouts for stored volumes and label versions that lack them."
    operation = "build_ortho_layouts"
