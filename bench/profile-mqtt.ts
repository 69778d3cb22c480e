// A small driver to profile one side of the MQTT benches alone (`node --cpu-prof dist/bench/profile-mqtt.js <mode>`):
// ApiGear calls through the nodes or raw mqtt.js, or a burst of QoS 1 publishes through the managed client or raw mqtt.js.
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import { ManagedMqttClient } from '../src/mqtt/managed-client';
import { startTestBroker as startBroker } from '../test/lib/mqtt-peer';
import { Call, nodePair, rawPair } from './apigear.bench';
import { startMosquitto } from './mosquitto';

type Mode = 'nodes' | 'raw' | 'managed' | 'mqttjs';
const MODES: Mode[] = ['nodes', 'raw', 'managed', 'mqttjs'];
const USAGE =
  'usage: node [--cpu-prof] dist/bench/profile-mqtt.js nodes|raw|managed|mqttjs [embedded|mosquitto] [seconds] [qos]';

/** ApiGear calls through the nodes, built exactly as the bench builds them (one Node-RED test runtime). */
async function nodesCall(url: string, qos: 1 | 2): Promise<Call> {
  helper.init(require.resolve('node-red'));
  await helper.startServer();
  return (await nodePair(url, qos)).call;
}

/** A burst of 5000 QoS 1 publishes, resolved when all are acknowledged. */
async function burst(url: string, managed: boolean): Promise<() => Promise<unknown>> {
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
        ? (await rawPair(broker.url, qos)).call
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
