#!/usr/bin/env bash
# Run the N-th command of the README's Quickstart (the lines in its ```bash block that start with "$ ").
set -euo pipefail
n="$1"
cmd=$(awk '/^## Quickstart/{q=1} q&&/^```bash/{b=1;next} b&&/^```/{exit} b&&/^\$ /{print substr($0,3)}' README.md | sed -n "${n}p")
[ -n "$cmd" ] || { echo "README.md: Quickstart has no command $n" >&2; exit 1; }
echo "+ $cmd"
bash -c "$cmd"
