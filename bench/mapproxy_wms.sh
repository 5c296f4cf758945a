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
# each over two caches of the debug source: `debug` (meta tiles 4×4 with a buffer of 80 px: the
# debug text lands in the meta buffer, so every tile of these areas is blank: opaque white, as
# MapProxy stores a debug cache's tiles) and, as same_text, 4326_text, utm_text, jpeg_text,
# `debug_text` (meta_size [1, 1], meta_buffer 0: each tile has its own bbox text drawn, black
# on white).
#
# Prints, per round and case: req/s, p99, the server's CPU time per request (from
# /proc/PID/stat, all its processes) and RSS after the round; then the median per-round ratios.
# With PERF=1, then records mapproxy-serve under each case with perf and prints where the time
# goes (decode, resample/reproject, encode, the rest).
#
#   bench/mapproxy_wms.sh     # ROUNDS=3 DURATION=5s CONNS=16 MPS_PORT=18431 MP7_PORT=18433
#                             # (MPS_BIN=path: that binary instead of this tree's;
#                             # FEATURES=turbojpeg, the default when cmake and nasm are
#                             # there: JPEG by libjpeg-turbo; FEATURES= the pure-Rust build)
#                             # CASES="same 4326 utm jpeg same_text 4326_text utm_text jpeg_text"
#
# Needs wrk (and perf for PERF=1) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-16} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} PERF=${PERF:-0}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
# the servers' ports (another run of this script on the machine needs others: a port already
# answering would be measured in place of ours)
MPS_PORT=${MPS_PORT:-18431} MP7_PORT=${MP7_PORT:-18433}
for p in "$MPS_PORT" "$MP7_PORT"; do
  if curl -s -o /dev/null -m 2 "http://127.0.0.1:$p/"; then
    echo "bench: port $p is in use (another run?); set MPS_PORT/MP7_PORT"; exit 1
  fi
done
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)"; exit 1; }
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
mps_binary
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
  - name: debug_text
    title: debug text
    sources: [debug_text_cache]
caches:
  debug_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [debug]
  debug_text_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [debug]
    meta_size: [1, 1]
    meta_buffer: 0
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
port = $MPS_PORT
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mps.yaml
EOF
cat > "$W/app.py" <<EOF
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/mp7.yaml')
EOF

Q="/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&STYLES="
declare -A CASE=(
  [same]="&SRS=EPSG:3857&BBOX=1000000,6000000,1409600,6409600&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [4326]="&SRS=EPSG:4326&BBOX=8.983,47.29,12.663,49.75&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [utm]="&SRS=EPSG:32632&BBOX=540000,5240000,800000,5500000&WIDTH=512&HEIGHT=512&FORMAT=image/png"
  [jpeg]="&SRS=EPSG:3857&BBOX=1000000,6000000,1819200,6819200&WIDTH=1024&HEIGHT=1024&FORMAT=image/jpeg"
)
for c in same 4326 utm jpeg; do
  CASE[${c}_text]="$Q&LAYERS=debug_text${CASE[$c]}"
  CASE[$c]="$Q&LAYERS=debug${CASE[$c]}"
done
CASES=${CASES:-same 4326 utm jpeg same_text 4326_text utm_text jpeg_text}

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
  # a server that completed no request in the round (MapProxy 7 under load can): no CPU figure
  local cpu=n/a
  [ "${n:-0}" -gt 0 ] && cpu=$(( ticks * 1000000 / $(getconf CLK_TCK) / n ))
  echo "$name $c ${rps:-0} ${p99:-n/a} $cpu $(rss_mb "$@")MB"
}

taskset -c "$SERVER_CPU" "$BIN" "$W/config.ini" 2>"$W/mps.log" & MPS=$!
wait_up $MPS_PORT
( cd "$W" && exec taskset -c "$SERVER_CPU" "$(dirname "$PY")/gunicorn" -w 2 -b 127.0.0.1:$MP7_PORT app:application 2>"$W/gunicorn.log" ) & GUN=$!
wait_up $MP7_PORT
for c in $CASES; do check $MPS_PORT "$c"; check $MP7_PORT "$c"; done
echo "| round | case | server | req/s | p99 | server CPU per request (µs) | RSS |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for c in $CASES; do
    # even rounds start with MapProxy 7, so a drift of the machine favours neither
    if [ $((r % 2)) = 0 ]; then
      b="$(run mapproxy7-gunicorn $MP7_PORT "$c" $GUN $(pgrep -P $GUN | tr '\n' ' '))"
      a="$(run mapproxy-serve $MPS_PORT "$c" $MPS)"
    else
      a="$(run mapproxy-serve $MPS_PORT "$c" $MPS)"
      b="$(run mapproxy7-gunicorn $MP7_PORT "$c" $GUN $(pgrep -P $GUN | tr '\n' ' '))"
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
    r, c, n, rps, cpu = line.split()
    by[c][r][n] = (float(rps), None if cpu == "n/a" else float(cpu))
print("\nmedian per-round ratios, mapproxy-serve / MapProxy 7 (gunicorn -w 2), same CPU:")
print("| case | req/s | CPU per request |")
print("|---|---|---|")
def med(rounds, f):
    # rounds where either server completed no request (req/s 0, CPU n/a) have no ratio
    vals = [x for x in (f(v) for v in rounds.values()) if x is not None]
    return f"{statistics.median(vals):.1f}x" if vals else "n/a"
def rps_ratio(v):
    a, b = v['mapproxy-serve'][0], v['mapproxy7-gunicorn'][0]
    return a / b if a > 0 and b > 0 else None
def cpu_ratio(v):
    a, b = v['mapproxy-serve'][1], v['mapproxy7-gunicorn'][1]
    return b / max(a, 1) if a is not None and b is not None else None
for c, rounds in by.items():
    print(f"| {c} | {med(rounds, rps_ratio)} | {med(rounds, cpu_ratio)} less |")
EOF

if [ "$PERF" = 1 ]; then
  command -v perf >/dev/null || { echo "bench: perf missing"; exit 1; }
  echo
  echo "where mapproxy-serve's time goes (perf, self time by symbol, grouped):"
  for c in $CASES; do
    url="http://127.0.0.1:$MPS_PORT${CASE[$c]}"
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
