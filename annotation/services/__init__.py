"""Writes of the annotation app, one module per sub-domain; import them from here.

:mod:`.volumes`: projects, members, volumes, label versions, exports (its docstring says how
files and rows are kept consistent). :mod:`.corrections`: edits, undo, redo.
:mod:`.reviews`: verdicts, amendments, assignments. :mod:`.imports`: uploads imported as
volumes by a background job. :mod:`.audit`: the audit trail.
"""

from .audit import audit_record
from .corrections import correction_create, correction_redo, correction_undo
from .imports import volume_import_job_cancel, volume_import_job_create, volume_import_job_run
from .reviews import assignment_create, assignment_set_state, correction_amend, correction_review
from .volumes import (
    label_version_create,
    label_version_create_planes,
    label_version_export_tiff,
    label_version_export_zarr,
    label_version_upload,
    membership_add,
    project_create,
    volume_import,
    volume_row_create,
)

__all__ = [
    "assignment_create", "assignment_set_state", "audit_record", "correction_amend", "correction_review",
    "correction_create", "correction_redo", "correction_undo",
    "label_version_create", "label_version_create_planes", "label_version_export_tiff", "label_version_export_zarr",
    "label_version_upload",
    "membership_add", "project_create", "volume_import", "volume_import_job_cancel", "volume_import_job_create",
    "volume_import_job_run", "volume_row_create",
]
