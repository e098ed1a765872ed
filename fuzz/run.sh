#!/bin/sh
# run.sh BINARY CORPUS DICT SECONDS ARTIFACTS [FLAGS] - one bounded libFuzzer run of BINARY on
# a scratch copy of CORPUS (the repository's corpus is never written to), with DICT if it
# exists. Prints one line: executions, executions per second, coverage (cov: edges, ft:
# features) and corpus size. On a crash, prints the end of the log and where the input is,
# and exits 1.
set -u
bin=$1 corpus=$2 dict=$3 seconds=$4 artifacts=$5 flags=${6:-}
name=$(basename "$bin")
work=$(mktemp -d "${TMPDIR:-/tmp}/catalogd-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

mkdir -p "$work/corpus" "$artifacts"
[ -d "$corpus" ] && cp -R "$corpus/." "$work/corpus/"
dict_flag=""
[ -f "$dict" ] && dict_flag="-dict=$dict"

# shellcheck disable=SC2086 # $flags and $dict_flag are word lists on purpose
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
    "$bin" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
    -artifact_prefix="$artifacts/$name-" $dict_flag $flags "$work/corpus" >"$work/log" 2>&1
rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$work/log" | tail -n 1; }
last=$(grep -E '^#[0-9]+' "$work/log" | grep 'cov: ' | tail -n 1)
cov=$(printf '%s\n' "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
ft=$(printf '%s\n' "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
corp=$(printf '%s\n' "$last" | sed -n 's/.* corp: \([^ ]*\).*/\1/p')
printf '%-17s %10s execs %7s exec/s  cov: %-5s ft: %-6s corpus: %s  (%ss)\n' "$name" \
    "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" "${cov:-?}" "${ft:-?}" \
    "${corp:-?}" "$seconds"

if [ "$rc" -ne 0 ]; then
    echo "$name: CRASHED (exit $rc); end of the log:"
    tail -n 60 "$work/log"
    echo "$name: reproduce with: $bin <the file named after 'Test unit written to' above>"
    exit 1
fi
