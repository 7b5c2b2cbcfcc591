#!/bin/sh
# run.sh - builds one libFuzzer target (ASan, UBSan) in a temporary directory,
# runs it once over each input of past findings (regressions/<target>/), then
# fuzzes from its seed corpus (corpus/<target>/) with its dictionary
# (<target>.dict).
#
#   run.sh <target> [seconds | -runs=N]    json, auth, provider, route, config, lookup
#   run.sh all [seconds | -runs=N]         every target in turn
#
# Default 20 s. Each target links only the bridge sources it needs. After
# each run one line sums up libFuzzer's final figures (executions, exec/s,
# cov, ft, corpus size, time, findings). New inputs stay in the temporary
# directory, which is removed on success and kept (with the crashing input,
# the binary and the log) on failure. WB_FUZZ_CC picks the compiler (clang);
# -runs=N stops after WB_FUZZ_MAX_TIME seconds (1500) if N takes longer.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${WB_FUZZ_CC:-clang}
targets="json auth provider route config lookup"

usage() {
    echo "usage: run.sh <json|auth|provider|route|config|lookup|all> [seconds | -runs=N]" >&2
    exit 2
}

# Sets srcs, pkgs and maxlen for target $1.
target_conf() {
    case $1 in
    json) srcs="json.c common.c" pkgs="" maxlen=8192 ;;
    auth) srcs="auth.c lookup.c json.c common.c" pkgs="libcrypto libssl libh2o-evloop" maxlen=4096 ;;
    provider) srcs="event.c json.c route.c provider.c auth.c lookup.c common.c" pkgs="libcrypto libssl libh2o-evloop" maxlen=8192 ;;
    route) srcs="route.c common.c" pkgs="" maxlen=1024 ;;
    config) srcs="config.c provider.c auth.c route.c lookup.c json.c common.c" pkgs="libcrypto libssl inih rdkafka libh2o-evloop" maxlen=8192 ;;
    lookup) srcs="lookup.c json.c common.c" pkgs="libcrypto libssl libh2o-evloop" maxlen=2048 ;;
    *) usage ;;
    esac
}

# The value of libFuzzer's final stat $2 in log $1, or ?.
stat_of() {
    v=$(sed -n "s/^stat::$2: *//p" "$1" | tail -n 1)
    echo "${v:-?}"
}

# Field $2 (cov, ft, corp) of the last status line in log $1, or ?.
status_of() {
    v=$(grep -E '^#[0-9]+' "$1" | tail -n 1 | sed -n "s/.* $2: \([0-9/a-zA-Z]*\).*/\1/p")
    echo "${v:-?}"
}

run_target() {
    t=$1
    target_conf "$t"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/wb-fuzz-$t.XXXXXX")
    files=""
    for s in $srcs; do
        files="$files $root/bridge/$s"
    done
    flags=""
    if [ -n "$pkgs" ]; then
        # shellcheck disable=SC2086
        flags=$(pkg-config --cflags --libs $pkgs)
    fi
    # shellcheck disable=SC2086
    if ! "$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror \
        -I"$root/bridge" -I"$here" $files "$here/fuzz_$t.c" $flags -lm \
        -o "$tmp/fuzz_$t" >"$tmp/build.log" 2>&1; then
        cat "$tmp/build.log" >&2
        echo "run.sh: fuzz_$t does not build; kept in $tmp" >&2
        return 1
    fi
    mkdir "$tmp/corpus"
    status=0
    # inputs of past findings, each run once: kept out of the seeds when
    # they would slow every execution down (a 12 KB record)
    reg=$here/regressions/$t
    if [ -d "$reg" ] && [ -n "$(ls "$reg")" ]; then
        "$tmp/fuzz_$t" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$tmp/" "$reg"/* \
            >"$tmp/regressions.log" 2>&1 || status=$?
        if [ "$status" -ne 0 ]; then
            tail -n 80 "$tmp/regressions.log" >&2
            echo "run.sh: fuzz_$t fails on an input of $reg; kept in $tmp" >&2
            return "$status"
        fi
    fi
    start=$(date +%s)
    "$tmp/fuzz_$t" $limit -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -dict="$here/$t.dict" -artifact_prefix="$tmp/" \
        "$tmp/corpus" "$here/corpus/$t" >"$tmp/fuzz.log" 2>&1 || status=$?
    secs=$(($(date +%s) - start))
    log=$tmp/fuzz.log
    findings=$(find "$tmp" -maxdepth 1 -name 'crash-*' -o -maxdepth 1 -name 'leak-*' \
        -o -maxdepth 1 -name 'timeout-*' -o -maxdepth 1 -name 'oom-*' | wc -l | tr -d ' ')
    corp=$(status_of "$log" corp)
    echo "run.sh: fuzz_$t: $(stat_of "$log" number_of_executed_units) execs," \
        "$(stat_of "$log" average_exec_per_sec) exec/s, cov: $(status_of "$log" cov)" \
        "ft: $(status_of "$log" ft), corpus: ${corp%%/*} inputs, ${secs} s," \
        "findings: $findings, exit $status"
    if [ "$status" -eq 0 ]; then
        rm -rf "$tmp"
    else
        tail -n 80 "$log" >&2
        echo "run.sh: fuzz_$t failed ($status); inputs, binary and log kept in $tmp" >&2
    fi
    return "$status"
}

[ $# -ge 1 ] && [ $# -le 2 ] || usage
what=$1
arg=${2:-20}
case $arg in
-runs=*) limit="$arg -max_total_time=${WB_FUZZ_MAX_TIME:-1500}" ;;
*[!0-9]* | '') usage ;;
*) limit=-max_total_time=$arg ;;
esac

if [ "$what" = all ]; then
    rc=0
    for t in $targets; do
        run_target "$t" || rc=1
    done
    exit "$rc"
fi
run_target "$what"
