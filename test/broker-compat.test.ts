// The sg and ApiGear interop essentials on whatever broker MQTT_URL names (BUSBAR_BROKER gives it a name), or on the
// embedded broker: the broker's features are probed first, and every case a broker cannot support is skipped with
// the reason printed. .ci/brokers.sh runs this against RabbitMQ's MQTT plugin and NATS's MQTT listener.
import assert from 'assert';
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import { randomBytes } from 'crypto';
import { EmbeddedBroker } from '../src/mqtt/embedded-broker';
import { helloYaml } from './support/hello';
import { callsOf, lastStatus } from './support/node-calls';
import { uniqueModule } from './lib/mqtt-peer';
import { until } from './support/until';
import { skipBecause } from './support/skip';
import { clearRetained, KillableProxy } from './lib/mqtt-peer';

helper.init(require.resolve('node-red'));

const nodes = [
  require('../nodes/sg/sg-broker'),
  require('../nodes/sg/sg-resource'),
  require('../nodes/sg/sg-app'),
  require('../nodes/apigear/apigear-service'),
  require('../nodes/apigear/apigear-client'),
] as TestNodeInitializer[];

interface Features {
  v31: boolean;
  v5: boolean;
  qos2: boolean;
  retained: boolean;
  /** How the broker answered an MQTT 5 CONNECT it does not support (CONNACK text, or a silent close). */
  v5Refusal?: string;
}

/** Connects with `options`; resolves undefined on CONNACK success, else the error text (or "closed"). */
function tryConnect(url: string, options: IClientOptions): Promise<{ client?: MqttClient; refusal?: string }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clientId: `probe-${randomBytes(4).toString('hex')}`,
      ...options,
    });
    client.once('connect', () => resolve({ client }));
    client.once('error', (err) => {
      client.end(true);
      resolve({ refusal: err.message });
    });
    client.once('close', () => {
      if (!client.connected) resolve({ refusal: 'connection closed without CONNACK' });
    });
  });
}

async function probe(url: string): Promise<Features> {
  const v31 = await tryConnect(url, { protocolId: 'MQIsdp', protocolVersion: 3 });
  await v31.client?.endAsync(true);
  const v5 = await tryConnect(url, { protocolVersion: 5 });
  await v5.client?.endAsync(true);
  const { client } = await tryConnect(url, { protocolVersion: 4 });
  if (!client) throw new Error(`broker ${url} refuses MQTT 3.1.1`);
  const topic = `busbar-probe/${randomBytes(4).toString('hex')}`;
  const granted = await client.subscribeAsync(`${topic}/q2`, { qos: 2 });
  await client.publishAsync(`${topic}/retained`, 'r', { qos: 1, retain: true });
  await client.endAsync(true);
  const late = (await tryConnect(url, { protocolVersion: 4 })).client!;
  const retained = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 3000);
    late.on('message', (t, _p, packet) => {
      if (t === `${topic}/retained` && packet.retain) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    void late.subscribeAsync(`${topic}/retained`, { qos: 1 });
  });
  await late.publishAsync(`${topic}/retained`, Buffer.alloc(0), { qos: 1, retain: true });
  await late.endAsync(true);
  return { v31: !v31.refusal, v5: !v5.refusal, qos2: granted[0]?.qos === 2, retained, v5Refusal: v5.refusal };
}

const brokerName = process.env.BUSBAR_BROKER ?? (process.env.MQTT_URL ? process.env.MQTT_URL : 'embedded');

describe(`broker compatibility: sg and ApiGear essentials on ${brokerName}`, function () {
  this.timeout(60000);
  let url = '';
  let embedded: EmbeddedBroker | undefined;
  let features: Features;
  let retainedTopics: string[] = [];
  let observers: MqttClient[] = [];

  before(async () => {
    if (process.env.MQTT_URL) url = process.env.MQTT_URL;
    else {
      embedded = new EmbeddedBroker({ port: 0 });
      await embedded.start();
      url = embedded.url;
    }
    features = await probe(url);
    console.log(`      ${brokerName}: ${JSON.stringify(features)}`);
    await helper.startServer();
  });
  after(async () => {
    await helper.stopServer();
    await embedded?.close();
  });
  afterEach(async () => {
    await Promise.all(observers.map((c) => c.endAsync(true)));
    observers = [];
    await helper.unload();
    await clearRetained(url, retainedTopics);
    retainedTopics = [];
  });

  /** Skips the running test, saying why, when the broker lacks what it needs. */
  function need(ctx: Mocha.Context, feature: keyof Omit<Features, 'v5Refusal'>, why: string): void {
    if (features[feature]) return;
    skipBecause(ctx, `${brokerName}: ${why}`);
  }

  function brokerNode(extra: object = {}): object {
    const u = new URL(url);
    return {
      id: 'b1',
      type: 'sg-broker',
      mode: 'external',
      host: u.hostname,
      port: Number(u.port || 1883),
      protocol: '3.1.1',
      qos: 1,
      keepalive: 10,
      clean: true,
      ...extra,
    };
  }

  async function observer(
    topics: string[],
  ): Promise<{ client: MqttClient; seen: Array<{ topic: string; payload: string; retain: boolean }> }> {
    const client = (await tryConnect(url, { protocolVersion: 4 })).client!;
    const seen: Array<{ topic: string; payload: string; retain: boolean }> = [];
    client.on('message', (topic, payload, packet) =>
      seen.push({ topic, payload: payload.toString(), retain: packet.retain }),
    );
    await client.subscribeAsync(topics, { qos: 1 });
    return { client, seen };
  }

  function sgFlow(name: string, broker: object = brokerNode()): object[] {
    return [
      broker,
      {
        id: 'res',
        type: 'sg-resource',
        broker: 'b1',
        resource: name,
        commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False' }],
        wires: [['resOut']],
      },
      {
        id: 'app',
        type: 'sg-app',
        broker: 'b1',
        app: `${name}app`,
        subscriptions: [
          { type: 'data', service: name, signal: 'state' },
          { type: 'resourceavailable', service: name, signal: '' },
        ],
        wires: [['appOut']],
      },
      { id: 'resOut', type: 'helper' },
      { id: 'appOut', type: 'helper' },
    ];
  }

  function outputs(id: string): Array<Record<string, unknown>> {
    const got: Array<Record<string, unknown>> = [];
    (helper.getNode(id) as unknown as { on(e: string, fn: (m: Record<string, unknown>) => void): void }).on(
      'input',
      (m) => got.push(m),
    );
    return got;
  }

  /**
   * Loads the sg flow with an observer subscribed first; resolves when the resource's subscription is in (its live
   * startup publication follows its SUBSCRIBE) and, with `appOut`, the app's too (a probe on its data topic arrived).
   */
  async function loadSg(
    name: string,
    broker: object,
    appOut = false,
  ): Promise<{ resOut: Array<Record<string, unknown>>; appOut: Array<Record<string, unknown>>; obs: MqttClient }> {
    retainedTopics = sgTopics(name);
    const obs = await observer(sgTopics(name));
    observers.push(obs.client);
    await helper.load(nodes as never, sgFlow(name, broker) as never);
    const out = { resOut: outputs('resOut'), appOut: outputs('appOut'), obs: obs.client };
    await until(
      () => obs.seen.some((s) => s.topic === `data/${name}/state`),
      'the resource announced itself',
      15000,
      50,
    );
    if (appOut) {
      let n = 0;
      await until(
        () => {
          if (out.appOut.some((m) => String(m.payload).startsWith('probe'))) return true;
          void obs.client.publishAsync(`data/${name}/state`, `probe${n++}`, { qos: 1 });
          return false;
        },
        'the app subscribed',
        15000,
        300,
      );
    }
    return out;
  }

  function sgTopics(name: string): string[] {
    return [
      `resourceavailable/${name}/presence`,
      `commandavailable/${name}/state`,
      `dataavailable/${name}/state`,
      `data/${name}/state`,
    ];
  }

  it('sg-resource: presence, availability and the retained default reach a late subscriber (MQTT 3.1.1, QoS 1)', async function () {
    need(this, 'retained', 'retained messages are not replayed to new subscribers');
    const name = `bc${randomBytes(3).toString('hex')}`;
    retainedTopics = sgTopics(name);
    await helper.load(nodes as never, sgFlow(name) as never);
    await until(() => lastStatus('res')?.fill === 'green', 'sg-resource connected', 10000, 50);
    const { client, seen } = await observer(sgTopics(name));
    try {
      await until(() => seen.length >= 4, 'four retained announcements', 10000, 50);
      assert.deepStrictEqual(
        seen.map((s) => [s.topic, s.payload, s.retain]).sort(),
        [
          [`commandavailable/${name}/state`, 'True', true],
          [`data/${name}/state`, 'False', true],
          [`dataavailable/${name}/state`, 'True', true],
          [`resourceavailable/${name}/presence`, 'True', true],
        ].sort(),
      );
    } finally {
      await client.endAsync(true);
    }
  });

  it('sg-app command → sg-resource → echo → sg-app data (QoS 1)', async () => {
    const name = `bc${randomBytes(3).toString('hex')}`;
    const { resOut, appOut } = await loadSg(name, brokerNode(), true);
    (helper.getNode('app') as unknown as { receive(m: object): void }).receive({
      topic: `${name}/state`,
      payload: true,
    });
    await until(() => resOut.some((m) => m.payload === 'True'), 'the command at the resource', 10000, 50);
    await until(
      () => appOut.some((m) => m.topic === `data/${name}/state` && m.payload === 'True'),
      'the echo at the app',
      10000,
      50,
    );
  });

  it('sg-resource cut off without DISCONNECT: the broker publishes its will (presence False)', async () => {
    const name = `bc${randomBytes(3).toString('hex')}`;
    retainedTopics = sgTopics(name);
    const u = new URL(url);
    const proxy = new KillableProxy({ host: u.hostname, port: Number(u.port || 1883) });
    await proxy.start();
    try {
      await helper.load(nodes as never, sgFlow(name, brokerNode({ host: '127.0.0.1', port: proxy.port })) as never);
      await until(() => lastStatus('res')?.fill === 'green', 'sg-resource connected', 10000, 50);
      const { client, seen } = await observer([`resourceavailable/${name}/presence`]);
      try {
        await until(() => seen.some((s) => s.payload === 'True'), 'presence True', 10000, 50);
        proxy.kill();
        await until(() => seen.some((s) => s.payload === 'False'), 'the will: presence False', 20000, 50);
      } finally {
        await client.endAsync(true);
      }
    } finally {
      await proxy.close();
    }
  });

  it('sg at QoS 2: command and echo', async function () {
    need(this, 'qos2', 'the broker grants QoS 1 for a QoS 2 subscription (no QoS 2)');
    const name = `bc${randomBytes(3).toString('hex')}`;
    const { appOut } = await loadSg(name, brokerNode({ qos: 2 }), true);
    (helper.getNode('app') as unknown as { receive(m: object): void }).receive({
      topic: `${name}/state`,
      payload: true,
    });
    await until(
      () => appOut.some((m) => m.topic === `data/${name}/state` && m.payload === 'True'),
      'the echo at the app',
      10000,
      50,
    );
  });

  it("sg on MQTT 3.1 (sgframework's default protocol)", async function () {
    need(this, 'v31', 'the broker refuses MQTT 3.1 (MQIsdp); set the sg-broker protocol to 3.1.1');
    const name = `bc${randomBytes(3).toString('hex')}`;
    const { resOut, obs } = await loadSg(name, brokerNode({ protocol: '3.1' }));
    await obs.publishAsync(`command/${name}/state`, 'on', { qos: 1 });
    await until(() => resOut.some((m) => m.payload === 'on'), 'the command at the resource', 10000, 50);
  });

  it('ApiGear service ↔ client: property, signal, call (MQTT 5)', async function () {
    need(
      this,
      'v5',
      `ApiGear needs MQTT 5 (ResponseTopic, CorrelationData); the broker answers a v5 CONNECT with: ${features.v5Refusal}`,
    );
    const moduleName = uniqueModule('bc.mod');
    retainedTopics = [`${moduleName}/Hello/prop/last`];
    const yaml = helloYaml(moduleName);
    await helper.load(
      nodes as never,
      [
        brokerNode({ protocol: '5' }),
        {
          id: 'svc',
          type: 'apigear-service',
          broker: 'b1',
          moduleYaml: yaml,
          interface: 'Hello',
          wires: [[], ['svcCall']],
        },
        {
          id: 'cli',
          type: 'apigear-client',
          broker: 'b1',
          moduleYaml: yaml,
          interface: 'Hello',
          clientId: `bc-cli-${process.pid}`,
          wires: [['cliProp'], ['cliSig'], ['cliRes']],
        },
        ...['svcCall', 'cliProp', 'cliSig', 'cliRes'].map((id) => ({ id, type: 'helper' })),
      ] as never,
    );
    const [props, sigs, results, calls] = [
      outputs('cliProp'),
      outputs('cliSig'),
      outputs('cliRes'),
      outputs('svcCall'),
    ];
    await until(
      () => lastStatus('svc')?.fill === 'green' && lastStatus('cli')?.fill === 'green',
      'both connected',
      10000,
      50,
    );
    const svc = helper.getNode('svc') as unknown as { receive(m: object): void };
    svc.receive({ topic: 'prop/last', payload: { content: 'hi' } });
    await until(
      () => props.some((m) => (m.payload as { content?: string }).content === 'hi'),
      'the property at the client',
      10000,
      50,
    );
    svc.receive({ topic: 'sig/justSaid', payload: [{ content: 'said' }] });
    await until(() => sigs.length === 1, 'the signal at the client', 10000, 50);
    (helper.getNode('cli') as unknown as { receive(m: object): void }).receive({
      topic: 'rpc/say',
      payload: [{ content: 'abc' }, 1],
    });
    const call = await until(() => calls[0], 'the call at the service', 10000, 50);
    svc.receive({ ...call, payload: 4 });
    await until(() => results[0]?.payload === 4, 'the reply at the client', 10000, 50);
  });

  it('ApiGear on a broker without MQTT 5: the node shows a red status and says why where the broker does', async function () {
    if (features.v5) {
      skipBecause(this, `${brokerName}: the broker speaks MQTT 5`);
    }
    const moduleName = uniqueModule('bc.mod');
    await helper.load(
      nodes as never,
      [
        brokerNode(),
        {
          id: 'cli',
          type: 'apigear-client',
          broker: 'b1',
          moduleYaml: helloYaml(moduleName),
          interface: 'Hello',
          clientId: `bc-cli-${process.pid}`,
          wires: [[], [], []],
        },
      ] as never,
    );
    await until(() => lastStatus('cli')?.fill === 'red', 'a red status', 15000, 50);
    if (features.v5Refusal && /protocol version/i.test(features.v5Refusal)) {
      // The broker refused with a CONNACK reason: the node's log names it.
      await until(
        () =>
          [...callsOf('cli', 'warn'), ...callsOf('cli', 'error')].some((a) => /protocol version/i.test(String(a[0]))),
        'the reason in the log',
        15000,
        50,
      );
    }
  });
});

/**
 * A TCP proxy in front of the embedded broker that rewrites every MQTT 5 SUBACK granting QoS 2 into one granting QoS 1,
 * as a broker without QoS 2 answers (aedes 2.0.0-beta.1 cannot be configured to grant less than asked).
 */
async function qos1Proxy(target: number): Promise<{ port: number; close(): Promise<void> }> {
  const net = await import('net');
  const sockets = new Set<import('net').Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, '127.0.0.1');
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound);
    let pending = Buffer.alloc(0);
    outbound.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        // Fixed header, variable-length remaining length; forward whole packets only.
        let len = 0;
        let mult = 1;
        let i = 1;
        for (; i < pending.length && i <= 4; i++) {
          len += (pending[i]! & 0x7f) * mult;
          mult *= 128;
          if ((pending[i]! & 0x80) === 0) break;
        }
        if (i >= pending.length || pending.length < i + 1 + len) break;
        const packet = Buffer.from(pending.subarray(0, i + 1 + len));
        pending = pending.subarray(i + 1 + len);
        if (packet[0] === 0x90) {
          // SUBACK: packet id (2 bytes), properties (length-prefixed), then one reason code per subscription.
          let p = i + 3;
          let propLen = 0;
          let m = 1;
          for (;;) {
            const b = packet[p++]!;
            propLen += (b & 0x7f) * m;
            m *= 128;
            if ((b & 0x80) === 0) break;
          }
          for (let k = p + propLen; k < packet.length; k++) if (packet[k] === 0x02) packet[k] = 0x01;
        }
        inbound.write(packet);
      }
    });
    const drop = (): void => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', drop).on('close', drop);
    outbound.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as import('net').AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('ApiGear nodes on an MQTT 5 broker that grants QoS 1 for QoS 2', function () {
  this.timeout(30000);
  let broker: EmbeddedBroker | undefined;
  let proxy: { port: number; close(): Promise<void> } | undefined;

  before(async () => {
    broker = new EmbeddedBroker({ port: 0 });
    proxy = await qos1Proxy(await broker.start());
    await helper.startServer();
  });
  after(async () => {
    await helper.unload();
    await helper.stopServer();
    await proxy?.close();
    await broker?.close();
  });

  it('both nodes connect and say in their status that the broker grants a lower QoS', async () => {
    const moduleName = uniqueModule('bc.q1');
    const yaml = helloYaml(moduleName);
    await helper.load(
      nodes as never,
      [
        {
          id: 'b1',
          type: 'sg-broker',
          mode: 'external',
          host: '127.0.0.1',
          port: proxy!.port,
          protocol: '5',
          qos: 1,
          keepalive: 10,
          clean: true,
        },
        {
          id: 'svc',
          type: 'apigear-service',
          broker: 'b1',
          moduleYaml: yaml,
          interface: 'Hello',
          qos: 2,
          wires: [[], []],
        },
        {
          id: 'cli',
          type: 'apigear-client',
          broker: 'b1',
          moduleYaml: yaml,
          interface: 'Hello',
          qos: 2,
          clientId: `q1-cli-${process.pid}`,
          wires: [[], [], []],
        },
      ] as never,
    );
    for (const [id, key] of [
      ['svc', 'apigear-service'],
      ['cli', 'apigear-client'],
    ]) {
      await until(
        () => lastStatus(id)?.text === `${key}.status.qos-limited`,
        `${id}: the QoS-limited status`,
        10000,
        50,
      );
      assert.strictEqual(lastStatus(id)?.fill, 'green');
    }
  });
});
