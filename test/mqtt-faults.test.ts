// Fault injection through the Node-RED nodes on one managed MQTT client: the broker killed and restarted under load,
// refused credentials fixed at the broker, a dangling TLS reference, two broker configs with one name, the will on the
// first CONNECT whatever the node order, and Buffer payloads. Every broker here is started in-process on a free port.
import assert from 'assert';
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import fs from 'fs';
import os from 'os';
import path from 'path';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import { FaultBroker, uniqueName } from './lib/mqtt-peer';
import { helloYaml } from './support/hello';
import { uniqueModule } from './lib/mqtt-peer';
import { callsOf, lastStatus } from './support/node-calls';
import { poller } from './support/until';

helper.init(require.resolve('node-red'));

const nodes = [
  require('../nodes/sg/sg-broker'),
  require('../nodes/sg/sg-resource'),
  require('../nodes/sg/sg-app'),
  require('../nodes/apigear/apigear-service'),
  require('../nodes/apigear/apigear-client'),
  require('@node-red/nodes/core/common/24-complete.js'),
  require('@node-red/nodes/core/common/25-catch.js'),
] as TestNodeInitializer[];

const until = poller(20000, 20);

interface Msg {
  topic?: string;
  payload?: unknown;
  seq?: string;
  error?: { message?: string };
  [key: string]: unknown;
}

interface TestNode {
  receive(msg: Msg): void;
  on(event: 'input', fn: (msg: Msg) => void): void;
}

function node(id: string): TestNode {
  return helper.getNode(id) as unknown as TestNode;
}

function warnings(id: string): string[] {
  return callsOf(id, 'warn').map((a) => String(a[0]));
}

function brokerDef(id: string, port: number, extra: object = {}): Record<string, unknown> {
  // Short backoff so the tests recover quickly; the policy is the same as with the defaults (1 s .. 60 s).
  return {
    id,
    type: 'sg-broker',
    mode: 'external',
    host: '127.0.0.1',
    port,
    protocol: '3.1.1',
    reconnectMin: 0.2,
    reconnectMax: 1,
    stableAfter: 1,
    ...extra,
  };
}

function load(flow: object[], credentials?: object): Promise<void> {
  const onTab = flow.map((n) => ((n as { type: string }).type === 'sg-broker' ? n : { z: 'f1', ...n }));
  return helper.load(
    nodes as never,
    [{ id: 'f1', type: 'tab', label: 'faults' }, ...onTab] as never,
    credentials as never,
  ) as unknown as Promise<void>;
}

const green = (id: string): Promise<true> =>
  until(() => lastStatus(id)?.fill === 'green' || undefined, `${id} connected`);
const red = (id: string): Promise<true> =>
  until(() => lastStatus(id)?.fill === 'red' || undefined, `${id} showing the failure`);

describe('MQTT faults through the sg and ApiGear nodes', function () {
  this.timeout(60000);
  let broker: FaultBroker;

  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    broker = new FaultBroker();
    await broker.start();
  });
  afterEach(async () => {
    await helper.unload();
    await broker.kill();
  });

  it('broker killed and restarted under ~100 msg/s per node: every message arrives or fails with an error, none silently lost', async () => {
    const res = uniqueName('res');
    const app = uniqueName('app');
    const mod = uniqueModule();
    const P = `${mod}/Hello`;
    const apigear = { broker: 'b1', source: 'yaml', moduleYaml: helloYaml(mod), interface: 'Hello' };
    await load([
      brokerDef('b1', broker.port),
      {
        id: 'res',
        type: 'sg-resource',
        broker: 'b1',
        resource: res,
        commands: [],
        data: [{ signal: 'n' }],
        wires: [[]],
      },
      { id: 'app', type: 'sg-app', broker: 'b1', app, subscriptions: [], wires: [[]] },
      { id: 'svc', type: 'apigear-service', ...apigear, wires: [[], []] },
      { id: 'cli', type: 'apigear-client', ...apigear, timeout: 5, wires: [[], [], []] },
      { id: 'done', type: 'complete', scope: ['res', 'app', 'svc', 'cli'], uncaught: false, wires: [['completed']] },
      { id: 'fail', type: 'catch', scope: ['res', 'app', 'svc', 'cli'], uncaught: false, wires: [['caught']] },
      { id: 'completed', type: 'helper' },
      { id: 'caught', type: 'helper' },
    ]);
    await Promise.all(['res', 'app', 'svc', 'cli'].map(green));

    const sent = new Map<string, { topic: string; payload: string }>();
    const delivered = new Set<string>();
    const failed = new Map<string, string>();
    node('completed').on('input', (msg) => delivered.add(String(msg.seq)));
    node('caught').on('input', (msg) => failed.set(String(msg.seq), String(msg.error?.message)));
    const streams: Array<[string, (i: number) => Msg, string, (i: number) => string]> = [
      ['res', (i) => ({ topic: 'n', payload: i }), `data/${res}/n`, (i) => `${i}`],
      ['app', (i) => ({ topic: 'target/cmd', payload: i }), 'command/target/cmd', (i) => `${i}`],
      [
        'svc',
        (i) => ({ topic: 'sig/justSaid', payload: [{ content: `${i}` }] }),
        `${P}/sig/justSaid`,
        (i) => JSON.stringify([{ content: `${i}` }]),
      ],
      [
        'cli',
        (i) => ({ topic: 'set/last', payload: { content: `${i}` } }),
        `${P}/set/last`,
        (i) => JSON.stringify({ content: `${i}` }),
      ],
    ];
    let i = 0;
    const traffic = setInterval(() => {
      i++;
      for (const [id, msgOf, topic, wire] of streams) {
        const seq = `${id}:${i}`;
        sent.set(seq, { topic, payload: wire(i) });
        node(id).receive({ ...msgOf(i), seq });
      }
    }, 10);
    try {
      await until(() => i >= 100 || undefined, '1 s of traffic');
      await broker.kill();
      const killedAt = Date.now();
      await Promise.all(['res', 'app', 'svc', 'cli'].map(red));
      // The broker stays down for 4 s (as in the measurement) while traffic goes on.
      await until(() => Date.now() - killedAt >= 4000 || undefined, 'the outage');
      await broker.start();
      await Promise.all(['res', 'app', 'svc', 'cli'].map(green));
      const backAt = i;
      await until(() => i >= backAt + 100 || undefined, '1 s of traffic after the restart');
    } finally {
      clearInterval(traffic);
    }
    await until(() => delivered.size + failed.size >= sent.size || undefined, `every message done (${sent.size} sent)`);

    const atBroker = new Map<string, number>();
    for (const p of broker.log.publishes) {
      const key = `${p.topic}\u0000${p.payload.toString('utf8')}`;
      atBroker.set(key, (atBroker.get(key) ?? 0) + 1);
    }
    let silent = 0;
    let duplicates = 0;
    for (const [seq, { topic, payload }] of sent) {
      const seen = atBroker.get(`${topic}\u0000${payload}`) ?? 0;
      if (seen > 1) duplicates += seen - 1;
      if (!failed.has(seq) && (!delivered.has(seq) || seen === 0)) silent++;
    }
    const figures = `4 s outage: ${sent.size} sent, ${sent.size - failed.size} delivered, ${failed.size} failed with an error, ${silent} silently lost, ${duplicates} duplicates (QoS 1 resend after a lost PUBACK)`;
    console.log(`      ${figures}`);
    assert.strictEqual(silent, 0, figures);
    assert.strictEqual(delivered.size + failed.size, sent.size, figures);
    // Queued while down (QoS 1, default bound of 10000): nothing needed to fail.
    assert.strictEqual(failed.size, 0, `${figures}: ${[...failed.values()].slice(0, 3).join('; ')}`);
  });

  it('refused credentials are retried with backoff and recover within one step once the broker accepts them, no redeploy', async () => {
    broker.credentials = { user: 'gw', password: 'changed-at-the-broker' };
    const name = uniqueName('auth');
    await load(
      [
        brokerDef('b1', broker.port),
        { id: 'res', type: 'sg-resource', broker: 'b1', resource: name, commands: [], data: [], wires: [[]] },
      ],
      {
        b1: { user: 'gw', password: 'secret' },
      },
    );
    await until(() => broker.log.authAttempts >= 4 || undefined, 'four refused attempts');
    assert.strictEqual(lastStatus('res')?.fill, 'red');
    const refusals = warnings('b1').filter((w) => /refused-credentials/.test(w));
    assert.strictEqual(refusals.length, 1, `one warning per reason, not per attempt: ${warnings('b1').join(' | ')}`);
    broker.credentials = { user: 'gw', password: 'secret' };
    const attemptsAtFix = broker.log.authAttempts;
    const fixedAt = Date.now();
    await green('res');
    console.log(
      `      ${attemptsAtFix} refused attempts, 1 warning; connected by the next attempt, ${Date.now() - fixedAt} ms after the fix (backoff 0.2 s .. 1 s)`,
    );
    assert.strictEqual(broker.log.authAttempts, attemptsAtFix + 1, 'the next attempt after the fix connected');
    await until(
      () => broker.received(`resourceavailable/${name}/presence`).includes('True') || undefined,
      'presence True',
    );
  });

  it('a tls reference that does not resolve is an error: red status, no connection, never plain MQTT', async () => {
    const name = uniqueName('tls');
    await load([
      brokerDef('b1', broker.port, { tls: 'no-such-tls-node' }),
      { id: 'res', type: 'sg-resource', broker: 'b1', resource: name, commands: [], data: [], wires: [[]] },
    ]);
    await until(
      () => warnings('b1').some((w) => /tls-missing/.test(w)) || undefined,
      'the warning naming the missing TLS node',
    );
    assert.deepStrictEqual(lastStatus('res'), { fill: 'red', shape: 'dot', text: 'sg-broker.state.failed' });
    assert.strictEqual(broker.log.connects.length, 0, 'no CONNECT reached the broker');
    assert.strictEqual(broker.log.authAttempts, 0);
  });

  it('two sg-broker configs declaring the same resource name both stay connected with distinct client ids', async () => {
    const name = uniqueName('dup');
    await load([
      brokerDef('b1', broker.port),
      brokerDef('b2', broker.port),
      {
        id: 'r1',
        type: 'sg-resource',
        broker: 'b1',
        resource: name,
        commands: [],
        data: [{ signal: 'n' }],
        wires: [[]],
      },
      {
        id: 'r2',
        type: 'sg-resource',
        broker: 'b2',
        resource: name,
        commands: [],
        data: [{ signal: 'n' }],
        wires: [[]],
      },
    ]);
    await Promise.all([green('r1'), green('r2')]);
    // Traffic through both for a while: the positive marker that both connections carry data.
    for (let round = 0; round < 20; round++) {
      node('r1').receive({ topic: 'n', payload: `a${round}` });
      node('r2').receive({ topic: 'n', payload: `b${round}` });
      await until(
        () =>
          (broker.received(`data/${name}/n`).includes(`a${round}`) &&
            broker.received(`data/${name}/n`).includes(`b${round}`)) ||
          undefined,
        `round ${round}`,
      );
      await new Promise((r) => setTimeout(r, 50));
    }
    const ids = broker.log.connects.filter((c) => c.clientId.startsWith(`${name}-`)).map((c) => c.clientId);
    assert.deepStrictEqual(ids.sort(), [`${name}-${process.pid}`, `${name}-${process.pid}-2`]);
    assert.deepStrictEqual(broker.log.disconnects, [], 'nobody was knocked off');
  });

  it('a connection taken over by another client with its id says so and comes back after a backoff step (MQTT 5)', async () => {
    const name = uniqueName('taken');
    await load([
      brokerDef('b1', broker.port, { protocol: '5' }),
      { id: 'res', type: 'sg-resource', broker: 'b1', resource: name, commands: [], data: [], wires: [[]] },
    ]);
    await green('res');
    const intruder = await mqtt.connectAsync(broker.url, {
      clientId: `${name}-${process.pid}`,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      await until(
        () => warnings('b1').some((w) => /sg-broker\.reason\.taken-over/.test(w)) || undefined,
        'the reason named in the log',
      );
      // The resource takes its id back after one backoff step (the intruder does not reconnect).
      await until(
        () =>
          (broker.log.connects.filter((c) => c.clientId === `${name}-${process.pid}`).length === 3 &&
            lastStatus('res')?.fill === 'green') ||
          undefined,
        'back after the takeover',
      );
      assert.strictEqual(warnings('b1').filter((w) => /taken-over/.test(w)).length, 1);
    } finally {
      await intruder.endAsync(true);
    }
  });

  it('the will is on the first CONNECT even when an sg-app of the same name comes first', async () => {
    const name = uniqueName('same');
    await load([
      brokerDef('b1', broker.port),
      { id: 'app', type: 'sg-app', broker: 'b1', app: name, subscriptions: [], wires: [[]] },
      { id: 'res', type: 'sg-resource', broker: 'b1', resource: name, commands: [], data: [], wires: [[]] },
    ]);
    await until(
      () => broker.received(`resourceavailable/${name}/presence`).includes('True') || undefined,
      'presence True',
    );
    assert.deepStrictEqual(broker.log.connects, [{ clientId: `${name}-${process.pid}`, will: true }]);
    assert.deepStrictEqual(broker.log.disconnects, []);
  });

  it('a durable offline queue keeps what was published while the broker was down across a restart of the flows', async () => {
    const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-userdir-'));
    helper.settings({ userDir });
    const name = uniqueName('durable');
    const flow = [
      brokerDef('b1', broker.port, { queueDurable: true }),
      {
        id: 'res',
        type: 'sg-resource',
        broker: 'b1',
        resource: name,
        commands: [],
        data: [{ signal: 'n' }],
        wires: [[]],
      },
      { id: 'done', type: 'complete', scope: ['res'], uncaught: false, wires: [['completed']] },
      { id: 'completed', type: 'helper' },
    ];
    try {
      await broker.kill();
      await load(flow);
      await red('res');
      let done = 0;
      node('completed').on('input', () => done++);
      for (let n = 1; n <= 5; n++) node('res').receive({ topic: 'n', payload: n });
      await until(() => done === 5 || undefined, 'done() for all five once they are on disk');
      const file = path.join(userDir, 'busbar', `mqtt-b1-sg-${name}.log`);
      assert.ok(fs.statSync(file).size > 0, 'the queue file holds them');
      await helper.unload(); // Node-RED stops: nothing was delivered yet
      await broker.start();
      await load(flow);
      await until(() => broker.received(`data/${name}/n`).length >= 5 || undefined, 'the five after the restart');
      assert.deepStrictEqual(broker.received(`data/${name}/n`), ['1', '2', '3', '4', '5']);
    } finally {
      helper.settings({ userDir: undefined });
      fs.rmSync(userDir, { recursive: true, force: true });
    }
  });

  it('Buffer payloads go out as their bytes; bytes that are not UTF-8 are sent with a warning', async () => {
    const name = uniqueName('bytes');
    await load([
      brokerDef('b1', broker.port),
      {
        id: 'res',
        type: 'sg-resource',
        broker: 'b1',
        resource: name,
        commands: [],
        data: [{ signal: 'raw' }],
        wires: [[]],
      },
      { id: 'app', type: 'sg-app', broker: 'b1', app: uniqueName('bytesapp'), subscriptions: [], wires: [[]] },
    ]);
    await Promise.all([green('res'), green('app')]);
    node('res').receive({ topic: 'raw', payload: Buffer.from([0xff, 0x41]) });
    node('app').receive({ topic: `${name}/cmd`, payload: Buffer.from('é', 'utf8') });
    const raw = await until(() => broker.log.publishes.find((p) => p.topic === `data/${name}/raw`), 'the data message');
    const cmd = await until(() => broker.log.publishes.find((p) => p.topic === `command/${name}/cmd`), 'the command');
    assert.deepStrictEqual([...raw.payload], [0xff, 0x41]);
    assert.deepStrictEqual([...cmd.payload], [0xc3, 0xa9]);
    assert.deepStrictEqual(warnings('res'), ['sg-resource.warn.not-utf8']);
    assert.deepStrictEqual(warnings('app'), []);
  });
});
