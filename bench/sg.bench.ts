// Secure Gateway benchmark: sg-resource data publish throughput and command -> echo round trip through the Node-RED
// runtime, against the core Node-RED `mqtt out` / `mqtt in` nodes on the same broker, in the same run.
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import mqtt, { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../src/mqtt/embedded-broker';

const PUBLISHES = 10000; // per throughput run
const ROUND_TRIPS = 120; // per latency run
const BURSTS = 3; // throughput bursts per run
const RUNS = 5; // alternating sg / core (order swapped every run); medians reported

interface Receivable {
  receive(msg: object): void;
}

interface RuntimeNode extends Receivable {
  on(event: 'input', listener: () => void): void;
}

/**
 * A real Node-RED runtime (no test-helper spies, which record every call) with this package installed from a
 * temporary user directory, as a user's Node-RED would load it.
 */
class NodeRed {
  private readonly red = require('node-red') as {
    init(server: http.Server, settings: object): void;
    start(): Promise<void>;
    stop(): Promise<void>;
    nodes: { getNode(id: string): unknown };
    runtime: { flows: { setFlows(opts: object): Promise<unknown> } };
  };
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-sg-bench-'));

  async start(): Promise<void> {
    const scope = path.join(this.dir, 'node_modules', '@busbar');
    fs.mkdirSync(scope, { recursive: true });
    fs.symlinkSync(path.join(__dirname, '..', '..'), path.join(scope, 'node-red-buses'), 'dir');
    fs.writeFileSync(path.join(this.dir, 'package.json'), JSON.stringify({ name: 'bench', dependencies: { '@busbar/node-red-buses': '*' } }));
    this.red.init(http.createServer(), {
      userDir: this.dir,
      httpAdminRoot: false,
      httpNodeRoot: false,
      logging: { console: { level: process.env.BENCH_DEBUG ? 'info' : 'error' } },
      editorTheme: { tours: false },
    });
    await this.red.start();
  }

  async deploy(flows: object[]): Promise<void> {
    // Stop everything first: a full deploy that only rewires a node trips over Node-RED's rewire path when driven
    // through the runtime API, and a clean stop/start is what the measurements want anyway.
    await this.red.runtime.flows.setFlows({ flows: { flows: [] }, deploymentType: 'full' });
    if (flows.length > 0) await this.red.runtime.flows.setFlows({ flows: { flows }, deploymentType: 'full' });
  }

  node(id: string): RuntimeNode {
    const n = this.red.nodes.getNode(id) as RuntimeNode | null;
    if (!n) throw new Error(`bench: node ${id} not running`);
    return n;
  }

  async stop(): Promise<void> {
    await this.deploy([]);
    await this.red.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function until(cond: () => boolean, what: string, ms = 10000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
}

/**
 * Publishes PUBLISHES values through `entry` and returns msgs/s until every input msg completed (done() after the
 * broker's PUBACK, for both node kinds), counted by a Complete node. Counting at a subscriber instead would measure
 * the broker's queue limits (Mosquitto drops QoS 1 messages beyond max_queued_messages for a slow subscriber).
 */
async function throughput(counter: { count: number }, entry: Receivable, inputTopic: string): Promise<number> {
  counter.count = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < PUBLISHES; i++) entry.receive({ topic: inputTopic, payload: i });
  await until(() => counter.count >= PUBLISHES, `${PUBLISHES} completed publishes`, 60000);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return PUBLISHES / seconds;
}

/** Counts the msgs reaching a node (one listener per deployed flow). */
function counting(red: NodeRed, id: string): { count: number } {
  const counter = { count: 0 };
  red.node(id).on('input', () => counter.count++);
  return counter;
}

/** Sequential command -> echo round trips seen from an independent client; returns milliseconds per trip. */
async function roundTrips(client: MqttClient, command: string, echo: string): Promise<number[]> {
  const times: number[] = [];
  let waiting: ((payload: string) => void) | undefined;
  const onMessage = (t: string, payload: Buffer): void => {
    if (t === echo && waiting) waiting(payload.toString());
  };
  client.on('message', onMessage);
  await client.subscribeAsync(echo, { qos: 1 });
  for (let i = 0; i < ROUND_TRIPS + 20; i++) {
    const expected = `p${i}`;
    const start = process.hrtime.bigint();
    await new Promise<void>((resolve) => {
      waiting = (payload) => {
        if (payload === expected) {
          waiting = undefined;
          resolve();
        }
      };
      client.publish(command, expected, { qos: 1 });
    });
    if (i >= 20) times.push(Number(process.hrtime.bigint() - start) / 1e6); // first 20 are warm-up
  }
  client.removeListener('message', onMessage);
  await client.unsubscribeAsync(echo);
  return times;
}

export async function run(): Promise<string> {
  const red = new NodeRed();
  await red.start();
  const external = process.env.MQTT_URL;
  const embedded = external ? undefined : new EmbeddedBroker({ port: 0 });
  const port = embedded ? await embedded.start() : Number(new URL(external as string).port || 1883);
  const url = external ?? (embedded as EmbeddedBroker).url;
  const host = external ? new URL(external).hostname : '127.0.0.1';
  const res = `benchres${process.pid}`;
  const core = `benchcore${process.pid}`;

  // Ids differ between the sg and the core flows so each deploy is a clean replacement.
  const completion = (tab: string, target: string): object[] => [
    { id: `${tab}-completion`, type: 'complete', z: tab, scope: [target], uncaught: false, wires: [[`${tab}-completed`]] },
    { id: `${tab}-completed`, type: 'debug', z: tab, active: false, tosidebar: false, console: false, tostatus: false, complete: 'false', wires: [] },
  ];
  const sgFlow = (echoAnswer: boolean): object[] => [
    { id: 'fs', type: 'tab' },
    ...completion('fs', 'res'),
    { id: 'sgb', type: 'sg-broker', mode: 'external', host, port, protocol: '3.1.1', keepalive: 10, qos: 1, clean: true },
    {
      id: 'res',
      z: 'fs',
      type: 'sg-resource',
      broker: 'sgb',
      resource: res,
      commands: [{ signal: 'ping', echo: true, echoRetained: false, defaultValue: null, changeOnly: false, echoAnswer }],
      data: [{ signal: 'value', defaultValue: null, retained: false }],
      answerTimeout: 5000,
      // With echoAnswer the command goes out into the flow and straight back in: a round trip through the runtime.
      wires: [echoAnswer ? ['res'] : []],
    },
  ];
  const coreFlow: object[] = [
    { id: 'fc', type: 'tab' },
    ...completion('fc', 'out'),
    { id: 'mb', type: 'mqtt-broker', broker: host, port, clientid: `${core}-${process.pid}`, autoConnect: true, usetls: false, protocolVersion: 4, keepalive: 10, cleansession: true },
    { id: 'out', z: 'fc', type: 'mqtt out', broker: 'mb', topic: '', qos: '1', retain: 'false', wires: [] },
    { id: 'in', z: 'fc', type: 'mqtt in', broker: 'mb', topic: `command/${core}/ping`, qos: '1', datatype: 'utf8', wires: [['echo']] },
    { id: 'echo', z: 'fc', type: 'mqtt out', broker: 'mb', topic: `data/${core}/ping`, qos: '1', retain: 'false', wires: [] },
  ];

  const sgReady = async (): Promise<void> => {
    const seen = await mqtt.connectAsync(url, { clientId: `bench-ready-${process.pid}`, reconnectPeriod: 0 });
    let up = false;
    seen.on('message', (_t, p) => (up = p.toString() === 'True'));
    await seen.subscribeAsync(`resourceavailable/${res}/presence`, { qos: 1 });
    await until(() => up, 'sg-resource presence');
    await seen.endAsync();
    await sleep(200);
  };
  const coreReady = async (): Promise<void> => {
    // Ready when the mqtt in -> mqtt out echo answers a probe.
    const probe = await mqtt.connectAsync(url, { clientId: `bench-probe-${process.pid}`, reconnectPeriod: 0 });
    let echoed = false;
    probe.on('message', () => (echoed = true));
    await probe.subscribeAsync(`data/${core}/ping`, { qos: 1 });
    for (let i = 0; i < 100 && !echoed; i++) {
      await probe.publishAsync(`command/${core}/ping`, 'probe', { qos: 1 });
      await sleep(100);
    }
    await probe.endAsync();
    if (!echoed) throw new Error('bench: core mqtt flow did not answer');
    await sleep(200);
  };
  const sgRate: number[] = [];
  const coreRate: number[] = [];
  const sgEcho: number[] = [];
  const sgFlowEcho: number[] = [];
  const coreEcho: number[] = [];
  const pinger = await mqtt.connectAsync(url, { clientId: `bench-pinger-${process.pid}`, reconnectPeriod: 0 });
  // The measuring client must not add Nagle delays of its own to either side.
  (pinger.stream as unknown as { setNoDelay(b: boolean): void }).setNoDelay(true);
  try {
    const sgRun = async (): Promise<void> => {
      await red.deploy(sgFlow(false));
      await sgReady();
      const sgCounter = counting(red, 'fs-completed');
      for (let b = 0; b < BURSTS; b++) sgRate.push(await throughput(sgCounter, red.node('res'), 'value'));
      sgEcho.push(...(await roundTrips(pinger, `command/${res}/ping`, `data/${res}/ping`)));
      await red.deploy(sgFlow(true));
      await sgReady();
      sgFlowEcho.push(...(await roundTrips(pinger, `command/${res}/ping`, `data/${res}/ping`)));
      await red.deploy([]);
    };
    const coreRun = async (): Promise<void> => {
      await red.deploy(coreFlow);
      await coreReady();
      const coreCounter = counting(red, 'fc-completed');
      for (let b = 0; b < BURSTS; b++) coreRate.push(await throughput(coreCounter, red.node('out'), `data/${core}/value`));
      coreEcho.push(...(await roundTrips(pinger, `command/${core}/ping`, `data/${core}/ping`)));
      await red.deploy([]);
    };
    for (let r = 0; r < RUNS; r++) {
      if (r % 2 === 0) {
        await sgRun();
        await coreRun();
      } else {
        await coreRun();
        await sgRun();
      }
    }
  } finally {
    await pinger.endAsync(true);
    // Clear the retained presence/availability the resource left on a shared broker.
    if (external) {
      const cleaner = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
      for (const t of [`resourceavailable/${res}/presence`, `dataavailable/${res}/value`, `dataavailable/${res}/ping`, `commandavailable/${res}/ping`]) {
        await cleaner.publishAsync(t, Buffer.alloc(0), { qos: 1, retain: true });
      }
      await cleaner.endAsync();
    }
    await red.stop();
    await embedded?.close();
  }

  const f = (n: number, d = 2): string => n.toFixed(d);
  const rate = (xs: number[]): string => `${Math.round(median(xs))} msg/s`;
  const lat = (xs: number[]): string => `p50 ${f(percentile(xs, 50))} ms, p99 ${f(percentile(xs, 99))} ms`;
  const broker = external ? `Mosquitto at ${external}` : 'the embedded aedes broker (in-process, loopback TCP)';
  return [
    '## Secure Gateway (sg-resource vs core mqtt nodes)',
    '',
    `Runtime: a real Node-RED ${String((require('node-red/package.json') as { version: string }).version)} started in-process with this package installed in a temporary user directory, flows deployed through its runtime API (no test-helper spies). Broker: ${broker}; QoS 1 everywhere; ${RUNS} runs alternating which side goes first; throughput = median of ${RUNS * BURSTS} bursts of ${PUBLISHES} msgs sent into the node at once, until the last done() (QoS 1 PUBACK) seen by a Complete node; latency = percentiles over ${RUNS * ROUND_TRIPS} sequential command \u2192 echo round trips (after 20 warm-up trips per run) timed by an independent mqtt.js client. ${os.cpus().length} CPUs shared with other work.`,
    '',
    '| measure | sg nodes | core `mqtt out` / `mqtt in` | ratio (sg / core) |',
    '|---|---|---|---|',
    `| data publish throughput (msg in \u2192 PUBACK \u2192 done) | ${rate(sgRate)} | ${rate(coreRate)} | ${f(median(sgRate) / median(coreRate))} |`,
    `| command \u2192 echo, echo by sg-resource | ${lat(sgEcho)} | ${lat(coreEcho)} | p99 ${f(percentile(sgEcho, 99) / percentile(coreEcho, 99))} |`,
    `| command \u2192 flow \u2192 echo (answer wired back into sg-resource) | ${lat(sgFlowEcho)} | ${lat(coreEcho)} | p99 ${f(percentile(sgFlowEcho, 99) / percentile(coreEcho, 99))} |`,
    '',
    'The core baseline is `mqtt in` (command topic) wired to `mqtt out` (data topic): the same round trip with no sg semantics. A ratio above 1 is better for throughput, below 1 is better for latency.',
    'The core nodes\' ~44 ms per round trip is Nagle\'s algorithm meeting delayed ACKs on their mqtt.js socket (it receives a PUBLISH, then writes a PUBACK and the echo as separate small packets); the sg connection disables Nagle and instead batches the publishes of one event-loop turn (socket cork/uncork) so that bursts still leave in few TCP segments. The embedded broker disables Nagle on its sockets as well. Both sides run in one process with the broker, so p99 includes garbage-collection pauses and the load of other processes on this shared machine.',
  ].join('\n');
}
