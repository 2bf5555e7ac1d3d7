#!/usr/bin/env bash
# The release build: the gateway, profile-guided (PGO) and laid out by BOLT, from a clean clone.
#
#   bash scripts/release-build.sh                  # target/dist/imgproxy-gateway
#   WITH_MINIMAL=1 bash scripts/release-build.sh   # also examples/minimal_proxy, built and
#                                                  # trained alike on its own
#                                                  # (target/dist/minimal_proxy; what
#                                                  # benches/side_by_side.sh compares)
#   BOLT=0 bash scripts/release-build.sh           # stop after PGO (target/dist gets that binary)
#
# 1. Built instrumented (`-Cprofile-generate`, production profile, target/pgo-generate).
# 2. Trained: in front of two nginx "imgproxy" backends (benches/common.sh), the instrumented
#    gateway serves its hot path with wrk, an admitted GET /api/v1/convert (every limit and
#    quota counted, the request log line written), for 6 s with the legacy key and 6 s with a
#    user's key, then an unknown key's refusal for 2 s; it stops, writing what it counted. The
#    minimal proxy, with WITH_MINIMAL=1, serves the same request for 12 s. A non-2xx answer
#    or a socket error while admitted stops the build.
# 3. Built again with its profile (`-Cprofile-use`, target/pgo): the compiler lays each hot
#    function's code out together, and the code it never ran (errors, other routes) away
#    from it; linked with `--emit-relocs`, so that step 4 can move whole functions.
# 4. BOLT (llvm-bolt, a post-link optimiser): the binary of step 3 instrumented, trained again
#    as in step 2, and rewritten by its profile: the functions the request runs through put
#    next to each other in the order they call each other, their cold blocks split off. What
#    a request runs through then spans half the pages of code it did (docs/performance.md,
#    fifteenth pass). The result is checked (an admitted request, a refused one) and copied
#    to target/dist.
# Behaviour is the same as the plain `cargo build --profile production`; only the layout and
# inlining differ (docs/performance.md, eleventh to fifteenth passes).
#
# Needs: Rust with rustup (the llvm-tools component is added if missing), cmake, nginx, wrk,
# curl, python3 and llvm-bolt-22 (installed from Debian's packages when missing and run as
# root; bolt-22 is in bookworm-security). Everything it starts listens on 127.0.0.1 and stops
# before it returns. On 2 cores, from clean with the installs, the profile-guided part took
# 29 minutes and BOLT about 2 more; ~14 minutes in all with the instrumented build cached.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

need_commands cmake:cmake nginx:nginx-light wrk:wrk curl:curl python3:python3
BOLT=${BOLT:-1}
if [[ $BOLT == 1 ]]; then need_commands llvm-bolt-22:bolt-22; fi
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
    echo "release build: training on $3 did not get only 2xx answers:" >&2
    echo "$out" >&2
    exit 1
  fi
}
# stop: SIGINT, and wait (the binary writes its profile as it exits).
stop() {
  kill -INT "$trainee"
  for _ in $(seq 200); do kill -0 "$trainee" 2>/dev/null || return 0; sleep 0.1; done
  echo "release build: $trainee did not stop within 20 s" >&2
  exit 1
}
# train_gateway STAGE BINARY: the gateway's hot path with each kind of key: the legacy key (the
# old clients'), then a user's (bcrypt-verified once, then read from the key cache); then an
# unknown key's refusals. Each stage has its own configuration and database.
train_gateway() {
  local port admin url user_key
  port=$(free_port); admin=$(free_port)
  gateway_config "train-$1" "$port" "$admin" > "$work/train-$1.yaml"
  start gateway "$2" --config "$work/train-$1.yaml"
  url="http://127.0.0.1:$port$PATH_Q"
  wait_up "$url"
  user_key=$(curl -fsS -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
    -d '{"id":"trainer","name":"Trainer","email":"trainer@example.com","role":"user"}' \
    "http://127.0.0.1:$admin/api/v1/users" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"]["key"])')
  drive 6 "$KEY" "$url"
  drive 6 "$user_key" "$url"
  drive 2 "$GHOST_KEY" "$url" refused
  stop
}
# train_minimal STAGE BINARY: the minimal proxy on the same request, 12 s.
train_minimal() {
  local port; port=$(free_port)
  start minimal "$2" "127.0.0.1:$port" "127.0.0.1:$B1" "127.0.0.1:$B2"
  wait_up "http://127.0.0.1:$port$PATH_Q"
  drive 12 "$KEY" "http://127.0.0.1:$port$PATH_Q"
  stop
}
echo "== pgo: training" >&2
train_gateway pgo target/pgo-generate/production/imgproxy-gateway
[[ ${WITH_MINIMAL:-0} == 1 ]] && train_minimal pgo target/pgo-generate/production/examples/minimal_proxy

# 3. Optimised, each with its own profile, in a target folder of its own. The profile's name
# carries a digest of its content, so that a new profile changes RUSTFLAGS and cargo rebuilds
# every crate with it (cargo does not watch the file: under one name, the dependencies would
# keep the layout of the first profile they were built with). Linked with `--emit-relocs` for
# BOLT: the relocations it needs to move functions stay in the binary.
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
  local flags="-Cprofile-use=$profile"
  [[ $BOLT == 1 ]] && flags+=" -Clink-arg=-Wl,--emit-relocs"
  echo "== pgo: building $name with its profile ($profile)" >&2
  RUSTFLAGS="$flags" CARGO_TARGET_DIR=$dir cargo build --locked --profile production "$@" >&2
}
optimise gateway target/pgo --bin imgproxy-gateway
[[ ${WITH_MINIMAL:-0} == 1 ]] && optimise minimal target/pgo-minimal --example minimal_proxy
rm -rf "$raw".*

# 4. BOLT: each binary instrumented (its counts go to $work/NAME.fdata as it exits), trained
# as in step 2, and rewritten by what it counted into target/dist.
# bolt NAME PGO-BINARY OUTPUT
bolt() {
  local name=$1 input=$2 output=$3
  echo "== bolt: $name" >&2
  llvm-bolt-22 "$input" -instrument -o "$work/$name.instrumented" \
    --instrumentation-file="$work/$name.fdata" >"$work/$name.bolt.log" 2>&1 ||
    { cat "$work/$name.bolt.log" >&2; exit 1; }
  "train_$name" bolt "$work/$name.instrumented"
  [[ -s $work/$name.fdata ]] || { echo "bolt: $name wrote no profile" >&2; exit 1; }
  llvm-bolt-22 "$input" -o "$output.new" -data="$work/$name.fdata" \
    -reorder-blocks=ext-tsp -reorder-functions=cdsort -split-functions -split-all-cold \
    -split-eh -icf=safe -use-gnu-stack >>"$work/$name.bolt.log" 2>&1 ||
    { cat "$work/$name.bolt.log" >&2; exit 1; }
  mv "$output.new" "$output"
}
mkdir -p target/dist
if [[ $BOLT == 1 ]]; then
  bolt gateway target/pgo/production/imgproxy-gateway target/dist/imgproxy-gateway
  [[ ${WITH_MINIMAL:-0} == 1 ]] &&
    bolt minimal target/pgo-minimal/production/examples/minimal_proxy target/dist/minimal_proxy
else
  cp target/pgo/production/imgproxy-gateway target/dist/imgproxy-gateway
  [[ ${WITH_MINIMAL:-0} == 1 ]] &&
    cp target/pgo-minimal/production/examples/minimal_proxy target/dist/minimal_proxy
fi
built=target/dist/imgproxy-gateway
[[ ${WITH_MINIMAL:-0} == 1 ]] && built+=" target/dist/minimal_proxy"

# The release binary answers as the plain build does: admitted (2xx), and an unknown key 401.
port=$(free_port); admin=$(free_port)
gateway_config check "$port" "$admin" > "$work/check.yaml"
target/dist/imgproxy-gateway --config "$work/check.yaml" 2>>"$work/check.log" &
pids+=($!)
wait_up "http://127.0.0.1:$port$PATH_Q"
status=$(curl -sS -o /dev/null -w '%{http_code}' -H "X-API-Key: $GHOST_KEY" "http://127.0.0.1:$port$PATH_Q")
[[ $status == 401 ]] || { echo "release build: an unknown key got $status, not 401" >&2; exit 1; }
echo "built (profile-guided$([[ $BOLT == 1 ]] && echo ", BOLT")): $built"
