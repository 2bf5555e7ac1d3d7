# Shared by benches/side_by_side.sh and benches/code_path.sh (sourced, with $work set to a
# directory of the run): the benchmark's request and key, its two nginx "imgproxy" backends
# answering every path with a 2 KiB body, and the gateway's configuration in front of them.

KEY=a8e77f84e2729dc6728889d4be31b123
PATH_Q="/api/v1/convert?url=http://images.example/a.jpg&width=300"
# A well-formed key no user has (refused with 401).
GHOST_KEY="imgproxy_ghost_$(head -c 43 /dev/zero | tr '\0' 'x')"

# need_commands COMMAND:PACKAGE...: install (Debian) the packages of the commands missing.
need_commands() {
  local need=() pair
  for pair in "$@"; do command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}"); done
  if ((${#need[@]})); then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; } >&2
  fi
}

# stop_pids PID...: SIGTERM, then SIGKILL what has not stopped within two seconds (Pingora's
# graceful stop can outlast a script: seen, a minimal proxy still up minutes later); reaped.
stop_pids() {
  (($#)) || return 0
  kill "$@" 2>/dev/null || true
  for _ in $(seq 20); do
    kill -0 "$@" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$@" 2>/dev/null || true
  wait 2>/dev/null || true  # reaped (bash still reports a process it had to kill -9)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx NAME HTTP-BLOCK: one instance, 2 workers, its pid and error log under $work.
start_nginx() {
  printf 'worker_processes 2;\npid %s/%s.pid;\nerror_log %s/%s-error.log warn;\nevents { worker_connections 8192; }\nhttp {\n  keepalive_requests 100000;\n%s\n}\n' \
    "$work" "$1" "$work" "$1" "$2" > "$work/$1.conf"
  nginx -c "$work/$1.conf" -p "$work"
}
backend() { echo "  server { listen 127.0.0.1:$1; root $work; location / { default_type image/webp; try_files /body =404; } }"; }

# start_backends: the two backends (an nginx instance of their own) on $B1 and $B2.
start_backends() {
  head -c 2048 /dev/zero | tr '\0' 'x' > "$work/body"
  chmod 644 "$work/body"
  start_nginx backends "  access_log off;
$(backend "$B1")
$(backend "$B2")"
}

# gateway_config NAME PORT ADMIN-PORT: a gateway's configuration, its files under $work/NAME.
# No grace period: at the end of the run nothing is left to finish, and the gateway stops at once
# (with the default 5 s it would be killed by the caller's cleanup).
gateway_config() {
  mkdir -p "$work/$1"
  cat <<EOF
server: {host: 127.0.0.1, port: $2, pid_file: $work/$1/gw.pid, upgrade_sock: $work/$1/gw.sock, grace_period: 0s}
admin: {listen: "127.0.0.1:$3"}
database: {driver: sqlite, dsn: "sqlite://$work/$1/gw.db?mode=rwc"}
backends:
  - url: http://127.0.0.1:$B1
  - url: http://127.0.0.1:$B2
health_check: {interval: 5s, timeout: 1s}
rate_limits:
  ip_level: {requests_per_minute: 10000000, burst: 10000000}
  user_level: {requests_per_minute: 10000000, requests_per_hour: 100000000}
  api_level: {/api/v1/convert: {requests_per_minute: 100000000}}
quotas: {monthly_requests: 1000000000, monthly_bandwidth_mb: 100000000, storage_quota_mb: 1024}
imgproxy: {source_hosts: {images.example: [93.184.216.34]}}
storage: {dir: $work/$1/images}
observability: {log_level: INFO}
EOF
}

# wait_up URL [SECONDS]: until URL answers 2xx to the benchmark's key (default 20 s), else exit.
wait_up() {
  for _ in $(seq $((${2:-20} * 5))); do
    curl -fsS -o /dev/null -H "X-API-Key: $KEY" "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "not up: $1" >&2
  tail -n 5 "$work"/*.log >&2
  curl -sS -D - -o /dev/null -H "X-API-Key: $KEY" "$1" >&2 || true
  exit 1
}
