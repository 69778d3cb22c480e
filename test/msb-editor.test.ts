// The MSB editor files without a browser: literal registerType definitions (as the Flow Library scorecard parses
// them), their validators, i18n keys present in both catalogs, help in both languages, and examples that match the
// emulator's demo flows.
import assert from 'assert';
import fs from 'fs';
import path from 'path';
import vm from 'vm';
import { webcrypto } from 'crypto';
import { demoFlows, STATUS_KEYWORDS } from '../src/msb';
import { editorSection, sourceFiles } from './lib/package-facts';

const root = path.join(__dirname, '..', '..');
const TYPES = ['msb-config', 'msb-event-out', 'msb-function-in'];
const LANGS = ['en-US', 'de'];

type Def = {
  category: string;
  color?: string;
  icon?: string;
  defaults: Record<
    string,
    { value: unknown; validate?: (this: Record<string, unknown>, v: unknown, opt?: unknown) => boolean | string }
  >;
  credentials?: Record<string, { type: string }>;
  label: (this: Record<string, unknown>) => string;
};

function editorScript(type: string): string {
  const html = editorSection(type);
  const m = /<script type="text\/javascript">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, `${type}.html has a text/javascript block`);
  return m[1];
}

/** The package's resources/ scripts that a type's .html loads with <script src>, which Node-RED serves from resources/. */
function resourceScripts(type: string): string[] {
  const html = editorSection(type);
  return [...html.matchAll(/<script src="resources\/@busbar\/node-red-buses\/([^"]+)"><\/script>/g)].map((m) =>
    fs.readFileSync(path.join(root, 'resources', m[1]), 'utf8'),
  );
}

function definition(
  type: string,
  configs: Array<Record<string, unknown>> = [],
): { def: Def; window: Record<string, unknown> } {
  let captured: Def | undefined;
  const window: Record<string, unknown> = { crypto: webcrypto };
  const RED = {
    nodes: {
      registerType: (t: string, def: Def) => t === type && (captured = def),
      eachConfig: (fn: (n: Record<string, unknown>) => void) => configs.forEach(fn),
    },
    validators: { number: () => () => true },
    // Catalog lookup stand-in: the full key (with the substitutions), so a test sees which message a validator picked.
    _: (key: string, sub?: Record<string, unknown>) => (sub ? `${key} ${JSON.stringify(sub)}` : key),
  };
  const context = vm.createContext({ RED, window, $: () => undefined });
  // The shared editor scripts the .html loads from resources/ run first, as in Node-RED; what they put on window is a
  // global for the node's own script, as in a browser.
  const before = new Set(Object.keys(window));
  for (const src of resourceScripts(type)) vm.runInContext(src, context);
  for (const key of Object.keys(window)) if (!before.has(key)) context[key] = window[key];
  vm.runInContext(editorScript(type), context);
  assert.ok(captured, `${type} registered`);
  return { def: captured, window };
}

function lookup(catalog: unknown, key: string): unknown {
  return key
    .split('.')
    .reduce<unknown>(
      (node, part) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined),
      catalog,
    );
}

describe('msb editor definitions', () => {
  for (const type of TYPES) {
    it(`${type}: literal registerType with palette category, colour and icon`, () => {
      assert.match(editorScript(type), new RegExp(`RED\\.nodes\\.registerType\\('${type}', \\{`));
      const { def } = definition(type);
      if (type === 'msb-config') {
        assert.strictEqual(def.category, 'config');
        assert.strictEqual(JSON.stringify(def.credentials), JSON.stringify({ token: { type: 'password' } }));
      } else {
        assert.strictEqual(def.category, 'MSB');
        assert.strictEqual(def.color, '#3FADB5');
        assert.strictEqual(def.icon, 'busbar-msb.svg');
        assert.strictEqual((def.defaults.service as { type?: string }).type, 'msb-config');
      }
    });
  }

  it('msb-config validates uuid, URL, reconnect interval and parameters, and generates v4 UUIDs', () => {
    const { def, window } = definition('msb-config');
    const v = (prop: string, value: unknown, node: Record<string, unknown> = {}): boolean | string =>
      def.defaults[prop].validate?.call(node, value, {}) ?? true;
    const ns = '@busbar/node-red-buses/msb:msb-config.validation.';
    assert.strictEqual(v('uuid', '0f8fad5b-d9cb-469f-a165-70867728950e'), true);
    assert.strictEqual(v('uuid', 'not-a-uuid'), ns + 'uuid');
    assert.strictEqual(v('uuid', ''), ns + 'uuid', 'an empty UUID says so too (no bare required check)');
    assert.strictEqual(v('name', ' '), ns + 'name');
    assert.strictEqual(v('name', 'Oven'), true);
    assert.strictEqual(v('url', 'wss://msb.example:8084'), true);
    assert.strictEqual(v('url', 'ftp://msb'), ns + 'url');
    assert.strictEqual(v('url', ' '), ns + 'url');
    assert.strictEqual(v('reconnectInterval', 2), ns + 'reconnectInterval');
    assert.strictEqual(v('reconnectInterval', ' '), ns + 'reconnectInterval');
    assert.strictEqual(v('eventCacheSize', ' '), ns + 'eventCacheSize');
    assert.strictEqual(v('eventCacheSize', '0'), true);
    assert.strictEqual(v('reconnectInterval', '3'), true);
    assert.strictEqual(v('parameters', [{ name: 'limit', type: 'int32', value: '4' }]), true);
    assert.strictEqual(
      v('parameters', [{ name: 'limit', type: 'int32', value: '4.5' }]),
      ns + 'parameterValue ' + JSON.stringify({ name: 'limit', expected: ns + 'parameter.integer' }),
    );
    assert.strictEqual(v('parameters', [{ name: ' ', type: 'string', value: '' }]), ns + 'parameterName');
    assert.strictEqual(
      v('parameters', [
        { name: 'a', type: 'string', value: '' },
        { name: 'a', type: 'string', value: '' },
      ]),
      ns + 'parameterTwice ' + JSON.stringify({ name: 'a' }),
      'duplicate names',
    );
    assert.strictEqual(v('uuid', '0f8fad5b-d9cb-469f-a165-70867728950e', { id: 'mine' }), true);
    const uuid = (window.busbarMsbNewUuid as () => string)();
    assert.match(uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.strictEqual(def.label.call({ name: 'Oven', uuid }), 'Oven');
  });

  it('every MSB validator takes (v, opt), so Node-RED 3/4 shows the message it returns', () => {
    for (const type of TYPES) {
      const { def } = definition(type);
      for (const [prop, d] of Object.entries(def.defaults)) {
        if (d.validate) assert.strictEqual(d.validate.length, 2, `${type}.${prop} validator declares two parameters`);
      }
    }
  });

  it('msb-config flags a UUID another msb-config already uses (a copied service)', () => {
    const taken = '0f8fad5b-d9cb-469f-a165-70867728950e';
    const { def } = definition('msb-config', [{ id: 'other', type: 'msb-config', uuid: taken }]);
    assert.strictEqual(
      def.defaults.uuid.validate?.call({ id: 'mine' }, taken, {}),
      '@busbar/node-red-buses/msb:msb-config.validation.uuidTaken',
    );
    assert.strictEqual(def.defaults.uuid.validate?.call({ id: 'other' }, taken), true);
    assert.strictEqual(def.defaults.uuid.validate?.call({ id: 'mine' }, '1f8fad5b-d9cb-469f-a165-70867728950e'), true);
  });

  it('msb-event-out and msb-function-in check complex schemas and labels', () => {
    const ev = definition('msb-event-out').def;
    assert.strictEqual(
      ev.defaults.schema.validate?.call({ dataType: 'complex' }, '{not json', {}),
      '@busbar/node-red-buses/msb:msb.validation.schema.json',
    );
    assert.strictEqual(
      ev.defaults.eventId.validate?.call({}, ' ', {}),
      '@busbar/node-red-buses/msb:msb-event-out.validation.eventId',
    );
    assert.strictEqual(ev.defaults.eventId.validate?.call({}, 'TEMP', {}), true);
    assert.strictEqual(ev.defaults.schema.validate?.call({ dataType: 'complex' }, '{"type":"object"}'), true);
    assert.strictEqual(ev.defaults.schema.validate?.call({ dataType: 'double' }, ''), true);
    assert.strictEqual(ev.label.call({ eventId: 'TEMP' }), 'TEMP');
    const fn = definition('msb-function-in').def;
    assert.strictEqual(
      fn.defaults.functionId.validate?.call({ mode: 'function' }, '', {}),
      '@busbar/node-red-buses/msb:msb-function-in.validation.functionId',
    );
    assert.strictEqual(
      fn.defaults.schema.validate?.call({ mode: 'function', dataType: 'complex' }, '[1]', {}),
      '@busbar/node-red-buses/msb:msb.validation.schema.object',
    );
    assert.strictEqual(fn.defaults.functionId.validate?.call({ mode: 'configuration' }, ''), true);
    assert.strictEqual(fn.label.call({ mode: 'configuration' }), 'msb configuration');
  });
});

describe('msb catalogs, help and examples', () => {
  const catalogs: Record<string, Record<string, unknown>> = {};
  before(() => {
    for (const lang of LANGS)
      for (const type of TYPES)
        catalogs[`${lang}/${type}`] = JSON.parse(fs.readFileSync(sourceFiles.catalog(type, lang), 'utf8'));
  });

  it('every i18n key the editor and the runtime use exists in en-US and de', () => {
    const missing: string[] = [];
    const statusKeys = [
      'connecting',
      'connected',
      'registered',
      'disconnected',
      'invalid',
      'noService',
      ...Object.keys(STATUS_KEYWORDS).filter((k) => k.startsWith('NIO_')),
    ].map((k) => `msb.status.${k}`);
    const dataTypes = [
      'string',
      'int32',
      'int64',
      'float',
      'double',
      'boolean',
      'date-time',
      'byte',
      'complex',
      'none',
    ].map((t) => `msb.dataType.${t}`);
    for (const type of TYPES) {
      const html = editorSection(type);
      const ts = fs.readFileSync(sourceFiles.code(type), 'utf8');
      const keys = new Set<string>([...statusKeys, ...dataTypes]);
      for (const m of html.matchAll(/data-i18n="(?:\[[a-z]+\])?([^"]+)"/g)) keys.add(m[1]);
      for (const m of html.matchAll(/node\._\('([^']+)'\)/g)) keys.add(m[1]);
      for (const m of ts.matchAll(/RED\._\('([^']+)'/g)) keys.add(m[1]);
      // Validator messages: msb-config's problem('<key>') under msb-config.validation, the others' text('<full key>').
      for (const m of html.matchAll(/problem\('([^']+)'/g)) keys.add(`msb-config.validation.${m[1]}`);
      for (const m of html.matchAll(/text\('([^']+)'/g)) keys.add(m[1]);
      if (type !== 'msb-config') for (const p of ['empty', 'json', 'object']) keys.add(`msb.validation.schema.${p}`);
      for (const lang of LANGS) {
        for (const key of keys) {
          if (key.endsWith('.')) continue; // a prefix completed at run time (checked through statusKeys/dataTypes)
          if (typeof lookup(catalogs[`${lang}/${type}`], key) !== 'string') missing.push(`${lang}/${type}: ${key}`);
        }
      }
    }
    assert.deepStrictEqual(missing, []);
  });

  it('help exists for every type in both languages', () => {
    for (const lang of LANGS) {
      for (const type of TYPES) {
        const help = fs.readFileSync(sourceFiles.help(type, lang), 'utf8');
        assert.ok(help.includes(`data-help-name="${type}"`), `${lang} help for ${type}`);
      }
    }
  });

  it('the examples use every node type and match the emulator demo flows', () => {
    const dir = path.join(root, 'examples', 'msb');
    const nodes = fs
      .readdirSync(dir)
      .flatMap((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as Array<Record<string, unknown>>);
    for (const type of TYPES)
      assert.ok(
        nodes.some((n) => n.type === type),
        `an example uses ${type}`,
      );
    const configs = new Map(nodes.filter((n) => n.type === 'msb-config').map((n) => [n.id as string, n]));
    for (const c of configs.values()) assert.strictEqual(c.url, 'ws://127.0.0.1:8085');
    const uuidOf = (n: Record<string, unknown>): string => configs.get(n.service as string)?.uuid as string;
    for (const flow of demoFlows) {
      assert.ok(
        nodes.some(
          (n) => n.type === 'msb-event-out' && n.eventId === flow.source.eventId && uuidOf(n) === flow.source.uuid,
        ),
        `example event ${flow.source.eventId}`,
      );
      assert.ok(
        nodes.some(
          (n) =>
            n.type === 'msb-function-in' && n.functionId === flow.target.functionId && uuidOf(n) === flow.target.uuid,
        ),
        `example function ${flow.target.functionId}`,
      );
    }
    const uuids = [...configs.values()].map((c) => c.uuid);
    assert.strictEqual(new Set(uuids).size, uuids.length, 'each example service has its own uuid');
  });
});
