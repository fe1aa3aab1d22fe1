"""``manage.py segment``: bad input ends in one line and no file; good input in a label TIFF."""

import io
import json

import numpy as np
import pytest
import tifffile
from django.core.management import call_command
from django.core.management.base import CommandError


def _tiff(path, array, **kwargs):
    tifffile.imwrite(path, array, photometric="minisblack", **kwargs)
    return path


def _blobs(shape=(128, 128), centres=((32, 32), (32, 96), (96, 40), (92, 94)), sigma=6.0, seed=0):
    """Bright Gaussian nuclei on a dim, noisy background, as uint16 like a camera's."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    for cy, cx in centres:
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    rng = np.random.default_rng(seed)
    photons = rng.poisson(100 + 2000 * image)
    return photons.astype(np.uint16), centres


def _run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command("segment", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _real(tmp_path):
    return _tiff(tmp_path / "real.tif", _blobs()[0])


def _with_value(tmp_path, value):
    image = _blobs()[0].astype(np.float32)
    image[5, 5] = value
    return _tiff(tmp_path / "odd.tif", image)


def _truncated(tmp_path):
    path = tmp_path / "truncated.tif"
    path.write_bytes(_real(tmp_path).read_bytes()[:200])
    return path


def _text(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("these are my notes, not an image\n")
    return path


def _line(tmp_path):
    path = tmp_path / "line.tif"
    tifffile.imwrite(path, np.arange(64, dtype=np.uint16))  # minisblack refuses one axis
    return path


def _rgb(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8), photometric="rgb")
    return path


def _empty(tmp_path):
    with pytest.warns(UserWarning, match="zero-size"):
        return _tiff(tmp_path / "empty.tif", np.zeros((0, 16), np.uint16))


# case: (arguments after the output path, given tmp_path; a word the message must contain)
BAD_INPUTS = {
    "missing file": (lambda p: [p / "nope.tif"], "not found"),
    "a folder": (lambda p: [p], "not a file"),
    "not a TIFF": (lambda p: [_text(p)], "cannot read"),
    "truncated TIFF": (lambda p: [_truncated(p)], "cannot read"),
    "1D": (lambda p: [_line(p)], "1 axes"),
    "4D": (lambda p: [_tiff(p / "czyx.tif", np.zeros((2, 3, 16, 16), np.uint16))], "4 axes"),
    "RGB": (lambda p: [_rgb(p)], "RGB"),
    "empty": (lambda p: [_empty(p)], "empty"),
    "NaN": (lambda p: [_with_value(p, np.nan)], "NaN"),
    "infinity": (lambda p: [_with_value(p, np.inf)], "infinite"),
    "zero voxel size": (lambda p: [_real(p), "--voxel-size", "0", "0"], "positive"),
    "negative voxel size": (lambda p: [_real(p), "--voxel-size", "-1", "-1"], "positive"),
    "wrong voxel size count": (lambda p: [_real(p), "--voxel-size", "2", "0.5", "0.5"], "voxel_size"),
    "unknown backend": (lambda p: [_real(p), "--backend", "magic"], "backend"),
    "unknown restoration": (lambda p: [_real(p), "--restoration", "sharpen"], "restoration"),
    "zero diameter": (lambda p: [_real(p), "--diameter", "0"], "diameter"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_it_refuses_bad_input_in_one_line_and_writes_nothing(tmp_path, case):
    make_args, expected = BAD_INPUTS[case]
    args = make_args(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CommandError) as raised:
        _run(args[0], out_dir / "labels.tif", *args[1:])
    message = str(raised.value)
    assert "\n" not in message and message.strip()
    assert expected.lower() in message.lower()
    assert list(out_dir.iterdir()) == []  # no output, no temporary file left behind


def test_it_refuses_an_output_folder_that_does_not_exist(tmp_path):
    image, _ = _blobs()
    with pytest.raises(CommandError, match="output folder does not exist"):
        _run(_tiff(tmp_path / "in.tif", image), tmp_path / "missing" / "labels.tif")


def test_it_segments_a_2d_image_into_a_uint32_label_tiff(tmp_path):
    image, centres = _blobs()
    source = _tiff(tmp_path / "nuclei.tif", image)
    target = tmp_path / "labels.tif"
    target.write_bytes(b"an older result")  # replaced whole, never mixed with the new one

    out, err = _run(source, target, "--diameter", "28")

    info = json.loads(out.strip().splitlines()[-1])
    labels = tifffile.imread(target)
    assert labels.dtype == np.uint32 and labels.shape == image.shape
    assert info["nucleus_count"] == len(np.unique(labels)) - 1
    found = {labels[cy, cx] for cy, cx in centres} - {0}
    assert len(found) >= 3, f"nuclei at {len(found)} of {len(centres)} centres"
    assert "100%" in err  # the progress bar reached its end on stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.tif", "nuclei.tif"]
    assert "restoration_requested" not in info  # a 2D image keeps the guide's none: nothing measured


def test_it_segments_a_3d_stack_with_the_hybrid_backend(tmp_path):
    plane, centres = _blobs(shape=(64, 64), centres=((20, 20), (44, 44)), sigma=5.0)
    weights = np.array([0.3, 0.8, 1.0, 0.8, 0.3])[:, None, None]
    stack = (100 + (plane.astype(float) - 100) * weights).astype(np.uint16)
    target = tmp_path / "labels.tif"

    out, _ = _run(_tiff(tmp_path / "stack.tif", stack), target, "--diameter", "24",
                  "--backend", "hybrid2d3d", "--voxel-size", "2", "0.5", "0.5")

    info = json.loads(out.strip().splitlines()[-1])
    labels = tifffile.imread(target)
    assert labels.dtype == np.uint32 and labels.shape == stack.shape
    assert info["backend"] == "hybrid2d3d"
    assert info["nucleus_count"] == len(np.unique(labels)) - 1
    # A stack is restored with auto unless told: this clean one measures neither noisy nor
    # (for a stack) anything auto restores, so nothing is applied.
    assert info["restoration_requested"] == "auto" and info["restoration_mode"] == "none"


def test_it_leaves_the_old_output_whole_when_writing_is_interrupted(tmp_path, monkeypatch):
    from segmentation.management.commands import segment

    target = tmp_path / "labels.tif"
    target.write_bytes(b"an older result")

    def interrupted(path, data, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00 half a TIFF")
        raise KeyboardInterrupt

    monkeypatch.setattr(segment.tifffile, "imwrite", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segment.write_labels(target, np.ones((8, 8), np.uint32))
    assert target.read_bytes() == b"an older result"
    assert [p.name for p in tmp_path.iterdir()] == ["labels.tif"]


def test_it_writes_labels_readable_like_any_new_file(tmp_path):
    import os

    from segmentation.management.commands.segment import write_labels

    labels = np.arange(24, dtype=np.int64).reshape(2, 3, 4)
    write_labels(tmp_path / "labels.tif", labels)
    back = tifffile.imread(tmp_path / "labels.tif")
    assert back.dtype == np.uint32 and np.array_equal(back, labels)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "labels.tif").stat().st_mode & 0o777 == 0o666 & ~umask


def test_it_segments_an_image_above_the_threshold_block_by_block(tmp_path, settings):
    settings.EZQUANT_DATA_DIR = tmp_path / "data"
    settings.EZQUANT_BLOCK_VOXELS = 128 * 120  # two blocks: cores of 128 x 64 pixels, 28-pixel margins
    image, centres = _blobs()
    source = _tiff(tmp_path / "nuclei.tif", image)
    target = tmp_path / "labels.tif"

    out, err = _run(source, target, "--diameter", "28")

    info = json.loads(out.strip().splitlines()[-1])
    labels = tifffile.imread(target)
    assert labels.dtype == np.uint32 and labels.shape == image.shape
    assert info["blockwise"]["blocks"] == 2 and info["nucleus_count"] == len(np.unique(labels)) - 1
    found = {labels[cy, cx] for cy, cx in centres} - {0}
    assert len(found) >= 3, f"nuclei at {len(found)} of {len(centres)} centres"
    assert "100%" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "labels.tif", "nuclei.tif"]
    assert not list((tmp_path / "data" / "tmp").iterdir())
