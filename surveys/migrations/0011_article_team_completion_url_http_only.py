"""Completion URLs are http(s) only (validated in the model; rows stored before are
never rendered as links, surveys.selectors.completion_link). Articles get an owning team;
existing articles keep none and so form the shared pool every team reads (as before),
which only superusers and holders of the model permission change from now on."""


import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('surveys', '0010_fraud_signals'),
    ]

    operations = [
        migrations.AddField(
            model_name='article',
            name='team',
            field=models.ForeignKey(blank=True, help_text="Only this team's members (and superusers) see the article. Empty: the shared pool, which every team reads.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='articles', to='surveys.team'),
        ),
        migrations.AlterField(
            model_name='study',
            name='completion_url',
            field=models.CharField(blank=True, help_text='Where to send participants when done, e.g. https://app.prolific.com/submissions/complete?cc={code}. {code} is replaced by the completion code.', max_length=1000, validators=[django.core.validators.URLValidator(message='Enter an http:// or https:// address, e.g. https://app.prolific.com/submissions/complete?cc={code}.', schemes=['http', 'https'])]),
        ),
    ]
