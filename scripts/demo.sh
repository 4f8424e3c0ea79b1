#!/usr/bin/env bash
# make demo: publish a sample tree, mirror it, change it, publish and sync again,
# showing what was reused vs copied, then print both statuses; last, a mirror
# daemon that a signed trigger from publish makes sync at once. Everything lives
# under ./demo (removed first), nothing else is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
D=$PWD/demo
rm -rf "$D"; mkdir -p "$D"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. a sample source tree (2000 files from gentree, a git repository, a symlink)"
GENTREE=${GENTREE:-$PWD/scripts/gentree.py}
if command -v python3 >/dev/null; then
  python3 "$GENTREE" "$D/src" 2000 --seed 1
else # without python3: a small deterministic tree
  for i in $(seq 0 1999); do d="$D/src/d$((i % 50))"; mkdir -p "$d"; head -c $((100 + i % 4000)) /dev/zero | tr '\0' "x" > "$d/f$i.dat"; done
fi
if command -v git >/dev/null; then
  git -c init.defaultBranch=main init -q "$D/src/repo.git-work"
  (cd "$D/src/repo.git-work" && for i in 1 2 3; do echo "rev $i" > README; git add README;
     git -c user.name=demo -c user.email=demo@example.org commit -qm "rev $i"; done)
fi
ln -s d00 "$D/src/latest"
echo "source: $(find "$D/src" -type f | wc -l) files"

say "2. publish: the master makes snapshot 1 and flips current to it"
"$BIN/publish" --root "$D/master" --source "$D/src" --min-age 0
ls -l "$D/master" | sed 's/^/   /'

say "3. mirror-sync: the mirror copies snapshot 1 (begin bumped first, end after the flip)"
"$BIN/mirror-sync" --upstream "$D/master" --root "$D/mirror" --min-age 0
printf '   mirror seq/begin=%s seq/end=%s\n' "$(cat "$D/mirror/seq/begin")" "$(cat "$D/mirror/seq/end")"

say "4. a no-op poll costs O(1): the mirror already serves the upstream's snapshot"
"$BIN/mirror-sync" --upstream "$D/master" --root "$D/mirror" --min-age 0

say "5. change 2% of the tree and publish again: unchanged files are hard-linked, not copied"
if command -v python3 >/dev/null; then
  python3 "$GENTREE" "$D/src" 2000 --mutate 2 --seed 7
else
  for i in $(seq 0 49 1999); do echo changed >> "$D/src/d$((i % 50))/f$i.dat"; done
fi
"$BIN/publish" --root "$D/master" --source "$D/src" --min-age 0 --json

say "6. mirror-sync again: only new or changed files are fetched and verified"
"$BIN/mirror-sync" --upstream "$D/master" --root "$D/mirror" --min-age 0 --json

say "7. publish status"
"$BIN/publish" status --root "$D/master"

say "8. mirror-sync status (against the upstream)"
"$BIN/mirror-sync" status --root "$D/mirror" --upstream "$D/master"

say "9. verify the mirror's served snapshot against its manifest"
"$BIN/mirror-sync" verify --root "$D/mirror"
if command -v git >/dev/null; then
  git -C "$D/mirror/current/repo.git-work" -c safe.directory='*' fsck --full --no-progress && echo "git fsck on the mirror's copy: OK"
fi

say "10. push, not poll: a mirror daemon (polling hourly) syncs at once on publish's signed trigger"
head -c 32 /dev/urandom | base64 > "$D/trigger.secret"
chmod 600 "$D/trigger.secret"
PORT=$((20000 + $$ % 20000))
"$BIN/mirror-sync" daemon --upstream "$D/master" --root "$D/daemon" --listen "127.0.0.1:$PORT" \
  --secret-file "$D/trigger.secret" --interval 1h --min-age 0 --quiet &
DPID=$!
trap 'kill "$DPID" 2>/dev/null || true' EXIT
served() { cat "$1/seq/current" 2>/dev/null || echo 0; }
for _ in $(seq 100); do [ "$(served "$D/daemon")" != 0 ] && break; sleep 0.1; done
echo "   the daemon serves snapshot $(served "$D/daemon") over HTTP at http://127.0.0.1:$PORT/ (its first sync)"
echo "pushed" > "$D/src/PUSHED"
N=$("$BIN/publish" --root "$D/master" --source "$D/src" --min-age 0 --quiet \
  --notify "http://127.0.0.1:$PORT" --secret-file "$D/trigger.secret"; served "$D/master")
t0=$(date +%s%N)
for _ in $(seq 200); do [ "$(served "$D/daemon")" = "$N" ] && break; sleep 0.01; done
echo "   master published snapshot $N; the daemon serves $(served "$D/daemon"), $((($(date +%s%N) - t0) / 1000000)) ms after publish returned"
kill "$DPID"; wait "$DPID" 2>/dev/null || true

echo
echo "Done. Explore ./demo/master, ./demo/mirror and ./demo/daemon (cat demo/mirror/seq/end)."
