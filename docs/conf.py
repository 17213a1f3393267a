"""Sphinx configuration of django_convoy's manual (``make docs``).

The manual is hand-written reST and does not import the package: it builds without Django,
Redis or settings. Its Python examples are run by the test suite instead
(``tests/test_docs_examples.py``), against a private redis-server.
"""

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

project = "django_convoy"
author = "django_convoy's authors"
copyright = "django_convoy's authors"
release = version = _project["version"]

exclude_patterns = ["_build", "examples"]
root_doc = "index"
nitpicky = True  # a reference to nothing is a warning, and `make docs` makes warnings errors
# Builtins and typing names in signatures have no page here (no intersphinx: no network)
nitpick_ignore_regex = [("py:(class|exc|obj)", r"(str|int|float|bool|None|dict|list|tuple|Any)")]
highlight_language = "python"
pygments_style = "sphinx"

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"
html_title = f"django_convoy {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
