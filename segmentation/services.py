"""Writes of segmentation jobs: submit, run (in a worker), cancel, reap the dead.

How a job runs (the atomic claim, progress, heartbeat, cancel, the result committed with the
``succeeded`` status) is :mod:`ezquant_web.jobs.runner`; here is what a segmentation job does: read
the volume, run the engine, store the labels as a label version with its nucleus table.

A person's work outranks the model's: the nuclei people made, changed or checked in the latest
labels (``Nucleus.curation``) are kept in the new version voxel for voxel, places people
deleted nuclei from stay background, and the model fills in everything else
(``segmentation.core.curation.keep_curated``); the job's ``kept_nuclei`` says how many were
kept. A job started ``from_scratch`` (recorded in the audit trail) keeps nothing. The same holds
for a job with a promoted adapter, so retraining never drops curated nuclei.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import LabelVersion, Volume
from ezquant_web.errors import ApplicationError
from ezquant_web.jobs import runner
from ezquant_web.jobs.events import job_publish
from ezquant_web.jobs.runner import JobCancelled
from segmentation.models import ModelPromotion, ModelVersion, SegmentationJob, TrainingJob

logger = logging.getLogger(__name__)

__all__ = ["JobCancelled", "model_version_promote", "project_default_model", "segmentation_job_cancel",
           "segmentation_job_claim", "segmentation_job_create", "segmentation_job_reap_stale", "segmentation_job_run",
           "segmentation_job_run_next",
           "retraining_needed", "training_holdout", "training_job_cancel", "training_job_create",
           "training_job_resume", "training_job_run"]


def segmentation_job_create(*, volume: Volume, user: AbstractBaseUser | None, params: dict[str, Any],
                            from_scratch: bool = False) -> SegmentationJob:
    """Queue a segmentation of ``volume`` with ``params`` (a ``SegmentationParams`` dict).

    ``from_scratch``: the new labels are the model's alone, without the nuclei people made,
    changed or checked (module docstring); recorded in the audit trail with what it drops.

    Bad parameters raise :class:`ApplicationError` (400) before anything is written. The task
    is enqueued once the transaction commits, so a worker never looks for a row it cannot see.
    """
    from segmentation.core.errors import InvalidParameterError
    from segmentation.core.params import SegmentationParams, params_for_stack
    from segmentation.tasks import segmentation_job_task

    if not isinstance(params, dict):
        raise ApplicationError("params must be a JSON object")
    # A stack is segmented in 3D with the default backend and its own voxel size unless the
    # params say otherwise (segmentation.core.params.params_for_stack).
    params = params_for_stack(params, ndim=3 if volume.shape_z > 1 else 2, voxel_size=volume.voxel_size)
    try:
        checked = SegmentationParams.from_dict(params).to_dict()
    except InvalidParameterError as exc:
        raise ApplicationError(str(exc), extra={"field": "params"}) from None
    except (TypeError, ValueError) as exc:  # an unknown key, a value of the wrong type
        raise ApplicationError(f"invalid params: {exc}", extra={"field": "params"}) from None
    checked["model_name"] = _allowed_model_name(project_id=volume.project_id, user=user,
                                                model_name=checked.get("model_name"))
    from annotation.services import audit_record

    with transaction.atomic():
        _check_queue_limits(project_id=volume.project_id, user=user)
        job = SegmentationJob.objects.create(project_id=volume.project_id, volume=volume, created_by=user,
                                             params=checked, from_scratch=bool(from_scratch))
        extra = {}
        if from_scratch:
            from annotation.selectors import volume_curation

            extra = {"from_scratch": True, "drops": volume_curation(volume=volume)}
        audit_record(user=user, project_id=volume.project_id, action="segmentation_job.create", obj=job,
                     volume=volume.id, params=checked, **extra)
    job_publish(job)
    transaction.on_commit(lambda: segmentation_job_task.enqueue(job_id=job.id))
    return job


#: Cellpose 3.1's built-in model names (``cellpose.models.MODEL_NAMES``, which cannot be read
#: without importing torch into the web process; a test keeps the two equal).
CELLPOSE_BUILTIN_MODELS = (
    "cyto3", "nuclei", "cyto2_cp3", "tissuenet_cp3", "livecell_cp3", "yeast_PhC_cp3", "yeast_BF_cp3",
    "bact_phase_cp3", "bact_fluor_cp3", "deepbacs_cp3", "cyto2", "cyto", "CPx", "transformer_cp3",
    "neurips_cellpose_default", "neurips_cellpose_transformer", "neurips_grayscale_cyto2",
    "CP", "TN1", "TN2", "TN3", "LC1", "LC2", "LC3", "LC4")


def _allowed_model_name(*, project_id: int, user: AbstractBaseUser | None, model_name: str | None) -> str | None:
    """``model_name`` if a job of this project may use it, else 400.

    Allowed: none (the project's default), a shipped model, a Cellpose built-in name, one of
    the project's own model versions (by its name), and, for the project's admins and for
    jobs started from the shell (no user), a file under ``EZQUANT_MODELS_DIR`` (a folder the
    server's operator chose; relative to it, no way out of it). Never another server path.
    Every refusal says the same thing, so the answer never tells whether some file exists.
    """
    from django.conf import settings

    from annotation import roles
    from segmentation.core.modelzoo import shipped_models

    if model_name in (None, "", "default"):
        return None
    if model_name in shipped_models() or model_name in CELLPOSE_BUILTIN_MODELS:
        return model_name
    if ModelVersion.objects.filter(project_id=project_id, name=model_name).exists():
        return model_name
    may_use_files = user is None or roles.role_of(user=user, project_id=project_id) == roles.ADMIN
    if may_use_files and _models_dir_file(model_name) is not None:
        return model_name
    raise ApplicationError(
        f"unknown model {model_name!r}: use a shipped model ({', '.join(shipped_models())}), a Cellpose "
        "built-in name, or the name of one of this project's model versions"
        + (", or a file in the models folder (EZQUANT_MODELS_DIR)" if may_use_files and settings.EZQUANT_MODELS_DIR
           else ""), extra={"field": "params.model_name"})


def _models_dir_file(model_name: str):
    """The file ``model_name`` names inside ``EZQUANT_MODELS_DIR``, or ``None`` (no folder set,
    a name that leads out of it, or no such file)."""
    from pathlib import Path

    from django.conf import settings

    if not settings.EZQUANT_MODELS_DIR:
        return None
    root = Path(settings.EZQUANT_MODELS_DIR).resolve()
    path = (root / model_name).resolve()
    if not path.is_relative_to(root) or path == root or not path.is_file():
        return None
    return path


def _allowed_base_model(base_model: str | None) -> str | None:
    """A retraining's ``base_model`` (only admins retrain): a shipped model, a Cellpose
    built-in name or a file under ``EZQUANT_MODELS_DIR`` (stored as its path); else 400, the
    same answer whether or not some file exists."""
    from segmentation.core.modelzoo import shipped_models

    if base_model is None or base_model in shipped_models() or base_model in CELLPOSE_BUILTIN_MODELS:
        return base_model
    path = _models_dir_file(base_model)
    if path is None:
        raise ApplicationError(f"unknown base model {base_model!r}: use a shipped model "
                               f"({', '.join(shipped_models())}), a Cellpose built-in name or a file in the models "
                               "folder (EZQUANT_MODELS_DIR)", extra={"field": "params.base_model"})
    return str(path)


def _model_for_run(job: SegmentationJob) -> str | None:
    """What the engine loads for the job's ``model_name``: the project's model versions and
    the models folder's files as paths, the rest as they are."""
    from pathlib import Path

    from django.conf import settings

    name = job.params.get("model_name")
    if name in (None, "", "default"):
        return project_default_model(project=job.project)
    version = ModelVersion.objects.filter(project_id=job.project_id, name=name).first()
    if version is not None:
        return str(Path(settings.EZQUANT_DATA_DIR) / version.adapter_path)
    from segmentation.core.modelzoo import shipped_models

    if name in shipped_models() or name in CELLPOSE_BUILTIN_MODELS:
        return name
    path = _models_dir_file(name)
    if path is None:  # the file went away, or the setting changed, since the job was queued
        raise ApplicationError(f"the model {name!r} is no longer available")
    return str(path)


def _check_queue_limits(*, project_id: int, user: AbstractBaseUser | None) -> None:
    """429 when the user, or the project, already has as many jobs waiting as allowed
    (``EZQUANT_MAX_QUEUED_JOBS_PER_USER``, ``..._PER_PROJECT``): one account cannot fill the
    queue that the lab shares. Inside the creating transaction, with the project row locked
    (PostgreSQL; SQLite's IMMEDIATE transactions are serialised anyway), so two submissions
    at once cannot both pass the last free place."""
    from django.conf import settings

    from annotation.models import Project

    list(Project.objects.select_for_update().filter(id=project_id).values_list("id", flat=True))
    queued = SegmentationJob.objects.filter(status=SegmentationJob.Status.QUEUED)
    per_project = settings.EZQUANT_MAX_QUEUED_JOBS_PER_PROJECT
    if queued.filter(project_id=project_id).count() >= per_project:
        raise ApplicationError(f"this project already has {per_project} jobs waiting, the most allowed: wait for "
                               "some to run, or cancel some", status=429, extra={"limit": per_project})
    per_user = settings.EZQUANT_MAX_QUEUED_JOBS_PER_USER
    if user is not None and queued.filter(created_by=user).count() >= per_user:
        raise ApplicationError(f"you already have {per_user} jobs waiting, the most allowed: wait for some to run, "
                               "or cancel some", status=429, extra={"limit": per_user})


def segmentation_job_claim(*, job_id: int, worker_id: str) -> bool:
    """Take a queued job for this worker: True for exactly one caller, however many try."""
    return runner.job_claim(SegmentationJob, job_id=job_id, worker_id=worker_id)


def _model_version(info: dict[str, Any]) -> str:
    model = info.get("model") or {}
    parts = [str(model.get("name") or "")]
    if model.get("version"):
        parts.append(str(model["version"]))
    if model.get("sha256"):
        parts.append(str(model["sha256"])[:12])
    return " ".join(p for p in parts if p)[:200]


def segmentation_job_run(*, job_id: int, worker_id: str | None = None) -> str:
    """Claim and run one segmentation job to its end (``runner.run_job``); returns its status."""
    return runner.run_job(SegmentationJob, job_id=job_id, worker_id=worker_id, work=_segmentation_work)


def segmentation_job_run_next(*, worker_id: str | None = None) -> int | None:
    """Claim and run the queued job that is fairest to run next, whichever project it is of
    (``runner.job_fair_order``); its id, or ``None`` when nothing is queued.

    Each queued job has a task of its own, and a task runs the fairest job, not necessarily
    its own: there are always at least as many tasks waiting as jobs, so every job runs."""
    worker_id = worker_id or runner.process_worker_id()
    job_id = runner.job_claim_next(SegmentationJob, worker_id=worker_id)
    if job_id is not None:
        runner.run_job(SegmentationJob, job_id=job_id, worker_id=worker_id, work=_segmentation_work, claimed=True)
    return job_id


def _segmentation_work(job: SegmentationJob, progress, timings: dict):
    if job.volume is None:
        raise ApplicationError("the volume was deleted")
    from segmentation.blockwise import blockwise_needed, segmentation_work_blockwise

    if blockwise_needed(job.volume.shape):  # above EZQUANT_BLOCK_VOXELS: in blocks, on Dask
        return segmentation_work_blockwise(job, progress, timings, model_name=_model_for_run(job))
    result, segment_timings = _segment(job, progress)
    timings.update(segment_timings)
    t = time.perf_counter()
    kept = _kept(job, result.labels)  # the pixel work before the commit's transaction
    timings["keep"] = round(time.perf_counter() - t, 3)

    def commit() -> dict[str, Any]:
        nonlocal kept
        # The volume locked, the latest version checked again: a correction made while the job
        # ran is kept too (it would otherwise vanish under the new version).
        Volume.objects.select_for_update().filter(id=job.volume_id).exists()
        if _curation_key(job) != kept[2]:
            kept = _kept(job, result.labels)
        version = _label_version(job, result, kept)
        return {"label_version": version, "model_version": _model_version(result.info),
                "kept_nuclei": len(kept[1].kept) if kept[1] is not None else 0}

    return commit


def _curation_key(job: SegmentationJob) -> tuple:
    """What the kept nuclei depend on: the latest version, its curated nuclei (a check makes no
    new version) and the deletions in effect."""
    from annotation.models import Correction

    head = LabelVersion.objects.filter(volume_id=job.volume_id).order_by("-number").first()
    if head is None or job.from_scratch:
        return (head.id if head else None, (), ())
    curated = tuple(head.nuclei.exclude(curation="").order_by("label_id")
                    .values_list("label_id", "curation"))
    deletes = tuple(Correction.objects.filter(volume_id=job.volume_id, correction_type="delete",
                                              undone_version__isnull=True, reverted_version__isnull=True)
                    .exclude(review_status=Correction.Review.REJECTED).order_by("id").values_list("id", flat=True))
    return head.id, curated, deletes


def _kept(job: SegmentationJob, labels):
    """``(id of the latest version or None, CuratedMerge or None, the curation key)``: the
    model's ``labels`` with the latest version's curated nuclei kept and the places people
    deleted nuclei from left empty; ``None`` when there is nothing to keep or the job starts
    from scratch."""
    import numpy as np

    from annotation.models import Correction
    from annotation.stores import correction_store, volume_store
    from segmentation.core.curation import keep_curated

    volume = job.volume
    key = _curation_key(job)
    head_id, curated, delete_ids = key
    if head_id is None or (not curated and not delete_ids):
        return head_id, None, key
    head = LabelVersion.objects.get(id=head_id)
    curated = [label_id for label_id, _ in curated]
    deletes = Correction.objects.filter(id__in=delete_ids)
    current = volume_store(volume).read_labels(head.name)
    kept = np.where(np.isin(current, curated), current, 0)
    erased = np.zeros(current.shape, bool)
    for deletion in deletes:
        before, _ = correction_store(volume).load(deletion.record_id)
        erased[deletion.region] |= before != 0
    erased &= current == 0  # what a person put back there since is kept anyway
    model = np.asarray(labels).reshape(current.shape)
    return head.id, keep_curated(model, kept, erased=erased), key


def _segment(job: SegmentationJob, progress: runner.Progress):
    from annotation.stores import volume_store
    from segmentation.core.engine import SegmentationEngine
    from segmentation.core.params import SegmentationParams
    from segmentation.resources import too_large_message

    # Before reading the pixels (or importing torch): a volume this machine cannot segment ends
    # the job failed with one line, instead of a MemoryError or the OOM killer taking the worker.
    volume = job.volume
    shape = volume.shape if volume.shape_z > 1 else volume.shape[1:]
    refusal = too_large_message(f"volume {volume.name!r}", shape, volume.dtype)
    if refusal is not None:
        raise ApplicationError(refusal)

    # torch is imported here, in the worker, never by the web process at start-up.
    import torch

    timings: dict[str, float] = {}
    t = time.perf_counter()
    try:
        image = volume_store(job.volume).read_volume(0)
    except Exception as exc:
        raise ApplicationError(f"the volume could not be read: {exc}") from exc
    if job.volume.shape_z == 1:
        image = image[0]
    timings["read"] = round(time.perf_counter() - t, 3)
    # The project's promoted adapter when none is named; its model versions and the models
    # folder's files as paths (what the job stores is the name that was allowed).
    params = dataclasses.replace(SegmentationParams.from_dict(job.params), model_name=_model_for_run(job))
    engine = SegmentationEngine(gpu_available=torch.cuda.is_available())
    t = time.perf_counter()
    progress(0.0, "reading volume")
    result = engine.segment(image, params, progress=progress)
    timings["segment"] = round(time.perf_counter() - t, 3)
    progress.write("saving labels")
    return result, timings


def _label_version(job: SegmentationJob, result, kept) -> LabelVersion:
    from annotation.services import label_version_create

    uncertainty = result.uncertainty().as_dict()
    head_id, merged, _ = kept
    if merged is None:
        return label_version_create(volume=job.volume, labels=result.labels, user=job.created_by,
                                    source=LabelVersion.Source.SEGMENTATION,
                                    model_version=_model_version(result.info), uncertainty=uncertainty)
    # The kept nuclei keep their ids, score and curation; the model's are numbered after them.
    head = LabelVersion.objects.get(id=head_id)
    old = {n["label_id"]: n for n in head.nuclei.filter(label_id__in=merged.kept)
           .values("label_id", "uncertainty", "curation")}
    scores = {merged.model_ids[i]: u for i, u in uncertainty.items() if i in merged.model_ids}
    scores.update({i: n["uncertainty"] for i, n in old.items() if n["uncertainty"] is not None})
    version = label_version_create(volume=job.volume, labels=merged.labels, user=job.created_by,
                                   source=LabelVersion.Source.SEGMENTATION,
                                   parent=head,
                                   model_version=_model_version(result.info), uncertainty=scores)
    _curation_carry(version, old)
    return version


def _curation_carry(version: LabelVersion, old: dict[int, dict[str, Any]]) -> None:
    """The kept nuclei's marks (``old``: label_id -> its row's ``curation``) on their rows in
    ``version``, a new segmentation (the whole-volume and the blockwise paths)."""
    for curation in {n["curation"] for n in old.values()}:  # its rows are its own (a new lineage)
        version.nuclei.filter(label_id__in=[
            i for i, n in old.items() if n["curation"] == curation]).update(curation=curation)


def segmentation_job_cancel(*, job: SegmentationJob, user: AbstractBaseUser | None) -> SegmentationJob:
    """Cancel a job: a queued one at once, a running one within about a second. A finished job
    cannot be (409)."""
    from annotation.services import audit_record

    job = runner.job_cancel(SegmentationJob, job=job)
    audit_record(user=user, project_id=job.project_id, action="segmentation_job.cancel", obj=job, status=job.status)
    return job


def segmentation_job_reap_stale(*, older_than_s: float | None = None) -> int:
    """Mark failed the running jobs (of every kind) whose worker died: ``runner.job_reap_stale``."""
    return runner.job_reap_stale(older_than_s=older_than_s)


# -- retraining: adapter fine-tuning jobs and model versions ------------------------------------

def _models_dir(project):
    from pathlib import Path

    from django.conf import settings

    return Path(settings.EZQUANT_DATA_DIR) / "models" / project.slug


def project_default_model(*, project) -> str | None:
    """The model a project segments with when a job names none: the adapter file of its latest
    promotion, or ``None`` for the shipped default (no promotion, or a roll-back to the base)."""
    from pathlib import Path

    from django.conf import settings


    latest = ModelPromotion.objects.filter(project=project).select_related("model_version").first()
    if latest is None or latest.model_version is None:
        return None
    return str(Path(settings.EZQUANT_DATA_DIR) / latest.model_version.adapter_path)


def training_job_create(*, project, user: AbstractBaseUser | None, params: dict | None = None,
                        resumed_from=None) -> TrainingJob:
    """Queue the fine-tuning of an adapter on the project's approved corrections.

    ``params`` are ``RetrainingParams`` fields (400 when invalid). 400 when there is no approved
    correction yet; 409 while another training of the project is queued or running.
    """
    from annotation.selectors import training_corrections
    from annotation.services import audit_record
    from segmentation.core.corrections import RetrainingParams
    from segmentation.core.errors import InvalidParameterError
    from segmentation.tasks import training_job_task

    try:
        checked = RetrainingParams.from_dict(params or {}).to_dict()
    except (InvalidParameterError, TypeError, ValueError) as exc:
        raise ApplicationError(f"invalid params: {exc}", extra={"field": "params"}) from None
    checked["base_model"] = _allowed_base_model(checked.get("base_model"))
    correction_ids = resumed_from.correction_ids if resumed_from is not None else \
        list(training_corrections(project=project).values_list("id", flat=True))
    if not correction_ids:
        raise ApplicationError("there are no approved corrections to train on yet")
    with transaction.atomic():
        from annotation.models import Project

        Project.objects.select_for_update().filter(id=project.id).exists()  # one submission at a time
        busy = TrainingJob.objects.filter(project=project, status__in=[TrainingJob.Status.QUEUED,
                                                                       TrainingJob.Status.RUNNING]).first()
        if busy is not None:
            raise ApplicationError(f"training job {busy.id} of this project is {busy.status}: wait for it or cancel it",
                                   status=409, extra={"job": busy.id})
        job = TrainingJob.objects.create(project=project, created_by=user, params=checked,
                                         correction_ids=correction_ids, resumed_from=resumed_from)
        audit_record(user=user, project_id=project.id, action="training_job.create", obj=job,
                     corrections=len(correction_ids), resumed_from=resumed_from.id if resumed_from else None)
    job_publish(job)
    transaction.on_commit(lambda: training_job_task.enqueue(job_id=job.id))
    return job


def training_job_resume(*, job, user: AbstractBaseUser | None) -> TrainingJob:
    """A new job for a failed or cancelled training, on the same corrections and parameters: it
    continues from the interrupted one's last checkpoint."""
    if job.status not in (job.Status.FAILED, job.Status.CANCELLED):
        raise ApplicationError(f"only a failed or cancelled training can be resumed; this one is {job.status}",
                               status=409)
    return training_job_create(project=job.project, user=user, params=job.params, resumed_from=job)


def training_job_cancel(*, job, user: AbstractBaseUser | None) -> TrainingJob:
    from annotation.services import audit_record

    job = runner.job_cancel(TrainingJob, job=job)
    audit_record(user=user, project_id=job.project_id, action="training_job.cancel", obj=job, status=job.status)
    return job


def training_job_run(*, job_id: int, worker_id: str | None = None) -> str:
    """Claim and run one training job (``runner.run_job``); the loss curve goes into ``metrics``."""

    curve: list[list[float]] = []

    def on_metrics(metrics: dict) -> dict:
        if "step" in metrics and "loss" in metrics:
            curve.append([int(metrics["step"]), round(float(metrics["loss"]), 5)])
        return {"metrics": {"loss": curve, "steps": metrics.get("steps"), "stage": metrics.get("stage")}}

    return runner.run_job(TrainingJob, job_id=job_id, worker_id=worker_id, work=_training_work, on_metrics=on_metrics)


def training_holdout(correction_ids, *, params) -> list[int]:
    """The corrections held out of a training to score its version
    (``segmentation.core.corrections.holdout_split``: a stable part of them by a hash of the id,
    once there are ``params.min_holdout_corrections``; none before). The training page says the
    same from this."""
    from segmentation.core.corrections import holdout_split

    return holdout_split(correction_ids, params)[1]


def _training_work(job, progress, timings: dict):
    """Build the corrections' examples and run ``segmentation.core.corrections.train_model_version``
    (hold-out, fine-tune, save the adapter, score it against the project's current model); the
    commit creates the :class:`ModelVersion`."""
    from annotation.models import Correction
    from annotation.stores import correction_store
    from segmentation.core.corrections import RetrainingParams, correction_examples, train_model_version

    params = RetrainingParams.from_dict(job.params)
    corrections = list(Correction.objects.filter(id__in=job.correction_ids).select_related("volume").order_by("id"))
    if len(corrections) != len(job.correction_ids):
        raise ApplicationError("some of the corrections to train on were deleted with their volume")
    t = time.perf_counter()
    examples = {}
    for volume_id in sorted({c.volume_id for c in corrections}):
        mine = [c for c in corrections if c.volume_id == volume_id]
        made = correction_examples(correction_store(mine[0].volume), [c.record_id for c in mine],
                                   zone_margin=params.zone_margin, context_weight=params.context_weight)
        examples.update(zip((c.id for c in mine), made, strict=True))
    timings["examples"] = round(time.perf_counter() - t, 3)
    # A resumed job continues from the run's checkpoint in the project's models folder.
    run = train_model_version(examples, params, folder=_models_dir(job.project),
                              reference_model=project_default_model(project=job.project), progress=progress,
                              metadata={"project": job.project.slug})
    timings.update(run["timings"])
    train, held, info, record = run["correction_ids"], run["held_out_ids"], run["adapter"], run["training"]
    scores = run["metrics"]
    if scores["evaluated"]:
        scores["reference_model"] = _display_name(scores["reference_model"])

    def commit() -> dict[str, Any]:
        from django.conf import settings

        last = ModelVersion.objects.filter(project=job.project).order_by("-number").first()
        version = ModelVersion.objects.create(
            project=job.project, number=(last.number + 1) if last else 1, name=run["model_version"],
            base_model=run["base"].name, base_sha256=run["base"].sha256,
            adapter_path=str(run["adapter_path"].relative_to(settings.EZQUANT_DATA_DIR)),
            adapter_sha256=info["sha256"], adapter_bytes=info["bytes"], correction_ids=train, held_out_ids=held,
            params=params.to_dict(),
            scores={**scores, "loss_final": record.get("final_loss") if isinstance(record, dict) else None},
            training_job=job, created_by=job.created_by)
        run["checkpoint"].unlink(missing_ok=True)
        return {"model_version": version}

    return commit


def _display_name(model: str) -> str:
    """A model for display: a file's name, or a model name as it is."""
    from pathlib import Path

    return Path(model).name if ("/" in model or model.endswith(".pt")) else model


def model_version_promote(*, project, model_version, user: AbstractBaseUser | None, note: str = "",
                          unscored: bool = False):
    """Make ``model_version`` (or the base model, ``None``) the project's default from now on; a
    roll-back is a promotion of an older version. Every promotion is kept.

    A version that was not scored (fewer held-out corrections than ``min_holdout_corrections``)
    is promoted only with ``unscored=True``: nothing shows it segments better, so the person
    says so knowingly (400 otherwise)."""
    from annotation.services import audit_record

    if model_version is not None and model_version.project_id != project.id:
        raise ApplicationError("that model version belongs to another project")
    if model_version is not None and not (model_version.scores or {}).get("evaluated") and not unscored:
        reason = (model_version.scores or {}).get("reason") or "no held-out corrections"
        raise ApplicationError(f"model version {model_version.number} was not scored ({reason}): nothing shows it "
                               "segments better than the current default; confirm that you promote it unscored "
                               "(unscored: true)", extra={"field": "unscored"})
    with transaction.atomic():
        promotion = ModelPromotion.objects.create(project=project, model_version=model_version, promoted_by=user,
                                                  note=note)
        audit_record(user=user, project_id=project.id, action="model_version.promote", obj=promotion,
                     model_version=model_version.number if model_version else None, note=note,
                     unscored=bool(model_version is not None and unscored))
    return promotion


def retraining_needed(*, project, min_corrections: int = 20) -> int | None:
    """The number of approved corrections not yet trained on, when at least ``min_corrections``
    (the guide's ``should_retrain``), else ``None``."""
    from annotation.selectors import training_corrections

    last = ModelVersion.objects.filter(project=project).order_by("-number").first()
    seen = set(last.correction_ids) | set(last.held_out_ids) if last else set()
    new = [i for i in training_corrections(project=project).values_list("id", flat=True) if i not in seen]
    return len(new) if len(new) >= min_corrections else None
