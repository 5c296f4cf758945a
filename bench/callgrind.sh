#!/usr/bin/env bash
# Instructions and heap allocations per request, counted by valgrind: the same figures for the
# same binary whatever else the machine is doing (wrk's requests per second are not).
#
#   bench/callgrind.sh [CONFIG] [PATH ...]
#
# CONFIG: an ini file with the shared harness's placeholders (default: ../shared/bench/mps/bench.ini;
# @PORT@ @BENCH@ @HTPASSWD@ @ACCESSLOG@ are filled in). PATH: request paths (default: / /api
# /static/4k); /api requests carry the harness's Basic credentials (demo:secret, {PLAIN} file).
# Each path is measured twice, with N1 and N2 keep-alive requests (defaults 300 and 900), and the
# difference divided by N2-N1, so start-up and shutdown cancel out.
# Needs valgrind and target/release/mapproxy-serve (built unless SKIP_BUILD=1 or BIN is given).
# Allocations are counted by dhat (glibc's malloc; a binary with another global allocator shows
# n/a).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIG=${1:-}
shift || true
PATHS=("$@")
[ ${#PATHS[@]} -gt 0 ] || PATHS=(/ /api /static/4k)
N1=${N1:-300}
N2=${N2:-900}
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -d "$SHARED" ] || SHARED=/work/shared/bench
[ -n "$CONFIG" ] || CONFIG=$SHARED/mps/bench.ini
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
[ "${SKIP_BUILD:-0}" = 1 ] || [ -n "${BIN:-}" ] || cargo build --release --quiet --bin mapproxy-serve
BIN=${BIN:-$ROOT/target/release/mapproxy-serve}

WORK=$(mktemp -d /tmp/mps-callgrind.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/static"
head -c 4096 /dev/zero > "$WORK/static/4k"
printf 'demo:{PLAIN}secret\n' > "$WORK/htpasswd"

cat > "$WORK/client.py" <<'PY'
import base64, http.client, sys, time
port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
deadline = time.monotonic() + 60
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30); c.connect(); break
    except OSError:
        if time.monotonic() > deadline: sys.exit("server did not start")
        time.sleep(0.05)
hdr = {"Authorization": "Basic " + base64.b64encode(b"demo:secret").decode()}
for _ in range(n):
    c.request("GET", path, headers=hdr); r = c.getresponse(); r.read()
    if r.status != 200: sys.exit(f"{path}: status {r.status}")
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -e "s#@PORT@#$port#; s#@BENCH@#$WORK#g; s#@HTPASSWD@#$WORK/htpasswd#; s#@ACCESSLOG@#$WORK/access.log#" \
  "$CONFIG" > "$WORK/config.ini"

# One run: start under valgrind, wait until it answers, send N requests on one connection,
# stop it with SIGTERM; print "instructions allocations".
run() {
  local path=$1 n=$2
  rm -f "$WORK"/cg.out "$WORK"/dhat.out
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" "$BIN" "$WORK/config.ini" \
    >"$WORK/cg.log" 2>&1 &
  local pid=$!
  python3 "$WORK/client.py" "$port" "$path" "$n"
  kill -TERM "$pid"; wait "$pid" || true
  local ins
  ins=$(grep -E '^(summary|totals):' "$WORK/cg.out" | head -1 | awk '{print $2}')
  valgrind --tool=dhat --dhat-out-file="$WORK/dhat.out" "$BIN" "$WORK/config.ini" \
    >"$WORK/dhat.log" 2>&1 &
  pid=$!
  python3 "$WORK/client.py" "$port" "$path" "$n"
  kill -TERM "$pid"; wait "$pid" || true
  local blocks
  blocks=$(grep -oE 'Total: +[0-9,]+ bytes in [0-9,]+ blocks' "$WORK/dhat.log" | awk '{print $5}' | tr -d ,)
  echo "$ins $blocks"
}

printf '%-14s %14s %10s\n' path instr/req allocs/req
for p in "${PATHS[@]}"; do
  read -r i1 a1 < <(run "$p" "$N1")
  read -r i2 a2 < <(run "$p" "$N2")
  awk -v p="$p" -v i1="$i1" -v i2="$i2" -v a1="$a1" -v a2="$a2" -v n=$((N2 - N1)) \
    'BEGIN { a = (a2 >= n) ? sprintf("%.1f", (a2 - a1) / n) : "n/a";
             printf "%-14s %14.0f %10s\n", p, (i2 - i1) / n, a }'
done
