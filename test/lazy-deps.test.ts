// Installed but unused costs little: loading every node file (as Node-RED does at start) loads none of the heavy
// dependencies; they come with the first node that needs them (src/common/lazy.ts).
import assert from 'assert';
import { execFileSync } from 'child_process';
import path from 'path';

const root = path.join(__dirname, '..', '..');
const HEAVY = ['mqtt', 'aedes', 'yaml', 'ajv', 'ws'];

/**
 * Runs in a fresh Node.js process: registers every node set of package.json with a RED stub that accepts any call,
 * then prints the registered types and which heavy packages ended up in the module cache.
 */
const probe = `
const path = require('path');
const root = process.argv[1];
const pkg = require(path.join(root, 'package.json'));
const registered = [];
const anything = () => new Proxy(function () {}, { get: (_t, key) => (key === 'then' ? undefined : anything()), apply: () => anything() });
const RED = new Proxy({}, {
  get: (_t, key) => key === 'nodes'
    ? new Proxy({}, { get: (_n, k) => (k === 'registerType' ? (type) => registered.push(type) : anything()) })
    : anything(),
});
for (const file of Object.values(pkg['node-red'].nodes)) {
  const before = registered.length;
  const init = require(path.join(root, file));
  if (typeof init === 'function') init(RED);
  if (registered.length === before) throw new Error(file + ' registered no node type');
}
const loaded = ${JSON.stringify(HEAVY)}.filter((name) => Object.keys(require.cache).some((f) => f.includes(path.sep + 'node_modules' + path.sep + name + path.sep)));
process.stdout.write(JSON.stringify({ registered, loaded }));
`;

describe('footprint: lazy dependencies', () => {
  it('loads no heavy dependency when Node-RED loads the node files', function () {
    this.timeout(30000);
    const out = execFileSync(process.execPath, ['-e', probe, root], { encoding: 'utf8' });
    const { registered, loaded } = JSON.parse(out) as { registered: string[]; loaded: string[] };
    assert.ok(
      registered.includes('apigear-client') && registered.includes('sg-broker') && registered.includes('msb-config'),
      `registered: ${registered.join(', ')}`,
    );
    assert.deepStrictEqual(loaded, [], `loaded at start: ${loaded.join(', ')}`);
  });

  it('loads them on first use', () => {
    const out = execFileSync(
      process.execPath,
      [
        '-e',
        `try { require(${JSON.stringify(path.join(root, 'dist/src/apigear/module.js'))}).parseModule('name: a.b'); } catch {} process.stdout.write(String(Object.keys(require.cache).some((f) => f.includes('/node_modules/yaml/'))))`,
      ],
      { encoding: 'utf8' },
    );
    assert.strictEqual(out, 'true');
  });
});
