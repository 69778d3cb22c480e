// msb-config in a real Node-RED runtime (node-red-node-test-helper) with a user directory: the durable event cache
// across a stop and start of Node-RED (and a power cut right after done()), a store file cut mid-record, hostile
// frames, and a URL without a scheme.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { MsbEmulator } from '../src/msb';
import { poller } from './support/until';

const nodes = [
  require('../nodes/msb/msb-config'),
  require('../nodes/msb/msb-event-out'),
  require('../nodes/msb/msb-function-in'),
];

helper.init(require.resolve('node-red'));

const A = 'de5ab1e0-0000-4000-8000-0000000000a1';
const until = poller(15000, 10);

type Flow = Array<{ id: string; type: string; [key: string]: unknown }>;
type Spy = { getCalls(): Array<{ thisValue: unknown; args: unknown[] }> };
type HelperNode = {
  on(event: string, fn: (msg: Record<string, unknown>) => void): void;
  receive(msg: Record<string, unknown>): void;
  warn: Spy;
  status: Spy;
};

function node(id: string): HelperNode {
  const n = helper.getNode(id) as unknown as HelperNode | null;
  if (!n) throw new Error(`no node ${id}`);
  return n;
}

/** What a node said with node.warn (the helper spies on every node's warn). */
function warnings(id: string): string[] {
  const n = node(id);
  return n.warn
    .getCalls()
    .filter((c) => c.thisValue === n)
    .map((c) => String(c.args[0]));
}

function lastStatus(id: string): { fill?: string; text?: string } | undefined {
  const n = node(id);
  return n.status
    .getCalls()
    .filter((c) => c.thisValue === n)
    .at(-1)?.args[0] as { fill?: string; text?: string } | undefined;
}

function arrived(emulator: MsbEmulator): unknown[] {
  return emulator.traffic
    .filter((r) => r.direction === 'in' && r.message.startsWith('E '))
    .map((r) => (JSON.parse(r.message.slice(2)) as { dataObject: unknown }).dataObject);
}

describe('msb durable event cache and hostile input in Node-RED', function () {
  this.timeout(40000);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-restart-'));
  const store = path.join(userDir, 'busbar', `msb-${A}.log`);
  let emulator: MsbEmulator;
  let url: string;

  before(() => {
    helper.settings({ userDir });
    return helper.startServer();
  });
  after(() => {
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
    return helper.stopServer();
  });
  beforeEach(async () => {
    fs.rmSync(path.join(userDir, 'busbar'), { recursive: true, force: true });
    emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 100000 });
    ({ url } = await emulator.start({ port: 0 }));
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.close();
  });

  const flow = (extra: Record<string, unknown> = {}): Flow => [
    {
      id: 'cfg',
      type: 'msb-config',
      name: 'durable',
      uuid: A,
      serviceClass: 'SmartObject',
      url,
      sockJs: true,
      autoReconnect: true,
      reconnectInterval: 3,
      eventCacheSize: 1000,
      parameters: [{ name: 'limit', type: 'double', value: 1 }],
      ...extra,
    },
    { id: 'ev', type: 'msb-event-out', service: 'cfg', eventId: 'N', dataType: 'int32', priority: 'LOW', cached: true },
    {
      id: 'fn',
      type: 'msb-function-in',
      service: 'cfg',
      functionId: 'F',
      dataType: 'string',
      responseEvents: [],
      wires: [['calls']],
    },
    { id: 'calls', type: 'helper' },
    { id: 'whenDone', type: 'complete', scope: ['ev'], uncaught: false, wires: [['completed']] },
    { id: 'completed', type: 'helper' },
    { id: 'catcher', type: 'catch', scope: ['ev'], uncaught: false, wires: [['errors']] },
    { id: 'errors', type: 'helper' },
  ];

  /** Loads the flow with the MSB holding registrations, hands it `count` cached events and waits for every done(). */
  async function cacheWhileUnregistered(count: number): Promise<void> {
    emulator.holdRegistrations(true);
    await helper.load(nodes, flow());
    let done = 0;
    const errors: string[] = [];
    node('completed').on('input', () => done++);
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    for (let i = 0; i < count; i++) node('ev').receive({ payload: i });
    await until(() => done + errors.length === count, 'every message done');
    assert.deepStrictEqual(errors, []);
  }

  it('keeps cached events across a stop and start of Node-RED on the same user directory, even after a power cut', async () => {
    await cacheWhileUnregistered(200);
    // done() came after the write: what is on disk now is what a power cut at this instant would leave.
    const atDone = fs.readFileSync(store);
    await helper.unload();
    fs.writeFileSync(store, atDone);
    emulator.holdRegistrations(false);
    await helper.load(nodes, flow());
    await until(() => arrived(emulator).length === 200, '200 events replayed');
    assert.deepStrictEqual(
      arrived(emulator),
      Array.from({ length: 200 }, (_, i) => i),
      'in order, none twice',
    );
    // Acknowledged events leave the store: it is emptied once everything is delivered.
    await until(() => fs.statSync(store).size === 0, 'store emptied');
    const state = await helper.request().get('/msb-config/cfg/state').expect(200);
    assert.deepStrictEqual(state.body.counts, { cached: 0, dropped: 0, unacknowledged: 0, rejected: 0 });
    assert.strictEqual(state.body.durableCache, true);
  });

  it('a store file cut mid-record: the torn record is skipped with a warning, the rest is replayed', async () => {
    await cacheWhileUnregistered(50);
    await helper.unload();
    fs.truncateSync(store, fs.statSync(store).size - 5);
    emulator.holdRegistrations(false);
    await helper.load(nodes, flow());
    await until(() => arrived(emulator).length === 49, '49 events replayed');
    assert.deepStrictEqual(
      arrived(emulator),
      Array.from({ length: 49 }, (_, i) => i),
    );
    assert.ok(
      warnings('cfg').some((w) => /torn or damaged record/.test(w)),
      warnings('cfg').join('\n'),
    );
  });

  it('K and C frames with prototype names and 10,000-deep nesting: runtime alive, Object.prototype untouched, each warned', async () => {
    await helper.load(nodes, flow());
    await until(() => emulator.services().has(A), 'registration');
    const calls: unknown[] = [];
    node('calls').on('input', (msg) => calls.push(msg.payload));
    const hostile = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const deep = '['.repeat(10000) + ']'.repeat(10000);
    for (const name of hostile) {
      emulator.sendStatus(A, `K {"uuid":"${A}","params":{"${name}":{"value":"polluted"}}}`);
      emulator.callFunction(A, name, { dataObject: 'x' });
    }
    emulator.sendStatus(A, `K {"uuid":"${A}","params":{"limit":${deep}}}`);
    emulator.sendStatus(A, `C {"uuid":"${A}","functionId":"F","functionParameters":{"dataObject":${deep}}}`);
    // A call of the real function with a __proto__ key inside its parameters reaches the flow as plain data.
    emulator.sendStatus(
      A,
      `C {"uuid":"${A}","functionId":"F","functionParameters":{"dataObject":"ok","__proto__":{"value":"polluted"}}}`,
    );
    await until(() => calls.length === 1, 'the legitimate call');
    const state = await helper.request().get('/msb-config/cfg/state').expect(200);
    assert.strictEqual(state.body.counts.rejected, 6, 'four unknown parameters, two too deep');
    assert.strictEqual(({} as Record<string, unknown>).value, undefined, 'Object.prototype untouched');
    assert.strictEqual(Object.prototype.hasOwnProperty.call(Object.prototype, 'value'), false);
    const said = warnings('cfg').join('\n');
    assert.match(said, /unknown configuration parameter "__proto__"/);
    assert.match(said, /nested deeper than 64 levels/);
    assert.match(said, /msb-config\.warn\.unknownFunction|unknown function/);
    assert.deepStrictEqual(state.body.parameters, { limit: 1 });
    assert.strictEqual(calls[0], 'ok');
    node('ev').receive({ payload: 7 });
    await until(() => arrived(emulator).includes(7), 'still publishing');
  });

  it('a stalled MSB: "no answer from the MSB, reconnecting" on every node; the cached event is held, then delivered', async () => {
    await helper.load(nodes, [
      ...flow({ pingInterval: 0.2 }),
      {
        id: 'plain',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'N',
        dataType: 'int32',
        priority: 'LOW',
        cached: false,
      },
    ]);
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered');
    let done = 0;
    const errors: string[] = [];
    node('completed').on('input', () => done++);
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    emulator.stall(true);
    node('ev').receive({ payload: 1 });
    // With a cached event the counts follow the reason (translated at runtime); the reason comes first.
    const noAnswer = (id: string): boolean =>
      /^(msb\.status\.noAnswer|no answer from the MSB, reconnecting)/.test(lastStatus(id)?.text ?? '');
    await until(() => noAnswer('ev') && noAnswer('plain'), 'no answer on every node').catch((err) => {
      throw new Error(`${(err as Error).message}: ${JSON.stringify(lastStatus('ev'))}`);
    });
    // Held in the (durable) cache once the link was cut: done() without error, and still there to be sent.
    await until(() => done === 1, 'the cached event is held');
    emulator.stall(false);
    await until(() => arrived(emulator).includes(1), 'delivered after the stall');
    assert.deepStrictEqual(errors, []);
  });

  it('an unreachable MSB is warned once, not once per retry', async () => {
    await helper.load(nodes, flow({ url: 'ws://127.0.0.1:1' }));
    const unreachable = (): number =>
      node('ev')
        .status.getCalls()
        .filter(
          (c) =>
            c.thisValue === node('ev') &&
            /unreachable|not reachable/.test(String((c.args[0] as { text?: string }).text)),
        ).length;
    await until(() => unreachable() >= 2, 'two failed attempts');
    assert.strictEqual(
      warnings('cfg').filter((w) => /127\.0\.0\.1:1|warn\.disconnected/.test(w)).length,
      1,
      warnings('cfg').join('\n'),
    );
  });

  it('an URL without a scheme is named on every node of the service, and events fail with it', async () => {
    const f = flow({ url: '127.0.0.1:8085' });
    await helper.load(nodes, f);
    await until(
      () => lastStatus('ev')?.text === 'msb.status.badUrl' && lastStatus('fn')?.text === 'msb.status.badUrl',
      'status on every node',
    );
    const errors: string[] = [];
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    node('ev').receive({ payload: 1 });
    await until(() => errors.length === 1, 'the error');
    assert.match(errors[0], /msb-config\.error\.badUrl/);
  });
});
