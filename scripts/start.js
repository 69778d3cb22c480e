#!/usr/bin/env node
// `npm start`: Node-RED 4.1 with this package installed into a project-local userDir (.node-red/), the MSB emulator
// and a demo flow built from examples/, all in one process and with no other service. Ctrl-C stops everything.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const crypto = require('crypto');

const root = path.join(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));

/**
 * Makes `userDir` a Node-RED user directory with this package installed the way `npm install` from the palette
 * would: a package.json that lists it, and node_modules/<name> linking to this checkout (so Node-RED loads it as
 * a module, with its examples, icons and locales, and a rebuild is picked up on the next start).
 */
function installIntoUserDir(userDir) {
  fs.mkdirSync(userDir, { recursive: true });
  const userPkgFile = path.join(userDir, 'package.json');
  let userPkg = { name: 'busbar-demo-userdir', description: 'Node-RED user directory for npm start', version: '0.0.0', private: true };
  if (fs.existsSync(userPkgFile)) userPkg = JSON.parse(fs.readFileSync(userPkgFile, 'utf8'));
  userPkg.dependencies = userPkg.dependencies || {};
  const spec = `file:${path.relative(userDir, root) || '.'}`;
  if (userPkg.dependencies[pkg.name] !== spec) {
    userPkg.dependencies[pkg.name] = spec;
    fs.writeFileSync(userPkgFile, JSON.stringify(userPkg, null, 2) + '\n');
  }

  const link = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
  fs.mkdirSync(path.dirname(link), { recursive: true });
  let stat;
  try {
    stat = fs.lstatSync(link);
  } catch {
    stat = undefined;
  }
  if (stat && !stat.isSymbolicLink()) {
    console.warn(`[busbar] ${link} is an installed copy, not a link to this checkout; using it as it is`);
    return;
  }
  if (stat && fs.realpathSync(link) === fs.realpathSync(root)) return;
  if (stat) fs.unlinkSync(link);
  fs.symlinkSync(path.relative(path.dirname(link), root), link, 'dir');
}

/** Every examples/**\/*.json, sorted, as { title, file }. */
function listExamples(examplesDir = path.join(root, 'examples')) {
  const out = [];
  const visit = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile() && e.name.endsWith('.json')) {
        out.push({ title: path.relative(examplesDir, p).replace(/\.json$/, '').split(path.sep).join(' / '), file: p });
      }
    }
  };
  visit(examplesDir);
  return out;
}

const newId = () => crypto.randomBytes(8).toString('hex');

/** Replaces every string equal to a key of `ids` anywhere inside `value` (wires, config refs, links, scope, g, z). */
function remap(value, ids) {
  if (typeof value === 'string') return ids.has(value) ? ids.get(value) : value;
  if (Array.isArray(value)) return value.map((v) => remap(v, ids));
  if (value && typeof value === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = remap(v, ids);
    return out;
  }
  return value;
}

const PLACEMENT = new Set(['id', 'name', 'x', 'y', 'z', 'w', 'h', '_users']);
const configKey = (n) =>
  n.type + JSON.stringify(Object.keys(n).filter((k) => !PLACEMENT.has(k)).sort().map((k) => [k, n[k]]));

/**
 * One deployable flow file from all examples: each example on its own tab, with the example's own ids (so that
 * importing an example into the running demo finds its config nodes there: Node-RED's "Import copy" then reuses
 * them instead of starting a second broker or a second MSB connection with the same uuid). A node whose id another
 * example already used for something else gets a new id; config nodes that are identical apart from id and name are
 * shared (two examples on "the embedded broker" use one config node).
 */
function buildDemoFlows(examples = listExamples()) {
  const flows = [];
  const taken = new Map(); // id in `flows` -> its node
  const sharedConfig = new Map(); // configKey -> id already in `flows`
  for (const { title, file } of examples) {
    let nodes;
    try {
      nodes = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (!Array.isArray(nodes)) throw new Error('not a JSON array of nodes');
    } catch (err) {
      console.warn(`[busbar] skipping example ${title}: ${err.message}`);
      continue;
    }
    nodes = nodes.filter((n) => n && n.type !== 'global-config');
    const containers = new Set(nodes.filter((n) => n.type === 'tab' || n.type === 'subflow').map((n) => n.id));
    const isFlowNode = (n) =>
      n.type !== 'tab' && n.type !== 'subflow' && (Boolean(n.z) || Array.isArray(n.wires) || 'x' in n);
    const isConfig = (n) => !isFlowNode(n) && n.type !== 'tab' && n.type !== 'subflow';
    // Config nodes equal to one already added are dropped and their users pointed at the existing one.
    const ids = new Map();
    const drop = new Set();
    for (const n of nodes.filter(isConfig)) {
      const key = configKey(n);
      if (sharedConfig.has(key)) {
        ids.set(n.id, sharedConfig.get(key));
        drop.add(n);
      }
    }
    for (const n of nodes) {
      if (drop.has(n)) continue;
      ids.set(n.id, taken.has(n.id) ? newId() : n.id);
    }
    let tabId;
    if (nodes.some((n) => isFlowNode(n) && !containers.has(n.z))) {
      tabId = newId();
      const info = nodes.find((n) => n.type === 'comment' && n.info);
      // The file name is the example's title in Import › Examples too; the folder is only the bus.
      const label = path.basename(file, '.json');
      flows.push({ id: tabId, type: 'tab', label, disabled: false, info: info ? info.info : '' });
    }
    for (const n of nodes) {
      if (drop.has(n)) continue;
      const copy = remap(n, ids);
      if (isFlowNode(n) && !containers.has(n.z)) copy.z = tabId;
      if (copy.type === 'tab' && !copy.label) copy.label = title;
      if (isConfig(n)) sharedConfig.set(configKey(n), copy.id);
      taken.set(copy.id, copy);
      flows.push(copy);
    }
  }
  layOut(flows);
  return flows;
}

/** Gives nodes an example left without x/y a place: comments first, then columns by distance from the sources. */
function layOut(flows) {
  const byZ = new Map();
  for (const n of flows) {
    if (!n.z || (typeof n.x === 'number' && typeof n.y === 'number')) continue;
    if (!byZ.has(n.z)) byZ.set(n.z, []);
    byZ.get(n.z).push(n);
  }
  for (const nodes of byZ.values()) {
    const ids = new Set(nodes.map((n) => n.id));
    const depth = new Map(nodes.map((n) => [n.id, 0]));
    // Longest path from a source, bounded by the node count so a loop cannot spin.
    for (let round = 0; round < nodes.length; round++) {
      let changed = false;
      for (const n of nodes) {
        for (const port of n.wires || []) {
          for (const t of port) {
            if (ids.has(t) && depth.get(t) < depth.get(n.id) + 1 && depth.get(n.id) + 1 < nodes.length) {
              depth.set(t, depth.get(n.id) + 1);
              changed = true;
            }
          }
        }
      }
      if (!changed) break;
    }
    const rows = new Map();
    let commentRow = 0;
    for (const n of nodes) {
      if (n.type === 'comment') {
        n.x = 170;
        n.y = 40 + 40 * commentRow++;
        continue;
      }
      const col = depth.get(n.id);
      const row = rows.get(col) || 0;
      rows.set(col, row + 1);
      n.x = 170 + 230 * col;
      n.y = 60 + 40 * Math.max(commentRow, 1) + 60 * row;
    }
  }
}

/**
 * Installs the package into `userDir` and sees to its flow file: 'missing' writes the demo only if there is no
 * flows.json yet (a user's edits survive restarts), 'reset' rewrites it (keeping the old one as
 * flows.json.before-reset), 'none' empties it. Returns what it did: 'kept' | 'written' | 'reset' | 'emptied'.
 */
function prepareUserDir(userDir, demo = 'missing') {
  installIntoUserDir(userDir);
  const flowFile = path.join(userDir, 'flows.json');
  if (demo === 'none') {
    fs.writeFileSync(flowFile, '[]\n');
    return 'emptied';
  }
  if (demo !== 'reset' && fs.existsSync(flowFile)) {
    console.log(`[busbar] keeping your flows in ${flowFile} (npm start -- --reset rebuilds the demo)`);
    return 'kept';
  }
  const existed = fs.existsSync(flowFile);
  if (existed) fs.copyFileSync(flowFile, `${flowFile}.before-reset`);
  const flows = buildDemoFlows();
  fs.writeFileSync(flowFile, JSON.stringify(flows, null, 2) + '\n');
  console.log(`[busbar] demo flow written to ${path.relative(process.cwd(), flowFile) || flowFile}: ` +
    `${flows.filter((n) => n.type === 'tab').length} tabs from ${listExamples().length} examples`);
  return existed ? 'reset' : 'written';
}

/**
 * The MSB emulator from the build (src/msb/emulator.ts), loaded with the integration flows the MSB examples expect
 * (src/msb/demo.ts). Returns null, with a warning, if this build has none.
 */
function loadMsbEmulator() {
  const file = path.join(root, 'dist', 'src', 'msb', 'emulator.js');
  if (!fs.existsSync(file)) {
    console.warn('[busbar] no MSB emulator in this build (dist/src/msb/emulator.js); MSB nodes will not connect');
    return null;
  }
  const { MsbEmulator } = require(file);
  let flows = [];
  const demo = path.join(root, 'dist', 'src', 'msb', 'demo.js');
  if (fs.existsSync(demo)) flows = require(demo).demoFlows || [];
  return new MsbEmulator({ flows });
}

/**
 * Starts the whole demo. Options (all optional): port (PORT, default 1880; 0 picks a free one), host (HOST,
 * default 127.0.0.1), userDir (default <repo>/.node-red), msbPort (MSB_EMULATOR_PORT, default 8085; null = no
 * emulator), demo ('missing' = deploy the demo only if the userDir has no flow file yet, 'reset' = rebuild it,
 * 'none' = start with an empty workspace), logLevel, settings (extra Node-RED settings).
 * Resolves to { url, port, msbUrl, stop() }.
 */
async function start(options = {}) {
  const host = options.host || process.env.HOST || '127.0.0.1';
  const port = options.port !== undefined ? Number(options.port) : Number(process.env.PORT || 1880);
  const userDir = path.resolve(options.userDir || path.join(root, '.node-red'));
  const msbPort =
    options.msbPort === null ? null : Number(options.msbPort ?? process.env.MSB_EMULATOR_PORT ?? 8085);
  const demo = options.demo || 'missing';

  prepareUserDir(userDir, demo);

  let emulator = null;
  let msbUrl = null;
  if (msbPort !== null) {
    emulator = loadMsbEmulator();
    if (emulator) {
      try {
        msbUrl = (await emulator.start({ host: '127.0.0.1', port: msbPort })).url;
      } catch (err) {
        // Someone may already run an MSB (or `busbar-msb-emulator`) there; the MSB nodes will use that one.
        console.warn(`[busbar] MSB emulator could not listen on 127.0.0.1:${msbPort} (${err.code || err.message}); ` +
          'the MSB examples will talk to whatever listens there');
        emulator = null;
      }
    }
  }

  // Node-RED is a per-process singleton; required here so the module cost is paid only when starting.
  const RED = require('node-red');
  const server = http.createServer((req, res) => {
    RED.httpAdmin(req, res, () =>
      RED.httpNode(req, res, () => {
        res.statusCode = 404;
        res.end('Not found\n');
      }),
    );
  });
  const settings = {
    userDir,
    flowFile: 'flows.json',
    uiHost: host,
    uiPort: port,
    httpAdminRoot: '/',
    httpNodeRoot: '/',
    // An offline demo: no update-check prompt and no calls home.
    telemetry: { enabled: false },
    diagnostics: { enabled: true, ui: true },
    editorTheme: { projects: { enabled: false }, ...(options.tours === false ? { tours: false } : {}) },
    logging: { console: { level: options.logLevel || process.env.LOG_LEVEL || 'info', metrics: false, audit: false } },
    ...(options.settings || {}),
  };
  RED.init(server, settings);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = server.address().port;
  await RED.start();
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}/`;

  let stopping = null;
  const stop = () => {
    if (!stopping) {
      stopping = (async () => {
        await RED.stop().catch((err) => console.error('[busbar] stopping Node-RED:', err));
        if (emulator) await emulator.close().catch((err) => console.error('[busbar] stopping the MSB emulator:', err));
        await new Promise((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      })();
    }
    return stopping;
  };
  return { url, port: actualPort, msbUrl, userDir, RED, stop };
}

module.exports = { start, prepareUserDir, buildDemoFlows, listExamples, installIntoUserDir };

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`usage: npm start [-- --reset | --empty]
  --reset   rebuild .node-red/flows.json from examples/ (the old one is kept as flows.json.before-reset)
  --empty   start with an empty workspace
environment: PORT (1880), HOST (127.0.0.1), MSB_EMULATOR_PORT (8085), LOG_LEVEL (info)`);
    process.exit(0);
  }
  const demo = args.includes('--reset') ? 'reset' : args.includes('--empty') ? 'none' : 'missing';
  start({ demo }).then(
    (running) => {
      console.log(`\n[busbar] Node-RED ${require('node-red/package.json').version} with ${pkg.name} ${pkg.version}: ${running.url}`);
      if (running.msbUrl) console.log(`[busbar] MSB emulator: ${running.msbUrl}`);
      console.log('[busbar] Ctrl-C stops everything\n');
      let signals = 0;
      const onSignal = (sig) => {
        if (++signals > 1) process.exit(130);
        console.log(`\n[busbar] ${sig}: stopping Node-RED and the MSB emulator (again to force)`);
        const force = setTimeout(() => {
          console.error('[busbar] still not stopped after 20 s; exiting');
          process.exit(1);
        }, 20000);
        force.unref();
        running.stop().then(() => process.exit(0));
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    },
    (err) => {
      console.error(`[busbar] could not start: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
