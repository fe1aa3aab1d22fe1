# Nucleus rows shared between label versions, step 2 of 3: every version's rows carried over,
# nothing lost. A volume's versions are taken in number order; a version whose parent is the
# one before it (an edit, an undo, a revert, a segmentation that kept nuclei) continues that
# one's lineage: a nucleus whose row is the same in every field shares the older row (its own
# copy is deleted), one that changed or went closes the older row at the version's number.
# Any other version starts its own lineage with its rows as they are. Backwards, every version
# gets its own copy of every row it holds again.

from django.db import migrations

OPEN = 2 ** 31 - 1
CHUNK = 500
_KEYS = ("id", "label_version", "label_version_id", "volume", "volume_id", "lineage", "since", "until")


def _fields(Nucleus) -> list[str]:
    return [f.attname for f in Nucleus._meta.concrete_fields if f.attname not in _KEYS]


def _chunks(ids):
    ids = list(ids)
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def share_rows(apps, schema_editor):
    LabelVersion = apps.get_model("annotation", "LabelVersion")
    Nucleus = apps.get_model("annotation", "Nucleus")
    fields = _fields(Nucleus)
    label = fields.index("label_id")
    for volume_id in LabelVersion.objects.values_list("volume_id", flat=True).distinct().order_by("volume_id"):
        previous, open_rows = None, {}  # label id -> (row id, every field) of the lineage's latest version
        for version in LabelVersion.objects.filter(volume_id=volume_id).order_by("number"):
            own = {values[label]: (row_id, tuple(values)) for row_id, *values in
                   Nucleus.objects.filter(label_version_id=version.id).values_list("id", *fields).iterator()}
            continues = previous is not None and version.parent_id == previous.id
            lineage = previous.lineage if continues else version.number
            if not continues:
                open_rows = {}
            shared = [row_id for k, (row_id, values) in own.items()
                      if k in open_rows and open_rows[k][1] == values]
            closed = [open_rows[k][0] for k in open_rows if k not in own or open_rows[k][1] != own[k][1]]
            for ids in _chunks(shared):
                Nucleus.objects.filter(id__in=ids).delete()
            for ids in _chunks(closed):
                Nucleus.objects.filter(id__in=ids).update(until=version.number)
            Nucleus.objects.filter(label_version_id=version.id).update(
                volume_id=volume_id, lineage=lineage, since=version.number, until=OPEN)
            for k, (row_id, values) in own.items():
                if not (k in open_rows and open_rows[k][1] == values):
                    open_rows[k] = (row_id, values)
            for k in [k for k in open_rows if k not in own]:
                del open_rows[k]
            LabelVersion.objects.filter(id=version.id).update(lineage=lineage)
            version.lineage = lineage
            previous = version


def copy_rows(apps, schema_editor):
    LabelVersion = apps.get_model("annotation", "LabelVersion")
    Nucleus = apps.get_model("annotation", "Nucleus")
    fields = _fields(Nucleus)
    for version in LabelVersion.objects.order_by("volume_id", "number"):
        rows = Nucleus.objects.filter(volume_id=version.volume_id, lineage=version.lineage,
                                      since__lte=version.number, until__gt=version.number)
        rows.filter(since=version.number).update(label_version_id=version.id)
        copies = (Nucleus(label_version_id=version.id, **dict(zip(fields, values, strict=True)))
                  for values in rows.exclude(since=version.number).values_list(*fields).iterator())
        Nucleus.objects.bulk_create(copies, batch_size=CHUNK)


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0007_nucleus_rows_shared_schema'),
    ]

    operations = [
        migrations.RunPython(share_rows, copy_rows),
    ]
