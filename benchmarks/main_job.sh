#!/usr/bin/env bash
# Whole-process wall time of the main job (README: `ase-sbs explore examples/BaTiO3_cubic.cif`)
# with each runner, RUNS times each (default 3), every run in a fresh output directory.
# Prints one line per run and the median per runner; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for engine in batched ase; do
  times=()
  for i in $(seq "$RUNS"); do
    out="$tmp/$engine-$i"
    t=$( { /usr/bin/time -f "%e" ase-sbs explore examples/BaTiO3_cubic.cif --engine "$engine" --no-progress \
             --out "$out" --json "$out.json" > /dev/null; } 2>&1 | tail -n 1 )
    echo "engine $engine run $i: $t s wall"
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk -v e="$engine" '{a[NR]=$1} END {print "engine " e ": median " a[int((NR+1)/2)] " s of " NR " runs (min " a[1] ", max " a[NR] ")"}'
done
