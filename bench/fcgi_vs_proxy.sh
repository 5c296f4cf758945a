#!/usr/bin/env bash
# FastCGI versus HTTP reverse proxy behind nginx, same app (egg:mapproxy-serve#text, "ok\n"):
#
#   fcgi   wrk -> nginx -> mapproxy-serve FastCGI (unix socket, fastcgi_keep_conn + keepalive)
#   proxy  wrk -> nginx -> mapproxy-serve HTTP    (127.0.0.1, proxy_pass, keepalive upstream)
#   php    wrk -> nginx -> PHP-FPM                (unix socket, `<?php echo "ok\n";`), if installed
#
# nginx, the servers and PHP-FPM run pinned to SERVER_CPU, wrk to LOAD_CPU (as
# /work/shared/bench/run_all.sh does). Everything listens on 127.0.0.1 or in a tempdir; every
# run is bounded (wrk -d, start-up waits of at most 15 s). Prints req/s and p99 per variant
# and the ratio fcgi/proxy.
#
# Knobs (env): ROUNDS=1 DURATION=8s WARMUP=2s THREADS=2 CONNS=64 SERVER_CPU=1 LOAD_CPU=0
#              PHP_CHILDREN=4 SKIP_BUILD=0 MPS_BIN=target/release/mapproxy-serve
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-1}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-2s}"
THREADS="${THREADS:-2}"
CONNS="${CONNS:-64}"
SERVER_CPU="${SERVER_CPU:-1}"
LOAD_CPU="${LOAD_CPU:-0}"
PHP_CHILDREN="${PHP_CHILDREN:-4}"
BIN="${MPS_BIN:-$ROOT/target/release/mapproxy-serve}"

for d in "$DURATION" "$WARMUP"; do
  [[ $d =~ ^([0-9]|10)s$ ]] || { echo "durations are at most 10s (got $d)" >&2; exit 2; }
done
for tool in wrk nginx taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  log "cargo build --release"
  (cd "$ROOT" && cargo build --release --bin mapproxy-serve -q)
fi
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 2; }

PHP_FPM="$(command -v php-fpm || ls /usr/sbin/php-fpm* 2>/dev/null | head -1 || true)"

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  local p i
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for TEST... : poll (at most 15 s) until the test command succeeds
wait_for() {
  local i
  for i in $(seq 1 150); do
    if "$@" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for: $*" >&2
  return 1
}

HTTP_PORT="$(free_port)"
NGINX_PORT="$(free_port)"

cat > "$TMP/fcgi.ini" <<EOF
[app:main]
use = egg:mapproxy-serve#text

[server:main]
use = egg:mapproxy-serve#fcgi
socket = %(here)s/fcgi.sock
EOF
cat > "$TMP/http.ini" <<EOF
[app:main]
use = egg:mapproxy-serve#text

[server:main]
use = egg:mapproxy-serve#http
host = 127.0.0.1
port = $HTTP_PORT
EOF

PHP_LOCATION=""
if [[ -n $PHP_FPM ]]; then
  mkdir -p "$TMP/php"
  printf '<?php\nheader("Content-Type: text/plain; charset=utf-8");\necho "ok\\n";\n' > "$TMP/php/ok.php"
  cat > "$TMP/php-fpm.conf" <<EOF
[global]
pid = $TMP/php-fpm.pid
error_log = $TMP/php-fpm.log
daemonize = no

[bench]
user = root
group = root
listen = $TMP/php.sock
listen.mode = 0666
pm = static
pm.max_children = $PHP_CHILDREN
EOF
  PHP_LOCATION="location /php { include /etc/nginx/fastcgi_params; fastcgi_param SCRIPT_FILENAME $TMP/php/ok.php; fastcgi_pass unix:$TMP/php.sock; }"
fi

cat > "$TMP/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/client_body;
    fastcgi_temp_path $TMP/fastcgi_temp;
    proxy_temp_path $TMP/proxy_temp;
    uwsgi_temp_path $TMP/uwsgi_temp;
    scgi_temp_path $TMP/scgi_temp;

    upstream mps_fcgi { server unix:$TMP/fcgi.sock; keepalive 32; }
    upstream mps_http { server 127.0.0.1:$HTTP_PORT; keepalive 32; }

    server {
        listen 127.0.0.1:$NGINX_PORT;
        # the README's FastCGI recipe
        location /fcgi {
            fastcgi_split_path_info ^(/fcgi)(.*)\$;
            include /etc/nginx/fastcgi_params;
            fastcgi_param PATH_INFO \$fastcgi_path_info;
            fastcgi_param HTTP_HOST \$http_host;
            fastcgi_keep_conn on;
            fastcgi_pass mps_fcgi;
        }
        # the HTTP alternative
        location /proxy {
            proxy_pass http://mps_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
        }
        $PHP_LOCATION
    }
}
EOF

log "starting servers (pinned to cpu $SERVER_CPU)"
taskset -c "$SERVER_CPU" "$BIN" -q "$TMP/fcgi.ini" 2> "$TMP/fcgi.log" &
PIDS+=($!)
taskset -c "$SERVER_CPU" "$BIN" -q "$TMP/http.ini" 2> "$TMP/http.log" &
PIDS+=($!)
wait_for test -S "$TMP/fcgi.sock"
wait_for curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/"
VARIANTS=(fcgi proxy)
if [[ -n $PHP_FPM ]]; then
  taskset -c "$SERVER_CPU" "$PHP_FPM" -R -F -y "$TMP/php-fpm.conf" 2> "$TMP/php-fpm.stderr" &
  PIDS+=($!)
  if wait_for test -S "$TMP/php.sock"; then
    VARIANTS+=(php)
  else
    log "php-fpm did not start: $(cat "$TMP/php-fpm.stderr" "$TMP/php-fpm.log" 2>/dev/null)"
  fi
fi
taskset -c "$SERVER_CPU" nginx -c "$TMP/nginx.conf" -e "$TMP/nginx-early.log" &
PIDS+=($!)
wait_for curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/proxy"

for v in "${VARIANTS[@]}"; do
  body="$(curl -sf "http://127.0.0.1:$NGINX_PORT/$v")" || { echo "$v: request failed" >&2; exit 1; }
  [[ $body == ok ]] || { echo "$v: unexpected body '$body'" >&2; exit 1; }
done
[[ -z $PHP_FPM ]] && log "php-fpm is not installed (apt-get install php-fpm): no php variant"

echo "machine: $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP)"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'), mapproxy-serve $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')${PHP_FPM:+, $("$PHP_FPM" -v | head -1 | cut -d' ' -f1-2)}"
for r in $(seq 1 "$ROUNDS"); do
  declare -A RPS=() P99=()
  for v in "${VARIANTS[@]}"; do
    url="http://127.0.0.1:$NGINX_PORT/$v"
    taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$url" > /dev/null
    out="$(taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$url")"
    errors="$(grep -E 'Non-2xx|Socket errors' <<< "$out" || true)"
    RPS[$v]="$(awk '/^Requests\/sec/ {print $2}' <<< "$out")"
    P99[$v]="$(awk '$1 == "99%" {print $2}' <<< "$out")"
    printf 'round %s  %-6s %10s req/s   p99 %8s  %s\n' "$r" "$v" "${RPS[$v]}" "${P99[$v]}" "$errors"
  done
  awk -v f="${RPS[fcgi]}" -v p="${RPS[proxy]}" -v r="$r" \
    'BEGIN { printf "round %s  fcgi/proxy = %.2f\n", r, (p > 0 ? f / p : 0) }'
  if [[ -n ${RPS[php]:-} ]]; then
    awk -v f="${RPS[fcgi]}" -v p="${RPS[php]}" -v r="$r" \
      'BEGIN { printf "round %s  fcgi/php   = %.2f\n", r, (p > 0 ? f / p : 0) }'
  fi
  unset RPS P99
done
