#!/usr/bin/env bash
# The WPS: `say_hello` as a synchronous Execute (KVP GET, response document) on mapproxy-serve
# (egg:PyWPS#app) and on PyWPS 4.8.1 under gunicorn, each pinned to the same CPU (SERVER_CPU),
# wrk pinned to another (LOAD_CPU), loopback only, bounded by DURATION. Prints req/s, p99 and
# RSS per round and the median ratio. Then the asynchronous path: JOBS concurrent
# storeExecuteResponse=true&status=true Executes on mapproxy-serve, every status document polled
# until it says ProcessSucceeded (a job lost or failed fails the run).
#
#   bench/wps.sh                  # ROUNDS=3 DURATION=10s CONNS=16 JOBS=100
#
# wrk waits up to 30 s per request (PyWPS needs tens of ms per Execute: with wrk's default 2 s
# its queued requests time out and count as nothing); timeouts are reported.
#
# Needs wrk (Debian package); PyWPS 4.8.1 and gunicorn go into target/pywps-venv (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
ROOT=$PWD
ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-10s} CONNS=${CONNS:-16} THREADS=${THREADS:-2}
SERVER_CPU=${SERVER_CPU:-1} LOAD_CPU=${LOAD_CPU:-0} JOBS=${JOBS:-100} GUNICORN_WORKERS=${GUNICORN_WORKERS:-2}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)"; exit 1; }
VENV=target/pywps-venv
if ! "$VENV/bin/python" -c 'import pywps, gunicorn' 2>/dev/null; then
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'pywps==4.8.1' gunicorn
fi
mps_binary
W=$(mktemp -d /tmp/mps-wps-bench.XXXX)
MPS=
stop_all() {
  local g=
  [ -f "$W/gunicorn.pid" ] && g=$(cat "$W/gunicorn.pid") && kill "$g" 2>/dev/null
  [ -n "$MPS" ] && kill "$MPS" 2>/dev/null
  # wait (bounded) until both are gone before removing their files
  for _ in $(seq 1 100); do
    { [ -n "$g" ] && kill -0 "$g" 2>/dev/null; } || { [ -n "$MPS" ] && kill -0 "$MPS" 2>/dev/null; } || break
    sleep 0.1
  done
  rm -rf "$W"
}
trap stop_all EXIT
mkdir -p "$W/outputs" "$W/workdir"
# One pywps.cfg for both. parallelprocesses = -1: the runs measure throughput, not the limit
# (and PyWPS keeps its default in-memory job database, which cannot get stuck without a limit).
cat > "$W/pywps.cfg" <<EOF
[server]
url = http://127.0.0.1:18411/wps
outputurl = http://127.0.0.1:18411/wps/outputs/
outputpath = $W/outputs
workdir = $W/workdir
parallelprocesses = -1
maxprocesses = -1
[logging]
level = WARNING
EOF
cat > "$W/wps.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18411
[composite:main]
use = egg:Paste#urlmap
/wps = wps
[app:wps]
use = egg:PyWPS#app
pywps_cfg = $W/pywps.cfg
outputs = /outputs
EOF
# PyWPS's say_hello (pywps-flask's process: one string in, "Hello " + it out).
cat > "$W/app.py" <<EOF
from pywps import Service, Process, LiteralInput, LiteralOutput

def handler(request, response):
    response.outputs['response'].data = 'Hello ' + request.inputs['name'][0].data
    return response

say_hello = Process(handler, identifier='say_hello', title='Process Say Hello', version='1.3.3.7',
                    inputs=[LiteralInput('name', 'Input name', data_type='string')],
                    outputs=[LiteralOutput('response', 'Output response', data_type='string')],
                    store_supported=True, status_supported=True)
application = Service([say_hello], ['$W/pywps.cfg'])
EOF
Q="/wps?service=WPS&request=Execute&version=1.0.0&identifier=say_hello&DataInputs=name=World"
wait_up() { wait_http "http://127.0.0.1:$1$Q"; }
run() { # NAME PORT PIDS...
  local name=$1 port=$2; shift 2
  taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d2s --timeout 30s "http://127.0.0.1:$port$Q" >/dev/null
  local out; out=$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 30s --latency "http://127.0.0.1:$port$Q")
  local rps p99 errs tmo mem; rps=$(awk '/Requests\/sec/{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  errs=$(awk '/Non-2xx/{print $NF}' <<<"$out"); errs=${errs:-0}
  tmo=$(sed -n 's/.*timeout \([0-9]*\).*/\1/p' <<<"$out"); tmo=${tmo:-0}
  mem=$(rss_mb "$@")
  echo "$name $rps $p99 ${mem}MB $errs $tmo"
}

taskset -c "$SERVER_CPU" "$BIN" "$W/wps.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18411
curl -s "http://127.0.0.1:18411$Q" | grep -q '>Hello World</wps:LiteralData>' || { echo "bench: unexpected answer"; exit 1; }
( cd "$W" && taskset -c "$SERVER_CPU" "$ROOT/$VENV/bin/gunicorn" -w "$GUNICORN_WORKERS" -b 127.0.0.1:18412 --pid "$W/gunicorn.pid" app:application 2>"$W/gunicorn.log" ) &
wait_up 18412
curl -s "http://127.0.0.1:18412$Q" | grep -q '>Hello World</wps:LiteralData>' || { echo "bench: PyWPS answers otherwise"; exit 1; }
echo "say_hello, synchronous Execute (KVP GET), $CONNS connections, $DURATION, one CPU each"
echo "| round | server | req/s | p99 | RSS | non-2xx | timeouts |"
echo "|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for line in "$(run mapproxy-serve 18411 $MPS)" "$(run pywps-4.8.1-gunicorn-w$GUNICORN_WORKERS 18412 $(cat "$W/gunicorn.pid") $(pgrep -P "$(cat "$W/gunicorn.pid")" | tr '\n' ' '))"; do
    read -r n rps p99 mem errs tmo <<<"$line"; echo "| $r | $n | $rps | $p99 | $mem | $errs | $tmo |"; echo "$r $n $rps" >> "$W/rps"
  done
done
python3 - "$W/rps" <<'EOF'
import sys, statistics, collections
by = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    r, n, rps = line.split(); by[r][n] = float(rps)
ratios = [v['mapproxy-serve'] / x for v in by.values()
          for k, x in v.items() if k != 'mapproxy-serve' and x > 0]
print("\nmedian per-round ratio: mapproxy-serve / PyWPS 4.8.1 on gunicorn = "
      + (f"{statistics.median(ratios):.1f}x" if ratios else "n/a (PyWPS answered nothing)"))
EOF
# The asynchronous path: JOBS jobs at once (parallelprocesses 2, the rest queued), all polled.
sed -i 's/^parallelprocesses = -1/parallelprocesses = 2/' "$W/pywps.cfg"
kill "$MPS"; wait "$MPS" 2>/dev/null || true
taskset -c "$SERVER_CPU" "$BIN" "$W/wps.ini" 2>"$W/mps.log" & MPS=$!
wait_up 18411
python3 - "$JOBS" <<'EOF'
import sys, time, urllib.request, concurrent.futures, re
jobs = int(sys.argv[1])
base = "http://127.0.0.1:18411/wps?service=WPS&request=Execute&identifier=say_hello&storeExecuteResponse=true&status=true&DataInputs=name="
def submit(i):
    doc = urllib.request.urlopen(base + f"job{i}", timeout=30).read().decode()
    assert "ProcessAccepted" in doc, doc
    return i, re.search(r'statusLocation="([^"]+)"', doc).group(1)
t0 = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
    locs = dict(ex.map(submit, range(jobs)))
accepted = time.monotonic() - t0
pending, deadline = dict(locs), time.monotonic() + 120
while pending and time.monotonic() < deadline:
    for i, url in list(pending.items()):
        doc = urllib.request.urlopen(url, timeout=30).read().decode()
        if "ProcessSucceeded" in doc:
            assert f">Hello job{i}</wps:LiteralData>" in doc, doc
            del pending[i]
        elif "ProcessFailed" in doc:
            sys.exit(f"job {i} failed: {doc}")
    time.sleep(0.01)
done = time.monotonic() - t0
if pending:
    sys.exit(f"{len(pending)} of {jobs} jobs lost (no ProcessSucceeded within 120 s)")
print(f"\nasync: {jobs} concurrent jobs accepted in {accepted:.2f} s, all {jobs} ProcessSucceeded after {done:.2f} s (none lost)")
EOF
