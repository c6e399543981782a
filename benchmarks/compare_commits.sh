#!/usr/bin/env bash
# Interleaved runs of a benchmark at two commits on the same machine, under the same load.
# Usage: benchmarks/compare_commits.sh OLD_COMMIT [identify|series] [N]
# (checks OLD_COMMIT out into a temporary worktree; each side imports its own xtal via PYTHONPATH)
set -euo pipefail
old=${1:?old commit}; what=${2:-identify}; n=${3:-3}
repo=$(cd "$(dirname "$0")/.." && pwd); py=${PYTHON:-python3}
tmp=$(mktemp -d); git -C "$repo" worktree add -q "$tmp/old" "$old"
trap 'git -C "$repo" worktree remove --force "$tmp/old"; rm -rf "$tmp"' EXIT
for i in $(seq "$n"); do
  for side in old new; do
    dir=$([ "$side" = old ] && echo "$tmp/old" || echo "$repo")
    echo "$side:"
    if [ "$what" = identify ]; then
      (cd "$dir" && PYTHONPATH="$dir" "$py" benchmarks/bench_identify.py --repeat 3 | grep -E "identify:|fit_phases|best:")
    else
      (cd "$dir" && PYTHONPATH="$dir" "$py" benchmarks/bench_series.py --frames 250 --points 4000 --phases 8 --workers 1 | tail -1)
    fi
  done
done
