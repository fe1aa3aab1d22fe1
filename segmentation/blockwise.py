"""Segmentation jobs on volumes above ``EZQUANT_BLOCK_VOXELS``: block by block, on Dask.

:func:`segmentation.services.segmentation_job_run` hands such a job here. The blocks read the
volume's level 0 from its zarr array and write their labels under ``EZQUANT_DATA_DIR/tmp``
(:func:`segmentation.core.blockwise.segment_blockwise`), in the worker's process by default or
on the ``dask.distributed`` cluster at ``DASK_SCHEDULER_ADDRESS``. The commit writes the label
version a plane at a time with the nuclei measured from the blocks, so no step holds the whole
volume; their rows reach the database in batches as they are made. People's work is kept as on
the whole-volume path (:mod:`segmentation.services`): the curated nuclei of the latest version
are pasted over the stitched labels and the places people deleted nuclei from stay empty, a
plane at a time, by the same rule (:class:`segmentation.core.curation.CuratedPaste`, which
``keep_curated`` is). A failed or cancelled job removes its work folder and leaves no label
version.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
import time
from pathlib import Path
from typing import Any, Callable

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
    from annotation.models import LabelVersion, Volume
    from annotation.services import label_version_create_planes
    from annotation.stores import volume_store
    from segmentation.core.blockwise import ZarrVolume, segment_blockwise
    from segmentation.core.errors import SegmentationError
    from segmentation.core.params import SegmentationParams
    from segmentation.services import _curation_carry, _curation_key, _model_version

    volume = job.volume
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
        # The pixel work before the commit's transaction: people's nuclei pasted, the nuclei measured.
        kept = _kept_blockwise(job, store, source, result, _curation_key(job))
        timings["measure"] = round(time.perf_counter() - t, 3)
    except BaseException:
        result.close()
        raise
    progress.write("saving labels")

    def commit() -> dict[str, Any]:
        nonlocal kept
        try:
            # The volume locked, the latest version checked again (as on the whole-volume path):
            # a correction made while the job ran is kept too.
            Volume.objects.select_for_update().filter(id=job.volume_id).exists()
            key = _curation_key(job)
            if key != kept.key:
                kept = _kept_blockwise(job, store, source, result, key)
            version = label_version_create_planes(
                volume=volume, plane_of=kept.plane, n_labels=kept.n_labels, rows=kept.rows, user=job.created_by,
                source=LabelVersion.Source.SEGMENTATION, model_version=_model_version(result.info), parent=kept.head)
            if kept.old:
                _curation_carry(version, kept.old)
        finally:
            result.close()
        return {"label_version": version, "model_version": _model_version(result.info),
                "kept_nuclei": len(kept.paste.kept) if kept.paste is not None else 0}

    return commit


@dataclasses.dataclass
class _Kept:
    """The labels a blockwise job stores: the stitched ones, or people's work pasted over them."""

    key: tuple
    plane: Callable[[int], np.ndarray]
    n_labels: int
    rows: Any  # measurements.NucleusSums, made row by row as the version stores them
    head: Any = None  # the version people's nuclei come from
    paste: Any = None  # the CuratedPaste, decided
    old: dict = dataclasses.field(default_factory=dict)  # kept nuclei's rows: label_id -> uncertainty, curation


def _kept_blockwise(job, store, image, result, key: tuple) -> _Kept:
    """The stitched labels with the latest version's curated nuclei kept voxel for voxel and
    the places people deleted nuclei from left empty (``key``: ``services._curation_key``), a
    plane at a time, measured against ``image`` (the volume's level 0). :class:`CuratedPaste`
    (``keep_curated``'s rule) counts every plane first, then pastes each as it is written: the
    stitched labels are assembled three times (count, measure, write) and the latest
    version's planes read three times."""
    from annotation.models import Correction, LabelVersion
    from annotation.stores import correction_store
    from segmentation.core.curation import CuratedPaste
    from segmentation.core.measurements import measure_planes

    voxel_size = store.meta.voxel_size
    head_id, curated, delete_ids = key
    if head_id is None or (not curated and not delete_ids):
        return _Kept(key=key, plane=result.plane, n_labels=result.n_labels, rows=result.rows(image, voxel_size))
    head = LabelVersion.objects.get(id=head_id)
    ids = np.array([label_id for label_id, _ in curated], np.int64)
    tracker = correction_store(job.volume)
    # Each deletion's nuclei as they were, in its box (small: a nucleus or a few).
    deletions = [(d.region, tracker.load(d.record_id)[0] != 0) for d in Correction.objects.filter(id__in=delete_ids)]
    _, ny, nx = result.shape

    def person(z: int) -> tuple[np.ndarray, np.ndarray]:
        current = store.read_label_region(head.name, 0, z, 0, ny, 0, nx)
        erased = np.zeros((ny, nx), bool)
        for (zs, ys, xs), before in deletions:
            if zs.start <= z < zs.stop:
                erased[ys, xs] |= before[z - zs.start]
        erased &= current == 0  # what a person put back there since is kept anyway
        return np.where(np.isin(current, ids), current, 0), erased

    paste = CuratedPaste()
    for z in range(result.shape[0]):
        kept, erased = person(z)
        paste.count(result.plane(z), kept, erased=erased)
    paste.decide()

    def plane(z: int) -> np.ndarray:
        kept, erased = person(z)
        return paste.paste(result.plane(z), kept, erased=erased)

    # Kept nuclei keep their score, solidity and curation; the model's theirs, under their new ids
    # (a trimmed one's solidity measured again, below).
    old = {n["label_id"]: n for n in head.nuclei.filter(label_id__in=paste.kept)
           .values("label_id", "uncertainty", "curation", "solidity")}
    n = max([0, *paste.kept, *paste.model_ids.values()]) + 1
    solidity, scores = np.ones(n), np.full(n, np.nan)
    if paste.model_ids:
        model, new = (np.fromiter(v, np.int64) for v in (paste.model_ids.keys(), paste.model_ids.values()))
        solidity[new], scores[new] = result.solidity[model], result.scores[model]
    for label_id, row in old.items():
        solidity[label_id] = row["solidity"]
        if row["uncertainty"] is not None:
            scores[label_id] = row["uncertainty"]
    # A model nucleus a person's trimmed, or another block's view (result.trimmed), is measured
    # on what is left of it, not on its block.
    trimmed = np.array(sorted({paste.model_ids[k] for k in (*paste.trimmed, *result.trimmed.tolist())
                               if k in paste.model_ids}), np.int64)
    rows = measure_planes(plane, result.shape, image, voxel_size, solidity=solidity, uncertainty=scores,
                          measure_solidity=trimmed)
    return _Kept(key=key, plane=plane, n_labels=n - 1, rows=rows, head=head, paste=paste,
                 old={k: {"uncertainty": r["uncertainty"], "curation": r["curation"]} for k, r in old.items()})
