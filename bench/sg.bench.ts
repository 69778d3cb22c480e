// Secure Gateway benchmark: sg-resource data publish throughput and command -> echo round trip through the Node-RED
// runtime, against the core Node-RED `mqtt out` / `mqtt in` nodes on the same broker, in alternating rounds; once on
// the embedded broker and once on a private Mosquitto with its default configuration (plus `set_tcp_nodelay true`).
import fs from 'fs';
import http from 'http';
import os from 'os';
import path from 'path';
import mqtt, { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../src/mqtt/embedded-broker';
import { mosquittoBinary, PrivateMosquitto, startMosquitto } from './mosquitto';
import { alternate, Comparison, mmm, Measures, percentile, progress, RoundResults } from './rounds';

const PUBLISHES = 5000; // per throughput burst
const ROUND_TRIPS = 100; // per latency measurement, at most …
const TRIPS_MS = 3000; // … or as many as fit in this time (at least MIN_TRIPS): a default Mosquitto takes ~44 ms a trip
const MIN_TRIPS = 20;
const WARMUP_TRIPS = 10;
const BURSTS = 3; // throughput bursts per round; the round's figure is their median
const ROUNDS = 5; // alternating sg / core (order swapped every round)
const BUDGET_MS = 100000; // per broker: no new round after this (at least 3 rounds)

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
    fs.writeFileSync(
      path.join(this.dir, 'package.json'),
      JSON.stringify({ name: 'bench', dependencies: { '@busbar/node-red-buses': '*' } }),
    );
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

/**
 * Sequential command -> echo round trips seen from an independent client; returns milliseconds per trip. An echo
 * that does not come within 5 s fails the bench instead of hanging it.
 */
async function roundTrips(client: MqttClient, command: string, echo: string): Promise<number[]> {
  const times: number[] = [];
  let waiting: ((payload: string) => void) | undefined;
  const onMessage = (t: string, payload: Buffer): void => {
    if (t === echo && waiting) waiting(payload.toString());
  };
  client.on('message', onMessage);
  await client.subscribeAsync(echo, { qos: 1 });
  let measuring = 0;
  for (let i = 0; i < ROUND_TRIPS + WARMUP_TRIPS; i++) {
    if (i === WARMUP_TRIPS) measuring = Date.now();
    if (i >= WARMUP_TRIPS + MIN_TRIPS && Date.now() - measuring > TRIPS_MS) break;
    const expected = `p${i}`;
    const start = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench: no echo of ${command} within 5 s`)), 5000);
      waiting = (payload) => {
        if (payload === expected) {
          waiting = undefined;
          clearTimeout(timer);
          resolve();
        }
      };
      client.publish(command, expected, { qos: 1 });
    });
    if (i >= WARMUP_TRIPS) times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  client.removeListener('message', onMessage);
  await client.unsubscribeAsync(echo);
  return times;
}

interface Broker {
  /** Heading of its table. */
  label: string;
  url: string;
  host: string;
  port: number;
  /** A shared broker (MQTT_URL): retained topics the resource leaves are cleared afterwards. */
  shared: boolean;
}

/** The same echo on a second broker, measured in the same rounds (e.g. Mosquitto with `set_tcp_nodelay true`). */
interface ExtraBroker extends Broker {
  key: string;
}

const res = `benchres${process.pid}`;
const core = `benchcore${process.pid}`;

// Ids differ between the sg and the core flows so each deploy is a clean replacement.
const completion = (tab: string, target: string): object[] => [
  {
    id: `${tab}-completion`,
    type: 'complete',
    z: tab,
    scope: [target],
    uncaught: false,
    wires: [[`${tab}-completed`]],
  },
  {
    id: `${tab}-completed`,
    type: 'debug',
    z: tab,
    active: false,
    tosidebar: false,
    console: false,
    tostatus: false,
    complete: 'false',
    wires: [],
  },
];
const sgFlow = (b: Broker, echoAnswer: boolean): object[] => [
  { id: 'fs', type: 'tab' },
  ...completion('fs', 'res'),
  {
    id: 'sgb',
    type: 'sg-broker',
    mode: 'external',
    host: b.host,
    port: b.port,
    protocol: '3.1.1',
    keepalive: 10,
    qos: 1,
    clean: true,
  },
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
const coreFlow = (b: Broker): object[] => [
  { id: 'fc', type: 'tab' },
  ...completion('fc', 'out'),
  {
    id: 'mb',
    type: 'mqtt-broker',
    broker: b.host,
    port: b.port,
    clientid: `${core}-${process.pid}`,
    autoConnect: true,
    usetls: false,
    protocolVersion: 4,
    keepalive: 10,
    cleansession: true,
  },
  { id: 'out', z: 'fc', type: 'mqtt out', broker: 'mb', topic: '', qos: '1', retain: 'false', wires: [] },
  {
    id: 'in',
    z: 'fc',
    type: 'mqtt in',
    broker: 'mb',
    topic: `command/${core}/ping`,
    qos: '1',
    datatype: 'utf8',
    wires: [['echo']],
  },
  {
    id: 'echo',
    z: 'fc',
    type: 'mqtt out',
    broker: 'mb',
    topic: `data/${core}/ping`,
    qos: '1',
    retain: 'false',
    wires: [],
  },
];

async function sgReady(b: Broker): Promise<void> {
  const seen = await mqtt.connectAsync(b.url, { clientId: `bench-ready-${process.pid}`, reconnectPeriod: 0 });
  let up = false;
  seen.on('message', (_t, p) => (up = p.toString() === 'True'));
  await seen.subscribeAsync(`resourceavailable/${res}/presence`, { qos: 1 });
  await until(() => up, 'sg-resource presence');
  await seen.endAsync();
  await sleep(200);
}

async function coreReady(b: Broker): Promise<void> {
  // Ready when the mqtt in -> mqtt out echo answers a probe.
  const probe = await mqtt.connectAsync(b.url, { clientId: `bench-probe-${process.pid}`, reconnectPeriod: 0 });
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
}

async function pingerFor(b: Broker): Promise<MqttClient> {
  const pinger = await mqtt.connectAsync(b.url, { clientId: `bench-pinger-${process.pid}`, reconnectPeriod: 0 });
  // The measuring client must not add Nagle delays of its own to either side.
  (pinger.stream as unknown as { setNoDelay(b: boolean): void }).setNoDelay(true);
  return pinger;
}

const latency = (prefix: string, times: number[]): Measures => ({
  [`${prefix}P50`]: percentile(times, 50),
  [`${prefix}P99`]: percentile(times, 99),
});
const middle = (xs: number[]): number => percentile(xs, 50);

/** Alternating rounds of the sg flow and the core flow on `main`, plus echo-only rounds on each of `extras`. */
async function measure(red: NodeRed, main: Broker, extras: ExtraBroker[]): Promise<RoundResults> {
  const pingers = new Map<Broker, MqttClient>();
  for (const b of [main, ...extras]) pingers.set(b, await pingerFor(b));
  const pinger = (b: Broker): MqttClient => pingers.get(b) as MqttClient;
  try {
    const sgRound = async (): Promise<Measures> => {
      await red.deploy(sgFlow(main, false));
      await sgReady(main);
      const counter = counting(red, 'fs-completed');
      const rates: number[] = [];
      for (let b = 0; b < BURSTS; b++) rates.push(await throughput(counter, red.node('res'), 'value'));
      const m: Measures = {
        rate: middle(rates),
        ...latency('echo', await roundTrips(pinger(main), `command/${res}/ping`, `data/${res}/ping`)),
      };
      await red.deploy(sgFlow(main, true));
      await sgReady(main);
      Object.assign(m, latency('flow', await roundTrips(pinger(main), `command/${res}/ping`, `data/${res}/ping`)));
      for (const x of extras) {
        await red.deploy(sgFlow(x, false));
        await sgReady(x);
        Object.assign(
          m,
          latency(`${x.key}echo`, await roundTrips(pinger(x), `command/${res}/ping`, `data/${res}/ping`)),
        );
        await red.deploy(sgFlow(x, true));
        await sgReady(x);
        Object.assign(
          m,
          latency(`${x.key}flow`, await roundTrips(pinger(x), `command/${res}/ping`, `data/${res}/ping`)),
        );
      }
      await red.deploy([]);
      return m;
    };
    const coreRound = async (): Promise<Measures> => {
      await red.deploy(coreFlow(main));
      await coreReady(main);
      const counter = counting(red, 'fc-completed');
      const rates: number[] = [];
      for (let b = 0; b < BURSTS; b++) rates.push(await throughput(counter, red.node('out'), `data/${core}/value`));
      const m: Measures = {
        rate: middle(rates),
        ...latency('echo', await roundTrips(pinger(main), `command/${core}/ping`, `data/${core}/ping`)),
      };
      for (const x of extras) {
        await red.deploy(coreFlow(x));
        await coreReady(x);
        Object.assign(
          m,
          latency(`${x.key}echo`, await roundTrips(pinger(x), `command/${core}/ping`, `data/${core}/ping`)),
        );
      }
      await red.deploy([]);
      return m;
    };
    return await alternate(
      {
        rounds: ROUNDS,
        budgetMs: BUDGET_MS,
        onRound: (r, c, s) =>
          progress(
            `${main.label} round ${r + 1}: sg ${Math.round(s.rate ?? 0)} msg/s, echo p50 ${(s.echoP50 ?? 0).toFixed(2)} ms; core ${Math.round(c.rate ?? 0)} msg/s, echo p50 ${(c.echoP50 ?? 0).toFixed(2)} ms`,
          ),
      },
      coreRound,
      sgRound,
    );
  } finally {
    for (const p of pingers.values()) await p.endAsync(true);
    for (const b of [main, ...extras]) {
      if (!b.shared) continue;
      // Clear the retained presence/availability the resource left on a shared broker.
      const cleaner = await mqtt.connectAsync(b.url, { reconnectPeriod: 0 });
      for (const t of [
        `resourceavailable/${res}/presence`,
        `dataavailable/${res}/value`,
        `dataavailable/${res}/ping`,
        `commandavailable/${res}/ping`,
      ]) {
        await cleaner.publishAsync(t, Buffer.alloc(0), { qos: 1, retain: true });
      }
      await cleaner.endAsync();
    }
  }
}

const row = (label: string, c: Comparison, digits: number): string =>
  `| ${label} | ${mmm(c.candidate, digits)} | ${mmm(c.baseline, digits)} | ${mmm(c.ratio, 2)} |`;

function table(main: Broker, extras: ExtraBroker[], r: RoundResults): string {
  const rate = r.compare('rate');
  const lines = [
    `### ${main.label}`,
    '',
    `${r.rounds} alternating rounds. Each cell: min / **median** / max over the rounds; the ratio is sg / core per round.`,
    '',
    '| measure | sg nodes | core `mqtt out` / `mqtt in` | ratio sg / core |',
    '|---|---|---|---|',
    row('data publish throughput, msg/s (msg in → PUBACK → done)', rate, 0),
    row('command → echo by sg-resource, p50 ms', r.compare('echoP50'), 2),
    row('command → echo by sg-resource, p99 ms', r.compare('echoP99'), 2),
    row('command → flow → echo (answer wired back into sg-resource), p50 ms', r.compare('flowP50', 'echoP50'), 2),
    row('command → flow → echo, p99 ms', r.compare('flowP99', 'echoP99'), 2),
  ];
  for (const x of extras) {
    lines.push(row(`${x.label}: command → echo by sg-resource, p50 ms`, r.compare(`${x.key}echoP50`), 2));
    lines.push(row(`${x.label}: command → flow → echo, p50 ms`, r.compare(`${x.key}flowP50`, `${x.key}echoP50`), 2));
  }
  const met = rate.ratio.median >= 1 ? 'met' : 'not met';
  lines.push(
    '',
    `Goal "sg publish throughput ≥ core \`mqtt out\`": median ratio ${rate.ratio.median.toFixed(2)} (min ${rate.ratio.min.toFixed(2)}) — **${met}**.`,
  );
  return lines.join('\n');
}

export async function run(): Promise<string> {
  const red = new NodeRed();
  await red.start();
  const tables: string[] = [];
  const notes: string[] = [];
  let embedded: EmbeddedBroker | undefined;
  const mosquittos: PrivateMosquitto[] = [];
  try {
    embedded = new EmbeddedBroker({ port: 0 });
    const port = await embedded.start();
    const aedes: Broker = {
      label: 'Embedded broker (aedes, in-process, TCP_NODELAY)',
      url: embedded.url,
      host: '127.0.0.1',
      port,
      shared: false,
    };
    tables.push(table(aedes, [], await measure(red, aedes, [])));
    await embedded.close();
    embedded = undefined;

    if (mosquittoBinary()) {
      const plain = await startMosquitto();
      mosquittos.push(plain);
      const tuned = await startMosquitto('set_tcp_nodelay true');
      mosquittos.push(tuned);
      const main: Broker = {
        label: `Private Mosquitto ${plain.version}, default configuration`,
        url: plain.url,
        host: plain.host,
        port: plain.port,
        shared: false,
      };
      const extra: ExtraBroker = {
        key: 'nodelay',
        label: 'same Mosquitto with `set_tcp_nodelay true`',
        url: tuned.url,
        host: tuned.host,
        port: tuned.port,
        shared: false,
      };
      tables.push(table(main, [extra], await measure(red, main, [extra])));
    } else {
      notes.push(
        'No `mosquitto` binary on this machine: the Mosquitto table is missing (Debian: `apt-get install mosquitto`).',
      );
    }

    const external = process.env.MQTT_URL;
    if (external) {
      const u = new URL(external);
      const shared: Broker = {
        label: `Broker at ${external} (MQTT_URL)`,
        url: external,
        host: u.hostname,
        port: Number(u.port || 1883),
        shared: true,
      };
      tables.push(table(shared, [], await measure(red, shared, [])));
    }
  } finally {
    await red.stop();
    await embedded?.close();
    for (const m of mosquittos) await m.stop();
  }

  return [
    '## Secure Gateway (sg-resource vs core mqtt nodes)',
    '',
    `Runtime: a real Node-RED ${String((require('node-red/package.json') as { version: string }).version)} started in-process with this package installed in a temporary user directory, flows deployed through its runtime API (no test-helper spies). QoS 1 everywhere. Each round runs one side: throughput = median of ${BURSTS} bursts of ${PUBLISHES} msgs sent into the node at once, until the last done() (QoS 1 PUBACK) seen by a Complete node; latency = p50 and p99 of ${ROUND_TRIPS} sequential command → echo round trips or as many as fit in ${TRIPS_MS / 1000} s (at least ${MIN_TRIPS}; after ${WARMUP_TRIPS} warm-up trips) timed by an independent mqtt.js client with TCP_NODELAY. The private Mosquitto is started by the bench (\`mosquitto -c FILE\`, FILE = a listener on a free loopback port and \`allow_anonymous true\`, nothing else); the \`set_tcp_nodelay true\` rows come from a second private Mosquitto measured in the same rounds. A throughput ratio above 1 is better for sg, a latency ratio below 1 is. ${os.cpus().length} CPUs shared with other work (other processes were running builds and tests during the measurement); since both sides run in alternating rounds, load hits both, and min / max show how much it moved.`,
    '',
    ...tables.flatMap((t) => [t, '']),
    ...notes,
    'The core baseline is `mqtt in` (command topic) wired to `mqtt out` (data topic): the same round trip with no sg semantics. On the embedded broker, core\'s ~44 ms round trip is Nagle on its own mqtt.js socket (which keeps Nagle on) meeting delayed ACKs; sg disables Nagle on its connection and batches the publishes of one event-loop turn (socket cork/uncork) so bursts still leave in few TCP segments. On a default Mosquitto the broker\'s own sockets keep Nagle on, so every QoS 1 request → answer waits ~44 ms whoever answers; see "Round trips on a default Mosquitto" below.',
  ].join('\n');
}
