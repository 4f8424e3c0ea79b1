#!/usr/bin/env bash
# bench-rsyncd.sh [N] — mirror-sync over a stock `rsync --daemon` (or, with
# VIA=http, over HTTP from a stock nginx serving the same export root)
# against plain rsync from the daemon, on one tree of N files (default
# 100000), and print a table of ratios (rsync time / mirror-sync time; > 1
# means mirror-sync is faster). `make bench-rsyncd` and `make bench-http`.
#
#   (a) no-op poll:   mirror-sync on a level mirror
#                     vs rsync -a --delete rsync://.../plain/ DST/ on an up-to-date copy
#   (b) 1% change:    gentree --mutate 1, publish, mirror-sync
#                     vs rsync -a --delete --link-dest=PREV rsync://.../plain/ NEW/
#   (c) initial copy: mirror-sync into an empty root
#                     vs rsync -a rsync://.../plain/ DST/
#
# One daemon on 127.0.0.1 serves two modules: "mod" is the master's export
# root (the module `publish rsyncd-conf` prints, without chroot as in the
# tests) and "plain" is the master's current/ tree, which rsync resolves
# anew on each connection, so it always holds the served snapshot.
# Each case is the median of REPEAT runs (default 3; the no-op poll uses
# 2*REPEAT+1 as it is cheap); within a run the side that goes first
# alternates, and `sync` runs before each timed command so neither pays for
# the other's dirty pages. Before each timed command the served snapshot is
# read once (metadata and data) so that whichever side runs first does not
# warm the page cache for the other: on a shared machine the master's pages
# are otherwise evicted between runs. Both sides pay for durability:
# mirror-sync syncfs(2)s before its flip, so the rsync side is timed as
# `rsync ... && sync -f DST` (the same syncfs), as in bench.sh. Trees are
# moved aside rather than deleted between timed runs (deleted at the end):
# on ext4 without a journal a deletion slows every inode allocation of the
# next 60 s (see discard in bench.sh).
#
# Environment: BENCH_DIR (default /tmp/benchrsync; removed at the end unless
# KEEP=1), REPEAT, GENTREE (default scripts/gentree.py), GO,
# DAEMON_SOCKOPTS (default none, a stock daemon): the daemon's global
# "socket options", e.g. TCP_NODELAY (docs/performance.md), VIA (rsync or
# http: how mirror-sync reaches the master) and CASES (default "c a b"; the
# no-op poll alone, "a", still makes the mirror's first copy, untimed).
set -euo pipefail

N=${1:-100000}
REPEAT=${REPEAT:-3}
VIA=${VIA:-rsync}
CASES=${CASES:-c a b}
B=${BENCH_DIR:-/tmp/benchrsync}
GENTREE=${GENTREE:-$(cd "$(dirname "$0")/.." && pwd)/scripts/gentree.py}
GO=${GO:-go}
cd "$(dirname "$0")/.."

command -v rsync >/dev/null || { echo "bench-rsyncd: rsync not installed (make deps)" >&2; exit 1; }
for b in python3 bc; do
	command -v $b >/dev/null || { echo "bench-rsyncd: $b is missing: run 'apt-get install $b' as root" >&2; exit 1; }
done
[ -f "$GENTREE" ] || { echo "bench-rsyncd: $GENTREE not found (set GENTREE)" >&2; exit 1; }

# shellcheck source=scripts/peers.sh
. scripts/peers.sh
rm -rf "$B"
mkdir -p "$B"
cleanup() {
	stop_peers
	[ "${KEEP:-0}" = 1 ] || rm -rf "$B"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

CGO_ENABLED=0 $GO build -tags urfave_cli_no_docs -o "$B/bin/" ./cmd/... # as make build
PUBLISH=$B/bin/publish
MSYNC=$B/bin/mirror-sync
SRC=$B/src MASTER=$B/master MIR=$B/mirror

log "gentree: $N files"
python3 "$GENTREE" "$SRC" "$N"
log "publish snapshot 1 ($(du -sh "$SRC" | cut -f1))"
"$PUBLISH" --root "$MASTER" --source "$SRC" --quiet >/dev/null

start_rsyncd "$B" "$MASTER" "$PUBLISH"
UP=$RSYNCD_URL/mod
PLAIN=$RSYNCD_URL/plain/
if [ "$VIA" = http ]; then start_nginx "$B" "$MASTER"; UP=$NGINX_URL/; fi

# warm: read the served snapshot's metadata and data into the page cache.
warm() { find -L "$MASTER/current/" -type f -print0 | xargs -0 cat >/dev/null; }
# timeit CMD...: run CMD after warm and sync, print its wall time in seconds.
# The clock is bash's $EPOCHREALTIME, read without a fork: $(date +%s%N)
# would put ~1.5 ms of date's own start and exit inside the window, a
# fifth of a no-op poll.
timeit() {
	warm
	sync
	local s e
	s=$EPOCHREALTIME
	"$@" >/dev/null
	e=$EPOCHREALTIME
	echo "scale=6; (${e/,/.} - ${s/,/.}) / 1" | bc
}
# rsync_durable DST args...: rsync, then flush DST's filesystem.
rsync_durable() { local dst=$1; shift; rsync "$@" && sync -f "$dst"; }
# discard PATH...: move out of the way, deleted at the end (see the header).
discard() {
	local p
	for p in "$@"; do
		[ -e "$p" ] || continue
		mkdir -p "$B/trash"
		mv "$p" "$(mktemp -d "$B/trash/t.XXXXXX")/"
	done
}
# empty_trash: delete what discard kept, then let the freed inodes age.
empty_trash() {
	if [ -e "$B/trash" ]; then rm -rf "$B/trash"; sync; log "waiting 61 s for freed inodes to age"; sleep 61; fi
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mirror() { "$MSYNC" --upstream "$UP" --root "$MIR" --quiet "$@"; }
served() { readlink "$1/current"; }
verify_mirror() {
	"$MSYNC" verify --root "$MIR" >/dev/null || { echo "bench-rsyncd: mirror fails verify" >&2; exit 1; }
	[ "$(served "$MIR")" = "$(served "$MASTER")" ] || { echo "bench-rsyncd: mirror serves $(served "$MIR"), master $(served "$MASTER")" >&2; exit 1; }
}

has() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

# (c) initial copy.
declare -a cs cb
# Without (c), the first copies are untimed: the mirror's by mirror-sync,
# rsync's a hard-linked copy of the served snapshot (same metadata, so
# rsync's next run is its no-op; and no third copy of a large tree on disk).
# ... and without (b), which mutates it, the source is not needed: it goes
# first, so that a large tree is on disk twice, not three times.
if ! has c; then
	log "(c) skipped: the first copies, untimed"
	SRC_SIZE=$(du -sh --apparent-size "$SRC" | cut -f1)
	has b || rm -rf "$SRC"
	mirror
	mkdir -p "$B/base"
	cp -al "$MASTER/current/." "$B/base/"
fi
for i in $(seq "$(has c && echo "$REPEAT" || echo 0)"); do
	discard "$MIR" "$B/base"
	log "(c) initial copy, run $i"
	if [ $((i % 2)) = 1 ]; then
		cs+=("$(timeit mirror)")
		cb+=("$(timeit rsync_durable "$B" -a "$PLAIN" "$B/base/")")
	else
		cb+=("$(timeit rsync_durable "$B" -a "$PLAIN" "$B/base/")")
		cs+=("$(timeit mirror)")
	fi
done
verify_mirror
empty_trash

# (a) no-op poll.
declare -a as ab
for i in $(seq "$(has a && echo $((2 * REPEAT + 1)) || echo 0)"); do
	log "(a) no-op poll, run $i"
	if [ $((i % 2)) = 1 ]; then
		as+=("$(timeit mirror)")
		ab+=("$(timeit rsync -a --delete "$PLAIN" "$B/base/")")
	else
		ab+=("$(timeit rsync -a --delete "$PLAIN" "$B/base/")")
		as+=("$(timeit mirror)")
	fi
done
# The no-op poll must be one rsync run: count them through a wrapper (over
# HTTP: count nginx's requests instead).
RUNS=n/a
if [ "$VIA" = rsync ]; then
	printf '#!/bin/sh\necho run >>"%s"\nexec rsync "$@"\n' "$B/runs" >"$B/bin/rsync-count"
	chmod +x "$B/bin/rsync-count"
	mirror --rsync "$B/bin/rsync-count" >/dev/null
	RUNS=$(wc -l <"$B/runs")
fi

# (b) 1% change, REPEAT rounds: each mutates, publishes, then both sides sync.
declare -a bs bb
prev=$B/base
for i in $(seq "$(has b && echo "$REPEAT" || echo 0)"); do
	log "(b) 1% change, run $i"
	python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed $((100 + i))
	"$PUBLISH" --root "$MASTER" --source "$SRC" --quiet >/dev/null
	new=$B/base.$i
	if [ $((i % 2)) = 1 ]; then
		bs+=("$(timeit mirror)")
		bb+=("$(timeit rsync_durable "$B" -a --delete --link-dest="$prev" "$PLAIN" "$new/")")
	else
		bb+=("$(timeit rsync_durable "$B" -a --delete --link-dest="$prev" "$PLAIN" "$new/")")
		bs+=("$(timeit mirror)")
	fi
	verify_mirror
	[ "$prev" = "$B/base" ] || discard "$prev"
	prev=$new
done
! has b || diff -r "$MIR/current/" "$prev/" >/dev/null || { echo "bench-rsyncd: mirror and rsync copies differ" >&2; exit 1; }

ratio() { printf '%.1f' "$(echo "scale=3; $1 / $2" | bc)"; }
# pairs "s1 s2 ..." "b1 b2 ...": the median of the per-run ratios b_i/s_i.
paired() {
	local -a s=($1) b=($2) r=()
	local i
	for i in "${!s[@]}"; do r+=("$(echo "scale=4; ${b[$i]} / ${s[$i]}" | bc)"); done
	printf '%.1f' "$(median "${r[@]}")"
}
row() { # name seqmirror-runs rsync-runs target
	local s1 s2
	[ -n "$2" ] || return 0
	s1=$(median $2) s2=$(median $3)
	printf '| %-24s | %11.4f | %9.3f | %8s | %9s | %-7s |\n' "$1" "$s1" "$s2" "$(paired "$2" "$3")x" "$(ratio "$s2" "$s1")x" "$4"
}
echo
echo "mirror-sync over $VIA vs rsync from a daemon: N=$N files (${SRC_SIZE:-$(du -sh --apparent-size "$SRC" | cut -f1)}), $(nproc) cores, $(rsync --version | head -1 | awk '{print $1, $3}'), daemon socket options: ${DAEMON_SOCKOPTS:-none}, median of $REPEAT ($((2 * REPEAT + 1)) for the no-op poll)"
echo
echo "| case                     | seqmirror s |   rsync s |    ratio | ratio of  | target  |"
echo "|                          |    (median) |  (median) | (paired) |  medians  |         |"
echo "|--------------------------|-------------|-----------|----------|-----------|---------|"
row "(a) no-op poll" "${as[*]}" "${ab[*]}" ">= 100x"
row "(b) 1% change, coherent" "${bs[*]}" "${bb[*]}" ">= 4x"
row "(c) initial copy" "${cs[*]}" "${cb[*]}" ">= 1.0x"
echo
echo "ratio = rsync time / mirror-sync time (> 1: mirror-sync faster). paired: the median of the"
echo "ratios of the two commands run back to back in each run; ratio of medians: the medians alone."
[ "$VIA" != rsync ] || echo "no-op poll rsync runs: $RUNS (want 1)"
echo "runs (s): a=${as[*]} / ${ab[*]}; b=${bs[*]} / ${bb[*]}; c=${cs[*]} / ${cb[*]}"
