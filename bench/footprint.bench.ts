// Footprint: what installing this package costs a Node-RED that does not use it — start time and RSS of real
// Node-RED processes with and without the package in their userDir, in alternating rounds — and the size of dist/.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import { freePort } from './mosquitto';
import { alternate, mmm, Measures, progress } from './rounds';

const ROUNDS = 15;
const BUDGET_MS = 120000;
const START_TIMEOUT_MS = 60000;
const PACKAGE = '@busbar/node-red-buses';

const root = path.join(__dirname, '..', '..');
const redJs = require.resolve('node-red/red.js');

function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers: { Accept: 'application/json' } }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

function rssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kB = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1]);
  return kB / 1024;
}

const ticksPerSecond = ((): number => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used so far, ms: less moved by other load than wall-clock time. */
function cpuMs(pid: number): number {
  // Fields after the command name (which is in parentheses and may hold spaces): utime and stime are 12th and 13th.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

/**
 * A userDir like the palette leaves it: package.json listing the package and node_modules/<name> (a link to this
 * checkout, as scripts/start.js makes it), an empty flow file, and a settings file with the editor on `port`.
 */
function userDir(withPackage: boolean, port: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `busbar-footprint-${withPackage ? 'with' : 'without'}-`));
  const deps = withPackage ? { [PACKAGE]: `file:${root}` } : {};
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'footprint', version: '0.0.0', private: true, dependencies: deps }),
  );
  if (withPackage) {
    const link = path.join(dir, 'node_modules', ...PACKAGE.split('/'));
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(root, link, 'dir');
  }
  fs.writeFileSync(path.join(dir, 'flows.json'), '[]\n');
  const settings = {
    uiHost: '127.0.0.1',
    uiPort: port,
    flowFile: 'flows.json',
    credentialSecret: false,
    telemetry: { enabled: false },
    editorTheme: { tours: false },
    logging: { console: { level: 'info', metrics: false, audit: false } },
  };
  fs.writeFileSync(path.join(dir, 'settings.js'), `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  return dir;
}

/**
 * Starts `node red.js -u DIR` and measures: ms until it logs "Started flows", ms until the admin API lists the
 * installed nodes (GET /nodes), and RSS at that point. Checks the package was loaded without error when present.
 */
async function startOnce(withPackage: boolean): Promise<Measures> {
  const port = await freePort();
  const dir = userDir(withPackage, port);
  let child: ChildProcess | undefined;
  let exited = false;
  try {
    const t0 = process.hrtime.bigint();
    child = spawn(process.execPath, [redJs, '-u', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_RED_ENABLE_TOURS: 'false' },
    });
    child.once('exit', () => (exited = true));
    let log = '';
    let startedAt: bigint | undefined;
    const onData = (d: Buffer): void => {
      log += d.toString();
      if (startedAt === undefined && log.includes('Started flows')) startedAt = process.hrtime.bigint();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const deadline = Date.now() + START_TIMEOUT_MS;
    let nodes: { status: number; body: string } | undefined;
    while (Date.now() < deadline && !exited) {
      if (startedAt !== undefined) {
        nodes = await get(port, '/nodes').catch(() => undefined);
        if (nodes?.status === 200) break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    const answeredAt = process.hrtime.bigint();
    if (startedAt === undefined || nodes?.status !== 200)
      throw new Error(`bench: Node-RED did not start:\n${log.slice(-2000)}`);
    const rss = rssMiB(child.pid as number);
    const cpu = cpuMs(child.pid as number);
    const modules = JSON.parse(nodes.body) as Array<{ module: string; enabled?: boolean; err?: string }>;
    const ours = modules.filter((m) => m.module === PACKAGE);
    if (withPackage && (ours.length === 0 || ours.some((m) => m.enabled === false || m.err))) {
      throw new Error(`bench: ${PACKAGE} not loaded: ${JSON.stringify(ours.find((m) => m.err) ?? ours)}`);
    }
    if (!withPackage && ours.length > 0) throw new Error(`bench: ${PACKAGE} loaded in the baseline`);
    return {
      startMs: Number(startedAt - t0) / 1e6,
      adminMs: Number(answeredAt - t0) / 1e6,
      rss,
      cpu,
      nodeSets: ours.length,
    };
  } finally {
    if (child && !exited) {
      const gone = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      const force = setTimeout(() => child?.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(force);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Bytes of every file under `dir` and of those ending in `.js.map`. */
function sizes(dir: string): { all: number; maps: number; files: number } {
  let all = 0;
  let maps = 0;
  let files = 0;
  const visit = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) {
        const n = fs.statSync(p).size;
        all += n;
        files++;
        if (e.name.endsWith('.js.map')) maps += n;
      }
    }
  };
  if (fs.existsSync(dir)) visit(dir);
  return { all, maps, files };
}

/** What `npm pack` would publish (local, no registry): tarball and unpacked size, and the .js.map part of it. */
function packed(): { size: number; unpacked: number; maps: number; files: number } | undefined {
  try {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const [info] = JSON.parse(out) as Array<{
      size: number;
      unpackedSize: number;
      files: Array<{ path: string; size: number }>;
    }>;
    if (!info) return undefined;
    const maps = info.files.filter((f) => f.path.endsWith('.js.map')).reduce((s, f) => s + f.size, 0);
    return { size: info.size, unpacked: info.unpackedSize, maps, files: info.files.length };
  } catch {
    return undefined;
  }
}

const kB = (n: number): string => `${Math.round(n / 1024).toLocaleString('en-US')} KB`;
const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(0)} %`;

export async function run(): Promise<string> {
  // One start of each first, so both find the files in the page cache.
  await startOnce(false);
  await startOnce(true);
  const r = await alternate(
    {
      rounds: ROUNDS,
      budgetMs: BUDGET_MS,
      onRound: (i, b, c) =>
        progress(
          `round ${i + 1}: without ${Math.round(b.startMs ?? 0)} ms (cpu ${Math.round(b.cpu ?? 0)} ms) ${(b.rss ?? 0).toFixed(1)} MiB, with ${Math.round(c.startMs ?? 0)} ms (cpu ${Math.round(c.cpu ?? 0)} ms) ${(c.rss ?? 0).toFixed(1)} MiB`,
        ),
    },
    () => startOnce(false),
    () => startOnce(true),
  );
  const start = r.compare('startMs');
  const admin = r.compare('adminMs');
  const rss = r.compare('rss');
  const cpu = r.compare('cpu');
  const dist = sizes(path.join(root, 'dist'));
  const shipped = ['src', 'nodes']
    .map((d) => sizes(path.join(root, 'dist', d)))
    .reduce((a, b) => ({ all: a.all + b.all, maps: a.maps + b.maps, files: a.files + b.files }));
  const pack = packed();
  const nodeRed = (require('node-red/package.json') as { version: string }).version;
  return [
    '## Footprint (installed but unused)',
    '',
    `Real Node-RED ${nodeRed} processes (\`node red.js -u DIR\`, Node ${process.version}), each on a free loopback port with a fresh temporary userDir and an empty flow file: one with this package installed (listed in the userDir's package.json and linked into its node_modules, as \`scripts/start.js\` does), one with no extra package. ${r.rounds} alternating rounds (the order swapped every round) after one warm-up start of each. Start = from spawn until Node-RED logs "Started flows"; admin = until \`GET /nodes\` answers (and lists the package's ${r.candidate[0]?.nodeSets ?? '?'} node sets as loaded without error); CPU = user + system time the process used until then (from /proc, ${ticksPerSecond} ticks/s; much less moved by other load than wall-clock time); RSS = the process's VmRSS right after that. Each cell: min / **median** / max over the rounds; ratio and delta are per round (with / without). The machine (2 CPUs) was shared with other helpers' builds and tests while measuring; the alternation makes load hit both sides alike, and min / max show how much it moved.`,
    '',
    '| measure | without the package | with the package | ratio with / without | delta |',
    '|---|---|---|---|---|',
    `| start until "Started flows", ms | ${mmm(start.baseline)} | ${mmm(start.candidate)} | ${mmm(start.ratio, 2)} | ${mmm(start.delta)} ms |`,
    `| start until the admin API answers, ms | ${mmm(admin.baseline)} | ${mmm(admin.candidate)} | ${mmm(admin.ratio, 2)} | ${mmm(admin.delta)} ms |`,
    `| CPU time used until the admin API answers, ms | ${mmm(cpu.baseline)} | ${mmm(cpu.candidate)} | ${mmm(cpu.ratio, 2)} | ${mmm(cpu.delta)} ms |`,
    `| RSS after start, MiB | ${mmm(rss.baseline, 1)} | ${mmm(rss.candidate, 1)} | ${mmm(rss.ratio, 2)} | ${mmm(rss.delta, 1)} MiB |`,
    '',
    `Goal (issue 15, for the later lazy-loading round): start ≤ 1.03× — wall-clock median ${start.ratio.median.toFixed(2)}, **${start.ratio.median <= 1.03 ? 'met' : 'not met'}**; CPU time median ${cpu.ratio.median.toFixed(2)}, **${cpu.ratio.median <= 1.03 ? 'met' : 'not met'}**; RSS ≤ +2 MB — median +${rss.delta.median.toFixed(1)} MiB, **${rss.delta.median <= 2 ? 'met' : 'not met'}**. The start goal counts as met only when both are. The loading code is unchanged so far; this measures it as it is. On a loaded machine the wall-clock rows spread far wider (see min / max) than the package's effect, so the CPU-time row is the one to read there.`,
    '',
    '| size | total | of it `.js.map` |',
    '|---|---:|---:|',
    `| dist/ (everything the build writes, ${dist.files} files) | ${kB(dist.all)} | ${kB(dist.maps)} (${pct(dist.maps, dist.all)}) |`,
    `| dist/src + dist/nodes (the part the package ships, ${shipped.files} files) | ${kB(shipped.all)} | ${kB(shipped.maps)} (${pct(shipped.maps, shipped.all)}) |`,
    ...(pack
      ? [
          `| \`npm pack\` (${pack.files} files): unpacked ${kB(pack.unpacked)}, tarball ${kB(pack.size)} | ${kB(pack.unpacked)} | ${kB(pack.maps)} (${pct(pack.maps, pack.unpacked)}) |`,
        ]
      : []),
  ].join('\n');
}
