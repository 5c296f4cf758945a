#!/usr/bin/env bash
# Seeding, in one run: `mapproxy-serve seed` against MapProxy 7's `mapproxy-seed` on the same
# mapproxy.yaml (only the cache directory differs) and the same seed.yaml, with the same -c:
# 10,923 tiles (GLOBAL_WEBMERCATOR levels 0-7, the western half) from a `tile` source on a local
# nginx serving one 31 KB PNG for every URL, into a file cache. Each seeder is pinned to
# SEED_CPU, nginx to LOAD_CPU; every round starts with empty caches. Prints wall time, CPU time
# (user + system, children included) per tile, the stored files and the upstream's request
# count per side, then the median per-round ratios.
#
#   bench/mapproxy_seed.sh              # ROUNDS=3 CONC=4
#
# Needs nginx (Debian) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} CONC=${CONC:-4} SEED_CPU=${SEED_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
mps_binary
W=$(mktemp -d /tmp/mps-seed-bench.XXXX)
chmod 755 "$W"   # nginx workers run as another user
stop_all() {
  "$NGINX" -c "$W/nginx.conf" -p "$W" -s stop 2>/dev/null || true
  rm -rf "$W"
}
trap stop_all EXIT

"$PY" -c "
from PIL import Image
im = Image.new('RGB', (256, 256))
im.putdata([(x, y, (x * y) % 256) for y in range(256) for x in range(256)])
im.save('$W/tile.png')"
mkdir -p "$W/logs"
cat > "$W/nginx.conf" <<EOF2
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
  log_format plain '\$request_uri';
  access_log $W/logs/upstream.log plain;
  server {
    listen 127.0.0.1:18442;
    location / { default_type image/png; try_files /tile.png =404; root $W; }
  }
}
EOF2
taskset -c "$LOAD_CPU" "$NGINX" -c "$W/nginx.conf" -p "$W"

yaml() { # CACHE_DIR
  cat <<EOF2
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
    url: http://127.0.0.1:18442/%(tms_path)s.png
globals:
  cache:
    base_dir: $1
EOF2
}
mkdir -p "$W/mps" "$W/mp7"
yaml "$W/mps/cache" > "$W/mps/mapproxy.yaml"
yaml "$W/mp7/cache" > "$W/mp7/mapproxy.yaml"
for d in mps mp7; do
  cat > "$W/$d/seed.yaml" <<EOF2
coverages:
  west: {bbox: [-180, -85, 0, 85], srs: 'EPSG:4326'}
seeds:
  west:
    caches: [tile_cache]
    grids: [GLOBAL_WEBMERCATOR]
    levels: {from: 0, to: 7}
    coverages: [west]
EOF2
done

round() { # NAME DIR COMMAND...
  local name=$1 dir=$2; shift 2
  [ -d "$dir/cache" ] && mv "$dir/cache" "$dir/cache.$RANDOM$RANDOM"   # not removed: see mapproxy_misses.sh
  : > "$W/logs/upstream.log"
  local t
  /usr/bin/time -f "%e %U %S" -o "$W/time" taskset -c "$SEED_CPU" "$@" > "$W/$name.out" 2>&1 \
    || { echo "bench: $name failed:" >&2; tail -5 "$W/$name.out" >&2; exit 1; }
  t=$(tail -1 "$W/time")
  local files up; files=$(find "$dir/cache" -name '*.png' | wc -l); up=$(wc -l < "$W/logs/upstream.log")
  read -r wall user sys <<<"$t"
  echo "$name $wall $(python3 -c "print(round(($user + $sys) * 1e6 / max($files, 1)))") $files $up"
}

echo "| round | seeder | wall (s) | CPU per tile (µs) | tiles stored | upstream requests |"
echo "|---|---|---|---|---|---|"
: > "$W/times"
for r in $(seq 1 "$ROUNDS"); do
  for line in "$(round mapproxy-serve "$W/mps" "$BIN" seed -f "$W/mps/mapproxy.yaml" -s "$W/mps/seed.yaml" -c "$CONC")" \
              "$(round mapproxy-seed "$W/mp7" "$(dirname "$PY")/mapproxy-seed" -f "$W/mp7/mapproxy.yaml" -s "$W/mp7/seed.yaml" -c "$CONC")"; do
    read -r n wall cpu files up <<<"$line"
    echo "| $r | $n | $wall | $cpu | $files | $up |"; echo "$r $n $wall $cpu" >> "$W/times"
  done
done
python3 - "$W/times" "$CONC" <<'EOF2'
import sys, statistics, collections
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, n, wall, cpu = line.split(); by[r][n] = (float(wall), float(cpu))
med = lambda f: statistics.median(f(v) for v in by.values())
print(f"\nmedian per-round ratios, mapproxy-seed / mapproxy-serve seed (-c {sys.argv[2]}): "
      f"wall time {med(lambda v: v['mapproxy-seed'][0] / v['mapproxy-serve'][0]):.1f}x, "
      f"CPU per tile {med(lambda v: v['mapproxy-seed'][1] / max(v['mapproxy-serve'][1], 1)):.1f}x")
EOF2
