// The sg nodes' editor side and examples: the HTML definitions parse with literal registerType calls, catalogs
// exist in en-US and de with the same keys, the plan preview endpoint answers, and the taxi example works end to end.
import assert from 'assert';
import fs from 'fs';
import path from 'path';
import helper from 'node-red-node-test-helper';
import type { NodeMessage } from '../nodes/lib/red';
import { coreInjectFunctionDebug, load, sgNodes } from './lib/nodes';
import { editorSection, sourceFiles } from './lib/package-facts';
import { poller } from './support/until';

helper.init(require.resolve('node-red'));

const root = path.join(__dirname, '..', '..');
const types = ['sg-broker', 'sg-resource', 'sg-app'];

function keys(obj: unknown, prefix = ''): string[] {
  if (typeof obj !== 'object' || obj === null) return [prefix];
  return Object.entries(obj).flatMap(([k, v]) => keys(v, prefix ? `${prefix}.${k}` : k));
}

describe('sg editor files', () => {
  for (const type of types) {
    it(`${type}.html registers the type literally and its script compiles`, () => {
      const html = editorSection(type);
      const script = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html)?.[1] ?? '';
      assert.ok(script.includes(`RED.nodes.registerType('${type}', {`), 'literal registerType with an inline object');
      let registered: { category?: string; color?: string; icon?: string; defaults?: object } | undefined;
      const RED = {
        nodes: { registerType: (_t: string, def: typeof registered) => (registered = def) },
        _: (k: string) => k,
        validators: {},
      };
      new Function('RED', '$', script)(RED, () => undefined);
      assert.ok(registered?.defaults);
      if (type !== 'sg-broker')
        assert.deepStrictEqual(
          [registered?.category, registered?.color, registered?.icon],
          ['Secure Gateway', '#C0DEED', 'busbar-sg.svg'],
        );
      assert.ok(html.includes(`data-template-name="${type}"`));
    });

    it(`${type} has help and a catalog in en-US and de with the same keys`, () => {
      const en = JSON.parse(fs.readFileSync(sourceFiles.catalog(type, 'en-US'), 'utf8')) as object;
      const de = JSON.parse(fs.readFileSync(sourceFiles.catalog(type, 'de'), 'utf8')) as object;
      assert.deepStrictEqual(keys(de).sort(), keys(en).sort());
      for (const lang of ['en-US', 'de']) {
        const help = fs.readFileSync(sourceFiles.help(type, lang), 'utf8');
        assert.ok(help.includes(`data-help-name="${type}"`));
      }
      const html = editorSection(type);
      for (const key of html.matchAll(/data-i18n="(?:\[[a-z]+\])?([a-z-]+\.[a-zA-Z.-]+)"/g)) {
        if (!key[1]?.startsWith(type)) continue;
        assert.ok(keys(en).includes(key[1]), `catalog has ${key[1]}`);
      }
    });
  }
});

describe('sg-resource plan preview and examples', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('POST /sg-resource/plan returns what the resource will send, from the runtime compiler', async () => {
    await load(sgNodes, []);
    const res = await helper
      .request()
      .post('/sg-resource/plan')
      .send({
        resource: 'taxisignservice',
        commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False' }],
        data: [],
        qos: 1,
        clean: true,
      })
      .expect(200);
    const body = res.body as { lines: string[]; warnings: string[] };
    assert.deepStrictEqual(body.lines, [
      'client id: taxisignservice-<pid>',
      'will: resourceavailable/taxisignservice/presence = False (QoS 1, retained)',
      'SUBSCRIBE command/taxisignservice/state (QoS 1)',
      'PUBLISH resourceavailable/taxisignservice/presence = True (QoS 1, retained)',
      'PUBLISH commandavailable/taxisignservice/state = True (QoS 1, retained)',
      'PUBLISH dataavailable/taxisignservice/state = True (QoS 1, retained)',
      'PUBLISH data/taxisignservice/state = False (QoS 1, retained)',
    ]);
  });

  it('POST /sg-resource/plan also returns catalog keys, so the dialog translates the preview and its warnings', async () => {
    await load(sgNodes, []);
    const post = async (
      body: object,
    ): Promise<{
      warnings: string[];
      steps: Array<{ key: string; args: Record<string, unknown> }>;
      issues?: Array<{ key: string; args: Record<string, unknown> }>;
    }> => (await helper.request().post('/sg-resource/plan').send(body).expect(200)).body;
    const ok = await post({
      resource: 'taxisignservice',
      commands: [{ signal: 'state', echo: false, defaultValue: null }],
      data: [{ signal: 'fare', retained: false, defaultValue: '8' }],
      qos: 2,
      clean: false,
    });
    assert.deepStrictEqual(ok.steps, [
      { key: 'client-id', args: { id: 'taxisignservice' } },
      { key: 'will', args: { topic: 'resourceavailable/taxisignservice/presence', payload: 'False', qos: 2 } },
      { key: 'subscribe', args: { topic: 'command/taxisignservice/state', qos: 2 } },
      {
        key: 'publish-retained',
        args: { topic: 'resourceavailable/taxisignservice/presence', payload: 'True', qos: 2 },
      },
      { key: 'publish-retained', args: { topic: 'dataavailable/taxisignservice/fare', payload: 'True', qos: 2 } },
      { key: 'publish', args: { topic: 'data/taxisignservice/fare', payload: '8', qos: 2 } },
      { key: 'publish-retained', args: { topic: 'commandavailable/taxisignservice/state', payload: 'True', qos: 2 } },
    ]);
    assert.deepStrictEqual(ok.issues, []);
    const bad = await post({
      resource: 'taxi',
      commands: [{ signal: 'state' }, { signal: 'state', echo: false }, { signal: 'a/b' }],
      data: [{ signal: '' }, { signal: 'state' }],
    });
    assert.deepStrictEqual(bad.issues, [
      { key: 'data-bad', args: { signal: '' } },
      { key: 'twice', args: { topic: 'command/taxi/state' } },
      { key: 'command-bad', args: { signal: 'a/b' } },
    ]);
    assert.strictEqual(bad.warnings.length, 3, bad.warnings.join('\n'));
    const echoed = await post({ resource: 'taxi', commands: [{ signal: 'state' }], data: [{ signal: 'state' }] });
    assert.deepStrictEqual(echoed.issues, [{ key: 'echo-and-data', args: { topic: 'data/taxi/state' } }]);
    assert.deepStrictEqual((await post({ resource: ' ' })).issues, [{ key: 'name-empty', args: { name: '' } }]);
    assert.deepStrictEqual((await post({ resource: 'a+b' })).issues, [{ key: 'name-bad', args: { name: 'a+b' } }]);
    // Every key the endpoint can send has a text in both catalogs.
    for (const lang of ['en-US', 'de']) {
      const catalog = JSON.parse(fs.readFileSync(sourceFiles.catalog('sg-resource', lang), 'utf8'))['sg-resource'].plan;
      for (const key of [
        'client-id',
        'will',
        'no-will',
        'subscribe',
        'publish',
        'publish-retained',
        'name-empty',
        'name-bad',
        'data-bad',
        'command-bad',
        'twice',
        'echo-and-data',
      ]) {
        assert.ok(typeof catalog[key] === 'string', `${lang} sg-resource.plan.${key}`);
      }
    }
  });

  it('the Taxi app example turns the taxi sign on and off through the embedded broker', async () => {
    // The app and the sign are two examples on the same embedded broker config node (as in the npm start demo).
    const read = (file: string): Array<Record<string, unknown>> =>
      JSON.parse(fs.readFileSync(path.join(root, 'examples', 'sg', file), 'utf8'));
    const sign = read('Taxi sign resource.json');
    const flow = [...read('Taxi app.json'), ...sign.filter((n) => n.type !== 'sg-broker')];
    for (const n of flow) {
      if (n.type === 'sg-broker') n.embeddedPort = 0; // the test must not need port 1884
      if (n.type === 'debug') Object.assign(n, { type: 'helper' });
    }
    await load([...coreInjectFunctionDebug, ...(sgNodes as unknown as never[])] as never, flow);
    const debug = flow.find((n) => n.type === 'helper')?.id as string;
    const seen: NodeMessage[] = [];
    (helper.getNode(debug) as unknown as { on(e: 'input', l: (m: NodeMessage) => void): void }).on('input', (m) =>
      seen.push(m),
    );
    const until = poller(8000, 10);
    await until(
      () => seen.some((m) => m.messagetype === 'resourceavailable' && m.payload === true),
      'the resource is available',
    );
    await until(() => seen.some((m) => m.messagetype === 'data' && m.payload === 'False'), 'the sign starts off');
    const inject = (name: string): void => {
      const id = flow.find((n) => n.type === 'inject' && n.name === name)?.id as string;
      (helper.getNode(id) as unknown as { receive(m: object): void }).receive({});
    };
    inject('sign on');
    await until(() => seen.some((m) => m.messagetype === 'data' && m.payload === 'True'), 'the sign turned on');
    inject('sign off');
    await until(
      () => seen.filter((m) => m.messagetype === 'data' && m.payload === 'False').length === 2,
      'the sign turned off again',
    );
  });
});
