"""Template helpers of the dashboard: durations, and moments in the current time zone."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import formats, timezone
from django.utils.html import format_html

from ..dashboard import display

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """Render seconds as a short duration, e.g. '4 min 3 s'."""
    return display.duration(seconds)


@register.simple_tag
def moment(value: datetime | None) -> str:
    """Render a time in the current time zone: the locale's date, and the time to the second
    (jobs take seconds: a minute says too little).

    The tooltip and the ``datetime`` attribute give it with its UTC offset.
    """
    if value is None:
        return "—"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{}">{}, {}</time>',
        local.isoformat(timespec="seconds"),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        formats.date_format(local, "DATE_FORMAT"),
        local.strftime("%H:%M:%S"),
    )


@register.filter
def count(value: int) -> str:
    """Render a count with the locale's thousand separator (live.js formats the same way)."""
    return formats.number_format(value, force_grouping=True)
