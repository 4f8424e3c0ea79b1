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
#   SCENARIOS="..."  subset of: publish_initial publish_1pct publish_noop
#                    sync_initial noop sync_1pct (default all but publish_noop)
#   VIAS="local"     how mirror-sync reaches the master, any of: local (a path),
#                    rsync (a stock rsync --daemon on 127.0.0.1 serving the
#                    master's export root; rsync's side pulls the served tree
#                    from the same daemon), http (Debian's nginx serving the
#                    export root; rsync's side pulls from the rsync daemon).
#                    The sync scenarios run once per transport.
#   FLOOR=0          1: also time `cp -al` of the served snapshot beside the two
#                    1% scenarios: the cost of a hard-link farm alone, the floor
#                    of both tools on a filesystem without copy-on-write
#   CSV=FILE         append one line per timed run to FILE
#                    (fs,files,op,via,tool,seconds,rss_kib: scripts/bench-scale.sh)
#   RSYNC_INITIAL=0  skip the rsync side of the two initial copies (saves disk
#                    and time at 1M files; the row then shows "-")
#   RSYNC_NOSYNC=0   skip the extra rsync run without the final flush
#   GENTREE=path     tree generator (default scripts/gentree.py)
#   TRASH=1          move discarded trees aside and wait 61 s between scenarios
#                    (see discard below); TRASH=0 deletes at once, for quick
#                    trial runs
#
# Every timed operation starts with the page cache warm (above 500k files,
# initial copies start cold on both sides: see warm) and no dirty data
# (`sync` before each), and every operation that creates a tree pays for
# making it durable: seqmirror syncfs(2)s before it flips, so the rsync side
# is timed as `rsync ... && sync -f NEW` (the same syncfs). The rsync time
# without that flush is reported too ("rsync-nosync"). Each repetition runs
# both sides on identical fresh state, alternating.
#
# Peak RSS (/usr/bin/time "Maximum resident set size") is recorded for every
# seqmirror run and the table shows the largest seen for each operation.
#
# On btrfs (BENCH_DIR on a btrfs filesystem, as bench-scale.sh arranges) the
# source is a subvolume, so publish and mirror-sync take their copy-on-write
# paths (docs/operating.md section 20); rsync's side is unchanged.
#
# Each sync scenario is a function taking the upstream address seqmirror
# syncs from, the rsync source it is compared with and the transport's name.
set -euo pipefail

N=${1:-${N:-100000}}
REPS=${REPS:-3}
NOOP_REPS=${NOOP_REPS:-7}
HERE=$(cd "$(dirname "$0")/.." && pwd)
GENTREE=${GENTREE:-$HERE/scripts/gentree.py}
D=${BENCH_DIR:-/tmp/perf/bench-$N}
SCENARIOS=${SCENARIOS:-"publish_initial sync_initial noop publish_1pct sync_1pct"}
VIAS=${VIAS:-local}
FLOOR=${FLOOR:-0}
CSV=${CSV:-}
RSYNC_INITIAL=${RSYNC_INITIAL:-1}
RSYNC_NOSYNC=${RSYNC_NOSYNC:-1}
BIN=$D/bin # private copy: rebuilding the repo's bin/ mid-run changes nothing
PUBLISH=$BIN/publish
MSYNC=$BIN/mirror-sync
TIMEV=/usr/bin/time

log() { echo "bench: $(date -u +%T) $*" >&2; }
die() { log "$*"; exit 1; }

command -v rsync >/dev/null || die "rsync is missing (make deps)"
command -v python3 >/dev/null || die "python3 is missing (the tree generator): run 'apt-get install python3' as root"
[ -f "$GENTREE" ] || die "$GENTREE not found (set GENTREE)"
if [ ! -x $TIMEV ]; then
	[ "$(id -u)" = 0 ] || die "GNU time ($TIMEV) is missing: run 'apt-get install time' as root"
	log "installing GNU time"; apt-get install -y -qq time >/dev/null || die "need $TIMEV (apt-get install time)"
fi

# ---------- helpers ----------

# quiesce: no dirty data, and on btrfs no deleted subvolume still being
# cleaned in the background, before a timed run.
quiesce() {
	sync
	[ "$FSTYPE" = btrfs ] || return 0
	# A deleted subvolume is cleaned after a transaction commit, by default
	# within 30 s; BTRFS_IOC_SYNC (btrfs filesystem sync) commits and wakes
	# the cleaner, so poll with it rather than wait for the timer.
	local i
	for ((i = 0; i < 600; i++)); do
		[ -n "$(btrfs subvolume list -d "$D" 2>/dev/null)" ] || break
		btrfs filesystem sync "$D" >/dev/null 2>&1 || true
		sleep 0.1
	done
	sync
}

# rmtree PATH...: rm -rf that also removes btrfs subvolumes (read-only
# snapshots included), innermost first.
rmtree() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ "$FSTYPE" = btrfs ] && [ -d "$p" ] && [ ! -L "$p" ]; then
			find "$p" -depth -type d -inum 256 -exec btrfs subvolume delete {} + >/dev/null
		fi
		rm -rf "$p"
	done
}

# now: seconds since the epoch with microseconds.
now() { echo "${EPOCHREALTIME/,/.}"; }

# timed VAR cmd...: runs cmd after a sync (untimed), sets VAR to the seconds it took.
timed() {
	local __v=$1; shift
	quiesce
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
# the trees are too large to keep and are deleted at once anyway. On btrfs
# (no such window; and a read-only snapshot cannot move to another
# directory) trees are deleted at once, and each timed run waits for the
# deleted subvolumes to be cleaned (quiesce).
TRASH=${TRASH:-1}
discard() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ "$TRASH" = 1 ] && [ "$N" -le 200000 ] && [ "$FSTYPE" != btrfs ]; then
			mkdir -p "$D/trash"
			mv "$p" "$(mktemp -d "$D/trash/t.XXXXXX")/"
		else
			rmtree "$p"
		fi
	done
}
# empty_trash: delete what discard kept, then settle.
empty_trash() {
	if [ -e "$D/trash" ]; then rmtree "$D/trash"; settle; fi
}
# settle: after deleting trees outside a timed run, let the kernel's window
# for recently freed inodes pass.
settle() {
	if [ "$TRASH" = 1 ] && [ "$FSTYPE" != btrfs ]; then
		sync; log "waiting 61 s for freed inodes to age (see discard)"; sleep 61
	fi
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }

ROWS=()
# csv OP VIA TOOL RSS_KB TIMES: one CSV line per run (if CSV is set).
csv() {
	[ -n "$CSV" ] || return 0
	local op=$1 via=$2 tool=$3 rss=$4 t; shift 4
	for t in "$@"; do echo "$FSTYPE,$N,$op,$via,$tool,$t,$rss" >>"$CSV"; done
}
# row OP VIA SEQ_TIMES RSYNC_TIMES RSYNC_NOSYNC_TIMES MAXRSS_KB [FLOOR_TIMES]
row() {
	local op=$1 via=$2 s=$3 r=$4 rn=$5 rss=$6 f=${7:-}
	local name=$op sm rm rnm ratio ration fm=-
	[ "$via" = local ] || name="$op ($via)"
	# shellcheck disable=SC2086 # the times are words
	csv "$op" "$via" seqmirror "$rss" $s
	# shellcheck disable=SC2086
	csv "$op" "$via" rsync "" $r
	# shellcheck disable=SC2086
	csv "$op" "$via" cp-al "" $f
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
	[ -z "$f" ] || fm=$(median $f)
	ROWS+=("$(printf '%-22s %9s %12s %9s %10s %14s %8s %8s' "$name" "$ratio" "$ration" "$sm" "$rm" "$rnm" "$fm" "$((rss / 1024))")")
	log "$name: seqmirror $sm s, rsync $rm s (nosync $rnm s), ratio $ratio, cp -al $fm s, peak RSS $((rss / 1024)) MiB; runs: seqmirror [$s] rsync [$r] cp -al [$f]"
}

print_table() {
	echo
	echo "seqmirror vs rsync — N=$N files on $FSTYPE, $(nproc) cores, REPS=$REPS (median), $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "ratio = rsync time / seqmirror time (higher is better for seqmirror); cp-al-s: the hard-link floor (FLOOR=1)"
	printf '%-22s %9s %12s %9s %10s %14s %8s %8s\n' operation ratio ratio-nosync seqm-s rsync-s rsync-nosync-s cp-al-s RSS-MiB
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

# flip_master ROOT N: make the export root ROOT serve its snapshot N as an update
# would (begin bumped, current flipped, end bumped), so that a mirror sees
# that the upstream changed (docs/protocol.md section 4).
flip_master() {
	local root=$1 n=$2 e
	e=$(cat "$root/seq/end")
	echo $((e + 1)) >"$root/seq/begin"
	ln -sfn "snapshots/$n" "$root/current.tmp" && mv -T "$root/current.tmp" "$root/current"
	echo "$n" >"$root/seq/current"
	echo $((e + 1)) >"$root/seq/end"
}

# plain_copy TREE DST: an untimed copy with TREE's metadata that shares its
# data: cp -al, or on btrfs cp -a --reflink=always (hard links cannot cross
# subvolumes, and seqmirror's snapshots there are subvolumes).
plain_copy() {
	if [ "$FSTYPE" = btrfs ]; then cp -a --reflink=always "$1" "$2"; else cp -al "$1" "$2"; fi
}
# prev_of TREE: prints the tree rsync's --link-dest (and the floor) use as
# TREE's previous copy: TREE itself, or on btrfs a plain copy in $D/prev (as
# an rsync user there keeps one: --link-dest cannot link into a subvolume).
prev_of() {
	if [ "$FSTYPE" != btrfs ]; then echo "$1"; return; fi
	discard "$D/prev"; plain_copy "$1" "$D/prev"; echo "$D/prev"
}

# floor VAR TREE: times `cp -al TREE` and its syncfs (FLOOR=1), appending to
# the array named VAR: a hard-link farm of the tree with nothing else.
floor() {
	[ "$FLOOR" = 1 ] || return 0
	local t
	discard "$RS"; timed t cp_durable "$RS" -al "$2" "$RS"
	eval "$1+=(\"\$t\")"
}
cp_durable() { local dst=$1; shift; cp "$@" && sync -f "$dst"; }

# warm TREE: read TREE's metadata and data into the page cache (untimed), so
# that whichever side runs first does not warm it for the other. Above 500k
# files the tree no longer fits in memory, so both sides start cold
# instead: dirty data flushed and the page, dentry and inode caches dropped
# (as root; otherwise whatever the previous step left in memory stays, and
# the side that runs second may find less of its source there).
warm() {
	if [ "$N" -le 500000 ]; then
		find -L "$1" -type f -print0 | xargs -0 cat >/dev/null
	elif [ -w /proc/sys/vm/drop_caches ]; then
		sync; echo 3 >/proc/sys/vm/drop_caches
	fi
}

# ---------- scenarios ----------
# Each takes the state it needs from the variables below and appends a row.
SRC=$D/src        # source tree (mutated by 1% before publish_1pct)
UP=$D/up          # publisher's export root: snapshot 1 = original, 2 = 1% changed
M=$D/mirror       # mirror root
RS=$D/rsync-dst   # scratch rsync destination

# rsync_initial TREE RSYNC_SRC [ARGS]: rsync's side of an initial copy of
# TREE (read first) from RSYNC_SRC into a fresh RS, appending to the
# caller's r and rn; RS is discarded after.
rsync_initial() {
	local tree=$1 rsrc=$2 t; shift 2
	warm "$tree"
	discard "$RS"; timed t rsync_durable "$D" -a "$@" "$rsrc" "$RS/"; r+=("$t")
	if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a "$@" "$rsrc" "$RS/"; rn+=("$t"); fi
	discard "$RS"
	# above 200k files discard deleted RS: let its inodes age before
	# seqmirror's copy allocates as many (see discard)
	[ "$N" -le 200000 ] || settle
}

# scenario_publish_initial: fresh root from SRC vs rsync -a SRC/ NEW/.
scenario_publish_initial() {
	local s=() r=() rn=() rss=0 t k
	for ((i = 0; i < REPS; i++)); do
		discard "$D/pub-tmp"
		if [ "$RSYNC_INITIAL" = 1 ] && [ "$N" -gt 200000 ]; then rsync_initial "$SRC/" "$SRC/"; fi
		warm "$SRC"
		seqm t k "$PUBLISH" -q --root "$D/pub-tmp" --source "$SRC"; s+=("$t"); rss=$(maxof $rss $k)
		if [ "$RSYNC_INITIAL" = 1 ] && [ "$N" -le 200000 ]; then rsync_initial "$SRC/" "$SRC/"; fi
	done
	rmtree "$UP"; mv "$D/pub-tmp" "$UP"
	empty_trash
	row publish-initial local "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# scenario_publish_1pct: SRC changed by 1%; publish vs rsync --link-dest.
scenario_publish_1pct() {
	python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed 2
	local s=() r=() rn=() f=() rss=0 t k prev
	prev=$(prev_of "$UP/snapshots/1")
	for ((i = 0; i < REPS; i++)); do
		reset_root "$UP" 1
		seqm t k "$PUBLISH" -q --root "$UP" --source "$SRC"; s+=("$t"); rss=$(maxof $rss $k)
		discard "$RS"; timed t rsync_durable "$D" -a --link-dest="$prev" "$SRC/" "$RS/"; r+=("$t")
		if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a --link-dest="$prev" "$SRC/" "$RS/"; rn+=("$t"); discard "$RS"; fi
		floor f "$prev"
	done
	discard "$RS" "$D/prev"
	[ "$(readlink "$UP/current")" = snapshots/2 ] || die "publish did not make snapshot 2"
	empty_trash
	row publish-1pct local "${s[*]}" "${r[*]}" "${rn[*]}" "$rss" "${f[*]}"
}

# scenario_publish_noop: SRC as served; publish (which publishes nothing) vs
# rsync -a --delete SRC/ onto an identical copy.
scenario_publish_noop() {
	local s=() r=() rss=0 t k
	discard "$RS"; plain_copy "$UP/current/" "$RS"
	seqm t rss "$PUBLISH" -q --root "$UP" --source "$SRC"
	for ((i = 0; i < NOOP_REPS; i++)); do
		timed t "$PUBLISH" -q --root "$UP" --source "$SRC"; s+=("$t")
		timed t rsync -a --delete "$SRC/" "$RS/"; r+=("$t")
	done
	[ "$(readlink "$UP/current")" = snapshots/2 ] || die "publish of an unchanged source made a snapshot"
	# RS stays: the next scenario discards it with its own trash
	row publish-noop local "${s[*]}" "${r[*]}" "${r[*]}" "$rss"
}

# scenario_sync_initial UPSTREAM RSYNC_SRC VIA: empty mirror from UPSTREAM.
scenario_sync_initial() {
	local up=$1 rsrc=$2 via=$3
	local s=() r=() rn=() rss=0 t k
	# Above 200k files the mirror is rebuilt from scratch first, and rsync's
	# copy is deleted before seqmirror's is made: the disk holds the master
	# and one copy, not four (19 GB each at 1M files).
	[ "$N" -le 200000 ] || rmtree "$M"
	for ((i = 0; i < REPS; i++)); do
		discard "$D/m-tmp"
		if [ "$RSYNC_INITIAL" = 1 ] && [ "$N" -gt 200000 ]; then rsync_initial "$UP/current/" "$rsrc" --delete; fi
		warm "$UP/current/"
		seqm t k "$MSYNC" -q --upstream "$up" --root "$D/m-tmp"; s+=("$t"); rss=$(maxof $rss $k)
		if [ "$RSYNC_INITIAL" = 1 ] && [ "$N" -le 200000 ]; then rsync_initial "$UP/current/" "$rsrc" --delete; fi
	done
	discard "$RS"
	rmtree "$M"; mv "$D/m-tmp" "$M"
	empty_trash
	row sync-initial "$via" "${s[*]}" "${r[*]}" "${rn[*]}" "$rss"
}

# scenario_noop UPSTREAM RSYNC_SRC VIA: mirror already level.
scenario_noop() {
	local up=$1 rsrc=$2 via=$3
	local s=() r=() rss=0 t k
	discard "$RS"; plain_copy "$M/current/" "$RS" # an identical copy for rsync to compare against
	# GNU time's own fork and exec would be a large part of a few-ms poll, and
	# the rsync side runs without it: measure RSS once, untimed, then time
	# both sides bare.
	seqm t rss "$MSYNC" -q --upstream "$up" --root "$M"
	for ((i = 0; i < NOOP_REPS; i++)); do
		timed t "$MSYNC" -q --upstream "$up" --root "$M"; s+=("$t")
		timed t rsync -a --delete "$rsrc" "$RS/"; r+=("$t")
	done
	# RS stays: the next scenario discards it with its own trash
	row sync-noop "$via" "${s[*]}" "${r[*]}" "${r[*]}" "$rss"
}

# scenario_sync_1pct UPSTREAM RSYNC_SRC VIA: mirror at 1, upstream at 2.
scenario_sync_1pct() {
	local up=$1 rsrc=$2 via=$3
	local s=() r=() rn=() f=() rss=0 t k prev
	prev=$(prev_of "$M/snapshots/1")
	for ((i = 0; i < REPS; i++)); do
		reset_root "$M" 1
		seqm t k "$MSYNC" -q --upstream "$up" --root "$M"; s+=("$t"); rss=$(maxof $rss $k)
		discard "$RS"; timed t rsync_durable "$D" -a --delete --link-dest="$prev" "$rsrc" "$RS/"; r+=("$t")
		if [ "$RSYNC_NOSYNC" = 1 ]; then discard "$RS"; timed t rsync -a --delete --link-dest="$prev" "$rsrc" "$RS/"; rn+=("$t"); discard "$RS"; fi
		floor f "$prev"
	done
	discard "$RS" "$D/prev"
	[ "$(readlink "$M/current")" = snapshots/2 ] || die "mirror-sync did not reach snapshot 2"
	empty_trash
	row sync-1pct "$via" "${s[*]}" "${r[*]}" "${rn[*]}" "$rss" "${f[*]}"
}

# ---------- peers ----------
# shellcheck source=scripts/peers.sh
. "$HERE/scripts/peers.sh"
trap stop_peers EXIT

# ---------- main ----------
log "building"
mkdir -p "$D" "$BIN"
FSTYPE=$(stat -f -c %T "$D"); [ "$FSTYPE" != ext2/ext3 ] || FSTYPE=ext4
(cd "$HERE" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$BIN/" ./cmd/...) # as make build
log "commit $(cd "$HERE" && git rev-parse --short HEAD)$(cd "$HERE" && git diff --quiet HEAD || echo +dirty); $D on $FSTYPE"
# The pristine tree is cached (marker outside the tree) and copied for the run
# when small; at large N it is used in place and regenerated next time.
GEN=$D/gen
if [ ! -f "$D/gen.ok" ]; then
	log "generating $N files in $GEN"
	rm -rf "$GEN"; python3 "$GENTREE" "$GEN" "$N" --seed 1; touch "$D/gen.ok"
fi
for p in "$SRC" "$UP" "$M" "$RS" "$D/trash"; do
	if [ -e "$p" ]; then rmtree "$SRC" "$UP" "$M" "$RS" "$D/trash"; settle; break; fi
done
if [ "$FSTYPE" = btrfs ]; then
	# a subvolume, so that publish snapshots it; the copy shares the data
	btrfs subvolume create "$SRC" >/dev/null
	cp -a --reflink=always "$GEN/." "$SRC/"
elif [ "$N" -le 200000 ]; then cp -a "$GEN" "$SRC"
else mv "$GEN" "$SRC"; rm -f "$D/gen.ok"; fi
log "tree: $(du -sh --apparent-size "$SRC" | cut -f1) in $N files; scenarios: $SCENARIOS; transports: $VIAS"

has() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# Order: the publisher's snapshots 1 (original) and 2 (1% changed) first, so
# that at large N the source can go before the mirror takes its own copy
# (at 1M files each full copy is ~18 GB). The mirror then copies snapshot 1
# while the publisher serves it, and syncs the 1% change once it serves 2;
# once per transport.
if has publish_initial; then scenario_publish_initial
else "$PUBLISH" -q --root "$UP" --source "$SRC" >/dev/null; fi
if has publish_1pct; then scenario_publish_1pct
else python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed 2; "$PUBLISH" -q --root "$UP" --source "$SRC" >/dev/null; fi
if has publish_noop; then scenario_publish_noop; fi
if [ "$N" -gt 200000 ]; then rmtree "$SRC"; settle; fi
case " $VIAS " in *" rsync "* | *" http "*) start_rsyncd "$D/peers" "$UP" "$BIN/publish" ;; esac
case " $VIAS " in *" http "*) start_nginx "$D/peers" "$UP" ;; esac
for via in $VIAS; do
	case $via in
	local) up=$UP; rsrc1=$UP/snapshots/1/; rsrc2=$UP/snapshots/2/ ;;
	rsync) up=$RSYNCD_URL/mod; rsrc1=$RSYNCD_URL/plain/; rsrc2=$rsrc1 ;;
	http) up=$NGINX_URL/; rsrc1=$RSYNCD_URL/plain/; rsrc2=$rsrc1 ;;
	*) die "unknown transport $via in VIAS (local, rsync, http)" ;;
	esac
	flip_master "$UP" 1 # for the mirror's first copy
	if has sync_initial; then scenario_sync_initial "$up" "$rsrc1" "$via"
	elif [ -e "$M" ]; then reset_root "$M" 1
	else "$MSYNC" -q --upstream "$up" --root "$M" >/dev/null; fi
	if has noop; then scenario_noop "$up" "$rsrc1" "$via"; fi
	flip_master "$UP" 2
	if has sync_1pct; then scenario_sync_1pct "$up" "$rsrc2" "$via"; fi
done
stop_peers

print_table
if [ "${KEEP:-0}" != 1 ]; then rmtree "$D/trash" "$SRC" "$UP" "$M" "$RS" "$D/pub-tmp" "$D/m-tmp" "$D/time.out" "$BIN" "$D/peers"; fi
