"""Reads of segmentation jobs. A job exists only for members of its project (as everything in
``annotation.selectors``): for anyone else it is not found."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from segmentation.models import SegmentationJob

__all__ = ["segmentation_job_get", "segmentation_job_list", "segmentation_job_visible"]


def segmentation_job_visible(*, user: AbstractBaseUser) -> QuerySet[SegmentationJob]:
    if not user.is_authenticated:
        return SegmentationJob.objects.none()
    return SegmentationJob.objects.filter(project__memberships__user=user).select_related("label_version")


def segmentation_job_get(*, user: AbstractBaseUser, job_id: int) -> SegmentationJob:
    """The job, or ``SegmentationJob.DoesNotExist`` (404) for a non-member."""
    return segmentation_job_visible(user=user).get(id=job_id)


def segmentation_job_list(*, user: AbstractBaseUser, volume_id: int) -> QuerySet[SegmentationJob]:
    return segmentation_job_visible(user=user).filter(volume_id=volume_id)
