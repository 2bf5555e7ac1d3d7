#!/bin/sh
# Zero-downtime binary upgrade of a running imgproxy-gateway (README "Upgrading without
# downtime"): start the new binary with -u, wait until it listens on the upgrade socket, SIGQUIT
# the old process, and check that the new one took over. Install the new binary first.
#
# Under systemd (run as root) the new process is started inside the unit's cgroup, mount
# namespace and limits, as the unit's user, with /etc/imgproxy-gateway/environment (the unit's
# EnvironmentFile), logging to the journal; the unit (ExitType=cgroup) follows it. Anywhere else
# it is started as is, with this shell's environment.
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
case "$cgroup" in
  *.service)
    # Under systemd: start the new process the way the unit started the old one (its cgroup,
    # so the unit follows it; its mount namespace, limits, user, environment file and journal).
    [ "$(id -u)" = 0 ] || fail "run as root: the new process must join $cgroup"
    [ -w "$cgroup/cgroup.procs" ] || fail "cannot join $cgroup (cgroup v2 is required)"
    for tool in setpriv nsenter systemd-cat; do
      command -v "$tool" >/dev/null || fail "$tool is required"
    done
    user=$(stat -c %u "/proc/$old") group=$(stat -c %g "/proc/$old")
    dir=$(readlink "/proc/$old/cwd")
    soft=$(awk '/^Max open files/ { print $4 }' "/proc/$old/limits")
    hard=$(awk '/^Max open files/ { print $5 }' "/proc/$old/limits")
    # The unit's EnvironmentFile (KEY=value lines), as arguments of env -i.
    ENV_FILE=${ENV_FILE:-/etc/imgproxy-gateway/environment}
    set --
    if [ -f "$ENV_FILE" ]; then
      while IFS= read -r line || [ -n "$line" ]; do
        case "$line" in '' | '#'* | ';'*) continue ;; esac
        value=${line#*=}
        case "$value" in \"*\") value=${value#\"}; value=${value%\"} ;; esac
        set -- "$@" "${line%%=*}=$value"
      done < "$ENV_FILE"
    fi
    # One process all along (each program execs the next), so $! is the gateway's pid.
    (cd "$dir" && ulimit -Hn "$hard" && ulimit -Sn "$soft" \
      && exec nsenter --target "$old" --mount -- \
        env -i PATH="$PATH" GATEWAY__SERVER__PID_FILE="$PID_FILE" \
        GATEWAY__SERVER__UPGRADE_SOCK="$SOCK" "$@" \
        systemd-cat --identifier=imgproxy-gateway \
        setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
        "$BIN" run --config "$CONFIG" -u) &
    echo "$!" > "$cgroup/cgroup.procs" || { kill "$!"; fail "could not move the new process into $cgroup"; }
    ;;
  *)
    "$BIN" run --config "$CONFIG" -u &
    ;;
esac
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
