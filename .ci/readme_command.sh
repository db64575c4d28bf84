#!/usr/bin/env bash
# Print (--print) or run the N-th command of the README's Quickstart (the lines in its ```bash block that start with "$ ").
set -euo pipefail
print=0
if [ "$1" = "--print" ]; then print=1; shift; fi
n="$1"
cmd=$(awk '/^## Quickstart/{q=1} q&&/^```bash/{b=1;next} b&&/^```/{exit} b&&/^\$ /{print substr($0,3)}' README.md | sed -n "${n}p")
[ -n "$cmd" ] || { echo "README.md: Quickstart has no command $n" >&2; exit 1; }
if [ "$print" = 1 ]; then echo "$cmd"; exit 0; fi
echo "+ $cmd"
bash -c "$cmd"
