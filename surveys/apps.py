from django.apps import AppConfig


class SurveysConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "surveys"

    def ready(self) -> None:
        # The audit log's registrations need every app's models, hence here.
        from surveys import audit

        audit.register()
