"""``CONVOY["METRICS"]``: whether ``convoy/metrics`` answers, and to whom.

Never open by default: the view answers 404 until ``ENABLED``, and then only to the networks or
the permission ``ALLOW`` names (loopback by default).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

METRICS_KEYS = ("ENABLED", "ALLOW")
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class MetricsConfig:
    """The metrics endpoint's settings: networks allowed, or a permission a user must have."""

    enabled: bool = False
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    permission: str | None = None  # "app_label.codename": a logged-in user with it


def metrics_problems(raw: Any) -> list[tuple[str, str]]:
    """Return (message, hint) for each problem of ``CONVOY["METRICS"]`` (check convoy.E025)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [(f"CONVOY['METRICS'] must be a dict, not {type(raw).__name__}.", _HINT)]
    problems = [
        (
            f"CONVOY['METRICS'] has an unknown key {key!r}.",
            f"Valid keys: {', '.join(METRICS_KEYS)}.",
        )
        for key in raw
        if key not in METRICS_KEYS
    ]
    if not isinstance(raw.get("ENABLED", False), bool):
        problems.append(
            (f"CONVOY['METRICS']['ENABLED'] must be True or False, not {raw['ENABLED']!r}.", _HINT)
        )
    allow = raw.get("ALLOW", list(DEFAULT_ALLOW))
    if isinstance(allow, str):
        if allow.count(".") != 1 or not all(allow.split(".")):
            problems.append(
                (
                    f"CONVOY['METRICS']['ALLOW'] {allow!r} is not a permission "
                    "('app_label.codename').",
                    _HINT,
                )
            )
    elif isinstance(allow, list | tuple):
        for network in allow:
            try:
                ipaddress.ip_network(network, strict=False)
            except (TypeError, ValueError):
                problems.append(
                    (
                        f"CONVOY['METRICS']['ALLOW'] has {network!r}, which is not an IP network.",
                        _HINT,
                    )
                )
    else:
        problems.append(
            (
                f"CONVOY['METRICS']['ALLOW'] must be a list of IP networks or a "
                f"permission, not {type(allow).__name__}.",
                _HINT,
            )
        )
    return problems


def metrics_config(raw: Any) -> MetricsConfig:
    """Read a valid ``CONVOY["METRICS"]`` (None: the default, closed)."""
    raw = raw or {}
    allow = raw.get("ALLOW", DEFAULT_ALLOW)
    if isinstance(allow, str):
        return MetricsConfig(bool(raw.get("ENABLED")), (), allow)
    networks = tuple(ipaddress.ip_network(network, strict=False) for network in allow)
    return MetricsConfig(bool(raw.get("ENABLED")), networks, None)


_HINT = (
    'e.g. "METRICS": {"ENABLED": True, "ALLOW": ["10.0.0.0/8"]} (networks a scraper connects '
    'from) or {"ENABLED": True, "ALLOW": "django_convoy.view_queue"} (a permission).'
)
