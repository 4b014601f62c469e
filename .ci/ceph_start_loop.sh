#!/usr/bin/env bash
# Start and stop the CI Ceph cluster N times in a row while every core is kept busy, to prove that
# .ci/start_ceph.sh survives a loaded machine. Each start must pass .ci/check_ceph.py (bucket, put/get/list;
# it reports conditional puts). Prints one line per start and a summary; exit 1 if any start failed.
#
#   .ci/ceph_start_loop.sh [STARTS] [BUSY_LOOPS]     # defaults: 20 starts, one busy loop per core
#   PYTHON=.venv/bin/python nice -n 10 .ci/ceph_start_loop.sh 20 2    # bench/results/ceph_starts.md
#
# The busy loops run at this script's own nice level, so they compete with the Ceph daemons as equals.
set -uo pipefail

STARTS=${1:-20}
BUSY=${2:-$(nproc)}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
WORK=${CEPH_WORKDIR:-/tmp/semrec-ceph}
ENV_FILE=$(mktemp)
LOGS=$(mktemp -d)

busy=()
for _ in $(seq "$BUSY"); do yes >/dev/null & busy+=($!); done
cleanup() { kill "${busy[@]}" 2>/dev/null; "$HERE/stop_ceph.sh" "$WORK" --purge >/dev/null 2>&1; rm -f "$ENV_FILE"; }
trap cleanup EXIT

echo "# $STARTS starts of .ci/start_ceph.sh, $BUSY busy loops on $(nproc) cores, nice $(nice), $(date -u +%FT%TZ)"
failed=0
for i in $(seq "$STARTS"); do
    began=$EPOCHREALTIME
    if "$HERE/start_ceph.sh" "$ENV_FILE" >"$LOGS/start-$i.out" 2>"$LOGS/start-$i.err" \
        && (set -a; source "$ENV_FILE"; "$PYTHON" "$HERE/check_ceph.py") >"$LOGS/check-$i.out" 2>&1
    then
        result=ok
    else
        result=FAILED; failed=$((failed + 1))
    fi
    took=$(awk "BEGIN {print $EPOCHREALTIME - $began}")
    retries=$(grep -c '^# retry' "$LOGS/start-$i.err")
    load=$(cut -d' ' -f1 /proc/loadavg)
    printf 'start %2d: %-6s %5.1f s  retries %s  load %s\n' "$i" "$result" "$took" "$retries" "$load"
    if [[ $result == FAILED ]]; then
        cat "$LOGS/start-$i.err" "$LOGS/check-$i.out" 2>/dev/null | sed 's/^/    | /' | tail -n 40
    fi
    "$HERE/stop_ceph.sh" "$WORK" --purge >/dev/null 2>&1
done
echo "# $((STARTS - failed)) of $STARTS starts ok"
rm -rf "$LOGS"
[[ $failed == 0 ]]
