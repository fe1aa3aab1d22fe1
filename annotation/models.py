"""Projects, their members, volumes, label versions and the nuclei measured in each version.

The pixels are not here: a :class:`Volume` row points at an OME-Zarr directory written by
:mod:`annotation.storage` (``path``, relative to ``settings.EZQUANT_DATA_DIR``) and copies the
few facts the API lists without opening it. A :class:`LabelVersion` row names one immutable
version (``v1``, ``v2``, ...) stored in that directory. Writes go through ``services.py``.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models

from ezquant_web.jobs.models import Job


class Project(models.Model):
    """A body of work: its members see its volumes and nothing else."""

    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in a project, and what they may do there (``annotation.roles``): a
    student annotates the volumes assigned to them, an instructor assigns, reviews and sees
    everyone's work, an admin also manages members and retrains models."""

    class Role(models.TextChoices):
        STUDENT = "student", "Student"
        INSTRUCTOR = "instructor", "Instructor"
        ADMIN = "admin", "Admin"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STUDENT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_project_user")]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"


class Volume(models.Model):
    """A 2D image (Z = 1) or 3D stack, stored as an OME-Zarr pyramid."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=200)
    path = models.CharField(max_length=500, unique=True, help_text="relative to EZQUANT_DATA_DIR")
    shape_z = models.PositiveIntegerField()
    shape_y = models.PositiveIntegerField()
    shape_x = models.PositiveIntegerField()
    dtype = models.CharField(max_length=16)
    voxel_size_z = models.FloatField(help_text="micrometres")
    voxel_size_y = models.FloatField(help_text="micrometres")
    voxel_size_x = models.FloatField(help_text="micrometres")
    contrast_lo = models.FloatField()
    contrast_hi = models.FloatField()
    n_levels = models.PositiveSmallIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.shape_z, self.shape_y, self.shape_x

    @property
    def voxel_size(self) -> tuple[float, float, float]:
        return self.voxel_size_z, self.voxel_size_y, self.voxel_size_x

    @property
    def contrast_limits(self) -> tuple[float, float]:
        return self.contrast_lo, self.contrast_hi

    @property
    def level_shapes(self) -> list[tuple[int, int, int]]:
        """(Z, Y, X) of each pyramid level: y and x halved (rounding up) per level, z kept."""
        shapes = [self.shape]
        for _ in range(1, self.n_levels):
            z, y, x = shapes[-1]
            shapes.append((z, -(-y // 2), -(-x // 2)))
        return shapes

    @property
    def storage_path(self) -> Path:
        """Absolute path of the OME-Zarr directory."""
        return Path(settings.EZQUANT_DATA_DIR) / self.path


class VolumeImportJob(Job):
    """Import an uploaded image file as a new volume of the project, in a worker: the job row
    (``segmentation.models.Job``) carries its progress, so the page shows a real bar for a
    stack that takes minutes. ``params``: ``{"name", "channel", "voxel_size"}`` as asked. The
    file waits in ``upload_path`` (under ``EZQUANT_DATA_DIR/imports/``, named as on the
    user's machine so every message names it) and is removed when the job ends."""

    kind = "import"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    file_name = models.CharField(max_length=255, help_text="the file's name on the user's machine")
    file_bytes = models.PositiveBigIntegerField(default=0)
    upload_path = models.CharField(max_length=500, help_text="relative to EZQUANT_DATA_DIR, removed at the end")
    volume = models.ForeignKey(Volume, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               help_text="the volume it made")

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="importjob_status_heartbeat_idx")]


class LabelVersion(models.Model):
    """One immutable segmentation of a volume. There is no update path: a change is a new
    version with this one as its ``parent``; ``save()`` refuses to overwrite a stored row."""

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        SEGMENTATION = "segmentation", "Segmentation"
        EDIT = "edit", "Edit"
        REVERT = "revert", "Revert"  # a reviewer's rejection took a correction's edit back out

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="label_versions")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=16, help_text='"v<number>", the name in the volume\'s storage')
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    source = models.CharField(max_length=16, choices=Source.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    n_labels = models.PositiveIntegerField(help_text="the largest label id (0 when empty)")
    model_version = models.CharField(max_length=200, blank=True,
                                     help_text="the model that produced it, for a segmentation")
    lineage = models.PositiveIntegerField(help_text="the number of the version that measured every nucleus and "
                                                    "whose rows this one shares (its own, unless an edit made it)")

    class Meta:
        ordering = ["volume", "number"]
        constraints = [
            models.UniqueConstraint(fields=["volume", "number"], name="label_version_unique_number"),
            models.UniqueConstraint(fields=["volume", "name"], name="label_version_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.volume} {self.name}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("label versions are immutable: create a new version instead")
        if self.lineage is None:  # a version measured whole starts its own lineage
            self.lineage = self.number
        super().save(*args, **kwargs)

    @property
    def nuclei(self) -> NucleusQuerySet:
        """Its nuclei (``Nucleus.objects.of``)."""
        return Nucleus.objects.of(self)


#: ``Nucleus.until`` of a row the volume's latest version of its lineage still holds.
OPEN = 2 ** 31 - 1


def rows_of(label_version: LabelVersion) -> models.Q:
    """The condition on :class:`Nucleus` rows that picks those of ``label_version``: the rows of
    its lineage valid at its number."""
    return models.Q(volume_id=label_version.volume_id, lineage=label_version.lineage,
                    since__lte=label_version.number, until__gt=label_version.number)


class NucleusQuerySet(models.QuerySet):
    def of(self, label_version: LabelVersion) -> NucleusQuerySet:
        """The nuclei of one label version (:func:`rows_of`): one query on the index that starts
        ``volume, lineage, label_id``."""
        return self.filter(rows_of(label_version))


class NullsLastIndex(models.Index):
    """An index whose ``DESC NULLS LAST`` columns (``F(name).desc(nulls_last=True)``) are that on
    every database: PostgreSQL puts NULLs first in a descending index unless told, so without
    the clause an ordering with scoreless nuclei last cannot walk it; SQLite refuses NULLS in an
    index, and as it sorts NULL below every value its plain DESC is that order already, so there
    the clause is left out (its planner then walks the index for ``DESC NULLS LAST``)."""

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "sqlite":
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        plain = [models.OrderBy(e.expression, descending=True)
                 if isinstance(e, models.OrderBy) and e.descending and e.nulls_last else e for e in self.expressions]
        return models.Index(*plain, name=self.name).create_sql(model, schema_editor, using=using, **kwargs)


class Nucleus(models.Model):
    """One nucleus as measured by ``segmentation.core.nucleus_table``, shared by every label
    version of the volume that holds it unchanged.

    A row belongs to the versions of its ``lineage`` numbered ``since <= number < until``:
    a segmentation or an upload measures every nucleus and starts a lineage (its own number);
    an edit, an undo, a redo or a revert continues its parent's, closing the rows of the
    nuclei it changed (``until`` = its number) and adding their new rows (``since`` = its
    number), so a version costs the rows it changes. The history of a lineage is linear: only
    the volume's latest version is ever edited. ``Nucleus.objects.of(version)`` reads one
    version; ``LabelVersion.nuclei`` is the same.

    Centroids are in voxels of level 0; ``volume_um3`` in cubic micrometres; intensities in the
    volume's own units.
    """

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="+")
    lineage = models.PositiveIntegerField(help_text="LabelVersion.lineage of the versions that share it")
    since = models.PositiveIntegerField(help_text="the number of the first version that holds it")
    until = models.PositiveIntegerField(default=OPEN, help_text="the number of the first version that no longer "
                                                                "holds it; OPEN while the lineage's latest does")
    label_id = models.PositiveBigIntegerField()
    z_min = models.PositiveIntegerField()
    z_max = models.PositiveIntegerField()
    # The bounding box in y and x (inclusive, level-0 pixels): an edit reads only this region.
    # Empty on rows measured before it was kept; an edit then reads whole planes.
    y_min = models.PositiveIntegerField(null=True, blank=True)
    y_max = models.PositiveIntegerField(null=True, blank=True)
    x_min = models.PositiveIntegerField(null=True, blank=True)
    x_max = models.PositiveIntegerField(null=True, blank=True)
    centroid_z = models.FloatField()
    centroid_y = models.FloatField()
    centroid_x = models.FloatField()
    volume_voxels = models.PositiveBigIntegerField()
    volume_um3 = models.FloatField()
    mean_intensity = models.FloatField()
    integrated_intensity = models.FloatField()
    solidity = models.FloatField()
    uncertainty = models.FloatField(null=True, blank=True)

    class Curation(models.TextChoices):
        MODEL = "", "As the model or upload made it"
        EDITED = "edited", "Made or changed by a person"
        CHECKED = "checked", "Checked by a person"

    # What people did to this nucleus: shared with the row while it is unchanged, so a mark
    # lasts exactly as long as the voxels it vouches for; a re-segmentation keeps these nuclei.
    # A mark set on a row older versions share goes on a new row from the latest version on
    # (``annotation.services.corrections``), so each version keeps its own.
    curation = models.CharField(max_length=8, choices=Curation.choices, blank=True, default="")

    objects = NucleusQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "nuclei"
        ordering = ["volume_id", "lineage", "label_id", "since"]  # the index order; "volume" would join
        constraints = [
            # Also the index on (volume, lineage, label_id) that reads of a version use.
            models.UniqueConstraint(fields=["volume", "lineage", "label_id", "since"], name="nucleus_unique_since"),
            # A version holds one row per nucleus: the open rows of a lineage are its latest's.
            models.UniqueConstraint(fields=["volume", "lineage", "label_id"], condition=models.Q(until=OPEN),
                                    name="nucleus_unique_open"),
            models.CheckConstraint(condition=models.Q(since__lt=models.F("until")), name="nucleus_since_before_until"),
        ]
        indexes = [
            models.Index(fields=["volume", "lineage", "uncertainty"], name="nucleus_version_uncertainty"),
            # The uncertainty queue (``-uncertainty``: the most uncertain first, scoreless nuclei
            # last, ties by id) walks this one and stops at its page; it sorted the whole version.
            NullsLastIndex("volume", "lineage", models.F("uncertainty").desc(nulls_last=True), "label_id",
                           name="nucleus_uncertainty_desc"),
        ]

    def __str__(self) -> str:
        return f"nucleus {self.label_id} of {self.volume} (lineage {self.lineage}, versions {self.since}..)"


def correction_type_choices() -> list[tuple[str, str]]:
    """``(name, label)`` of every kind of correction in the core's registry."""
    from segmentation.core.editing import EDIT_KINDS  # the core loads numpy: read when first asked

    return [(kind.name, kind.label) for kind in EDIT_KINDS.values()]


class Correction(models.Model):
    """One edit a person made to a label version: the typed correction record of the guide.

    ``label_version`` is the version the edit was made on, ``result_version`` the new version
    it produced; the masks before and after (the edited nuclei in ``bbox``) are in the
    volume's correction store (``segmentation.core.CorrectionTracker``, record ``record_id``).
    Nothing is deleted: an undo is a new version that restores the region, recorded here as
    ``undone_version``; a redo is a new record (``redo_of``). A check (``confirm``) changes no
    voxel: withdrawing it sets ``undone_at`` only.
    """

    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="corrections")
    #: A kind of the core's registry (``segmentation.core.editing.EDIT_KINDS``); a kind
    #: registered there is a choice here with no migration.
    correction_type = models.CharField(max_length=16, choices=correction_type_choices)
    label_version = models.ForeignKey(LabelVersion, on_delete=models.PROTECT, related_name="corrections",
                                      help_text="the version the edit was made on")
    result_version = models.OneToOneField(LabelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="made_by_correction",
                                          help_text="the version the edit produced (none for a confirm)")
    model_version = models.CharField(max_length=200, blank=True,
                                     help_text="the model that produced the labels corrected")
    nucleus_ids = models.JSONField(help_text="ids of the edited nuclei before the edit")
    new_ids = models.JSONField(help_text="ids of the edited nuclei after the edit")
    bbox = models.JSONField(help_text="[z0, z1, y0, y1, x0, x1], level-0 voxels, end exclusive")
    geometry = models.JSONField(help_text="what was drawn: segmentation.core.editing.Edit.to_dict()")
    record_id = models.PositiveIntegerField(help_text="the record in the volume's correction store")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="corrections")
    created_at = models.DateTimeField(auto_now_add=True)
    undone_version = models.OneToOneField(LabelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                          related_name="undoes_correction",
                                          help_text="the version that undid this edit")
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    redo_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="redos")

    class Review(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        AMENDED = "amended", "Amended"  # superseded by an instructor's own correction (``amended_by``)

    # Only approved corrections become training data. An instructor's or admin's own edit is
    # approved when made; a student's waits for review.
    review_status = models.CharField(max_length=16, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    amends = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="amended_by",
                               help_text="the student's correction this instructor's edit replaces")

    class Labels(models.TextChoices):
        UNCHANGED = "", "No verdict on the labels"
        REVERTED = "reverted", "Reverted in the latest labels"
        KEPT = "kept", "Kept in the labels by the reviewer"

    # What a rejection did to the latest labels: reverted (a new version, ``reverted_version``,
    # made by the reviewer; none for a confirm, whose mark is simply taken off) or kept.
    review_labels = models.CharField(max_length=8, choices=Labels.choices, blank=True, default="")
    reverted_version = models.OneToOneField(LabelVersion, null=True, blank=True, on_delete=models.PROTECT,
                                            related_name="reverts_correction",
                                            help_text="the version that took the rejected edit back out")

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["volume", "review_status"], name="correction_review_idx")]

    def __str__(self) -> str:
        return f"{self.correction_type} {self.nucleus_ids} on {self.label_version}"

    @property
    def undone(self) -> bool:
        return self.undone_at is not None

    @property
    def kind(self):
        """Its :class:`segmentation.core.editing.EditKind` (what the kind takes and changes)."""
        from segmentation.core.editing import edit_kind  # the core loads numpy: read when first asked

        return edit_kind(self.correction_type)

    @property
    def changes_voxels(self) -> bool:
        """False for a kind that changes no voxel (a check): no label version, its own undo."""
        return self.kind.changes_voxels

    @property
    def region(self) -> tuple[slice, slice, slice]:
        z0, z1, y0, y1, x0, x1 = self.bbox
        return slice(z0, z1), slice(y0, y1), slice(x0, x1)


class Assignment(models.Model):
    """Work an instructor gives a student: a volume, or a region of it, by a due date."""

    class State(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        SUBMITTED = "submitted", "Submitted"  # the student says it is done
        COMPLETED = "completed", "Completed"  # the instructor accepts it
        REOPENED = "reopened", "Reopened"  # the instructor sends it back

    #: The states in which the student may still edit (``annotation.roles.editable_regions``).
    OPEN_STATES = (State.ASSIGNED, State.REOPENED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="assignments")
    volume = models.ForeignKey(Volume, on_delete=models.CASCADE, related_name="assignments")
    student = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    region = models.JSONField(null=True, blank=True,
                              help_text="[z0, z1, y0, y1, x0, x1] level-0 voxels, end exclusive; empty: the volume")
    note = models.TextField(blank=True)
    due = models.DateField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.ASSIGNED)
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due", "id"]

    def __str__(self) -> str:
        return f"{self.volume} for {self.student} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def overdue(self) -> bool:
        """Still open after its due date."""
        import datetime

        return self.is_open and self.due is not None and self.due < datetime.date.today()


class AuditEvent(models.Model):
    """Who did what, when, to which object and on which label version. Rows are only added."""

    project = models.ForeignKey(Project, null=True, on_delete=models.SET_NULL, related_name="audit_events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64, help_text="<entity>.<verb>, e.g. correction.create")
    object_type = models.CharField(max_length=32)
    object_id = models.PositiveBigIntegerField(null=True)
    label_version = models.CharField(max_length=16, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.object_type} {self.object_id}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("the audit trail is append-only")
        super().save(*args, **kwargs)
