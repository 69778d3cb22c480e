// MSB benchmark: msb-event-out throughput through a real Node-RED runtime into the emulator, as a ratio to a raw
// `ws` client sending the same frames in the same run; publish-to-function-call latency; and the durable event cache
// (into it during an outage, replay after reconnect) as a ratio to the in-memory cache. Alternating rounds, every row
// min / median / max; the emulator keeps no traffic record (it would weigh on both sides alike).
import { spawnSync } from 'child_process';
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';
import {
  compileSelfDescription,
  connectionUrl,
  encodeClientFrame,
  formatMessage,
  MsbClient,
  MsbEmulator,
} from '../src/msb';
import { BenchPeer, startPeerThread } from './msb-peer-thread';
import { alternate, Measures, mmm, percentile, progress, RoundResults, Stats, stats } from './rounds';

/** The embedded Node-RED runtime (no editor, no HTTP), with this package installed in a throwaway userDir. */
interface EmbeddedRed {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): HelperNode | null };
  hooks: { add(name: string, fn: (event: { destination: { id: string } }) => void): void; remove(name: string): void };
  runtime: { flows: { setFlows(opts: { flows: { flows: Flow }; deploymentType: string }): Promise<unknown> } };
}

export async function startNodeRed(): Promise<{
  RED: EmbeddedRed;
  deploy(flow: Flow): Promise<void>;
  stop(): Promise<void>;
}> {
  const root = path.join(__dirname, '..', '..');
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-bench-'));
  fs.mkdirSync(path.join(userDir, 'node_modules', '@busbar'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', '@busbar', 'node-red-buses'), 'dir');
  fs.writeFileSync(
    path.join(userDir, 'package.json'),
    JSON.stringify({ name: 'bench', version: '1.0.0', dependencies: { '@busbar/node-red-buses': '*' } }),
  );

  const RED = require('node-red') as EmbeddedRed;
  RED.init(http.createServer(), {
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    logging: { console: { level: 'warn' } },
  });
  await RED.start();
  return {
    RED,
    deploy: async (flow) => {
      await RED.runtime.flows.setFlows({ flows: { flows: flow }, deploymentType: 'full' });
    },
    stop: async () => {
      await RED.stop();
      fs.rmSync(userDir, { recursive: true, force: true });
    },
  };
}

const A = 'be0c0000-0000-4000-8000-00000000000a';
const B = 'be0c0000-0000-4000-8000-00000000000b';
const EVENTS = 20000;
const ROUNDS = 11;
const LATENCY_SAMPLES = 400;
const CACHE_EVENTS = 20000;
const CACHE_ROUNDS = 5;

type Flow = Array<{ id: string; type: string; [key: string]: unknown }>;
interface HelperNode {
  send(msg: Record<string, unknown>): void;
  on(event: 'input', fn: (msg: Record<string, unknown>) => void): void;
}

function sd(uuid: string) {
  return compileSelfDescription(
    { uuid, name: `bench ${uuid.slice(-1)}`, serviceClass: 'SmartObject' },
    [{ eventId: 'VALUE', dataFormat: { kind: 'simple', type: 'double' } }],
    [{ functionId: 'TAKE', dataFormat: { kind: 'simple', type: 'double' } }],
  );
}

/** Counts IO_PUBLISHED answers the MSB sends to one service from now on. */
function publishedCounter(peer: BenchPeer, uuid: string): { count: () => number } {
  const before = peer.publishedCount(uuid);
  return { count: () => peer.publishedCount(uuid) - before };
}

/** The emulator on the bench's own thread, as a bench peer. */
function sameThreadPeer(emulator: MsbEmulator, url: string): BenchPeer {
  return {
    url,
    publishedCount: (uuid) => emulator.publishedCount(uuid),
    registered: (uuid) => emulator.services().has(uuid),
    close: () => emulator.close(),
  };
}

/** One unmeasured round per side first (both then run optimised code), then the alternating rounds. */
async function warmAndAlternate(
  rounds: number,
  baseline: () => Promise<Measures>,
  candidate: () => Promise<Measures>,
): Promise<RoundResults> {
  await baseline();
  await candidate();
  return alternate({ rounds }, baseline, candidate);
}

export async function until(check: () => boolean, timeout = 30000): Promise<void> {
  const end = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > end) throw new Error('bench: timed out');
    await new Promise((r) => setImmediate(r));
  }
}

/** A raw ws client doing what the node does on the wire: SockJS path, R, then E frames built per event. */
async function rawClient(
  url: string,
  uuid: string,
  sockJs = true,
): Promise<{ ws: WebSocket; onMessage: (fn: (text: string) => void) => void }> {
  const ws = new WebSocket(connectionUrl(url, sockJs));
  const listeners: Array<(text: string) => void> = [];
  let registered = false;
  ws.on('message', (d: WebSocket.RawData) => {
    const frame = d.toString();
    if (sockJs && frame[0] !== 'a') return;
    for (const m of sockJs ? (JSON.parse(frame.slice(1)) as string[]) : [frame]) {
      if (m === 'IO_CONNECTED') ws.send(encodeClientFrame(`R ${JSON.stringify(sd(uuid))}`, sockJs));
      else if (m === 'IO_REGISTERED') registered = true;
      for (const l of listeners) l(m);
    }
  });
  await until(() => registered, 5000);
  return { ws, onMessage: (fn) => listeners.push(fn) };
}

function rawEvent(uuid: string, value: number, correlationId?: string, sockJs = true): string {
  const msg: Record<string, unknown> = {
    uuid,
    eventId: 'VALUE',
    priority: 0,
    postDate: new Date().toISOString(),
    dataObject: value,
  };
  if (correlationId) msg.correlationId = correlationId;
  return encodeClientFrame(formatMessage('E', msg), sockJs);
}

const PROFILE_ROUNDS = 4;

/** Self-time shares by category from bench/msb-profile (run in a child process under --cpu-prof). */
function profileShares(mode: 'sockjs' | 'raw'): Map<string, string> {
  const run = spawnSync(process.execPath, [path.join(__dirname, 'msb-profile.js'), mode, String(PROFILE_ROUNDS)], {
    encoding: 'utf8',
  });
  const shares = new Map<string, string>();
  for (const line of (run.stdout ?? '').split('\n')) {
    if (line.startsWith("this package's top")) break;
    const m = /^\s*([\d.]+%)\s+(.+)$/.exec(line);
    if (m) shares.set(m[2], m[1]);
  }
  if (shares.size === 0) progress(`profile ${mode} failed: ${run.stderr?.slice(-500)}`);
  return shares;
}

/** min / median / p99 / max of latency samples in ms. */
function latencyRow(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const f = (n: number): string => n.toFixed(2);
  return `${f(sorted[0])} | **${f(stats(sorted).median)}** | ${f(percentile(sorted, 99))} | ${f(sorted[sorted.length - 1])}`;
}

/**
 * One outage: the MSB is down, CACHE_EVENTS cached events are published one per event-loop turn (as Node-RED hands
 * messages over) and the time until every publish resolved 'cached' (on disk, for the durable cache) is taken; then
 * the MSB comes back on the same port and the time from IO_REGISTERED until the cache is empty (every event
 * acknowledged) is taken.
 */
async function cacheRound(durable: boolean): Promise<{ into: number; replay: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-cache-bench-'));
  const probe = new MsbEmulator({ heartbeatInterval: 0, recordTraffic: false });
  const { url, port } = await probe.start({ port: 0 });
  await probe.close();
  const client = new MsbClient({
    url,
    minimumReconnectInterval: 20,
    reconnectInterval: 20,
    maxReconnectInterval: 50,
    eventCacheSize: CACHE_EVENTS,
    eventCacheBytes: 64 * 1024 * 1024,
    eventCacheFile: durable ? path.join(dir, 'msb.log') : undefined,
    pingInterval: 0,
  });
  client.setSelfDescription(sd(A));
  client.connect();
  let start = process.hrtime.bigint();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < CACHE_EVENTS; i++) {
    pending.push(client.publish({ eventId: 'VALUE', dataObject: i + 0.5, cached: true }));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const into = CACHE_EVENTS / (Number(process.hrtime.bigint() - start) / 1e9);
  const emulator = new MsbEmulator({ heartbeatInterval: 0, recordTraffic: false });
  await emulator.start({ port });
  await until(() => client.registered);
  start = process.hrtime.bigint();
  await until(() => client.cachedEvents === 0, 60000);
  const replay = CACHE_EVENTS / (Number(process.hrtime.bigint() - start) / 1e9);
  await client.close();
  await emulator.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { into, replay };
}

export async function run(): Promise<string> {
  const cache = await alternate(
    { rounds: CACHE_ROUNDS },
    async () => cacheRound(false),
    async () => cacheRound(true),
  );
  progress(
    `event cache: durable / memory into ${mmm(cache.compare('into').ratio, 2)}, replay ${mmm(cache.compare('replay').ratio, 2)}`,
  );

  const emulator = new MsbEmulator({ heartbeatInterval: 0, recordTraffic: false });
  const { url } = await emulator.start({ port: 0 });
  const red = await startNodeRed();
  const ownThread = await startPeerThread([A]);

  // Throughput: Node-RED (junction -> msb-event-out, through the runtime's wiring) vs raw ws, alternating rounds,
  // once over SockJS (where the client coalesces a burst into one frame) and once over the raw path (no coalescing).
  const throughput = async (peer: BenchPeer, sockJs: boolean): Promise<ReturnType<RoundResults['compare']>> => {
    const url = peer.url;
    const flow: Flow = [
      {
        id: 'cfgA',
        type: 'msb-config',
        name: 'bench A',
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
    const nodeRed = async (): Promise<Measures> => {
      await red.deploy(flow);
      await until(() => peer.registered(A));
      const src = red.RED.nodes.getNode('src') as HelperNode;
      const counter = publishedCounter(peer, A);
      const start = process.hrtime.bigint();
      for (let i = 0; i < EVENTS; i++) src.send({ payload: i + 0.5 });
      await until(() => counter.count() >= EVENTS);
      const rate = EVENTS / (Number(process.hrtime.bigint() - start) / 1e9);
      await red.deploy([]);
      await until(() => !peer.registered(A));
      return { rate };
    };
    const rawWs = async (): Promise<Measures> => {
      const raw = await rawClient(url, A, sockJs);
      await until(() => peer.registered(A));
      const counter = publishedCounter(peer, A);
      const start = process.hrtime.bigint();
      for (let i = 0; i < EVENTS; i++) raw.ws.send(rawEvent(A, i + 0.5, undefined, sockJs));
      await until(() => counter.count() >= EVENTS);
      const rate = EVENTS / (Number(process.hrtime.bigint() - start) / 1e9);
      raw.ws.close();
      await until(() => !peer.registered(A));
      return { rate };
    };
    const results = (await warmAndAlternate(ROUNDS, rawWs, nodeRed)).compare('rate');
    progress(
      `${sockJs ? 'SockJS' : 'raw path'}, ${peer === ownThread ? 'MSB on its own thread' : 'MSB on the same thread'}: ratio ${mmm(results.ratio, 2)}`,
    );
    return results;
  };
  const sameThread = sameThreadPeer(emulator, url);
  const viaSockJs = await throughput(sameThread, true);
  const viaRawPath = await throughput(sameThread, false);
  const ownSockJs = await throughput(ownThread, true);
  const ownRawPath = await throughput(ownThread, false);
  await ownThread.close();

  // Latency: event published by service A -> emulator integration flow -> function call emitted by service B. (The
  // flow is added only now: the throughput rounds measure publishing, not the MSB's routing.)
  emulator.addFlow({ source: { uuid: A, eventId: 'VALUE' }, target: { uuid: B, functionId: 'TAKE' } });
  const latencyFlow: Flow = [
    {
      id: 'cfgA',
      type: 'msb-config',
      name: 'bench A',
      uuid: A,
      url,
      sockJs: true,
      autoReconnect: true,
      reconnectInterval: 10,
      eventCacheSize: 1000,
      parameters: [],
    },
    {
      id: 'cfgB',
      type: 'msb-config',
      name: 'bench B',
      uuid: B,
      url,
      sockJs: true,
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
    {
      id: 'fn',
      type: 'msb-function-in',
      service: 'cfgB',
      functionId: 'TAKE',
      dataType: 'double',
      responseEvents: [],
      wires: [['out']],
    },
    { id: 'out', type: 'junction', wires: [] },
  ];
  await red.deploy(latencyFlow);
  await until(() => emulator.services().has(A) && emulator.services().has(B));
  const src = red.RED.nodes.getNode('src') as HelperNode;
  let resolveCall: (() => void) | undefined;
  red.RED.hooks.add('onReceive.busbarBench', (event) => {
    if (event.destination.id === 'out') resolveCall?.();
  });
  const nrLatency: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const got = new Promise<void>((r) => (resolveCall = r));
    const t0 = process.hrtime.bigint();
    src.send({ payload: i + 0.5, correlationId: `c${i}` });
    await got;
    nrLatency.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  red.RED.hooks.remove('onReceive.busbarBench');
  await red.deploy([]);
  await until(() => emulator.services().size === 0);

  const rawA = await rawClient(url, A);
  const rawB = await rawClient(url, B);
  let resolveRaw: (() => void) | undefined;
  rawB.onMessage((m) => {
    if (m.startsWith('C ')) resolveRaw?.();
  });
  const rawLatency: number[] = [];
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const got = new Promise<void>((r) => (resolveRaw = r));
    const t0 = process.hrtime.bigint();
    rawA.ws.send(rawEvent(A, i + 0.5, `c${i}`));
    await got;
    rawLatency.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  rawA.ws.close();
  rawB.ws.close();
  await red.stop();
  await emulator.close();

  const profiles = { sockJs: profileShares('sockjs'), raw: profileShares('raw') };
  const categories = [...new Set([...profiles.sockJs.keys(), ...profiles.raw.keys()])];
  const f = (n: number): string => n.toFixed(2);
  const goal = (ratio: Stats, min: number): string => `≥ ${f(min)}: ${ratio.median >= min ? 'met' : 'not met'}`;
  const into = cache.compare('into');
  const replay = cache.compare('replay');
  return [
    '## MSB',
    '',
    `msb-event-out throughput through the Node-RED runtime (an embedded Node-RED runtime with this package installed; a junction node's \`send\` wired to msb-event-out, payload validated as double) into the in-process MSB emulator, against a raw \`ws\` client sending the same E messages (one websocket frame each, built per event with \`new Date().toISOString()\` and \`JSON.stringify\`) to the same emulator in the same run. ${EVENTS} events per round, ${ROUNDS} alternating rounds (the side that goes first swaps every round); a round ends when the emulator has answered every event with IO_PUBLISHED. Figures are min / **median** / max over the rounds; the ratio is taken per round (Node-RED / raw of the same round). Over SockJS the client coalesces the events published in one event-loop turn into one SockJS frame (a JSON array of messages, which SockJS servers split); on the raw path every event is its own frame, like the baseline, and the frames of one turn leave in one write. The emulator keeps no traffic record here and writes the answers of one turn at once (still one frame per answer), so that its own cost, paid alike by both sides, pulls the ratio less toward 1. Each comparison runs twice: with the emulator on the measured thread (its parsing and answering share the event loop with both sides, as in earlier versions of this bench) and with the emulator on a worker thread of its own (like a real MSB on another machine: its work is off the measured event loop; acknowledgement counts reach the bench through shared memory, refreshed every millisecond). Before the measured rounds each side runs one unmeasured warm-up round.`,
    '',
    '| MSB emulator | framing | raw `ws` client, events/s | Node-RED → msb-event-out, events/s | ratio to raw | goal (median) |',
    '|---|---|---:|---:|---:|---|',
    `| on the measured thread | SockJS | ${mmm(viaSockJs.baseline)} | ${mmm(viaSockJs.candidate)} | ${mmm(viaSockJs.ratio, 2)} | ${goal(viaSockJs.ratio, 1.2)} |`,
    `| on the measured thread | raw path | ${mmm(viaRawPath.baseline)} | ${mmm(viaRawPath.candidate)} | ${mmm(viaRawPath.ratio, 2)} | ${goal(viaRawPath.ratio, 1.0)} |`,
    `| on its own thread | SockJS | ${mmm(ownSockJs.baseline)} | ${mmm(ownSockJs.candidate)} | ${mmm(ownSockJs.ratio, 2)} | ${goal(ownSockJs.ratio, 1.2)} |`,
    `| on its own thread | raw path | ${mmm(ownRawPath.baseline)} | ${mmm(ownRawPath.candidate)} | ${mmm(ownRawPath.ratio, 2)} | ${goal(ownRawPath.ratio, 1.0)} |`,
    '',
    `Where the Node-RED side's time goes (\`node dist/bench/msb-profile.js sockjs|raw ${PROFILE_ROUNDS}\`: the Node-RED rounds above, emulator on the same thread, under \`node --cpu-prof\`; self time of the measured rounds):`,
    '',
    '| share of CPU time | SockJS | raw path |',
    '|---|---:|---:|',
    ...categories.map((c) => `| ${c} | ${profiles.sockJs.get(c) ?? '–'} | ${profiles.raw.get(c) ?? '–'} |`),
    '',
    `Publish-to-function-call latency, ${LATENCY_SAMPLES} sequential events: service A publishes, the emulator's integration flow calls a function of service B; measured from the send into msb-event-out to the msg leaving msb-function-in (Node-RED), or from the E frame to the C frame arriving at the second raw client (raw).`,
    '',
    '| path | min ms | median ms | p99 ms | max ms |',
    '|---|---:|---:|---:|---:|',
    `| raw \`ws\` clients | ${latencyRow(rawLatency)} |`,
    `| Node-RED: msb-event-out → msb-function-in | ${latencyRow(nrLatency)} |`,
    '',
    `Event cache during an outage, MSB client core (\`MsbClient\`) against the emulator: ${CACHE_EVENTS} cached events published one per event-loop turn while the MSB is down (rate until every publish resolved, i.e. until each is on disk with the durable cache: append-only log, fdatasync with group commit), then the MSB restarted on the same port (rate from IO_REGISTERED until every event is acknowledged and removed). ${CACHE_ROUNDS} alternating rounds, min / **median** / max; ratios per round.`,
    '',
    '| cache | into the cache during the outage, events/s | replay after reconnect, events/s |',
    '|---|---:|---:|',
    `| in memory | ${mmm(into.baseline)} | ${mmm(replay.baseline)} |`,
    `| durable (default) | ${mmm(into.candidate)} | ${mmm(replay.candidate)} |`,
    `| ratio durable / memory | ${mmm(into.ratio, 2)} | ${mmm(replay.ratio, 2)} |`,
    '',
  ].join('\n');
}
