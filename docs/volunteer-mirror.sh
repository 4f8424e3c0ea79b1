#!/bin/sh
# volunteer-mirror.sh - mirror a seqmirror master with nothing but rsync, cron
# and a POSIX shell. The result is an export root laid out like the master's
# (current -> snapshots/N, snapshots/N/, snapshots/N.manifest, seq/begin,
# seq/end, seq/current), so readers never see a torn tree and others can mirror you.
#
# Usage: volunteer-mirror.sh UPSTREAM ROOT
#   UPSTREAM  the master's export root: rsync://host[:port]/module[/path],
#             host::module[/path] or host:/path (over ssh)
#   ROOT      your local export root (created if missing); serve ROOT/current
#             or the whole ROOT with your web or rsync server
#
# Environment (all optional):
#   RSYNC        rsync binary (default: rsync)
#   RSYNC_OPTS   extra rsync options, split on blanks (e.g. "--bwlimit=5m")
#   KEEP         snapshots to keep, the served one included (default: 3)
#   MIN_AGE      never prune a snapshot superseded less than this long ago,
#                so slow readers finish: seconds, or a number followed by s, m,
#                h or d (default: 1h, as the Go tools' --min-age)
#   RETRIES      attempts after the first when the master moves (default: 3)
#   BACKOFF      seconds before the first retry, doubled each time (default: 30)
#   QUIET        set to 1 to print only errors (for cron)
#
# crontab line (every 5 minutes, a minute after the master; errors mailed
# by cron; `make install` puts this script there):
#   1-59/5 * * * *  QUIET=1 /usr/local/bin/seqmirror-volunteer-mirror rsync://master.example.org/pub /srv/volunteer
#
# Exit codes (as mirror-sync): 0 done or nothing to do, 1 failure, 2 usage,
# 4 another run holds the lock, 5 the master kept changing or did not answer,
# 8 the master refused the request (unknown module, refused option,
# permission denied: fix the configuration; not retried).
#
# What it does, in order:
#   1. lock ROOT (flock(1) if present, else a mkdir lock);
#   2. read the master's seq/end E1, seq/begin and current (one rsync run);
#      if ROOT already serves that snapshot N, stop;
#   3. bump ROOT/seq/begin; pull snapshots/N.manifest and snapshots/N/ into
#      ROOT/.work, hard-linking unchanged files from the served snapshot
#      (--link-dest), so only changed files cross the network;
#   4. re-read the master's seq/begin: if it moved since E1, discard and
#      retry (bounded, with backoff);
#   5. flush, move the manifest and the tree into ROOT/snapshots/, flip
#      ROOT/current atomically (ln -s to a temp name, then mv -T), write
#      ROOT/seq/current (N, for HTTP clients), set ROOT/seq/end, and prune old snapshots (also on a run with nothing
#      new), then write ROOT/status.json (docs/protocol.md section 5).
# A run that fails once it holds the lock notes why in status.json
# (last_error, last_error_at); the next good run removes the note.
# It trusts rsync's own transfer checksums; with the seqmirror tools
# installed, `mirror-sync verify --root ROOT` re-hashes against the manifest.
set -eu

usage() {
	echo "usage: $0 UPSTREAM ROOT" >&2
	exit 2
}
[ $# -eq 2 ] || usage
up=${1%/}
root=$2
if [ -z "$up" ] || [ -z "$root" ]; then usage; fi
RSYNC=${RSYNC:-rsync}
RSYNC_OPTS=${RSYNC_OPTS:-}
KEEP=${KEEP:-3}
RETRIES=${RETRIES:-3}
BACKOFF=${BACKOFF:-30}
MIN_AGE=${MIN_AGE:-1h}
QUIET=${QUIET:-}
for v in "$KEEP" "$RETRIES" "$BACKOFF"; do
	case $v in '' | *[!0-9]*) echo "$0: KEEP, RETRIES and BACKOFF must be numbers" >&2; exit 2 ;; esac
done
[ "$KEEP" -ge 1 ] || { echo "$0: KEEP must be at least 1" >&2; exit 2; }

# seconds D: print the seconds in D (N, Ns, Nm, Nh or Nd), or fail.
seconds() {
	d=${1%[smhd]}
	case $d in '' | *[!0-9]*) return 1 ;; esac
	case $1 in
	*m) echo $((d * 60)) ;;
	*h) echo $((d * 3600)) ;;
	*d) echo $((d * 86400)) ;;
	*) echo "$d" ;;
	esac
}
min_age=$(seconds "$MIN_AGE") || { echo "$0: MIN_AGE must be seconds, or a number followed by s, m, h or d (e.g. 1h)" >&2; exit 2; }

say() { [ -n "$QUIET" ] || echo "$0: $*" >&2; }
failure=
die() {
	code=$1
	shift
	failure=$*
	echo "$0: $*" >&2
	exit "$code"
}

mkdir -p "$root/snapshots" "$root/seq" "$root/.work"
root=$(cd "$root" && pwd -P)

# 1. Lock. flock's lock dies with the process; the mkdir lock is removed on
# exit (a kill -9 leaves it behind: remove ROOT/.lock.d by hand then).
lockdir=
locked=
if command -v flock >/dev/null 2>&1; then
	exec 9>>"$root/.lock"
	flock -n 9 || die 4 "$root is locked by another run; try later"
else
	mkdir "$root/.lock.d" 2>/dev/null || die 4 "$root is locked by another run (or $root/.lock.d is stale); try later"
	lockdir=$root/.lock.d
fi
locked=1
tmp=$root/.work/tmp.$$
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	rc=$?
	rm -rf "$tmp"
	if [ "$rc" -ne 0 ] && [ -n "$locked" ]; then
		write_status "${failure:-exit code $rc}" || :
	fi
	[ -z "$lockdir" ] || rmdir "$lockdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# rsync with the common options. rsync's stderr is passed on; a refusal
# (unknown module, auth, access denied, a refused option, a file the
# daemon may not read) becomes our 8 at once, rsync quoted, since only a
# change of configuration helps; an exit code that means "the master did
# not answer" becomes our 5.
run_rsync() {
	errf=$root/.work/rsync-err.$$
	# shellcheck disable=SC2086 # RSYNC_OPTS is split on purpose
	if "$RSYNC" --timeout=300 $RSYNC_OPTS "$@" 2>"$errf"; then
		rc=0
	else
		rc=$?
	fi
	cat "$errf" >&2
	refusal=$(grep -m 1 -e '@ERROR: Unknown module' -e '@ERROR: auth failed' -e '@ERROR: access denied' \
		-e 'configured to refuse' -e 'Permission denied (13)' "$errf" || :)
	rm -f "$errf"
	[ "$rc" -ne 0 ] || return 0
	[ -z "$refusal" ] || die 8 "rsync exit $rc: the master refused the request ($refusal): fix the configuration; not retried"
	case $rc in
	5 | 10 | 12 | 30 | 35 | 255) die 5 "rsync exit $rc: the master did not answer; try later" ;;
	esac
	return "$rc"
}

# number FILE: print the one decimal number a seq file holds, or fail.
number() {
	n=$(cat "$1") || return 1
	case $n in '' | *[!0-9]*) return 1 ;; esac
	echo "$n"
}

# link_target LINK: print a symlink's target.
link_target() {
	if command -v readlink >/dev/null 2>&1; then
		readlink "$1"
	else
		# shellcheck disable=SC2012 # ls -l is the portable readlink
		ls -l "$1" | sed 's/.* -> //'
	fi
}

# snapnum TARGET: print N for "snapshots/N", or fail.
snapnum() {
	case $1 in
	snapshots/*) n=${1#snapshots/} ;;
	*) return 1 ;;
	esac
	case $n in '' | 0* | *[!0-9]*) return 1 ;; esac
	echo "$n"
}

# read_master: set E (seq/end), B (seq/begin) and N (what current serves)
# from ONE rsync run; current comes as a symlink (-l), not what it points to.
read_master() {
	rm -rf "$tmp"
	mkdir -p "$tmp"
	run_rsync -lt "$up/seq/end" "$up/seq/begin" "$up/current" "$tmp/" ||
		die 1 "cannot read seq/ and current from $up"
	E=$(number "$tmp/end") || die 1 "$up: bad seq/end"
	B=$(number "$tmp/begin") || die 1 "$up: bad seq/begin"
	[ -h "$tmp/current" ] || die 1 "$up: current is not a symlink"
	N=$(snapnum "$(link_target "$tmp/current")") || die 1 "$up: current does not point to snapshots/N"
}

# put FILE VALUE: write a seq file atomically (temp file, then rename).
put() {
	printf '%s\n' "$2" >"$1.tmp.$$"
	mv -f "$1.tmp.$$" "$1"
}

# snapshots: print the complete snapshots (those with a manifest), ascending.
snapshots() {
	# shellcheck disable=SC2012 # the names are filtered to plain numbers
	for s in $(ls "$root/snapshots" | sed -n 's/^\([1-9][0-9]*\)$/\1/p' | sort -n); do
		[ ! -f "$root/snapshots/$s.manifest" ] || echo "$s"
	done
}

# mtime FILE: print FILE's mtime in seconds since the epoch (GNU, busybox
# or BSD stat).
mtime() {
	stat -c %Y "$1" 2>/dev/null || stat -f %m "$1"
}

# prune SERVED: delete old snapshots as the Go tools do: keep the newest
# $KEEP complete ones, the served one and every one superseded (the next
# snapshot's manifest written) less than $min_age seconds ago. The manifest
# goes first, so a half-deleted snapshot is never "complete". Only
# directories are made writable to delete their entries: a file may be a
# hard link (--link-dest) into a snapshot that is kept, and its mode is that
# snapshot's too.
prune() {
	now=$(date +%s)
	# shellcheck disable=SC2046 # one number a line
	set -- $(snapshots)
	left=$#
	while [ $# -gt 1 ] && [ "$left" -gt "$KEEP" ] && [ "$1" -lt "$served" ]; do
		t=$(mtime "$root/snapshots/$2.manifest") || break
		[ $((now - t)) -ge "$min_age" ] || break
		rm -f "$root/snapshots/$1.manifest"
		find "$root/snapshots/$1" -type d -exec chmod u+rwx {} \; 2>/dev/null || :
		rm -rf "$root/snapshots/$1"
		say "pruned snapshot $1"
		left=$((left - 1))
		shift
	done
}

# json_str S: print S as a JSON string.
json_str() {
	printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g' | LC_ALL=C tr '\t\n\r' '   ' | LC_ALL=C tr -d '\000-\037')"
}

# rfc3339 [FILE]: print FILE's mtime (without following a symlink), or now,
# as an RFC 3339 time in UTC, with nanoseconds where date/stat give them.
rfc3339() {
	if [ $# -eq 0 ]; then
		t=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
		case $t in *T*:*.[0-9]*Z) echo "$t" ;; *) date -u +%Y-%m-%dT%H:%M:%SZ ;; esac
	elif t=$(TZ=UTC0 stat -c %y "$1" 2>/dev/null); then
		printf '%s\n' "$t" | sed -n 's/^\([0-9-]*\) \([0-9:.]*\) .*/\1T\2Z/p'
	else
		TZ=UTC0 stat -f %Sm -t %Y-%m-%dT%H:%M:%SZ "$1"
	fi
}

# write_status [ERROR]: write ROOT/status.json (docs/protocol.md section 5)
# from the root's files, atomically; with ERROR, as a failed run's note.
write_status() {
	sb=$(number "$root/seq/begin" 2>/dev/null) || sb=0
	se=$(number "$root/seq/end" 2>/dev/null) || se=0
	sn=0
	state=fresh
	problem=
	if [ -h "$root/current" ]; then
		if ! sn=$(snapnum "$(link_target "$root/current")"); then
			sn=0
			state=torn
			problem="current does not point to snapshots/N"
		elif [ ! -f "$root/snapshots/$sn.manifest" ]; then
			state=torn
			problem="current points to snapshot $sn, which is not complete"
		elif [ "$sb" != "$se" ]; then
			state=updating
		fi
	elif [ -e "$root/current" ]; then
		state=torn
		problem="current is not a symlink"
	else
		state=empty
	fi
	{
		printf '{\n  "version": 1,\n  "root": %s,\n' "$(json_str "$root")"
		printf '  "snapshot": %s,\n  "begin": %s,\n  "end": %s,\n' "$sn" "$sb" "$se"
		printf '  "state": "%s",\n  "snapshots": [%s],\n' "$state" "$(snapshots | paste -sd, - | sed 's/,/, /g')"
		[ ! -h "$root/current" ] || printf '  "updated": "%s",\n' "$(rfc3339 "$root/current")"
		[ -z "$problem" ] || printf '  "problem": %s,\n' "$(json_str "$problem")"
		if [ $# -gt 0 ]; then
			printf '  "last_error": %s,\n  "last_error_at": "%s",\n' "$(json_str "$1")" "$(rfc3339)"
		fi
		printf '  "upstream": %s\n}\n' "$(json_str "$up")"
	} >"$root/.status.json.tmp.$$"
	mv -f "$root/.status.json.tmp.$$" "$root/status.json"
}

cur=0
if [ -h "$root/current" ]; then
	cur=$(snapnum "$(link_target "$root/current")") || die 1 "$root/current does not point to snapshots/N; fix it by hand"
fi

# 2. Read the master; level already?
read_master
if [ "$N" = "$cur" ]; then
	say "already serving snapshot $N"
	served=$cur
	# seq/current names the served snapshot for HTTP clients (a root from
	# before it existed, or a run killed after its flip, gets it here).
	[ "$cur" = 0 ] || [ "$(number "$root/seq/current" 2>/dev/null)" = "$cur" ] || put "$root/seq/current" "$cur"
	prune
	# A no-op run writes status.json only to remove a failure's note.
	! grep -q '"last_error"' "$root/status.json" 2>/dev/null || write_status
	exit 0
fi
[ "$N" -gt "$cur" ] || die 1 "$up serves snapshot $N, older than our $cur; refusing to go back"

# 3. Bump our own begin before touching anything.
lb=$(number "$root/seq/begin" 2>/dev/null) || lb=0
le=$(number "$root/seq/end" 2>/dev/null) || le=0
seq=$((lb > le ? lb : le))
seq=$((seq + 1))
put "$root/seq/begin" "$seq"

attempt=0
wait=$BACKOFF
while :; do
	moved="the master is updating (begin $B, end $E)"
	if [ "$B" = "$E" ]; then
		moved=
		work=$root/.work/$N
		rm -rf "$work" "$work.manifest"
		linkdest=
		[ "$cur" = 0 ] || linkdest=--link-dest=$root/snapshots/$cur
		if ! run_rsync -t "$up/snapshots/$N.manifest" "$work.manifest"; then
			moved="snapshot $N vanished (manifest)"
		# --modify-window=-1: compare mtimes to the nanosecond, so a file
		# changed within the same second is not linked from the old snapshot.
		elif ! run_rsync -a --modify-window=-1 ${linkdest:+"$linkdest"} "$up/snapshots/$N/" "$work/"; then
			moved="snapshot $N changed or vanished during the copy"
		else
			# 4. Did the master start an update while we copied?
			e1=$E
			read_master
			[ "$B" = "$e1" ] || moved="the master's seq/begin moved from $e1 to $B"
		fi
	fi
	[ -n "$moved" ] || break
	rm -rf "$root/.work/$N" "$root/.work/$N.manifest"
	[ "$attempt" -lt "$RETRIES" ] || die 5 "$moved; gave up after $((attempt + 1)) attempts; try later"
	attempt=$((attempt + 1))
	say "$moved; retrying in ${wait}s"
	sleep "$wait"
	wait=$((wait * 2))
	read_master
	if [ "$N" = "$cur" ]; then
		put "$root/seq/end" "$seq"
		say "already serving snapshot $N"
		served=$cur
		prune
		write_status
		exit 0
	fi
done
# The copy that passed the check was of snapshot $n (N may be newer now; the
# next run takes it).
n=$(basename "$work")

# 5. Flush, manifest first, then the tree, then flip current.
sync
rm -rf "$root/snapshots/$n" "$root/snapshots/$n.manifest"
mv -f "$work.manifest" "$root/snapshots/$n.manifest"
mv "$work" "$root/snapshots/$n"
sync
ln -s "snapshots/$n" "$root/.current.tmp.$$"
mv -T "$root/.current.tmp.$$" "$root/current"
put "$root/seq/current" "$n"
put "$root/seq/end" "$seq"
say "now serving snapshot $n"

served=$n
prune
write_status
exit 0
