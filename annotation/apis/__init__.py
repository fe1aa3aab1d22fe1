"""The REST API of projects, volumes, label versions, nuclei and exports (``/api/v1/``).

One module per sub-domain, mirroring ``annotation/services/``: :mod:`.volumes` (projects,
members, volumes, label versions, label exports), :mod:`.nuclei` (the nuclei of a version, its
CSV, a nucleus' 3D view), :mod:`.imports` (volumes imported by a background job),
:mod:`.corrections` (edits, undo, redo), :mod:`.reviews` (the queue, verdicts, amendments,
agreement, assignments) and :mod:`.audit`; what they share is in :mod:`._base` (uploads,
downloads, a paged list, the label version a path names). ``annotation/urls.py`` routes to the
names exported here.

One view per operation; each validates its input, calls one service or selector and
serialises the result. Authentication: API token (``Authorization: Token <key>``) or the
session. A project and everything in it exists, for the API, only for its members: everyone
else gets 404, as for something that does not exist (see ``annotation.selectors``).
Image and label tiles are plain Django views in ``annotation.tile_views``.
"""

from ._base import _LimitedUploadHandler
from .audit import AuditEventListApi
from .corrections import CorrectionDetailApi, CorrectionListCreateApi, CorrectionRedoApi, CorrectionUndoApi
from .imports import VolumeImportJobCancelApi, VolumeImportJobCreateApi, VolumeImportJobDetailApi
from .nuclei import NucleusCsvExportApi, NucleusListApi, NucleusMeshApi, NucleusReviewQueueApi
from .reviews import (
    AgreementApi,
    AssignmentCompleteApi,
    AssignmentCreateApi,
    AssignmentReopenApi,
    AssignmentSubmitApi,
    CorrectionAmendApi,
    CorrectionApproveApi,
    CorrectionRejectApi,
    MyAssignmentListApi,
    ProjectAssignmentListApi,
    ReviewQueueApi,
)
from .volumes import (
    LabelVersionDetailApi,
    LabelVersionListApi,
    LabelVersionTiffExportApi,
    LabelVersionUploadApi,
    LabelVersionZarrExportApi,
    ProjectCreateApi,
    ProjectDetailApi,
    ProjectListApi,
    ProjectMemberAddApi,
    ProjectMemberListApi,
    VolumeCurationApi,
    VolumeDetailApi,
    VolumeListApi,
    VolumeUploadApi,
)

__all__ = [
    "AgreementApi", "AssignmentCompleteApi", "AssignmentCreateApi", "AssignmentReopenApi", "AssignmentSubmitApi",
    "AuditEventListApi", "CorrectionAmendApi", "CorrectionApproveApi", "CorrectionDetailApi",
    "CorrectionListCreateApi", "CorrectionRedoApi", "CorrectionRejectApi", "CorrectionUndoApi",
    "LabelVersionDetailApi", "LabelVersionListApi", "LabelVersionTiffExportApi", "LabelVersionUploadApi",
    "LabelVersionZarrExportApi", "MyAssignmentListApi", "NucleusCsvExportApi", "NucleusListApi", "NucleusMeshApi",
    "NucleusReviewQueueApi",
    "ProjectAssignmentListApi", "ProjectCreateApi", "ProjectDetailApi", "ProjectListApi", "ProjectMemberAddApi",
    "ProjectMemberListApi", "ReviewQueueApi", "VolumeCurationApi", "VolumeDetailApi",
    "VolumeImportJobCancelApi", "VolumeImportJobCreateApi", "VolumeImportJobDetailApi", "VolumeListApi",
    "VolumeUploadApi", "_LimitedUploadHandler",
]
