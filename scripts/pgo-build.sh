#!/usr/bin/env bash
# The release build: the gateway with profile-guided optimisation (PGO), from a clean clone.
#
#   bash scripts/pgo-build.sh                  # target/pgo/production/imgproxy-gateway
#   WITH_MINIMAL=1 bash scripts/pgo-build.sh   # also examples/minimal_proxy, trained alike
#                                              # (what benches/side_by_side.sh compares)
#
# 1. Built instrumented (`-Cprofile-generate`, production profile, target/pgo-generate).
# 2. Trained: in front of two nginx "imgproxy" backends (benches/common.sh), the instrumented
#    gateway serves its hot path with wrk, an admitted GET /api/v1/convert (every limit and
#    quota counted, the request log line written), for 6 s with the legacy key and 6 s with a
#    user's key, then an unknown key's refusal for 2 s; it stops, writing what it counted. The
#    minimal proxy, with WITH_MINIMAL=1, serves the same request for 12 s.
# 3. Built again with the merged profile (`-Cprofile-use`, target/pgo): the compiler lays the
#    trained path's code out together and the code it never ran (errors, other routes) away
#    from it. Behaviour is the same as the plain `cargo build --profile production`; only the
#    layout and inlining differ (docs/performance.md, eleventh to fourteenth passes).
#
# Needs: Rust with rustup (the llvm-tools component is added if missing), cmake, nginx, wrk,
# curl and python3 (installed from Debian's packages when missing and run as root). Everything
# it starts listens on 127.0.0.1 and stops before it returns. ~15 minutes on 2 cores from clean.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

need_commands cmake:cmake nginx:nginx-light wrk:wrk curl:curl python3:python3
host=$(rustc -vV | sed -n 's/^host: //p')
profdata="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
[[ -x $profdata ]] || rustup component add llvm-tools >&2
[[ -x $profdata ]] || { echo "pgo: no llvm-profdata at $profdata" >&2; exit 1; }

targets=(--bin imgproxy-gateway)
[[ ${WITH_MINIMAL:-0} == 1 ]] && targets+=(--example minimal_proxy)

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers read the backends' body as their own user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -f $work/backends.pid ]] && kill "$(cat "$work/backends.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Instrumented. The raw profiles go to a fixed place, emptied before training: the build's
# own proc macros and build scripts are instrumented too, and write there as they run.
raw="$PWD/target/pgo-raw"
echo "== pgo: building instrumented (target/pgo-generate)" >&2
RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR=target/pgo-generate \
  cargo build --locked --profile production "${targets[@]}" >&2
rm -rf "$raw"

# 2. Trained.
B1=$(free_port); B2=$(free_port)
start_backends
# start COMMAND...: run it in the background (its pid in $trainee).
start() { "$@" 2>>"$work/train.log" & trainee=$!; pids+=("$trainee"); }
# drive SECONDS KEY URL: wrk, 2 threads, 64 keep-alive connections.
drive() { wrk -t2 -c64 -d"$1s" -H "X-API-Key: $2" "$3" >/dev/null; }
# stop: SIGINT, and wait (the binary writes its profile as it exits).
stop() {
  kill -INT "$trainee"
  for _ in $(seq 200); do kill -0 "$trainee" 2>/dev/null || return 0; sleep 0.1; done
  echo "pgo: $trainee did not stop within 20 s" >&2
  exit 1
}
echo "== pgo: training" >&2
port=$(free_port); admin=$(free_port)
gateway_config train "$port" "$admin" > "$work/train.yaml"
start target/pgo-generate/production/imgproxy-gateway --config "$work/train.yaml"
url="http://127.0.0.1:$port$PATH_Q"
wait_up "$url"
# The gateway's hot path with each kind of key: the legacy key (the old clients'), then a user's
# (bcrypt-verified once, then read from the key cache); then an unknown key's refusals.
user_key=$(curl -fsS -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"id":"trainer","name":"Trainer","email":"trainer@example.com","role":"user"}' \
  "http://127.0.0.1:$admin/api/v1/users" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"]["key"])')
curl -fsS -o /dev/null -H "X-API-Key: $user_key" "$url"  # admitted, or the training stops here
drive 6 "$KEY" "$url"
drive 6 "$user_key" "$url"
drive 2 "$GHOST_KEY" "$url"
stop
expected=1
if [[ ${WITH_MINIMAL:-0} == 1 ]]; then
  port=$(free_port)
  start target/pgo-generate/production/examples/minimal_proxy \
    "127.0.0.1:$port" "127.0.0.1:$B1" "127.0.0.1:$B2"
  wait_up "http://127.0.0.1:$port$PATH_Q"
  drive 12 "$KEY" "http://127.0.0.1:$port$PATH_Q"
  stop
  expected=2
fi
if (($(find "$raw" -name '*.profraw' | wc -l) < expected)); then
  echo "pgo: expected a profile from each of the $expected trained binaries in $raw" >&2
  ls -l "$raw" >&2 || true
  exit 1
fi

# 3. Optimised. The profile's name carries a digest of its content, so that a new profile
# changes RUSTFLAGS and cargo rebuilds every crate with it (cargo does not watch the file: under
# one name, the dependencies would keep the layout of the first profile they were built with).
mkdir -p target/pgo
"$profdata" merge -o "$work/merged.profdata" "$raw"
digest=$(sha256sum "$work/merged.profdata" | cut -c1-16)
profile="$PWD/target/pgo/$digest.profdata"
find target/pgo -maxdepth 1 -name '*.profdata' ! -name "$digest.profdata" -delete
mv "$work/merged.profdata" "$profile"
echo "== pgo: building with the profile ($profile)" >&2
RUSTFLAGS="-Cprofile-use=$profile" CARGO_TARGET_DIR=target/pgo \
  cargo build --locked --profile production "${targets[@]}" >&2
built=target/pgo/production/imgproxy-gateway
[[ ${WITH_MINIMAL:-0} == 1 ]] && built+=" target/pgo/production/examples/minimal_proxy"
echo "built with profile-guided optimisation: $built"
