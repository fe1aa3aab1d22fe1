# Nucleus rows shared between label versions, step 3 of 3: the per-version column gone, the
# new ones required, and the indexes reads by version use (volume, lineage, label_id; volume,
# lineage, uncertainty).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotation', '0008_nucleus_rows_shared_data'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='nucleus',
            name='nucleus_unique_label_id',
        ),
        migrations.RemoveIndex(
            model_name='nucleus',
            name='nucleus_uncertainty_idx',
        ),
        migrations.RemoveField(
            model_name='nucleus',
            name='label_version',
        ),
        migrations.AlterModelOptions(
            name='nucleus',
            options={'ordering': ['volume_id', 'lineage', 'label_id', 'since'], 'verbose_name_plural': 'nuclei'},
        ),
        migrations.AlterField(
            model_name='labelversion',
            name='lineage',
            field=models.PositiveIntegerField(help_text='the number of the version that measured every nucleus and '
                                                        'whose rows this one shares (its own, unless an edit made it)'),
        ),
        migrations.AlterField(
            model_name='nucleus',
            name='volume',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                    to='annotation.volume'),
        ),
        migrations.AlterField(
            model_name='nucleus',
            name='lineage',
            field=models.PositiveIntegerField(help_text='LabelVersion.lineage of the versions that share it'),
        ),
        migrations.AlterField(
            model_name='nucleus',
            name='since',
            field=models.PositiveIntegerField(help_text='the number of the first version that holds it'),
        ),
        migrations.AlterField(
            model_name='nucleus',
            name='until',
            field=models.PositiveIntegerField(default=2147483647, help_text="the number of the first version that no "
                                              "longer holds it; OPEN while the lineage's latest does"),
        ),
        migrations.AddConstraint(
            model_name='nucleus',
            constraint=models.UniqueConstraint(fields=('volume', 'lineage', 'label_id', 'since'),
                                               name='nucleus_unique_since'),
        ),
        migrations.AddConstraint(
            model_name='nucleus',
            constraint=models.UniqueConstraint(condition=models.Q(('until', 2147483647)),
                                               fields=('volume', 'lineage', 'label_id'), name='nucleus_unique_open'),
        ),
        migrations.AddConstraint(
            model_name='nucleus',
            constraint=models.CheckConstraint(condition=models.Q(('since__lt', models.F('until'))),
                                              name='nucleus_since_before_until'),
        ),
        migrations.AddIndex(
            model_name='nucleus',
            index=models.Index(fields=['volume', 'lineage', 'uncertainty'], name='nucleus_version_uncertainty'),
        ),
    ]
