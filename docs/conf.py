"""Sphinx configuration of the ase_sbs documentation.

Build (from the repository root, with the ``docs`` extra installed):

    sphinx-build -W --keep-going -b html docs docs/_build/html

The tutorials are MyST Markdown notebooks executed at build time (``myst_nb``).
"""

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
# the tutorial kernels inherit this environment: they find the examples and the package here
os.environ["ASE_SBS_ROOT"] = str(ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p)
os.environ.setdefault("MPLBACKEND", "Agg")

project = "ase_sbs"
author = "ase_sbs contributors"
copyright = "ase_sbs contributors"
version = release = "0.1.0"

extensions = [
    "myst_nb",  # MyST Markdown pages and executed notebooks (loads myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: equations render without a network
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute", "build.sh", ".jupyter_cache"]

# MyST
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# executed notebooks
nb_execution_mode = os.environ.get("ASE_SBS_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 600  # seconds per cell
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
nb_output_stderr = "remove"  # progress lines and library warnings stay out of the pages

# API
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True

# HTML
html_theme = "furo"
html_title = "ase_sbs"
html_static_path = ["_static"]
copybutton_prompt_text = r"\$ "
copybutton_prompt_is_regexp = True


def _check_api_page(app):
    """Every name of ``ase_sbs.__all__`` must be documented on the API index page."""
    import re

    import ase_sbs
    from sphinx.util import logging

    text = (DOCS / "api" / "index.md").read_text()
    documented = set(re.findall(r"\.\. auto(?:function|class):: ase_sbs\.(\w+)", text))
    for name in sorted(set(ase_sbs.__all__) - documented):
        logging.getLogger(__name__).warning("ase_sbs.%s is in ase_sbs.__all__ but not in docs/api/index.md", name)


def _escape_bars(line):
    """Bars outside ``literals`` escaped: shown as written, not substitution references."""
    import re

    parts = line.split("``")
    parts[::2] = [re.sub(r"(?<!\\)\|", r"\\|", p) for p in parts[::2]]
    return "``".join(parts)


def _plain_text_bars(app, what, name, obj, options, lines):
    """The docstrings write norms and orders as |x| (plain-text mathematics); in
    reStructuredText a bar starts a substitution reference, so bars outside ``literals``
    are escaped and shown as written."""
    for i, line in enumerate(lines):
        lines[i] = _escape_bars(line)


def _plain_text_bars_in_cli_help():
    """The same for the command-line help that sphinx-argparse renders as
    reStructuredText (``--max-strain``: |U - 1|)."""
    import sphinxarg.ext

    parse = sphinxarg.ext.parse_parser

    def escaped(value):
        if isinstance(value, dict):
            return {k: _escape_bars(v) if k == "help" and isinstance(v, str) else escaped(v) for k, v in value.items()}
        if isinstance(value, list):
            return [escaped(v) for v in value]
        return value

    def parse_parser(*args, **kwargs):
        return escaped(parse(*args, **kwargs))

    sphinxarg.ext.parse_parser = parse_parser


def setup(app):
    _plain_text_bars_in_cli_help()
    app.connect("builder-inited", _check_api_page)
    app.connect("autodoc-process-docstring", _plain_text_bars, priority=400)
