// The Flow Library scorecard rules (node-red-dev validate) that can be checked offline, plus the layout Node-RED's
// loader needs for every declared node type: editor .html, en-US and de help and catalogs, icon.
import assert from 'assert';
import fs from 'fs';
import path from 'path';
import {
  FlowNode,
  editorDefinitions,
  exampleFiles,
  namedBlocks,
  nodeTypes,
  packageRoot,
  readPackageJson,
} from './lib/package-facts';

// semver ships without types; this is the one function used.
const semver: {
  satisfies(version: string, range: string): boolean;
  minVersion(range: string): { version: string } | null;
  validRange(range: string): string | null;
} = require('semver');

const pkg = readPackageJson();
const types = nodeTypes();
const nodeRedPkg = JSON.parse(
  fs.readFileSync(require.resolve('node-red/package.json', { paths: [packageRoot] }), 'utf8'),
) as { version: string; engines: { node: string } };
const LOCALES = ['en-US', 'de'];

/** Types the core palette offers, from node-red's own editor files, parsed the same way. */
function coreTypes(): Set<string> {
  const coreDir = path.join(
    path.dirname(require.resolve('@node-red/nodes/package.json', { paths: [packageRoot] })),
    'core',
  );
  const out = new Set<string>(['tab', 'group', 'subflow', 'junction', 'global-config', 'unknown']);
  const visit = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'locales') visit(p);
      else if (e.name.endsWith('.html')) {
        try {
          for (const d of editorDefinitions(fs.readFileSync(p, 'utf8'))) out.add(d.type);
        } catch {
          // A core file the simple extractor cannot read adds no types; ours are checked strictly below.
        }
      }
    }
  };
  visit(coreDir);
  return out;
}

function readExample(rel: string): FlowNode[] {
  const flow = JSON.parse(fs.readFileSync(path.join(packageRoot, 'examples', rel), 'utf8')) as unknown;
  assert(Array.isArray(flow), `examples/${rel}: a flow export is a JSON array of nodes`);
  return flow as FlowNode[];
}

describe('Flow Library scorecard (offline rules)', () => {
  it('P01 declares a license and ships its text', () => {
    assert.ok(pkg.license, 'package.json has no "license"');
    assert.ok(fs.existsSync(path.join(packageRoot, 'LICENSE')), 'no LICENSE file at the package root');
  });

  it('P03 declares a repository or bugs URL', () => {
    const url = (v: PackageJsonLink) => (typeof v === 'string' ? v : v?.url);
    assert.ok(url(pkg.repository) || url(pkg.bugs), 'package.json has neither "repository" nor "bugs"');
  });

  it('P04 uses a scoped name or node-red-contrib-*', () => {
    assert.ok(
      pkg.name.startsWith('@') || !pkg.name.startsWith('node-red') || pkg.name.startsWith('node-red-contrib-'),
      `name ${pkg.name}`,
    );
  });

  it('P05 has the keyword node-red', () => {
    assert.ok((pkg.keywords ?? []).includes('node-red'), `keywords: ${JSON.stringify(pkg.keywords)}`);
  });

  it(`P06 node-red.version is satisfied by the installed Node-RED (${nodeRedPkg.version})`, () => {
    const range = pkg['node-red']?.version;
    assert.ok(range && semver.validRange(range), `node-red.version ${JSON.stringify(range)} is not a semver range`);
    assert.ok(semver.satisfies(nodeRedPkg.version, range), `${nodeRedPkg.version} does not satisfy ${range}`);
  });

  it('P07 engines.node is what the runtime dependencies need (aedes: Node.js 20), and what Node-RED runs on', () => {
    const ours = pkg.engines?.node;
    assert.ok(ours, 'package.json has no engines.node');
    const min = semver.minVersion(ours);
    assert.ok(min, `engines.node ${ours} is not a semver range`);
    // Our lowest Node.js must satisfy every runtime dependency's engines.node (else the package claims too much) ...
    for (const dep of Object.keys(pkg.dependencies ?? {})) {
      // Read from node_modules directly: aedes' "exports" does not export its package.json.
      const depPkg = JSON.parse(
        fs.readFileSync(path.join(packageRoot, 'node_modules', dep, 'package.json'), 'utf8'),
      ) as {
        engines?: { node?: string };
      };
      const need = depPkg.engines?.node;
      if (need)
        assert.ok(
          semver.satisfies(min.version, need),
          `${dep} needs Node.js ${need}; engines.node ${ours} allows ${min.version}`,
        );
    }
    // ... and Node-RED itself must run there.
    assert.ok(
      semver.satisfies(min.version, nodeRedPkg.engines.node),
      `Node-RED needs ${nodeRedPkg.engines.node}; engines.node allows ${min.version}`,
    );
    assert.ok(
      semver.satisfies(process.versions.node, ours),
      `this Node.js ${process.versions.node} is outside engines.node ${ours}`,
    );
  });

  it('D01 has at most 6 runtime dependencies, node-red not among them', () => {
    const deps = Object.keys(pkg.dependencies ?? {});
    assert.ok(deps.length <= 6, `${deps.length} dependencies: ${deps.join(', ')}`);
    assert.ok(!deps.includes('node-red'), 'node-red belongs in devDependencies');
  });

  it('N02 uses every non-config node type in some examples/**/*.json', () => {
    const used = new Set<string>();
    for (const rel of exampleFiles()) for (const n of readExample(rel)) used.add(n.type);
    const unused = types
      .filter((t) => t.definition && t.definition.category !== 'config')
      .map((t) => t.type)
      .filter((t) => !used.has(t));
    assert.deepStrictEqual(unused, [], `node types without an example: ${unused.join(', ')}`);
  });
});

type PackageJsonLink = string | { url?: string } | undefined;

describe('Node types declared in package.json node-red.nodes', () => {
  it('lists one node set per bus, each at dist/nodes/<bus>/<bus>.js', () => {
    const sets = pkg['node-red']?.nodes ?? {};
    assert.deepStrictEqual(Object.keys(sets).sort(), ['apigear', 'mbus', 'msb', 'sg']);
    for (const [set, js] of Object.entries(sets)) assert.strictEqual(js, `dist/nodes/${set}/${set}.js`);
  });

  it("registers every type under its old name, each in its own bus's set", () => {
    assert.deepStrictEqual(types.map((t) => `${t.set}/${t.type}`).sort(), [
      'apigear/apigear-client',
      'apigear/apigear-service',
      'mbus/mbus-config',
      'mbus/mbus-entity',
      'mbus/mbus-rpc',
      'msb/msb-config',
      'msb/msb-event-out',
      'msb/msb-function-in',
      'sg/sg-app',
      'sg/sg-broker',
      'sg/sg-resource',
    ]);
  });

  for (const t of types) {
    describe(t.type, () => {
      it('has a compiled .js and an editor .html beside it', () => {
        assert.ok(
          fs.existsSync(t.js),
          `${path.relative(packageRoot, t.js)} missing (is nodes/${t.set}/${t.set}.ts built?)`,
        );
        assert.ok(
          fs.existsSync(t.html),
          `${path.relative(packageRoot, t.html)} missing (nodes/${t.set}/${t.set}.html?)`,
        );
      });

      it("has a literal RED.nodes.registerType('<type>', {…}) in a text/javascript script", () => {
        assert.strictEqual(t.parseError, undefined, `acorn cannot parse ${t.set}.html: ${t.parseError}`);
        assert.ok(t.definition, `no literal registerType('${t.type}', { … }) in ${t.set}.html`);
        assert.ok(t.definition.category, `${t.type}: no literal category`);
        assert.ok(t.definition.defaults, `${t.type}: no inline defaults object`);
      });

      it('has an edit template with data-template-name', () => {
        const html = fs.readFileSync(t.html, 'utf8');
        assert.ok(namedBlocks(html, 'data-template-name').includes(t.type), `no data-template-name="${t.type}"`);
      });

      it('has an icon file it can be drawn with', () => {
        const icon = t.definition?.icon;
        if (t.definition?.category === 'config' && !icon) return; // config nodes are never drawn on the canvas
        assert.ok(icon, `${t.type}: no literal icon`);
        if (icon.startsWith('font-awesome/')) return;
        const ours = path.join(path.dirname(t.js), 'icons', icon);
        const stock = path.join(
          path.dirname(require.resolve('@node-red/editor-client/package.json', { paths: [packageRoot] })),
          'public',
          'red',
          'images',
          'icons',
          icon,
        );
        assert.ok(fs.existsSync(ours) || fs.existsSync(stock), `icon ${icon} is neither in icons/ nor a stock icon`);
        if (fs.existsSync(ours)) {
          assert.ok(fs.existsSync(path.join(packageRoot, 'icons', icon)), `icons/${icon} is not in the source tree`);
        }
      });

      for (const lang of LOCALES) {
        it(`has ${lang} help and message catalog`, () => {
          const dir = path.join(path.dirname(t.js), 'locales', lang);
          const helpFile = path.join(dir, `${t.set}.html`);
          const catalogFile = path.join(dir, `${t.set}.json`);
          assert.ok(fs.existsSync(helpFile), `nodes/${t.set}/locales/${lang}/${t.set}.html missing`);
          assert.ok(fs.existsSync(catalogFile), `nodes/${t.set}/locales/${lang}/${t.set}.json missing`);
          const help = fs.readFileSync(helpFile, 'utf8');
          assert.ok(
            namedBlocks(help, 'data-help-name').includes(t.type),
            `${lang} help has no data-help-name="${t.type}"`,
          );
          const catalog = JSON.parse(fs.readFileSync(catalogFile, 'utf8')) as Record<string, unknown>;
          assert.ok(Object.keys(catalog).length > 0, `${lang} catalog is empty`);
        });
      }

      it('has the same message keys in de as in en-US', () => {
        const keys = (lang: string): string[] => {
          const file = path.join(path.dirname(t.js), 'locales', lang, `${t.set}.json`);
          if (!fs.existsSync(file)) return [];
          return flatKeys(JSON.parse(fs.readFileSync(file, 'utf8'))).sort();
        };
        const en = keys('en-US');
        const de = new Set(keys('de'));
        const missing = en.filter((k) => !de.has(k));
        assert.deepStrictEqual(missing, [], `keys in en-US but not in de: ${missing.join(', ')}`);
      });
    });
  }
});

function flatKeys(o: unknown, prefix = ''): string[] {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return [prefix];
  return Object.entries(o as Record<string, unknown>).flatMap(([k, v]) => flatKeys(v, prefix ? `${prefix}.${k}` : k));
}

describe('Examples', () => {
  const files = exampleFiles();
  const ours = new Set(types.map((t) => t.type));
  const core = coreTypes();

  for (const rel of files) {
    describe(`examples/${rel}`, () => {
      it('is an importable flow: unique ids, wires and config references resolve', () => {
        const flow = readExample(rel);
        const ids = new Set<string>();
        for (const n of flow) {
          assert.ok(typeof n.id === 'string' && n.id, `a node without an id: ${JSON.stringify(n).slice(0, 80)}`);
          assert.ok(!ids.has(n.id), `duplicate id ${n.id}`);
          ids.add(n.id);
        }
        for (const n of flow) {
          for (const port of n.wires ?? []) {
            for (const target of port)
              assert.ok(ids.has(target), `${n.type} ${n.id} is wired to missing node ${target}`);
          }
          if (n.z) assert.ok(ids.has(n.z), `${n.type} ${n.id} is on missing tab/subflow ${n.z}`);
        }
        // Config-node properties declared in our editor defaults must point at a node in the same file.
        const defs = new Map(types.map((t) => [t.type, t.definition]));
        for (const n of flow) {
          const def = defs.get(n.type);
          if (!def) continue;
          for (const key of def.defaults ?? []) {
            const v = n[key];
            if (typeof v === 'string' && /^[0-9a-f]{16}$/.test(v) && !ids.has(v)) {
              assert.fail(`${n.type} ${n.id}: ${key} refers to node ${v} which is not in the example`);
            }
          }
        }
      });

      it("uses only this package's and core node types, and explains itself in a comment node", () => {
        const flow = readExample(rel);
        const foreign = [...new Set(flow.map((n) => n.type))].filter((t) => !ours.has(t) && !core.has(t));
        assert.deepStrictEqual(foreign, [], `third-party or unknown node types: ${foreign.join(', ')}`);
        assert.ok(
          flow.some((n) => n.type === 'comment' && (String(n.name ?? '') + String(n.info ?? '')).trim()),
          'no comment node explaining the example',
        );
      });
    });
  }
});
