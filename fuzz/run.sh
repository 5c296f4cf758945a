#!/usr/bin/env bash
# Bounded fuzzing runs: build the fuzz targets, run each for FUZZ_SECONDS, one after the
# other, and exit non-zero if any target found a crash, a timeout or an out-of-memory input.
#
#   fuzz/run.sh [TARGET ...]          (default: ini_resolve fcgi_records)
#
# Knobs (env): FUZZ_SECONDS=60 per target; FUZZ_MAX_LEN=16384 (largest input in bytes);
#              FUZZ_JOBS=1 (more runs that many libFuzzer processes side by side, with their
#              output in fuzz/artifacts/TARGET/fuzz-N.log); TOOLCHAIN=nightly.
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain.
#
# Each target starts from its committed seeds (fuzz/seeds/TARGET, read only) and from the
# corpus earlier runs grew (fuzz/corpus/TARGET, not committed). libFuzzer's limits:
# -rss_limit_mb=2048, -timeout=10 (seconds for one input). What it finds goes to
# fuzz/artifacts/TARGET/ (crash-*, timeout-*, oom-*); the log of the run is
# fuzz/artifacts/TARGET/last-run.log. Reproduce one input with
#   cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and keep it as a seed (fuzz/seeds/TARGET/) once fixed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")" || exit 2
SECONDS_EACH=${FUZZ_SECONDS:-60}
MAX_LEN=${FUZZ_MAX_LEN:-16384}
JOBS=${FUZZ_JOBS:-1}
TOOLCHAIN=${TOOLCHAIN:-nightly}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(ini_resolve fcgi_records)

if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz with a $TOOLCHAIN toolchain is needed: cargo install cargo-fuzz" >&2
    exit 2
fi

dict_of() {
    case "$1" in
        ini_resolve) echo ini.dict ;;
        fcgi_records) echo fcgi.dict ;;
        *) echo "" ;;
    esac
}

# The ini target writes its input into /dev/shm/mapproxy-serve-fuzz-PID (or $TMPDIR): remove
# the directories of processes that are gone.
clean_scratch() {
    local d pid
    for d in /dev/shm/mapproxy-serve-fuzz-* "${TMPDIR:-/tmp}"/mapproxy-serve-fuzz-*; do
        [ -d "$d" ] || continue
        pid=${d##*-}
        kill -0 "$pid" 2>/dev/null || rm -rf "$d"
    done
}

echo "== building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
    cargo "+$TOOLCHAIN" fuzz build "$t" || { echo "build of $t failed" >&2; exit 2; }
done

FUZZ_DIR=$PWD
failed=()
for t in "${TARGETS[@]}"; do
    art="$FUZZ_DIR/artifacts/$t"
    mkdir -p "corpus/$t" "$art"
    args=(-max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 -max_len="$MAX_LEN"
          -print_final_stats=1)
    dict=$(dict_of "$t")
    [ -n "$dict" ] && args+=(-dict="$FUZZ_DIR/$dict")
    # cargo fuzz sets -artifact_prefix to $art/. -jobs makes libFuzzer fork workers that log
    # to ./fuzz-N.log (here: in $art).
    [ "$JOBS" -gt 1 ] && args+=(-jobs="$JOBS" -workers="$JOBS")
    log="$art/last-run.log"
    rm -f "$art"/fuzz-*.log
    echo "== $t: ${SECONDS_EACH}s (log: fuzz/artifacts/$t/last-run.log)"
    before=$(ls "$art" | grep -E '^(crash|timeout|oom|leak)-' | sort)
    (cd "$art" && cargo "+$TOOLCHAIN" fuzz run --fuzz-dir "$FUZZ_DIR" "$t" \
        "$FUZZ_DIR/corpus/$t" "$FUZZ_DIR/seeds/$t" -- "${args[@]}") >"$log" 2>&1
    status=$?
    clean_scratch
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1
    grep -E '^stat::' "$log"
    after=$(ls "$art" | grep -E '^(crash|timeout|oom|leak)-' | sort)
    found=$(comm -13 <(echo "$before") <(echo "$after") | grep . || true)
    if [ "$status" -ne 0 ] || [ -n "$found" ]; then
        echo "!! $t: exit status $status; new inputs: ${found:-none}" >&2
        grep -E -m 20 'panicked|ERROR: libFuzzer|SUMMARY|deadly signal|timeout|out-of-memory' "$log" >&2
        for f in $found; do
            echo "   fuzz/artifacts/$t/$f (base64: $(base64 -w0 "$art/$f" | head -c 2000))" >&2
        done
        failed+=("$t")
    fi
    echo "   corpus: $(ls "corpus/$t" | wc -l) files"
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "ok: ${TARGETS[*]} ran ${SECONDS_EACH}s each without a crash"
