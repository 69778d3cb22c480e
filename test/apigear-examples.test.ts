// The ApiGear example flows, imported together as a user would, really run: say round-trips, a bad argument is caught.
// Also the editor's module-parsing endpoint.
import assert from 'assert';
import fs from 'fs';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { green } from './support/node-calls';
import type { TestNodeInitializer } from 'node-red-node-test-helper';

helper.init(require.resolve('node-red'));

const core = (file: string): TestNodeInitializer =>
  require(path.join(path.dirname(require.resolve('@node-red/nodes/package.json')), 'core', file));

const nodes = [
  require('../nodes/sg/sg-broker'),
  require('../nodes/apigear/apigear-service'),
  require('../nodes/apigear/apigear-client'),
  core('common/20-inject.js'),
  core('common/90-comment.js'),
  core('function/10-function.js'),
] as TestNodeInitializer[];

const examples = path.join(__dirname, '..', '..', 'examples', 'apigear');

type FlowNode = Record<string, unknown> & { id: string; type: string };

function exampleFlow(): FlowNode[] {
  const byId = new Map<string, FlowNode>();
  for (const file of ['Hello service.json', 'Hello client.json']) {
    for (const n of JSON.parse(fs.readFileSync(path.join(examples, file), 'utf8')) as FlowNode[]) byId.set(n.id, n);
  }
  return [...byId.values()].map((n) => {
    // Tests never bind a fixed port, and see debug output through helper nodes; the flows are otherwise as shipped.
    if (n.type === 'sg-broker')
      return process.env.MQTT_URL
        ? {
            ...n,
            mode: 'external',
            host: new URL(process.env.MQTT_URL).hostname,
            port: Number(new URL(process.env.MQTT_URL).port || 1883),
          }
        : { ...n, embeddedPort: 0 };
    if (n.type === 'debug') return { id: n.id, type: 'helper', z: n.z, name: n.name };
    return n;
  });
}

/** A node by name, on the tab of the given example ('service' or 'client'). */
function byName(flow: FlowNode[], name: string, tab?: 'service' | 'client'): string {
  const tabId = tab && flow.find((n) => n.type === 'tab' && String(n.label).endsWith(tab))?.id;
  const found = flow.find((n) => n.name === name && (!tabId || n.z === tabId));
  if (!found) throw new Error(`no node named ${name}`);
  return found.id;
}

function trigger(id: string): void {
  (helper.getNode(id) as unknown as { receive(m: object): void }).receive({});
}

function next(id: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) =>
    (helper.getNode(id) as unknown as { once(e: string, fn: (m: Record<string, unknown>) => void): void }).once(
      'input',
      resolve,
    ),
  );
}

describe('apigear examples', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());
  after(async () => {
    // On a shared broker, leave no retained io.world/Hello value behind for the next run.
    if (!process.env.MQTT_URL) return;
    const mqtt = await import('mqtt');
    const c = await mqtt.connectAsync(process.env.MQTT_URL, { protocolVersion: 5 });
    await c.publishAsync('io.world/Hello/prop/last', '', { retain: true, qos: 1 });
    await c.endAsync();
  });

  it('Hello service and Hello client run together: say returns, set last comes back, a bad argument is caught', async () => {
    const flow = exampleFlow();
    await helper.load(nodes as never, flow as never);
    const svc = byName(flow, 'Hello service');
    const cli = byName(flow, 'Hello client');
    await Promise.all([green(svc), green(cli)]);

    const result = next(byName(flow, 'say results'));
    trigger(byName(flow, 'call say'));
    assert.strictEqual((await result).payload, 'Hello ApiGear'.length);

    // The service sets `last`; the client sees it. Then the client asks to change it; the service applies the request.
    let prop = next(byName(flow, 'property changes'));
    trigger(byName(flow, 'set last', 'service'));
    assert.deepStrictEqual((await prop).payload, { content: 'Hello from Node-RED' });
    prop = next(byName(flow, 'property changes'));
    const setReq = next(byName(flow, 'set requests'));
    trigger(byName(flow, 'set last', 'client'));
    assert.deepStrictEqual((await setReq).payload, { content: 'set by the client' });
    assert.deepStrictEqual((await prop).payload, { content: 'set by the client' });

    const failure = next(byName(flow, 'call failures'));
    trigger(byName(flow, 'bad argument'));
    assert.match(((await failure).error as { message: string }).message, /Hello\.say\(when\): must be a When value/);
  });

  it('the editor endpoint parses module YAML into interfaces and members, and names what is wrong', async () => {
    await helper.load(nodes as never, [] as never);
    const yaml = fs.readFileSync(path.join(examples, 'Hello service.json'), 'utf8');
    const moduleYaml = (JSON.parse(yaml) as FlowNode[]).find((n) => n.type === 'apigear-service')!.moduleYaml as string;
    const ok = await helper.request().post('/busbar/apigear/module').send({ yaml: moduleYaml }).expect(200);
    assert.strictEqual(ok.body.module, 'io.world');
    assert.deepStrictEqual(ok.body.interfaces[0].operations, [
      { name: 'say', params: 'msg: Message, when: When', returns: 'int' },
    ]);
    assert.deepStrictEqual(ok.body.interfaces[0].properties, [{ name: 'last', type: 'Message', readonly: false }]);
    const bad = await helper
      .request()
      .post('/busbar/apigear/module')
      .send({ yaml: 'name: io.world\ninterfaces: [{name: Hello, properties: [{name: p, type: Nope}]}]' })
      .expect(400);
    assert.match(bad.body.error, /Hello\.p: unknown type Nope/);
  });
});
