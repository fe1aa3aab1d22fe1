"""The REST API of segmentation jobs (``/api/v1/``): submit, read, list per volume, cancel.

One view per operation. A job exists only for members of its project: anyone else gets 404,
as everywhere in the API (``segmentation.selectors``).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import roles
from annotation import selectors as annotation_selectors
from ezquant_web.api import ApplicationError
from segmentation import selectors, services


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    volume = serializers.IntegerField(source="volume_id", allow_null=True)
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    params = serializers.JSONField()
    timings = serializers.JSONField()
    cancel_requested = serializers.BooleanField()
    attempts = serializers.IntegerField()
    worker_id = serializers.CharField()
    label_version = serializers.CharField(source="label_version.name", allow_null=True, default=None)
    model_version = serializers.CharField()
    from_scratch = serializers.BooleanField(help_text="started without the nuclei people made, changed or checked")
    kept_nuclei = serializers.IntegerField(allow_null=True,
                                           help_text="person-made or checked nuclei kept from the latest labels")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class SegmentationJobListCreateApi(APIView):
    """``GET``: the volume's jobs, newest first. ``POST``: submit one (the issue's URL, so the list
    and the create share a path here, unlike the annotation routes)."""

    class InputSerializer(serializers.Serializer):
        params = serializers.JSONField(required=False, default=dict,
                                       help_text="SegmentationParams fields; omitted ones take their defaults")
        from_scratch = serializers.BooleanField(required=False, default=False,
                                                help_text="drop the nuclei people made, changed or checked from "
                                                          "the new labels (by default they are kept)")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # Read as each serializer is made, from the one table of the backends' options
            # (segmentation.core.backend_options). The core loads numpy: imported when first used.
            from segmentation.core.params import backend_options_help

            self.fields["params"].help_text = ("SegmentationParams fields; omitted ones take their defaults. "
                                               f"Each 3D backend's options (use_3d_backend): {backend_options_help()}")

    @extend_schema(request=InputSerializer, responses={201: JobOutputSerializer})
    def post(self, request, volume_id: int):
        volume = annotation_selectors.volume_get(user=request.user, volume_id=volume_id)
        roles.require_role(user=request.user, project_id=volume.project_id, roles=roles.STAFF,
                           action="starting segmentation")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.segmentation_job_create(volume=volume, user=request.user,
                                               params=serializer.validated_data["params"],
                                               from_scratch=serializer.validated_data["from_scratch"])
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=JobOutputSerializer(many=True))
    def get(self, request, volume_id: int):
        annotation_selectors.volume_get(user=request.user, volume_id=volume_id)  # 404 for non-members
        jobs = selectors.segmentation_job_list(user=request.user, volume_id=volume_id).select_related("created_by")
        return Response(JobOutputSerializer(jobs, many=True).data)


class SegmentationJobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id: int):
        job = selectors.segmentation_job_get(user=request.user, job_id=job_id)
        return Response(JobOutputSerializer(job).data)


class SegmentationJobCancelApi(APIView):
    @extend_schema(request=None, responses=JobOutputSerializer)
    def post(self, request, job_id: int):
        job = selectors.segmentation_job_get(user=request.user, job_id=job_id)
        roles.require_own_or_staff(user=request.user, project_id=job.project_id, owner_id=job.created_by_id,
                                   action="cancelling another user's job")
        job = services.segmentation_job_cancel(job=job, user=request.user)
        return Response(JobOutputSerializer(job).data)


# -- retraining -------------------------------------------------------------------------------


class TrainingJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    status = serializers.CharField()
    progress = serializers.FloatField()
    message = serializers.CharField()
    error = serializers.CharField()
    params = serializers.JSONField()
    correction_ids = serializers.ListField(child=serializers.IntegerField())
    metrics = serializers.JSONField(help_text='{"loss": [[step, loss], ...], "steps": n, "stage": ...}')
    timings = serializers.JSONField()
    resumed_from = serializers.IntegerField(source="resumed_from_id", allow_null=True)
    model_version = serializers.IntegerField(source="model_version.number", allow_null=True, default=None)
    worker_id = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ModelVersionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    name = serializers.CharField()
    base_model = serializers.CharField()
    base_sha256 = serializers.CharField()
    adapter_sha256 = serializers.CharField()
    adapter_bytes = serializers.IntegerField()
    correction_ids = serializers.ListField(child=serializers.IntegerField())
    held_out_ids = serializers.ListField(child=serializers.IntegerField())
    params = serializers.JSONField()
    scores = serializers.JSONField(help_text="AP@0.5/0.75, splits and merges against the model it would replace")
    training_job = serializers.IntegerField(source="training_job_id", allow_null=True)
    is_default = serializers.BooleanField(default=False)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class TrainingJobListCreateApi(APIView):
    """``GET``: the project's trainings (instructors, admins). ``POST``: retrain (admins) on the
    approved corrections; ``params`` are ``RetrainingParams`` fields."""

    class InputSerializer(serializers.Serializer):
        params = serializers.JSONField(required=False, default=dict)

    @extend_schema(request=InputSerializer, responses={201: TrainingJobOutputSerializer})
    def post(self, request, project_id: int):
        project = annotation_selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=(roles.ADMIN,), action="retraining")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.training_job_create(project=project, user=request.user,
                                           params=serializer.validated_data["params"])
        return Response(TrainingJobOutputSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=TrainingJobOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = annotation_selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="reading trainings")
        jobs = selectors.training_job_list(user=request.user, project_id=project.id).select_related("created_by")
        return Response(TrainingJobOutputSerializer(jobs, many=True).data)


class TrainingJobDetailApi(APIView):
    @extend_schema(responses=TrainingJobOutputSerializer)
    def get(self, request, job_id: int):
        return Response(TrainingJobOutputSerializer(selectors.training_job_get(user=request.user, job_id=job_id)).data)


class _TrainingJobActionApi(APIView):
    """A training job's action, for admins: the subclass names the service."""

    @extend_schema(request=None, responses=TrainingJobOutputSerializer)
    def post(self, request, job_id: int):
        job = selectors.training_job_get(user=request.user, job_id=job_id)
        roles.require_role(user=request.user, project_id=job.project_id, roles=(roles.ADMIN,), action="retraining")
        job = type(self).service(job=job, user=request.user)
        return Response(TrainingJobOutputSerializer(job).data, status=self.success)


class TrainingJobCancelApi(_TrainingJobActionApi):
    service, success = staticmethod(services.training_job_cancel), status.HTTP_200_OK


class TrainingJobResumeApi(_TrainingJobActionApi):
    """A new job continuing a failed or cancelled one from its last checkpoint."""

    service, success = staticmethod(services.training_job_resume), status.HTTP_201_CREATED


class ModelVersionListApi(APIView):
    """The project's model versions, newest first, with their scores and which is the default."""

    @extend_schema(responses=ModelVersionOutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = annotation_selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=roles.STAFF, action="reading models")
        versions = list(selectors.model_version_list(project=project))
        current = selectors.model_promotion_list(project=project).first()
        for version in versions:
            version.is_default = current is not None and current.model_version_id == version.id
        return Response(ModelVersionOutputSerializer(versions, many=True).data)


class DefaultModelApi(APIView):
    """``GET``: the project's default model and the history of promotions (newest first).
    ``POST`` ``{"model_version": N | null, "note"}`` (admins): promote version N, or go back
    to the shipped base model with ``null``; a roll-back is a promotion of an older version. A
    version that was not scored needs ``"unscored": true`` (400 otherwise)."""

    class InputSerializer(serializers.Serializer):
        model_version = serializers.IntegerField(allow_null=True, help_text="the version's number; null: base model")
        note = serializers.CharField(required=False, allow_blank=True, default="")
        unscored = serializers.BooleanField(required=False, default=False,
                                            help_text="required to promote a version that was not scored")

    class OutputSerializer(serializers.Serializer):
        model_version = serializers.IntegerField(source="model_version.number", allow_null=True, default=None)
        name = serializers.CharField(source="model_version.name", allow_null=True, default=None)
        promoted_by = serializers.CharField(source="promoted_by.username", allow_null=True, default=None)
        note = serializers.CharField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request, project_id: int):
        project = annotation_selectors.project_get(user=request.user, project_id=project_id)
        return Response(self.OutputSerializer(selectors.model_promotion_list(project=project), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request, project_id: int):
        project = annotation_selectors.project_get(user=request.user, project_id=project_id)
        roles.require_role(user=request.user, project_id=project.id, roles=(roles.ADMIN,),
                           action="promoting models")
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        number = serializer.validated_data["model_version"]
        version = None
        if number is not None:
            version = selectors.model_version_list(project=project).filter(number=number).first()
            if version is None:
                raise ApplicationError(f"{project.name} has no model version {number}")
        promotion = services.model_version_promote(project=project, model_version=version, user=request.user,
                                                   note=serializer.validated_data["note"],
                                                   unscored=serializer.validated_data["unscored"])
        return Response(self.OutputSerializer(promotion).data, status=status.HTTP_201_CREATED)
