#!/usr/bin/env bash
# The end-to-end demo on the embedded default: a throwaway PostgreSQL, gatehouse in front of it
# with the built-in token issuer, psql through the gateway, then the recorded session and its
# verification. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh build >/dev/null
gatehouse=$PWD/build/app/gatehouse

source scripts/lib.sh
work=$(mktemp -d /tmp/gatehouse-demo-XXXXXX)
chmod 755 "$work"
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
  as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(free_port)
gw_port=$(free_port)

echo "== 1. a throwaway PostgreSQL on 127.0.0.1:$pg_port (the upstream; only gatehouse knows its password)"
upstream_password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$upstream_password" > "$work/upstream.pw"
chmod 644 "$work/upstream.pw"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
as_postgres "$pg_bin/initdb" -D "$work/pg" -U app -A scram-sha-256 --pwfile="$work/upstream.pw" --no-sync >/dev/null
printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\n" "$pg_port" "$work" \
  >> "$work/pg/postgresql.conf"
as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
chmod 600 "$work/upstream.pw"

echo "== 2. gatehouse on 127.0.0.1:$gw_port, connection 'appdb' open to the group 'developers'"
mkdir -p "$work/gw"
cat > "$work/gw/gatehouse.yaml" <<YAML
node_id: demo
listeners:
  - name: postgres
    protocol: postgres
    address: 127.0.0.1:$gw_port
identity:
  builtin:
    key_file: keys/issuer.key
    jwks_file: keys/jwks.json
connections:
  - name: appdb
    allow_groups: [developers]
    upstream:
      host: 127.0.0.1
      port: $pg_port
      database: postgres
      user: app
      password_file: $work/upstream.pw
recording:
  dir: trail
  flush_interval_ms: 50
  anchor_file: $work/anchors.jsonl
YAML
cd "$work/gw"
"$gatehouse" keygen -c gatehouse.yaml
"$gatehouse" serve -c gatehouse.yaml 2> serve.log &
gateway_pid=$!
wait_port "$gw_port" || { cat serve.log; exit 1; }
cat serve.log

echo "== 3. a token for alice, acting through ci-runner (the built-in issuer, valid 15 minutes)"
token=$("$gatehouse" token issue -c gatehouse.yaml --sub alice --groups developers --act ci-runner --ttl 15m)
echo "${token:0:48}..."

echo "== 4. psql through the gateway: the token is the password, 'appdb' the database"
PGPASSWORD=$token psql -X "host=127.0.0.1 port=$gw_port user=alice dbname=appdb sslmode=disable" <<'SQL' || true
CREATE TABLE deployments (id serial PRIMARY KEY, service text, version text);
INSERT INTO deployments (service, version) VALUES ('api', '1.4.2'), ('worker', '2.0.0');
SELECT * FROM deployments ORDER BY id;
SELECT version::int FROM deployments;
SQL

echo "== 5. stop the gateway (SIGTERM drains and flushes the recording)"
kill -TERM "$gateway_pid"; wait "$gateway_pid" || true; gateway_pid=""
tail -n 2 serve.log

echo "== 6. the recorded sessions"
"$gatehouse" sessions --dir trail
session=$("$gatehouse" sessions --dir trail --json | grep -o '"session_id":"[0-9a-f]*"' | head -n 1 | cut -d'"' -f4)
"$gatehouse" replay "$session" --dir trail

echo "== 7. gatehouse verify: hash chain, signed seals and checkpoints, anchors kept outside the trail"
"$gatehouse" verify trail --keys keyring.json --anchors "$work/anchors.jsonl"
