// sg-broker: embedded broker lifecycle (start on first use, stop on last removal, port free again at once),
// endpoint resolution for external brokers, and that an MQTT v5 client (ApiGear) can use the embedded broker.
import assert from 'assert';
import net from 'net';
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import { EmbeddedBroker } from '../src/mqtt/embedded-broker';
import { resolveEndpoint } from '../src/mqtt/endpoint';
import type { SgBrokerNode } from '../nodes/lib/sg-broker-api';
import { load, sgBroker, sgNodes } from './lib/nodes';

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

describe('resolveEndpoint', () => {
  it('maps protocol versions to the wire protocol id and level', () => {
    const base = { host: 'gw.local', port: 1883, keepalive: 10, clean: true };
    assert.deepStrictEqual(
      [resolveEndpoint({ ...base, protocol: '3.1' }), resolveEndpoint({ ...base, protocol: '3.1.1' }), resolveEndpoint({ ...base, protocol: '5' })].map(
        (e) => [e.options.protocolId, e.options.protocolVersion],
      ),
      [['MQIsdp', 3], ['MQTT', 4], ['MQTT', 5]],
    );
  });

  it('uses mqtts with TLS 1.2 or later and verifies the server by default', () => {
    const e = resolveEndpoint({ host: 'gw.local', port: 8883, protocol: '3.1.1', keepalive: 10, clean: false, username: 'u', password: 'p', tls: { ca: 'CA' } });
    assert.strictEqual(e.url, 'mqtts://gw.local:8883');
    assert.strictEqual((e.options as { minVersion?: string }).minVersion, 'TLSv1.2');
    assert.strictEqual(e.options.rejectUnauthorized, true);
    assert.strictEqual(e.options.ca, 'CA');
    assert.strictEqual(e.options.clean, false);
    assert.strictEqual(e.options.username, 'u');
    assert.strictEqual(e.options.password, 'p');
  });

  it('rejects a host given as URL and a port out of range, naming the field', () => {
    assert.throws(() => resolveEndpoint({ host: 'mqtt://x', port: 1883, protocol: '3.1.1', keepalive: 10, clean: true }), /host/);
    assert.throws(() => resolveEndpoint({ host: 'x', port: 70000, protocol: '3.1.1', keepalive: 10, clean: true }), /port/);
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
    const v5 = await mqtt.connectAsync(url, { ...options, protocolId: 'MQTT', protocolVersion: 5, clientId: 'apigear-test', reconnectPeriod: 0 });
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
    const r1 = helper.getNode('r1') as unknown as { warn: { args: unknown[][] }; status: { args: Array<[{ fill?: string }]> } };
    const until = async (cond: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(cond(), what);
    };
    const b1 = helper.getNode('b1') as unknown as { warn: { args: unknown[][] } };
    await until(() => b1.warn.args.some((a) => /EADDRINUSE/.test(String(a[0]))), 'a warning naming EADDRINUSE');
    assert.strictEqual(r1.status.args.at(-1)?.[0].fill, 'red');
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
    await until(() => r1.status.args.at(-1)?.[0].fill === 'green', 'connected after the port was freed');
  });

  it('resolves an external broker with credentials and protocol 3.1', async () => {
    await load(
      sgBroker,
      [{ id: 'b2', type: 'sg-broker', mode: 'external', host: 'mosquitto.local', port: 1999, protocol: '3.1', keepalive: 30, qos: 0, clean: false }],
      { b2: { user: 'alice', password: 'secret' } },
    );
    const broker = helper.getNode('b2') as unknown as SgBrokerNode;
    const { url, options } = await broker.endpoint(user);
    assert.strictEqual(url, 'mqtt://mosquitto.local:1999');
    assert.deepStrictEqual(
      [options.protocolId, options.protocolVersion, options.keepalive, options.clean, options.username, options.password, broker.qos],
      ['MQIsdp', 3, 30, false, 'alice', 'secret', 0],
    );
    await broker.release(user, true);
  });
});
