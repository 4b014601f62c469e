#!/usr/bin/env bash
# Stop the daemons started by .ci/start_ceph.sh (pid files in the work dir) and,
# with --purge, delete the work dir.   Usage: .ci/stop_ceph.sh [WORKDIR] [--purge]
set -uo pipefail

WORK=${1:-${CEPH_WORKDIR:-/tmp/semrec-ceph}}
[[ $WORK == --purge ]] && WORK=${CEPH_WORKDIR:-/tmp/semrec-ceph}
[[ -d $WORK/run ]] || exit 0

# rgw first, then osd, then mon; escalate to SIGKILL after 10 s
for name in client.rgw.a osd.0 mon.a; do
    pidf=$WORK/run/$name.pid
    [[ -f $pidf ]] || continue
    pid=$(cat "$pidf")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null || true
        echo "stopped $name (pid $pid)"
    fi
    rm -f "$pidf"
done
rm -f "$WORK/endpoint"
[[ " $* " == *" --purge "* ]] && rm -rf "$WORK"
exit 0
