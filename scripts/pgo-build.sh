#!/usr/bin/env bash
# The release build: the gateway with profile-guided optimisation (PGO), from a clean clone.
#
#   bash scripts/pgo-build.sh                  # target/pgo/production/imgproxy-gateway
#   WITH_MINIMAL=1 bash scripts/pgo-build.sh   # also examples/minimal_proxy, trained alike on
#                                              # its own (target/pgo-minimal/production/examples/;
#                                              # what benches/side_by_side.sh compares)
#
# 1. Built instrumented (`-Cprofile-generate`, production profile, target/pgo-generate).
# 2. Trained: in front of two nginx "imgproxy" backends (benches/common.sh), the instrumented
#    gateway serves its hot path with wrk, an admitted GET /api/v1/convert (every limit and
#    quota counted, the request log line written), for 6 s with the legacy key and 6 s with a
#    user's key, then an unknown key's refusal for 2 s; it stops, writing what it counted. The
#    minimal proxy, with WITH_MINIMAL=1, serves the same request for 12 s. A non-2xx answer
#    or a socket error while admitted stops the build.
# 3. Built again with its profile (`-Cprofile-use`, target/pgo): the compiler lays the
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

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers read the backends' body as their own user
pids=()
cleanup() {
  [[ -f $work/backends.pid ]] && kill "$(cat "$work/backends.pid")" 2>/dev/null || true
  stop_pids "${pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

# 1. Instrumented. The gateway and the example are built by separate cargo invocations, here
# and in step 3: built together, the gateway would get the features the example's
# dev-dependencies turn on, which changes every dependent crate's symbols, so that the profile
# of one build would not match the other (seen: a gateway built so ran as if unprofiled).
raw="$PWD/target/pgo-raw"
echo "== pgo: building instrumented (target/pgo-generate)" >&2
instrumented() {
  RUSTFLAGS="-Cprofile-generate=$raw" CARGO_TARGET_DIR=target/pgo-generate \
    cargo build --locked --profile production "$@" >&2
}
instrumented --bin imgproxy-gateway
[[ ${WITH_MINIMAL:-0} == 1 ]] && instrumented --example minimal_proxy
rm -rf "$raw" "$raw".*  # what the build's own instrumented proc macros wrote, earlier runs

# 2. Trained, one binary after the other, each writing its counts under a folder of its own
# ($raw.NAME, by LLVM_PROFILE_FILE), so that each is built with its own profile alone.
B1=$(free_port); B2=$(free_port)
start_backends
# start NAME COMMAND...: run COMMAND in the background (pid in $trainee).
start() {
  local name=$1; shift
  LLVM_PROFILE_FILE="$raw.$name/%p-%m.profraw" "$@" 2>>"$work/train.log" &
  trainee=$!; pids+=("$trainee")
}
# drive SECONDS KEY URL [refused]: wrk, 2 threads, 64 keep-alive connections. Unless the
# answers are meant to be refusals, a socket error or a non-2xx answer stops the build: the
# profile would be of the error path.
drive() {
  local out
  out=$(wrk -t2 -c64 -d"$1s" -H "X-API-Key: $2" "$3")
  if [[ ${4:-} != refused ]] && grep -q -e 'Non-2xx' -e 'Socket errors' <<<"$out"; then
    echo "pgo: training on $3 did not get only 2xx answers:" >&2
    echo "$out" >&2
    exit 1
  fi
}
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
start gateway target/pgo-generate/production/imgproxy-gateway --config "$work/train.yaml"
url="http://127.0.0.1:$port$PATH_Q"
wait_up "$url"
# The gateway's hot path with each kind of key: the legacy key (the old clients'), then a user's
# (bcrypt-verified once, then read from the key cache); then an unknown key's refusals.
user_key=$(curl -fsS -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"id":"trainer","name":"Trainer","email":"trainer@example.com","role":"user"}' \
  "http://127.0.0.1:$admin/api/v1/users" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"]["key"])')
drive 6 "$KEY" "$url"
drive 6 "$user_key" "$url"
drive 2 "$GHOST_KEY" "$url" refused
stop
if [[ ${WITH_MINIMAL:-0} == 1 ]]; then
  port=$(free_port)
  start minimal target/pgo-generate/production/examples/minimal_proxy \
    "127.0.0.1:$port" "127.0.0.1:$B1" "127.0.0.1:$B2"
  wait_up "http://127.0.0.1:$port$PATH_Q"
  drive 12 "$KEY" "http://127.0.0.1:$port$PATH_Q"
  stop
fi

# 3. Optimised, each with its own profile, in a target folder of its own (the gateway's is
# the release build). The profile's name carries a digest of its content, so that a new
# profile changes RUSTFLAGS and cargo rebuilds every crate with it (cargo does not watch the
# file: under one name, the dependencies would keep the layout of the first profile they were
# built with).
# optimise NAME TARGET-DIR CARGO-TARGET...
optimise() {
  local name=$1 dir=$2; shift 2
  if ! compgen -G "$raw.$name/*.profraw" >/dev/null; then
    echo "pgo: $name wrote no profile in $raw.$name" >&2
    exit 1
  fi
  mkdir -p "$dir"
  "$profdata" merge -o "$work/$name.profdata" "$raw.$name"
  local digest; digest=$(sha256sum "$work/$name.profdata" | cut -c1-16)
  local profile="$PWD/$dir/$digest.profdata"
  find "$dir" -maxdepth 1 -name '*.profdata' ! -name "$digest.profdata" -delete
  mv "$work/$name.profdata" "$profile"
  echo "== pgo: building $name with its profile ($profile)" >&2
  RUSTFLAGS="-Cprofile-use=$profile" CARGO_TARGET_DIR=$dir \
    cargo build --locked --profile production "$@" >&2
}
optimise gateway target/pgo --bin imgproxy-gateway
built=target/pgo/production/imgproxy-gateway
if [[ ${WITH_MINIMAL:-0} == 1 ]]; then
  optimise minimal target/pgo-minimal --example minimal_proxy
  built+=" target/pgo-minimal/production/examples/minimal_proxy"
fi
rm -rf "$raw".*
echo "built with profile-guided optimisation: $built"
