#!/usr/bin/env bash
# A cached 256×256 PNG tile through /tms/, in one run: mapproxy-serve (egg:MapProxy#app),
# nginx serving the same file from disk (1 worker), and MapProxy 7 on gunicorn — each server
# pinned to the same CPU (SERVER_CPU), wrk pinned to another (LOAD_CPU), loopback only, bounded
# by DURATION. Prints req/s, p99 latency and the server's RSS after the run, and the ratios.
#
#   bench/mapproxy_tiles.sh                  # ROUNDS=3 DURATION=5s CONNS=64
#
# Needs wrk and nginx (Debian packages) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)"; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
mps_binary
W=$(mktemp -d /tmp/mps-tiles-bench.XXXX)
chmod 755 "$W"   # nginx workers run as another user
MPS=
stop_all() {
  "$NGINX" -c "$W/nginx.conf" -p "$W" -s stop 2>/dev/null || true
  [ -f "$W/gunicorn.pid" ] && kill "$(cat "$W/gunicorn.pid")" 2>/dev/null
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  rm -rf "$W"
}
trap stop_all EXIT
cat > "$W/mapproxy.yaml" <<EOF
services:
  tms:
    use_grid_names: true
layers:
  - name: debug
    title: debug
    sources: [debug_cache]
caches:
  debug_cache:
    grids: [webmercator]
    sources: [debug]
    meta_size: [1, 1]
    meta_buffer: 0
sources:
  debug:
    type: debug
grids:
  webmercator:
    base: GLOBAL_WEBMERCATOR
globals:
  cache:
    base_dir: $W/cache_data
EOF
cat > "$W/config.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18401
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mapproxy.yaml
EOF
TILE=/tms/1.0.0/debug/webmercator/1/0/0.png
cat > "$W/app.py" <<EOF
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/mapproxy.yaml')
EOF

wait_up() { wait_http "http://127.0.0.1:$1$TILE"; }
run() { # NAME PORT PIDS...
  local name=$1 port=$2; shift 2
  taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d2s "http://127.0.0.1:$port$TILE" >/dev/null
  local c0 out; c0=$(cpu_ticks "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$port$TILE")
  local ticks=$(( $(cpu_ticks "$@") - c0 )) n; n=$(awk '/requests in/{print $1}' <<<"$out")
  local rps p99 mem; rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  mem=$(rss_mb "$@")
  # server CPU time (user + system) per request, in µs: what wrk's rate hides when the load
  # generator, not the server, is the limit
  echo "$name $rps $p99 ${mem}MB $(python3 -c "print(f'{$ticks * 1e6 / $(getconf CLK_TCK) / $n:.1f}')")"
}

taskset -c "$SERVER_CPU" "$BIN" "$W/config.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18401
FILE=$(find "$W/cache_data" -name '*.png' | head -1)
cat > "$W/nginx.conf" <<EOF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18402;
    location = $TILE { alias $FILE; default_type image/png; }
  }
}
EOF
cmp -s <(curl -s "http://127.0.0.1:18401$TILE") "$FILE" || { echo "bench: served tile differs from the cache file"; exit 1; }
taskset -c "$SERVER_CPU" "$NGINX" -c "$W/nginx.conf" -p "$W"
wait_up 18402
( cd "$W" && taskset -c "$SERVER_CPU" "$(dirname "$PY")/gunicorn" -w 2 -b 127.0.0.1:18403 --pid "$W/gunicorn.pid" app:application 2>"$W/gunicorn.log" ) & GUN=$!
wait_up 18403
echo "| round | server | req/s | p99 | RSS | server CPU µs/req |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for line in "$(run mapproxy-serve 18401 $MPS)" "$(run nginx 18402 $(cat "$W/nginx.pid") $(pgrep -P "$(cat "$W/nginx.pid")" | tr '\n' ' '))" "$(run mapproxy7-gunicorn 18403 $(cat "$W/gunicorn.pid") $(pgrep -P "$(cat "$W/gunicorn.pid")" | tr '\n' ' '))"; do
    read -r n rps p99 mem cpu <<<"$line"; echo "| $r | $n | $rps | $p99 | $mem | $cpu |"; echo "$r $n $rps $cpu" >> "$W/rps"
  done
done
python3 - "$W/rps" <<'EOF'
import sys, statistics, collections
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, n, rps, cpu = line.split(); by[r][n] = (float(rps), float(cpu))
def med(a, b, i=0):
    return statistics.median(v[a][i] / v[b][i] if i == 0 else v[b][i] / v[a][i] for v in by.values())
print(f"\nmedian per-round ratios, mapproxy-serve against nginx: req/s {med('mapproxy-serve','nginx'):.2f}x, "
      f"CPU per request {med('mapproxy-serve','nginx', 1):.2f}x less; against MapProxy 7 (gunicorn -w 2): "
      f"req/s {med('mapproxy-serve','mapproxy7-gunicorn'):.1f}x, CPU per request {med('mapproxy-serve','mapproxy7-gunicorn', 1):.1f}x less")
EOF
