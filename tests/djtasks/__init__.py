"""A test app of Django tasks run by ConvoyBackend (its tasks module is found like any app's)."""
