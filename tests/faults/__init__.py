"""The fault-injection suite: convoy's promise tested against crashes, stalls, partitions,
Redis restarts, skewed clocks, poison jobs and garbage, with real processes throughout.

``make test`` runs its fast tier (scaled down, a couple of minutes); ``make soak`` the long one
(``-m slow``). Each scenario prints its figures, and the end of the run repeats them all.

Where things are: ``cluster.py`` starts a private redis-server per scenario and the workers,
jam guards and producers (``produce.py``) as subprocesses with ``settings.py``; ``tasks.py``
is the job they run, which logs every start and end to ``journal.py``'s fsync'd files;
``hooks.py`` injects faults inside a worker at exact points; ``proxy.py`` partitions one;
``checker.py`` turns it all into figures (its docstring defines them).
"""
