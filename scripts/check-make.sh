#!/usr/bin/env bash
# check-make.sh (run by make vet): repository hygiene that no compiler checks.
#   - every name in the Makefile's .PHONY lines has a rule;
#   - no make target or script calls sudo (a non-root user is told what to
#     install instead, as make deps does);
#   - no tracked file refers to the shared directory outside the repository
#     (the tree generator is scripts/gentree.py).
# Prints each problem and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
problem() { echo "check-make: $*" >&2; fail=1; }

# Rule targets: "a b: deps" (not "a := x" nor "a ?= x"), recipes excluded.
rules=$(sed -n 's/^\([A-Za-z0-9_.%/-][A-Za-z0-9_.%/ -]*\):\([^=].*\)\{0,1\}$/\1/p' Makefile | tr ' ' '\n' | sort -u)
for t in $(sed -n 's/^\.PHONY:\(.*\)$/\1/p' Makefile); do
	grep -qx -- "$t" <<<"$rules" || problem "Makefile: .PHONY names '$t', which has no rule"
done

# The patterns are split so that this file does not match itself.
su=su; shared=shared
files=$(git ls-files --cached --others --exclude-standard 2>/dev/null || find . -type f -not -path './.git/*')
# Comment lines may name it; commands may not.
hits=$(grep -nwH -- "${su}do" Makefile scripts/* .ci/* 2>/dev/null | grep -v '^[^:]*:[0-9]*:[[:space:]]*#' || true)
[ -z "$hits" ] || problem "${su}do in a make target or script (say what to install instead):
$hits"
# shellcheck disable=SC2086 # one file name a line, none with spaces
hits=$(grep -nIH -E -- "(\.\./|/work/)${shared}/" $files 2>/dev/null || true)
[ -z "$hits" ] || problem "a reference outside the repository (use scripts/gentree.py):
$hits"
exit $fail
