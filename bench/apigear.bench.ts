// ApiGear: operation round trips per second through apigear-client → apigear-service (with a flow answering),
// against the same calls made with two raw mqtt.js v5 clients, on the same embedded broker in the same run.
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import mqtt, { MqttClient } from 'mqtt';
import { helloYaml } from '../test/support/hello';
import { startBroker } from '../test/support/v5-broker';
import { green } from '../test/support/node-calls';

type QoS = 0 | 1 | 2;
const WARMUP = 50;
const SEQUENTIAL = 5000;
const ROUNDS = 3;
const WINDOW = 32;
const PIPELINED = 20000;

interface Msg {
  [key: string]: unknown;
}
interface HelperNode {
  receive(msg: Msg): void;
  on(event: 'input', fn: (msg: Msg) => void): void;
}

/** Runs up to `total` calls (stopping early after `seconds`) with at most `window` in flight; returns calls per second. */
async function drive(total: number, window: number, call: () => Promise<void>, seconds = 2): Promise<{ rate: number; calls: number }> {
  let started = 0;
  let completed = 0;
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  const lane = async (): Promise<void> => {
    while (started < total && Date.now() < deadline) {
      started++;
      await call();
      completed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, total) }, lane));
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rate: completed / elapsed, calls: completed };
}

/** The same protocol by hand: a raw service answering `say`, a raw caller matching replies by correlation hex. */
async function rawPair(url: string, qos: QoS): Promise<{ call(): Promise<void>; close(): Promise<void> }> {
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
    if (rt) svc.publish(rt, JSON.stringify(msg.content.length + when), { qos, properties: { correlationData: packet.properties?.correlationData } });
  });
  await svc.subscribeAsync(`${P}/rpc/+`, { qos });
  const pending = new Map<string, () => void>();
  cli.on('message', (_topic, _payload, packet) => {
    const key = packet.properties?.correlationData?.toString('hex');
    const done = key === undefined ? undefined : pending.get(key);
    if (key !== undefined && done) {
      pending.delete(key);
      done();
    }
  });
  await cli.subscribeAsync(`${P}/rpc/+/bench-raw-cli/result`, { qos });
  // The test helper wraps every node's send/status/log in recording sinon spies; measure the nodes, not the spies.
  (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
  let n = 0;
  return {
    call: () =>
      new Promise<void>((resolve) => {
        const corr = Buffer.from(String(++n));
        pending.set(corr.toString('hex'), resolve);
        cli.publish(`${P}/rpc/say`, JSON.stringify([{ content: 'hello' }, 1]), {
          qos,
          properties: { responseTopic: `${P}/rpc/say/bench-raw-cli/result`, correlationData: corr },
        });
      }),
    close: async () => {
      await Promise.all([svc.endAsync(), cli.endAsync()]);
    },
  };
}

/** The nodes: apigear-client → (broker) → apigear-service → a flow answering say → back to the client's output 3. */
async function nodePair(url: string, qos: QoS): Promise<{ call(): Promise<void> }> {
  const nodes = [require('../nodes/sg-broker'), require('../nodes/apigear-service'), require('../nodes/apigear-client')] as TestNodeInitializer[];
  const yaml = helloYaml('bench.nodes');
  const flow = [
    { id: 'f1', type: 'tab' },
    { id: 'b1', type: 'sg-broker', mode: 'external', host: new URL(url).hostname, port: Number(new URL(url).port), protocol: '5' },
    { id: 'svc', z: 'f1', type: 'apigear-service', broker: 'b1', moduleYaml: yaml, interface: 'Hello', qos, clientId: 'bench-svc', wires: [[], ['answer']] },
    { id: 'answer', z: 'f1', type: 'helper' },
    { id: 'cli', z: 'f1', type: 'apigear-client', broker: 'b1', moduleYaml: yaml, interface: 'Hello', qos, clientId: 'bench-cli', timeout: 30, wires: [[], [], ['results']] },
    { id: 'results', z: 'f1', type: 'helper' },
  ];
  await helper.load(nodes as never, flow as never);
  const node = (id: string): HelperNode => helper.getNode(id) as unknown as HelperNode;
  node('answer').on('input', (msg) => {
    const args = msg.payload as { msg: { content: string }; when: number };
    node('svc').receive({ ...msg, payload: args.msg.content.length + args.when });
  });
  const waiting = new Map<string, () => void>();
  node('results').on('input', (msg) => {
    const done = waiting.get(msg.callId as string);
    waiting.delete(msg.callId as string);
    done?.();
  });
  for (const id of ['svc', 'cli']) {
    await green(id);
  }
  // The test helper wraps every node's send/status/log in recording sinon spies; measure the nodes, not the spies.
  (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
  let n = 0;
  return {
    call: () =>
      new Promise<void>((resolve) => {
        const callId = String(++n);
        waiting.set(callId, resolve);
        node('cli').receive({ topic: 'rpc/say', payload: { msg: { content: 'hello' }, when: 1 }, callId });
      }),
  };
}

export async function run(): Promise<string> {
  helper.init(require.resolve('node-red'));
  await helper.startServer();
  const broker = await startBroker();
  const rows: string[] = [];
  try {
    for (const qos of [2, 1] as QoS[]) {
      const nodes = await nodePair(broker.url, qos);
      const raw = await rawPair(broker.url, qos);
      await drive(WARMUP, 4, nodes.call);
      await drive(WARMUP, 4, raw.call);
      // Alternate raw and nodes, several rounds, and keep the median, so load from other work on the machine hits both alike.
      const runs: Record<'seqRaw' | 'seqNodes' | 'pipeRaw' | 'pipeNodes', Array<{ rate: number; calls: number }>> = { seqRaw: [], seqNodes: [], pipeRaw: [], pipeNodes: [] };
      for (let round = 0; round < ROUNDS; round++) {
        runs.seqRaw.push(await drive(SEQUENTIAL, 1, raw.call));
        runs.seqNodes.push(await drive(SEQUENTIAL, 1, nodes.call));
        runs.pipeRaw.push(await drive(PIPELINED, WINDOW, raw.call));
        runs.pipeNodes.push(await drive(PIPELINED, WINDOW, nodes.call));
      }
      const median = (xs: Array<{ rate: number; calls: number }>): { rate: number; calls: number } => [...xs].sort((a, b) => a.rate - b.rate)[Math.floor(xs.length / 2)];
      const [seqRaw, seqNodes, pipeRaw, pipeNodes] = [median(runs.seqRaw), median(runs.seqNodes), median(runs.pipeRaw), median(runs.pipeNodes)];
      const row = (label: string, baseline: { rate: number; calls: number }, viaNodes: { rate: number; calls: number }): string =>
        `| ${qos} | ${label} | ${baseline.rate.toFixed(0)} (${baseline.calls} calls) | ${viaNodes.rate.toFixed(0)} (${viaNodes.calls} calls) | ${(viaNodes.rate / baseline.rate).toFixed(2)} |`;
      rows.push(row('one at a time', seqRaw, seqNodes));
      rows.push(row(`${WINDOW} in flight`, pipeRaw, pipeNodes));
      await raw.close();
      await helper.unload();
    }
  } finally {
    await broker.close();
    await helper.stopServer();
  }
  return [
    '## ApiGear',
    '',
    'Round trips of `io.world/Hello.say(msg, when) -> int` per second: an `apigear-client` node calls, an `apigear-service` node',

    'receives, a flow answers (a helper node feeding the reply msg back into the service node), the result comes out of the',
    'client node (nodes hosted by node-red-node-test-helper on Node-RED 4.1 with its call-recording spies removed). Baseline: the same calls between two raw mqtt.js v5 clients (ResponseTopic, CorrelationData, pending map by',
    'correlation hex), no validation, no Node-RED. Both go through the same in-process aedes 2.0.0-beta.1 broker on loopback TCP',
    '(TCP_NODELAY on its sockets, as on both clients; the `sg-broker` node points at it as an external v5 broker), in the same',
    'process and run, alternating. Ratio = nodes / raw (1.00 = as fast as raw mqtt.js). With `MQTT_URL` set the broker is that one.',
    '',
    `Each measurement stops after ${SEQUENTIAL} (one at a time) or ${PIPELINED} (pipelined) calls or 2 s, whichever comes first; the table shows the median of ${ROUNDS} alternating rounds.`,
    '',
    '| QoS | calls | raw mqtt.js (calls/s) | nodes (calls/s) | ratio |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
