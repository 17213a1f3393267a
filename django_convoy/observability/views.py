"""``convoy/metrics``: the Prometheus exposition, for those ``CONVOY["METRICS"]`` allows.

404 until ``ENABLED`` (the endpoint does not exist for a site that did not ask for it); then
403 for a client outside ``ALLOW``'s networks (by ``REMOTE_ADDR``: behind a proxy, that is the
proxy), or without ``ALLOW``'s permission when it names one.
"""

from __future__ import annotations

import ipaddress
import logging

from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden

from ..conf import get_config
from ..exceptions import RedisUnavailable
from .config import MetricsConfig

logger = logging.getLogger(__name__)


def metrics(request: HttpRequest) -> HttpResponse:
    """Serve every queue's metrics in the Prometheus text format (or OpenMetrics, if asked)."""
    config = get_config().metrics
    if not config.enabled:
        raise Http404("The convoy metrics are not enabled (CONVOY['METRICS']['ENABLED']).")
    if not _allowed(request, config):
        return HttpResponseForbidden("Not allowed by CONVOY['METRICS']['ALLOW'].\n")
    try:
        from prometheus_client.exposition import choose_encoder

        from .prometheus import registry
    except ImportError as exc:
        raise ImproperlyConfigured(
            "convoy/metrics needs prometheus-client: pip install 'django-convoy[prometheus]'."
        ) from exc
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encoder(registry())
    except RedisUnavailable as exc:
        logger.warning("metrics scrape failed: %s", exc)
        return HttpResponse(f"# Redis is unavailable: {exc}\n", status=503)
    return HttpResponse(body, content_type=content_type)


def _allowed(request: HttpRequest, config: MetricsConfig) -> bool:
    if config.permission is not None:
        user = getattr(request, "user", None)
        return bool(user is not None and user.is_authenticated and user.has_perm(config.permission))
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in config.networks)
