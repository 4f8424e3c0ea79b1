# peers.sh — the real servers the benchmarks run against, as plain processes
# on 127.0.0.1 with their config in a directory of the caller's. Sourced by
# scripts/bench.sh and scripts/bench-rsyncd.sh.
#
#   start_rsyncd DIR ROOT PUBLISH  a stock `rsync --daemon` with two modules:
#                                  "mod", the export root ROOT as `PUBLISH
#                                  rsyncd-conf --no-chroot` prints it, and
#                                  "plain", ROOT/current/ (resolved anew on
#                                  each connection, so always the served
#                                  snapshot); sets RSYNCD_URL=rsync://127.0.0.1:PORT.
#                                  DAEMON_SOCKOPTS: its "socket options".
#   start_nginx DIR ROOT           Debian's nginx serving ROOT; sets NGINX_URL
#                                  (http://127.0.0.1:PORT, no trailing slash).
#   stop_peers                     stops both (also on the caller's EXIT trap).

PEER_PIDS=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_rsyncd() {
	local d=$1/rsyncd root=$2 publish=$3 port
	mkdir -p "$d"
	port=$(free_port)
	{
		echo "uid = $(id -u)"
		echo "gid = $(id -g)"
		echo "pid file = $d/rsyncd.pid"
		echo "lock file = $d/rsyncd.lock"
		echo "log file = $d/rsyncd.log"
		[ -z "${DAEMON_SOCKOPTS:-}" ] || echo "socket options = $DAEMON_SOCKOPTS"
		echo
		"$publish" rsyncd-conf --root "$root" --module mod --user "$(id -un)" --group "$(id -gn)" --no-chroot
		echo
		echo "[plain]"
		echo "	path = $root/current/"
		echo "	read only = yes"
		echo "	use chroot = no"
		echo "	munge symlinks = no"
		echo "	refuse options = checksum"
		echo "	transfer logging = no"
	} >"$d/rsyncd.conf"
	rsync --daemon --no-detach --address=127.0.0.1 --port="$port" --config="$d/rsyncd.conf" &
	PEER_PIDS+=($!)
	RSYNCD_URL=rsync://127.0.0.1:$port
	local _
	for _ in $(seq 100); do
		rsync "$RSYNCD_URL/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "rsync --daemon did not start: see $d/rsyncd.log" >&2
	return 1
}

start_nginx() {
	local d=$1/nginx root=$2 nx=/usr/sbin/nginx port
	command -v nginx >/dev/null && nx=$(command -v nginx)
	[ -x "$nx" ] || { echo "nginx is missing (make deps)" >&2; return 1; }
	mkdir -p "$d"
	port=$(free_port)
	{
		[ "$(id -u)" != 0 ] || echo "user root root;"
		echo "daemon off; worker_processes 2; pid $d/nginx.pid; error_log $d/error.log;"
		echo "events { worker_connections 1024; }"
		echo "http { access_log off; sendfile on; keepalive_requests 1000000;"
		echo "  client_body_temp_path $d/cb; proxy_temp_path $d/px; fastcgi_temp_path $d/fc; uwsgi_temp_path $d/uw; scgi_temp_path $d/sc;"
		echo "  server { listen 127.0.0.1:$port; root $root;"
		echo "    location ~ (^/\.work(/|\$)|^/\.lock\$|/\.tmp-) { return 404; } } }"
	} >"$d/nginx.conf"
	"$nx" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
	PEER_PIDS+=($!)
	NGINX_URL=http://127.0.0.1:$port
	local _
	for _ in $(seq 100); do
		curl -fsS "$NGINX_URL/seq/end" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "nginx did not start: see $d/error.log" >&2
	return 1
}

stop_peers() {
	local p
	for p in "${PEER_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	PEER_PIDS=()
	return 0
}
