// A small driver to profile one side of the MQTT benches alone (`node --cpu-prof dist/bench/profile-mqtt.js <mode>`):
// ApiGear calls through the nodes or raw mqtt.js, or a burst of QoS 1 publishes through the managed client or raw mqtt.js.
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import mqtt, { MqttClient } from 'mqtt';
import { ManagedMqttClient } from '../src/mqtt/managed-client';
import { helloYaml } from '../test/support/hello';
import { green } from '../test/support/node-calls';
import { startTestBroker as startBroker } from '../test/lib/mqtt-peer';
import { startMosquitto } from './mosquitto';

type Mode = 'nodes' | 'raw' | 'managed' | 'mqttjs';
const MODES: Mode[] = ['nodes', 'raw', 'managed', 'mqttjs'];
const USAGE =
  'usage: node [--cpu-prof] dist/bench/profile-mqtt.js nodes|raw|managed|mqttjs [embedded|mosquitto] [seconds] [qos]';

interface Msg {
  [key: string]: unknown;
}
interface FlowNode {
  receive(msg: Msg): void;
  on(event: 'input', fn: (msg: Msg) => void): void;
  wires?: unknown[][];
  updateWires?(wires: unknown[][]): void;
}

/** Answers each call: resolves when `answer(key)` comes. */
class Waiting {
  private readonly map = new Map<string, () => void>();
  add(key: string): Promise<void> {
    return new Promise((resolve) => this.map.set(key, resolve));
  }
  answer(key: string | undefined): void {
    if (key === undefined) return;
    const resolve = this.map.get(key);
    this.map.delete(key);
    resolve?.();
  }
}

async function nodesCall(url: string, qos: 1 | 2): Promise<() => Promise<void>> {
  helper.init(require.resolve('node-red'));
  await helper.startServer();
  const types = [
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
      clientId: 'prof-svc',
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
      clientId: 'prof-cli',
      timeout: 10,
      wires: [[], [], ['results']],
    },
    { id: 'results', z: 'f1', type: 'helper' },
  ];
  await helper.load(types as never, flow as never);
  const node = (id: string): FlowNode => helper.getNode(id) as unknown as FlowNode;
  node('answer').on('input', (msg) => {
    const args = msg.payload as { msg: { content: string }; when: number };
    node('svc').receive({ ...msg, payload: args.msg.content.length + args.when });
  });
  const waiting = new Waiting();
  node('results').on('input', (msg) => waiting.answer(msg.callId as string));
  for (const id of ['svc', 'cli']) await green(id);
  // As in apigear.bench.ts: the helper's spies off, and the wired nodes' copy of the spied send replaced.
  (helper as unknown as { _sandbox: { restore(): void } })._sandbox.restore();
  for (const f of flow) node(f.id)?.updateWires?.(node(f.id).wires ?? []);
  let n = 0;
  return () => {
    const callId = String(++n);
    const answered = waiting.add(callId);
    node('cli').receive({ topic: 'rpc/say', payload: { msg: { content: 'hello' }, when: 1 }, callId });
    return answered;
  };
}

async function rawCall(url: string, qos: 1 | 2): Promise<() => Promise<void>> {
  const P = 'bench.raw/Hello';
  const connect = async (clientId: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(url, { protocolVersion: 5, clientId, clean: true, reconnectPeriod: 0 });
    (c.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
    return c;
  };
  const svc = await connect('prof-raw-svc');
  const cli = await connect('prof-raw-cli');
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
  const waiting = new Waiting();
  cli.on('message', (_topic, _payload, packet) => waiting.answer(packet.properties?.correlationData?.toString('hex')));
  await cli.subscribeAsync(`${P}/rpc/+/prof-raw-cli/result`, { qos });
  let n = 0;
  return () => {
    const corr = Buffer.from(String(++n));
    const answered = waiting.add(corr.toString('hex'));
    cli.publish(`${P}/rpc/say`, JSON.stringify([{ content: 'hello' }, 1]), {
      qos,
      properties: { responseTopic: `${P}/rpc/say/prof-raw-cli/result`, correlationData: corr },
    });
    return answered;
  };
}

/** A burst of 5000 QoS 1 publishes, resolved when all are acknowledged. */
async function burst(url: string, managed: boolean): Promise<() => Promise<void>> {
  const N = 5000;
  if (managed) {
    const client = new ManagedMqttClient({
      clientId: 'prof-managed',
      endpoint: async () => ({ url, options: { protocolVersion: 4 } }),
    });
    const up = new Promise((resolve) => client.once('connect', () => resolve(undefined)));
    client.start();
    await up;
    return async () => {
      const all: Array<Promise<void>> = [];
      for (let i = 0; i < N; i++) all.push(client.publish('prof/managed', String(i), { qos: 1 }));
      await Promise.all(all);
    };
  }
  const client = await mqtt.connectAsync(url, { clientId: 'prof-mqttjs', reconnectPeriod: 0 });
  (client.stream as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return async () => {
    const all: Array<Promise<void>> = [];
    for (let i = 0; i < N; i++)
      all.push(new Promise((resolve) => client.publish('prof/mqttjs', String(i), { qos: 1 }, () => resolve())));
    await Promise.all(all);
  };
}

async function main(): Promise<void> {
  const [modeArg, brokerArg = 'embedded', secondsArg = '8', qosArg = '1'] = process.argv.slice(2);
  const mode = MODES.find((m) => m === modeArg);
  if (!mode || !['embedded', 'mosquitto'].includes(brokerArg)) throw new Error(USAGE);
  const qos = qosArg === '2' ? 2 : 1;
  const broker = brokerArg === 'mosquitto' ? await startMosquitto() : await startBroker();
  const work =
    mode === 'nodes'
      ? await nodesCall(broker.url, qos)
      : mode === 'raw'
        ? await rawCall(broker.url, qos)
        : await burst(broker.url, mode === 'managed');
  const lanes = mode === 'nodes' || mode === 'raw' ? 32 : 1;
  let done = 0;
  const t0 = Date.now();
  const deadline = t0 + Number(secondsArg) * 1000;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (Date.now() < deadline) {
        await work();
        done++;
      }
    }),
  );
  const rate = (done * (lanes === 1 ? 5000 : 1)) / ((Date.now() - t0) / 1000);
  process.stdout.write(`${mode} on ${brokerArg}: ${Math.round(rate)} ${lanes === 1 ? 'publishes' : 'calls'}/s\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
