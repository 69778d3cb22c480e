// The embedded broker must deliver every acknowledged publish. aedes 2.0.0-beta.1 numbers each publish when it starts
// routing it and lets a subscriber drop any message numbered lower than the last one it got (its `dedupe`); the
// PUBLISH packets of one TCP read are routed concurrently and a retained one takes one step more before fan-out, so a
// retained QoS 2 (or QoS 0) publish followed in the same read by another publish to the same subscriber was
// acknowledged and then dropped (moscajs/aedes#994). This is what ApiGear's service did: a retained property update and
// an rpc result written in one go. Plain mqtt.js v5 clients; the publisher's socket is corked so both PUBLISHes land
// in one read, every round (without the cork loopback usually does the same).
import assert from 'assert';
import helper from 'node-red-node-test-helper';
import mqtt, { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../src/mqtt/embedded-broker';
import { clearRetained, clearUsedNames, Observer, startTestBroker, TestBroker, uniqueName } from './lib/mqtt-peer';
import { load, sgNodes } from './lib/nodes';

helper.init(require.resolve('node-red'));

type QoS = 0 | 1 | 2;

const ROUNDS = 20;

describe('embedded MQTT broker: no acknowledged publish lost (aedes dedupe race)', () => {
  let broker: EmbeddedBroker;
  let pub: MqttClient;
  let sub: MqttClient;

  beforeEach(async () => {
    broker = new EmbeddedBroker({ port: 0 });
    await broker.start();
    sub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'qos2-sub', reconnectPeriod: 0 });
    pub = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: 'qos2-pub', reconnectPeriod: 0 });
    await sub.subscribeAsync('m/I/#', { qos: 2 });
  });

  afterEach(async () => {
    await Promise.all([pub.endAsync(true), sub.endAsync(true)]);
    await broker.close();
  });

  /**
   * Per round: a retained property update and a non-retained message in one TCP segment at `qos`, then (once those are
   * acknowledged or written) a QoS 1 marker. The broker routes the marker after both, so when the subscriber has the
   * marker it must have the other two. Returns the rounds that missed something.
   */
  async function lostRounds(qos: QoS): Promise<string[]> {
    const got = new Map<string, Set<string>>();
    const markers = new Map<string, () => void>();
    sub.on('message', (topic, payload) => {
      const round = payload.toString();
      if (topic === 'm/I/marker') markers.get(round)?.();
      else (got.get(round) ?? got.set(round, new Set()).get(round)!).add(topic);
    });
    const lost: string[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const round = String(i);
      const marker = new Promise<void>((resolve) => markers.set(round, resolve));
      pub.stream.cork();
      const sent = Promise.all([
        pub.publishAsync('m/I/prop/p', round, { qos, retain: true }),
        pub.publishAsync('m/I/rpc/say/c/result', round, { qos, retain: false }),
      ]);
      process.nextTick(() => pub.stream.uncork());
      await sent;
      await pub.publishAsync('m/I/marker', round, { qos: 1 });
      await marker;
      const topics = got.get(round) ?? new Set();
      if (topics.size !== 2) lost.push(`round ${i}: got only [${[...topics].join(', ')}]`);
    }
    return lost;
  }

  for (const qos of [2, 0, 1] as QoS[]) {
    it(`a retained QoS ${qos} publish followed in the same read by another publish reaches the subscriber`, async () => {
      assert.deepStrictEqual(await lostRounds(qos), []);
    });
  }

  it('still refuses client publishes to $SYS/ (aedes default rule kept)', async () => {
    await assert.rejects(pub.publishAsync('$SYS/forged', 'x', { qos: 1 }));
  });
});

// The same drop through the sg nodes: a resource's startup burst (retained announcements, then a non-retained command
// echo default) goes out in one segment. Before the workaround a subscriber to `+/<name>/#` got only the last message.
describe('sg-resource at QoS 2 or 0: the whole startup burst reaches a subscriber', () => {
  let broker: TestBroker;
  let observer: Observer;

  before(async () => {
    await helper.startServer();
    broker = await startTestBroker();
  });
  after(async () => {
    await helper.stopServer();
    await broker.close();
  });
  beforeEach(async () => {
    observer = await Observer.connect(broker.url);
  });
  afterEach(async () => {
    await helper.unload();
    const retained = observer.seen.filter((s) => s.retain).map((s) => s.topic);
    await observer.close();
    await clearRetained(broker.url, retained);
    await clearUsedNames(broker.url);
  });

  for (const qos of [2, 0]) {
    it(`retained announcements followed by a non-retained echo default, QoS ${qos}`, async () => {
      const name = uniqueName('taxisignservice');
      await observer.subscribe(`+/${name}/#`);
      await load(sgNodes, [
        {
          id: 'broker',
          type: 'sg-broker',
          mode: 'external',
          host: '127.0.0.1',
          port: Number(new URL(broker.url).port),
          protocol: '3.1.1',
          keepalive: 10,
          qos,
          clean: true,
        },
        {
          id: 'res',
          type: 'sg-resource',
          broker: 'broker',
          resource: name,
          commands: [{ signal: 'state', echo: true, echoRetained: false, defaultValue: 'False', changeOnly: false }],
          data: [],
          wires: [[]],
        },
      ]);
      await observer.waitFor((s) => s.topic === `data/${name}/state`);
      // MQTT keeps the order of one publisher's messages per QoS, so everything before the default has arrived by now.
      assert.deepStrictEqual(
        observer.seen.map((s) => `${s.topic} ${s.payload} r${s.retain ? 1 : 0}`),
        [
          `resourceavailable/${name}/presence True r1`,
          `commandavailable/${name}/state True r1`,
          `dataavailable/${name}/state True r1`,
          `data/${name}/state False r0`,
        ],
      );
    });
  }
});
