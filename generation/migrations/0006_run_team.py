"""Generation runs get an owning team. Existing runs keep none: they stay readable by every
team, as before, and only superusers and model-permission holders run or curate them; new
runs get their creator's team in the admin."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('generation', '0005_delete_detectorscore'),
        ('surveys', '0005_teams_checks_manipulations_exclusions'),
    ]

    operations = [
        migrations.AddField(
            model_name='generationrun',
            name='team',
            field=models.ForeignKey(blank=True, help_text="Only this team's members (and superusers) see the run and its samples.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='generation_runs', to='surveys.team'),
        ),
    ]
