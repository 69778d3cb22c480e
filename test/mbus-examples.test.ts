// The shipped Mbus example flows run as imported (on a free port instead of 47000) and do what their comments say.
import assert from 'assert';
import dgram from 'dgram';
import fs from 'fs';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { poller } from './support/until';

const nodes = [
  require('../nodes/mbus/mbus-config'),
  require('../nodes/mbus/mbus-entity'),
  require('../nodes/mbus/mbus-rpc'),
  require('@node-red/nodes/core/common/20-inject.js'),
  require('@node-red/nodes/core/common/21-debug.js'),
  require('@node-red/nodes/core/common/25-catch.js'),
  require('@node-red/nodes/core/common/90-comment.js'),
  require('@node-red/nodes/core/function/10-function.js'),
  require('@node-red/nodes/core/function/15-change.js'),
];

helper.init(require.resolve('node-red'));

type Msg = Record<string, unknown>;
type FlowNode = Msg & { id: string; type: string; wires?: string[][] };
interface TestNode {
  on(ev: 'input', fn: (msg: Msg) => void): void;
  receive(msg: Msg): void;
}

const examples = path.join(__dirname, '..', '..', 'examples', 'mbus');

const until = poller(8000, 20);

/** Loads an example with its port replaced and a helper node tapped onto the given outputs. */
async function loadExample(
  file: string,
  port: number,
  taps: Record<string, [string, number]>,
): Promise<Record<string, Msg[]>> {
  const flow = JSON.parse(fs.readFileSync(path.join(examples, file), 'utf8')) as FlowNode[];
  const z = flow.find((n) => n.type === 'tab')!.id;
  for (const n of flow) if (n.type === 'mbus-config') n.port = port;
  const out: Record<string, Msg[]> = {};
  for (const [tap, [nodeId, output]] of Object.entries(taps)) {
    const n = flow.find((x) => x.id === nodeId)!;
    n.wires![output].push(tap);
    flow.push({ id: tap, type: 'helper', z, x: 0, y: 0 });
    out[tap] = [];
  }
  await helper.load(nodes, flow as never);
  for (const tap of Object.keys(taps)) (helper.getNode(tap) as TestNode).on('input', (m) => out[tap].push(m));
  return out;
}

describe('mbus example flows', function () {
  let holder: dgram.Socket;
  before(() => helper.startServer());
  after(() => helper.stopServer());
  beforeEach(async () => {
    holder = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((r) => holder.bind({ port: 0, exclusive: false }, () => r()));
  });
  afterEach(async () => {
    await helper.unload();
    holder.close();
  });

  const peers = (id: string): number =>
    (helper.getNode(id) as unknown as { entity: { entities: unknown[] } }).entity.entities.length;

  it('"Two entities chatting": Alice says hello reliably, Bob replies', async () => {
    const t = await loadExample('Two entities chatting.json', holder.address().port, {
      aliceGot: ['mbus-chat-alice', 0],
      bobGot: ['mbus-chat-bob', 0],
    });
    await until(() => peers('mbus-chat-cfg-alice') === 1 && peers('mbus-chat-cfg-bob') === 1, 'discovery');
    (helper.getNode('mbus-chat-inject') as TestNode).receive({});
    const said = await until(() => t.bobGot.find((m) => m.topic === 'chat.say'), 'chat.say at Bob');
    assert.deepStrictEqual(said.payload, ['hello Bob', 42, 2.5]);
    const reply = await until(() => t.aliceGot.find((m) => m.topic === 'chat.reply'), 'chat.reply at Alice');
    assert.ok(String((reply.payload as unknown[])[0]).includes('module:alice'));
    (helper.getNode('mbus-chat-shout') as TestNode).receive({});
    await until(() => t.bobGot.find((m) => m.topic === 'chat.shout'), 'chat.shout at Bob');
  });

  it('"RPC server and client": sum, FAILED division, UNKNOWN procedure', async () => {
    const t = await loadExample('RPC server and client.json', holder.address().port, { results: ['mbus-rpc-call', 0] });
    await until(() => peers('mbus-rpc-cfg-server') === 1 && peers('mbus-rpc-cfg-client') === 1, 'discovery');
    (helper.getNode('mbus-rpc-inject-sum') as TestNode).receive({});
    const sum = await until(() => t.results.find((m) => m.topic === 'math.sum'), 'sum');
    assert.deepStrictEqual(sum.payload, [8]);
    (helper.getNode('mbus-rpc-inject-div') as TestNode).receive({});
    const div = await until(() => t.results.find((m) => m.topic === 'math.div'), 'div');
    assert.deepStrictEqual([(div.rpc as Msg).success, (div.rpc as Msg).result], [false, 'DIV_BY_ZERO']);
    (helper.getNode('mbus-rpc-inject-pow') as TestNode).receive({});
    const pow = await until(() => t.results.find((m) => m.topic === 'math.pow'), 'pow');
    assert.strictEqual((pow.rpc as Msg).result, 'UNKNOWN');
  });
});
