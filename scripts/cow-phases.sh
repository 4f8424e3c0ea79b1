#!/usr/bin/env bash
# cow-phases.sh — where a copy-on-write publish and mirror-sync of a 1%
# change spend their time (docs/performance.md, "Where a 1M copy-on-write
# run spends its time"): -v phases of each run, on a btrfs loop image.
#
#   scripts/cow-phases.sh setup [N]      image, tree of N files (default
#                                        1000000), initial publish and
#                                        mirror copy, the 1% change published
#   scripts/cow-phases.sh publish [BIN]  put the master back at snapshot 1,
#                                        time a publish of the 1% change
#   scripts/cow-phases.sh sync [BIN]     put the mirror back at snapshot 1,
#                                        time its sync to snapshot 2
#   scripts/cow-phases.sh clean          unmount and delete the image
#
# BIN is a directory holding publish and mirror-sync (default: built from
# this tree into $D/bin); COLD=1 drops the page, dentry and inode caches
# before the timed run. Root only (loop mount, btrfs ioctls). The image is
# sparse; at 1M files it holds ~20 GB.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${COW_PHASES_DIR:-/tmp/perf/cow-phases}
MNT=$D/mnt
die() { echo "cow-phases: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (loop mount, btrfs ioctls)"

bin() {
	if [ -n "${1:-}" ]; then echo "$1"; return; fi
	mkdir -p "$D/bin"
	(cd "$HERE" && CGO_ENABLED=0 go build -tags urfave_cli_no_docs -o "$D/bin/" ./cmd/publish ./cmd/mirror-sync)
	echo "$D/bin"
}

# back_to ROOT: delete ROOT's snapshots above 1 and serve 1 again.
back_to_1() {
	local root=$1 s n
	for s in "$root"/snapshots/*; do
		n=${s##*/}; n=${n%.manifest}
		[ "$n" -gt 1 ] 2>/dev/null || continue
		if [ -d "$s" ]; then btrfs property set -ts "$s" ro false; btrfs subvolume delete "$s" >/dev/null; else rm -f "$s"; fi
	done
	ln -sfn snapshots/1 "$root/current"
	if [ -d "$root/.work" ]; then rm -rf "$root/.work"; fi
}

settle() {
	sync; btrfs subvolume sync "$MNT" >/dev/null; sync
	if [ "${COLD:-0}" = 1 ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}

timed() { /usr/bin/time -f "TOTAL %e s (user %U s, system %S s, peak RSS %M KiB)" "$@" 2>&1 | grep -E 'phase|published|now serving|cloned|TOTAL' | sed 's/^time=[^ ]* //'; }

case ${1:-} in
setup)
	n=${2:-1000000}
	b=$(bin "")
	mkdir -p "$MNT"
	truncate -s $((n / 4000 > 8 ? n / 4000 : 8))G "$D/img"
	mkfs.btrfs -q -f "$D/img" >/dev/null
	mount -o loop,discard=async "$D/img" "$MNT"
	btrfs subvolume create "$MNT/src" >/dev/null
	python3 "$HERE/scripts/gentree.py" "$MNT/src" "$n" --seed 1 >/dev/null
	"$b/publish" -q --root "$MNT/up" --source "$MNT/src"
	"$b/mirror-sync" -q --upstream "$MNT/up" --root "$MNT/m"
	python3 "$HERE/scripts/gentree.py" "$MNT/src" "$n" --mutate 1 --seed 2 >/dev/null
	"$b/publish" -q --root "$MNT/up" --source "$MNT/src"
	settle
	echo "cow-phases: $n files published and mirrored at snapshot 1, the 1% change published as 2"
	;;
publish)
	b=$(bin "${2:-}")
	back_to_1 "$MNT/up"
	settle
	timed "$b/publish" -v --root "$MNT/up" --source "$MNT/src"
	;;
sync)
	b=$(bin "${2:-}")
	[ "$(readlink "$MNT/up/current")" = snapshots/2 ] || die "the master does not serve snapshot 2: run publish first"
	back_to_1 "$MNT/m"
	settle
	timed "$b/mirror-sync" -v --upstream "$MNT/up" --root "$MNT/m"
	;;
clean)
	if mountpoint -q "$MNT"; then umount "$MNT"; fi
	rm -f "$D/img"
	;;
*) die "usage: $0 setup [N] | publish [BIN] | sync [BIN] | clean" ;;
esac
