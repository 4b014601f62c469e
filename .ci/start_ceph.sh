#!/usr/bin/env bash
# Start a throw-away single-node Ceph cluster (1 mon, 1 memstore OSD, radosgw/beast)
# for the S3 integration tests. No systemd, no cephx; everything lives in $CEPH_WORKDIR.
#
#   .ci/start_ceph.sh [ENV_FILE]      # ENV_FILE defaults to .ci/ceph.env (relative to cwd)
#   source .ci/ceph.env               # -> SEMREC_CEPH_ENDPOINT / _ACCESS_KEY / _SECRET_KEY
#   .ci/stop_ceph.sh                  # kill the daemons again
#
# Data is in RAM (memstore), so a restart always yields an empty cluster.
#
# Ceph 16.2 (Debian 12) conditional puts, measured by check_ceph.py: If-None-Match: * is honoured;
# If-Match only matches the ETag WITHOUT its quotes (the quoted form S3 returns gives 412), and under
# heavy contention the gateway may answer 500 instead of 412: treat 500 as retryable.
#
# On a loaded machine starts used to fail: a client or the OSD sent a command to the mon before it had the
# monmap, so the command carried fsid 0 and the mon refused it ('wrong fsid'; the OSD then exits). Every
# client and the OSD now read the monmap file (which has the fsid) instead of building one from `mon host`;
# this script, not the OSD, puts the OSD in the CRUSH map; the fsid mkfs wrote is checked; mon commands and
# OSD starts (mkfs + start, the daemon watched while we wait) are retried; and the script is done only
# once an S3 request signed with the test user's key succeeds.
# Proof: .ci/ceph_start_loop.sh (20 starts in a row with every core busy).
set -Eeuo pipefail

ENV_FILE=${1:-.ci/ceph.env}
WORK=${CEPH_WORKDIR:-/tmp/semrec-ceph}
ACCESS_KEY=${SEMREC_CEPH_ACCESS_KEY:-semrec-test}
SECRET_KEY=${SEMREC_CEPH_SECRET_KEY:-semrec-secret}
OSD_BYTES=${CEPH_MEMSTORE_BYTES:-1073741824}   # RAM the memstore OSD may use (1 GiB)
CONF=$WORK/ceph.conf
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
    echo "start_ceph.sh: FAILED: $*" >&2
    for f in "$WORK"/log/*; do
        [[ -f $f ]] || continue
        echo "----- tail $f -----" >&2
        tail -n 30 "$f" >&2
    done
    "$HERE/stop_ceph.sh" "$WORK" >&2 || true   # don't leave half a cluster running
    exit 1
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

write_env() {
    printf 'export SEMREC_CEPH_ENDPOINT=%s\nexport SEMREC_CEPH_ACCESS_KEY=%s\nexport SEMREC_CEPH_SECRET_KEY=%s\n' \
        "$1" "$ACCESS_KEY" "$SECRET_KEY" | tee "$ENV_FILE"
}

s3_up() { curl -s -o /dev/null --max-time 2 "$1"; }   # any HTTP answer counts

s3_ready() {   # ListBuckets signed (AWS signature v2) with the test user's key: the user exists and is served
    local date signature
    date=$(date -u '+%a, %d %b %Y %H:%M:%S GMT')
    signature=$(printf 'GET\n\n\n%s\n/' "$date" | openssl dgst -sha1 -hmac "$SECRET_KEY" -binary | base64)
    curl -sf -o /dev/null --max-time 5 -H "Date: $date" -H "Authorization: AWS $ACCESS_KEY:$signature" "$1/"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

osd_up() { "${CEPH[@]}" osd dump | grep -q '^osd.0 up'; }

osd_alive() {   # false once ceph-osd has written its pid file and exited
    local pidf=$WORK/run/osd.0.pid
    [[ ! -f $pidf ]] || kill -0 "$(cat "$pidf")" 2>/dev/null
}

kill_osd() {
    local pidf=$WORK/run/osd.0.pid
    [[ -f $pidf ]] && kill -9 "$(cat "$pidf")" 2>/dev/null
    rm -f "$pidf"
}

# start_osd: mkfs + start osd.0; prints why and fails when mkfs wrote the wrong fsid, or the daemon died
# or was not up within 60 s
start_osd() {
    kill_osd
    rm -rf "$WORK/osd/0" && mkdir -p "$WORK/osd/0"
    ceph-osd --conf "$CONF" -i 0 --mkfs --osd-uuid "$OSD_UUID" &>>"$WORK/log/osd-mkfs.out" \
        || { echo "mkfs failed"; return 1; }
    local wrote; wrote=$(cat "$WORK/osd/0/ceph_fsid" 2>/dev/null || true)
    [[ $wrote == "$FSID" ]] || { echo "mkfs wrote cluster fsid '$wrote', not $FSID"; return 1; }
    ceph-osd --conf "$CONF" -i 0 &>>"$WORK/log/osd.0.out" || { echo "ceph-osd failed to start"; return 1; }
    for _ in $(seq 60); do
        osd_up && return 0
        osd_alive || { echo "ceph-osd exited before osd.0 was up"; return 1; }
        sleep 1
    done
    echo "osd.0 not up after 60 s"
    return 1
}

# retry TRIES CMD... : run CMD until it succeeds, at most TRIES times, a second apart
retry() {
    local tries=$1; shift
    for i in $(seq "$tries"); do
        "$@" && return 0
        echo "# retry $i: $*" >&2
        sleep 1
    done
    return 1
}

# wait_for DESCRIPTION SECONDS CMD... : retry CMD once a second
wait_for() {
    local what=$1 secs=$2; shift 2
    for _ in $(seq "$secs"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "timed out after ${secs}s waiting for $what"
}

# --- reuse a cluster that is still running from an earlier call ---------------------
if [[ -f $WORK/endpoint ]] && s3_up "$(cat "$WORK/endpoint")"; then
    echo "# reusing running Ceph in $WORK" >&2
    mkdir -p "$(dirname "$ENV_FILE")"
    write_env "$(cat "$WORK/endpoint")"
    exit 0
fi

# --- install (needs root or sudo) ---------------------------------------------------
if ! command -v ceph-mon >/dev/null || ! command -v ceph-osd >/dev/null || ! command -v radosgw >/dev/null \
    || ! command -v openssl >/dev/null; then
    SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo
    echo "# installing ceph packages" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends openssl \
        ceph-mon ceph-osd radosgw ceph-common curl uuid-runtime >/dev/null
fi

# --- fresh work dir -----------------------------------------------------------------
"$HERE/stop_ceph.sh" "$WORK" >/dev/null 2>&1 || true
rm -rf "$WORK"
mkdir -p "$WORK"/{run,log,mon/a,osd/0,rgw}
MON_PORT=$(free_port)
RGW_PORT=$(free_port)
FSID=$(uuidgen)

cat >"$CONF" <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MON_PORT
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false   # avoids a HEALTH_WARN
run dir = $WORK/run
admin socket = $WORK/run/\$name.asok
log file = $WORK/log/\$name.log
pid file = $WORK/run/\$name.pid
# single OSD: size-1 pools, few PGs, silence redundancy warnings
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
# don't warn / shut the mon down when the CI disk is fairly full
mon data avail warn = 1
mon data avail crit = 0

[client]
monmap = $WORK/monmap   # has the fsid: see the top of this script

[mon]
mon data = $WORK/mon/\$id
mon initial members = a

[osd]
osd data = $WORK/osd/\$id
osd objectstore = memstore
memstore device bytes = $OSD_BYTES
monmap = $WORK/monmap
# placed in the CRUSH map by this script: at boot the OSD's own request can race its first monmap
osd crush update on start = false
osd class update on start = false

[client.rgw.a]
rgw data = $WORK/rgw
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
EOF

CEPH=(timeout 30 ceph --conf "$CONF" --connect-timeout 20)

# --- monitor ------------------------------------------------------------------------
monmaptool --create --fsid "$FSID" --addv a "[v1:127.0.0.1:$MON_PORT]" "$WORK/monmap" >/dev/null
# daemons fork into the background and write run/<name>.pid; their pre-fork chatter
# goes to log/<name>.out
ceph-mon --conf "$CONF" -i a --mkfs --monmap "$WORK/monmap" &>"$WORK/log/mon-mkfs.out"
ceph-mon --conf "$CONF" -i a &>"$WORK/log/mon.a.out"
wait_for "ceph-mon" 30 "${CEPH[@]}" mon stat

# --- OSD (memstore) -----------------------------------------------------------------
OSD_UUID=$(uuidgen)
OSD_ID=$(retry 5 "${CEPH[@]}" osd new "$OSD_UUID")   # the same uuid gets the same id: safe to repeat
[[ $OSD_ID == 0 ]] || die "unexpected OSD id '$OSD_ID'"
retry 5 "${CEPH[@]}" osd crush add osd.0 1.0 root=default >/dev/null
for attempt in 1 2 3 4 5; do
    why=$(start_osd) && break
    (( attempt < 5 )) || die "osd.0: $why (5 attempts)"
    echo "# retry $attempt: osd.0: $why" >&2
done

# --- radosgw + S3 user --------------------------------------------------------------
radosgw --conf "$CONF" -n client.rgw.a &>"$WORK/log/rgw.out"   # creates its pools on first start
ENDPOINT=http://127.0.0.1:$RGW_PORT
wait_for "radosgw on $ENDPOINT" 90 s3_up "$ENDPOINT"
retry 5 radosgw-admin --conf "$CONF" user create --uid semrec-test --display-name "semrec test" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" >/dev/null
wait_for "a signed S3 request to $ENDPOINT" 60 s3_ready "$ENDPOINT"
echo "$ENDPOINT" >"$WORK/endpoint"

mkdir -p "$(dirname "$ENV_FILE")"
write_env "$ENDPOINT"
