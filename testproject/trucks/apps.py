from django.apps import AppConfig


class TrucksConfig(AppConfig):
    name = "testproject.trucks"
    verbose_name = "Monster trucks"
