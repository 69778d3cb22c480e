#!/usr/bin/env bash
# Interop on the brokers people scale to: the sg and ApiGear broker-compatibility suite (test/broker-compat.test.ts)
# against RabbitMQ's MQTT plugin and NATS's MQTT listener, each on a private port. Nothing the machine's services
# already serve changes: RabbitMQ gets its MQTT plugin with a listener on a free loopback port (and the plugin is
# disabled again afterwards if this script enabled it); NATS runs as a second nats-server with its own ports and
# JetStream store directory, stopped afterwards (the system one on 4222 is never touched). Needs a built tree (dist/).
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
wait_port() { for _ in $(seq 1 150); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; return 1; }
suite() {
  echo "--- $1 (mqtt://127.0.0.1:$2)"
  BUSBAR_BROKER="$1" MQTT_URL="mqtt://127.0.0.1:$2" npx mocha --no-config --timeout 60000 --exit --reporter spec dist/test/broker-compat.test.js
}

failed=()
work=$(mktemp -d)
nats_pid=''
rabbit_enabled_here=''
plugins_file=''
cleanup() {
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  if [ -n "$rabbit_enabled_here" ]; then
    rabbitmq-plugins -q disable rabbitmq_mqtt > /dev/null || true
    # The plugins file did not exist before: leave none behind.
    if [ -n "$plugins_file" ]; then rm -f "$plugins_file"; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# NATS: a second server, MQTT needs JetStream and a server name.
if command -v nats-server > /dev/null; then
  client_port=$(free_port)
  mqtt_port=$(free_port)
  cat > "$work/nats.conf" << EOF
listen: 127.0.0.1:$client_port
server_name: busbar_ci_mqtt
jetstream { store_dir: "$work/nats-store" }
mqtt { listen: 127.0.0.1:$mqtt_port }
EOF
  nats-server -c "$work/nats.conf" > "$work/nats.log" 2>&1 &
  nats_pid=$!
  if wait_port "$mqtt_port"; then
    suite "NATS $(nats-server --version | sed 's/^nats-server: //')" "$mqtt_port" || failed+=('NATS')
  else
    cat "$work/nats.log" >&2
    failed+=('NATS (did not start)')
  fi
  kill "$nats_pid"
  wait "$nats_pid" 2> /dev/null || true
  nats_pid=''
else
  echo 'nats-server is not installed: NATS skipped'
fi

# RabbitMQ: the running node's MQTT plugin, listener set before the plugin starts (its default would be 1883).
if command -v rabbitmqctl > /dev/null && rabbitmqctl -q status > /dev/null 2>&1; then
  version=$(rabbitmqctl -q eval 'rabbit:base_product_version().' | tr -d '"')
  if rabbitmq-plugins -q is_enabled rabbitmq_mqtt > /dev/null 2>&1; then
    port=$(rabbitmqctl -q eval '{ok, [L | _]} = application:get_env(rabbitmq_mqtt, tcp_listeners), case L of {_, P} -> P; P -> P end.')
  else
    port=$(free_port)
    file=$(rabbitmqctl -q eval '{ok, F} = application:get_env(rabbit, enabled_plugins_file), F.' | tr -d '"')
    if [ ! -e "$file" ]; then plugins_file=$file; fi
    rabbitmqctl -q eval "ok = case application:load(rabbitmq_mqtt) of ok -> ok; {error, {already_loaded, _}} -> ok end, application:set_env(rabbitmq_mqtt, tcp_listeners, [{\"127.0.0.1\", $port}])." > /dev/null
    rabbit_enabled_here=1
    rabbitmq-plugins -q enable rabbitmq_mqtt > /dev/null
  fi
  if wait_port "$port"; then
    suite "RabbitMQ $version" "$port" || failed+=('RabbitMQ')
  else
    failed+=('RabbitMQ (MQTT listener did not start)')
  fi
else
  echo 'RabbitMQ is not running: RabbitMQ skipped'
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'broker interop FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
