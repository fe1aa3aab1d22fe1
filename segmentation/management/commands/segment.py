"""``manage.py segment INPUT.tif OUTPUT.tif``: segment the nuclei of one TIFF from the shell.

The output is a uint32 label TIFF of the input's shape (0 = background). A progress bar goes
to stderr; the last line on stdout is the engine's ``info`` as JSON, for scripts to parse.
Every mistake a user can make ends the command with a one-line message and no output file.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from segmentation.core.params import DEFAULT_3D_BACKEND, DEFAULT_3D_RESTORATION, default_restoration


def _json_default(value):
    """Make numpy scalars and arrays, and paths, JSON-serialisable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _restoration(options: dict, ndim: int) -> str:
    """The restoration asked for, else the image's default (``params.default_restoration``)."""
    return options["restoration"] if options["restoration"] is not None else default_restoration(ndim)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_memory(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, from the file's header, an image this machine cannot segment."""
    from segmentation.resources import too_large_message

    message = too_large_message(str(path), shape, dtype)
    if message is not None:
        raise CommandError(message)


def read_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and type of a 2D (Y, X) or 3D (Z, Y, X) single-channel TIFF, from its header
    alone, or raise CommandError."""
    if not path.exists():
        raise CommandError(f"input file not found: {path}")
    if not path.is_file():
        raise CommandError(f"input is not a file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise CommandError(f"{path} holds no image")
            series = tif.series[0]
            shape, dtype, axes = tuple(series.shape), np.dtype(series.dtype), series.axes
    except CommandError:
        raise
    except Exception as exc:  # tifffile raises many types for a damaged or foreign file
        raise CommandError(f"cannot read {path} as a TIFF image: {_first_line(exc)}") from exc
    if "S" in axes:
        raise CommandError(f"{path} is a colour (RGB) image (axes {axes}); save one channel as greyscale")
    if len(shape) not in (2, 3):
        raise CommandError(f"{path} has {len(shape)} axes of shape {shape}; expected 2D (Y, X) or 3D (Z, Y, X)")
    return shape, dtype


class TiffPlanes:
    """A (Z, Y, X) TIFF read a few planes at a time: ``planes[z0:z1, y0:y1, x0:x1]`` decodes
    planes z0..z1 only. What a block of a blockwise run reads; picklable (its path travels)."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype):
        self.path = str(path)
        self.shape = tuple(shape) if len(shape) == 3 else (1, *shape)
        self.dtype = np.dtype(dtype)

    def __getitem__(self, index) -> np.ndarray:
        zs, ys, xs = index if isinstance(index, tuple) and len(index) == 3 else (index, slice(None), slice(None))
        if isinstance(zs, (int, np.integer)):
            return self[slice(int(zs), int(zs) + 1), ys, xs][0]
        planes = range(*zs.indices(self.shape[0]))
        with tifffile.TiffFile(self.path) as tif:
            series = tif.series[0]
            return np.stack([series.asarray(key=z)[ys, xs] for z in planes]) if planes else \
                np.zeros((0, *self.shape[1:]), self.dtype)[:, ys, xs]


def write_label_planes(path: Path, plane_of, shape: tuple[int, ...]) -> None:
    """Write a uint32 label TIFF of ``shape`` whose plane ``z`` is ``plane_of(z)``, a plane at a
    time, atomically (as :func:`write_labels`)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        planes = (np.asarray(plane_of(z), np.uint32) for z in range(shape[0] if len(shape) == 3 else 1))
        tifffile.imwrite(tmp, data=planes, shape=tuple(shape), dtype=np.uint32, photometric="minisblack",
                         compression="zlib", metadata={"axes": "ZYX" if len(shape) == 3 else "YX"})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_image(path: Path) -> np.ndarray:
    """Read a 2D (Y, X) or 3D (Z, Y, X) single-channel TIFF, or raise CommandError.

    Shape and type are judged from the header first: an image this machine has not the
    memory to segment is refused before any pixel is decoded."""
    shape, dtype = read_header(path)
    _check_memory(path, shape, dtype)
    try:
        with tifffile.TiffFile(path) as tif:
            return tif.series[0].asarray()
    except Exception as exc:  # tifffile raises many types for a damaged or foreign file
        raise CommandError(f"cannot read {path} as a TIFF image: {_first_line(exc)}") from exc


def write_labels(path: Path, labels: np.ndarray) -> None:
    """Write ``labels`` as a uint32 TIFF, atomically.

    The TIFF goes to a temporary file in the output's folder, then replaces the output in one
    rename: a crash or Ctrl-C leaves the old file or nothing, never half an image.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        # mkstemp makes the file private (0600); give the result the mode a new file would get.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        axes = "ZYX" if labels.ndim == 3 else "YX"
        tifffile.imwrite(tmp, labels.astype(np.uint32, copy=False), photometric="minisblack",
                         compression="zlib", metadata={"axes": axes})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(BaseCommand):
    help = "Segment the nuclei of a 2D (Y, X) or 3D (Z, Y, X) TIFF into a uint32 label TIFF."

    def add_arguments(self, parser):
        parser.add_argument("input", type=Path, help="the image: a 2D or 3D single-channel TIFF")
        parser.add_argument("output", type=Path, help="where to write the label TIFF (uint32, 0 = background)")
        parser.add_argument("--model", default=None,
                            help="a shipped model name, a Cellpose model file or a built-in name "
                                 "(default: the shipped default model)")
        parser.add_argument("--diameter", type=float, default=None,
                            help="expected nucleus diameter in pixels (default: estimated from the image)")
        # Backend and restoration names are checked by the core, which holds the registry:
        # a new backend needs no change here.
        parser.add_argument("--backend", default=DEFAULT_3D_BACKEND,
                            help=f"3D backend: slice, hybrid2d3d or true3d (default: {DEFAULT_3D_BACKEND})")
        parser.add_argument("--restoration", default=None,
                            help="restoration before segmentation: none, auto, denoise or deblur (default: "
                                 f"{DEFAULT_3D_RESTORATION} for a stack, which only denoises a noisy one; none for a "
                                 "2D image)")
        parser.add_argument("--voxel-size", type=float, nargs="+", default=None, metavar="SIZE",
                            help="voxel size in micrometres: Z Y X for a volume (Y X for a 2D image)")

    def handle(self, *args, **options):
        source: Path = options["input"]
        target: Path = options["output"]
        if not target.parent.is_dir():
            raise CommandError(f"output folder does not exist: {target.parent}")
        if target.is_dir():
            raise CommandError(f"output is a folder, not a file: {target}")
        from segmentation.blockwise import blockwise_needed

        shape, dtype = read_header(source)
        if blockwise_needed(shape):
            info = self._segment_blockwise(source, target, shape, dtype, options)
            self.stdout.write(json.dumps(info, default=_json_default))
            return
        image = read_image(source)

        # Imported here, not at the top: torch and cellpose take seconds to import, and `--help`
        # or a bad input file should answer at once.
        import torch

        from segmentation.core import SegmentationEngine
        from segmentation.core.errors import SegmentationError

        voxel_size = tuple(options["voxel_size"]) if options["voxel_size"] is not None else None
        bar_stream = options.get("stderr") or sys.stderr
        bar = None

        def progress(fraction: float, message: str) -> None:
            nonlocal bar
            if bar is None:  # opened at the first report, so a refused input prints no empty bar
                bar = tqdm(total=100, file=bar_stream, bar_format="{l_bar}{bar}| {elapsed}")
            bar.n = round(100 * min(max(float(fraction), 0.0), 1.0), 1)
            bar.set_description_str(message, refresh=False)
            bar.refresh()

        try:
            engine = SegmentationEngine(gpu_available=torch.cuda.is_available())
            labels, info = engine.segment_cellpose(
                image,
                model_name=options["model"],
                diameter=options["diameter"],
                do_3d=image.ndim == 3,
                use_3d_backend=options["backend"],
                restoration_mode=_restoration(options, image.ndim),
                voxel_size=voxel_size,
                progress=progress,
            )
        except SegmentationError as exc:
            raise CommandError(_first_line(exc)) from exc
        except MemoryError:  # the estimate above was too kind: still one line, no traceback
            raise CommandError(f"{source} is too large for this machine: segmenting "
                               f"{' x '.join(map(str, image.shape))} {image.dtype} ran out of memory") from None
        finally:
            if bar is not None:
                bar.close()

        write_labels(target, labels)
        self.stdout.write(json.dumps(info, default=_json_default))

    def _segment_blockwise(self, source: Path, target: Path, shape, dtype, options) -> dict:
        """Above ``EZQUANT_BLOCK_VOXELS``: read the TIFF and write the labels a plane at a time,
        segmenting in blocks (``segmentation.core.blockwise``); memory is bounded by the block."""
        from django.conf import settings

        from segmentation.blockwise import block_memory_refusal, blockwise_params, plane_refusal, work_folder

        refusal = plane_refusal(str(source), shape, dtype, output_dir=target.parent) \
            or block_memory_refusal(str(source), dtype)
        if refusal is not None:
            raise CommandError(refusal)
        import torch

        from segmentation.core import SegmentationParams
        from segmentation.core.blockwise import segment_blockwise
        from segmentation.core.errors import SegmentationError

        bar = tqdm(total=100, file=options.get("stderr") or sys.stderr, bar_format="{l_bar}{bar}| {elapsed}")

        def progress(fraction: float, message: str) -> None:
            bar.n = round(100 * min(max(float(fraction), 0.0), 1.0), 1)
            bar.set_description_str(message, refresh=False)
            bar.refresh()

        voxel_size = tuple(options["voxel_size"]) if options["voxel_size"] is not None else None
        result = None
        try:
            params = SegmentationParams(model_name=options["model"], diameter=options["diameter"],
                                        do_3d=len(shape) == 3, use_3d_backend=options["backend"],
                                        restoration_mode=_restoration(options, len(shape)),
                                        voxel_size=voxel_size)
            result = segment_blockwise(TiffPlanes(source, shape, dtype), params, blockwise_params(),
                                       workdir=work_folder(f"blockwise-{target.name}"),
                                       gpu=torch.cuda.is_available(),
                                       scheduler_address=settings.DASK_SCHEDULER_ADDRESS or None, progress=progress)
            progress(0.98, "writing labels")
            write_label_planes(target, result.plane, shape)
            progress(1.0, f"done: {result.n_labels} nuclei")
        except SegmentationError as exc:
            raise CommandError(_first_line(exc)) from exc
        finally:
            bar.close()
            if result is not None:
                result.close()
        return result.info
