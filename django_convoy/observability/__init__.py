"""Seeing inside convoy without writing code: Prometheus metrics (``prometheus.py``, served by
``views.py``), ``convoy_stats``'s tables (``console.py``) and OpenTelemetry spans
(``tracing.py``). Django signals live in ``django_convoy.signals``, as Django keeps its own."""
