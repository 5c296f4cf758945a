#!/usr/bin/env bash
# WMS GetMap from cached tiles, in one run: mapproxy-serve (egg:MapProxy#app) and MapProxy 7 on
# gunicorn, each pinned to the same CPU (SERVER_CPU), wrk pinned to another (LOAD_CPU), loopback
# only. Four cases over the same cache configuration (a GLOBAL_WEBMERCATOR cache of the debug
# source, each server its own cache directory, filled by the warm-up):
#
#   same  512×512 PNG in EPSG:3857 (the cache's SRS: tiles stitched and resampled, ~1.3× a level)
#   4326  the same area reprojected into EPSG:4326
#   utm   the same area reprojected into UTM 32N (EPSG:32632)
#   jpeg  1024×1024 JPEG in EPSG:3857
#
# Prints, per round and case: req/s, p99, the server's CPU time per request (from
# /proc/PID/stat, all its processes) and RSS after the round; then the median per-round ratios.
# With PERF=1, then records mapproxy-serve under each case with perf and prints where the time
# goes (decode, resample/reproject, encode, the rest).
#
#   bench/mapproxy_wms.sh                  # ROUNDS=3 DURATION=5s CONNS=16 CASES="same 4326 utm jpeg"
#
# Needs wrk (and perf for PERF=1) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-16} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} PERF=${PERF:-0}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)"; exit 1; }
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
cargo build -q --release --bin mapproxy-serve
BIN=${BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/mapproxy-serve}
W=$(mktemp -d /tmp/mps-wms-bench.XXXX)
MPS= GUN=
stop_all() {
  [ -n "$GUN" ] && kill "$GUN" 2>/dev/null
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap stop_all EXIT

yaml() { # CACHE_DIR
  cat <<EOF
services:
  wms:
    srs: ['EPSG:3857', 'EPSG:4326', 'EPSG:32632']
    image_formats: ['image/png', 'image/jpeg']
layers:
  - name: debug
    title: debug
    sources: [debug_cache]
caches:
  debug_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [debug]
sources:
  debug:
    type: debug
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
port = 18431
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mps.yaml
EOF
cat > "$W/app.py" <<EOF
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/mp7.yaml')
EOF

Q="/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=debug&STYLES="
declare -A CASE=(
  [same]="$Q&SRS=EPSG:3857&BBOX=1000000,6000000,1409600,6409600&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [4326]="$Q&SRS=EPSG:4326&BBOX=8.983,47.29,12.663,49.75&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [utm]="$Q&SRS=EPSG:32632&BBOX=540000,5240000,800000,5500000&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [jpeg]="$Q&SRS=EPSG:3857&BBOX=1000000,6000000,1819200,6819200&WIDTH=1024&HEIGHT=1024&FORMAT=image/jpeg"
)
CASES=${CASES:-same 4326 utm jpeg}

wait_up() { wait_http "http://127.0.0.1:$1/service?SERVICE=WMS&REQUEST=GetCapabilities"; }
check() { # PORT CASE: a 200 image answer
  local ct; ct=$(curl -s -o "$W/answer" -w '%{http_code} %{content_type}' "http://127.0.0.1:$1${CASE[$2]}")
  case "$ct" in "200 image/"*) ;; *) echo "bench: :$1 $2 answered $ct: $(head -c 300 "$W/answer")"; exit 1;; esac
}
run() { # NAME PORT CASE PIDS...
  local name=$1 port=$2 c=$3; shift 3
  local url="http://127.0.0.1:$port${CASE[$c]}"
  taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null
  local c0 out ticks n rps p99
  c0=$(cpu_ticks "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
  ticks=$(( $(cpu_ticks "$@") - c0 ))
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench: $name $c: $(grep 'Non-2xx' <<<"$out")" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  n=$(awk '/requests in/{print $1}' <<<"$out")
  echo "$name $c $rps $p99 $(( ticks * 1000000 / $(getconf CLK_TCK) / n )) $(rss_mb "$@")MB"
}

taskset -c "$SERVER_CPU" "$BIN" "$W/config.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18431
( cd "$W" && exec taskset -c "$SERVER_CPU" "$(dirname "$PY")/gunicorn" -w 2 -b 127.0.0.1:18433 app:application 2>"$W/gunicorn.log" ) & GUN=$!
wait_up 18433
for c in $CASES; do check 18431 "$c"; check 18433 "$c"; done
echo "| round | case | server | req/s | p99 | server CPU per request (µs) | RSS |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    # even rounds start with MapProxy 7, so a drift of the machine favours neither
    if [ $((r % 2)) = 0 ]; then
      b="$(run mapproxy7-gunicorn 18433 "$c" $GUN $(pgrep -P $GUN | tr '\n' ' '))"
      a="$(run mapproxy-serve 18431 "$c" $MPS)"
    else
      a="$(run mapproxy-serve 18431 "$c" $MPS)"
      b="$(run mapproxy7-gunicorn 18433 "$c" $GUN $(pgrep -P $GUN | tr '\n' ' '))"
    fi
    for line in "$a" "$b"; do
      read -r n cs rps p99 cpu mem <<<"$line"; echo "| $r | $cs | $n | $rps | $p99 | $cpu | $mem |"; echo "$r $cs $n $rps $cpu" >> "$W/rps"
    done
  done
done
python3 - "$W/rps" <<'EOF'
import sys, statistics, collections
by = collections.defaultdict(lambda: collections.defaultdict(dict))
for line in open(sys.argv[1]):
    r, c, n, rps, cpu = line.split(); by[c][r][n] = (float(rps), float(cpu))
print("\nmedian per-round ratios, mapproxy-serve / MapProxy 7 (gunicorn -w 2), same CPU:")
print("| case | req/s | CPU per request |")
print("|---|---|---|")
for c, rounds in by.items():
    med = lambda f: statistics.median(f(v) for v in rounds.values())
    print(f"| {c} | {med(lambda v: v['mapproxy-serve'][0] / v['mapproxy7-gunicorn'][0]):.1f}x | "
          f"{med(lambda v: v['mapproxy7-gunicorn'][1] / max(v['mapproxy-serve'][1], 1)):.1f}x less |")
EOF

if [ "$PERF" = 1 ]; then
  command -v perf >/dev/null || { echo "bench: perf missing"; exit 1; }
  echo
  echo "where mapproxy-serve's time goes (perf, self time by symbol, grouped):"
  for c in $CASES; do
    url="http://127.0.0.1:18431${CASE[$c]}"
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d8s "$url" >/dev/null &
    WRK=$!
    sleep 1
    perf record -q -F 1999 -p "$MPS" -o "$W/perf.$c" -- sleep 5 2>/dev/null >/dev/null
    wait $WRK
    perf report -i "$W/perf.$c" --stdio --no-children --sort symbol 2>/dev/null | grep -E '^ +[0-9]' > "$W/perf.$c.txt" || true
    python3 - "$c" "$W/perf.$c.txt" <<'EOF'
import sys, re, collections
case, path = sys.argv[1], sys.argv[2]
groups = [
    ("decode (PNG inflate, unfilter)", r"inflate|zlib_rs|miniz|adler|unfilter|png::decoder|fdeflate|decode"),
    ("encode (PNG deflate, filter, quantize; JPEG)", r"deflate|compress|crc32|png::encoder|filter::|quant|neuquant|color_quant|jpeg|jpeg_encoder|encode|huffman|dct"),
    ("resample / reproject", r"fast_image_resize|resiz|convolution|transform|bicubic|bilinear|interpolat|warp|proj4rs|affine|mesh"),
    ("copy, blend, stitch", r"memcpy|memmove|overlay|blend|replace|copy_from|imageops"),
    ("kernel, syscalls", r"\[k\]"),
]
tot = collections.Counter(); top = []
for line in open(path):
    m = re.match(r"\s+([0-9.]+)%\s+(.*)$", line)
    if not m: continue
    pct, sym = float(m.group(1)), m.group(2)
    top.append((pct, sym))
    for name, rx in groups:
        if re.search(rx, sym, re.I):
            tot[name] += pct; break
    else:
        tot["other"] += pct
print(f"\n{case}: " + ", ".join(f"{k} {v:.0f}%" for k, v in tot.most_common()))
for pct, sym in top[:8]:
    print(f"    {pct:5.1f}%  {sym[:110]}")
EOF
  done
fi
