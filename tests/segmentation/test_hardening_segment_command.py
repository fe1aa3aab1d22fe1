"""``manage.py segment`` on an input too large for the machine (issue 14, part 2): one clear
line and exit status 1, decided from the TIFF's header, never a MemoryError traceback."""

import subprocess
import sys
from pathlib import Path

import tifffile

ROOT = Path(__file__).resolve().parents[2]


def _sparse_tiff(path, shape):
    """A TIFF whose header says ``shape`` (uint8) with no pixel data written: a sparse file of
    hundreds of gigabytes that takes a few kilobytes of disk."""
    tifffile.imwrite(path, shape=shape, dtype="uint8", bigtiff=True, photometric="minisblack")
    return path


def test_it_refuses_an_image_too_large_for_this_machine_in_one_line(tmp_path):
    source = _sparse_tiff(tmp_path / "huge.tif", (256, 32768, 32768))  # 275 GB of voxels
    target = tmp_path / "labels.tif"
    done = subprocess.run([sys.executable, "manage.py", "segment", str(source), str(target)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "too large for this machine" in lines[0] and "256 x 32768 x 32768 uint8" in lines[0]
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert not target.exists()


def test_the_estimate_counts_twenty_bytes_a_voxel_plus_the_image(tmp_path):
    import pytest
    from django.core.management.base import CommandError

    from segmentation import resources
    from segmentation.management.commands import segment

    available = resources.available_memory()
    assert available is not None and available > 0
    voxels = 2 * available // 21  # twice what fits at 20 + 1 bytes a voxel (uint8): margin for other processes
    with pytest.raises(CommandError, match="too large for this machine"):
        segment._check_memory(tmp_path / "x.tif", (voxels,), "uint8")
    segment._check_memory(tmp_path / "x.tif", (available // 64,), "uint8")
