#!/usr/bin/env bash
# bench-digest.sh — the cost of manifest version 2 (a SHA-256 per file):
# the binaries of a base commit (version 1 manifests, xxhash64 only) and of
# this checkout, side by side in one run, on the same tree, alternately.
#
#   scripts/bench-digest.sh [N]      N files (default 30000)
#
# Environment:
#   BASE=26216eb     the commit to compare with (built in a temporary git
#                    worktree, removed after)
#   REPS=5           repetitions per case (medians reported)
#   BENCH_DIR=DIR    work area (default /tmp/perf/digest-N), deleted at the end
#                    unless KEEP=1
#   TRASH=1          as in bench.sh: discarded trees wait in a trash emptied
#                    (then 61 s of settling) between cases, not deleted right
#                    before a timed run; TRASH=0 deletes at once
#
# Cases (as in scripts/bench.sh, over the local transport): publish-initial
# (a fresh root from the source), publish-1pct (the source changed by 1%,
# the root reset to snapshot 1), sync-initial (an empty mirror of snapshot
# 1), sync-1pct (a mirror at 1, the upstream at 2). The old binaries publish
# and mirror a root of their own (version 1 manifests), the new ones theirs
# (version 2). Each repetition runs old and new on identical fresh state,
# the order alternating. Every timed run starts after `sync`; publish and
# mirror-sync flush (syncfs) before they flip, so they pay for durability.
#
# Prints, per case, the median wall-clock seconds of each side, the median
# of the per-repetition ratios new/old and every ratio; then the same for
# user CPU seconds (GNU time). Everything version 2 adds (hashing, longer
# manifest records) is user time, which other load on a shared machine
# disturbs far less than wall-clock time; the system time of these runs is
# mostly directory operations, whose cost on ext4 depends on where the
# allocator put each side's tree (the two sides' roots sit in different
# block groups), not on the manifest's version.
set -euo pipefail

N=${1:-${N:-30000}}
REPS=${REPS:-5}
BASE=${BASE:-26216eb}
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${BENCH_DIR:-/tmp/perf/digest-$N}
TRASH=${TRASH:-1}

log() { echo "bench-digest: $*" >&2; }
die() { log "$*"; exit 1; }
command -v python3 >/dev/null || die "python3 is missing (the tree generator)"
TIMEV=/usr/bin/time
[ -x $TIMEV ] || die "GNU time ($TIMEV) is missing: run 'apt-get install time' as root"

now() { echo "${EPOCHREALTIME/,/.}"; }
# timed VAR cmd...: runs cmd after a sync (untimed); VAR gets its wall-clock
# seconds and user CPU seconds, "WALL USER".
timed() {
	local __v=$1; shift
	sync
	local t0 t1
	t0=$(now)
	$TIMEV -f '%U' -o "$D/time.out" "$@" >/dev/null
	t1=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$t0" -v b="$t1" -v c="$(tail -1 "$D/time.out")" 'BEGIN{printf "%.4f %.2f", b-a, c}')"
}
discard() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ "$TRASH" = 1 ]; then mkdir -p "$D/trash"; mv "$p" "$(mktemp -d "$D/trash/t.XXXXXX")/"; else rm -rf "$p"; fi
	done
}
empty_trash() {
	if [ -e "$D/trash" ]; then
		rm -rf "$D/trash"
		if [ "$TRASH" = 1 ]; then sync; log "waiting 61 s for freed inodes to age"; sleep 61; fi
	fi
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
# reset_root ROOT N: ROOT serves snapshot N again, newer ones dropped.
reset_root() {
	local root=$1 n=$2 s
	for s in "$root"/snapshots/*; do
		s=${s##*/}; s=${s%.manifest}
		if [ "$s" -gt "$n" ] 2>/dev/null; then discard "$root/snapshots/$s" "$root/snapshots/$s.manifest"; fi
	done
	ln -sfn "snapshots/$n" "$root/current"
	discard "$root/.work"
}

ROWS=() CPUROWS=()
# row ARRAY NAME OLD_TIMES NEW_TIMES: appends a table row to ARRAY.
row() {
	local -n rows=$1
	local name=$2 old new ratios=() i
	read -ra old <<<"$3"
	read -ra new <<<"$4"
	for i in "${!old[@]}"; do ratios+=("$(awk -v a="${new[$i]}" -v b="${old[$i]}" 'BEGIN{printf "%.3f", a/b}')"); done
	rows+=("$(printf '%-22s %9s %9s %9s   %s' "$name" "$(median "${old[@]}")" "$(median "${new[@]}")" "$(median "${ratios[@]}")" "${ratios[*]}")")
	log "$name: old [${old[*]}] new [${new[*]}] new/old [${ratios[*]}]"
}
# report NAME OLD_RUNS NEW_RUNS (each run "WALL USER"): one row of each table.
report() {
	local name=$1
	row ROWS "$name" "$(tr ' ' '\n' <<<"$2" | awk 'NR%2==1' | xargs)" "$(tr ' ' '\n' <<<"$3" | awk 'NR%2==1' | xargs)"
	row CPUROWS "$name (user)" "$(tr ' ' '\n' <<<"$2" | awk 'NR%2==0' | xargs)" "$(tr ' ' '\n' <<<"$3" | awk 'NR%2==0' | xargs)"
}

# both CASE FN: runs FN old and FN new REPS times, alternating who goes
# first; FN SIDE VAR sets VAR to the seconds it took.
both() {
	local name=$1 fn=$2 o=() n=() t i
	for ((i = 0; i < REPS; i++)); do
		if ((i % 2 == 0)); then
			$fn old t; o+=("$t"); $fn new t; n+=("$t")
		else
			$fn new t; n+=("$t"); $fn old t; o+=("$t")
		fi
	done
	empty_trash
	report "$name" "${o[*]}" "${n[*]}"
}

pub_initial() { discard "$D/$1/pub-tmp"; timed "$2" "$D/$1/bin/publish" -q --root "$D/$1/pub-tmp" --source "$D/src"; }
pub_1pct() { reset_root "$D/$1/up" 1; timed "$2" "$D/$1/bin/publish" -q --root "$D/$1/up" --source "$D/src"; }
sync_initial() { discard "$D/$1/m-tmp"; timed "$2" "$D/$1/bin/mirror-sync" -q --upstream "$D/$1/up" --root "$D/$1/m-tmp"; }
# The mirror's poll records go too: they vouch that the upstream has not
# moved since the mirror was at snapshot 2.
sync_1pct() { reset_root "$D/$1/mirror" 1; rm -f "$D/$1/mirror/.upstream" "$D/$1/mirror/seq/checked"; timed "$2" "$D/$1/bin/mirror-sync" -q --upstream "$D/$1/up" --root "$D/$1/mirror"; }

# ---------- main ----------
rm -rf "$D"; mkdir -p "$D/old/bin" "$D/new/bin"
NEW="$(cd "$HERE" && git rev-parse --short HEAD)$(cd "$HERE" && git diff --quiet HEAD || echo +dirty)"
log "building new ($NEW) and old ($BASE)"
(cd "$HERE" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$D/new/bin/" ./cmd/...)
git -C "$HERE" worktree add -q --detach "$D/base" "$BASE"
(cd "$D/base" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$D/old/bin/" ./cmd/...)
git -C "$HERE" worktree remove --force "$D/base"
log "generating $N files"
python3 "$HERE/scripts/gentree.py" "$D/src" "$N" --seed 1
log "tree: $(du -sh "$D/src" | cut -f1) in $N files; $(nproc) cores; REPS=$REPS"

both publish-initial pub_initial
for s in old new; do mv "$D/$s/pub-tmp" "$D/$s/up"; done
head -1 "$D/old/up/snapshots/1.manifest" "$D/new/up/snapshots/1.manifest" >&2
python3 "$HERE/scripts/gentree.py" "$D/src" "$N" --mutate 1 --seed 2
both publish-1pct pub_1pct
for s in old new; do ln -sfn snapshots/1 "$D/$s/up/current"; done
both sync-initial sync_initial
# The upstream moves on to snapshot 2 (its seq files as an update leaves them).
for s in old new; do
	mv "$D/$s/m-tmp" "$D/$s/mirror"; ln -sfn snapshots/2 "$D/$s/up/current"
	echo 3 >"$D/$s/up/seq/begin"; echo 3 >"$D/$s/up/seq/end"
done
both sync-1pct sync_1pct
for s in old new; do [ "$(readlink "$D/$s/mirror/current")" = snapshots/2 ] || die "$s mirror-sync did not reach snapshot 2"; done

echo
echo "manifest v2 (new, $NEW) vs v1 (old, $BASE) — N=$N files, $(nproc) cores, REPS=$REPS, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-22s %9s %9s %9s   %s\n' case old-s new-s new/old "ratios (each repetition)"
printf '%s\n' "${ROWS[@]}"
echo "user CPU seconds:"
printf '%s\n' "${CPUROWS[@]}"
if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D"; fi
