"""A third-party ApiGear peer on Eclipse Paho (Python, MQTT v5), behaving as the spec describes ApiGear's Python adapter.

Written for these tests (no template code): QoS 2, clean start, explicit client id, replies matched by CorrelationData.
Strict as the generated adapters: every payload on every subscribed topic goes through json.loads first. In the
adapters an error there ends Paho's network thread (the client silently stops receiving); here it is reported as an
"unparsable" event and the peer exits non-zero, so a test fails.
As in the Python adapter, the reply topic is built from Paho's bytes client id (".../rpc/say/b'py-peer'/result") and
CorrelationData is one byte per call. Prints one JSON object per line on stdout; exits when its script is done.

usage: apigear_paho_peer.py client|service|watch HOST PORT PREFIX
  watch: subscribe to PREFIX/# and parse everything until a message arrives on PREFIX/sig/busbarMarker.
"""
import json
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

mode, host, port, prefix = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
QOS = 2
done = threading.Event()


def say(**event):
    print(json.dumps(event), flush=True)


client = mqtt.Client(client_id="py-peer", protocol=mqtt.MQTTv5)
seen = set()


unparsable = []


def strict(handler):
    """json.loads on every payload before the handler sees it, as ApiGear's generated clients do."""

    def on_message(c, userdata, msg):
        try:
            json.loads(msg.payload)
        except Exception as err:  # noqa: BLE001 - any parse failure is what kills a generated client
            unparsable.append(msg.topic)
            say(event="unparsable", topic=msg.topic, payload=msg.payload.hex(), error=str(err))
            done.set()
            return
        handler(c, userdata, msg)

    return on_message


def finish_if(*needed):
    if all(n in seen for n in needed):
        done.set()


if mode == "client":
    result_topic = f"{prefix}/rpc/say/{client._client_id}/result"  # bytes id: "b'py-peer'", as the Python adapter does
    pending = {}

    def on_connect(c, userdata, flags, rc, properties=None):
        c.subscribe([(f"{prefix}/prop/last", QOS), (f"{prefix}/sig/justSaid", QOS), (result_topic, QOS)])

    def on_subscribe(c, userdata, mid, reason_codes, properties=None):
        say(event="ready", resultTopic=result_topic)
        c.publish(f"{prefix}/set/last", json.dumps({"content": "from python"}), qos=QOS)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = result_topic
        props.CorrelationData = bytes([1])
        pending[bytes([1])] = "say"
        c.publish(f"{prefix}/rpc/say", json.dumps([{"content": "paho"}, 1]), qos=QOS, properties=props)

    def on_message(c, userdata, msg):
        if msg.topic == result_topic:
            corr = msg.properties.CorrelationData if hasattr(msg.properties, "CorrelationData") else None
            if corr in pending:
                pending.pop(corr)
                say(event="result", corr=list(corr), value=json.loads(msg.payload))
                seen.add("result")
        elif msg.topic.endswith("/prop/last"):
            value = json.loads(msg.payload)
            say(event="prop", value=value, retain=bool(msg.retain))
            if value == {"content": "from python"}:
                seen.add("prop")
        elif msg.topic.endswith("/sig/justSaid"):
            say(event="sig", args=json.loads(msg.payload))
            seen.add("sig")
        finish_if("result", "prop", "sig")
        if "result" in seen and "sig" in seen and "grace" not in seen:
            # The property echo may not come (see the test); do not wait the full 15 s for it.
            seen.add("grace")
            threading.Timer(3.0, done.set).start()

elif mode == "watch":

    def on_connect(c, userdata, flags, rc, properties=None):
        c.subscribe([(f"{prefix}/#", QOS)])

    def on_subscribe(c, userdata, mid, reason_codes, properties=None):
        say(event="ready")

    def on_message(c, userdata, msg):
        say(event="message", topic=msg.topic, value=json.loads(msg.payload), retain=bool(msg.retain))
        if msg.topic == f"{prefix}/sig/busbarMarker":
            seen.add("marker")
            done.set()

else:  # service

    def on_connect(c, userdata, flags, rc, properties=None):
        c.publish(f"{prefix}/prop/last", json.dumps({"content": "python service"}), qos=QOS, retain=True)
        c.subscribe([(f"{prefix}/set/last", QOS), (f"{prefix}/rpc/say", QOS)])

    def on_subscribe(c, userdata, mid, reason_codes, properties=None):
        say(event="ready")

    def on_message(c, userdata, msg):
        if msg.topic.endswith("/rpc/say"):
            args = json.loads(msg.payload)
            reply = Properties(PacketTypes.PUBLISH)
            corr = msg.properties.CorrelationData
            reply.CorrelationData = corr  # echoed byte for byte
            say(event="call", args=args, responseTopic=msg.properties.ResponseTopic, corr=list(corr))
            c.publish(msg.properties.ResponseTopic, json.dumps(len(args[0]["content"]) * 10 + args[1]), qos=QOS, properties=reply)
            c.publish(f"{prefix}/sig/justSaid", json.dumps([args[0]]), qos=QOS)
            seen.add("call")
        elif msg.topic.endswith("/set/last"):
            value = json.loads(msg.payload)
            say(event="set", value=value)
            c.publish(f"{prefix}/prop/last", json.dumps(value), qos=QOS, retain=True)
            seen.add("set")
        finish_if("call", "set")


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = strict(on_message)
client.connect(host, port, clean_start=True)
client.loop_start()
ok = done.wait(15) and not unparsable
if mode == "service":
    # Leave no retained value behind on a shared broker.
    client.publish(f"{prefix}/prop/last", b"", qos=QOS, retain=True).wait_for_publish(5)
client.loop_stop()
client.disconnect()
say(event="end", ok=ok)
sys.exit(0 if ok else 1)
