#!/usr/bin/env bash
# The code a proxied request runs through, the minimal Pingora proxy's against the gateway's,
# counted by callgrind: instructions, not seconds, so the same binaries give the same figures
# (instructions within 1 %, lines within 4 %) whatever else the machine is doing, where
# side_by_side.sh's ratios move by ±10 % from round to round.
#
#   bash benches/code_path.sh                  # 2000 keep-alive requests after 300
#   REQUESTS=500 WARMUP=100 bash benches/code_path.sh
#   MINIMAL=… GATEWAY=… bash benches/code_path.sh   # other builds (the release build: target/dist/…)
#   DUMPS=DIR bash benches/code_path.sh        # keep both dumps, for callgrind_annotate
#
# Each proxy (production profile, in front of side_by_side.sh's two nginx backends, the gateway
# with its configuration: the legacy key, every limit and quota on, request log lines at INFO)
# runs under valgrind; one keep-alive client sends WARMUP requests, then REQUESTS with
# instrumentation on. Printed: instructions per request, and the distinct 64-byte lines and
# 4 KiB pages of code executed once per request or more (the path), by origin: how much code each
# request fetches through the processor's 32 KiB first-level instruction cache; the instructions
# both spend on timers, copies, allocation and SHA-256; and the gateway's phases and the parts of
# its policy, inclusive (callgrind_annotate). Everything listens on 127.0.0.1 and stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

REQUESTS="${REQUESTS:-2000}"
WARMUP="${WARMUP:-300}"
MINIMAL="${MINIMAL:-target/production/examples/minimal_proxy}"
GATEWAY="${GATEWAY:-target/production/imgproxy-gateway}"

need_commands cmake:cmake nginx:nginx-light valgrind:valgrind
if [[ $MINIMAL == target/production/* || $GATEWAY == target/production/* ]]; then
  echo "== building (production profile)" >&2
  # Two invocations, so that the gateway does not get the example's dev-dependency features.
  cargo build --locked --profile production --bin imgproxy-gateway >&2
  cargo build --locked --profile production --example minimal_proxy >&2
fi

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers read the body as their own user
pid=
cleanup() {
  if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null || true; fi
  [[ -f $work/backends.pid ]] && kill "$(cat "$work/backends.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

B1=$(free_port); B2=$(free_port)
start_backends

# profile NAME PORT COMMAND...: COMMAND (listening on PORT) under callgrind, driven; its dump
# is $work/NAME.callgrind.
profile() {
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --instr-atstart=no --dump-instr=yes \
    --callgrind-out-file="$work/$name.out" "$@" >"$work/$name.log" 2>&1 &
  pid=$!
  wait_up "http://127.0.0.1:$port$PATH_Q" 120
  python3 benches/code_path.py drive "$port" "$WARMUP" "$KEY" "$PATH_Q"
  callgrind_control -i on "$pid" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  python3 benches/code_path.py drive "$port" "$REQUESTS" "$KEY" "$PATH_Q"
  callgrind_control -d "$pid" >/dev/null
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
  mv "$work/$name.out.1" "$work/$name.callgrind"
}

echo "== minimal proxy under callgrind" >&2
PORT=$(free_port)
profile minimal "$PORT" "$MINIMAL" "127.0.0.1:$PORT" "127.0.0.1:$B1" "127.0.0.1:$B2"
echo "== gateway under callgrind" >&2
PORT=$(free_port)
gateway_config gateway "$PORT" "$(free_port)" > "$work/gateway.yaml"
profile gateway "$PORT" "$GATEWAY" --config "$work/gateway.yaml"

echo "$REQUESTS requests each ($MINIMAL, $GATEWAY):"
python3 benches/code_path.py report "$REQUESTS" "$work/minimal.callgrind" "$work/gateway.callgrind"
if [[ -n ${DUMPS:-} ]]; then
  mkdir -p "$DUMPS"
  cp "$work/minimal.callgrind" "$work/gateway.callgrind" "$DUMPS/"
  echo "dumps: $DUMPS/minimal.callgrind, $DUMPS/gateway.callgrind"
fi
