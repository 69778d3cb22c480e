// sg-resource and sg-app in a Node-RED runtime against a real broker (in-process aedes, or MQTT_URL e.g. Mosquitto),
// observed on the wire by an independent mqtt.js client: startup bursts, echo, change-only, reconnect, stop, will.
import assert from 'assert';
import fs from 'fs';
import net from 'net';
import path from 'path';
import tls from 'tls';
import helper from 'node-red-node-test-helper';
import { until } from './support/until';
import type { NodeMessage } from '../nodes/lib/red';
import { coreTls, load, sgNodes } from './lib/nodes';
import {
  clearRetained,
  clearUsedNames,
  KillableProxy,
  Observer,
  Seen,
  startTestBroker,
  TestBroker,
  uniqueName,
} from './lib/mqtt-peer';
import { testLoopCommands, testLoopData } from './support/sg-testloop';

helper.init(require.resolve('node-red'));

interface TestNode {
  receive(msg: NodeMessage): void;
  on(event: 'input', listener: (msg: NodeMessage) => void): void;
  warn: { called: boolean; args: unknown[][] };
}

const line = (s: Seen): string => `${s.topic} ${s.payload} q${s.qos} r${s.retain ? 1 : 0}`;

function node(id: string): TestNode {
  return helper.getNode(id) as unknown as TestNode;
}

/** Collects what a helper node receives; next(n) resolves with the first n messages. */
function collect(id: string): { msgs: NodeMessage[]; next(count: number, ms?: number): Promise<NodeMessage[]> } {
  const msgs: NodeMessage[] = [];
  const waiters: Array<() => void> = [];
  node(id).on('input', (msg) => {
    msgs.push(msg);
    for (const w of waiters) w();
  });
  return {
    msgs,
    next: (count, ms = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`expected ${count} msgs on ${id}, got ${JSON.stringify(msgs)}`)),
          ms,
        );
        const check = (): void => {
          if (msgs.length >= count) {
            clearTimeout(timer);
            resolve(msgs.slice(0, count));
          }
        };
        waiters.push(check);
        check();
      }),
  };
}

/** The one polling helper, with this suite's default bound. */
async function waitUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  await until(() => cond() || undefined, what, ms, 20);
}

describe('sg-resource and sg-app on a broker', function () {
  let broker: TestBroker;
  let observer: Observer;
  let proxy: KillableProxy | undefined;

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
    await proxy?.close();
    proxy = undefined;
    const retained = observer.seen.filter((s) => s.retain).map((s) => s.topic);
    await observer.close();
    await clearRetained(broker.url, retained);
    await clearUsedNames(broker.url);
  });

  const brokerNode = (port = broker.port, extra: object = {}): object => ({
    id: 'broker',
    type: 'sg-broker',
    mode: 'external',
    host: broker.host,
    port,
    protocol: '3.1',
    keepalive: 10,
    qos: 1,
    clean: true,
    ...extra,
  });

  const taxisign = (name: string, extra: object = {}): object => ({
    id: 'res',
    type: 'sg-resource',
    broker: 'broker',
    resource: name,
    commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False', changeOnly: false }],
    data: [],
    wires: [['out']],
    ...extra,
  });

  for (const protocol of ['3.1', '3.1.1', '5']) {
    it(`taxisignservice publishes the observed startup burst in order, with QoS 1 and retain flags (§4.2), MQTT ${protocol}`, async () => {
      const name = uniqueName('taxisignservice');
      await observer.subscribe(`+/${name}/#`);
      await load(sgNodes, [brokerNode(broker.port, { protocol }), taxisign(name), { id: 'out', type: 'helper' }]);
      await observer.waitFor((s) => s.topic === `data/${name}/state`);
      assert.deepStrictEqual(observer.seen.map(line), [
        `resourceavailable/${name}/presence True q1 r1`,
        `commandavailable/${name}/state True q1 r1`,
        `dataavailable/${name}/state True q1 r1`,
        `data/${name}/state False q1 r1`,
      ]);
    });
  }

  it('testLoop resource: data, echoed commands and a command without echo (§4.2)', async () => {
    const name = uniqueName('testresource');
    await observer.subscribe(`+/${name}/#`);
    await load(sgNodes, [
      brokerNode(),
      {
        id: 'res',
        type: 'sg-resource',
        broker: 'broker',
        resource: name,
        data: testLoopData(),
        commands: testLoopCommands(),
        wires: [[]],
      },
    ]);
    await observer.waitFor((s) => s.topic === `commandavailable/${name}/teststate6`);
    assert.deepStrictEqual(observer.seen.map(line), [
      `resourceavailable/${name}/presence True q1 r1`,
      `dataavailable/${name}/teststate3 True q1 r1`,
      `dataavailable/${name}/teststate4 True q1 r1`,
      `data/${name}/teststate4 101 q1 r0`,
      `dataavailable/${name}/teststate7 True q1 r1`,
      `commandavailable/${name}/teststate2 True q1 r1`,
      `dataavailable/${name}/teststate2 True q1 r1`,
      `data/${name}/teststate2 222 q1 r0`,
      `commandavailable/${name}/teststate5 True q1 r1`,
      `dataavailable/${name}/teststate5 True q1 r1`,
      `commandavailable/${name}/teststate6 True q1 r1`,
    ]);
  });

  it('subscribes before announcing: a retained command is echoed after the default (§5)', async () => {
    const name = uniqueName('taxisignservice');
    await observer.publish(`command/${name}/state`, 'True', true);
    await observer.subscribe(`data/${name}/state`);
    await load(sgNodes, [brokerNode(), taxisign(name), { id: 'out', type: 'helper' }]);
    const seen = await observer.waitFor(() => true, 2);
    assert.deepStrictEqual(seen.map(line), [`data/${name}/state False q1 r1`, `data/${name}/state True q1 r1`]);
    await clearRetained(broker.url, [`command/${name}/state`]);
  });

  it('turns a command into a msg and echoes the Python-stripped payload; change-only drops repeats', async () => {
    const name = uniqueName('res');
    await observer.subscribe(`data/${name}/#`);
    await load(sgNodes, [
      brokerNode(),
      taxisign(name, {
        commands: [
          { signal: 'state', echo: true, echoRetained: false, defaultValue: null, changeOnly: false },
          { signal: 'mode', echo: true, echoRetained: false, defaultValue: null, changeOnly: true },
        ],
      }),
      { id: 'out', type: 'helper' },
    ]);
    const out = collect('out');
    await waitUntil(() => node('res') !== undefined, 'node');
    await observer.waitFor(() => true, 0);
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
    const app = await Observer.connect(broker.url);
    // Wait until the resource is subscribed: its presence is retained once the startup ran.
    await app.subscribe(`resourceavailable/${name}/presence`);
    await app.waitFor((s) => s.payload === 'True');
    await app.publish(`command/${name}/state`, '\u00a0 padded\x1f ');
    await app.publish(`command/${name}/mode`, 'A');
    await app.publish(`command/${name}/mode`, ' A ');
    await app.publish(`command/${name}/mode`, 'B');
    await app.publish(`command/${name}/state`, Buffer.alloc(0));
    const msgs = await out.next(4);
    assert.deepStrictEqual(
      msgs.map((m) => [m.topic, m.payload, m.messagetype, m.service, m.signal]),
      [
        ['state', 'padded', 'command', name, 'state'],
        ['mode', 'A', 'command', name, 'mode'],
        ['mode', 'B', 'command', name, 'mode'],
        ['state', '', 'command', name, 'state'],
      ],
    );
    // An empty command is delivered as '' and echoed as a zero-length payload (spec §5).
    const echoes = await observer.waitFor(() => true, 4);
    assert.deepStrictEqual(echoes.map(line), [
      `data/${name}/state padded q1 r0`,
      `data/${name}/mode A q1 r0`,
      `data/${name}/mode B q1 r0`,
      `data/${name}/state  q1 r0`,
    ]);
    await app.close();
  });

  it('echoes the flow answer returned with msg.echoHandle, and nothing when no answer comes in time', async () => {
    const name = uniqueName('taxisignservice');
    await observer.subscribe(`data/${name}/state`);
    await load(sgNodes, [
      brokerNode(),
      taxisign(name, {
        answerTimeout: 300,
        commands: [
          {
            signal: 'state',
            echo: true,
            echoRetained: true,
            defaultValue: 'False',
            changeOnly: false,
            echoAnswer: true,
          },
        ],
      }),
      { id: 'out', type: 'helper' },
    ]);
    const out = collect('out');
    await observer.waitFor((s) => s.payload === 'False');
    await observer.publish(`command/${name}/state`, 'on');
    const [cmd] = await out.next(1);
    assert.strictEqual(cmd?.payload, 'on');
    assert.strictEqual(typeof cmd?.echoHandle, 'string');
    node('res').receive({ ...cmd, payload: true });
    await observer.waitFor((s) => s.payload === 'True');
    // No answer: a warning, no echo.
    await observer.publish(`command/${name}/state`, 'off');
    await out.next(2);
    await waitUntil(() => node('res').warn.args.some((a) => String(a[0]).includes('no answer')), 'timeout warning');
    assert.deepStrictEqual(
      observer.seen.map((s) => s.payload),
      ['False', 'True'],
    );
  });

  it('publishes declared data as Python str() and rejects undeclared signals and missing payloads catchably', async () => {
    const name = uniqueName('sensor');
    await observer.subscribe(`data/${name}/#`);
    await load(sgNodes, [
      { id: 'f1', type: 'tab' },
      brokerNode(),
      {
        ...taxisign(name, {
          commands: [],
          data: [
            { signal: 'counter', defaultValue: null, retained: false },
            { signal: 'on', defaultValue: null, retained: true },
          ],
        }),
        z: 'f1',
      },
      { id: 'out', type: 'helper', z: 'f1' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']], z: 'f1' },
      { id: 'caught', type: 'helper', z: 'f1' },
    ]);
    const caught = collect('caught');
    const presence = await Observer.connect(broker.url);
    await presence.subscribe(`resourceavailable/${name}/presence`);
    await presence.waitFor((s) => s.payload === 'True');
    await presence.close();
    node('res').receive({ topic: 'counter', payload: 3.5 });
    node('res').receive({ topic: ' on ', payload: true });
    node('res').receive({ topic: 'counter', payload: 1e-5 });
    node('res').receive({ topic: 'missing', payload: 1 });
    node('res').receive({ topic: 'counter' });
    const errors = await caught.next(2);
    const messages = errors.map((m) => String((m.error as { message: string }).message)).sort();
    assert.match(messages[0] ?? '', /"missing" is not a declared data signal/);
    assert.match(messages[1] ?? '', /sg\.error\.noPayload/);
    const seen = await observer.waitFor(() => true, 3);
    assert.deepStrictEqual(seen.map(line), [
      `data/${name}/counter 3.5 q1 r0`,
      `data/${name}/on True q1 r1`,
      `data/${name}/counter 1e-05 q1 r0`,
    ]);
  });

  it('after an abrupt connection loss the broker publishes the will, and the reconnect re-sends the latest values (§4.3, §4.5)', async () => {
    const name = uniqueName('taxisignservice');
    proxy = new KillableProxy({ host: broker.host, port: broker.port });
    const port = await proxy.start();
    await observer.subscribe(`+/${name}/#`);
    await load(sgNodes, [
      { id: 'f1', type: 'tab' },
      brokerNode(port),
      {
        ...taxisign(name, {
          commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False', changeOnly: false }],
          data: [{ signal: 'counter', defaultValue: '0', retained: false }],
        }),
        z: 'f1',
      },
      { id: 'out', type: 'helper', z: 'f1' },
      { id: 'completion', type: 'complete', scope: ['res'], uncaught: false, wires: [['completed']], z: 'f1' },
      { id: 'completed', type: 'helper', z: 'f1' },
    ]);
    const completed = collect('completed');
    await observer.waitFor((s) => s.topic === `data/${name}/state`);
    await observer.publish(`command/${name}/state`, 'True');
    await observer.waitFor((s) => s.topic === `data/${name}/state` && s.payload === 'True');
    node('res').receive({ topic: 'counter', payload: 3.5 });
    await observer.waitFor((s) => s.topic === `data/${name}/counter` && s.payload === '3.5');
    // Cut only after the PUBACK (done), else mqtt.js rightly re-sends the in-flight QoS 1 message first.
    await completed.next(1);
    await waitUntil(() => observer.seen.filter((s) => s.topic === `data/${name}/state`).length === 2, 'echo');
    observer.clear();
    proxy.kill();
    await observer.waitFor((s) => s.topic === `data/${name}/state`, 1, 10000);
    assert.deepStrictEqual(observer.seen.map(line), [
      `resourceavailable/${name}/presence False q1 r1`,
      `resourceavailable/${name}/presence True q1 r1`,
      `dataavailable/${name}/counter True q1 r1`,
      `data/${name}/counter 3.5 q1 r0`,
      `commandavailable/${name}/state True q1 r1`,
      `dataavailable/${name}/state True q1 r1`,
      `data/${name}/state True q1 r1`,
    ]);
  });

  it('a clean stop publishes presence False (QoS 1, retained) before disconnecting (§4.4)', async () => {
    const name = uniqueName('taxisignservice');
    await observer.subscribe(`resourceavailable/${name}/presence`);
    await load(sgNodes, [brokerNode(port0(), { qos: 0 }), taxisign(name), { id: 'out', type: 'helper' }]);
    await observer.waitFor((s) => s.payload === 'True');
    await helper.unload();
    const [stop] = await observer.waitFor((s) => s.payload === 'False');
    assert.strictEqual(line(stop as Seen), `resourceavailable/${name}/presence False q1 r1`);
    const late = await Observer.connect(broker.url);
    await late.subscribe(`resourceavailable/${name}/presence`);
    const [retained] = await late.waitFor(() => true);
    assert.strictEqual(retained?.payload, 'False');
    await late.close();
  });

  it('sg-app sends commands, gets data and availability; it has no will', async () => {
    const res = uniqueName('taxisignservice');
    const app = uniqueName('taxiapp');
    proxy = new KillableProxy({ host: broker.host, port: broker.port });
    await proxy.start();
    await observer.subscribe([`+/${res}/#`, `+/${app}/#`]);
    await load(sgNodes, [
      brokerNode(),
      {
        id: 'proxied',
        type: 'sg-broker',
        mode: 'external',
        host: broker.host,
        port: proxy.port,
        protocol: '3.1.1',
        qos: 1,
        clean: true,
        keepalive: 10,
      },
      taxisign(res),
      { id: 'out', type: 'helper' },
      {
        id: 'app',
        type: 'sg-app',
        broker: 'proxied',
        app,
        subscriptions: [
          { type: 'resourceavailable', service: res, signal: '' },
          { type: 'data', service: res, signal: 'state', changeOnly: true },
        ],
        wires: [['appout']],
      },
      { id: 'appout', type: 'helper' },
    ]);
    const appout = collect('appout');
    const first = await appout.next(2);
    const byType = (msgs: NodeMessage[], t: string): NodeMessage | undefined => msgs.find((m) => m.messagetype === t);
    await waitUntil(
      () => appout.msgs.some((m) => m.messagetype === 'resourceavailable' && m.payload === true),
      'presence True',
    );
    assert.deepStrictEqual(first.length, 2);
    node('app').receive({ topic: `${res}/state`, payload: true });
    await waitUntil(() => appout.msgs.some((m) => m.messagetype === 'data' && m.payload === 'True'), 'echo True');
    const data = appout.msgs.filter((m) => m.messagetype === 'data');
    assert.deepStrictEqual(
      data.map((m) => [m.topic, m.payload, m.service, m.signal]),
      [
        [`data/${res}/state`, 'False', res, 'state'],
        [`data/${res}/state`, 'True', res, 'state'],
      ],
    );
    const presence = byType(appout.msgs, 'resourceavailable');
    assert.deepStrictEqual([presence?.topic, presence?.text], [`resourceavailable/${res}/presence`, 'True']);
    assert.ok(observer.seen.some((s) => line(s) === `command/${res}/state True q1 r0`));
    // An app has no will: cutting its connection publishes nothing about it.
    proxy.kill();
    await waitUntil(() => proxy?.connections === 1, 'app reconnect', 10000);
    assert.ok(!observer.seen.some((s) => s.topic.includes(app)));
  });

  it('drops invalid UTF-8 with a warning and keeps working', async () => {
    const name = uniqueName('res');
    await load(sgNodes, [
      brokerNode(),
      taxisign(name, {
        commands: [{ signal: 'state', echo: false, echoRetained: false, defaultValue: null, changeOnly: false }],
      }),
      { id: 'out', type: 'helper' },
    ]);
    const out = collect('out');
    await observer.subscribe(`resourceavailable/${name}/presence`);
    await observer.waitFor((s) => s.payload === 'True');
    await observer.publish(`command/${name}/state`, Buffer.from([0xff, 0xfe, 0x62, 0x61, 0x64]));
    await observer.publish(`command/${name}/state`, 'ok');
    const [msg] = await out.next(1);
    assert.strictEqual(msg?.payload, 'ok');
    assert.ok(node('res').warn.args.some((a) => String(a[0]).includes('inbound message dropped (not UTF-8)')));
  });

  it('a redeploy that adds a signal announces only what is new, without dropping presence', async () => {
    const name = uniqueName('res');
    await observer.subscribe(`+/${name}/#`);
    const flow = [
      { id: 'f1', type: 'tab' },
      { ...brokerNode(), z: 'f1' },
      { ...taxisign(name), z: 'f1' },
      { id: 'out', type: 'helper', z: 'f1' },
    ];
    await load(sgNodes, flow);
    await observer.waitFor((s) => s.topic === `data/${name}/state`);
    observer.clear();
    const changed = flow.map((n) =>
      (n as { id: string }).id === 'res'
        ? { ...n, data: [{ signal: 'counter', defaultValue: '0', retained: false }] }
        : n,
    );
    await (helper as unknown as { setFlows(f: object[], t: string): Promise<void> }).setFlows(changed, 'nodes');
    await observer.waitFor((s) => s.topic === `data/${name}/counter`);
    assert.deepStrictEqual(observer.seen.map(line), [
      `dataavailable/${name}/counter True q1 r1`,
      `data/${name}/counter 0 q1 r0`,
    ]);
  });

  it('renaming a resource stops the old identity cleanly and starts the new one', async () => {
    const oldName = uniqueName('old');
    const newName = uniqueName('new');
    await observer.subscribe([`resourceavailable/${oldName}/presence`, `resourceavailable/${newName}/presence`]);
    const flow = [
      { id: 'f1', type: 'tab' },
      { ...brokerNode(), z: 'f1' },
      { ...taxisign(oldName), z: 'f1' },
      { id: 'out', type: 'helper', z: 'f1' },
    ];
    await load(sgNodes, flow);
    await observer.waitFor((s) => s.payload === 'True');
    const renamed = flow.map((n) => ((n as { id: string }).id === 'res' ? { ...n, resource: newName } : n));
    await (helper as unknown as { setFlows(f: object[], t: string): Promise<void> }).setFlows(renamed, 'nodes');
    await observer.waitFor((s) => s.topic.includes(newName) && s.payload === 'True');
    await observer.waitFor((s) => s.topic.includes(oldName) && s.payload === 'False');
  });

  it('nodes sharing a resource name share one connection; each gets only its own commands', async () => {
    const name = uniqueName('shared');
    await observer.subscribe(`+/${name}/#`);
    await load(sgNodes, [
      brokerNode(),
      {
        id: 'r1',
        type: 'sg-resource',
        broker: 'broker',
        resource: name,
        commands: [{ signal: 'a', echo: false, echoRetained: false, defaultValue: null, changeOnly: false }],
        wires: [['o1']],
      },
      {
        id: 'r2',
        type: 'sg-resource',
        broker: 'broker',
        resource: name,
        commands: [{ signal: 'b', echo: false, echoRetained: false, defaultValue: null, changeOnly: false }],
        wires: [['o2']],
      },
      { id: 'o1', type: 'helper' },
      { id: 'o2', type: 'helper' },
    ]);
    const o1 = collect('o1');
    const o2 = collect('o2');
    await observer.waitFor((s) => s.topic.startsWith('commandavailable/'), 2);
    assert.deepStrictEqual(observer.seen.map(line), [
      `resourceavailable/${name}/presence True q1 r1`,
      `commandavailable/${name}/a True q1 r1`,
      `commandavailable/${name}/b True q1 r1`,
    ]);
    await observer.publish(`command/${name}/b`, '2');
    await observer.publish(`command/${name}/a`, '1');
    assert.deepStrictEqual(
      (await o1.next(1)).map((m) => m.payload),
      ['1'],
    );
    assert.deepStrictEqual(
      (await o2.next(1)).map((m) => m.payload),
      ['2'],
    );
    assert.strictEqual(o1.msgs.length + o2.msgs.length, 2);
  });

  it('warns about an sg-app subscription with a wildcard and keeps the valid ones working', async () => {
    const res = uniqueName('res');
    await load(sgNodes, [
      brokerNode(),
      {
        id: 'app',
        type: 'sg-app',
        broker: 'broker',
        app: uniqueName('app'),
        subscriptions: [
          { type: 'data', service: '+', signal: 'state' },
          { type: 'data', service: res, signal: 'state' },
        ],
        wires: [['appout']],
      },
      { id: 'appout', type: 'helper' },
    ]);
    const out = collect('appout');
    await waitUntil(
      () => node('app').warn.args.some((a) => /service "\+" contains/.test(String(a[0]))),
      'wildcard warning',
    );
    // The valid subscription is live: a retained value arrives after subscribing.
    await observer.publish(`data/${res}/state`, 'on', true);
    const [msg] = await out.next(1);
    assert.deepStrictEqual([msg?.topic, msg?.payload], [`data/${res}/state`, 'on']);
    await clearRetained(broker.url, [`data/${res}/state`]);
  });

  it('refuses a resource name with "/", "+" or "#" with a warning and a catchable error per msg', async () => {
    await load(sgNodes, [brokerNode(), { ...taxisign('taxi/sign'), wires: [[]] }]);
    const res = helper.getNode('res') as unknown as TestNode & { status: { args: unknown[][] } };
    assert.ok(res.warn.args.some((a) => String(a[0]).includes('contains "/", "+" or "#"')));
    assert.ok(res.status.args.some((a) => (a[0] as { text?: string }).text === 'sg-resource.status.bad-name'));
  });

  it('connects through a core tls-config node with TLS 1.2+, verifying the server certificate', async () => {
    const dir = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tls');
    const protocols: string[] = [];
    const server = tls.createServer(
      { key: fs.readFileSync(path.join(dir, 'server.key')), cert: fs.readFileSync(path.join(dir, 'server.crt')) },
      (socket) => {
        protocols.push(String(socket.getProtocol()));
        const upstream = net.connect(broker.port, broker.host);
        socket.pipe(upstream);
        upstream.pipe(socket);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const name = uniqueName('taxisignservice');
      await observer.subscribe(`resourceavailable/${name}/presence`);
      await load([coreTls, ...(sgNodes as unknown as never[])] as never, [
        {
          id: 'tls',
          type: 'tls-config',
          cert: '',
          key: '',
          ca: path.join(dir, 'server.crt'),
          verifyservercert: true,
          servername: '',
        },
        brokerNode(port, { host: 'localhost', tls: 'tls' }),
        taxisign(name),
        { id: 'out', type: 'helper' },
      ]);
      await observer.waitFor((s) => s.payload === 'True');
      assert.ok(protocols.length > 0 && protocols.every((p) => p === 'TLSv1.2' || p === 'TLSv1.3'), protocols.join());
      await helper.unload();
      // Without the CA the self-signed server is refused.
      await load([coreTls, ...(sgNodes as unknown as never[])] as never, [
        { id: 'tls', type: 'tls-config', cert: '', key: '', ca: '', verifyservercert: true, servername: '' },
        brokerNode(port, { host: 'localhost', tls: 'tls' }),
        taxisign(uniqueName('untrusted')),
        { id: 'out', type: 'helper' },
      ]);
      const b = helper.getNode('broker') as unknown as TestNode;
      await waitUntil(() => b.warn.args.some((a) => /certificate/i.test(String(a[0]))), 'a certificate warning');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('an sg-app named like an sg-resource shares its connection and will', async () => {
    const name = uniqueName('taxisignservice');
    const other = uniqueName('climateservice');
    await observer.subscribe(`+/${name}/#`);
    await load(sgNodes, [
      brokerNode(),
      taxisign(name),
      { id: 'out', type: 'helper' },
      {
        id: 'app',
        type: 'sg-app',
        broker: 'broker',
        app: name,
        subscriptions: [{ type: 'data', service: other, signal: 'temp' }],
        wires: [['appout']],
      },
      { id: 'appout', type: 'helper' },
    ]);
    const appout = collect('appout');
    await observer.waitFor((s) => s.topic === `data/${name}/state`);
    await observer.publish(`data/${other}/temp`, '27.5');
    const [msg] = await appout.next(1);
    assert.strictEqual(msg?.payload, '27.5');
    // One identity: exactly one startup burst (a second client with the same id would also have announced itself).
    assert.deepStrictEqual(observer.seen.map(line), [
      `resourceavailable/${name}/presence True q1 r1`,
      `commandavailable/${name}/state True q1 r1`,
      `dataavailable/${name}/state True q1 r1`,
      `data/${name}/state False q1 r1`,
    ]);
  });

  function port0(): number {
    return broker.port;
  }
});
