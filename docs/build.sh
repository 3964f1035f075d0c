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
exec sphinx-build -W --keep-going -b html "$@" docs docs/_build/html
