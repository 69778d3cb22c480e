// ApiGear: operation round trips per second through apigear-client → apigear-service (with a flow answering),
// against the same calls made with two raw mqtt.js v5 clients, in alternating rounds on the same broker: the
// embedded broker, then a private Mosquitto with its default configuration.
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import mqtt, { MqttClient } from 'mqtt';
import { helloYaml } from '../test/support/hello';
import { startTestBroker as startBroker } from '../test/lib/mqtt-peer';
import { green } from '../test/support/node-calls';
import { mosquittoBinary, PrivateMosquitto, startMosquitto } from './mosquitto';
import { alternate, Comparison, mmm, Measures, progress, RoundResults } from './rounds';

type QoS = 0 | 1 | 2;
const WARMUP = 50;
const SEQUENTIAL = 5000;
const ROUNDS = 5;
const WINDOW = 32;
const PIPELINED = 20000;
const SECONDS = 1.5; // per measurement, at most
const CALL_TIMEOUT_MS = 3000; // a reply later than this is counted as lost
const BUDGET_MS = 50000; // per broker and QoS: no new round after this (at least 3 rounds)

/** One call: resolves true when its reply came, false when it was given up after CALL_TIMEOUT_MS. */
export type Call = () => Promise<boolean>;

interface Msg {
  [key: string]: unknown;
}
interface HelperNode {
  receive(msg: Msg): void;
  on(event: 'input', fn: (msg: Msg) => void): void;
}

/**
 * Runs up to `total` calls (no new call after `seconds`) with at most `window` in flight; returns answered calls per
 * second and the calls whose reply never came (each given up after CALL_TIMEOUT_MS, so a lost reply never hangs).
 */
async function drive(
  total: number,
  window: number,
  call: Call,
  seconds = SECONDS,
): Promise<{ rate: number; calls: number; lost: number }> {
  let started = 0;
  let completed = 0;
  let lost = 0;
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  const lane = async (): Promise<void> => {
    while (started < total && Date.now() < deadline) {
      started++;
      if (await call()) completed++;
      else lost++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rate: completed / elapsed, calls: completed, lost };
}

/** A pending-call table whose entries resolve true on their reply or false after CALL_TIMEOUT_MS, then go away. */
class Pending {
  private readonly waiting = new Map<string, (answered: boolean) => void>();

  add(key: string): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        resolve(false);
      }, CALL_TIMEOUT_MS);
      this.waiting.set(key, (answered) => {
        clearTimeout(timer);
        this.waiting.delete(key);
        resolve(answered);
      });
    });
  }

  answer(key: string | undefined): void {
    if (key !== undefined) this.waiting.get(key)?.(true);
  }
}

/** The same protocol by hand: a raw service answering `say`, a raw caller matching replies by correlation hex. */
export async function rawPair(url: string, qos: QoS): Promise<{ call: Call; close(): Promise<void> }> {
  const P = 'bench.raw/Hello';
  const connect = async (clientId: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 0 });
    // As the nodes do: without TCP_NODELAY, Nagle and delayed ACKs dominate every small request/reply.
    (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    return c;
  };
  const svc = await connect('bench-raw-svc');
  const cli = await connect('bench-raw-cli');
  svc.on('message', (_topic, payload, packet) => {
    const [msg, when] = JSON.parse(payload.toString()) as [{ content: string }, number];
    const rt = packet.properties?.responseTopic;
    if (rt)
      svc.publish(rt, JSON.stringify(msg.content.length + when), {
        qos,
        properties: { correlationData: packet.properties?.correlationData },
      });
  });
  await svc.subscribeAsync(`${P}/rpc/+`, { qos });
  const pending = new Pending();
  cli.on('message', (_topic, _payload, packet) => pending.answer(packet.properties?.correlationData?.toString('hex')));
  await cli.subscribeAsync(`${P}/rpc/+/bench-raw-cli/result`, { qos });
  // The test helper wraps every node's send/status/log in recording sinon spies; measure the nodes, not the spies.
  (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
  let n = 0;
  return {
    call: () => {
      const corr = Buffer.from(String(++n));
      const answered = pending.add(corr.toString('hex'));
      cli.publish(`${P}/rpc/say`, JSON.stringify([{ content: 'hello' }, 1]), {
        qos,
        properties: { responseTopic: `${P}/rpc/say/bench-raw-cli/result`, correlationData: corr },
      });
      return answered;
    },
    close: async () => {
      await Promise.all([svc.endAsync(), cli.endAsync()]);
    },
  };
}

/**
 * The test helper wraps every node's send/status/log in recording sinon spies (and emits an event per call in a
 * nextTick); measure the nodes, not the spies. Restoring the sandbox puts Node.prototype back, but Node-RED copied the
 * spied `send` onto every wired node when the flow started (Node#updateWires), so wire them again to pick up the real one.
 */
function unspy(ids: string[]): void {
  (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
  for (const id of ids) {
    const node = helper.getNode(id) as unknown as {
      wires?: unknown[][];
      updateWires?(wires: unknown[][]): void;
    } | null;
    node?.updateWires?.(node.wires ?? []);
  }
}

/** The nodes: apigear-client → (broker) → apigear-service → a flow answering say → back to the client's output 3. */
export async function nodePair(url: string, qos: QoS): Promise<{ call: Call }> {
  const nodes = [
    require('../nodes/sg/sg-broker'),
    require('../nodes/apigear/apigear-service'),
    require('../nodes/apigear/apigear-client'),
  ] as TestNodeInitializer[];
  const yaml = helloYaml('bench.nodes');
  const flow = [
    { id: 'f1', type: 'tab' },
    {
      id: 'b1',
      type: 'sg-broker',
      mode: 'external',
      host: new URL(url).hostname,
      port: Number(new URL(url).port),
      protocol: '5',
    },
    {
      id: 'svc',
      z: 'f1',
      type: 'apigear-service',
      broker: 'b1',
      moduleYaml: yaml,
      interface: 'Hello',
      qos,
      clientId: 'bench-svc',
      wires: [[], ['answer']],
    },
    { id: 'answer', z: 'f1', type: 'helper' },
    {
      id: 'cli',
      z: 'f1',
      type: 'apigear-client',
      broker: 'b1',
      moduleYaml: yaml,
      interface: 'Hello',
      qos,
      clientId: 'bench-cli',
      timeout: 10,
      wires: [[], [], ['results']],
    },
    { id: 'results', z: 'f1', type: 'helper' },
  ];
  await helper.load(nodes as never, flow as never);
  const node = (id: string): HelperNode => helper.getNode(id) as unknown as HelperNode;
  node('answer').on('input', (msg) => {
    const args = msg.payload as { msg: { content: string }; when: number };
    node('svc').receive({ ...msg, payload: args.msg.content.length + args.when });
  });
  const waiting = new Pending();
  node('results').on('input', (msg) => waiting.answer(msg.callId as string));
  for (const id of ['svc', 'cli']) {
    await green(id);
  }
  unspy(flow.map((f) => f.id));
  let n = 0;
  return {
    call: () => {
      const callId = String(++n);
      const answered = waiting.add(callId);
      node('cli').receive({ topic: 'rpc/say', payload: { msg: { content: 'hello' }, when: 1 }, callId });
      return answered;
    },
  };
}

/** Alternating rounds of raw mqtt.js (baseline) and the nodes (candidate) at one QoS on one broker. */
async function measure(url: string, label: string, qos: QoS): Promise<RoundResults> {
  const nodes = await nodePair(url, qos);
  const raw = await rawPair(url, qos);
  try {
    await drive(WARMUP, 4, nodes.call);
    await drive(WARMUP, 4, raw.call);
    const side = (call: Call) => async (): Promise<Measures> => {
      const seq = await drive(SEQUENTIAL, 1, call);
      const pipe = await drive(PIPELINED, WINDOW, call);
      return {
        seq: seq.rate,
        seqCalls: seq.calls,
        seqLost: seq.lost,
        pipe: pipe.rate,
        pipeCalls: pipe.calls,
        pipeLost: pipe.lost,
      };
    };
    return await alternate(
      {
        rounds: ROUNDS,
        budgetMs: BUDGET_MS,
        onRound: (r, b, c) =>
          progress(
            `${label} QoS ${qos} round ${r + 1}: raw ${Math.round(b.seq ?? 0)} / ${Math.round(b.pipe ?? 0)} calls/s, nodes ${Math.round(c.seq ?? 0)} / ${Math.round(c.pipe ?? 0)} calls/s`,
          ),
      },
      side(raw.call),
      side(nodes.call),
    );
  } finally {
    await raw.close();
    await helper.unload();
  }
}

function rows(qos: QoS, r: RoundResults): string[] {
  const lost = (side: 'baseline' | 'candidate', key: string): string => {
    const n = r.total(side, key);
    return n ? ` (${n} lost)` : '';
  };
  const row = (label: string, c: Comparison, key: string): string =>
    `| ${qos} | ${label} | ${mmm(c.baseline)}${lost('baseline', `${key}Lost`)} | ${mmm(c.candidate)}${lost('candidate', `${key}Lost`)} | ${mmm(c.ratio, 2)} |`;
  return [row('one at a time', r.compare('seq'), 'seq'), row(`${WINDOW} in flight`, r.compare('pipe'), 'pipe')];
}

export async function run(): Promise<string> {
  helper.init(require.resolve('node-red'));
  await helper.startServer();
  const tables: string[] = [];
  const goals: string[] = [];
  let mosquitto: PrivateMosquitto | undefined;
  try {
    const brokers: Array<{ label: string; short: string; url: () => Promise<string>; close: () => Promise<void> }> = [];
    let embedded: Awaited<ReturnType<typeof startBroker>> | undefined;
    brokers.push({
      label: process.env.MQTT_URL
        ? `Broker at ${process.env.MQTT_URL} (MQTT_URL)`
        : 'Embedded broker (aedes 2.0.0-beta.1, in-process, TCP_NODELAY)',
      short: process.env.MQTT_URL ? 'MQTT_URL' : 'embedded',
      url: async () => (embedded = await startBroker()).url,
      close: async () => embedded?.close(),
    });
    if (mosquittoBinary()) {
      brokers.push({
        label: 'Private Mosquitto, default configuration',
        short: 'Mosquitto',
        url: async () => {
          mosquitto = await startMosquitto();
          return mosquitto.url;
        },
        close: async () => {
          await mosquitto?.stop();
          mosquitto = undefined;
        },
      });
    }
    for (const b of brokers) {
      const url = await b.url();
      const heading = `${b.label}${mosquitto?.version ? ` (Mosquitto ${mosquitto.version})` : ''}`;
      const lines: string[] = [];
      try {
        for (const qos of [2, 1] as QoS[]) {
          const r = await measure(url, b.label, qos);
          lines.push(...rows(qos, r));
          const pipe = r.compare('pipe');
          goals.push(
            `${b.short} QoS ${qos}: median ${pipe.ratio.median.toFixed(2)} (min ${pipe.ratio.min.toFixed(2)}) — **${pipe.ratio.median >= 0.8 ? 'met' : 'not met'}**`,
          );
        }
      } finally {
        await b.close();
      }
      tables.push(
        [
          `### ${heading}`,
          '',
          '| QoS | calls | raw mqtt.js, calls/s | nodes, calls/s | ratio nodes / raw |',
          '|---|---|---|---|---|',
          ...lines,
        ].join('\n'),
      );
    }
    if (!mosquittoBinary())
      tables.push(
        'No `mosquitto` binary on this machine: the Mosquitto table is missing (Debian: `apt-get install mosquitto`).',
      );
  } finally {
    await mosquitto?.stop();
    await helper.stopServer();
  }
  return [
    '## ApiGear',
    '',
    'Round trips of `io.world/Hello.say(msg, when) -> int` per second: an `apigear-client` node calls, an `apigear-service` node',
    'receives, a flow answers (a helper node feeding the reply msg back into the service node), the result comes out of the',
    'client node (nodes hosted by node-red-node-test-helper on Node-RED 4.1 with its call-recording spies removed). Baseline: the same calls between two raw mqtt.js v5 clients (ResponseTopic, CorrelationData, pending map by',
    'correlation hex, TCP_NODELAY as the nodes set it), no validation, no Node-RED. Both go through the same broker over loopback TCP in the same',
    'process, in alternating rounds (the order swapped every round). The `sg-broker` node points at the broker as an external v5 broker. The private Mosquitto is started by the bench (`mosquitto -c FILE`, FILE = a listener on a free loopback port and `allow_anonymous true`, nothing else).',
    '',
    `Each measurement stops starting calls after ${SEQUENTIAL} (one at a time) or ${PIPELINED} (pipelined) calls or ${SECONDS} s, whichever comes first; a call whose reply has not come after ${CALL_TIMEOUT_MS / 1000} s is counted as lost (shown next to the rate, summed over the rounds) and not waited for. Each cell: min / **median** / max over the rounds; the ratio is nodes / raw per round (1.00 = as fast as raw mqtt.js). The machine (2 CPUs) was shared with other helpers' builds and tests while measuring; both sides alternate, so load hits both, and min / max show how much it moved.`,
    '',
    ...tables.flatMap((t) => [t, '']),
    `Goal "ApiGear pipelined calls ≥ 0.8 of raw mqtt.js" (issue 15), pipelined nodes / raw: ${goals.join('; ')}.`,
    '',
    'On a default Mosquitto a call one at a time costs ~44 ms for raw mqtt.js and the nodes alike, although both clients set TCP_NODELAY: the broker keeps Nagle on; see "Round trips on a default Mosquitto".',
  ].join('\n');
}
