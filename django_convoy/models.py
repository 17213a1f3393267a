"""The admin's handle on convoy: a model with no table, so that queues get permissions.

Convoy keeps everything in Redis. The admin, its permissions and its log are built around models,
so ``Queue`` exists only to give them one: ``view_queue`` lets staff see the dashboard,
``change_queue`` lets them act on jobs, and each action is logged against the queue it touched.
"""

from __future__ import annotations

from django.db import models


class Queue(models.Model):
    """A configured queue, as the admin and its log refer to it; never saved."""

    name = models.CharField(max_length=100, primary_key=True)

    class Meta:
        managed = False
        default_permissions = ("view", "change")
        verbose_name = "queue"
        verbose_name_plural = "queues"

    def __str__(self) -> str:
        return self.name
