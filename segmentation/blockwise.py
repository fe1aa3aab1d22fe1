"""Segmentation jobs on volumes above ``EZQUANT_BLOCK_VOXELS``: block by block, on Dask.

:func:`segmentation.services.segmentation_job_run` hands such a job here. The blocks read the
volume's level 0 from its zarr array and write their labels under ``EZQUANT_DATA_DIR/tmp``
(:func:`segmentation.core.blockwise.segment_blockwise`), in the worker's process by default or
on the ``dask.distributed`` cluster at ``DASK_SCHEDULER_ADDRESS``. The commit writes the label
version a plane at a time with the nuclei measured from the blocks, so no step holds the whole
volume. A failed or cancelled job removes its work folder and leaves no label version.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings

from ezquant_web.errors import ApplicationError

__all__ = ["blockwise_needed", "blockwise_params", "segmentation_work_blockwise"]


def blockwise_needed(shape: tuple[int, ...]) -> bool:
    """True when an image of ``shape`` is segmented block by block (more voxels than
    ``EZQUANT_BLOCK_VOXELS``)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n > settings.EZQUANT_BLOCK_VOXELS


def blockwise_params():
    """The grid and stitching parameters the settings ask for."""
    from segmentation.core.blockwise import BlockwiseParams

    return BlockwiseParams(block_voxels=settings.EZQUANT_BLOCK_VOXELS)


def block_memory_refusal(what: str, dtype) -> str | None:
    """The one-line refusal when even one block does not fit this machine's memory (blocks
    run here, not on a cluster), else ``None``."""
    from segmentation.resources import too_large_message

    if settings.DASK_SCHEDULER_ADDRESS:
        return None
    return too_large_message(f"{what} (one block of EZQUANT_BLOCK_VOXELS)", (settings.EZQUANT_BLOCK_VOXELS,), dtype)


def plane_refusal(what: str, shape: tuple[int, ...], dtype, *, output_dir: Path | None = None) -> str | None:
    """The one-line refusal when a blockwise run of a ``shape`` volume cannot be done here even
    a block at a time, else ``None``: its labels (4 bytes a voxel) do not fit the free disk of
    ``output_dir``, or one whole plane (read for the intensity ranges, written as labels) does
    not fit the memory."""
    import shutil

    from segmentation.resources import available_memory, segmentation_memory_needed

    if output_dir is not None:
        need = 4 * math.prod(shape)
        free = shutil.disk_usage(output_dir).free
        if need > free:
            return (f"{what} is too large for this machine: {' x '.join(map(str, shape))} {np.dtype(dtype)} "
                    f"needs about {need:,} bytes of disk for its labels in {output_dir}; {free:,} are free")
    need = segmentation_memory_needed(tuple(shape[-2:]), dtype)
    available = available_memory()
    if available is not None and need > available:
        return (f"{what} is too large for this machine: {' x '.join(map(str, shape))} {np.dtype(dtype)} has planes "
                f"that need about {need:,} bytes each (a blockwise run holds one whole plane); "
                f"{available:,} are available")
    return None


def work_folder(name: str) -> Path:
    """A new folder's path under ``EZQUANT_DATA_DIR/tmp`` (which every cluster worker sees)."""
    root = Path(settings.EZQUANT_DATA_DIR) / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{name}-{secrets.token_hex(6)}"


def segmentation_work_blockwise(job, progress, timings: dict, *, model_name: str | None):
    """The ``work`` of a blockwise segmentation job (see :func:`ezquant_web.jobs.runner.run_job`)."""
    from annotation.models import LabelVersion
    from annotation.services import label_version_create_planes
    from annotation.stores import volume_store
    from segmentation.core.blockwise import ZarrVolume, segment_blockwise
    from segmentation.core.errors import SegmentationError
    from segmentation.core.params import SegmentationParams
    from segmentation.services import _curation_key, _model_version

    volume = job.volume
    head_id, curated, deletes = _curation_key(job)
    if curated or deletes:
        raise ApplicationError(
            f"volume {volume.name!r} ({volume.shape_z} x {volume.shape_y} x {volume.shape_x}) is segmented block by "
            f"block, and keeping what people did in its latest version ({len(curated)} curated nuclei, "
            f"{len(deletes)} deletions) merges it with the new labels over the whole volume at once, which does not "
            "fit a blockwise run: "
            "run the job from scratch (from_scratch), or raise EZQUANT_BLOCK_VOXELS above its size")
    refusal = block_memory_refusal(f"volume {volume.name!r}", volume.dtype)
    if refusal is not None:
        raise ApplicationError(refusal)
    # torch is imported here, in the worker, never by the web process at start-up.
    import torch

    params = dataclasses.replace(SegmentationParams.from_dict(job.params), model_name=model_name)
    store = volume_store(volume)
    try:
        source = ZarrVolume(store.level_path(0))
    except Exception as exc:
        raise ApplicationError(f"the volume could not be read: {exc}") from exc
    t = time.perf_counter()
    progress(0.0, "segmenting block by block")
    try:
        result = segment_blockwise(source, params, blockwise_params(), workdir=work_folder(f"blockwise-job{job.id}"),
                                   gpu=torch.cuda.is_available(), scheduler_address=settings.DASK_SCHEDULER_ADDRESS
                                   or None, progress=progress)
    except SegmentationError as exc:
        raise ApplicationError(str(exc)) from exc
    timings["segment"] = round(time.perf_counter() - t, 3)
    timings["blocks"] = result.info["blockwise"]["blocks"]
    try:
        progress(0.98, "measuring nuclei")
        t = time.perf_counter()
        rows = result.rows(source, store.meta.voxel_size)  # the pixel work before the commit's transaction
        timings["measure"] = round(time.perf_counter() - t, 3)
    except BaseException:
        result.close()
        raise
    progress.write("saving labels")

    def commit() -> dict[str, Any]:
        try:
            version = label_version_create_planes(
                volume=volume, plane_of=result.plane, n_labels=result.n_labels, rows=rows, user=job.created_by,
                source=LabelVersion.Source.SEGMENTATION, model_version=_model_version(result.info))
        finally:
            result.close()
        return {"label_version": version, "model_version": _model_version(result.info), "kept_nuclei": 0}

    return commit
