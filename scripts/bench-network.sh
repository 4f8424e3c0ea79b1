#!/usr/bin/env bash
# bench-network.sh BIN SVG POLL [netbench flags...] — make bench-network:
# internal/tools/netbench with the binaries in BIN, the plot in SVG and
# POLL publishes with polling only. NETBENCH_FS picks the filesystem of
# every root (the master's and the 50 daemons'):
#   (empty)  $TMPDIR as it is (ext4 here: each sync links every unchanged
#            file into the new snapshot);
#   btrfs    a new btrfs on a sparse loop image in $TMPDIR (NETBENCH_FS_SIZE,
#            default 24G), mounted for the run and removed after it: each
#            sync snapshots the served subvolume and writes only what
#            changed (docs/operating.md section 20). Needs root. The
#            daemons' logs (netbench -keep) are copied to $NETBENCH_LOGS
#            if set, since the filesystem goes at the end.
#   btrfs-each  the same, but a btrfs of its own for each root
#            (NETBENCH_FS_SIZE each, default 2G), as on mirrors that are
#            separate machines: a commit of one root's filesystem does not
#            wait for the other roots' writes. Needs root and a loop
#            device per root (51 at the defaults).
set -euo pipefail
BIN=$1 SVG=$2 POLL=$3
shift 3
GO=${GO:-go}
FS=${NETBENCH_FS:-}
cd "$(dirname "$0")/.."
BIN=$(cd "$BIN" && pwd)
case "$SVG" in /*) ;; *) SVG=$PWD/$SVG ;; esac
work=()
if [ "$FS" = btrfs ]; then
	[ "$(id -u)" = 0 ] || { echo "bench-network: NETBENCH_FS=btrfs needs root (mkfs.btrfs, losetup, mount)" >&2; exit 1; }
	for c in mkfs.btrfs losetup; do command -v $c >/dev/null || { echo "bench-network: $c is missing (make deps)" >&2; exit 1; }; done
	D=$(mktemp -d "${TMPDIR:-/tmp}/netbench-btrfs.XXXXXX")
	img=$D/fs.img mnt=$D/mnt dev=
	cleanup() {
		if [ -n "${NETBENCH_LOGS:-}" ] && [ -d "$mnt/run/logs" ]; then mkdir -p "$NETBENCH_LOGS" && cp -r "$mnt/run/logs/." "$NETBENCH_LOGS/"; fi
		[ -z "$dev" ] || { umount "$mnt" 2>/dev/null || umount -l "$mnt"; losetup -d "$dev" 2>/dev/null || true; }
		rm -rf "$D"
	}
	trap cleanup EXIT
	truncate -s "${NETBENCH_FS_SIZE:-24G}" "$img"
	mkfs.btrfs -q -f "$img"
	dev=$(losetup --find --show "$img")
	mkdir -p "$mnt"
	mount -t btrfs -o noatime "$dev" "$mnt"
	work=(-work "$mnt/run")
	echo "bench-network: roots on btrfs ($dev on $mnt)" >&2
elif [ "$FS" = btrfs-each ]; then
	[ "$(id -u)" = 0 ] || { echo "bench-network: NETBENCH_FS=btrfs-each needs root (mkfs.btrfs, mount -o loop)" >&2; exit 1; }
	command -v mkfs.btrfs >/dev/null || { echo "bench-network: mkfs.btrfs is missing (make deps)" >&2; exit 1; }
	D=$(mktemp -d "${TMPDIR:-/tmp}/netbench-btrfs.XXXXXX")
	mkdir -p "$D/img" "$D/run"
	cat >"$D/mkroot" <<EOS
#!/bin/sh
# mkroot ROOT: a new btrfs on a sparse loop image, mounted at ROOT.
set -e
img=$D/img/\$(basename "\$1").img
truncate -s ${NETBENCH_FS_SIZE:-2G} "\$img"
mkfs.btrfs -q -f "\$img"
mkdir -p "\$1"
mount -o loop,noatime "\$img" "\$1"
EOS
	chmod +x "$D/mkroot"
	cleanup() {
		findmnt -rn -o TARGET | grep "^$D/run/" | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
		if [ -n "${NETBENCH_LOGS:-}" ] && [ -d "$D/run/logs" ]; then mkdir -p "$NETBENCH_LOGS" && cp -r "$D/run/logs/." "$NETBENCH_LOGS/"; fi
		rm -rf "$D"
	}
	trap cleanup EXIT
	work=(-work "$D/run" -root-cmd "$D/mkroot")
	echo "bench-network: each root on a btrfs of its own (loop images in $D/img)" >&2
elif [ -n "$FS" ]; then
	echo "bench-network: NETBENCH_FS=$FS: only btrfs or btrfs-each (or empty for \$TMPDIR as it is)" >&2
	exit 2
fi
$GO run ./internal/tools/netbench -bin "$BIN" -svg "$SVG" -poll-publishes "$POLL" "${work[@]}" "$@"
