#!/usr/bin/env bash
# Cache misses, in one run: distinct uncached 256×256 PNG tiles through /tms/, 64 at a time
# (wrk, keep-alive, DURATION per round, tens of thousands of tiles), each fetched from a local upstream tile server (nginx
# serving one PNG for every tile URL) and written to the file cache; mapproxy-serve
# (egg:MapProxy#app) against MapProxy 7 on gunicorn (-w 2, threads 8: MapProxy's tile
# creation waits on the upstream), each pinned to SERVER_CPU; upstream and client on LOAD_CPU.
# Every round starts with an empty cache; prints tiles/s, the upstream's request count and
# the server's CPU time per tile and RSS after the round, then the median per-round ratios.
#
#   bench/mapproxy_misses.sh             # ROUNDS=3 DURATION=5s CONNS=64
#
# Needs nginx, curl and wrk (Debian packages) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
mps_binary
W=$(mktemp -d /tmp/mps-misses-bench.XXXX)
chmod 755 "$W"   # nginx workers run as another user
MPS= GUN=
stop_all() {
  "$NGINX" -c "$W/nginx.conf" -p "$W" -s stop 2>/dev/null || true
  [ -n "$GUN" ] && kill "$GUN" 2>/dev/null
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  rm -rf "$W"
}
trap stop_all EXIT

# The upstream's tile: a 256×256 RGB gradient (not a single colour, so it is stored as is).
"$PY" -c "
from PIL import Image
im = Image.new('RGB', (256, 256))
im.putdata([(x, y, (x * y) % 256) for y in range(256) for x in range(256)])
im.save('$W/tile.png')"
mkdir -p "$W/logs"
cat > "$W/nginx.conf" <<EOF
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
  log_format plain '\$request_uri';
  access_log $W/logs/upstream.log plain;
  server {
    listen 127.0.0.1:18422;
    location / { default_type image/png; try_files /tile.png =404; root $W; }
  }
}
EOF
taskset -c "$LOAD_CPU" "$NGINX" -c "$W/nginx.conf" -p "$W"

yaml() { # CACHE_DIR
  cat <<EOF
services:
  tms:
layers:
  - name: tiles
    title: tiles
    sources: [tile_cache]
caches:
  tile_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [upstream]
    format: image/png
sources:
  upstream:
    type: tile
    grid: GLOBAL_WEBMERCATOR
    url: http://127.0.0.1:18422/%(tms_path)s.png
globals:
  cache:
    base_dir: $1
EOF
}
yaml "$W/mps_cache" > "$W/mps.yaml"
yaml "$W/mp7_cache" > "$W/mp7.yaml"
cat > "$W/config.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18421
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mps.yaml
EOF
cat > "$W/app.py" <<EOF
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/mp7.yaml')
EOF
# Distinct tiles of level 12 (4096×4096 tiles), each asked once: wrk's threads take every
# THREADS-th tile in turn, so every request of a round is a miss (the upstream's request count
# shows it). Row by row: with the default `tc` layout nearly every tile makes new directories
# (column by column, 64 writers share one directory, and ext4's directory lock and linear
# search dominate both servers instead). wrk cannot stop after N requests and still report,
# so a round is DURATION long.
cat > "$W/misses.lua" <<EOF
local n, counter = 0, 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) n = id end
function request()
  local path = string.format("/tms/1.0.0/tiles/EPSG3857/12/%d/%d.png", n % 4096, math.floor(n / 4096) % 4096)
  n = n + $THREADS
  return wrk.format("GET", path)
end
function response(status)
  if status ~= 200 then io.stderr:write("status " .. status .. "\n") end
end
EOF

wait_up() { wait_http "http://127.0.0.1:$1/tms/1.0.0/"; }
round() { # NAME PORT CACHE_DIR PIDS...
  local name=$1 port=$2 cache=$3; shift 3
  # moved aside, not removed: on ext4 without a journal, freshly freed inodes make the next
  # minute's file creations scan past them (recently_deleted), which would bill this round
  # for the last one's cleanup; all of $W is removed at exit
  [ -d "$cache" ] && mv "$cache" "$cache.$RANDOM$RANDOM"
  : > "$W/logs/upstream.log"
  local c0 out ticks rps p99 up
  c0=$(cpu_ticks "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$W/misses.lua" --latency "http://127.0.0.1:$port" 2>&1)
  ticks=$(( $(cpu_ticks "$@") - c0 ))
  if grep -q '^status' <<<"$out"; then echo "bench: $name: $(grep -m1 '^status' <<<"$out")" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  up=$(wc -l < "$W/logs/upstream.log")
  local n; n=$(awk '/requests in/{print $1}' <<<"$out")
  echo "$name $rps $p99 $(( ticks * 1000000 / $(getconf CLK_TCK) / n )) $n/$up $(rss_mb "$@")MB"
}

taskset -c "$SERVER_CPU" "$BIN" "$W/config.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18421
( cd "$W" && exec taskset -c "$SERVER_CPU" "$(dirname "$PY")/gunicorn" -w 2 --threads 8 -b 127.0.0.1:18423 app:application 2>"$W/gunicorn.log" ) & GUN=$!
wait_up 18423
echo "| round | server | tiles/s | p99 | server CPU per tile (µs) | requests / upstream requests | RSS |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for line in "$(round mapproxy-serve 18421 "$W/mps_cache" $MPS)" \
              "$(round mapproxy7-gunicorn 18423 "$W/mp7_cache" $GUN $(pgrep -P $GUN | tr '\n' ' '))"; do
    read -r n rps p99 cpu up mem <<<"$line"; echo "| $r | $n | $rps | $p99 | $cpu | $up | $mem |"; echo "$r $n $rps $cpu" >> "$W/rps"
  done
done
python3 - "$W/rps" <<'EOF'
import sys, statistics, collections
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, n, rps, cpu = line.split(); by[r][n] = (float(rps), float(cpu))
med = lambda f: statistics.median(f(v) for v in by.values())
print("\nmedian per-round ratios, mapproxy-serve / MapProxy 7 (gunicorn -w 2 --threads 8): "
      f"tiles/s {med(lambda v: v['mapproxy-serve'][0] / v['mapproxy7-gunicorn'][0]):.1f}x, "
      f"CPU per tile {med(lambda v: v['mapproxy7-gunicorn'][1] / max(v['mapproxy-serve'][1], 1)):.1f}x less")
EOF
