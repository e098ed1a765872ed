#!/usr/bin/env bash
# scripts/check-includes.sh - checks the dependency rules of CONTRIBUTING.md on what the
# compiler actually read: every object's dependency file (build/src/**/*.d, written by -MMD)
# lists each header of ours it included, directly or through another header.
#   domain/      only domain/ and common/
#   query/       never command/ or projection/ (the write side, the projector), nor SQLite
#   command/     never query/, projection/ or readmodel/, nor hiredis
#   projection/  never query/ or http/
#   h2o          only in http/ and the query side's Redis client (its socket glue)
# Usage: scripts/check-includes.sh [BUILD_DIR] (default build; run after make all).
set -u
build=${1:-build}
cd "$(dirname "$0")/.." || exit 2
[ -d "$build/src" ] || { echo "check-includes: no $build/src: build first" >&2; exit 2; }
status=0

# deps FILE: the headers of ours a dependency file names, one per line.
deps() { tr ' \\' '\n\n' <"$1" | grep -E '^src/.*\.h$' | sort -u; }

forbid() { # forbid DIR REGEX WHY
    for d in "$build/src/$1"/*.d; do
        [ -e "$d" ] || continue
        bad=$(deps "$d" | grep -E "$2")
        if [ -n "$bad" ]; then
            echo "check-includes: ${d#"$build"/} reaches $(echo "$bad" | tr '\n' ' ')($3)"
            status=1
        fi
    done
}

forbid domain '^src/(command|query|projection|readmodel|http)/|^src/app\.h$' \
    "domain/ is pure: domain/ and common/ only"
forbid query '^src/(command|projection)/' "queries never see the write side or the projector"
forbid command '^src/(query|projection|readmodel)/' "commands never read Redis"
forbid projection '^src/(query|http)/' "the projector knows neither queries nor HTTP"

# System headers are not in -MMD's lists: look at the #include lines of ours instead.
for f in $(grep -rlE '#include <(sqlite3)\.h>' src/query src/domain 2>/dev/null); do
    echo "check-includes: $f includes SQLite"; status=1
done
for f in $(grep -rlE '#include <hiredis' src/command src/domain 2>/dev/null); do
    echo "check-includes: $f includes hiredis"; status=1
done
h2o_headers=$(grep -rlE '#include <h2o' src | sort)
for f in $h2o_headers; do
    case "$f" in
    src/http/* | src/query/redis_client.[ch]) ;;
    *) echo "check-includes: $f includes h2o (only http/ and query/redis_client may)"; status=1 ;;
    esac
done
# ...and through a header of ours that includes h2o.
h2o_ours=$(echo "$h2o_headers" | grep '\.h$' | sed 's/[.]/[.]/g' | paste -sd'|')
for d in $(find "$build/src" -name '*.d' ! -path '*/http/*'); do
    case "$d" in */query/redis_client.d | */query/read_model.d) continue ;; esac
    bad=$(deps "$d" | grep -E "^($h2o_ours)$")
    [ -z "$bad" ] && continue
    echo "check-includes: ${d#"$build"/} reaches h2o through $(echo "$bad" | tr '\n' ' ')"
    status=1
done
[ $status -eq 0 ] && echo "check-includes: the dependency rules hold"
exit $status
