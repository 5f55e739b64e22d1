"""The table of the database cache (rate-limit counters, throttles) when no Redis is set.

Created by a migration so that `migrate` is the only setup step of every install (demo,
compose, tests on a fresh database), whichever cache is configured at the time: a site that
switches from Redis to the database later finds the table there.
"""

from django.conf import settings
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations


def create_cache_table(apps, schema_editor):
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(
        schema_editor.connection.alias, settings.CREDENCE_CACHE_TABLE, dry_run=False
    )


def drop_cache_table(apps, schema_editor):
    table = schema_editor.connection.ops.quote_name(settings.CREDENCE_CACHE_TABLE)
    schema_editor.execute(f"DROP TABLE IF EXISTS {table}")


class Migration(migrations.Migration):
    dependencies = []
    operations = [migrations.RunPython(create_cache_table, drop_cache_table)]
