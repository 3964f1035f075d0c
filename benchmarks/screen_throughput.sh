#!/usr/bin/env bash
# Throughput of `ase-sbs screen` (parents per minute) with 1 and 2 local Dask workers:
# eight cubic perovskites of examples/perovskites/ at k = 0 with SevenNet-0 (the default
# setting), each run as a whole process into a fresh database. A local cluster shares the
# machine's cores among its workers (OMP_NUM_THREADS = cores / workers).
# Prints one line per run and the median per worker count; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1}
PARENTS="BaTiO3 KNbO3 PbTiO3 SrTiO3 LaAlO3 SrZrO3 KTaO3 BaZrO3"
files=()
for p in $PARENTS; do files+=("examples/perovskites/$p.extxyz"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "$(nproc) cores; ${#files[@]} parents: $PARENTS"
for workers in 1 2; do
  rates=()
  for i in $(seq "$RUNS"); do
    db="$tmp/w$workers-$i.db"
    t=$( { /usr/bin/time -f "%e" ase-sbs screen "${files[@]}" --workers "$workers" --db "$db" \
             --no-progress > "$tmp/w$workers-$i.txt"; } 2>&1 | tail -n 1 )
    rate=$(awk -v n="${#files[@]}" -v t="$t" 'BEGIN {printf "%.2f", 60 * n / t}')
    rows=$(python -c "from ase.db import connect; print(connect('$db').count(kind='parent'))")
    echo "workers $workers run $i: $t s wall, $rows parent rows, $rate parents/min"
    rates+=("$rate")
  done
  printf '%s\n' "${rates[@]}" | sort -g | awk -v w="$workers" '{a[NR]=$1} END {print "workers " w ": median " a[int((NR+1)/2)] " parents/min of " NR " runs (min " a[1] ", max " a[NR] ")"}'
done
