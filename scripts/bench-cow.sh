#!/usr/bin/env bash
# bench-cow.sh — a 1% change on btrfs: seqmirror's copy-on-write path, its
# hard-link farm and rsync --link-dest, side by side, in one run.
#
#   scripts/bench-cow.sh [N]        N files (default 100000), scripts/gentree.py
#
# Environment:
#   REPS=3         repetitions per operation (the median is reported)
#   BENCH_DIR=DIR  work area (default /tmp/perf/bench-cow-N): holds the sparse
#                  btrfs image (IMG_GB, default 1 GB per 4,000 files, at
#                  least 8), mounted on DIR/mnt; removed at the end unless KEEP=1
#
# Runs as root (mkfs.btrfs, losetup, mount). Everything lives on one
# loop-mounted btrfs:
#   src      the source, a subvolume (publish snapshots it: copy-on-write)
#   plain    the same tree in a plain directory (publish links: the farm)
#   up, upl  the publishers' roots from src (copy-on-write) and from plain
#            (the hard-link farm)
#   m        mirror of up (mirror-sync on btrfs is always copy-on-write, so
#            its farm is not timed here; make bench times it on ext4)
#   r1, rm1  rsync's own previous copies (plain directories, as an rsync user
#            keeps them: --link-dest cannot link across subvolumes; made
#            with cp -a --reflink, identical to rsync -a's)
# Timed: publish of the 1% change (gentree.py --mutate 1) and mirror-sync of
# the new snapshot, each against `rsync -a [--delete] --link-dest=PREV SRC/
# NEW/ && sync -f NEW` (seqmirror flushes with syncfs before it flips; so
# does the rsync side). Every timed run starts after `sync` and `btrfs
# subvolume sync` (no deleted subvolume being cleaned in the background).
set -euo pipefail

N=${1:-${N:-100000}}
REPS=${REPS:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
GENTREE=$HERE/scripts/gentree.py
D=${BENCH_DIR:-/tmp/perf/bench-cow-$N}
IMG_GB=${IMG_GB:-$(( N / 4000 > 8 ? N / 4000 : 8 ))}
MNT=$D/mnt
BIN=$D/bin

log() { echo "bench-cow: $*" >&2; }
die() { log "$*"; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (mkfs.btrfs, losetup, mount)"
for c in mkfs.btrfs btrfs losetup rsync python3; do command -v $c >/dev/null || die "$c is missing (make deps)"; done

now() { echo "${EPOCHREALTIME/,/.}"; }
quiesce() { sync; btrfs subvolume sync "$MNT" >/dev/null 2>&1 || true; sync; }
# timed VAR cmd...: quiesce (untimed), run cmd, VAR = seconds.
timed() {
	local __v=$1; shift
	quiesce
	local t0 t1
	t0=$(now); "$@" >/dev/null; t1=$(now)
	printf -v "$__v" '%s' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
rsync_durable() { local dst=$1; shift; rsync "$@" && sync -f "$dst"; }

# rmtree PATH...: removes trees, subvolumes (read-only ones too) whole.
rmtree() {
	local p s
	for p in "$@"; do
		[ -e "$p" ] || [ -L "$p" ] || continue
		if [ -d "$p" ] && [ "$(stat -c %i "$p")" = 256 ]; then btrfs subvolume delete "$p" >/dev/null
		elif [ -d "$p" ]; then
			for s in "$p"/*; do [ -d "$s" ] && [ "$(stat -c %i "$s")" = 256 ] && btrfs subvolume delete "$s" >/dev/null; done
			rm -rf "$p"
		else rm -f "$p"; fi
	done
}
# reset_root ROOT: serve snapshot 1 again, dropping newer ones.
reset_root() {
	local root=$1 s
	for s in "$root"/snapshots/*; do
		s=${s##*/}; s=${s%.manifest}
		if [ "$s" -gt 1 ] 2>/dev/null; then rmtree "$root/snapshots/$s" "$root/snapshots/$s.manifest"; fi
	done
	ln -sfn snapshots/1 "$root/current"
	rmtree "$root/.work"
}

LOOP=
cleanup() {
	if mountpoint -q "$MNT"; then umount "$MNT" || true; fi
	if [ -n "$LOOP" ]; then losetup -d "$LOOP" 2>/dev/null || true; fi
	if [ "${KEEP:-0}" != 1 ]; then rm -rf "$D"; fi
}
trap cleanup EXIT

log "building"
mkdir -p "$D" "$BIN" "$MNT"
(cd "$HERE" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$BIN/" ./cmd/...)
log "commit $(cd "$HERE" && git rev-parse --short HEAD)$(cd "$HERE" && git diff --quiet HEAD || echo +dirty)"
rm -f "$D/btrfs.img"; truncate -s "${IMG_GB}G" "$D/btrfs.img"
mkfs.btrfs -q -f "$D/btrfs.img" >/dev/null
LOOP=$(losetup --find --show "$D/btrfs.img")
mount -t btrfs "$LOOP" "$MNT"
log "btrfs of ${IMG_GB} GB (sparse, in $D) on $LOOP at $MNT"

PUBLISH=$BIN/publish MSYNC=$BIN/mirror-sync
SRC=$MNT/src PLAIN=$MNT/plain UP=$MNT/up UPL=$MNT/upl M=$MNT/m R1=$MNT/r1 RM1=$MNT/rm1 RS=$MNT/rs

log "generating $N files (subvolume $SRC)"
btrfs subvolume create "$SRC" >/dev/null
python3 "$GENTREE" "$SRC" "$N" --seed 1
# The copies share the data (reflinks), so that 1M files fit on one disk;
# they are made before the source's first snapshot: reading the source
# later would move its atimes (relatime), which a real source read by
# others also sees (docs/operating.md section 20), but which is not the 1%
# change measured here.
cp -a --reflink=always "$SRC" "$PLAIN"
cp -a --reflink=always "$SRC" "$R1"
log "tree: $(du -sh --apparent-size "$SRC" | cut -f1) in $N files; first copies (untimed)"
"$PUBLISH" -q --root "$UP" --source "$SRC"
"$PUBLISH" -q --root "$UPL" --source "$PLAIN"
"$MSYNC" -q --upstream "$UP" --root "$M"
cp -a --reflink=always "$UP/snapshots/1" "$RM1"
[ "$(stat -c %i "$UP/snapshots/1")" = 256 ] || die "publish did not take the copy-on-write path"
[ "$(stat -c %i "$UPL/snapshots/1")" != 256 ] || die "publish from a plain directory made a subvolume"

log "1% change"
python3 "$GENTREE" "$SRC" "$N" --mutate 1 --seed 2
python3 "$GENTREE" "$PLAIN" "$N" --mutate 1 --seed 2

ROWS=()
row() { # NAME COW_TIMES FARM_TIMES RSYNC_TIMES (FARM_TIMES "": not timed)
	local c f=- r ff=-
	# shellcheck disable=SC2086 # the times are words
	c=$(median $2)
	# shellcheck disable=SC2086
	r=$(median $4)
	if [ -n "$3" ]; then
		# shellcheck disable=SC2086
		f=$(median $3)
		ff=$(awk -v a="$r" -v b="$f" 'BEGIN{printf "%.1fx", a/b}')
	fi
	ROWS+=("$(printf '%-13s %9s %11s %9s %11s %13s' "$1" "$c" "$f" "$r" \
		"$(awk -v a="$r" -v b="$c" 'BEGIN{printf "%.1fx", a/b}')" "$ff")")
	log "$1: cow [$2] farm [$3] rsync [$4]"
}

c=() f=() r=()
for ((i = 0; i < REPS; i++)); do
	reset_root "$UP"; reset_root "$UPL"; rmtree "$RS"
	timed t "$PUBLISH" -q --root "$UP" --source "$SRC"; c+=("$t")
	timed t "$PUBLISH" -q --root "$UPL" --source "$PLAIN"; f+=("$t")
	timed t rsync_durable "$MNT" -a --link-dest="$R1" "$SRC/" "$RS/"; r+=("$t")
done
[ "$(readlink "$UP/current")" = snapshots/2 ] || die "publish did not make snapshot 2"
row publish-1pct "${c[*]}" "${f[*]}" "${r[*]}"

c=() f=() r=()
for ((i = 0; i < REPS; i++)); do
	reset_root "$M"; rmtree "$RS"
	timed t "$MSYNC" -q --upstream "$UP" --root "$M"; c+=("$t")
	timed t rsync_durable "$MNT" -a --delete --link-dest="$RM1" "$UP/snapshots/2/" "$RS/"; r+=("$t")
done
[ "$(readlink "$M/current")" = snapshots/2 ] || die "mirror-sync did not reach snapshot 2"
[ "$(stat -c %i "$M/snapshots/2")" = 256 ] || die "mirror-sync did not take the copy-on-write path"
row sync-1pct "${c[*]}" "${f[*]}" "${r[*]}"

echo
echo "seqmirror on btrfs vs rsync --link-dest — N=$N files, 1% changed, $(nproc) cores, REPS=$REPS (median), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cow: publish of a subvolume / mirror-sync onto btrfs; farm: publish of a plain directory (hard links)"
printf '%-13s %9s %11s %9s %11s %13s\n' operation cow-s farm-s rsync-s rsync/cow rsync/farm
printf '%s\n' "${ROWS[@]}"
