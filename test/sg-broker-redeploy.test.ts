// The embedded broker across redeploys as the editor makes them: the sg and ApiGear examples on one shared broker,
// "Import copy" of an example (copies of its flow nodes, and a second sg-broker config node on the same port), a
// modified config node, the copies removed again. The broker keeps serving, no port-in-use ever surfaces, and a
// connection attempt that reaches a config node after it was closed takes no hold on the broker.
import assert from 'assert';
import crypto from 'crypto';
import fs from 'fs';
import net from 'net';
import path from 'path';
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import { EmbeddedBroker, SharedEmbeddedBroker } from '../src/mqtt/embedded-broker';
import type { SgBrokerNode } from '../nodes/sg/sg-broker-api';
import { lastStatus } from './support/node-calls';
import { poller } from './support/until';

helper.init(require.resolve('node-red'));

const waitFor = poller(20000, 25);
const core = (file: string): TestNodeInitializer =>
  require(path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core', file));
const nodes = [
  require('../nodes/sg/sg-broker'),
  require('../nodes/sg/sg-resource'),
  require('../nodes/sg/sg-app'),
  require('../nodes/apigear/apigear-service'),
  require('../nodes/apigear/apigear-client'),
  core('common/20-inject.js'),
  core('common/90-comment.js'),
  core('function/10-function.js'),
] as TestNodeInitializer[];

const { buildDemoFlows, listExamples } = require(path.join(__dirname, '..', '..', 'scripts', 'start.js')) as {
  buildDemoFlows(examples: Array<{ title: string; file: string }>): FlowNode[];
  listExamples(): Array<{ title: string; file: string }>;
};

type FlowNode = Record<string, unknown> & { id: string; type: string; z?: string };
const OURS = new Set(['sg-resource', 'sg-app', 'apigear-service', 'apigear-client']);

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Debug nodes become helper nodes; every embedded broker goes to the test's free port. */
function forTest(n: FlowNode, port: number): FlowNode {
  if (n.type === 'sg-broker') return { ...n, embeddedPort: port };
  if (n.type === 'debug') return { id: n.id, type: 'helper', z: n.z, name: n.name };
  return n;
}

/** What the editor's "Import copy" adds: the tab and its flow nodes under new ids (config references kept). */
function importCopy(file: string, port: number, broker?: string): FlowNode[] {
  const all = JSON.parse(fs.readFileSync(file, 'utf8')) as FlowNode[];
  const flow = all.filter((n) => n.type === 'tab' || n.z);
  const ids = new Map(flow.map((n) => [n.id, crypto.randomBytes(8).toString('hex')]));
  const text = JSON.stringify(flow).replace(/"([0-9a-f]{16})"/g, (m, id: string) =>
    ids.has(id) ? `"${ids.get(id)}"` : m,
  );
  return (JSON.parse(text) as FlowNode[]).map((n) => forTest(broker && n.broker ? { ...n, broker } : n, port));
}

/** Every warn/error any node logged (the helper spies on the Node prototype). */
function logged(): string[] {
  type Spy = { getCalls(): Array<{ args: unknown[] }> };
  const any = helper.getNode(ANY) as unknown as { warn: Spy; error: Spy } | null;
  if (!any) return [];
  return [...any.warn.getCalls(), ...any.error.getCalls()].map((c) => String(c.args[0]));
}
let ANY = '';

async function allGreen(flow: FlowNode[], what: string): Promise<void> {
  const ids = flow.filter((n) => OURS.has(n.type)).map((n) => n.id);
  assert.ok(ids.length > 0);
  await waitFor(
    () => ids.every((id) => lastStatus(id)?.fill === 'green'),
    `${what}: ${ids.map((id) => `${id} ${JSON.stringify(lastStatus(id))}`).join(', ')}`,
  );
}

describe('sg-broker across redeploys (Import copy, modified config node)', function () {
  this.timeout(120000);
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('keeps one broker serving the sg and ApiGear nodes; no port-in-use, no hold left after the last node', async () => {
    const probe = new EmbeddedBroker({ port: 0 });
    const port = await probe.start();
    await probe.close();
    const examples = listExamples().filter((e) => /^(sg|apigear) \//.test(e.title));
    const demo = buildDemoFlows(examples).map((n) => forTest(n, port));
    const brokerId = demo.find((n) => n.type === 'sg-broker')!.id;
    ANY = brokerId;
    const service = examples.find((e) => e.title.endsWith('Hello service'))!.file;
    const sign = examples.find((e) => e.title.endsWith('Taxi sign resource'))!.file;

    await helper.load(nodes as never, demo as never);
    await allGreen(demo, 'the demo');
    const closedNode = helper.getNode(brokerId) as unknown as SgBrokerNode;

    // Import copy twice, plus a copy of an example on a second sg-broker of the same port (its own config node, as
    // an example whose broker differs from the demo's brings along), full deploy: every config node is restarted.
    const second: FlowNode = {
      ...demo.find((n) => n.id === brokerId)!,
      id: 'b2b2b2b2b2b2b2b2',
      name: 'second',
      keepalive: '20',
    };
    const withCopies = [
      ...demo,
      ...importCopy(service, port),
      ...importCopy(service, port),
      second,
      ...importCopy(sign, port, second.id),
    ];
    await helper.setFlows(withCopies as never, 'full');
    await allGreen(withCopies, 'the demo with the copies');
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 2, 'one broker, held by both sg-broker nodes');

    // A client's connection attempt still under way when its config node was closed by the redeploy.
    await assert.rejects(closedNode.endpoint({ id: 'late-attempt', status: () => undefined }));
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 2, 'a closed config node takes no hold');

    // Back to the demo (copies and the second config node removed), then with a modified config node.
    await helper.setFlows(demo as never, 'full');
    await allGreen(demo, 'the demo after removing the copies');
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 1);
    const modified = demo.map((n) => (n.id === brokerId ? { ...n, keepalive: '15', queueSize: '5000' } : n));
    await helper.setFlows(modified as never, 'full');
    await allGreen(modified, 'the demo with a modified config node');
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 1);

    // The broker serves a client from outside too, and nothing reported the port as taken.
    const outside = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
    await outside.endAsync();
    assert.deepStrictEqual(
      logged().filter((t) => /in use|failed/i.test(t)),
      [],
    );

    await helper.unload();
    assert.strictEqual(SharedEmbeddedBroker.holders(port), 0, 'no hold left behind');
    assert.strictEqual(await refused(port), true, 'the port is free again');
  });
});
