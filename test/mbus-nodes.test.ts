// mbus-config / mbus-entity / mbus-rpc in a real Node-RED runtime: chatting and RPC over loopback multicast, start recovery, spoofing.
import assert from 'assert';
import dgram from 'dgram';
import helper from 'node-red-node-test-helper';
import { Address, encryptionKey, formatMessage, hashKey, openDatagram, parseMessage, sealDatagram } from '../src/mbus';
import { poller } from './support/until';

const mbusConfig = require('../nodes/mbus/mbus-config');

const mbusEntity = require('../nodes/mbus/mbus-entity');

const mbusRpc = require('../nodes/mbus/mbus-rpc');

const catchNode = require('@node-red/nodes/core/common/25-catch.js');

const completeNode = require('@node-red/nodes/core/common/24-complete.js');

helper.init(require.resolve('node-red'));

type Msg = Record<string, unknown> & { payload?: unknown; topic?: string };
interface TestNode {
  on(ev: 'input', fn: (msg: Msg) => void): void;
  receive(msg: Msg): void;
}

function collect(node: TestNode): Msg[] {
  const out: Msg[] = [];
  node.on('input', (m) => out.push(m));
  return out;
}

const until = poller(6000, 10);

/** Holds a free UDP port (shared with reuseAddr) so both config nodes of a flow can join the same bus. */
async function reservePort(): Promise<dgram.Socket> {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((r) => s.bind({ port: 0, exclusive: false }, () => r()));
  return s;
}

const KEY = '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)';

describe('mbus nodes in Node-RED', function () {
  let holder: dgram.Socket;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    holder = await reservePort();
  });
  afterEach(async () => {
    await helper.unload();
    holder.close();
  });

  function configs(port: number, extra: Record<string, unknown> = {}): Msg[] {
    const base = { type: 'mbus-config', port, group: '224.255.222.239', scope: 'HOSTLOCAL', helloMin: 100, ...extra };
    return [
      {
        ...base,
        id: 'c1',
        addressElements: [
          { tag: 'app', value: 'nrtest' },
          { tag: 'module', value: 'one' },
        ],
      },
      {
        ...base,
        id: 'c2',
        addressElements: [
          { tag: 'app', value: 'nrtest' },
          { tag: 'module', value: 'two' },
        ],
        answerUnknown: true,
      },
    ];
  }
  const creds = { c1: { hashKey: KEY }, c2: { hashKey: KEY } };

  it('two Node-RED entities discover each other and chat reliably and unreliably', async () => {
    const port = holder.address().port;
    const flow = [
      ...configs(port),
      {
        id: 'e1',
        type: 'mbus-entity',
        config: 'c1',
        filters: ['chat.*'],
        destination: '(module:two)',
        wires: [['in1'], ['ev1']],
      },
      {
        id: 'e2',
        type: 'mbus-entity',
        config: 'c2',
        filters: ['chat.*'],
        unknownEvents: true,
        wires: [['in2'], ['ev2']],
      },
      { id: 'in1', type: 'helper' },
      { id: 'ev1', type: 'helper' },
      { id: 'in2', type: 'helper' },
      { id: 'ev2', type: 'helper' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ];
    await helper.load([mbusConfig, mbusEntity, catchNode], flow as never, creds);
    const [in2, ev1, ev2, caught] = ['in2', 'ev1', 'ev2', 'caught'].map((id) =>
      collect(helper.getNode(id) as TestNode),
    );
    const e1 = helper.getNode('e1') as TestNode;
    const e2 = helper.getNode('e2') as TestNode;
    await until(
      () => ev1.find((m) => m.topic === 'new-entity' && String((m.payload as Msg).address).includes('module:two')),
      'e1 sees two',
    );
    await until(() => ev2.find((m) => m.topic === 'new-entity'), 'e2 sees one');
    // Status fans out from the config node: green, with the peer count — "0 peers" at start, "1 peer" once e1
    // knows e2 (the runtime picks the singular key itself; the catalog is not loaded here, so texts are keys).
    const status = (helper.getNode('e1') as unknown as { status: { args: Array<[{ fill?: string; text?: string }]> } })
      .status;
    assert.ok(status.args.some(([st]) => st.fill === 'green' && st.text === 'mbus-config.status.peers'));
    await until(
      () => status.args.some(([st]) => st.fill === 'green' && st.text === 'mbus-config.status.peer'),
      'e1 shows "1 peer"',
    );
    e1.receive({
      topic: 'chat.say',
      payload: ['hello', 42, 2.5, { type: 'symbol', value: 'LOUD' }, 2n ** 64n],
      reliable: true,
    });
    const got = await until(() => in2.find((m) => m.topic === 'chat.say'), 'chat.say at e2');
    assert.deepStrictEqual(got.payload, ['hello', 42, 2.5, 'LOUD', 2n ** 64n]);
    assert.strictEqual(got.reliable, true);
    assert.ok(String(got.source).includes('module:one'));
    assert.deepStrictEqual((got.arguments as Msg[])[3], { type: 'symbol', value: 'LOUD' });
    // Commands outside the filter become "unknown" events when asked for.
    e1.receive({ topic: 'other.thing', payload: [] });
    await until(
      () => ev2.find((m) => m.topic === 'unknown' && (m.payload as Msg).command === 'other.thing'),
      'unknown event',
    );
    // Bad input is a catchable error and nothing is sent.
    e1.receive({ topic: '9 bad name', payload: [] });
    await until(
      () => caught.find((m) => /mbus-entity\.error\.topicName/.test(String((m.error as Msg).message))),
      'catchable bad input',
    );
    e1.receive({ topic: 'chat.x', payload: [], destination: '(module:nobody)', reliable: true });
    await until(
      () => caught.find((m) => /no known entity/.test(String((m.error as Msg).message))),
      'unknown destination',
    );
    assert.ok(!in2.some((m) => m.topic === 'chat.x'));
    void e2;
  });

  it('a burst of msgs into mbus-entity goes out packed (fewer messages than msgs), arrives in order, and every msg completes', async () => {
    const port = holder.address().port;
    const flow = [
      ...configs(port),
      {
        id: 'e1',
        type: 'mbus-entity',
        config: 'c1',
        filters: ['burst.*'],
        destination: '(module:two)',
        wires: [[], ['ev1']],
      },
      { id: 'e2', type: 'mbus-entity', config: 'c2', filters: ['burst.*'], wires: [['in2'], []] },
      { id: 'ev1', type: 'helper' },
      { id: 'in2', type: 'helper' },
      { id: 'completer', type: 'complete', scope: ['e1'], uncaught: false, wires: [['completed']] },
      { id: 'completed', type: 'helper' },
    ];
    await helper.load([mbusConfig, mbusEntity, completeNode], flow as never, creds);
    const [ev1, in2, completed] = ['ev1', 'in2', 'completed'].map((id) => collect(helper.getNode(id) as TestNode));
    const e1 = helper.getNode('e1') as TestNode;
    await until(
      () => ev1.find((m) => m.topic === 'new-entity' && String((m.payload as Msg).address).includes('module:two')),
      'e1 sees two',
    );
    for (const reliable of [false, true]) {
      const topic = reliable ? 'burst.r' : 'burst.u';
      for (let i = 0; i < 20; i++) e1.receive({ topic, payload: [i], reliable });
      const got = await until(
        () => in2.filter((m) => m.topic === topic).length === 20 && in2.filter((m) => m.topic === topic),
        `20 ${topic} at e2`,
      );
      assert.deepStrictEqual(
        got.map((m) => (m.payload as number[])[0]),
        [...Array(20).keys()],
        'in order',
      );
      const messages = new Set(got.map((m) => m.seq)).size;
      assert.ok(messages < 20, `${messages} messages for 20 msgs`);
      await until(() => completed.filter((m) => m.topic === topic).length === 20, `done() for every ${topic} msg`);
    }
  });

  it('a reliable send completes on the ack, and fails (catchable) when the peer never acks', async () => {
    const port = holder.address().port;
    // A hand-made peer that acks only what it is told to.
    const sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
    const rawAddr = Address.parse(`(app:raw module:peer id:${process.pid}-77@127.0.0.1)`);
    let ackThem = true;
    let rawSeq = 0;
    const rawSend = (dest: Address, acks: number[], commands: Array<{ name: string; args: [] }>): void => {
      raw.send(
        sealDatagram(
          sec,
          formatMessage({
            seq: rawSeq++,
            timestamp: Date.now(),
            reliable: false,
            source: rawAddr,
            destination: dest,
            acks,
            commands,
          }),
        ),
        port,
        '224.255.222.239',
      );
    };
    const raw = dgram.createSocket('udp4');
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    raw.setMulticastInterface('127.0.0.1');
    raw.setMulticastTTL(0);
    const seen: string[] = [];
    raw.on('message', (d) => {
      const m = parseMessage(openDatagram(sec, d));
      if (!m.reliable || !m.destination.equals(rawAddr)) return;
      seen.push(m.commands[0].name);
      if (ackThem) rawSend(m.source, [m.seq], []);
    });
    try {
      const flow = [
        configs(port)[0],
        {
          id: 'e1',
          type: 'mbus-entity',
          config: 'c1',
          destination: String(rawAddr),
          reliable: true,
          wires: [[], ['ev1']],
        },
        { id: 'ev1', type: 'helper' },
        { id: 'completer', type: 'complete', scope: ['e1'], uncaught: false, wires: [['completed']] },
        { id: 'completed', type: 'helper' },
        { id: 'catcher', type: 'catch', scope: ['e1'], uncaught: false, wires: [['caught']] },
        { id: 'caught', type: 'helper' },
      ];
      await helper.load([mbusConfig, mbusEntity, catchNode, completeNode], flow as never, { c1: { hashKey: KEY } });
      const [ev1, completed, caught] = ['ev1', 'completed', 'caught'].map((id) =>
        collect(helper.getNode(id) as TestNode),
      );
      const peersOf = (): number =>
        (helper.getNode('c1') as unknown as { entity: { entities: unknown[] } }).entity.entities.length;
      // Hello until the entity (which starts asynchronously after the deploy) knows the raw peer.
      const hello = setInterval(() => rawSend(Address.empty, [], [{ name: 'mbus.hello', args: [] }]), 50);
      try {
        await until(() => peersOf() === 1, 'raw peer known');
      } finally {
        clearInterval(hello);
      }
      const e1 = helper.getNode('e1') as TestNode;
      e1.receive({ topic: 'test.acked', payload: [] });
      await until(() => completed.find((m) => m.topic === 'test.acked'), 'done() after the ack');
      assert.strictEqual(caught.length, 0);
      ackThem = false;
      e1.receive({ topic: 'test.lost', payload: [] });
      const failed = await until(() => caught.find((m) => m.topic === 'test.lost'), 'done(err) after N_r tries');
      assert.match(String((failed.error as Msg).message), /reliable delivery to .* failed/);
      assert.ok(!completed.some((m) => m.topic === 'test.lost'));
      assert.deepStrictEqual(seen, ['test.acked', 'test.lost', 'test.lost', 'test.lost']);
      await until(() => ev1.find((m) => m.topic === 'delivery-failed'), 'delivery-failed event');
    } finally {
      raw.close();
    }
  });

  it('RPC: a flow serves (deferred reply), another calls; UNKNOWN and timeouts', async () => {
    const port = holder.address().port;
    const flow = [
      ...configs(port),
      {
        id: 'caller',
        type: 'mbus-rpc',
        config: 'c1',
        mode: 'call',
        procedure: 'math.sum',
        destination: '(app:nrtest module:two)',
        timeout: 2000,
        wires: [['results']],
      },
      {
        id: 'srv',
        type: 'mbus-rpc',
        config: 'c2',
        mode: 'serve',
        procedure: 'math.sum',
        procedures: ['math.fail'],
        wires: [['calls']],
      },
      { id: 'srv1', type: 'mbus-rpc', config: 'c1', mode: 'serve', procedure: 'back.ping', wires: [['calls1']] },
      {
        id: 'call2',
        type: 'mbus-rpc',
        config: 'c2',
        mode: 'call',
        destination: '(module:one)',
        timeout: 1000,
        wires: [['results2']],
      },
      { id: 'results', type: 'helper' },
      { id: 'results2', type: 'helper' },
      { id: 'calls', type: 'helper' },
      { id: 'calls1', type: 'helper' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ];
    await helper.load([mbusConfig, mbusRpc, catchNode], flow as never, creds);
    const [results, results2, calls, calls1, caught] = ['results', 'results2', 'calls', 'calls1', 'caught'].map((id) =>
      collect(helper.getNode(id) as TestNode),
    );
    const call = helper.getNode('caller') as TestNode;
    const call2 = helper.getNode('call2') as TestNode;
    const srv = helper.getNode('srv') as TestNode;
    const srv1 = helper.getNode('srv1') as TestNode;
    // Serve side: answer math.sum after a delay (deferred), math.fail with FAILED.
    (helper.getNode('calls') as TestNode).on('input', (m) => {
      setTimeout(() => {
        if (m.topic === 'math.sum')
          srv.receive({ ...m, payload: [(m.payload as number[]).reduce((a, b) => a + b, 0)] });
        else srv.receive({ ...m, payload: [], rpc: { success: false, result: 'NO_SUCH_ITEM', description: 'nope' } });
      }, 100);
    });
    (helper.getNode('calls1') as TestNode).on('input', (m) => srv1.receive({ ...m, payload: ['pong'] }));
    // Wait until the entities know each other, then call.
    const peersOf = (id: string): number =>
      (helper.getNode(id) as unknown as { entity: { entities: unknown[] } }).entity.entities.length;
    await until(() => peersOf('c1') === 1 && peersOf('c2') === 1, 'discovery');
    call.receive({ payload: [5, 3], correlationId: 'c-1' });
    await until(() => results.length > 0 || caught.length > 0, 'first call outcome');
    assert.strictEqual(results.length, 1, 'one result');
    assert.deepStrictEqual(results[0].payload, [8]);
    assert.strictEqual(results[0].correlationId, 'c-1');
    assert.deepStrictEqual(
      { ...(results[0].rpc as Msg), arguments: undefined },
      { success: true, result: 'OK', description: '', arguments: undefined, rpcStatus: 'OK' },
    );
    assert.strictEqual(calls[0].topic, 'math.sum');
    call.receive({ topic: 'math.fail', payload: [] });
    const failed = await until(() => results.find((m) => m.topic === 'math.fail'), 'FAILED return');
    assert.deepStrictEqual(
      [(failed.rpc as Msg).success, (failed.rpc as Msg).result, (failed.rpc as Msg).description],
      [false, 'NO_SUCH_ITEM', 'nope'],
    );
    // The other direction.
    call2.receive({ topic: 'back.ping', payload: [] });
    const back = await until(() => results2.find((m) => m.topic === 'back.ping'), 'reverse RPC');
    assert.deepStrictEqual(back.payload, ['pong']);
    assert.strictEqual(calls1.length, 1);
    // c2 answers UNKNOWN for procedures nobody serves; c1 does not, so a call there times out.
    call.receive({ topic: 'no.such', payload: [] });
    const unk = await until(() => results.find((m) => m.topic === 'no.such'), 'UNKNOWN');
    assert.strictEqual((unk.rpc as Msg).result, 'UNKNOWN');
    caught.length = 0;
    call2.receive({ topic: 'nobody.serves', payload: [] });
    const to = await until(() => caught.find((m) => m.topic === 'nobody.serves'), 'timeout is catchable');
    assert.strictEqual((to.rpc as Msg).result, 'TIMEOUT');
    // A reply with a stale handle is an error.
    srv.receive({ rpcCall: { handle: 'c2:999' }, payload: [] });
    await until(
      () => caught.find((m) => /no pending call|unknownHandle/.test(String((m.error as Msg).message))),
      'stale handle',
    );
  });

  type Spied = { args: unknown[][] };
  const spy = (id: string, method: 'warn' | 'status' | 'log' | 'error'): Spied =>
    (helper.getNode(id) as unknown as Record<string, Spied>)[method];
  const texts = (calls: Spied): string[] =>
    calls.args.map((a) => (typeof a[0] === 'string' ? a[0] : String((a[0] as { text?: string })?.text)));

  /** The calls of a spied method made by node `id` itself (the helper spies on the shared prototype). */
  const own = (id: string, method: 'warn' | 'status' | 'error'): Spied => {
    const all = spy(id, method) as Spied & { thisValues: unknown[] };
    const node = helper.getNode(id);
    return { args: all.args.filter((_, i) => all.thisValues[i] === node) };
  };

  it('says what is wrong instead of throwing: bad saved destination, invalid and duplicate procedures; msg.commands sends each command', async () => {
    const port = holder.address().port;
    const flow = [
      ...configs(port),
      // A destination saved by hand or by an old version that does not parse: the node still loads and receives.
      {
        id: 'e1',
        type: 'mbus-entity',
        config: 'c1',
        filters: ['chat.*'],
        destination: '((bad',
        wires: [['in1'], ['ev1']],
      },
      { id: 'e2', type: 'mbus-entity', config: 'c2', filters: ['chat.*'], wires: [['in2'], ['ev2']] },
      {
        id: 's1',
        type: 'mbus-rpc',
        config: 'c2',
        mode: 'serve',
        procedure: 'math.sum',
        procedures: ['bad name'],
        wires: [['calls']],
      },
      { id: 's2', type: 'mbus-rpc', config: 'c2', mode: 'serve', procedure: 'math.sum', wires: [['calls']] },
      { id: 'in1', type: 'helper' },
      { id: 'ev1', type: 'helper' },
      { id: 'in2', type: 'helper' },
      { id: 'ev2', type: 'helper' },
      { id: 'calls', type: 'helper' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ];
    await helper.load([mbusConfig, mbusEntity, mbusRpc, catchNode], flow as never, creds);
    const [in2, ev1, caught] = ['in2', 'ev1', 'caught'].map((id) => collect(helper.getNode(id) as TestNode));
    const e1 = helper.getNode('e1') as TestNode;
    // The bad destination is an error in the log and a red status that the config node's status does not paint over.
    assert.ok(
      texts(own('e1', 'error')).some((t) => /mbus-entity\.error\.destination/.test(t)),
      'the bad destination is reported',
    );
    await until(() => ev1.find((m) => m.topic === 'new-entity'), 'e1 sees c2');
    const shown = texts(own('e1', 'status'));
    assert.strictEqual(shown[shown.length - 1], 'mbus-entity.status.badDestination');
    // A msg without its own destination fails catchably, naming the saved destination; nothing is sent.
    e1.receive({ topic: 'chat.lost', payload: [] });
    await until(
      () =>
        caught.find(
          (m) => m.topic === 'chat.lost' && /mbus-entity\.error\.destination/.test(String((m.error as Msg).message)),
        ),
      'bad destination is catchable',
    );
    // msg.commands: every command arrives, in order, at the destination the msg names.
    e1.receive({
      commands: [
        { name: 'chat.a', args: [1] },
        { name: 'chat.b', payload: ['x'] },
      ],
      destination: '(module:two)',
    });
    await until(() => in2.find((m) => m.topic === 'chat.b'), 'chat.b at e2');
    assert.deepStrictEqual(
      in2.map((m) => [m.topic, m.payload]),
      [
        ['chat.a', [1]],
        ['chat.b', ['x']],
      ],
    );
    // A bad name in msg.commands fails the msg, naming the entry.
    e1.receive({ commands: [{ name: 'chat.ok' }, { name: '9 bad' }], destination: '(module:two)' });
    await until(
      () => caught.find((m) => /mbus-entity\.error\.commandName/.test(String((m.error as Msg).message))),
      'bad msg.commands entry',
    );
    // Procedure names: an invalid one is said by its node, one served twice by its config node.
    assert.ok(
      texts(own('s1', 'warn')).some((t) => t === 'mbus-rpc.warn.invalidProcedures'),
      'invalid procedure name said',
    );
    await until(
      () => texts(own('c2', 'warn')).includes('mbus-config.warn.duplicateProcedure'),
      'duplicate procedure said',
    );
    // Nothing of the failed msgs went out: only the two commands of the good msg arrived.
    e1.receive({ topic: 'chat.last', payload: [], destination: '(module:two)' });
    await until(() => in2.find((m) => m.topic === 'chat.last'), 'a later good msg arrives');
    assert.deepStrictEqual(
      in2.map((m) => m.topic),
      ['chat.a', 'chat.b', 'chat.last'],
    );
  });

  it('starts by itself once the port is free: status says why meanwhile, one warning per reason, no redeploy', async () => {
    // A program that holds the port without SO_REUSEADDR (so our reuseAddr bind fails with EADDRINUSE).
    const blocker = dgram.createSocket({ type: 'udp4' });
    await new Promise<void>((r) => blocker.bind({ port: 0, exclusive: true }, () => r()));
    const port = blocker.address().port;
    let freed = false;
    try {
      const flow = [
        { ...configs(port)[0] },
        { id: 'e1', type: 'mbus-entity', config: 'c1', wires: [[], ['ev1']] },
        { id: 'ev1', type: 'helper' },
      ];
      await helper.load([mbusConfig, mbusEntity], flow as never, {}); // no key: the public example key
      const ev1 = collect(helper.getNode('ev1') as TestNode);
      const status = spy('e1', 'status');
      await until(
        () => texts(status).filter((t) => t === 'mbus-config.status.retrying').length >= 2,
        'two retries shown in the status',
      );
      const warns = texts(spy('c1', 'warn'));
      assert.deepStrictEqual(
        warns.filter((t) => t === 'mbus-config.warn.startFailed'),
        ['mbus-config.warn.startFailed'],
        'warned once for the same reason',
      );
      assert.ok(warns.includes('mbus-config.warn.exampleKey'), 'the example key is named');
      assert.ok(!(helper.getNode('c1') as unknown as { entity: { isRunning: boolean } }).entity.isRunning);
      // The dialog's "In effect" names the reason and the example key.
      const eff = (await helper.request().get('/mbus-config/c1/effective').expect(200)).body as Msg;
      assert.deepStrictEqual(
        [eff.running, eff.startFailure, eff.exampleKey],
        [false, 'mbus-config.openFailure.port-in-use', true],
      );
      await new Promise<void>((r) => blocker.close(() => r()));
      freed = true;
      await until(
        () => (status.args[status.args.length - 1][0] as { fill?: string }).fill === 'green',
        'green once the port is free',
        40000,
      );
      // And it is on the bus: a peer's hello is heard.
      const sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
      const peer = dgram.createSocket('udp4');
      await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
      peer.setMulticastInterface('127.0.0.1');
      peer.setMulticastTTL(0);
      const peerAddr = Address.parse(`(app:raw module:late id:${process.pid}-78@127.0.0.1)`);
      try {
        peer.send(
          sealDatagram(
            sec,
            formatMessage({
              seq: 0,
              timestamp: Date.now(),
              reliable: false,
              source: peerAddr,
              destination: Address.empty,
              acks: [],
              commands: [{ name: 'mbus.hello', args: [] }],
            }),
          ),
          port,
          '224.255.222.239',
        );
        await until(() => ev1.find((m) => m.topic === 'new-entity'), 'new-entity after the late start');
      } finally {
        peer.close();
      }
    } finally {
      if (!freed) blocker.close();
    }
  });

  it("a spoofed datagram with a local entity's address neither breaks RPC nor goes unreported", async () => {
    const port = holder.address().port;
    const flow = [
      ...configs(port),
      {
        id: 'caller',
        type: 'mbus-rpc',
        config: 'c1',
        mode: 'call',
        procedure: 'math.sum',
        destination: '(app:nrtest module:two)',
        timeout: 2000,
        wires: [['results']],
      },
      { id: 'srv', type: 'mbus-rpc', config: 'c2', mode: 'serve', procedure: 'math.sum', wires: [['calls']] },
      { id: 'results', type: 'helper' },
      { id: 'calls', type: 'helper' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
      { id: 'caught', type: 'helper' },
    ];
    await helper.load([mbusConfig, mbusRpc, catchNode], flow as never, creds);
    const [results, caught] = ['results', 'caught'].map((id) => collect(helper.getNode(id) as TestNode));
    const srv = helper.getNode('srv') as TestNode;
    (helper.getNode('calls') as TestNode).on('input', (m) =>
      srv.receive({ ...m, payload: [(m.payload as number[]).reduce((a, b) => a + b, 0)] }),
    );
    const entityOf = (id: string) =>
      (
        helper.getNode(id) as unknown as {
          entity: { address: Address; entities: Array<{ address: Address }>; counters: Map<string, number> };
        }
      ).entity;
    await until(() => entityOf('c1').entities.length === 1 && entityOf('c2').entities.length === 1, 'discovery');
    // Signed with the right key, claiming c1's address, from another socket: a bye, and calls with the SeqNums c1 is
    // about to use (without the check, c2 would forget c1 and then suppress c1's real calls as duplicates).
    const sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
    const spoofer = dgram.createSocket('udp4');
    await new Promise<void>((r) => spoofer.bind(0, '127.0.0.1', () => r()));
    spoofer.setMulticastInterface('127.0.0.1');
    spoofer.setMulticastTTL(0);
    try {
      const c1 = entityOf('c1').address;
      const c2 = entityOf('c2').address;
      const send = (seq: number, reliable: boolean, name: string): void =>
        spoofer.send(
          sealDatagram(
            sec,
            formatMessage({
              seq,
              timestamp: Date.now(),
              reliable,
              source: c1,
              destination: reliable ? c2 : Address.empty,
              acks: [],
              commands: [{ name, args: [] }],
            }),
          ),
          port,
          '224.255.222.239',
        );
      send(0, false, 'mbus.bye');
      for (let seq = 0; seq < 100; seq++) send(seq, true, 'math.sum');
      await until(() => entityOf('c2').counters.get('spoofed') === 101, 'all spoofs dropped and counted');
    } finally {
      spoofer.close();
    }
    (helper.getNode('caller') as TestNode).receive({ payload: [20, 22] });
    await until(() => results.length > 0 || caught.length > 0, 'the call after the spoof');
    assert.deepStrictEqual(
      results.map((m) => m.payload),
      [[42]],
    );
    // Said once at once, the rest counted for the once-a-minute line.
    // Both entities saw the spoofs (c1 its own address from a foreign socket): each said it once at once, the rest
    // is counted for the once-a-minute line. (The helper's warn spy is shared by all nodes.)
    assert.deepStrictEqual(
      texts(spy('c2', 'warn')).filter((t) => t.startsWith('mbus-config.warn.dropped')),
      ['mbus-config.warn.dropped', 'mbus-config.warn.dropped'],
    );
  });
});
