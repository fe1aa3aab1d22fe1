# Nucleus rows shared between label versions, step 1 of 3: the new columns, empty. Step 2
# (0008) fills them from the rows each version had, step 3 (0009) drops the old column.
# Three migrations, so that PostgreSQL never alters the table in the transaction that
# updated its rows.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0006_correction_type_registry'),
    ]

    operations = [
        migrations.AddField(
            model_name='labelversion',
            name='lineage',
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name='nucleus',
            name='label_version',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='nuclei',
                                    to='annotation.labelversion'),
        ),
        migrations.AddField(
            model_name='nucleus',
            name='volume',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                    to='annotation.volume'),
        ),
        migrations.AddField(
            model_name='nucleus',
            name='lineage',
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AddField(
            model_name='nucleus',
            name='since',
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AddField(
            model_name='nucleus',
            name='until',
            field=models.PositiveIntegerField(default=2147483647),
        ),
    ]
