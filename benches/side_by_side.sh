#!/usr/bin/env bash
# The gateway side by side with nginx and a minimal Pingora proxy, on this machine, in one run.
#
#   bash benches/side_by_side.sh            # 5 rounds, 8 s per contender and concurrency
#   ROUNDS=1 SECONDS_PER_RUN=4 bash benches/side_by_side.sh
#   BASELINE=/tmp/gateway-before CONTENDERS="minimal gateway baseline" bash benches/side_by_side.sh
#   PGO=0 bash benches/side_by_side.sh      # both proxies built plain (no profile), not as released
#   BOLT=0 bash benches/side_by_side.sh     # both profile-guided, without BOLT's layout
#   BUILD_ONLY=1 bash benches/side_by_side.sh  # only build them
#   BUILD=0 bash benches/side_by_side.sh    # the binaries an earlier run built, as they are
#
# Two nginx "imgproxy" backends answer every path with a 2 KiB body. In front of them, in turn:
#   nginx      an nginx reverse proxy (2 workers, upstream keepalive 256, buffered access log)
#   minimal    examples/minimal_proxy.rs (Pingora 0.9.1, mimalloc, work_stealing: false, peers
#              built once), built as the gateway is (profile-guided and laid out by BOLT, each
#              trained alone on the same request: target/dist/minimal_proxy)
#   gateway    imgproxy-gateway as released (scripts/release-build.sh: production profile,
#              profile-guided, BOLT), embedded mode, the legacy key, every limit and quota on
#              with high values, request log lines on (INFO)
#   min-alt    the minimal proxy again, with the MINIMAL_* settings in MIN_ALT (default
#              MINIMAL_SHARED_POOL=1: Pingora's one upstream pool instead of one per thread)
#   baseline   with BASELINE=PATH, another gateway binary (an earlier build) configured alike,
#              to weigh a change against the code before it in the same run
# Each is driven with wrk (2 threads) on GET /api/v1/convert?url=… for c64 and c1000, the
# contenders alternating within each round: in the order given in odd rounds, in reverse in even
# ones (so that none always runs right after the same one). Printed per run: req/s, p99, socket
# errors, non-2xx, CPU per request (utime + stime of the contender's processes from /proc, over
# the requests wrk completed), RSS (summed over its processes, at the end of the run) and the
# user part of that CPU (utime alone: time in the contender's own code, not the kernel's); then
# per round the ratios gateway/minimal and gateway/nginx. Each run starts after a `sync`, so
# that the disk writeback of earlier runs' log lines does not land in it. Everything listens on
# 127.0.0.1 and stops at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=benches/common.sh
source benches/common.sh

ROUNDS="${ROUNDS:-5}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-8}"
CONCURRENCIES="${CONCURRENCIES:-64 1000}"
CONTENDERS="${CONTENDERS:-nginx minimal gateway gw-401 gw-429}"
need_commands cmake:cmake nginx:nginx-light wrk:wrk
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Both proxies are built as the gateway's release is (scripts/release-build.sh: production
# profile, profile-guided and BOLT, each trained on the benchmark's request), or with PGO=0 plain
# (`cargo build --profile production`).
if [[ ${PGO:-1} == 1 ]]; then
  BIN=target/dist/imgproxy-gateway
  MINIMAL=target/dist/minimal_proxy
  [[ ${BUILD:-1} == 0 ]] || WITH_MINIMAL=1 bash scripts/release-build.sh >&2
else
  BIN=target/production/imgproxy-gateway
  MINIMAL=target/production/examples/minimal_proxy
  if [[ ${BUILD:-1} != 0 ]]; then
    echo "== building (production profile)" >&2
    # Two invocations: built together, the gateway would get the example's dev-dependency
    # features (not the binary a user builds).
    cargo build --locked --profile production --bin imgproxy-gateway >&2
    cargo build --locked --profile production --example minimal_proxy >&2
  fi
fi
for binary in "$BIN" "$MINIMAL"; do
  [[ -x $binary ]] || { echo "no $binary (BUILD=0 runs what an earlier run built)" >&2; exit 1; }
done
if [[ ${BUILD_ONLY:-0} == 1 ]]; then echo "built: $BIN $MINIMAL"; exit 0; fi

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers read the body as their own user
pids=()
cleanup() {
  for pidfile in "$work/nginx.pid" "$work/backends.pid"; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  stop_pids "${pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

B1=$(free_port); B2=$(free_port); NGINX=$(free_port); MIN=$(free_port); GW=$(free_port); ADMIN=$(free_port)
BASE=$(free_port); BASE_ADMIN=$(free_port); ALT=$(free_port)

# The backends and the nginx proxy are two nginx instances, so that the proxy's CPU is its own.
start_backends
start_nginx nginx "  access_log $work/access.log combined buffer=64k flush=1s;
  upstream imgproxy { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX;
    location / { proxy_pass http://imgproxy; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
  }"

"$MINIMAL" "127.0.0.1:$MIN" "127.0.0.1:$B1" "127.0.0.1:$B2" 2>"$work/minimal.log" &
pids+=($!); MIN_PID=$!
ALT_PID=
if [[ " $CONTENDERS " == *" min-alt "* ]]; then
  # shellcheck disable=SC2086 # MIN_ALT is a list of NAME=VALUE words
  env ${MIN_ALT:-MINIMAL_SHARED_POOL=1} "$MINIMAL" "127.0.0.1:$ALT" "127.0.0.1:$B1" "127.0.0.1:$B2" 2>"$work/min-alt.log" &
  pids+=($!); ALT_PID=$!
fi

gateway_config gateway "$GW" "$ADMIN" > "$work/gateway.yaml"
"$BIN" --config "$work/gateway.yaml" 2>"$work/gateway.log" &
pids+=($!); GW_PID=$!
BASE_PID=
if [[ -n ${BASELINE:-} ]]; then
  gateway_config baseline "$BASE" "$BASE_ADMIN" > "$work/baseline.yaml"
  "$BASELINE" --config "$work/baseline.yaml" 2>"$work/baseline.log" &
  pids+=($!); BASE_PID=$!
fi

wait_up "http://127.0.0.1:$NGINX$PATH_Q"
wait_up "http://127.0.0.1:$MIN$PATH_Q"
if [[ -n $ALT_PID ]]; then wait_up "http://127.0.0.1:$ALT$PATH_Q"; fi
wait_up "http://127.0.0.1:$GW$PATH_Q"
if [[ -n $BASE_PID ]]; then wait_up "http://127.0.0.1:$BASE$PATH_Q"; fi

# Refusals, on the same gateway: an unknown key (401), and a user allowed one request a minute
# (429 after its first).
LIMITED_KEY=$(curl -fsS -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \
  -d '{"id":"limited","name":"Limited","email":"limited@example.com","role":"user","rate_limits":{"requests_per_minute":1}}' \
  "http://127.0.0.1:$ADMIN/api/v1/users" | python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"]["key"])')
curl -fsS -o /dev/null -H "X-API-Key: $LIMITED_KEY" "http://127.0.0.1:$GW$PATH_Q"

nginx_pids() { local master; master=$(cat "$work/nginx.pid"); echo "$master $(pgrep -P "$master" | tr '\n' ' ')"; }
pids_of() {
  case $1 in
    nginx) nginx_pids ;;
    minimal) echo "$MIN_PID" ;;
    min-alt) echo "$ALT_PID" ;;
    gateway | gw-401 | gw-429) echo "$GW_PID" ;;
    baseline) echo "$BASE_PID" ;;
  esac
}
port_of() { case $1 in nginx) echo "$NGINX" ;; minimal) echo "$MIN" ;; min-alt) echo "$ALT" ;; baseline) echo "$BASE" ;; *) echo "$GW" ;; esac; }
key_of() { case $1 in gw-401) echo "$GHOST_KEY" ;; gw-429) echo "$LIMITED_KEY" ;; *) echo "$KEY" ;; esac; }
# CPU ticks, "utime stime", and RSS (kB), summed over the given pids.
ticks() { local u=0 s=0; for p in $*; do read -r -a f < "/proc/$p/stat"; u=$((u + f[13])); s=$((s + f[14])); done; echo "$u $s"; }
rss() { local r=0; for p in $*; do r=$((r + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$r"; }
HZ=$(getconf CLK_TCK)

# One wrk run: "req/s p99_ms errors non2xx cpu_us_per_req rss_mb user_us_per_req" (the CPU
# per request, and the part of it spent in the contender's own code rather than the kernel's).
run() {
  local who=$1 conns=$2 out
  local pids_now; pids_now=$(pids_of "$who")
  # The log lines earlier runs wrote (the gateway's, gigabytes over a run, and nginx's) go to
  # disk now, not during this run: the kernel's writeback of them would take CPU from whichever
  # contender ran 30 s later (dirty pages expire after 30 s).
  sync
  local before_user before_sys; read -r before_user before_sys <<<"$(ticks $pids_now)"
  out=$(wrk -t2 -c"$conns" -d"${SECONDS_PER_RUN}s" --latency -H "X-API-Key: $(key_of "$who")" \
    "http://127.0.0.1:$(port_of "$who")$PATH_Q")
  local after_user after_sys; read -r after_user after_sys <<<"$(ticks $pids_now)"
  local rps p99 total errors non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' <<<"$out")
  total=$(awk '/requests in/ {print $1}' <<<"$out")
  errors=$(awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10; found=1} END {if (!found) print 0}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5; found=1} END {if (!found) print 0}' <<<"$out")
  local user=$((after_user - before_user)) sys=$((after_sys - before_sys))
  local cpu_us; cpu_us=$(awk -v t=$((user + sys)) -v hz="$HZ" -v n="$total" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  local user_us; user_us=$(awk -v t="$user" -v hz="$HZ" -v n="$total" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  local rss_mb; rss_mb=$(awk -v k="$(rss $pids_now)" 'BEGIN {printf "%.0f", k / 1024}')
  echo "$rps $p99 $errors $non2xx $cpu_us $rss_mb $user_us"
}

printf '%-6s %-8s %6s %10s %9s %7s %7s %10s %7s %8s\n' round who conns "req/s" "p99 ms" errors non2xx "cpu µs/req" "RSS MB" "user µs"
for round in $(seq "$ROUNDS"); do
  for conns in $CONCURRENCIES; do
    order=$CONTENDERS
    if ((round % 2 == 0)); then order=$(tr ' ' '\n' <<<"$CONTENDERS" | tac | tr '\n' ' '); fi
    for who in $order; do
      read -r r p e n c m us <<<"$(run "$who" "$conns")"
      printf '%-6s %-8s %6s %10s %9s %7s %7s %10s %7s %8s\n' "$round" "$who" "$conns" "$r" "$p" "$e" "$n" "$c" "$m" "$us" | tee -a "$work/results"
    done
    # This round's ratios, from the lines just printed.
    awk -v r="$round" -v c="$conns" '$1 == r && $3 == c { rps[$2] = $4; p99[$2] = $5 }
      function ratio(a, b) { return (a in rps && b in rps && rps[b] > 0) ? sprintf("%.2f", rps[a] / rps[b]) : "-" }
      END {
        p = ("gateway" in p99 && "minimal" in p99 && p99["minimal"] > 0) ? sprintf("%.2f", p99["gateway"] / p99["minimal"]) : "-"
        printf "%-6s ratios c%s: gateway/minimal %s, gateway/nginx %s, minimal/nginx %s; p99 gateway/minimal %s; 401/proxied %s, 429/proxied %s%s\n",
          r, c, ratio("gateway", "minimal"), ratio("gateway", "nginx"), ratio("minimal", "nginx"), p, ratio("gw-401", "gateway"), ratio("gw-429", "gateway"),
          ("baseline" in rps) ? "; gateway/baseline " ratio("gateway", "baseline") : ""
      }' "$work/results"
  done
done

# Medians over the rounds, and the targets of issue 14 (checked here, never by a test).
echo
echo "medians over $ROUNDS round(s):"
sort -k2,2 -k3,3n -k4,4n "$work/results" | awk '
  { key = $2 " " $3; n[key]++; v[key, n[key]] = $4; q[key, n[key]] = $5; u[key, n[key]] = $8; s[key, n[key]] = $10
    e[key] += $6; x[key] += $7; m[key] = ($9 > m[key] ? $9 : m[key]) }
  function median(arr, k, c,   i, j, t, a) { for (i = 1; i <= c; i++) a[i] = arr[k, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (c % 2) ? a[(c + 1) / 2] : (a[c / 2] + a[c / 2 + 1]) / 2 }
  END { for (key in n) printf "%s %.0f %.2f %d %d %d %.1f %.1f\n", key, median(v, key, n[key]), median(q, key, n[key]), e[key], x[key], m[key], median(u, key, n[key]), median(s, key, n[key]) }' |
  sort -k2,2n -k1,1 > "$work/medians"
awk '{ printf "  %-8s c%-5s %10.0f req/s  p99 %7.2f ms  cpu %6.1f µs/req (user %5.1f)  errors %d  non2xx %d  max RSS %d MB\n", $1, $2, $3, $4, $8, $9, $5, $6, $7 }' "$work/medians"
echo "targets:"
awk '{ rps[$1, $2] = $3; p99[$1, $2] = $4; err[$1, $2] = $5; non[$1, $2] = $6; rss[$1, $2] = $7; seen[$2] = 1; who[$1] = 1 }
  function check(ok, text) { printf "  %-4s %s\n", ok ? "met" : "MISS", text }
  END {
    if (!("gateway" in who && "minimal" in who)) { print "  (needs the gateway and minimal contenders)"; exit }
    for (c in seen) {
      g = rps["gateway", c]; m = rps["minimal", c]
      check(g >= 0.9 * m, sprintf("c%s gateway/minimal req/s %.3f >= 0.90", c, g / m))
      check(p99["gateway", c] <= 1.2 * p99["minimal", c], sprintf("c%s p99 gateway/minimal %.2f <= 1.20", c, p99["gateway", c] / p99["minimal", c]))
      if (("gw-401", c) in rps) check(rps["gw-401", c] >= 2 * g, sprintf("c%s 401/proxied %.2f >= 2", c, rps["gw-401", c] / g))
      if (("gw-429", c) in rps) check(rps["gw-429", c] >= 2 * g, sprintf("c%s 429/proxied %.2f >= 2", c, rps["gw-429", c] / g))
      if (c + 0 >= 1000) {
        check(err["gateway", c] == 0 && non["gateway", c] == 0, sprintf("c%s gateway socket errors %d, non-2xx %d: none", c, err["gateway", c], non["gateway", c]))
        check(rss["gateway", c] <= 100, sprintf("c%s gateway RSS %d MB <= 100", c, rss["gateway", c]))
      }
    }
  }' "$work/medians"
