// The package's `main` (for users of the protocol cores without Node-RED) resolves and exposes every bus.
import assert from 'assert';
import path from 'path';

describe('package main', () => {
  it('loads every protocol core from the path package.json names', () => {
    const root = path.join(__dirname, '..', '..');
    const pkg = require(path.join(root, 'package.json')) as { main: string };
    const main = require(path.join(root, pkg.main)) as Record<string, Record<string, unknown>>;
    for (const bus of ['msb', 'sg', 'mbus', 'apigear', 'mqtt']) {
      assert.ok(main[bus] && Object.keys(main[bus]).length > 0, `${bus} namespace is exported`);
    }
    assert.strictEqual(typeof main.msb.MsbEmulator, 'function');
    assert.strictEqual(typeof main.ConnectionPool, 'function');
  });
});
