// MSB benchmark: msb-event-out throughput through a real Node-RED runtime into the emulator, as a ratio to a raw
// `ws` client sending the same frames in the same run; publish-to-function-call latency p50/p99; and the durable
// event cache (into it during an outage, replay after reconnect) as a ratio to the in-memory cache.
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import WebSocket from 'ws';
import { compileSelfDescription, connectionUrl, encodeClientFrame, formatMessage, MsbClient, MsbEmulator } from '../src/msb';

/** The embedded Node-RED runtime (no editor, no HTTP), with this package installed in a throwaway userDir. */
interface EmbeddedRed {
  init(server: http.Server, settings: Record<string, unknown>): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  nodes: { getNode(id: string): HelperNode | null };
  hooks: { add(name: string, fn: (event: { destination: { id: string } }) => void): void; remove(name: string): void };
  runtime: { flows: { setFlows(opts: { flows: { flows: Flow }; deploymentType: string }): Promise<unknown> } };
}

async function startNodeRed(): Promise<{ RED: EmbeddedRed; deploy(flow: Flow): Promise<void>; stop(): Promise<void> }> {
  const root = path.join(__dirname, '..', '..');
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-bench-'));
  fs.mkdirSync(path.join(userDir, 'node_modules', '@busbar'), { recursive: true });
  fs.symlinkSync(root, path.join(userDir, 'node_modules', '@busbar', 'node-red-buses'), 'dir');
  fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify({ name: 'bench', version: '1.0.0', dependencies: { '@busbar/node-red-buses': '*' } }));
   
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
const ROUNDS = 5;
const LATENCY_SAMPLES = 400;
const CACHE_EVENTS = 20000;
const CACHE_ROUNDS = 3;

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

/** Counts IO_PUBLISHED answers the emulator sends to one service. */
function publishedCounter(emulator: MsbEmulator, uuid: string): { count: () => number; stop: () => void } {
  let n = 0;
  const listener = (r: { direction: string; uuid?: string; message: string }): void => {
    if (r.direction === 'out' && r.uuid === uuid && r.message === 'IO_PUBLISHED') n++;
  };
  emulator.on('traffic', listener);
  return { count: () => n, stop: () => emulator.off('traffic', listener) };
}

async function until(check: () => boolean, timeout = 30000): Promise<void> {
  const end = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > end) throw new Error('bench: timed out');
    await new Promise((r) => setImmediate(r));
  }
}

/** A raw ws client doing what the node does on the wire: SockJS path, R, then E frames built per event. */
async function rawClient(url: string, uuid: string, sockJs = true): Promise<{ ws: WebSocket; onMessage: (fn: (text: string) => void) => void }> {
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
  const msg: Record<string, unknown> = { uuid, eventId: 'VALUE', priority: 0, postDate: new Date().toISOString(), dataObject: value };
  if (correlationId) msg.correlationId = correlationId;
  return encodeClientFrame(formatMessage('E', msg), sockJs);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * One outage: the MSB is down, CACHE_EVENTS cached events are published one per event-loop turn (as Node-RED hands
 * messages over) and the time until every publish resolved 'cached' (on disk, for the durable cache) is taken; then
 * the MSB comes back on the same port and the time from IO_REGISTERED until the cache is empty (every event
 * acknowledged) is taken.
 */
async function cacheRound(durable: boolean): Promise<{ into: number; replay: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-cache-bench-'));
  const probe = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 10 });
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
  const emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 10 });
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
  const cacheRates = { memory: { into: [] as number[], replay: [] as number[] }, durable: { into: [] as number[], replay: [] as number[] } };
  for (let round = 0; round < CACHE_ROUNDS; round++) {
    for (const durable of [false, true]) {
      const r = await cacheRound(durable);
      const bucket = durable ? cacheRates.durable : cacheRates.memory;
      bucket.into.push(r.into);
      bucket.replay.push(r.replay);
    }
  }

  const emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 100 });
  const { url } = await emulator.start({ port: 0 });
  emulator.addFlow({ source: { uuid: A, eventId: 'VALUE' }, target: { uuid: B, functionId: 'TAKE' } });
  const red = await startNodeRed();

  // Throughput: Node-RED (junction -> msb-event-out, through the runtime's wiring) vs raw ws, alternating rounds,
  // once over SockJS (where the client coalesces a burst into one frame) and once over the raw path (no coalescing).
  const throughput = async (sockJs: boolean): Promise<{ nr: number; raw: number }> => {
    const flow: Flow = [
      { id: 'cfgA', type: 'msb-config', name: 'bench A', uuid: A, url, sockJs, autoReconnect: true, reconnectInterval: 10, eventCacheSize: 1000, parameters: [] },
      { id: 'src', type: 'junction', wires: [['ev']] },
      { id: 'ev', type: 'msb-event-out', service: 'cfgA', eventId: 'VALUE', dataType: 'double', priority: 'LOW', cached: false },
    ];
    const nrRates: number[] = [];
    const rawRates: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await red.deploy(flow);
      await until(() => emulator.services().has(A));
      const src = red.RED.nodes.getNode('src') as HelperNode;
      let counter = publishedCounter(emulator, A);
      let start = process.hrtime.bigint();
      for (let i = 0; i < EVENTS; i++) src.send({ payload: i + 0.5 });
      await until(() => counter.count() >= EVENTS);
      nrRates.push(EVENTS / (Number(process.hrtime.bigint() - start) / 1e9));
      counter.stop();
      await red.deploy([]);
      await until(() => !emulator.services().has(A));

      const raw = await rawClient(url, A, sockJs);
      counter = publishedCounter(emulator, A);
      start = process.hrtime.bigint();
      for (let i = 0; i < EVENTS; i++) raw.ws.send(rawEvent(A, i + 0.5, undefined, sockJs));
      await until(() => counter.count() >= EVENTS);
      rawRates.push(EVENTS / (Number(process.hrtime.bigint() - start) / 1e9));
      counter.stop();
      raw.ws.close();
      await until(() => !emulator.services().has(A));
    }
    return { nr: median(nrRates), raw: median(rawRates) };
  };
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const viaSockJs = await throughput(true);
  const viaRawPath = await throughput(false);

  // Latency: event published by service A -> emulator integration flow -> function call emitted by service B.
  const latencyFlow: Flow = [
    { id: 'cfgA', type: 'msb-config', name: 'bench A', uuid: A, url, sockJs: true, autoReconnect: true, reconnectInterval: 10, eventCacheSize: 1000, parameters: [] },
    { id: 'cfgB', type: 'msb-config', name: 'bench B', uuid: B, url, sockJs: true, autoReconnect: true, reconnectInterval: 10, eventCacheSize: 1000, parameters: [] },
    { id: 'src', type: 'junction', wires: [['ev']] },
    { id: 'ev', type: 'msb-event-out', service: 'cfgA', eventId: 'VALUE', dataType: 'double', priority: 'LOW', cached: false },
    { id: 'fn', type: 'msb-function-in', service: 'cfgB', functionId: 'TAKE', dataType: 'double', responseEvents: [], wires: [['out']] },
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

  nrLatency.sort((a, b) => a - b);
  rawLatency.sort((a, b) => a - b);
  const f = (n: number): string => n.toFixed(2);
  const mem = { into: median(cacheRates.memory.into), replay: median(cacheRates.memory.replay) };
  const disk = { into: median(cacheRates.durable.into), replay: median(cacheRates.durable.replay) };
  return [
    '## MSB',
    '',
    `msb-event-out throughput through the Node-RED runtime (an embedded Node-RED runtime with this package installed; a junction node's \`send\` wired to msb-event-out, payload validated as double) into the in-process MSB emulator, against a raw \`ws\` client sending the same E messages (one websocket frame each, built per event) to the same emulator in the same run. ${EVENTS} events per round, ${ROUNDS} alternating rounds, median; a round ends when the emulator has answered every event with IO_PUBLISHED. Over SockJS the client coalesces the events published in one event-loop turn into one SockJS frame (a JSON array of messages, which SockJS servers split); on the raw path every event is its own frame, like the baseline.`,
    '',
    '| framing | raw `ws` client, events/s | Node-RED → msb-event-out, events/s | ratio to raw |',
    '|---|---:|---:|---:|',
    `| SockJS | ${Math.round(viaSockJs.raw)} | ${Math.round(viaSockJs.nr)} | **${f(viaSockJs.nr / viaSockJs.raw)}** (goal ≥ 0.70) |`,
    `| raw path | ${Math.round(viaRawPath.raw)} | ${Math.round(viaRawPath.nr)} | **${f(viaRawPath.nr / viaRawPath.raw)}** (goal ≥ 0.70) |`,
    '',
    `Publish-to-function-call latency, ${LATENCY_SAMPLES} sequential events: service A publishes, the emulator's integration flow calls a function of service B; measured from the send into msb-event-out to the msg leaving msb-function-in (Node-RED), or from the E frame to the C frame arriving at the second raw client (raw).`,
    '',
    '| path | p50 ms | p99 ms |',
    '|---|---:|---:|',
    `| raw \`ws\` clients | ${f(percentile(rawLatency, 50))} | ${f(percentile(rawLatency, 99))} |`,
    `| Node-RED: msb-event-out → msb-function-in | ${f(percentile(nrLatency, 50))} | ${f(percentile(nrLatency, 99))} |`,
    '',
    `Event cache during an outage, MSB client core (\`MsbClient\`) against the emulator: ${CACHE_EVENTS} cached events published one per event-loop turn while the MSB is down (rate until every publish resolved, i.e. until each is on disk with the durable cache: append-only log, fdatasync with group commit), then the MSB restarted on the same port (rate from IO_REGISTERED until every event is acknowledged and removed). ${CACHE_ROUNDS} alternating rounds, median.`,
    '',
    '| cache | into the cache during the outage, events/s | replay after reconnect, events/s |',
    '|---|---:|---:|',
    `| in memory | ${Math.round(mem.into)} | ${Math.round(mem.replay)} |`,
    `| durable (default) | ${Math.round(disk.into)} | ${Math.round(disk.replay)} |`,
    `| ratio durable / memory | **${f(disk.into / mem.into)}** | **${f(disk.replay / mem.replay)}** |`,
    '',
  ].join('\n');
}
