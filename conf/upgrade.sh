#!/bin/sh
# Zero-downtime binary upgrade of a running imgproxy-gateway (README "Upgrading without
# downtime"): start the new binary with -u, wait until it listens on the upgrade socket, SIGQUIT
# the old process, and check that the new one took over. Install the new binary first.
#
# Under systemd (run as root) the new process is started inside the unit's cgroup and as the
# unit's user, so the unit (ExitType=cgroup) follows it. Anywhere else it is started as is.
set -eu

BIN=${BIN:-/usr/local/bin/imgproxy-gateway}
CONFIG=${CONFIG:-/etc/imgproxy-gateway/gateway.yaml}
export GATEWAY__SERVER__PID_FILE="${GATEWAY__SERVER__PID_FILE:-/run/imgproxy-gateway/gateway.pid}"
export GATEWAY__SERVER__UPGRADE_SOCK="${GATEWAY__SERVER__UPGRADE_SOCK:-/run/imgproxy-gateway/upgrade.sock}"
PID_FILE=$GATEWAY__SERVER__PID_FILE
SOCK=$GATEWAY__SERVER__UPGRADE_SOCK
TIMEOUT=${TIMEOUT:-30}

fail() { echo "upgrade: $*" >&2; exit 1; }

"$BIN" check-config "$CONFIG" >/dev/null || fail "the new binary rejects $CONFIG"
old=$(cat "$PID_FILE" 2>/dev/null) || fail "no pid in $PID_FILE: is the gateway running?"
kill -0 "$old" 2>/dev/null || fail "process $old (from $PID_FILE) is not running"
rm -f "$SOCK"

cgroup=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' "/proc/$old/cgroup" 2>/dev/null || true)
if [ "$(id -u)" = 0 ] && [ -w "$cgroup/cgroup.procs" ] && command -v setpriv >/dev/null \
  && command -v systemd-cat >/dev/null; then
  user=$(stat -c %u "/proc/$old") group=$(stat -c %g "/proc/$old")
  dir=$(readlink "/proc/$old/cwd")
  # One process all along (each step execs the next): join the unit's cgroup, log to the
  # journal like the unit, drop to the unit's user, run.
  # shellcheck disable=SC2016
  (cd "$dir" && exec sh -c 'echo $$ > "$0/cgroup.procs" && exec systemd-cat --identifier=imgproxy-gateway setpriv --reuid="$1" --regid="$2" --init-groups "$3" run --config "$4" -u' \
    "$cgroup" "$user" "$group" "$BIN" "$CONFIG") &
else
  "$BIN" run --config "$CONFIG" -u &
fi
new=$!

waited=0
until [ -S "$SOCK" ]; do
  kill -0 "$new" 2>/dev/null || fail "the new process exited before taking over"
  [ "$waited" -lt "$((TIMEOUT * 10))" ] || fail "the new process did not open $SOCK"
  sleep 0.1; waited=$((waited + 1))
done
kill -QUIT "$old"

waited=0
while kill -0 "$old" 2>/dev/null || [ "$(cat "$PID_FILE" 2>/dev/null)" != "$new" ]; do
  kill -0 "$new" 2>/dev/null || fail "the new process exited"
  [ "$waited" -lt "$((TIMEOUT * 10))" ] || fail "the switch did not finish within ${TIMEOUT}s"
  sleep 0.1; waited=$((waited + 1))
done
echo "upgrade: process $new serves; $old has exited"
