#!/bin/sh
# run.sh - builds the json.c fuzzer (libFuzzer, ASan, UBSan) in a temporary
# directory and runs it for $1 seconds (default 20) from the seed corpus in
# corpus/. New inputs stay in the temporary directory, which is removed on
# success and kept (with any crashing input) on failure.
set -eu

secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${WB_FUZZ_CC:-clang}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wb-fuzz-json.XXXXXX")

"$cc" -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -Wall -Wextra -Wshadow -Werror \
    -I"$root/bridge" "$root/bridge/json.c" "$root/bridge/common.c" "$here/fuzz_json.c" \
    -o "$tmp/fuzz_json"

mkdir "$tmp/corpus"
status=0
"$tmp/fuzz_json" -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -dict="$here/json.dict" -artifact_prefix="$tmp/" \
    "$tmp/corpus" "$here/corpus" || status=$?

if [ "$status" -eq 0 ]; then
    rm -rf "$tmp"
else
    echo "run.sh: fuzz_json failed ($status); inputs and binary kept in $tmp" >&2
fi
exit "$status"
