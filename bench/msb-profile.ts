// Where msb-event-out's time goes: `node dist/bench/msb-profile.js [sockjs|raw] [rounds]` runs the MSB bench's
// Node-RED throughput rounds (junction -> msb-event-out -> in-process emulator, no traffic record) in a child under
// `node --cpu-prof`, and prints self time by category and this package's top functions, measured rounds only.
import { spawnSync } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { MsbEmulator } from '../src/msb';
import { startNodeRed, until } from './msb.bench';

const A = 'be0c0000-0000-4000-8000-00000000000a';
const EVENTS = 20000;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface Profile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** The child: Node-RED rounds, writing the measured windows (µs, the profiler's clock) to `windowsFile`. */
async function child(sockJs: boolean, rounds: number, windowsFile: string): Promise<void> {
  const { RED, deploy, stop } = await startNodeRed();
  const emulator = new MsbEmulator({ heartbeatInterval: 0, recordTraffic: false });
  const { url } = await emulator.start({ port: 0 });
  const flow = [
    {
      id: 'cfgA',
      type: 'msb-config',
      name: 'profile A',
      uuid: A,
      url,
      sockJs,
      autoReconnect: true,
      reconnectInterval: 10,
      eventCacheSize: 1000,
      parameters: [],
    },
    { id: 'src', type: 'junction', wires: [['ev']] },
    {
      id: 'ev',
      type: 'msb-event-out',
      service: 'cfgA',
      eventId: 'VALUE',
      dataType: 'double',
      priority: 'LOW',
      cached: false,
    },
  ];
  const windows: Array<[number, number]> = [];
  for (let r = 0; r <= rounds; r++) {
    await deploy(flow);
    await until(() => emulator.services().has(A));
    const src = RED.nodes.getNode('src') as unknown as { send(msg: object): void };
    const before = emulator.publishedCount(A);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < EVENTS; i++) src.send({ payload: i + 0.5 });
    await until(() => emulator.publishedCount(A) - before >= EVENTS);
    const t1 = process.hrtime.bigint();
    // Round 0 warms up the JIT and is not counted.
    if (r > 0) windows.push([Number(t0 / 1000n), Number(t1 / 1000n)]);
    process.stderr.write(
      `  round ${r}${r === 0 ? ' (warm-up)' : ''}: ${Math.round(EVENTS / (Number(t1 - t0) / 1e9))} events/s\n`,
    );
    await deploy([]);
    await until(() => !emulator.services().has(A));
  }
  fs.writeFileSync(windowsFile, JSON.stringify(windows));
  await stop();
  await emulator.close();
}

function category(cf: CallFrame): string {
  const { url, functionName: f } = cf;
  if (f === '(garbage collector)') return 'garbage collector';
  if (f === '(idle)' || f === '(program)') return 'idle / program';
  if (/@node-red/.test(url)) return 'Node-RED runtime';
  if (/src\/msb\/(emulator|framing)\.js/.test(url)) return 'emulator (stands in for the MSB)';
  if (/src\/msb\/|nodes\/msb-|nodes\/lib\/msb/.test(url)) return 'this package (client, nodes)';
  if (/node_modules\/ws\//.test(url)) return 'ws framing and parsing';
  if (f === 'writev' || /internal\/(streams|stream_base|buffer)|node:net|node:buffer/.test(url) || /^utf8/.test(f))
    return 'Node streams, buffers, syscalls';
  return 'other (timers, events, …)';
}

/** Self time inside the windows: by category, and this package's top functions. */
function summarise(profile: Profile, windows: Array<[number, number]>): string {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byCategory = new Map<string, number>();
  const ours = new Map<string, number>();
  let total = 0;
  let ts = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    ts += profile.timeDeltas[i];
    if (!windows.some(([a, b]) => ts >= a && ts <= b)) continue;
    const dt = profile.timeDeltas[i];
    const cf = frames.get(profile.samples[i])!;
    total += dt;
    const c = category(cf);
    byCategory.set(c, (byCategory.get(c) ?? 0) + dt);
    if (c === 'this package (client, nodes)') {
      const key = `${cf.functionName || '(anonymous)'} ${cf.url.replace(/.*\/dist\//, '')}:${cf.lineNumber + 1}`;
      ours.set(key, (ours.get(key) ?? 0) + dt);
    }
  }
  const pct = (t: number): string => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const lines = [`self time in the measured rounds (${(total / 1000).toFixed(0)} ms sampled):`];
  for (const [c, t] of [...byCategory].sort((a, b) => b[1] - a[1])) lines.push(`${pct(t)}  ${c}`);
  lines.push('', "this package's top functions:");
  for (const [k, t] of [...ours].sort((a, b) => b[1] - a[1]).slice(0, 10)) lines.push(`${pct(t)}  ${k}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const sockJs = args[0] !== 'raw';
  const rounds = Number(args[1] ?? 6);
  if (args[2] === '--child') {
    await child(sockJs, rounds, args[3]);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-cpuprof-'));
  const windowsFile = path.join(dir, 'windows.json');
  const run = spawnSync(
    process.execPath,
    [
      '--cpu-prof',
      '--cpu-prof-dir',
      dir,
      '--cpu-prof-interval',
      '200',
      __filename,
      sockJs ? 'sockjs' : 'raw',
      String(rounds),
      '--child',
      windowsFile,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (run.status !== 0) throw new Error(`profile: the child exited with ${run.status}`);
  const profileFile = fs.readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!profileFile) throw new Error('profile: no .cpuprofile written');
  const profile = JSON.parse(fs.readFileSync(path.join(dir, profileFile), 'utf8')) as Profile;
  const windows = JSON.parse(fs.readFileSync(windowsFile, 'utf8')) as Array<[number, number]>;
  process.stdout.write(
    `msb-event-out, ${sockJs ? 'SockJS' : 'raw path'}, ${rounds} rounds of ${EVENTS} events\n${summarise(profile, windows)}\n`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
