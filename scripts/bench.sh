#!/usr/bin/env bash
# bench.sh — seqmirror vs rsync, side by side, in one run.
#
#   scripts/bench.sh [N]            N files (default 100000)
#
# Environment:
#   REPS=3           repetitions per operation (the median is reported)
#   NOOP_REPS=7      repetitions of the no-op poll
#   BENCH_DIR=DIR    work area (default /tmp/perf/bench-N); deleted at the end
#                    unless KEEP=1
#   SCENARIOS="..."  subset of: publish_initial sync_initial noop publish_1pct sync_1pct
#   RSYNC_INITIAL=0  skip the rsync side of the two initial copies (saves disk
#                    and time at 1M files; the row then shows "-")
#   RSYNC_NOSYNC=0   skip the extra rsync run without the final flush
#   GENTREE=path     tree generator (default scripts/gentree.py)
#   TRASH=1          move discarded trees aside and wait 61 s between scenarios
#                    (see discard below); TRASH=0 deletes at once, for quick
#                    trial runs
#
# Every timed operation starts with the page cache warm and no dirty data
# (`sync` before each), and every operation that creates a tree pays for
# making it durable: seqmirror syncfs(2)s before it flips, so the rsync side
# is timed as `rsync ... && sync -f NEW` (the same syncfs). The rsync time
# without that flush is reported too ("rsync-nosync"). Each repetition runs
# both sides on identical fresh state, alternating.
#
# Peak RSS (/usr/bin/time "Maximum resident set size") is recorded for every
# seqmirror run and the table shows the largest seen for each operation.
#
# Adding a transport: each scenario is a function taking the upstream address
# seqmirror syncs from and the rsync source it is compared with, so an
# rsync-daemon section is one more call, e.g.
#   scenario_sync_1pct "rsync://localhost:PORT/up" "rsync://localhost:PORT/up/snapshots/2/" "(daemon)"
set -euo pipefail

N=${1:-${N:-100000}}
REPS=${REPS:-3}
NOOP_REPS=${NOOP_REPS:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
GENTREE=${GENTREE:-$HERE/scripts/gentree.py}
D=${BENCH_DIR:-/tmp/perf/bench-$N}
SCENARIOS=${SCENARIOS:-"publish_initial sync_initial noop publish_1pct sync_1pct"}
RSYNC_INITIAL=${RSYNC_INITIAL:-1}
RSYNC_NOSYNC=${RSYNC_NOSYNC:-1}
BIN=$D/bin # private copy: rebuilding the repo's bin/ mid-run changes nothing
PUBLISH=$BIN/publish
MSYNC=$BIN/mirror-sync
TIMEV=/usr/bin/time

log() { echo "bench: $*" >&2; }
die() { log "$*"; exit 1; }

command -v rsync >/dev/null || die "rsync is missing (make deps)"
command -v python3 >/dev/null || die "python3 is missing (the tree generator): run 'apt-get install python3' as root"
[ -f "$GENTREE" ] || die "$GENTREE not found (set GENTREE)"
if [ ! -x $TIMEV ]; then
	[ "$(id -u)" = 0 ] || die "GNU time ($TIMEV) is missing: run 'apt-get install time' as root"
	log "installing GNU time"; apt-get install -y -qq time >/dev/null || die "need $TIMEV (apt-get install time)"
fi

# ---------- helpers ----------

# now: seconds since the epoch with microseconds.
now() { echo "${EPOCHREALTIME/,/.}"; }

# timed VAR cmd...: runs cmd after a sync (untimed), sets VAR to the seconds it took.
timed() {
	local __v=$1; shift
	sync
	local t0 t1
	t0=$(now)
	"$@" >/dev/null
	t1=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')"
}

# seqm VAR RSSVAR cmd...: timed run of a seqmirror command under GNU time,
# RSSVAR gets its peak RSS in KiB.
seqm() {
	local __v=$1 __r=$2; shift 2
	timed "$__v" $TIMEV -f %M -o "$D/time.out" "$@"
	printf -v "$__r" '%s' "$(tail -1 "$D/time.out")"
}

# rsync_durable DST args...: rsync then syncfs the destination's filesystem.
rsync_durable() { local dst=$1; shift; rsync "$@" && sync -f "$dst"; }

# discard PATH...: takes trees out of the way of the next timed run without
# deleting them: they move to $D/trash, emptied between scenarios (then
# settle). Deleting a tree shortly before a timed run makes that run pay for
# it: on ext4 without a journal (as on the bench machines) inode allocation
# skips every inode freed in the last 60 s (300 s while its inode-table
# block is dirty), reading inode-table buffers one by one (recently_deleted()
# in fs/ext4/ialloc.c); mkdir of a snapshot's 2,000 directories took 5-15x
# longer right after `rm -rf` of another snapshot. Keeping many trees
# around is not free either (every cached dentry lengthens the kernel's
# lookup chains: linkat and fstatat slowed by ~25% with ~40 trees kept), so
# the trash lives for one scenario only. Real publishes and syncs run
# minutes apart. TRASH=0 deletes at once and does not wait; at N > 200000
# the trees are too large to keep and are deleted at once anyway.
TRASH=${TRASH:-1}
discard() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ "$TRASH" = 1 ] && [ "$N" -le 200000 ]; then
			mkdir -p "$D/trash"
			mv "$p" "$(mktemp -d "$D/trash/t.XXXXXX")/"
		else
			rm -rf "$p"
		fi
	done
}
# empty_trash: delete what discard kept, then settle.
empty_trash() {
	if [ -e "$D/trash" ]; then rm -rf "$D/trash"; settle; fi
}
# settle: after deleting trees outside a timed run, let the kernel's window
# for recently freed inodes pass.
settle() {
	if [ "$TRASH" = 1 ]; then
		sync; log "waiting 61 s for freed inodes to age (see discard)"; sleep 61
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

ROWS=()
# row NAME SEQ_TIMES RSYNC_TIMES RSYNC_NOSYNC_TIMES MAXRSS_KB
row() {
	local name=$1 s=$2 r=$3 rn=$4 rss=$5
	local sm rm rnm ratio ration
	sm=$(median $s)
	if [ -n "$r" ]; then
		rm=$(median $r)
		ratio=$(awk -v a="$rm" -v b="$sm" 'BEGIN{printf "%.1fx", a/b}')
		rnm=-; ration=-
		if [ -n "$rn" ]; then
			rnm=$(median $rn)
			ration=$(awk -v a="$rnm" -v b="$sm" 'BEGIN{printf "%.1fx", a/b}')
		fi
	else
		rm=-; rnm=-; ratio=-; ration=-
	fi
	ROWS+=("$(printf '%-22s %9s %12s %9s %10s %14s %8s' "$name" "$ratio" "$ration" "$sm" "$rm" "$rnm" "$((rss / 1024))")")
	log "$name: seqmirror $sm s, rsync $rm s (nosync $rnm s), ratio $ratio, peak RSS $((rss / 1024)) MiB; runs: seqmirror [$s] rsync [$r]"
}

print_table() {
	echo
	echo "seqmirror vs rsync — N=$N files, $(nproc) cores, REPS=$REPS (median), $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "ratio = rsync time / seqmirror time (higher is better for seqmirror)"
	printf '%-22s %9s %12s %9s %10s %14s %8s\n' operation ratio ratio-nosync seqm-s rsync-s rsync-nosync-s RSS-MiB
	printf '%s\n' "${ROWS[@]}"
}

# reset_root ROOT N: make ROOT serve snapshot N again, dropping newer ones
# (so a repetition starts from the same state).
reset_root() {
	local root=$1 n=$2 s
	for s in "$root"/snapshots/*; do
		s=${s##*/}; s=${s%.manifest}
		if [ "$s" -gt "$n" ] 2>/dev/null; then discard "$root/snapshots/$s" "$root/snapshots/$s.manifest"; fi
	done
	ln -sfn "snapshots/$n" "$root/current"
	discard "$root/.work"
}

# ---------- scenarios ----------
# Each takes the state it needs from the variables below and appends a row.
SRC=$D/src        # source tree (mutated by 1% before publish_1pct)
UP=$D/up          # publisher's export root: snapshot 1 = original, 2 = 1% changed
M=$D/mirror       # mirror root
RS=$D/rsync-dst   # scratch rsync destination

# scenario_publish_initial: fresh root from SRC vs rsync -a SRC/ NEW/.
scenario_publish_initial() {
	local s=() r=() rn=() rss=0 t k
	for ((i = 0; i < REPS; i++)); do
		discard "$D/pub-tmp"
		seqm t k "$PUBLISH" -q --root "$D/pub-tmp" --source "$SRC"; s+=("$t"); rss=$(maxof $rss $k)
		if [ "$RSYNC_INITIAL" = 1 ]; then
			discard "$RS"; timed t rsync_durable "$D" -a "$SRC/" "$RS/"; r+=("$t")
			if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a "$SRC/" "$RS/"; rn+=("$t"); discard "$RS"; fi
		fi
	done
	rm -rf "$UP"; mv "$D/pub-tmp" "$UP"
	empty_trash
	row publish-initial "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# scenario_sync_initial UPSTREAM RSYNC_SRC [LABEL]: empty mirror from UPSTREAM.
scenario_sync_initial() {
	local up=$1 rsrc=$2 label=${3:-}
	local s=() r=() rn=() rss=0 t k
	for ((i = 0; i < REPS; i++)); do
		discard "$D/m-tmp"
		seqm t k "$MSYNC" -q --upstream "$up" --root "$D/m-tmp"; s+=("$t"); rss=$(maxof $rss $k)
		if [ "$RSYNC_INITIAL" = 1 ]; then
			discard "$RS"; timed t rsync_durable "$D" -a --delete "$rsrc" "$RS/"; r+=("$t")
			if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a --delete "$rsrc" "$RS/"; rn+=("$t"); discard "$RS"; fi
		fi
	done
	rm -rf "$M"; mv "$D/m-tmp" "$M"
	empty_trash
	row "sync-initial$label" "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# scenario_noop UPSTREAM RSYNC_SRC [LABEL]: mirror already level.
scenario_noop() {
	local up=$1 rsrc=$2 label=${3:-}
	local s=() r=() rss=0 t k
	discard "$RS"; cp -al "$M/current/" "$RS" # an identical copy for rsync to compare against
	# GNU time's own fork and exec would be a large part of a few-ms poll, and
	# the rsync side runs without it: measure RSS once, untimed, then time
	# both sides bare.
	seqm t rss "$MSYNC" -q --upstream "$up" --root "$M"
	for ((i = 0; i < NOOP_REPS; i++)); do
		timed t "$MSYNC" -q --upstream "$up" --root "$M"; s+=("$t")
		timed t rsync -a --delete "$rsrc" "$RS/"; r+=("$t")
	done
	discard "$RS"
	empty_trash
	row "noop-poll$label" "${s[*]}" "${r[*]}" "${r[*]}" "$rss"
}

# scenario_publish_1pct: SRC changed by 1%; publish vs rsync --link-dest.
scenario_publish_1pct() {
	python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed 2
	local s=() r=() rn=() rss=0 t k
	for ((i = 0; i < REPS; i++)); do
		reset_root "$UP" 1
		seqm t k "$PUBLISH" -q --root "$UP" --source "$SRC"; s+=("$t"); rss=$(maxof $rss $k)
		discard "$RS"; timed t rsync_durable "$D" -a --link-dest="$UP/snapshots/1" "$SRC/" "$RS/"; r+=("$t")
		if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a --link-dest="$UP/snapshots/1" "$SRC/" "$RS/"; rn+=("$t"); discard "$RS"; fi
	done
	[ "$(readlink "$UP/current")" = snapshots/2 ] || die "publish did not make snapshot 2"
	empty_trash
	row publish-1pct "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# scenario_sync_1pct UPSTREAM RSYNC_SRC [LABEL]: mirror at 1, upstream at 2.
scenario_sync_1pct() {
	local up=$1 rsrc=$2 label=${3:-}
	local s=() r=() rn=() rss=0 t k
	for ((i = 0; i < REPS; i++)); do
		reset_root "$M" 1
		seqm t k "$MSYNC" -q --upstream "$up" --root "$M"; s+=("$t"); rss=$(maxof $rss $k)
		discard "$RS"; timed t rsync_durable "$D" -a --delete --link-dest="$M/snapshots/1" "$rsrc" "$RS/"; r+=("$t")
		if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a --delete --link-dest="$M/snapshots/1" "$rsrc" "$RS/"; rn+=("$t"); discard "$RS"; fi
	done
	[ "$(readlink "$M/current")" = snapshots/2 ] || die "mirror-sync did not reach snapshot 2"
	empty_trash
	row "sync-1pct$label" "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# ---------- main ----------
log "building"
mkdir -p "$D" "$BIN"
(cd "$HERE" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$BIN/" ./cmd/...) # as make build
log "commit $(cd "$HERE" && git rev-parse --short HEAD)$(cd "$HERE" && git diff --quiet HEAD || echo +dirty)"
# The pristine tree is cached (marker outside the tree) and copied for the run
# when small; at large N it is used in place and regenerated next time.
GEN=$D/gen
if [ ! -f "$D/gen.ok" ]; then
	log "generating $N files in $GEN"
	rm -rf "$GEN"; python3 "$GENTREE" "$GEN" "$N" --seed 1; touch "$D/gen.ok"
fi
for p in "$SRC" "$UP" "$M" "$RS" "$D/trash"; do
	if [ -e "$p" ]; then rm -rf "$SRC" "$UP" "$M" "$RS" "$D/trash"; settle; break; fi
done
if [ "$N" -le 200000 ]; then cp -a "$GEN" "$SRC"; else mv "$GEN" "$SRC"; rm -f "$D/gen.ok"; fi
log "tree: $(du -sh "$SRC" | cut -f1) in $N files; scenarios: $SCENARIOS"

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# Order: the publisher's snapshots 1 (original) and 2 (1% changed) first, so
# that at large N the source can go before the mirror takes its own copy
# (at 1M files each full copy is ~18 GB). The mirror then copies snapshot 1
# while the publisher serves it, and syncs the 1% change once it serves 2.
if has publish_initial; then scenario_publish_initial
else "$PUBLISH" -q --root "$UP" --source "$SRC" >/dev/null; fi
if has publish_1pct; then scenario_publish_1pct
else python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed 2; "$PUBLISH" -q --root "$UP" --source "$SRC" >/dev/null; fi
if [ "$N" -gt 200000 ]; then rm -rf "$SRC"; settle; fi
ln -sfn snapshots/1 "$UP/current" # serve 1 for the mirror's first copy
if has sync_initial; then scenario_sync_initial "$UP" "$UP/snapshots/1/"
else "$MSYNC" -q --upstream "$UP" --root "$M" >/dev/null; fi
if has noop; then scenario_noop "$UP" "$UP/snapshots/1/"; fi
ln -sfn snapshots/2 "$UP/current"
if has sync_1pct; then scenario_sync_1pct "$UP" "$UP/snapshots/2/"; fi
# The rsync daemon transport has its own script (scripts/bench-rsyncd.sh);
# to add it here, start a daemon exporting $UP and call scenario_sync_1pct /
# scenario_noop with the rsync:// address and a label.

print_table
if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D/trash" "$SRC" "$UP" "$M" "$RS" "$D/pub-tmp" "$D/m-tmp" "$D/time.out" "$BIN"; fi
