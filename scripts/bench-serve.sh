#!/usr/bin/env bash
# bench-serve.sh [N] — seqmirror's `serve` against nginx on the same export
# root of N files from scripts/gentree.py (default 20000), and one table:
# requests/s and latency percentiles of each, and serve's ratios to nginx
# (req/s ratio > 1 and p99 ratio < 1 mean serve is faster).
#
# The root is published once. `publish serve` (--quiet) and nginx (the block
# `publish serve nginx-config` prints, 2 workers as on a 2-core machine,
# access log off, sendfile on) both listen on 127.0.0.1. internal/tools/loadgen
# drives each with the same load: CONC clients (default 32), keep-alive,
# random files of the snapshot by their /snapshots/N/... paths, SECS seconds
# per server in all (default 30), in ROUNDS slices (default 3) taken in
# turns. The files are read once before, so both serve from the page cache.
# Then, unless RATE_FRAC=0, an open-loop phase at the same fixed rate for
# both (RATE_FRAC, default 0.75, of the lower requests/s of the first
# phase) gives latency percentiles that do not depend on how much each
# server answers (loadgen's doc).
#
# PIN=1 puts the load generator on CPU 0 and both servers on CPU 1
# (taskset), so that a server's latency is not the load generator's wait
# for a CPU; unset, all share both CPUs.
#
# Environment: BENCH_DIR (default /tmp/benchserve; removed at the end unless
# KEEP=1), SECS, CONC, ROUNDS, GENTREE, GO, NGINX (default: nginx in PATH
# or /usr/sbin/nginx), SERVE_GOGC (serve's GOGC, default 100),
# SERVE_GOMAXPROCS (serve's GOMAXPROCS; unset: Go's own choice), RATE_FRAC,
# PIN.
set -euo pipefail

N=${1:-20000}
SECS=${SECS:-30}
CONC=${CONC:-32}
ROUNDS=${ROUNDS:-3}
B=${BENCH_DIR:-/tmp/benchserve}
GENTREE=${GENTREE:-$(cd "$(dirname "$0")/.." && pwd)/scripts/gentree.py}
GO=${GO:-go}
RATE_FRAC=${RATE_FRAC:-0.75}
SRVCPU='' GENCPU=''
if [ "${PIN:-0}" = 1 ]; then
	command -v taskset >/dev/null || { echo "bench-serve: PIN=1 needs taskset (util-linux)" >&2; exit 1; }
	SRVCPU='taskset -c 1' GENCPU='taskset -c 0'
fi
cd "$(dirname "$0")/.."

NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[ -x "$NGINX" ] || { echo "bench-serve: nginx not installed (make deps)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench-serve: python3 is missing: run 'apt-get install python3' as root" >&2; exit 1; }

rm -rf "$B"
mkdir -p "$B/bin" "$B/nginx"
SPID='' NPID=''
cleanup() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
	[ -n "$NPID" ] && kill "$NPID" 2>/dev/null && wait "$NPID" 2>/dev/null
	[ "${KEEP:-0}" = 1 ] || rm -rf "$B"
}
trap cleanup EXIT
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# A port nobody listens on (the kernel picks it).
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

log "building"
CGO_ENABLED=0 $GO build -tags urfave_cli_no_docs -o "$B/bin/" ./cmd/publish ./internal/tools/loadgen
log "generating $N files"
python3 "$GENTREE" "$B/src" "$N"
"$B/bin/publish" --root "$B/root" --source "$B/src" --quiet >/dev/null
SNAP=$(cat "$B/root/seq/current")
awk -v s="$SNAP" '$1 == "f" { print "/snapshots/" s "/" $6 }' "$B/root/snapshots/$SNAP.manifest" >"$B/paths"
cat "$B/root/snapshots/$SNAP"/*/*/* >/dev/null # into the page cache

SPORT=$(freeport)
GOGC=${SERVE_GOGC:-100} $SRVCPU env ${SERVE_GOMAXPROCS:+GOMAXPROCS=$SERVE_GOMAXPROCS} "$B/bin/publish" serve --root "$B/root" --listen "127.0.0.1:$SPORT" --quiet &
SPID=$!

NPORT=$(freeport)
{
	[ "$(id -u)" = 0 ] && echo "user root root;"
	echo "daemon off; worker_processes 2; pid $B/nginx/nginx.pid; error_log $B/nginx/error.log;"
	echo "events { worker_connections 1024; }"
	echo "http {"
	echo "  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;"
	for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $B/nginx/$t;"; done
	echo "  include /etc/nginx/mime.types; default_type application/octet-stream;"
	echo "  server { listen 127.0.0.1:$NPORT;"
	"$B/bin/publish" serve nginx-config --root "$B/root"
	echo "  }"
	echo "}"
} >"$B/nginx/nginx.conf"
$SRVCPU "$NGINX" -p "$B/nginx" -c "$B/nginx/nginx.conf" -e "$B/nginx/error.log" &
NPID=$!

first=$(head -1 "$B/paths")
for port in "$SPORT" "$NPORT"; do
	for _ in $(seq 100); do
		python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port$first')" 2>/dev/null && break
		sleep 0.1
	done
done

log "driving each for ${SECS}s ($ROUNDS rounds, $CONC clients)${PIN:+, PIN=$PIN}"
$GENCPU "$B/bin/loadgen" -paths "$B/paths" -c "$CONC" -d "${SECS}s" -rounds "$ROUNDS" -rate-frac "$RATE_FRAC" \
	-target "nginx=http://127.0.0.1:$NPORT" -target "serve=http://127.0.0.1:$SPORT"
