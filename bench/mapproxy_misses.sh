#!/usr/bin/env bash
# Cache misses, in one run: distinct uncached 256×256 PNG tiles through /tms/, 64 at a time
# (wrk, keep-alive, DURATION per round, tens of thousands of tiles), each fetched from a local
# upstream tile server (nginx serving one PNG for every tile URL) and written to the file cache;
# mapproxy-serve (egg:MapProxy#app) against MapProxy 7 on gunicorn (-w 2, threads 8: MapProxy's
# tile creation waits on the upstream), each pinned to SERVER_CPU; upstream and client on
# LOAD_CPU. Every round starts with an empty cache; prints tiles/s, the upstream's request
# count and the server's CPU time per tile and RSS after the round, then the median per-round
# ratios, for each request pattern in PATTERNS:
#
#   blocks  the issue's "1,000 distinct tiles": blocks of 32×32 tiles (1,024), one after the
#           other, row by row in each block, as a map viewer's misses come (a region's tiles);
#           the tc layout's directories are made once per column of a block (0.09 per tile)
#   rows    whole rows of level 12 (4096 tiles each): every tile is in a new column, so each
#           one makes three new directories (tc: z/xxx/xxx/xxx/yyy/yyy/): the worst case,
#           where the kernel's directory and inode work that both servers do dominates
#
# Each server's cache is on a file system of its own, new for every round: CACHE_FS=loop (the
# default as root) makes an ext4 in a sparse file, formatted as this machine's root file
# system is (MKFS_OPTS, default `-O ^has_journal`: no journal), attached with direct I/O
# (written to the disk once, not cached twice) and mounted over the server's cache directory;
# the last round's is unmounted (its data written out) and removed. So every round of either
# server starts on the same empty file system, whatever the rounds before it wrote: a faster
# server writes more files per round, and ext4 makes directories and inodes more slowly the
# more it holds and the more it freed in the last minutes (`recently_deleted`, without a
# journal; MapProxy removes its `.lck` file after every tile). The lock directories and logs
# stay in /tmp. CACHE_FS=dir: both caches under the work directory in /tmp, each round's
# moved aside.
#
# LOGGING=quiet (the default): both servers log at WARNING, as each does without a logging
# configuration: MapProxy under gunicorn has none (Python's default, WARNING), mapproxy-serve
# runs with -q (without logging sections it logs INFO on stderr, a line per source request).
# LOGGING=template: both use MapProxy's logging template (below).
#
#   bench/mapproxy_misses.sh             # ROUNDS=3 DURATION=5s CONNS=64 PATTERNS="blocks rows"
#                                        # CACHE_FS=loop LOGGING=quiet GUNICORN_ARGS="-w 2 --threads 8"
#   BASE_BIN=/tmp/mps-base bench/mapproxy_misses.sh   # also another build (an earlier commit's),
#                                        # as "mapproxy-serve-base", in the same rounds: an A/B
#                                        # (head first in odd rounds, base first in even ones)
#
# Needs nginx, curl and wrk (Debian packages) and a Python with MapProxy 7 (MAPPROXY_PYTHON, default
# target/mapproxy-venv/bin/python, as .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-5s} CONNS=${CONNS:-64} THREADS=${THREADS:-2}
PATTERNS=${PATTERNS:-blocks rows}
CACHE_FS=${CACHE_FS:-$([ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && echo loop || echo dir)}
MKFS_OPTS=${MKFS_OPTS--O ^has_journal}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0}
GUNICORN_ARGS=${GUNICORN_ARGS:--w 2 --threads 8} LOGGING=${LOGGING:-quiet}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
mps_binary
W=$(mktemp -d /tmp/mps-misses-bench.XXXX)
chmod 755 "$W"   # nginx workers run as another user
MPS= GUN= BASE=
stop_all() {
  "$NGINX" -c "$W/nginx.conf" -p "$W" -s stop 2>/dev/null || true
  [ -n "$GUN" ] && kill "$GUN" 2>/dev/null
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  [ -n "$BASE" ] && kill "$BASE" 2>/dev/null
  for fs in "$W"/*.fs; do
    mountpoint -q "$fs" 2>/dev/null || continue
    local dev; dev=$(findmnt -n -o SOURCE "$fs")
    umount "$fs" || umount -l "$fs"
    losetup -d "$dev" 2>/dev/null || true
  done
  rm -rf "$W"
}
trap stop_all EXIT
# A new, empty cache file system for server NAME at $W/NAME.fs (CACHE_FS above); the last
# one's data is written out (umount) and it is removed.
fresh_fs() { # NAME
  local d="$W/$1.fs"
  if [ "$CACHE_FS" = loop ]; then
    if mountpoint -q "$d"; then
      local dev; dev=$(findmnt -n -o SOURCE "$d")
      umount "$d"; losetup -d "$dev"
    fi
    rm -f "$W/$1.img"; truncate -s 16G "$W/$1.img"
    # shellcheck disable=SC2086
    mkfs.ext4 -q -F $MKFS_OPTS "$W/$1.img"
    mkdir -p "$d"
    # noinit_itable: no kernel thread zeroing inode tables during the round
    mount -o noinit_itable "$(losetup -f --show --direct-io=on "$W/$1.img")" "$d"
  else
    # moved aside, not removed: freed inodes would slow the next minutes' file creations
    [ -d "$d" ] && mv "$d" "$d.$RANDOM$RANDOM"
    mkdir -p "$d"
  fi
}
mkdir -p "$W/mps.var" "$W/mp7.var" "$W/mpb.var"
if [ "$CACHE_FS" = loop ]; then echo "caches: a new ext4 each round (mkfs.ext4 $MKFS_OPTS, loop device with direct I/O)"
else echo "caches: in $W ($(df --output=fstype "$W" | tail -1))"; fi

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

yaml() { # NAME: the cache in $W/NAME.fs, locks in $W/NAME.var
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
    base_dir: $W/$1.fs/cache
    lock_dir: $W/$1.var/locks
    tile_lock_dir: $W/$1.var/tile_locks
EOF
}
yaml mps > "$W/mps.yaml"
yaml mpb > "$W/mpb.yaml"
yaml mp7 > "$W/mp7.yaml"
# LOGGING=template: both log as MapProxy's logging template says (`mapproxy-util create -t
# log-ini`, here the copy `mapproxy-serve create -t log-ini` writes, whose fileConfig Python
# accepts): every source request a line in source-requests.log, in $W/NAME.var; MapProxy
# loads it as its wsgi-app template's commented-out lines do.
if [ "$LOGGING" = template ]; then
  for v in "$W/mps.var" "$W/mp7.var" "$W/mpb.var"; do "$BIN" create -t log-ini "$v/log.ini" >/dev/null; done
  MPS_LOG_CONF="log_conf = $W/mps.var/log.ini"
  MP7_LOG_CONF="from logging.config import fileConfig
fileConfig('$W/mp7.var/log.ini', {'here': '$W/mp7.var'})"
fi
cat > "$W/config.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18421
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/mps.yaml
${MPS_LOG_CONF:-}
EOF
sed -e 's/^port = 18421/port = 18424/' -e 's/mps\./mpb./g' "$W/config.ini" > "$W/config-base.ini"
cat > "$W/app.py" <<EOF
${MP7_LOG_CONF:-}
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/mp7.yaml')
EOF
# Distinct tiles of level 12 (4096×4096 tiles), each asked once: wrk's threads take every
# THREADS-th tile in turn, so every request of a round is a miss (the upstream's request count
# shows it). wrk cannot stop after N requests and still report, so a round is DURATION long.
lua() { # PATTERN: the n-th request's tile x, y
  case $1 in
    blocks) echo 'local i = n % 1024; local b = math.floor(n / 1024)
  local x = (b % 128) * 32 + i % 32; local y = (math.floor(b / 128) % 128) * 32 + math.floor(i / 32)' ;;
    rows) echo 'local x = n % 4096; local y = math.floor(n / 4096) % 4096' ;;
    *) echo "bench: unknown pattern $1" >&2; exit 1 ;;
  esac
}
for pattern in $PATTERNS; do
  cat > "$W/misses-$pattern.lua" <<EOF
local n, counter = 0, 0
function setup(thread) thread:set("id", counter); counter = counter + 1 end
function init(args) n = id end
function request()
  $(lua "$pattern")
  local path = string.format("/tms/1.0.0/tiles/EPSG3857/12/%d/%d.png", x, y)
  n = n + $THREADS
  return wrk.format("GET", path)
end
function response(status)
  if status ~= 200 then io.stderr:write("status " .. status .. "\\n") end
end
EOF
done

wait_up() { wait_http "http://127.0.0.1:$1/tms/1.0.0/"; }
round() { # PATTERN NAME FS PORT PIDS...
  local pattern=$1 name=$2 fs=$3 port=$4; shift 4
  fresh_fs "$fs"
  # the other server's last round written out too: its write-back (and ext4's block
  # allocation, done then) would otherwise run during this round
  sync
  : > "$W/logs/upstream.log"
  local c0 k0 out ticks kticks rps p99 up
  c0=$(cpu_ticks "$@") k0=$(sys_ticks "$@")
  out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$W/misses-$pattern.lua" --latency "http://127.0.0.1:$port" 2>&1)
  ticks=$(( $(cpu_ticks "$@") - c0 )) kticks=$(( $(sys_ticks "$@") - k0 ))
  if grep -q '^status' <<<"$out"; then echo "bench: $name: $(grep -m1 '^status' <<<"$out")" >&2; exit 1; fi
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  up=$(wc -l < "$W/logs/upstream.log")
  local n; n=$(awk '/requests in/{print $1}' <<<"$out")
  local us=$(( 1000000 / $(getconf CLK_TCK) ))
  echo "$name $rps $p99 $(( ticks * us / n )) $(( kticks * us / n )) $n/$up $(rss_mb "$@")MB"
}

taskset -c "$SERVER_CPU" "$BIN" -q "$W/config.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18421
if [ -n "${BASE_BIN:-}" ]; then
  echo "mapproxy-serve-base: $BASE_BIN"
  taskset -c "$SERVER_CPU" "$BASE_BIN" -q "$W/config-base.ini" 2>"$W/mpb.log" & BASE=$!
  wait_up 18424
fi
( cd "$W" && exec taskset -c "$SERVER_CPU" "$(dirname "$PY")/gunicorn" $GUNICORN_ARGS -b 127.0.0.1:18423 app:application 2>"$W/gunicorn.log" ) & GUN=$!
wait_up 18423
echo "| pattern | round | server | tiles/s | p99 | server CPU per tile (µs) | of it in the kernel | requests / upstream requests | RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for pattern in $PATTERNS; do
  for r in $(seq 1 "$ROUNDS"); do
    # with BASE_BIN, head and base take turns going first, so neither gains from the order
    servers=(head mp7)
    if [ -n "$BASE" ]; then
      if [ $((r % 2)) = 1 ]; then servers=(head base mp7); else servers=(base head mp7); fi
    fi
    for s in "${servers[@]}"; do
      case $s in
        head) line=$(round "$pattern" mapproxy-serve mps 18421 $MPS) ;;
        base) line=$(round "$pattern" mapproxy-serve-base mpb 18424 $BASE) ;;
        mp7) line=$(round "$pattern" mapproxy7-gunicorn mp7 18423 $GUN $(pgrep -P $GUN | tr '\n' ' ')) ;;
      esac
      read -r n rps p99 cpu kcpu up mem <<<"$line"
      echo "| $pattern | $r | $n | $rps | $p99 | $cpu | $kcpu | $up | $mem |"; echo "$pattern $r $n $rps $cpu" >> "$W/rps"
    done
  done
done
GUNICORN_ARGS=$GUNICORN_ARGS python3 - "$W/rps" <<'EOF'
import os, sys, statistics, collections
GUNICORN_ARGS = os.environ["GUNICORN_ARGS"]
by = collections.defaultdict(lambda: collections.defaultdict(dict))
for line in open(sys.argv[1]):
    p, r, n, rps, cpu = line.split(); by[p][r][n] = (float(rps), float(cpu))
print()
for p, rounds in by.items():
    med = lambda f: statistics.median(f(v) for v in rounds.values())
    print(f"{p}: median per-round ratios, mapproxy-serve / MapProxy 7 (gunicorn {GUNICORN_ARGS}): "
          f"tiles/s {med(lambda v: v['mapproxy-serve'][0] / v['mapproxy7-gunicorn'][0]):.1f}x, "
          f"CPU per tile {med(lambda v: v['mapproxy7-gunicorn'][1] / max(v['mapproxy-serve'][1], 1)):.1f}x less")
    if all('mapproxy-serve-base' in v for v in rounds.values()):
        print(f"{p}: median per-round ratios, mapproxy-serve / mapproxy-serve-base: "
              f"tiles/s {med(lambda v: v['mapproxy-serve'][0] / v['mapproxy-serve-base'][0]):.2f}x, "
              f"CPU per tile {med(lambda v: v['mapproxy-serve-base'][1] / max(v['mapproxy-serve'][1], 1)):.2f}x less; "
              f"base / MapProxy 7: tiles/s {med(lambda v: v['mapproxy-serve-base'][0] / v['mapproxy7-gunicorn'][0]):.1f}x")
EOF
