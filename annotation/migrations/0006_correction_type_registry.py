# The correction types come from the core's registry (segmentation.core.editing.EDIT_KINDS)
# through a callable, so a kind registered there needs no migration of its own.

from django.db import migrations, models

import annotation.models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0005_volume_import_jobs'),
    ]

    operations = [
        migrations.AlterField(
            model_name='correction',
            name='correction_type',
            field=models.CharField(choices=annotation.models.correction_type_choices, max_length=16),
        ),
    ]
