// The managed MQTT client on its own: store-and-forward across a broker outage (order, bounds, QoS 0), messages in
// flight at a kill sent again, a durable queue that survives a restart, and the state it reports for each failure.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { ManagedMqttClient, QueueOptions } from '../src/mqtt/managed-client';
import type { ConnectionState } from '../src/mqtt/connection-state';
import { FaultBroker, uniqueName } from './lib/mqtt-peer';
import { poller } from './support/until';

const until = poller(15000, 10);

describe('managed MQTT client', function () {
  this.timeout(30000);
  let broker: FaultBroker;
  const clients: ManagedMqttClient[] = [];
  let dir: string;

  beforeEach(async () => {
    broker = new FaultBroker();
    await broker.start();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-mqtt-'));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await broker.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function client(queue: QueueOptions = {}, port = broker.port): ManagedMqttClient {
    const c = new ManagedMqttClient({
      clientId: uniqueName('managed-'),
      endpoint: async () => ({
        url: `mqtt://127.0.0.1:${port}`,
        options: { protocolVersion: 4, clean: true, keepalive: 10 },
      }),
      retry: { initialMs: 100, maxMs: 400 },
      stableMs: 500,
      queue,
    });
    clients.push(c);
    return c;
  }

  const up = (c: ManagedMqttClient): Promise<true> => until(() => c.connected || undefined, 'connected');

  it('queues QoS 1 publishes while the broker is down and sends them in order before new traffic; QoS 0 fails', async () => {
    const c = client();
    const states: ConnectionState[] = [];
    c.on('state', (s) => states.push(s));
    c.start();
    await up(c);
    await broker.kill();
    await until(() => c.state.phase === 'waiting' || undefined, 'waiting to reconnect');
    const queued = [1, 2, 3, 4, 5].map((n) => c.publish('q/order', `${n}`, { qos: 1 }));
    await assert.rejects(c.publish('q/order', 'zero', { qos: 0 }), /QoS 0 messages are not queued/);
    assert.strictEqual(c.backlog, 5);
    await broker.start();
    await up(c);
    const after = c.publish('q/order', '6', { qos: 1 });
    await Promise.all([...queued, after]);
    // aedes acknowledges a QoS 1 publish before it routes it (and tells us): wait for the routing.
    await until(() => broker.received('q/order').length >= 6 || undefined, 'all six at the broker');
    assert.deepStrictEqual(broker.received('q/order'), ['1', '2', '3', '4', '5', '6']);
    assert.ok(
      states.some((s) => s.phase === 'waiting' && (s.reason === 'lost' || s.reason === 'unreachable')),
      JSON.stringify(states),
    );
  });

  it('a full queue drops the oldest with an error each and one counted warning per burst', async () => {
    const c = client({ maxEntries: 3 });
    const drops: number[] = [];
    c.on('dropped', (n) => drops.push(n));
    c.start();
    await up(c);
    await broker.kill();
    await until(() => !c.connected || undefined, 'down');
    const results = [1, 2, 3, 4, 5, 6].map((n) =>
      c.publish('q/full', `${n}`, { qos: 1 }).then(
        () => 'ok',
        (err: Error) => err.message,
      ),
    );
    await until(() => drops.length === 1 || undefined, 'the first drop reported at once');
    await broker.start();
    await up(c);
    const settled = await Promise.all(results);
    assert.deepStrictEqual(settled.slice(3), ['ok', 'ok', 'ok']);
    for (const text of settled.slice(0, 3)) assert.match(text, /offline queue full/);
    await until(() => broker.received('q/full').length >= 3 || undefined, 'the three kept at the broker');
    assert.deepStrictEqual(broker.received('q/full'), ['4', '5', '6']);
    assert.strictEqual(c.droppedCount, 3);
    await c.close();
    assert.deepStrictEqual(drops, [1, 2], 'the first drop at once, the rest of the burst as one counted line');
  });

  it('messages in flight (sent, never acknowledged) when the broker dies are sent again after the restart', async () => {
    const c = client();
    c.start();
    await up(c);
    broker.holdPublishes = true;
    const inFlight = [1, 2, 3].map((n) => c.publish('q/flight', `${n}`, { qos: 1 }));
    await until(() => broker.held >= 3 || undefined, 'three publishes held without PUBACK');
    await broker.kill();
    broker.holdPublishes = false;
    await broker.start();
    await Promise.all(inFlight);
    await until(() => broker.received('q/flight').length >= 3 || undefined, 'the three at the broker');
    assert.deepStrictEqual(broker.received('q/flight'), ['1', '2', '3']);
  });

  it('a durable queue is done once on disk and survives a restart of the process', async () => {
    const file = path.join(dir, 'busbar', 'mqtt-test.log');
    await broker.kill();
    const first = client({ file });
    first.start();
    await until(() => first.state.phase === 'waiting' || undefined, 'broker unreachable');
    await Promise.all(
      ['a', 'b', Buffer.from([0xff, 0x00])].map((p) => first.publish('q/durable', p, { qos: 1, retain: false })),
    );
    assert.ok(fs.statSync(file).size > 0);
    await first.close();
    await broker.start();
    const second = client({ file });
    second.start();
    await until(() => broker.received('q/durable').length === 3 || undefined, 'the queued messages after the restart');
    const bytes = broker.log.publishes.filter((p) => p.topic === 'q/durable').map((p) => p.payload.toString('hex'));
    assert.deepStrictEqual(bytes, ['61', '62', 'ff00']);
  });

  it('names a CONNACK refusal and keeps retrying it', async () => {
    broker.credentials = { user: 'u', password: 'p' };
    const c = client();
    const failures: ConnectionState[] = [];
    c.on('failure', (s) => failures.push(s));
    c.start();
    await until(() => broker.log.authAttempts >= 3 || undefined, 'three attempts');
    await until(() => c.state.phase === 'waiting' || undefined, 'waiting for the next attempt');
    assert.strictEqual(c.state.reason, 'refused-credentials');
    assert.strictEqual(c.state.code, 4);
    assert.strictEqual(failures.length, 1, 'said once while the reason stays the same');
  });
});
