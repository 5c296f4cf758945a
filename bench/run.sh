#!/usr/bin/env bash
# The wrk benchmarks of issues 3, 4 and 5, measured with the shared harness (../shared/bench).
#
#   bench/run.sh            full run  (ROUNDS=2 DURATION=10s WARMUP=2s, about 20 minutes)
#   QUICK=1 bench/run.sh    quick run (ROUNDS=1 DURATION=3s WARMUP=1s MAX_TRIES=1, about 3.5 minutes)
#
# What it does:
#   0. builds `target/release/mapproxy-serve` once (cargo build --release);
#   1. copies the shared harness to a scratch directory (WORK_DIR; it writes a venv, a hyper_min
#      build, logs and results beside itself) and runs its run_all.sh with the configs of
#      issue 4: hyper_min nginx_w1 nginx_w1_apr1 paste_waitress mapproxy_serve
#      mapproxy_serve_apr1 mapproxy_serve_bcrypt (endpoints /, /api, /static/4k, /static/1m);
#   2. issue 3: hyper_min against the text app served directly (bench/text.ini) and mounted in
#      a 100-entry urlmap (bench/urlmap100.ini, GET /m50/hello);
#   3. issue 5: the harness's composition (mps/bench.ini: access log to a FileHandler, urlmap,
#      auth, static) against the same file without the access-log filter;
#   4. extra: nginx 1 worker with a bcrypt htpasswd against mapproxy-serve with the same file;
#   5. extra: nginx_w1 against the composition with `max_cached_file_size = 1048576` on the static
#      app (the 1 MiB file served from memory instead of streamed), /static/4k and /static/1m;
#   then prints the harness's tables for each part (tools/report.py) and the targets
#   (bench/targets.py), and writes them to RESULTS_DIR/summary.md.
#
# Parts 2-4 use the harness's method and tools (tools/startup.py, cpustat.py, procmem.py,
# report.py): server pinned to SERVER_CPU, wrk to LOAD_CPU, warm-up then a measured run, a run
# repeated (at most MAX_TRIES) when other tenants used more than OTHER_MAX % of a core.
# Everything is on 127.0.0.1 and bounded (wrk -d, startup timeout 60 s).
#
# Knobs (env): QUICK ROUNDS DURATION WARMUP THREADS CONNS SERVER_CPU LOAD_CPU OTHER_MAX MAX_TRIES
#              STARTUP_REPS PARTS="harness issue3 issue5 bcrypt static" HARNESS_CONFIGS WORK_DIR
#              RESULTS_DIR SKIP_BUILD=1 (use the existing release binary, or MPS_BIN) SHARED_BENCH (harness dir)
set -euo pipefail

REPO="$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)"
HERE="$REPO/bench"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
[[ -x $SHARED_BENCH/run_all.sh ]] || SHARED_BENCH=/work/shared/bench
[[ -x $SHARED_BENCH/run_all.sh ]] || { echo "shared harness not found (set SHARED_BENCH)" >&2; exit 1; }
SHARED_BENCH="$(cd "$SHARED_BENCH" && pwd)"

QUICK="${QUICK:-0}"
if [[ $QUICK == 1 ]]; then
  # no repeats for noisy runs in quick mode (the noise is still reported)
  ROUNDS="${ROUNDS:-1}" DURATION="${DURATION:-3s}" WARMUP="${WARMUP:-1s}" STARTUP_REPS="${STARTUP_REPS:-0}" MAX_TRIES="${MAX_TRIES:-1}"
else
  ROUNDS="${ROUNDS:-2}" DURATION="${DURATION:-10s}" WARMUP="${WARMUP:-2s}" STARTUP_REPS="${STARTUP_REPS:-3}"
fi
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
SERVER_CPU="${SERVER_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
OTHER_MAX="${OTHER_MAX:-15}"
MAX_TRIES="${MAX_TRIES:-3}"
PARTS="${PARTS:-harness issue3 issue5 bcrypt static}"
HARNESS_CONFIGS="${HARNESS_CONFIGS:-hyper_min nginx_w1 nginx_w1_apr1 paste_waitress mapproxy_serve mapproxy_serve_apr1 mapproxy_serve_bcrypt}"
WORK="${WORK_DIR:-${TMPDIR:-/tmp}/mapproxy-serve-bench}"
RESULTS="${RESULTS_DIR:-$WORK/results/mps-$(date +%Y%m%d-%H%M%S)}"
PY=python3
AUTH_HDR="Authorization: Basic ZGVtbzpzZWNyZXQ="   # demo:secret, as in the harness

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ------------------------------------------------------------------ build + scratch copy
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release (mapproxy-serve)"
  (cd "$REPO" && cargo build --release -q --bin mapproxy-serve)
fi
MPS_BIN="${MPS_BIN:-$REPO/target/release/mapproxy-serve}"
[[ -x $MPS_BIN ]] || { echo "no $MPS_BIN" >&2; exit 1; }
export MPS_BIN

# The harness writes beside itself, so it runs from a scratch copy; venv/ and rust/target/ of
# an earlier copy are kept (the copy only refreshes the harness's own files).
mkdir -p "$WORK"
cp -r "$SHARED_BENCH/." "$WORK/"
chmod -R u+w "$WORK"
mkdir -p "$RESULTS"
log "harness copy: $WORK; results: $RESULTS"

export DURATION WARMUP THREADS CONNS SERVER_CPU LOAD_CPU OTHER_MAX MAX_TRIES

# ------------------------------------------------------------------ part 1: the shared harness
run_harness() {
  log "part 1 (issue 4): run_all.sh CONFIGS=\"$HARNESS_CONFIGS\" ROUNDS=$ROUNDS DURATION=$DURATION"
  (cd "$WORK" && ROUNDS="$ROUNDS" STARTUP_REPS="$STARTUP_REPS" PIN=1 CONFIGS="$HARNESS_CONFIGS" \
    OUT_DIR="$RESULTS/harness" ./run_all.sh) > "$RESULTS/harness.out" 2> "$RESULTS/harness.err" || {
      log "run_all.sh failed; see $RESULTS/harness.err"; tail -20 "$RESULTS/harness.err" >&2; return 1; }
}

# Installs what the harness needs without measuring anything (its install step): used when
# the harness part is skipped.
ensure_installed() {
  [[ -x $WORK/rust/target/release/hyper_min && -x $WORK/venv/bin/pserve && -s $WORK/nginx/htpasswd.bcrypt ]] && return 0
  log "installing the harness's tools (run_all.sh with no config)"
  (cd "$WORK" && ROUNDS=0 STARTUP_REPS=0 CONFIGS="" OUT_DIR="$RESULTS/install" ./run_all.sh) > /dev/null 2>&1 || true
}

# ------------------------------------------------------------------ parts 2-4: own configs
port_of() {
  case $1 in
    hyper_min) echo 18185 ;;
    mps_text) echo 18186 ;;
    mps_urlmap100) echo 18187 ;;
    mps_log) echo 18188 ;;
    mps_nolog) echo 18189 ;;
    nginx_w1_bcrypt) echo 18190 ;;
    mps_bcrypt) echo 18191 ;;
    nginx_w1) echo 18192 ;;
    mps_cached1m) echo 18193 ;;
    *) echo "unknown config $1" >&2; return 1 ;;
  esac
}

endpoints_of() {
  case $1 in
    hyper_min | mps_text | mps_urlmap100) echo "root" ;;
    mps_log | mps_nolog) echo "root api s4k" ;;
    nginx_w1_bcrypt | mps_bcrypt) echo "api" ;;
    nginx_w1 | mps_cached1m) echo "s4k s1m" ;;
  esac
}

# The URL of an endpoint; `root` of the urlmap config is a mount in the middle of the table.
url_of() {
  local name=$1 port=$2 ep=$3
  case $ep in
    root) [[ $name == mps_urlmap100 ]] && echo "http://127.0.0.1:$port/m50/hello" || echo "http://127.0.0.1:$port/" ;;
    api) echo "http://127.0.0.1:$port/api" ;;
    s4k) echo "http://127.0.0.1:$port/static/4k" ;;
    s1m) echo "http://127.0.0.1:$port/static/1m" ;;
  esac
}

accesslog_of() {
  case $1 in
    mps_log | mps_bcrypt | mps_cached1m) echo "$WORK/logs/access-$1.log" ;;
    nginx_w1_bcrypt | nginx_w1) echo "$WORK/logs/access-nginx-$1.log" ;;   # the template's name
    *) echo "" ;;
  esac
}

# The harness's composition with @...@ filled in; mps_nolog drops the access-log filter.
fill_bench_ini() {   # NAME PORT HTPASSWD OUT
  local name=$1 port=$2 pw=$3 out=$4 alog
  alog=$(accesslog_of "$name")
  [[ -n $alog ]] || alog="$WORK/logs/access-unused.log"
  sed -e "s#@PORT@#$port#; s#@BENCH@#$WORK#g; s#@HTPASSWD@#$WORK/nginx/htpasswd.$pw#; s#@ACCESSLOG@#$alog#" \
    "$WORK/mps/bench.ini" > "$out"
  if [[ $name == mps_cached1m ]]; then
    sed -i -e 's|^document_root = %(static_root)s$|&\nmax_cached_file_size = 1048576|' "$out"
    grep -q '^max_cached_file_size = 1048576$' "$out" || { echo "mps/bench.ini changed: cannot set max_cached_file_size" >&2; return 1; }
  fi
  if [[ $name == mps_nolog ]]; then
    sed -i -e 's/^pipeline = accesslog urlmap$/pipeline = urlmap/' "$out"
    grep -q '^pipeline = urlmap$' "$out" || { echo "mps/bench.ini changed: cannot drop the access log" >&2; return 1; }
  fi
}

server_cmd() {   # NAME DIR -> CMD
  local name=$1 dir=$2 port
  port=$(port_of "$name")
  local pin=(taskset -c "$SERVER_CPU")
  case $name in
    hyper_min)
      CMD=("${pin[@]}" env WORKERS=2 "$WORK/rust/target/release/hyper_min" "127.0.0.1:$port" "$WORK/static") ;;
    mps_text | mps_urlmap100)
      local src=text.ini
      [[ $name == mps_urlmap100 ]] && src=urlmap100.ini
      sed -e "s#@PORT@#$port#" "$HERE/$src" > "$dir/$name.ini"
      CMD=("${pin[@]}" "$MPS_BIN" "$dir/$name.ini") ;;
    mps_log | mps_nolog | mps_cached1m)
      fill_bench_ini "$name" "$port" plain "$dir/$name.ini"
      CMD=("${pin[@]}" "$MPS_BIN" "$dir/$name.ini") ;;
    mps_bcrypt)
      fill_bench_ini "$name" "$port" bcrypt "$dir/$name.ini"
      CMD=("${pin[@]}" "$MPS_BIN" "$dir/$name.ini") ;;
    nginx_w1_bcrypt | nginx_w1)
      local pw=plain
      [[ $name == nginx_w1_bcrypt ]] && pw=bcrypt
      sed -e "s#@WORKERS@#1#; s#@PORT@#$port#; s#@BENCH@#$WORK#g; s#@HTPASSWD@#$WORK/nginx/htpasswd.$pw#; s#@NAME@#$name#g" \
        "$WORK/nginx/nginx.conf.tmpl" > "$dir/nginx.conf"
      CMD=("${pin[@]}" nginx -c "$dir/nginx.conf") ;;
  esac
}

SERVER_PID=""
stop_server() {
  local pid=$1 i
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  log "pid $pid did not exit after SIGTERM, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}
trap '[[ -n ${SERVER_PID:-} ]] && stop_server "$SERVER_PID" || true' EXIT

start_server() {   # NAME DIR
  local name=$1 dir=$2 port url
  port=$(port_of "$name")
  if ss -Hltn "sport = :$port" | grep -q .; then
    log "port $port already in use; refusing to start $name"; return 1
  fi
  server_cmd "$name" "$dir"
  url=$(url_of "$name" "$port" "$(endpoints_of "$name" | cut -d' ' -f1)")
  [[ $url == */api ]] && url="http://127.0.0.1:$port/"   # startup probe without credentials
  if ! taskset -c "$LOAD_CPU" $PY "$WORK/tools/startup.py" "$dir/server.pid" "$dir/server.log" "$url" -- "${CMD[@]}" > "$dir/startup.json"; then
    log "$name failed to start: $(cat "$dir/startup.json"); log: $dir/server.log"
    [[ -s $dir/server.pid ]] && stop_server "$(cat "$dir/server.pid")"
    return 1
  fi
  SERVER_PID=$(cat "$dir/server.pid")
}

# Warm-up, then the measured run, repeated while other tenants take more than OTHER_MAX % of a
# core (at most MAX_TRIES; the least disturbed try is kept) - as run_all.sh does.
run_wrk() {   # NAME EP DIR
  local name=$1 ep=$2 dir=$3 port url hdr=()
  port=$(port_of "$name")
  url=$(url_of "$name" "$port" "$ep")
  [[ $ep == api ]] && hdr=(-H "$AUTH_HDR")
  local lp=(taskset -c "$LOAD_CPU")
  # nginx with bcrypt does ~20 requests/s on one core: the requests a warm-up leaves queued
  # would fill the measured run, so it gets none (it has nothing to warm up).
  if [[ $name == nginx_w1_bcrypt ]]; then
    : > "$dir/$ep.warm"
  else
    "${lp[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" --timeout 10s "${hdr[@]}" "$url" > "$dir/$ep.warm" 2>&1 || true
  fi
  local TIMEFORMAT='%U %S' try best="" best_other="" other
  for try in $(seq 1 "$MAX_TRIES"); do
    $PY "$WORK/tools/cpustat.py" snap "$dir/$ep.cpu.a" "$SERVER_PID"
    { time "${lp[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 10s --latency "${hdr[@]}" "$url" > "$dir/$ep.try$try.wrk" 2>&1 || true ; } 2> "$dir/$ep.try$try.wrktime"
    $PY "$WORK/tools/cpustat.py" snap "$dir/$ep.cpu.b" "$SERVER_PID"
    $PY "$WORK/tools/cpustat.py" diff "$dir/$ep.cpu.a" "$dir/$ep.cpu.b" "$(awk '{print $1+$2}' "$dir/$ep.try$try.wrktime")" > "$dir/$ep.try$try.cpu.json"
    rm -f "$dir/$ep.cpu.a" "$dir/$ep.cpu.b"
    other=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1])).get("other_pct", 0))' "$dir/$ep.try$try.cpu.json")
    if [[ -z $best ]] || awk -v a="$other" -v b="$best_other" 'BEGIN{exit !(a<b)}'; then best=$try; best_other=$other; fi
    if awk -v a="$other" -v m="$OTHER_MAX" 'BEGIN{exit !(a<=m)}'; then break; fi
    log "  $ep try $try: other tenants used ${other}% of a core (> $OTHER_MAX), repeating"
    sleep 2
  done
  cp "$dir/$ep.try$best.wrk" "$dir/$ep.wrk"
  cp "$dir/$ep.try$best.cpu.json" "$dir/$ep.cpu.json"
  log "  $name $ep: $(grep -E 'Requests/sec' "$dir/$ep.wrk" | tr -s ' ') p99=$(grep -E '^ +99%' "$dir/$ep.wrk" | awk '{print $2}') other=${best_other}% (try $best)"
}

run_group() {   # GROUP CONFIGS...
  local group=$1; shift
  local out="$RESULTS/$group" r name dir alog sent lines
  mkdir -p "$out"
  printf '{"pin": 1, "server_cpu": "cpu%s", "load_cpu": "cpu%s", "duration": "%s", "threads": %s, "conns": %s}\n' \
    "$SERVER_CPU" "$LOAD_CPU" "$DURATION" "$THREADS" "$CONNS" > "$out/meta.json"
  local order=("$@") i
  for r in $(seq 1 "$ROUNDS"); do
    echo "round $r start loadavg: $(cat /proc/loadavg)" >> "$out/loadavg.txt"
    # Even rounds run the configs in reverse order (A B, B A, ...), so that a drift of the
    # machine during a round does not always favour the same config.
    if (( r % 2 == 0 )); then
      order=(); for (( i = $#; i >= 1; i-- )); do order+=("${!i}"); done
    else
      order=("$@")
    fi
    for name in "${order[@]}"; do
      dir="$out/r$r/$name"; mkdir -p "$dir"
      alog=$(accesslog_of "$name")
      [[ -n $alog ]] && : > "$alog"
      log "$group round $r: $name"
      start_server "$name" "$dir"
      for ep in $(endpoints_of "$name"); do
        run_wrk "$name" "$ep" "$dir"
      done
      $PY "$WORK/tools/procmem.py" "$SERVER_PID" > "$dir/mem.json"
      stop_server "$SERVER_PID"
      if [[ -n $alog ]]; then
        sent=$(cat "$dir"/*.try*.wrk "$dir"/*.warm | grep -oE '^ +[0-9]+ requests in' | awk '{s+=$1} END {print s+0}' || true)
        lines=$(wc -l < "$alog")
        echo "r$r: $lines lines / $sent reqs" > "$dir/accesslog.txt"
        rm -f "$alog"
      fi
    done
    echo "round $r end loadavg: $(cat /proc/loadavg)" >> "$out/loadavg.txt"
  done
}

# ------------------------------------------------------------------ main
# (in a function and ended with `exit` on the same line, so that editing this file while it
# runs cannot change what bash reads next)
main() {
  {
    echo "date: $(date -Is)"; echo "uname: $(uname -a)"; echo "nproc: $(nproc)"
    echo "commit: $(git -C "$REPO" rev-parse HEAD)$(git -C "$REPO" diff --quiet || echo ' (dirty)')"
    echo "rounds=$ROUNDS duration=$DURATION warmup=$WARMUP wrk -t$THREADS -c$CONNS; server cpu$SERVER_CPU, wrk cpu$LOAD_CPU"
    echo "loadavg: $(cat /proc/loadavg)"
    ps -eo pid,pcpu,rss,comm --sort=-pcpu | head -8
  } > "$RESULTS/machine.txt" 2>&1

  T0=$(date +%s)
  for part in $PARTS; do
    case $part in
      harness) run_harness ;;
      issue3) ensure_installed; run_group issue3 hyper_min mps_text mps_urlmap100 ;;
      issue5) ensure_installed; run_group issue5 mps_nolog mps_log ;;
      bcrypt) ensure_installed; run_group bcrypt nginx_w1_bcrypt mps_bcrypt ;;
      static) ensure_installed; run_group static nginx_w1 mps_cached1m ;;
      *) echo "unknown part $part" >&2; exit 2 ;;
    esac
  done

  {
    echo "# mapproxy-serve benchmarks ($(date -Is), $(( $(date +%s) - T0 )) s)"
    echo
    echo '```'; cat "$RESULTS/machine.txt"; echo '```'
    for g in harness issue3 issue5 bcrypt static; do
      [[ -d $RESULTS/$g ]] || continue
      base=hyper_min
      [[ $g == issue5 ]] && base=mps_nolog
      [[ $g == bcrypt ]] && base=nginx_w1_bcrypt
      [[ $g == static ]] && base=nginx_w1
      echo; echo "## $g (ratios against $base)"; echo
      $PY "$WORK/tools/report.py" "$RESULTS/$g" "$base"
    done
    echo; echo "## Targets"; echo
    $PY "$HERE/targets.py" "$RESULTS"
  } > "$RESULTS/summary.md"
  $PY "$HERE/targets.py" "$RESULTS"
  log "done in $(( $(date +%s) - T0 )) s: $RESULTS/summary.md"
}

main "$@"; exit
