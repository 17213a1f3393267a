"""Benchmarks of django_convoy: one script per workload, run together by ``make bench``.

Every script starts (or is handed) a private redis-server and never touches any other Redis.
"""
