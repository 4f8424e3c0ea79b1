#!/usr/bin/env bash
# bench-scale.sh — the cost curve: every operation of seqmirror and of rsync
# side by side at several tree sizes, on ext4 and on btrfs, as one table and
# one log-log plot. `make bench-scale`.
#
#   scripts/bench-scale.sh
#
# For each filesystem in FSES and each size in SIZES it runs scripts/bench.sh
# (its method: the same rsync commands as `make bench`, each run after
# `sync`, both sides paying for a syncfs) with every scenario — publish:
# initial, 1% change, no-op; mirror-sync: initial, no-op, 1% change, over
# each transport in VIAS (local path, rsync daemon, nginx over HTTP) — and
# with FLOOR=1: `cp -al` of the served snapshot beside each 1% change, the
# cost of a hard-link farm alone (rsync's runs without the flush are left
# out: RSYNC_NOSYNC=0). Every timed run becomes a line of $CSV;
# at the end internal/tools/scaleplot turns the CSV into Markdown tables
# (stdout) and $SVG (time against files, log-log, one line per operation,
# transport and tool).
#
# Environment:
#   SIZES="10000 100000 500000 1000000"  files per tree (scripts/gentree.py)
#   FSES="ext4 btrfs"   ext4: BENCH_ROOT itself (it must be ext4); btrfs: a
#                       sparse loop image in BENCH_ROOT, made and removed per
#                       size (root: mkfs.btrfs, losetup, mount)
#   VIAS="local rsync http"
#   BENCH_ROOT=/tmp/perf/scale  work area: each size's trees are removed after
#                       its run; the CSV and bench.sh's tables (tables.txt) stay
#   CSV=BENCH_ROOT/scale.csv    lines are appended (a re-run adds
#                       repetitions: delete it to start over)
#   SVG=docs/bench-scale.svg
#   REPS, NOOP_REPS     default 3 and 5 up to 100k files, 1 and 3 above
#   SCENARIOS="publish_initial publish_1pct publish_noop sync_initial noop sync_1pct"
#                       a subset runs only those (bench.sh makes the state the
#                       others would have left, untimed)
#   ONLY_PLOT=1         skip the runs: tables and plot from an existing CSV
#
# Disk: an ext4 run needs about 2.2x the tree (19 KiB a file: ~21 GB at 500k,
# ~42 GB at 1M); a btrfs run about the same inside its image, and more on
# the image's host filesystem, which holds a deleted copy until
# discard=async gives its space back: at 1M the initial copies need ~60 GB
# free there (with 42 GB the image's writes failed and btrfs went
# read-only). Time on the
# 2-core machine of docs/performance.md: ~15 min at 10k, ~35 min at 100k,
# ~1 h at 500k, ~2 h at 1M, per filesystem.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${SIZES:-"10000 100000 500000 1000000"}
FSES=${FSES:-"ext4 btrfs"}
VIAS=${VIAS:-"local rsync http"}
SCENARIOS=${SCENARIOS:-"publish_initial publish_1pct publish_noop sync_initial noop sync_1pct"}
R=${BENCH_ROOT:-/tmp/perf/scale}
CSV=${CSV:-$R/scale.csv}
SVG=${SVG:-$HERE/docs/bench-scale.svg}
GO=${GO:-go}

log() { echo "bench-scale: $(date -u +%T) $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$R"
LOOP='' MNT=$R/mnt
unmount() {
	if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || true; fi
	if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; LOOP=; fi
	rm -f "$R/btrfs.img"
}
trap unmount EXIT

# on_btrfs N: a fresh btrfs of ~N/4000 GB (sparse) mounted on $MNT.
on_btrfs() {
	local n=$1 gb
	gb=$((n / 4000 > 8 ? n / 4000 : 8))
	unmount
	truncate -s "${gb}G" "$R/btrfs.img"
	mkfs.btrfs -q -f "$R/btrfs.img" >/dev/null
	LOOP=$(losetup --find --show "$R/btrfs.img")
	mkdir -p "$MNT"
	# discard=async gives freed space back to the image's filesystem
	mount -t btrfs -o discard=async "$LOOP" "$MNT"
	log "btrfs of $gb GB (sparse, $R/btrfs.img) on $LOOP at $MNT"
}

if [ "${ONLY_PLOT:-0}" != 1 ]; then
	for fs in $FSES; do
		case $fs in
		ext4)
			t=$(stat -f -c %T "$R")
			[ "$t" = ext2/ext3 ] || die "$R is on $t, not ext4: set BENCH_ROOT to a directory on ext4"
			;;
		btrfs)
			[ "$(id -u)" = 0 ] || die "FSES=btrfs needs root (mkfs.btrfs, losetup, mount); FSES=ext4 runs without"
			for c in mkfs.btrfs btrfs losetup; do command -v $c >/dev/null || die "$c is missing (make deps)"; done
			;;
		*) die "unknown filesystem $fs in FSES (ext4, btrfs)" ;;
		esac
	done
	[ -s "$CSV" ] || echo "fs,files,op,via,tool,seconds,rss_kib" >"$CSV"
	for fs in $FSES; do
		for n in $SIZES; do
			d=$R/$fs-$n
			if [ "$fs" = btrfs ]; then on_btrfs "$n"; d=$MNT/bench; fi
			reps=3 noops=5
			[ "$n" -le 100000 ] || { reps=1; noops=3; }
			log "$fs, $n files: scripts/bench.sh"
			REPS=${REPS:-$reps} NOOP_REPS=${NOOP_REPS:-$noops} RSYNC_NOSYNC=0 VIAS="$VIAS" FLOOR=1 CSV=$CSV BENCH_DIR=$d \
				SCENARIOS="$SCENARIOS" \
				"$HERE/scripts/bench.sh" "$n" | tee -a "$R/tables.txt"
			if [ "$fs" = btrfs ]; then unmount
			else # let the freed inodes age before the next run (bench.sh, discard)
				rm -rf "$d"; sync; sleep 61
			fi
		done
	done
fi
[ -s "$CSV" ] || die "no results in $CSV"
(cd "$HERE" && $GO run ./internal/tools/scaleplot -csv "$CSV" -svg "$SVG")
log "plot: $SVG; runs: $CSV; bench.sh's tables: $R/tables.txt"
