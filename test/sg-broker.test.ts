// sg-broker: embedded broker lifecycle (start on first use, stop on last removal, port free again at once),
// endpoint resolution for external brokers, and that an MQTT v5 client (ApiGear) can use the embedded broker.
import assert from 'assert';
import net from 'net';
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import { EmbeddedBroker, PortInUseError, SharedEmbeddedBroker } from '../src/mqtt/embedded-broker';
import { resolveEndpoint } from '../src/mqtt/endpoint';
import type { SgBrokerNode } from '../nodes/sg/sg-broker-api';
import { load, sgBroker, sgNodes } from './lib/nodes';
import { poller } from './support/until';

const waitFor = poller(10000, 20);

helper.init(require.resolve('node-red'));

function refused(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('embedded MQTT broker', () => {
  it('frees its port on close even with clients connected, so a restart on the same port works', async () => {
    const first = new EmbeddedBroker({ port: 0 });
    const port = await first.start();
    const client = await mqtt.connectAsync(first.url, { reconnectPeriod: 0 });
    await first.close();
    assert.strictEqual(await refused(`mqtt://127.0.0.1:${port}`), true);
    const second = new EmbeddedBroker({ port });
    assert.strictEqual(await second.start(), port);
    await second.close();
    await client.endAsync(true);
  });

  it('accepts MQTT 3.1 (MQIsdp) with a client id longer than 23 characters, as sgframework sends', async () => {
    const broker = new EmbeddedBroker({ port: 0 });
    await broker.start();
    try {
      const client = await mqtt.connectAsync(broker.url, {
        protocolId: 'MQIsdp',
        protocolVersion: 3,
        clientId: 'a_rather_long_resource_name_for_testing-18934',
        reconnectPeriod: 0,
      });
      await client.endAsync();
    } finally {
      await broker.close();
    }
  });
});

async function freePort(): Promise<number> {
  const probe = new EmbeddedBroker({ port: 0 });
  const port = await probe.start();
  await probe.close();
  return port;
}

describe('shared embedded MQTT broker', () => {
  it('gives every holder of one port the same broker and stops it with the last holder', async () => {
    const port = await freePort();
    const a = new SharedEmbeddedBroker({ port });
    const b = new SharedEmbeddedBroker({ port });
    assert.deepStrictEqual(await Promise.all([a.start(), b.start()]), [port, port]);
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 2);
    const client = await mqtt.connectAsync(a.url, { reconnectPeriod: 0 });
    await b.close();
    await b.close(); // a second close does not take a's hold away
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 1);
    assert.strictEqual(client.connected, true);
    await client.endAsync();
    // Taken again while the last holder is still letting go: the new broker waits for the old one to free the port.
    const released = a.close();
    const c = new SharedEmbeddedBroker({ port });
    assert.strictEqual(await c.start(), port);
    await released;
    await c.close();
    assert.strictEqual(await refused(`mqtt://127.0.0.1:${port}`), true);
  });

  it('names the port when another program holds it, and starts once it is free', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const shared = new SharedEmbeddedBroker({ port });
    await assert.rejects(shared.start(), (err: unknown) => {
      assert.ok(err instanceof PortInUseError);
      assert.strictEqual(err.port, port);
      assert.match(err.message, new RegExp(`port ${port} .*in use by another program`));
      return true;
    });
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    assert.strictEqual(await shared.start(), port);
    await shared.close();
  });
});

describe('resolveEndpoint', () => {
  it('maps protocol versions to the wire protocol id and level', () => {
    const base = { host: 'gw.local', port: 1883, keepalive: 10, clean: true };
    assert.deepStrictEqual(
      [
        resolveEndpoint({ ...base, protocol: '3.1' }),
        resolveEndpoint({ ...base, protocol: '3.1.1' }),
        resolveEndpoint({ ...base, protocol: '5' }),
      ].map((e) => [e.options.protocolId, e.options.protocolVersion]),
      [
        ['MQIsdp', 3],
        ['MQTT', 4],
        ['MQTT', 5],
      ],
    );
  });

  it('uses mqtts with TLS 1.2 or later and verifies the server by default', () => {
    const e = resolveEndpoint({
      host: 'gw.local',
      port: 8883,
      protocol: '3.1.1',
      keepalive: 10,
      clean: false,
      username: 'u',
      password: 'p',
      tls: { ca: 'CA' },
    });
    assert.strictEqual(e.url, 'mqtts://gw.local:8883');
    assert.strictEqual((e.options as { minVersion?: string }).minVersion, 'TLSv1.2');
    assert.strictEqual(e.options.rejectUnauthorized, true);
    assert.strictEqual(e.options.ca, 'CA');
    assert.strictEqual(e.options.clean, false);
    assert.strictEqual(e.options.username, 'u');
    assert.strictEqual(e.options.password, 'p');
  });

  it('rejects a host given as URL and a port out of range, naming the field', () => {
    assert.throws(
      () => resolveEndpoint({ host: 'mqtt://x', port: 1883, protocol: '3.1.1', keepalive: 10, clean: true }),
      /host/,
    );
    assert.throws(
      () => resolveEndpoint({ host: 'x', port: 70000, protocol: '3.1.1', keepalive: 10, clean: true }),
      /port/,
    );
  });
});

describe('sg-broker node', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  const user = { id: 'user-1', status: () => undefined };

  it('starts the embedded broker for its first user and stops it when the last user is removed', async () => {
    await load(sgBroker, [{ id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: 0 }]);
    const broker = helper.getNode('b1') as unknown as SgBrokerNode;
    const { url, options } = await broker.endpoint(user);
    assert.match(url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
    assert.strictEqual(options.protocolVersion, 4);
    assert.strictEqual(options.keepalive, 10);
    // What an ApiGear node does: same endpoint, MQTT v5.
    const v5 = await mqtt.connectAsync(url, {
      ...options,
      protocolId: 'MQTT',
      protocolVersion: 5,
      clientId: 'apigear-test',
      reconnectPeriod: 0,
    });
    await v5.endAsync();
    await broker.release(user, false);
    assert.strictEqual(await refused(url), false, 'a restarted user keeps the broker');
    await broker.release(user, true);
    assert.strictEqual(await refused(url), true, 'the last removed user stops it');
  });

  it('closes the embedded broker with the config node, so a redeploy can bind the same port', async () => {
    const probe = new EmbeddedBroker({ port: 0 });
    const port = await probe.start();
    await probe.close();
    const flow = [{ id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: port }];
    await load(sgBroker, flow);
    const { url } = await (helper.getNode('b1') as unknown as SgBrokerNode).endpoint(user);
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    await helper.unload();
    await load(sgBroker, flow);
    const again = await (helper.getNode('b1') as unknown as SgBrokerNode).endpoint(user);
    assert.strictEqual(again.url, url);
    await client.endAsync(true);
  });

  it('reports an embedded port that is taken and connects once it is free', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    await load(sgNodes, [
      { id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: port },
      { id: 'r1', type: 'sg-resource', broker: 'b1', resource: 'busy', commands: [], data: [], wires: [[]] },
    ]);
    const r1 = helper.getNode('r1') as unknown as { status: { args: Array<[{ fill?: string; text?: string }]> } };
    const b1 = helper.getNode('b1') as unknown as { warn: { args: unknown[][] } };
    const inUse = `port ${port} is in use by another program`;
    // The failure is logged once by the broker node; the resource's status turns red with the reason.
    await waitFor(() => b1.warn.args.some((a) => String(a[0]).includes(inUse)), 'a warning naming the port');
    await waitFor(() => r1.status.args.at(-1)?.[0].fill === 'red', 'a red status');
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await waitFor(() => r1.status.args.at(-1)?.[0].fill === 'green', 'connected after the port was freed');
  });

  it('shares one embedded broker between sg-brokers on the same port; removing one leaves the other working', async () => {
    const port = await freePort();
    const flow = [
      { id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: port },
      { id: 'b2', type: 'sg-broker', mode: 'embedded', embeddedPort: port },
      { id: 'r1', type: 'sg-resource', broker: 'b1', resource: 'shared_one', commands: [], data: [], wires: [[]] },
      { id: 'r2', type: 'sg-resource', broker: 'b2', resource: 'shared_two', commands: [], data: [], wires: [[]] },
    ];
    await load(sgNodes, flow);
    type Watched = { status: { args: Array<[{ fill?: string }]> } };
    const green = (id: string): boolean =>
      (helper.getNode(id) as unknown as Watched).status.args.at(-1)?.[0].fill === 'green';
    await waitFor(() => green('r1') && green('r2'), 'both resources connected');
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 2, 'one broker, held by both sg-brokers');
    // Both resources are on the same broker: a subscriber there sees the presence of each.
    const seen = new Set<string>();
    const watcher = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    watcher.on('message', (topic) => seen.add(topic));
    await watcher.subscribeAsync('resourceavailable/+/presence');
    await waitFor(
      () => seen.has('resourceavailable/shared_one/presence') && seen.has('resourceavailable/shared_two/presence'),
      'both presences',
    );

    // Deploy without b2 and its resource (a "modified nodes" deploy, as the editor does): b1 keeps the broker.
    await helper.setFlows(
      flow.filter((n) => n.id === 'b1' || n.id === 'r1') as Parameters<typeof helper.setFlows>[0],
      'nodes',
    );
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 1);
    assert.strictEqual(watcher.connected, true, 'the broker kept running for b1');
    assert.strictEqual(green('r1'), true);
    const fresh = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    await fresh.endAsync();
    await watcher.endAsync(true);
    await helper.unload();
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 0);
    assert.strictEqual(await refused(`mqtt://127.0.0.1:${port}`), true, 'stopped with its last user');
  });

  it('resolves an external broker with credentials and protocol 3.1', async () => {
    await load(
      sgBroker,
      [
        {
          id: 'b2',
          type: 'sg-broker',
          mode: 'external',
          host: 'mosquitto.local',
          port: 1999,
          protocol: '3.1',
          keepalive: 30,
          qos: 0,
          clean: false,
        },
      ],
      { b2: { user: 'alice', password: 'secret' } },
    );
    const broker = helper.getNode('b2') as unknown as SgBrokerNode;
    const { url, options } = await broker.endpoint(user);
    assert.strictEqual(url, 'mqtt://mosquitto.local:1999');
    assert.deepStrictEqual(
      [
        options.protocolId,
        options.protocolVersion,
        options.keepalive,
        options.clean,
        options.username,
        options.password,
        broker.qos,
      ],
      ['MQIsdp', 3, 30, false, 'alice', 'secret', 0],
    );
    await broker.release(user, true);
  });
});
