#!/usr/bin/env bash
# Start-up and reload memory of MapProxy apps, in one run, against MapProxy 7:
#
# 1. start-up of a 200-layer, 200-cache, 200-source YAML: from spawning the server to its
#    first answer of /tms/1.0.0/ (which lists all 200 layers), for `mapproxy-serve config.ini`
#    and for MapProxy 7 on gunicorn (`make_wsgi_app`, MapProxy's own loader); best of RUNS;
# 2. MultiMapProxy RSS over RELOADS reloads of a 600-layer project: each round changes the
#    project's mtime and requests /proj/tms/1.0.0/ (a rebuild); RSS after 1, 10, 50 and 100
#    reloads, for `egg:MapProxy#multiapp` and MapProxy 7's `make_wsgi_app` multiapp on gunicorn
#    with one worker (MP7_RELOADS reloads: each takes MapProxy seconds).
#
#   bench/mapproxy_startup.sh            # RUNS=5 RELOADS=100 MP7_RELOADS=10
#
# Each server pinned to SERVER_CPU; loopback only; every wait is polled with a deadline.
# Needs a Python with MapProxy 7 (MAPPROXY_PYTHON, default target/mapproxy-venv/bin/python, as
# .ci/test installs it); gunicorn is added to that venv.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${RUNS:-5} RELOADS=${RELOADS:-100} MP7_RELOADS=${MP7_RELOADS:-10} SERVER_CPU=${SERVER_CPU:-1}
PY=${MAPPROXY_PYTHON:-$PWD/target/mapproxy-venv/bin/python}
"$PY" -c 'import gunicorn' 2>/dev/null || "$PY" -m pip install -q gunicorn
mps_binary
GUNICORN=$(dirname "$PY")/gunicorn
W=$(mktemp -d /tmp/mps-startup-bench.XXXX)
trap 'rm -rf "$W"' EXIT

python3 - "$W" <<'EOF'
import os, sys
w = sys.argv[1]
def project(n):
    # n layers, each over its own cache of a WMS source (not contacted at start-up), on the
    # built-in web mercator grid and a custom grid; every fourth layer is a group.
    out = ["services:", "  demo:", "  tms:", "  kml:", "  wmts:", "grids:",
           "  utm32:", "    srs: 'EPSG:25832'", "    bbox: [280000, 5200000, 920000, 6100000]",
           "    origin: nw", "    res_factor: 2", "    num_levels: 18",
           "globals:", "  cache:", f"    base_dir: {w}/cache_data", "layers:"]
    for i in range(n):
        out += [f"  - name: layer{i}", f"    title: Layer {i}", f"    sources: [cache{i}]"]
        if i % 4 == 0:
            out += ["    layers:", f"      - name: layer{i}_child", f"        title: Child {i}",
                    f"        sources: [cache{i}]"]
    out.append("caches:")
    for i in range(n):
        out += [f"  cache{i}:", "    grids: [GLOBAL_WEBMERCATOR, utm32]", f"    sources: [wms{i}]",
                "    format: image/png"]
    out.append("sources:")
    for i in range(n):
        out += [f"  wms{i}:", "    type: wms", "    req:", "      url: http://127.0.0.1:9/service",
                f"      layers: l{i}", "    supported_srs: ['EPSG:3857', 'EPSG:25832']"]
    return "\n".join(out) + "\n"
open(f"{w}/layers200.yaml", "w").write(project(200))
os.makedirs(f"{w}/projects")
open(f"{w}/projects/proj.yaml", "w").write(project(600))
EOF

cat > "$W/start.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18411
[app:main]
use = egg:MapProxy#app
mapproxy_conf = $W/layers200.yaml
EOF
cat > "$W/multi.ini" <<EOF
[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = 18412
[app:main]
use = egg:MapProxy#multiapp
config_dir = $W/projects
EOF
cat > "$W/start_app.py" <<EOF
from mapproxy.wsgiapp import make_wsgi_app
application = make_wsgi_app('$W/layers200.yaml')
EOF
cat > "$W/multi_app.py" <<EOF
from mapproxy.multiapp import make_wsgi_app
application = make_wsgi_app('$W/projects')
EOF

# driver.py start NAME PORT CMD...: best-of-RUNS time from spawn to the first 200 of /tms/1.0.0/.
# driver.py reload NAME PORT CMD...: RSS of the server's processes over RELOADS rebuilds.
cat > "$W/driver.py" <<'EOF'
import os, signal, subprocess, sys, time, urllib.request
mode, name, port, cmd = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
runs, reloads, w = int(os.environ["RUNS"]), int(os.environ["RELOADS"]), os.environ["W"]

def get(path, deadline):
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=120) as r:
                body = r.read()
                if r.status == 200:
                    return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{name}: {path} did not answer 200")
        time.sleep(0.002)

def rss(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int([l for l in open(f"/proc/{p}/status") if l.startswith("VmRSS")][0].split()[1])
            todo += [int(c) for c in open(f"/proc/{p}/task/{p}/children").read().split()]
        except OSError:
            pass
    return total / 1024

def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill(); p.wait()

if mode == "start":
    best = None
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=w)
        body = get("/tms/1.0.0/", t0 + 600)
        dt = time.monotonic() - t0
        stop(p)
        assert body.count(b"<TileMap ") >= 200, body[:300]
        best = dt if best is None else min(best, dt)
    print(f"| start-up, 200 layers | {name} | {best * 1000:.0f} ms |")
else:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=w)
    yaml = f"{w}/projects/proj.yaml"
    row = []
    t0 = time.monotonic()
    for i in range(1, reloads + 1):
        st = os.stat(yaml)
        os.utime(yaml, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        get("/proj/tms/1.0.0/", time.monotonic() + 600)
        if i in (1, 10, 50, 100, reloads):
            row.append(f"{i}: {rss(p.pid):.0f} MB")
    dt = time.monotonic() - t0
    stop(p)
    print(f"| multiapp RSS, 600 layers, {reloads} reloads | {name} | {' / '.join(row)} ({dt / reloads * 1000:.0f} ms per reload) |")
EOF

export RUNS RELOADS W
echo "| measure | server | result |"
echo "|---|---|---|"
python3 "$W/driver.py" start mapproxy-serve 18411 taskset -c "$SERVER_CPU" "$BIN" "$W/start.ini"
python3 "$W/driver.py" start mapproxy7-gunicorn 18413 taskset -c "$SERVER_CPU" "$GUNICORN" -w 1 --timeout 600 -b 127.0.0.1:18413 start_app:application
python3 "$W/driver.py" reload mapproxy-serve 18412 taskset -c "$SERVER_CPU" "$BIN" "$W/multi.ini"
RELOADS=$MP7_RELOADS python3 "$W/driver.py" reload mapproxy7-gunicorn 18414 taskset -c "$SERVER_CPU" "$GUNICORN" -w 1 --timeout 600 -b 127.0.0.1:18414 multi_app:application
