from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ConvoyConfig(AppConfig):
    name = "django_convoy"
    verbose_name = "Convoy"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        # Tasks register themselves on import; the worker and the checks need all of them.
        autodiscover_modules("tasks")
