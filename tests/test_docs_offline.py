"""The documentation renders its equations without a network: MathJax is bundled into
the HTML (sphinx-mathjax-offline copies it into _static/mathjax), never loaded from a
CDN. Reads docs/conf.py, pyproject.toml and docs/build.sh; builds nothing."""

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CDN = re.compile(r"https?://|cdn\.jsdelivr|cdnjs\.|unpkg\.com|mathjax@", re.IGNORECASE)


def _conf_assignments():
    tree = ast.parse((ROOT / "docs" / "conf.py").read_text())
    return {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_conf_bundles_mathjax():
    conf = _conf_assignments()
    extensions = ast.literal_eval(conf["extensions"])
    assert "sphinx.ext.mathjax" in extensions
    assert "sphinx-mathjax-offline" in extensions
    # the extension sets mathjax_path to its local copy; conf.py must not point it elsewhere
    for name in ("mathjax_path", "mathjax3_config", "mathjax_options"):
        if name in conf:
            assert not CDN.search(ast.unparse(conf[name])), f"docs/conf.py: {name} names a remote URL"


def test_docs_extra_has_offline_mathjax():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    assert any(re.match(r"sphinx-mathjax-offline\b", req) for req in extra)


def test_build_checks_the_html_for_cdn_urls():
    build = (ROOT / "docs" / "build.sh").read_text()
    assert "_static/mathjax/tex-chtml.js" in build
    assert "cdn\\.jsdelivr" in build and "mathjax@" in build
