"""A chunk is a task of the queue: its lease goes (no heartbeat), and when it was last
started is what ``claimed_at`` recorded."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0006_run_team"),
    ]

    operations = [
        migrations.RemoveField(model_name="generationchunk", name="heartbeat"),
        migrations.RenameField(
            model_name="generationchunk", old_name="claimed_at", new_name="started_at"
        ),
        migrations.AlterField(
            model_name="generationchunk",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, help_text="How often it was started."),
        ),
        migrations.AlterField(
            model_name="generationchunk",
            name="worker",
            field=models.CharField(blank=True, help_text="Who started it last.", max_length=200),
        ),
    ]
