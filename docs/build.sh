#!/usr/bin/env bash
# Build the documentation: HTML in docs/_build/html, warnings as errors, the tutorials
# (docs/tutorials/*.md, MyST notebooks) executed. Installs nothing: run it in an
# environment with the package and its docs extra, e.g. `pip install -e '.[docs]'`.
#
#   docs/build.sh                          # executed notebooks are cached in docs/_build/.jupyter_cache
#   ASE_SBS_DOCS_EXECUTE=force docs/build.sh   # execute every tutorial again
#   docs/build.sh -j 2                     # extra arguments go to sphinx-build
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
sphinx-build -W --keep-going -b html "$@" docs docs/_build/html

# The pages render their equations without a network: MathJax is bundled into
# _static/mathjax (sphinx-mathjax-offline) and no page loads it, or anything else, from a CDN.
html=docs/_build/html
if [ ! -f "$html/_static/mathjax/tex-chtml.js" ]; then
    echo "docs/build.sh: $html/_static/mathjax/tex-chtml.js is missing: MathJax is not bundled" >&2
    exit 1
fi
if grep -rlE --include='*.html' 'cdn\.jsdelivr|cdnjs\.|unpkg\.com|mathjax@|polyfill\.io' "$html" >&2; then
    echo "docs/build.sh: the pages above load scripts from a CDN; the docs must render offline" >&2
    exit 1
fi
