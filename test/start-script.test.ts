// scripts/start.js without starting Node-RED: the userDir it prepares (package linked as a module, user's flows
// kept across starts) and the demo flow it builds from examples/ (one tab per example, references intact).
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { FlowNode, exampleFiles, nodeTypes, packageRoot } from './lib/package-facts';

const start = require(path.join(packageRoot, 'scripts', 'start.js')) as {
  prepareUserDir(userDir: string, demo?: string): 'kept' | 'written' | 'reset' | 'emptied';
  buildDemoFlows(examples?: Array<{ title: string; file: string }>): FlowNode[];
  listExamples(dir?: string): Array<{ title: string; file: string }>;
};

const quietly = <T>(fn: () => T): T => {
  const log = console.log;
  console.log = () => undefined;
  try {
    return fn();
  } finally {
    console.log = log;
  }
};

describe('npm start (scripts/start.js)', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-start-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('installs the package into the userDir as a module Node-RED will find', () => {
    const userDir = path.join(tmp, '.node-red');
    quietly(() => start.prepareUserDir(userDir));
    const link = path.join(userDir, 'node_modules', '@busbar', 'node-red-buses');
    assert.strictEqual(fs.realpathSync(link), fs.realpathSync(packageRoot));
    const userPkg = JSON.parse(fs.readFileSync(path.join(userDir, 'package.json'), 'utf8'));
    assert.ok(userPkg.dependencies['@busbar/node-red-buses'], 'the userDir package.json lists the package');
    const installed = JSON.parse(fs.readFileSync(path.join(link, 'package.json'), 'utf8'));
    assert.ok(installed['node-red'], 'the linked package has a node-red section');
    // A second start leaves the link and package.json as they are.
    const before = fs.readFileSync(path.join(userDir, 'package.json'), 'utf8');
    quietly(() => start.prepareUserDir(userDir));
    assert.strictEqual(fs.readFileSync(path.join(userDir, 'package.json'), 'utf8'), before);
  });

  it("writes the demo on the first start, keeps the user's flows later, rebuilds on --reset", () => {
    const userDir = path.join(tmp, 'ud');
    const flowFile = path.join(userDir, 'flows.json');
    assert.strictEqual(
      quietly(() => start.prepareUserDir(userDir)),
      'written',
    );
    const demo = JSON.parse(fs.readFileSync(flowFile, 'utf8')) as FlowNode[];
    assert.strictEqual(demo.length > 0, exampleFiles().length > 0);
    fs.writeFileSync(flowFile, '[{"id":"mine","type":"tab","label":"my edits"}]');
    assert.strictEqual(
      quietly(() => start.prepareUserDir(userDir)),
      'kept',
    );
    assert.match(fs.readFileSync(flowFile, 'utf8'), /my edits/);
    assert.strictEqual(
      quietly(() => start.prepareUserDir(userDir, 'reset')),
      'reset',
    );
    assert.match(fs.readFileSync(`${flowFile}.before-reset`, 'utf8'), /my edits/);
    assert.doesNotMatch(fs.readFileSync(flowFile, 'utf8'), /my edits/);
    assert.strictEqual(
      quietly(() => start.prepareUserDir(userDir, 'none')),
      'emptied',
    );
    assert.deepStrictEqual(JSON.parse(fs.readFileSync(flowFile, 'utf8')), []);
  });

  it('builds one deployable flow from every example: a tab each, unique ids, every reference resolved', () => {
    const flows = start.buildDemoFlows();
    const ids = new Set<string>();
    for (const n of flows) {
      assert.ok(!ids.has(n.id), `duplicate id ${n.id}`);
      ids.add(n.id);
    }
    const tabs = flows.filter((n) => n.type === 'tab');
    assert.ok(tabs.length >= exampleFiles().length, `${tabs.length} tabs for ${exampleFiles().length} examples`);
    const configTypes = new Set(
      nodeTypes()
        .filter((t) => t.definition?.category === 'config')
        .map((t) => t.type),
    );
    for (const n of flows) {
      if (n.type === 'tab' || configTypes.has(n.type)) continue;
      assert.ok(n.z && ids.has(n.z), `${n.type} ${n.id} is on no tab`);
      assert.ok(typeof n.x === 'number' && typeof n.y === 'number', `${n.type} ${n.id} has no position`);
      for (const port of n.wires ?? [])
        for (const t of port) assert.ok(ids.has(t), `${n.type} ${n.id} wired to missing ${t}`);
    }
    // Every property that named a node in the example names a node in the demo (config refs were remapped).
    const exampleIds = new Set<string>();
    for (const rel of exampleFiles()) {
      for (const n of JSON.parse(fs.readFileSync(path.join(packageRoot, 'examples', rel), 'utf8')) as FlowNode[]) {
        exampleIds.add(n.id);
      }
    }
    for (const n of flows) {
      for (const [k, v] of Object.entries(n)) {
        if (k !== 'id' && typeof v === 'string' && exampleIds.has(v) && !ids.has(v)) {
          assert.fail(`${n.type} ${n.id}.${k} still points at the example's id ${v}`);
        }
      }
    }
  });

  it("keeps the examples' ids, so an example imported into the demo finds its config nodes there", () => {
    const flows = start.buildDemoFlows();
    const demoIds = new Set(flows.map((n) => n.id));
    for (const rel of exampleFiles()) {
      for (const n of JSON.parse(fs.readFileSync(path.join(packageRoot, 'examples', rel), 'utf8')) as FlowNode[]) {
        assert.ok(demoIds.has(n.id), `${rel}: ${n.type} ${n.id} is not in the demo under its own id`);
      }
    }
  });

  it('runs every bus identity once in the demo (one sg resource per name, one MSB service per uuid, ...)', () => {
    const flows = start.buildDemoFlows();
    const once = (what: string, keys: string[]): void => {
      const seen = new Set<string>();
      for (const k of keys) {
        assert.ok(!seen.has(k), `${what} ${k} twice in the demo`);
        seen.add(k);
      }
    };
    const of = (type: string, key: (n: FlowNode) => unknown): string[] =>
      flows.filter((n) => n.type === type).map((n) => String(key(n)));
    once(
      'sg-resource',
      of('sg-resource', (n) => `${n.broker}/${n.resource}`),
    );
    once(
      'sg-app',
      of('sg-app', (n) => `${n.broker}/${n.app}`),
    );
    once(
      'msb-config uuid',
      of('msb-config', (n) => n.uuid),
    );
    once(
      'mbus-config address',
      of('mbus-config', (n) => JSON.stringify(n.addressElements)),
    );
    once(
      'apigear-service',
      of('apigear-service', (n) => `${n.broker}/${n.interface}`),
    );
    once(
      'embedded sg-broker port',
      of('sg-broker', (n) => (n.mode === 'external' ? n.id : n.embeddedPort)),
    );
  });
});

describe('examples, as a newcomer meets them', () => {
  const configTypes = new Set(
    nodeTypes()
      .filter((t) => t.definition?.category === 'config')
      .map((t) => t.type),
  );
  configTypes.add('tls-config');
  for (const rel of exampleFiles()) {
    const flow = JSON.parse(fs.readFileSync(path.join(packageRoot, 'examples', rel), 'utf8')) as FlowNode[];

    it(`${rel}: has a tab of its own holding every flow node`, () => {
      const tabs = flow.filter((n) => n.type === 'tab');
      assert.strictEqual(tabs.length, 1, 'one tab');
      const loose = flow.filter((n) => n.type !== 'tab' && !configTypes.has(n.type) && n.z !== tabs[0].id);
      assert.deepStrictEqual(
        loose.map((n) => `${n.type} ${n.id}`),
        [],
        'flow nodes not on the tab (an admin-API deploy would not start them)',
      );
    });

    it(`${rel}: names every node, so the debug sidebar shows names and not ids`, () => {
      const unnamed = flow.filter((n) => n.type !== 'tab' && !String(n.name ?? '').trim());
      assert.deepStrictEqual(
        unnamed.map((n) => `${n.type} ${n.id}`),
        [],
      );
    });

    it(`${rel}: repeats injects at most once a minute, so the debug sidebar stays readable`, () => {
      const fast = flow.filter((n) => n.type === 'inject' && String(n.repeat ?? '') !== '' && Number(n.repeat) < 60);
      assert.deepStrictEqual(
        fast.map((n) => `${n.name}: every ${n.repeat} s`),
        [],
      );
    });
  }
});

describe('npm start demo flow builder', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-start-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('shares config nodes that are identical apart from id and name, and keeps different ones apart', () => {
    const dir = path.join(tmp, 'examples');
    fs.mkdirSync(dir);
    const cfg = (id: string, name: string, port: number) => ({ id, type: 'x-config', name, port });
    const user = (id: string, server: string) => ({ id, type: 'x-node', z: 't', server, x: 100, y: 100, wires: [] });
    fs.writeFileSync(path.join(dir, 'A.json'), JSON.stringify([cfg('c1', 'one', 1884), user('n1', 'c1')]));
    fs.writeFileSync(path.join(dir, 'B.json'), JSON.stringify([cfg('c1', 'other name', 1884), user('n1', 'c1')]));
    fs.writeFileSync(path.join(dir, 'C.json'), JSON.stringify([cfg('c1', 'one', 1999), user('n1', 'c1')]));
    const flows = start.buildDemoFlows(start.listExamples(dir));
    const configs = flows.filter((n) => n.type === 'x-config');
    assert.deepStrictEqual(configs.map((c) => c.port).sort(), [1884, 1999]);
    const users = flows.filter((n) => n.type === 'x-node');
    assert.strictEqual(users.length, 3);
    assert.strictEqual(users[0].server, users[1].server, 'A and B share their identical config node');
    assert.notStrictEqual(users[0].server, users[2].server, 'C keeps its own');
    assert.deepStrictEqual(
      flows.filter((n) => n.type === 'tab').map((t) => t.label),
      ['A', 'B', 'C'],
    );
  });
});
