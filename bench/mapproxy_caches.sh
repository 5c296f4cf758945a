#!/usr/bin/env bash
# A cached 256×256 PNG tile through /tms/ from each cache type (issue 14): file, mbtiles, sqlite,
# geopackage, compact (v2) and redis, one mapproxy-serve serving all layers, in one run. The server is
# pinned to SERVER_CPU, wrk to LOAD_CPU, loopback only; redis-server (Debian package) runs on a
# loopback port on the server's CPU. Prints req/s, p99 latency and the server's CPU time per
# request (redis: mapproxy-serve's and redis-server's together), and the ratios to the file cache.
# With moto's S3 server (target/moto-venv from .ci/test, or MOTO_SERVER) an s3 row too: moto is a
# Python server, so its req/s measure moto; its CPU column is mapproxy-serve's alone (the cost of
# an S3 hit on our side: signing, the pooled HTTP round trip, the hand-off to the blocking pool).
#
#   bench/mapproxy_caches.sh                 # ROUNDS=3 DURATION=5s CONNS=64
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)"; exit 1; }
REDIS=$(command -v redis-server || echo /usr/bin/redis-server)
[ -x "$REDIS" ] || { echo "bench: redis-server missing (apt-get install redis-server)"; exit 1; }
mps_binary
W=$(mktemp -d /tmp/mps-caches-bench.XXXX)
MPS= RED= MOTO_PID=
MOTO=${MOTO_SERVER:-$PWD/target/moto-venv/bin/moto_server}
TYPES="file mbtiles sqlite geopackage compact redis"
[ -x "$MOTO" ] && TYPES="$TYPES s3" || echo "bench: no moto_server ($MOTO): no s3 row"
stop_all() {
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  [ -n "$RED" ] && kill "$RED" 2>/dev/null
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null
  rm -rf "$W"
}
trap stop_all EXIT
RPORT=18419
taskset -c "$SERVER_CPU" "$REDIS" --port $RPORT --bind 127.0.0.1 --save "" --appendonly no --dir "$W" >/dev/null 2>&1 & RED=$!
SPORT=18420
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
if [[ $TYPES == *s3* ]]; then
  taskset -c "$SERVER_CPU" "$MOTO" -H 127.0.0.1 -p $SPORT >/dev/null 2>&1 & MOTO_PID=$!
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$SPORT/" && break; sleep 0.1; done
  curl -sf -o /dev/null -X PUT "http://127.0.0.1:$SPORT/bench" || { echo "bench: moto bucket failed"; exit 1; }
fi
{
  echo "services:"
  echo "  tms:"
  echo "    use_grid_names: true"
  echo "layers:"
  for t in $TYPES; do
    echo "  - {name: $t, title: $t, sources: [${t}_cache]}"
  done
  echo "caches:"
  for t in $TYPES; do
    echo "  ${t}_cache:"
    echo "    grids: [webmercator]"
    echo "    sources: [debug]"
    echo "    meta_size: [1, 1]"
    echo "    meta_buffer: 0"
    case $t in
      file) ;;
      compact) echo "    cache: {type: compact, version: 2}" ;;
      redis) echo "    cache: {type: redis, port: $RPORT, default_ttl: 0}" ;;
      s3) echo "    cache: {type: s3, bucket_name: bench, endpoint_url: 'http://127.0.0.1:$SPORT'}" ;;
      *) echo "    cache: {type: $t}" ;;
    esac
  done
  echo "sources:"
  echo "  debug: {type: debug}"
  echo "grids:"
  echo "  webmercator: {base: GLOBAL_WEBMERCATOR}"
  echo "globals:"
  echo "  cache: {base_dir: $W/cache_data}"
} > "$W/mapproxy.yaml"
cat > "$W/config.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18411
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mapproxy.yaml
EOF
tile() { echo "/tms/1.0.0/$1/webmercator/1/0/0.png"; }
taskset -c "$SERVER_CPU" "$BIN" "$W/config.ini" 2>"$W/mps.log" & MPS=$!
for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:18411$(tile file)" && break; sleep 0.1; done
for t in $TYPES; do
  curl -sf -o "$W/$t.png" "http://127.0.0.1:18411$(tile $t)" || { echo "bench: $t tile failed"; cat "$W/mps.log"; exit 1; }
done
for t in ${TYPES#file }; do
  cmp -s "$W/file.png" "$W/$t.png" || { echo "bench: $t serves another tile than file"; exit 1; }
done
run() { # NAME PIDS...
  local name=$1; shift
  local url="http://127.0.0.1:18411$(tile "$name")"
  taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d1s "$url" >/dev/null
  local c0 out; c0=$(cpu_ticks "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")
  local ticks=$(( $(cpu_ticks "$@") - c0 )) n; n=$(awk '/requests in/{print $1}' <<<"$out")
  local rps p99; rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  grep -q "Non-2xx" <<<"$out" && { echo "bench: $name answered errors"; exit 1; }
  # no request answered in the run (a starved server on a loaded machine): no CPU figure
  echo "$name $rps $p99 $(python3 -c "print(f'{$ticks * 1e6 / $(getconf CLK_TCK) / ${n:-0}:.1f}' if ${n:-0} else 'nan')")"
}
echo "| round | cache | req/s | p99 | server CPU µs/req |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for t in $TYPES; do
    pids=$MPS; [ "$t" = redis ] && pids="$MPS $RED"
    line=$(run "$t" $pids)
    read -r n rps p99 cpu <<<"$line"; echo "| $r | $n | $rps | $p99 | $cpu |"; echo "$r $n $rps $cpu" >> "$W/rps"
  done
done
python3 - "$W/rps" <<'EOF'
import sys, statistics, collections
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, n, rps, cpu = line.split(); by[r][n] = (float(rps), float(cpu))
# rounds where either run answered nothing are left out (and counted)
def ratios(n, i):
    ok = [v[n][i] / v['file'][i] for v in by.values() if v[n][0] > 0 and v['file'][0] > 0]
    skipped = len(by) - len(ok)
    med = f"{statistics.median(ok):.2f}x" if ok else "n/a"
    return med + (f" ({skipped} round(s) without answers left out)" if skipped else "")
print("\nmedian per-round server CPU per request against the file cache:")
for n in ["mbtiles", "sqlite", "geopackage", "compact", "redis", "s3"]:
    if n not in by["1"]: continue
    print(f"  {n}: {ratios(n, 1)}")
print("\nmedian per-round req/s against the file cache (issue 14 wants mbtiles/sqlite/geopackage >= 0.8x, redis >= 0.5x):")
for n in ["mbtiles", "sqlite", "geopackage", "compact", "redis", "s3"]:
    if n not in by["1"]: continue
    print(f"  {n}: {ratios(n, 0)}")
EOF
