// `node dist/bench/nagle-capture.js`: shows on the wire why a QoS 1 request → answer takes ~44 ms on a default
// Mosquitto. Starts a private Mosquitto (default configuration, then `set_tcp_nodelay true`), captures loopback
// traffic to its port only with tshark, runs sequential QoS 1 request → answer trips between two raw mqtt.js
// clients that both set TCP_NODELAY, and prints where each trip waits. Needs tshark and the right to capture on lo.
import { ChildProcess, execFileSync, spawn } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import mqtt, { MqttClient } from 'mqtt';
import { startMosquitto } from './mosquitto';
import { stats, Stats } from './rounds';

const TRIPS = 30;

interface Segment {
  t: number;
  src: number;
  dst: number;
  len: number;
  types: string;
  topic: string;
}

const fmt = (s: Stats): string =>
  `min ${s.min.toFixed(2)} / median ${s.median.toFixed(2)} / max ${s.max.toFixed(2)} ms`;

async function captureOnce(tweak: string): Promise<string> {
  const broker = await startMosquitto(tweak);
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-nagle-')), 'trips.pcapng');
  const cap: ChildProcess = spawn('tshark', ['-i', 'lo', '-f', `tcp port ${broker.port}`, '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let capLog = '';
  cap.stderr?.on('data', (d: Buffer) => (capLog += d.toString()));
  const clients: MqttClient[] = [];
  try {
    for (let i = 0; i < 200 && !capLog.includes('Capturing on'); i++) await new Promise((r) => setTimeout(r, 50));
    if (!capLog.includes('Capturing on')) throw new Error(`tshark did not start: ${capLog}`);
    const connect = async (clientId: string): Promise<MqttClient> => {
      const c = await mqtt.connectAsync(broker.url, { clientId, reconnectPeriod: 0 });
      (c.stream as unknown as { setNoDelay(on: boolean): void }).setNoDelay(true);
      clients.push(c);
      return c;
    };
    const requester = await connect('requester');
    const answerer = await connect('answerer');
    answerer.on('message', (_t, p) => answerer.publish('answer', p, { qos: 1 }));
    await answerer.subscribeAsync('request', { qos: 1 });
    let waiting: ((p: string) => void) | undefined;
    requester.on('message', (_t, p) => waiting?.(p.toString()));
    await requester.subscribeAsync('answer', { qos: 1 });
    const trips: number[] = [];
    for (let i = 0; i < TRIPS; i++) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
        waiting = (p) => p === `r${i}` && (clearTimeout(timer), resolve());
        requester.publish('request', `r${i}`, { qos: 1 });
      });
      trips.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    for (const c of clients) await c.endAsync();
    await new Promise((r) => setTimeout(r, 300)); // let tshark write the last segments before it is stopped
    cap.kill('SIGINT');
    await new Promise((r) => cap.once('exit', r));
    return `${tweak || 'default configuration'}: ${TRIPS} trips timed by the requester: ${fmt(stats(trips))}\n${analyse(file, broker.port)}`;
  } finally {
    if (cap.exitCode === null) cap.kill('SIGINT');
    await broker.stop();
  }
}

function analyse(file: string, port: number): string {
  const out = execFileSync(
    'tshark',
    [
      '-r',
      file,
      '-d',
      `tcp.port==${port},mqtt`,
      '-T',
      'fields',
      '-e',
      'frame.time_relative',
      '-e',
      'tcp.srcport',
      '-e',
      'tcp.dstport',
      '-e',
      'tcp.len',
      '-e',
      'mqtt.msgtype',
      '-e',
      'mqtt.topic',
      '-E',
      'separator=;',
    ],
    { encoding: 'utf8' },
  );
  const segs: Segment[] = out
    .trim()
    .split('\n')
    .map((l) => l.split(';'))
    .map(([t, s, d, n, m, topic]) => ({
      t: Number(t) * 1000,
      src: Number(s),
      dst: Number(d),
      len: Number(n || 0),
      types: m ?? '',
      topic: topic ?? '',
    }));
  const isPublish = (g: Segment, topic: string): boolean =>
    g.types.split(',').includes('3') && g.topic.split(',').includes(topic);
  const first = segs.find((g) => g.dst === port && isPublish(g, 'request'));
  const relay = segs.find((g) => g.src === port && isPublish(g, 'request'));
  if (!first || !relay) return '  (no request found in the capture)';
  const requester = first.src;
  const answerer = relay.dst;
  const toAnswerer: number[] = [];
  const toRequester: number[] = [];
  const ackWait: number[] = [];
  const requesterAckWait: number[] = [];
  segs.forEach((g, i) => {
    if (!(g.src === requester && isPublish(g, 'request'))) return;
    const j = segs.findIndex((h, k) => k > i && h.src === port && h.dst === answerer && isPublish(h, 'request'));
    if (j < 0) return;
    toAnswerer.push((segs[j] as Segment).t - g.t);
    const e = segs.findIndex((h, k) => k > j && h.src === port && h.dst === requester && isPublish(h, 'answer'));
    if (e >= 0) toRequester.push((segs[e] as Segment).t - g.t);
    // The broker's last data segment to the answerer before this request, and the answerer's bare ACK for it.
    const before = segs
      .slice(0, i)
      .filter((h) => h.src === port && h.dst === answerer && h.len > 0)
      .pop();
    const ack = segs
      .slice(i, j)
      .filter((h) => h.src === answerer && h.len === 0)
      .pop();
    if (before && ack) ackWait.push(ack.t - before.t);
    // The broker's PUBACK for this request, and the requester's bare ACK for it before the answer goes out.
    const puback = segs.slice(i + 1, e).find((h) => h.src === port && h.dst === requester && h.len > 0);
    const reqAck = segs
      .slice(i + 1, e)
      .filter((h) => h.src === requester && h.len === 0)
      .pop();
    if (e >= 0 && puback && reqAck) requesterAckWait.push(reqAck.t - puback.t);
  });
  return [
    `  request arrives at the broker → broker sends it on to the answerer: ${fmt(stats(toAnswerer))}`,
    `  request arrives at the broker → broker sends the answer to the requester: ${fmt(stats(toRequester))}`,
    ackWait.length
      ? `  broker's last segment to the answerer (its PUBACK) → the answerer's bare (delayed) ACK: ${fmt(stats(ackWait))}`
      : '  no bare ACK from the answerer before the request is relayed (nothing waits for one)',
    requesterAckWait.length
      ? `  broker's PUBACK to the requester → the requester's bare (delayed) ACK, after which the answer goes out: ${fmt(stats(requesterAckWait))}`
      : '  no bare ACK from the requester before the answer goes out (nothing waits for one)',
  ].join('\n');
}

async function main(): Promise<void> {
  for (const tweak of ['', 'set_tcp_nodelay true']) process.stdout.write(`${await captureOnce(tweak)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
