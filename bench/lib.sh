# Shared by the bench scripts (sourced): what they read off the server processes, and the
# wait for a server to answer. Loopback only; every wait is bounded.

# The summed resident memory of the processes PIDS..., in MB.
rss_mb() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo $((t / 1024)); }

# The summed CPU time (user + system, clock ticks) of the processes PIDS....
cpu_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

# The summed system (kernel) CPU time, clock ticks, of the processes PIDS....
sys_ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

# Polls URL (every 0.1 s, at most 60 s) until it answers 2xx; exits the script otherwise.
wait_http() { for _ in $(seq 1 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "bench: $1 did not answer"; exit 1; }

# Sets BIN: MPS_BIN when given (an A/B against another commit's binary), else this tree's
# release binary, built with the cargo features in FEATURES. FEATURES defaults to turbojpeg
# (JPEG by libjpeg-turbo, the production build the README recommends) when cmake and nasm are
# there to build it; FEATURES= (empty) measures the default, pure-Rust build.
mps_binary() {
  if [ -n "${MPS_BIN:-}" ]; then BIN=$MPS_BIN; echo "mapproxy-serve: $BIN"; return; fi
  if [ -z "${FEATURES+set}" ] && command -v cmake >/dev/null 2>&1 && command -v nasm >/dev/null 2>&1; then
    FEATURES=turbojpeg
  fi
  cargo build -q --release ${FEATURES:+--features "$FEATURES"} --bin mapproxy-serve
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/mapproxy-serve
  echo "mapproxy-serve: this tree's release build, features: ${FEATURES:-(default)}"
}
