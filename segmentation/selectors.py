"""Reads of segmentation jobs. A job exists only for members of its project (as everything in
``annotation.selectors``): for anyone else it is not found."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from annotation import roles
from segmentation.models import ModelPromotion, ModelVersion, SegmentationJob, TrainingJob

__all__ = ["model_promotion_list", "model_version_list", "segmentation_job_get", "segmentation_job_list",
           "segmentation_job_visible", "training_job_get", "training_job_list", "training_job_visible"]

def segmentation_job_visible(*, user: AbstractBaseUser) -> QuerySet[SegmentationJob]:
    if not user.is_authenticated:
        return SegmentationJob.objects.none()
    return SegmentationJob.objects.filter(project__memberships__user=user).select_related("label_version")


def segmentation_job_get(*, user: AbstractBaseUser, job_id: int) -> SegmentationJob:
    """The job, or ``SegmentationJob.DoesNotExist`` (404) for a non-member."""
    return segmentation_job_visible(user=user).get(id=job_id)


def segmentation_job_list(*, user: AbstractBaseUser, volume_id: int) -> QuerySet[SegmentationJob]:
    return segmentation_job_visible(user=user).filter(volume_id=volume_id)


def training_job_visible(*, user: AbstractBaseUser) -> QuerySet[TrainingJob]:
    """Training jobs of the projects where the user is an instructor or admin (others: none)."""
    if not user.is_authenticated:
        return TrainingJob.objects.none()
    return TrainingJob.objects.filter(project__memberships__user=user, project__memberships__role__in=roles.STAFF) \
        .select_related("model_version", "project")


def training_job_get(*, user: AbstractBaseUser, job_id: int) -> TrainingJob:
    """The job for its project's instructors and admins: ``TrainingJob.DoesNotExist`` (404) for
    a non-member, as everywhere, and 403 for a student, who is told who may."""
    job = TrainingJob.objects.filter(project__memberships__user=user).select_related(
        "model_version", "project").get(id=job_id) if user.is_authenticated else TrainingJob.objects.none().get()
    roles.require_role(user=user, project_id=job.project_id, roles=roles.STAFF, action="reading trainings")
    return job


def training_job_list(*, user: AbstractBaseUser, project_id: int) -> QuerySet[TrainingJob]:
    return training_job_visible(user=user).filter(project_id=project_id)


def model_version_list(*, project) -> QuerySet[ModelVersion]:
    return project.model_versions.select_related("created_by").order_by("-number")


def model_promotion_list(*, project) -> QuerySet[ModelPromotion]:
    return project.model_promotions.select_related("model_version", "promoted_by").order_by("-id")
