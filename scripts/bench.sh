#!/usr/bin/env bash
# End-to-end comparison on loopback: direct PostgreSQL, haproxy (mode tcp), pgbouncer (session
# mode, one process) and gatehouse, side by side in one run, paths interleaved, medians and ratios.
# Documented in bench/README.md. Starts everything itself, cleans up everything it started.
#
#   scripts/bench.sh [--smoke] [--duration S] [--repeat R] [--clients "1 8 64"] [--bulk-mb MB]
#                    [--idle N] [--scale N] [--results FILE] [--note TEXT] [--no-build] [--keep]
#                    [--parts "pgbench rows connect bulk select idle"] [--modes "simple prepared"]
#                    [--serve]
#
# --smoke: a few seconds of each path (1 s runs, -c 1 and 8, 20 MB bulk reads, 100 idle
# connections), writes no RESULTS.md, exits 0 when the whole chain works. A check, never a timing.
# --serve: start every path, warm it up, print how to reach each (ports, pids, password) and wait
# until interrupted (Ctrl-C stops and removes everything): for profiling one path by hand.
# Environment: GATEHOUSE_BUILD_DIR (build tree, default "build"); BENCH_GH_SHARDS (gatehouse
# shards, default one per CPU); BENCH_GH_PIN (engine.pin, default false: pgbench and PostgreSQL share the cores); BENCH_GH_WRAPPER (a command gatehouse runs under, for profiling:
# "valgrind --tool=callgrind --callgrind-out-file=/tmp/gh.callgrind"; it must exec gatehouse in
# the same process, so that its pid is gatehouse's); BENCH_GH_RECORDING_EXTRA (YAML lines added
# under recording: of the recording instances, e.g. "  statement_result_bytes_max: 0").
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
command_line=$(printf '%q ' scripts/bench.sh "$@")
command_line=${command_line% }

# ---- options ------------------------------------------------------------------------------------
smoke=0
serve=0
duration=5
repeat=3
clients_list="1 8 64"
modes="simple prepared"
connect_clients=8
bulk_mb=1024
idle_count=10000
scale=10
results_file=""
note=""
build=1
keep=0
build_dir=${GATEHOUSE_BUILD_DIR:-build}
parts="pgbench rows connect bulk select idle"

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --smoke) smoke=1 ;;
    --serve) serve=1 ;;
    --duration) duration=$2; shift ;;
    --repeat) repeat=$2; shift ;;
    --clients) clients_list=$2; shift ;;
    --bulk-mb) bulk_mb=$2; shift ;;
    --idle) idle_count=$2; shift ;;
    --scale) scale=$2; shift ;;
    --results) results_file=$2; shift ;;
    --note) note=$2; shift ;;
    --no-build) build=0 ;;
    --keep) keep=1 ;;
    --parts) parts=$2; shift ;;
    --modes) modes=$2; shift ;;
    -h|--help) usage 0 ;;
    *) echo "bench: unknown option $1" >&2; usage ;;
  esac
  shift
done
if [ "$smoke" -eq 1 ]; then
  duration=1; repeat=1; clients_list="1 8"; bulk_mb=20; idle_count=100; scale=1
else
  [ -n "$results_file" ] || results_file=bench/RESULTS.md
fi
for m in $modes; do
  [[ $m == simple || $m == prepared || $m == extended ]] || { echo "bench: unknown mode $m" >&2; exit 2; }
done
for v in "$duration" "$repeat" "$bulk_mb" "$idle_count" "$scale" $clients_list; do
  [[ $v =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$v' is not a positive integer" >&2; exit 2; }
done

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# ---- install and build --------------------------------------------------------------------------
./scripts/setup.sh pgbouncer haproxy
if [ "$build" -eq 1 ]; then
  log "building $build_dir"
  build_log=$(mktemp /tmp/gatehouse-bench-build-XXXXXX.log)
  ./scripts/build.sh "$build_dir" >"$build_log" 2>&1 || { tail -n 40 "$build_log" >&2; die "build failed"; }
  rm -f "$build_log"
fi
gatehouse=$repo/$build_dir/app/gatehouse
idle_tool=$repo/$build_dir/bench/gh_idle_clients
[ -x "$gatehouse" ] || die "$gatehouse not built"
[ -x "$idle_tool" ] || die "$idle_tool not built (GH_BENCH=ON is needed)"
source "$repo/scripts/lib.sh"
pgbench=$pg_bin/pgbench
psql_bin=$pg_bin/psql
clk_tck=$(getconf CLK_TCK)

# ---- users, limits, work directory --------------------------------------------------------------
is_root=0
[ "$(id -u)" -eq 0 ] && is_root=1
# PostgreSQL and pgbouncer refuse to run as root: as root they run as the postgres user.

# 10 000 idle clients need 10 000 fds in the client tool and twice that in the gateway. Raising
# the hard limit needs CAP_SYS_RESOURCE (a container's root may not have it).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
idle_requested=$idle_count
if [ "$fd_limit" != unlimited ] && [ $((idle_count * 2 + 512)) -gt "$fd_limit" ]; then
  idle_count=$(((fd_limit - 512) / 2))
  log "RLIMIT_NOFILE is $fd_limit: idle run capped at $idle_count connections (asked $idle_requested)"
fi

work=$(mktemp -d /tmp/gatehouse-bench-XXXXXX)
chmod 755 "$work"
mkdir -p "$work/svc" "$work/logs" "$work/gw"
[ "$is_root" -eq 1 ] && chown postgres "$work/svc"

pids_to_stop=()  # haproxy, gatehouse, the idle client: started by us, stopped by pid
pgb_pidfiles=()
wrappers=()  # background jobs whose real process is stopped by pid file (pgbouncer)
pg_started=0
cleanup() {
  local rc=$?
  set +e
  for pid in "${pids_to_stop[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for f in "${pgb_pidfiles[@]}"; do [ -s "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
  for pid in "${pids_to_stop[@]}" "${wrappers[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ "$pg_started" -eq 1 ] && as_postgres "$pg_bin/pg_ctl" -D "$work/svc/pg" -m immediate stop >/dev/null 2>&1
  if [ "$keep" -eq 1 ] || [ "$rc" -ne 0 ]; then
    log "work directory kept: $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port_or_die() { wait_port "$1" || die "nothing listens on port $1 ($2)"; }
ports=()
while [ ${#ports[@]} -lt 7 ]; do
  p=$(free_port)
  [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
pg_port=${ports[0]}; hap_port=${ports[1]}; pgb_port=${ports[2]}; gw_port=${ports[3]}; pgbi_port=${ports[4]}

# ---- PostgreSQL ---------------------------------------------------------------------------------
pg_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$pg_password" > "$work/svc/pg.pw"
chmod 644 "$work/svc/pg.pw"
log "PostgreSQL on 127.0.0.1:$pg_port"
as_postgres "$pg_bin/initdb" -D "$work/svc/pg" -U bench -A scram-sha-256 --pwfile="$work/svc/pg.pw" \
  --no-sync >"$work/logs/initdb.log" 2>&1 || die "initdb (see $work/logs/initdb.log)"
# max_connections: -c 64 direct, plus pgbouncer's session pool (kept after the run), plus the
# transaction pool of the idle run, plus margin. fsync off: the workloads only read.
cat >> "$work/svc/pg/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/svc'
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_min_messages = warning
CONF
as_postgres "$pg_bin/pg_ctl" -D "$work/svc/pg" -l "$work/svc/pg.log" -w start >/dev/null \
  || die "PostgreSQL did not start (see $work/svc/pg.log)"
pg_started=1
export PGPASSWORD=$pg_password
"$psql_bin" -X -q -h 127.0.0.1 -p "$pg_port" -U bench -d postgres -c "CREATE DATABASE bench" >/dev/null
log "pgbench -i -s $scale"
"$pgbench" -i -q -s "$scale" -h 127.0.0.1 -p "$pg_port" -U bench bench >"$work/logs/pgbench-init.log" 2>&1 \
  || die "pgbench -i (see $work/logs/pgbench-init.log)"
unset PGPASSWORD

# ---- haproxy (mode tcp: the byte-shuffling floor) -----------------------------------------------
cat > "$work/haproxy.cfg" <<CFG
global
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen postgres
  bind 127.0.0.1:$hap_port
  server pg 127.0.0.1:$pg_port
CFG
log "haproxy on 127.0.0.1:$hap_port"
haproxy -db -f "$work/haproxy.cfg" >"$work/logs/haproxy.log" 2>&1 &
hap_pid=$!
pids_to_stop+=("$hap_pid")
wait_port_or_die "$hap_port" haproxy

# ---- pgbouncer (session mode, one process) ------------------------------------------------------
# start_pgbouncer NAME PORT POOL_MODE AUTH_TYPE MAX_CLIENTS POOL_SIZE; sets started_pid.
start_pgbouncer() {
  local name=$1 port=$2 mode=$3 auth=$4 max_clients=$5 pool=$6
  local dir=$work/svc/$name
  mkdir -p "$dir"
  printf '"bench" "%s"\n' "$pg_password" > "$dir/userlist.txt"
  cat > "$dir/pgbouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = $auth
auth_file = $dir/userlist.txt
pool_mode = $mode
max_client_conn = $max_clients
default_pool_size = $pool
max_db_connections = 0
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
server_idle_timeout = 0
log_connections = 0
log_disconnections = 0
INI
  chmod 600 "$dir/userlist.txt"
  [ "$is_root" -eq 1 ] && chown -R postgres "$dir"
  pgb_pidfiles+=("$dir/pgbouncer.pid")
  # In the foreground of a background job (as root: under runuser), so that it can be waited for.
  # runuser goes through PAM, which sets the soft fd limit back to 1024: raise it again.
  as_postgres bash -c 'ulimit -n "$(ulimit -Hn)" && exec pgbouncer "$1"' pgbouncer "$dir/pgbouncer.ini" \
    >"$work/logs/$name.log" 2>&1 &
  wrappers+=($!)
  wait_port_or_die "$port" "$name"
  for _ in $(seq 1 50); do [ -s "$dir/pgbouncer.pid" ] && break; sleep 0.1; done
  started_pid=$(cat "$dir/pgbouncer.pid")
}
log "pgbouncer (session mode) on 127.0.0.1:$pgb_port"
start_pgbouncer pgbouncer "$pgb_port" session scram-sha-256 1000 100
pgb_pid=$started_pid

# ---- gatehouse ----------------------------------------------------------------------------------
# Three instances: "gatehouse-bare" with recording.enabled: false (the relay alone, the
# passthrough of the issue), "gatehouse" with recording on (the product as deployed), and
# "gatehouse-masked": recording, 20 mask patterns and SQL deny rules on the bench connection
# (every statement parsed and judged, every result value scanned). The second connection,
# bench_idle, goes through a transaction-mode pgbouncer so that 10 000 idle logins do not need
# 10 000 PostgreSQL backends.
gw_shards=${BENCH_GH_SHARDS:-0}
gw_pin=${BENCH_GH_PIN:-false}
gwb_port=${ports[5]}
gwm_port=${ports[6]}
# The guardrails of gatehouse-masked: 11 built-in detectors and 9 regexes (20 patterns; none
# matches pgbench's rows, so the cost measured is the scanning), and deny rules by class and regex.
guardrails_yaml='    deny:
      - name: no-drops
        statements: [drop, truncate, alter]
      - name: no-unbounded-writes
        statements: [delete_without_where, update_without_where]
      - name: no-escape-hatches
        statements: [copy_program, copy_file, alter_system, set_role, do, create_function,
                     lo_export, lo_import, dblink_exec, role, grant]
      - name: no-sleep
        regex: pg_sleep
    mask:'
for d in card email iban us_ssn jwt aws_access_key_id aws_secret_key github_token slack_token \
         private_key uri_password; do
  guardrails_yaml+=$'\n'"      - {name: $d, detect: $d, style: keep_last, keep: 4}"
done
for i in 1 2 3 4 5 6 7 8 9; do
  guardrails_yaml+=$'\n'"      - {name: custom-$i, regex: 'SECRET${i}-[A-Z0-9]{12}'}"
done
# start_gatehouse NAME DIR PORT RECORDING_ENABLED [BENCH_CONNECTION_YAML]: writes the config,
# starts it (log logs/NAME.log); sets started_pid.
start_gatehouse() {
  local name=$1 dir=$2 port=$3 recording=$4 rules=${5:-}
  mkdir -p "$dir"
  cat > "$dir/gatehouse.yaml" <<YAML
node_id: bench
engine:
  shards: $gw_shards
  pin: $gw_pin
listeners:
  - name: postgres
    protocol: postgres
    address: 127.0.0.1:$port
identity:
  builtin:
    key_file: $work/gw/keys/issuer.key
    jwks_file: $work/gw/keys/jwks.json
connections:
  - name: bench
    allow_groups: [bench]
    upstream: {host: 127.0.0.1, port: $pg_port, database: bench, user: bench, password_file: $work/svc/pg.pw}
$rules
  - name: bench_idle
    allow_groups: [bench]
    upstream: {host: 127.0.0.1, port: $pgbi_port, database: bench, user: bench, password_file: $work/svc/pg.pw}
recording:
  enabled: $recording
  dir: trail
${BENCH_GH_RECORDING_EXTRA:-}
YAML
  [ -f "$work/gw/keys/issuer.key" ] || (cd "$dir" && "$gatehouse" keygen -c gatehouse.yaml >/dev/null)
  # shellcheck disable=SC2086  # the wrapper is a command line
  (cd "$dir" && exec ${BENCH_GH_WRAPPER:-} "$gatehouse" serve -c gatehouse.yaml) 2>"$work/logs/$name.log" &
  started_pid=$!
  pids_to_stop+=("$started_pid")
  wait_port_or_die "$port" "$name"
}
log "gatehouse on 127.0.0.1:$gw_port (recording), gatehouse-bare on 127.0.0.1:$gwb_port (no recording)," \
  "gatehouse-masked on 127.0.0.1:$gwm_port (recording, masking, deny rules)"
start_gatehouse gatehouse "$work/gw" "$gw_port" true
gw_pid=$started_pid
start_gatehouse gatehouse-bare "$work/gw-bare" "$gwb_port" false
gwb_pid=$started_pid
start_gatehouse gatehouse-masked "$work/gw-masked" "$gwm_port" true "$guardrails_yaml"
gwm_pid=$started_pid
token=$(cd "$work/gw" && "$gatehouse" token issue -c gatehouse.yaml --sub bench-user --groups bench \
  --act pgbench --ttl 12h)
log "pids (for profilers): gatehouse $gw_pid, gatehouse-bare $gwb_pid, gatehouse-masked $gwm_pid," \
  "pgbouncer $pgb_pid, haproxy $hap_pid"
gw_ready=$(grep -o 'ready: .*' "$work/logs/gatehouse.log" | head -n 1 | sed 's/, recording to .*//' || true)

# ---- paths --------------------------------------------------------------------------------------
paths="direct haproxy pgbouncer gatehouse-bare gatehouse gatehouse-masked"
declare -A port_of=([direct]=$pg_port [haproxy]=$hap_port [pgbouncer]=$pgb_port [gatehouse-bare]=$gwb_port
  [gatehouse]=$gw_port [gatehouse-masked]=$gwm_port)
declare -A pid_of=([direct]="" [haproxy]=$hap_pid [pgbouncer]=$pgb_pid [gatehouse-bare]=$gwb_pid
  [gatehouse]=$gw_pid [gatehouse-masked]=$gwm_pid)
declare -A label_of=([direct]="direct" [haproxy]="haproxy (mode tcp)" [pgbouncer]="pgbouncer (session)"
  [gatehouse-bare]="gatehouse passthrough (no rules, recording off)"
  [gatehouse]="gatehouse with recording"
  [gatehouse-masked]="gatehouse recording + 20 mask patterns + SQL deny")
password_of() { case "$1" in gatehouse*) echo "$token" ;; *) echo "$pg_password" ;; esac; }

# A proxy that exited during the run ends the bench, with its log (the work folder is kept).
check_alive() {
  local path pid
  for path in haproxy pgbouncer gatehouse-bare gatehouse gatehouse-masked; do
    pid=${pid_of[$path]}
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$work/logs/$path.log" "$work/svc/pgbouncer/pgbouncer.log" 2>/dev/null | tail -n 20 >&2
      die "$path (pid $pid) exited during the bench ($1)"
    fi
  done
}

# utime + stime of a whole process (all threads), in clock ticks.
cpu_ticks() {
  [ -n "$1" ] || { echo 0; return; }
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}
# "tid:ticks ..." of every thread of a process (gatehouse: flusher first, then the shards).
thread_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s:%s ' "${t##*/}" "$(sed 's/^.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}')"
  done
}
# Per-thread difference of two thread_ticks snapshots: "tid:delta ...".
thread_delta() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], p, ":"); before[p[1]] = p[2] }
    m = split(b, y, " "); for (i = 1; i <= m; i++) { split(y[i], q, ":"); d = q[2] - before[q[1]]; if (d > 0) printf "%s:%d ", q[1], d } }'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
median() {
  [ $# -gt 0 ] || { echo nan; return; }
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1}
    END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
          else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

declare -A res  # "workload|path|field" -> values of the repetitions, space separated
add() { res["$1|$2|$3"]="${res["$1|$2|$3"]:-} $4"; }
med() { median ${res["$1|$2|$3"]:-}; }

# run_pgbench WORKLOAD PATH MODE CLIENTS CONNECT(0|1) SECONDS; MODE simple, prepared, extended
# (pgbench -S) or file:SCRIPT (pgbench -f SCRIPT, simple protocol).
run_pgbench() {
  local workload=$1 path=$2 mode=$3 clients=$4 connect=$5 seconds=$6
  local threads=$((clients < 2 ? clients : 2))
  local prefix=$work/logs/pgbench-$workload-$path
  local extra=()
  [ "$connect" -eq 1 ] && extra+=(--connect)
  if [[ $mode == file:* ]]; then extra+=(-f "${mode#file:}"); mode=simple; else extra+=(-S); fi
  local pid=${pid_of[$path]} before after out threads0="" threads1=""
  [ "$path" = gatehouse ] && threads0=$(thread_ticks "$pid")
  before=$(cpu_ticks "$pid")
  out=$(PGPASSWORD=$(password_of "$path") "$pgbench" -n -M "$mode" -c "$clients" -j "$threads" \
          -T "$seconds" "${extra[@]}" -l --log-prefix="$prefix" \
          -h 127.0.0.1 -p "${port_of[$path]}" -U bench bench 2>&1) \
    || { printf '%s\n' "$out" >&2; die "pgbench $workload through $path"; }
  check_alive "$workload through $path"
  after=$(cpu_ticks "$pid")
  [ "$path" = gatehouse ] && threads1=$(thread_ticks "$pid")
  local tps txns
  tps=$(printf '%s\n' "$out" | awk '/^tps = / {print $3; exit}')
  txns=$(printf '%s\n' "$out" | awk -F': ' '/actually processed/ {print $2; exit}' | awk '{print $1}')
  [ -n "$tps" ] && [ -n "$txns" ] && [ "$txns" -gt 0 ] \
    || { printf '%s\n' "$out" >&2; die "no transactions: $workload through $path"; }
  # Per-transaction log lines: client_id transaction_no latency_us script_no epoch epoch_us.
  local pcts
  pcts=$(cat "$prefix".* | awk '{print $3}' | sort -n | awk '{a[NR] = $1}
    END { i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++;
          if (i50 < 1) i50 = 1; if (i99 < 1) i99 = 1; print a[i50], a[i99] }')
  if [ "$keep" -eq 1 ]; then
    mkdir -p "$prefix.logs" && mv "$prefix".[0-9]* "$prefix.logs/"
  else
    rm -f "$prefix".*
  fi
  add "$workload" "$path" tps "$tps"
  add "$workload" "$path" p50 "${pcts% *}"
  add "$workload" "$path" p99 "${pcts#* }"
  if [ -n "$pid" ]; then
    add "$workload" "$path" cpu "$(awk -v d=$((after - before)) -v t="$clk_tck" -v n="$txns" \
      'BEGIN { printf "%.2f", d * 1e6 / t / n }')"
  fi
  printf '  %-22s %-10s tps %10.1f  p50 %6s us  p99 %6s us%s\n' "$workload" "$path" "$tps" \
    "${pcts% *}" "${pcts#* }" "${threads1:+  CPU ticks per thread: $(thread_delta "$threads0" "$threads1")}" >&2
}

# ---- warm-up ------------------------------------------------------------------------------------
# With the largest client count, and by transaction count rather than time: pgbouncer opens its
# server connections one after the other, and a timed run would start with most clients waiting
# for one (it then keeps them: server_idle_timeout = 0).
cmax_all=$(printf '%s\n' $clients_list "$connect_clients" | sort -n | tail -n 1)
log "warm-up (-c $cmax_all)"
for path in $paths; do
  PGPASSWORD=$(password_of "$path") "$pgbench" -n -S -c "$cmax_all" -j 2 -t 100 -h 127.0.0.1 \
    -p "${port_of[$path]}" -U bench bench >"$work/logs/warmup-$path.log" 2>&1 \
    || { cat "$work/logs/warmup-$path.log" >&2; die "warm-up through $path"; }
done
check_alive warm-up

if [ "$serve" -eq 1 ]; then
  for path in $paths; do
    printf '%-17s port %-5s pid %-7s PGPASSWORD=%s\n' "$path" "${port_of[$path]}" "${pid_of[$path]:--}" \
      "$(password_of "$path")"
  done
  log "serving (pgbench -h 127.0.0.1 -p PORT -U bench bench); Ctrl-C or SIGTERM stops everything"
  while check_alive serving; do sleep 5; done
fi

# Idle CPU of each proxy over 2 s (nothing connected): background wake-ups.
declare -A idle_cpu
for path in haproxy pgbouncer gatehouse; do idle_cpu[$path]=$(cpu_ticks "${pid_of[$path]}"); done
sleep 2
for path in haproxy pgbouncer gatehouse; do
  idle_cpu[$path]=$(awk -v d=$(($(cpu_ticks "${pid_of[$path]}") - ${idle_cpu[$path]})) -v t="$clk_tck" \
    'BEGIN { printf "%.1f", d / t / 2 * 100 }')
done

has_part() { [[ " $parts " == *" $1 "* ]]; }
pg_workloads=()  # what the pgbench tables list

# ---- pgbench -S: modes x clients, paths interleaved, R repetitions ------------------------------
workloads=()
if has_part pgbench; then
  for mode in $modes; do
    for c in $clients_list; do
      w="S-$mode-c$c"
      workloads+=("$w")
      for rep in $(seq 1 "$repeat"); do
        log "-S -M $mode -c $c, repetition $rep/$repeat"
        for path in $paths; do run_pgbench "$w" "$path" "$mode" "$c" 0 "$duration"; done
      done
    done
  done
  pg_workloads+=("${workloads[@]}")
fi

# ---- result rows: a 1000-row SELECT per transaction (what recording every row costs) -----------
if has_part rows; then
  rows_w="rows-c$connect_clients"
  printf 'SELECT i, i * 7 AS n FROM generate_series(1, 1000) i;\n' > "$work/rows1000.sql"
  for rep in $(seq 1 "$repeat"); do
    log "1000-row SELECT -c $connect_clients, repetition $rep/$repeat"
    for path in $paths; do
      run_pgbench "$rows_w" "$path" "file:$work/rows1000.sql" "$connect_clients" 0 "$duration"
    done
  done
  pg_workloads+=("$rows_w")
fi

# ---- connection rate: pgbench --connect ---------------------------------------------------------
if has_part connect; then
  connect_w="connect-c$connect_clients"
  for rep in $(seq 1 "$repeat"); do
    log "--connect -c $connect_clients, repetition $rep/$repeat"
    for path in $paths; do run_pgbench "$connect_w" "$path" simple "$connect_clients" 1 "$duration"; done
  done
  pg_workloads+=("$connect_w")
fi

# ---- bulk reads to /dev/null: COPY ... TO STDOUT, and a SELECT streamed as DataRows ------------
# The SELECT's values are row-like text, so that the masked path's scan does real work; psql
# fetches it through a cursor (FETCH_COUNT) so that it does not hold the result in memory.
bulk_rows=$(((bulk_mb * 1024 * 1024 + 1007) / 1008))
row_text="order 1042 shipped to Rue de la Paix 12, total 99.50 EUR; note: fragile. "
select_repeat=14  # 14 x 74 bytes: about 1 KB per row, as in the COPY
bulk_read() {  # bulk_read KEY SQL BYTES [psql options...]
  local key=$1 sql=$2 bytes=$3 rep path pid before after t0 t1 mbps
  shift 3
  for rep in $(seq 1 "$repeat"); do
    log "$key read of $bytes bytes, repetition $rep/$repeat"
    for path in $paths; do
      pid=${pid_of[$path]}
      before=$(cpu_ticks "$pid")
      t0=$(date +%s%N)
      PGPASSWORD=$(password_of "$path") "$psql_bin" -X -q -h 127.0.0.1 -p "${port_of[$path]}" -U bench \
        -d bench -v ON_ERROR_STOP=1 "$@" -c "$sql" >/dev/null 2>"$work/logs/$key-$path.err" \
        || { cat "$work/logs/$key-$path.err" >&2; die "$key read through $path"; }
      t1=$(date +%s%N)
      check_alive "$key read through $path"
      after=$(cpu_ticks "$pid")
      mbps=$(awk -v b="$bytes" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", b / (ns / 1e9) / 1e6 }')
      add "$key" "$path" mbps "$mbps"
      [ -n "$pid" ] && add "$key" "$path" cpu "$(awk -v d=$((after - before)) -v t="$clk_tck" -v b="$bytes" \
        'BEGIN { printf "%.3f", d / t / (b / 1e9) }')"
      printf '  %-22s %-10s %8.1f MB/s\n' "$key" "$path" "$mbps" >&2
    done
  done
}
if has_part bulk; then
  bulk_sql="COPY (SELECT i, repeat('x', 1000) FROM generate_series(1, $bulk_rows) i) TO STDOUT"
  bulk_bytes=$(PGPASSWORD=$pg_password "$psql_bin" -X -A -t -h 127.0.0.1 -p "$pg_port" -U bench -d bench \
    -c "SELECT sum(length(i::text) + 1002) FROM generate_series(1, $bulk_rows) i")
  bulk_read bulk "$bulk_sql" "$bulk_bytes"
fi
if has_part select; then
  select_sql="SELECT i, repeat('$row_text', $select_repeat) FROM generate_series(1, $bulk_rows) i"
  # Value bytes as the DataRows carry them (text format), without the message framing.
  select_bytes=$(PGPASSWORD=$pg_password "$psql_bin" -X -A -t -h 127.0.0.1 -p "$pg_port" -U bench -d bench \
    -c "SELECT sum(length(i::text) + ${#row_text} * $select_repeat) FROM generate_series(1, $bulk_rows) i")
  bulk_read select "$select_sql" "$select_bytes" -A -t -v FETCH_COUNT=20000
fi

# ---- idle connections through the gateway -------------------------------------------------------
gw_idle_bytes=nan
if has_part idle; then
  log "idle run: $idle_count logged-in idle connections through gatehouse"
  start_pgbouncer pgbouncer-idle "$pgbi_port" transaction md5 $((idle_count + 100)) 4
  pgbi_pid=$started_pid
  gw_rss0=$(rss_kib "$gw_pid")
  pgbi_rss0=$(rss_kib "$pgbi_pid")
  GH_BENCH_TOKEN=$token "$idle_tool" --port "$gw_port" --user bench-user --database bench_idle \
    --password-env GH_BENCH_TOKEN --count "$idle_count" --parallel 64 --timeout-s 600 \
    >"$work/logs/idle.out" 2>"$work/logs/idle.err" &
  idle_pid=$!
  pids_to_stop+=("$idle_pid")
  for _ in $(seq 1 6500); do
    grep -q . "$work/logs/idle.out" 2>/dev/null && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  idle_line=$(head -n 1 "$work/logs/idle.out" 2>/dev/null || true)
  [[ $idle_line == ready* ]] || { tail -n 20 "$work/logs/idle.err" >&2; die "idle clients: ${idle_line:-no answer}"; }
  idle_login_ms=$(awk '{print $6}' <<<"$idle_line")
  idle_shards=$(sed 's/.*pid_high_bytes //' <<<"$idle_line")
  sleep 1
  check_alive "idle run"
  gw_rss1=$(rss_kib "$gw_pid")
  pgbi_rss1=$(rss_kib "$pgbi_pid")
  kill -TERM "$idle_pid"
  wait "$idle_pid" 2>/dev/null || die "idle connections were closed while idle ($(tail -n 1 "$work/logs/idle.out"))"
  per_conn() { awk -v a="$1" -v b="$2" -v n="$idle_count" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }'; }
  gw_idle_bytes=$(per_conn "$gw_rss0" "$gw_rss1")
  pgbi_idle_bytes=$(per_conn "$pgbi_rss0" "$pgbi_rss1")
fi

# ---- report -------------------------------------------------------------------------------------
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "—"; else printf "%.2f", a / b }'; }
diff_us() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { if (a == "nan" || b == "nan") print "—"; else printf f, a - b }'; }
fmt_num() { awk -v v="$1" -v p="${2:-0}" 'BEGIN { if (v == "" || v == "nan") print "—"; else printf "%.*f", p, v }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { if (v == "nan" || v == "" || v == "—") print "—";
  else if ((op == "le" && v + 0 <= t + 0) || (op == "ge" && v + 0 >= t + 0)) print "met"; else print "missed" }'; }
title_of() {
  case $1 in
    S-*) local m=${1#S-}; echo "-S -M ${m%-c*} -c ${m##*-c}" ;;
    connect-*) echo "-S --connect -c ${1#connect-c}" ;;
    rows-*) echo "1000-row SELECT (-f) -c ${1#rows-c}" ;;
  esac
}

report=$work/report.md
{
  if [ ${#pg_workloads[@]} -gt 0 ]; then
    echo "### pgbench (medians of $repeat; $duration s each; -j 2 or fewer; latency from pgbench -l logs)"
    echo
    echo "| workload | path | TPS | p50 µs | p99 µs | proxy CPU µs/txn |"
    echo "|---|---|---:|---:|---:|---:|"
    for w in "${pg_workloads[@]}"; do
      for path in $paths; do
        cpu=—
        [ -n "${pid_of[$path]}" ] && cpu=$(fmt_num "$(med "$w" "$path" cpu)" 1)
        echo "| $(title_of "$w") | ${label_of[$path]} | $(fmt_num "$(med "$w" "$path" tps)") |" \
             "$(fmt_num "$(med "$w" "$path" p50)") | $(fmt_num "$(med "$w" "$path" p99)") | $cpu |"
      done
    done
    echo
    echo "### Ratios (gatehouse over each path; TPS and CPU: medians; Δp50 = gatehouse p50 − direct p50)"
    echo
    echo "| workload | TPS gh/direct | TPS gh/pgbouncer | TPS gh/haproxy | Δp50 vs direct µs | CPU/txn gh/pgbouncer | CPU/txn gh/haproxy |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for w in "${pg_workloads[@]}"; do
      gt=$(med "$w" gatehouse tps); gc=$(med "$w" gatehouse cpu)
      echo "| $(title_of "$w") | $(ratio "$gt" "$(med "$w" direct tps)") | $(ratio "$gt" "$(med "$w" pgbouncer tps)") |" \
           "$(ratio "$gt" "$(med "$w" haproxy tps)") | $(diff_us "$(med "$w" gatehouse p50)" "$(med "$w" direct p50)" '%+.0f') |" \
           "$(ratio "$gc" "$(med "$w" pgbouncer cpu)") | $(ratio "$gc" "$(med "$w" haproxy cpu)") |"
    done
    echo
  fi
  bulk_table() {  # bulk_table KEY TITLE
    echo "### $2"
    echo
    echo "| path | MB/s | ratio gh/path | masked gh/path | proxy CPU s/GB |"
    echo "|---|---:|---:|---:|---:|"
    for path in $paths; do
      local cpu=— r m
      [ -n "${pid_of[$path]}" ] && cpu=$(fmt_num "$(med "$1" "$path" cpu)" 3)
      r=$(ratio "$(med "$1" gatehouse mbps)" "$(med "$1" "$path" mbps)")
      m=$(ratio "$(med "$1" gatehouse-masked mbps)" "$(med "$1" "$path" mbps)")
      [ "$path" = gatehouse ] && r=—
      [ "$path" = gatehouse-masked ] && m=—
      echo "| ${label_of[$path]} | $(fmt_num "$(med "$1" "$path" mbps)") | $r | $m | $cpu |"
    done
    echo
  }
  has_part bulk && bulk_table bulk \
    "Bulk read (COPY (SELECT i, repeat('x', 1000) ...) TO STDOUT, $bulk_bytes bytes, psql to /dev/null, medians of $repeat)"
  has_part select && bulk_table select \
    "Bulk SELECT as DataRows ($select_bytes value bytes of row-like text, psql -A -t with FETCH_COUNT=20000 to /dev/null, medians of $repeat)"
  if has_part idle; then
    echo "### Idle connections ($idle_count logged-in idle clients through gatehouse; asked $idle_requested)"
    echo
    echo "| process | RSS before KiB | RSS with the clients KiB | user-space bytes per connection |"
    echo "|---|---:|---:|---:|"
    echo "| gatehouse (client + upstream side per connection) | $gw_rss0 | $gw_rss1 | $gw_idle_bytes |"
    echo "| pgbouncer, transaction mode (gatehouse's upstream here; its own clients) | $pgbi_rss0 | $pgbi_rss1 | $pgbi_idle_bytes |"
    echo
    echo "All $idle_count logins took $idle_login_ms ms (64 in flight at a time)." \
         "Connections per gatehouse shard (shard:count, from the BackendKeyData process ids): $idle_shards."
    echo
  fi
  echo "### Idle CPU (2 s, nothing connected)"
  echo
  echo "| haproxy | pgbouncer | gatehouse |"
  echo "|---:|---:|---:|"
  echo "| ${idle_cpu[haproxy]} % | ${idle_cpu[pgbouncer]} % | ${idle_cpu[gatehouse]} % |"
  echo
  # Targets of issue 8, against the largest (TPS, CPU) and smallest (latency) client counts.
  cmax=${clients_list##* }
  cmin=${clients_list%% *}
  echo "### Targets (issue 8)"
  echo
  echo "| target | measured | verdict |"
  echo "|---|---:|---|"
  for mode in $modes; do
    w="S-$mode-c$cmax"
    v=$(fmt_num "$(med "$w" gatehouse cpu)" 1)
    echo "| proxy CPU ≤ 8 µs/txn with recording ($(title_of "$w")) | $v | $(verdict "$v" 8 le) |"
  done
  for mode in $modes; do
    w="S-$mode-c$cmax"
    v=$(ratio "$(med "$w" gatehouse tps)" "$(med "$w" pgbouncer tps)")
    echo "| TPS ≥ 1.2 × pgbouncer ($(title_of "$w")) | $v | $(verdict "$v" 1.2 ge) |"
    v=$(ratio "$(med "$w" gatehouse tps)" "$(med "$w" direct tps)")
    echo "| TPS ≥ 0.8 × direct ($(title_of "$w")) | $v | $(verdict "$v" 0.8 ge) |"
  done
  for mode in $modes; do
    w="S-$mode-c$cmin"
    v=$(diff_us "$(med "$w" gatehouse p50)" "$(med "$w" direct p50)" '%.0f')
    u=$v; [ "$v" = — ] || u="$v µs"
    echo "| added p50 ≤ 15 µs ($(title_of "$w")) | $u | $(verdict "$v" 15 le) |"
  done
  v=$(ratio "$(med bulk gatehouse mbps)" "$(med bulk direct mbps)")
  echo "| bulk read ≥ 0.8 × direct | $v | $(verdict "$v" 0.8 ge) |"
  u=$(fmt_num "$gw_idle_bytes"); [ "$u" = — ] || u="$u B"
  echo "| ≤ 2 KiB user-space memory per idle connection | $u | $(verdict "$gw_idle_bytes" 2048 le) |"
} > "$report"

cat "$report"

# ---- RESULTS.md ---------------------------------------------------------------------------------
if [ -n "$results_file" ]; then
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  dirty=""
  [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && dirty=" (working tree had uncommitted changes)"
  section=$work/section.md
  {
    echo "<!-- bench.sh:begin (everything up to bench.sh:end is rewritten by each run) -->"
    echo "## Latest run: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    [ -n "$note" ] && { echo "**$note**"; echo; }
    echo "- command: \`$command_line\`${GATEHOUSE_BUILD_DIR:+ (GATEHOUSE_BUILD_DIR=$GATEHOUSE_BUILD_DIR)}"
    echo "- commit: $commit$dirty"
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
         "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "- versions: $("$pg_bin/postgres" --version), $(pgbouncer --version 2>/dev/null | head -n 1)," \
         "$(haproxy -v 2>/dev/null | head -n 1 | awk '{print $1, $2, $3}')"
    echo "- gatehouse: $gw_ready"
    echo "- settings: pgbench scale $scale, $duration s per run, $repeat repetitions, clients $clients_list," \
         "paths interleaved (direct, haproxy, pgbouncer, gatehouse-bare, gatehouse, gatehouse-masked) within each repetition, parts: $parts"
    echo
    cat "$report"
    echo "<!-- bench.sh:end -->"
  } > "$section"
  if [ -f "$results_file" ] && grep -q '<!-- bench.sh:begin' "$results_file"; then
    awk -v sec="$section" '
      /<!-- bench.sh:begin/ { while ((getline line < sec) > 0) print line; skip = 1; next }
      /<!-- bench.sh:end/ { skip = 0; next }
      !skip { print }' "$results_file" > "$work/results.new"
    cat "$work/results.new" > "$results_file"
  else
    { echo "# Benchmark results"; echo; cat "$section"; } > "$results_file"
  fi
  log "results written to $results_file"
fi
log "done"
