"""The admin dashboard: its views and actions (``admin.py`` mounts them), paged listings of one
state (``browse.py``), the statistics feeding the pages and their JSON (``statistics.py``), and
how numbers are shown (``display.py``). Its templates and static files live in the app's
``templates/admin/django_convoy/`` and ``static/django_convoy/``, where Django finds them."""
