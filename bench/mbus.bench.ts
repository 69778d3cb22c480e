// Mbus benchmark: codec (encode + HMAC + verify + parse) and entity-to-entity throughput, as ratios to raw dgram
// unicast of the same bytes measured in alternating rounds.
import dgram from 'dgram';
import { once } from 'events';
import {
  Address,
  Entity,
  M,
  Message,
  encryptionKey,
  formatMessage,
  hashKey,
  openDatagram,
  parseMessage,
  sealDatagram,
} from '../src/mbus';
import { alternate, mmm, Measures, progress, Stats } from './rounds';

const GROUP = '224.255.222.239';
const KEY = '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)';
const WINDOW = 64;
const N = 20000; // messages per measurement
const N_RFC = 2000; // reliable with the RFC's 70 ms ack delay runs at ~900 msg/s
const ROUNDS = 7;
const BUDGET_MS = 90000;

const sample: Message = {
  seq: 4711,
  timestamp: 1795364691147,
  reliable: false,
  source: Address.parse('(app:bench module:a id:1234-1@127.0.0.1)'),
  destination: Address.parse('(app:bench module:b id:1234-2@127.0.0.1)'),
  acks: [],
  commands: [
    {
      name: 'bench.sample',
      args: [
        M.str('hello "world"'),
        M.int(42),
        M.float(3.5),
        M.sym('OK'),
        M.list(M.int(1), M.int(2), M.list(M.str('x'))),
        M.data(Buffer.from([0, 1, 2, 3])),
      ],
    },
  ],
};

/** Sends up to `n` items keeping at most WINDOW in flight; returns delivered per second. */
async function pump(
  n: number,
  maxMs: number,
  send: (i: number) => void | Promise<unknown>,
  delivered: () => number,
  onProgress: (cb: () => void) => () => void,
): Promise<{ rate: number; count: number; lost: number }> {
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + maxMs;
  let sent = 0;
  let lost = 0;
  let wake: (() => void) | undefined;
  const off = onProgress(() => wake?.());
  const waitProgress = (ms: number): Promise<boolean> =>
    new Promise((resolve) => {
      const t = setTimeout(() => {
        wake = undefined;
        resolve(false);
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve(true);
      };
    });
  while (sent < n && Date.now() < deadline) {
    while (sent - delivered() - lost >= WINDOW) {
      if (!(await waitProgress(500))) lost = sent - delivered(); // give up on what went missing
    }
    const r = send(sent++);
    if (r instanceof Promise) r.catch(() => undefined);
  }
  while (delivered() + lost < sent) if (!(await waitProgress(500))) lost = sent - delivered();
  off();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rate: delivered() / secs, count: delivered(), lost };
}

/** Pumps `n` datagrams from tx to rx's port at `address` (unicast or the group), counting what rx receives; closes both. */
async function rawRate(rx: dgram.Socket, tx: dgram.Socket, data: Buffer, address: string, n: number): Promise<number> {
  let got = 0;
  const listeners = new Set<() => void>();
  rx.on('message', () => {
    got++;
    for (const l of listeners) l();
  });
  const port = rx.address().port;
  const r = await pump(
    n,
    10000,
    () => tx.send(data, port, address),
    () => got,
    (cb) => (listeners.add(cb), () => listeners.delete(cb)),
  );
  rx.close();
  tx.close();
  return r.rate;
}

async function rawUnicast(data: Buffer, n: number): Promise<number> {
  const rx = dgram.createSocket('udp4');
  const tx = dgram.createSocket('udp4');
  rx.bind(0, '127.0.0.1');
  tx.bind(0, '127.0.0.1');
  await Promise.all([once(rx, 'listening'), once(tx, 'listening')]);
  return rawRate(rx, tx, data, '127.0.0.1', n);
}

async function rawMulticast(data: Buffer, n: number): Promise<number> {
  const rx = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  rx.bind({ port: 0, exclusive: false });
  await once(rx, 'listening');
  rx.addMembership(GROUP, '127.0.0.1');
  const tx = dgram.createSocket('udp4');
  tx.bind(0, '127.0.0.1');
  await once(tx, 'listening');
  tx.setMulticastInterface('127.0.0.1');
  tx.setMulticastTTL(0);
  return rawRate(rx, tx, data, GROUP, n);
}

function codecRate(n: number): number {
  const sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
  const t0 = process.hrtime.bigint();
  let check = 0;
  for (let i = 0; i < n; i++) {
    const d = sealDatagram(sec, formatMessage({ ...sample, seq: i }));
    check += parseMessage(openDatagram(sec, d)).commands.length;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (check !== n) throw new Error('codec bench lost messages');
  return n / secs;
}

async function entityRate(n: number, reliable: boolean, ackDelay?: number): Promise<{ rate: number; lost: number }> {
  const timers = ackDelay === undefined ? { helloMin: 100 } : { helloMin: 100, ackDelay };
  const a = new Entity({ address: '(app:bench module:a)', port: 0, timers, maxDatagram: 1500 });
  await a.start();
  const b = new Entity({ address: '(app:bench module:b)', port: a.port, timers });
  await b.start();
  while (!a.entities.some((p) => p.address.equals(b.address))) await new Promise((r) => setTimeout(r, 20));
  let got = 0;
  let acked = 0;
  const listeners = new Set<() => void>();
  const tick = (): void => {
    for (const l of listeners) l();
  };
  b.on('command', (c) => {
    if (c.name === 'bench.sample') {
      got++;
      if (!reliable) tick();
    }
  });
  const cmds = sample.commands;
  const r = await pump(
    n,
    15000,
    () =>
      a.send(b.address, cmds, { reliable }).then(() => {
        if (reliable) {
          acked++;
          tick();
        }
      }),
    () => (reliable ? acked : got),
    (cb) => (listeners.add(cb), () => listeners.delete(cb)),
  );
  await a.stop();
  await b.stop();
  return { rate: r.rate, lost: r.lost };
}

export async function run(): Promise<string> {
  const sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
  const bytes = sealDatagram(sec, formatMessage(sample));
  // Warm-up.
  codecRate(2000);
  await rawUnicast(bytes, 2000);
  await entityRate(2000, false);
  const baseline = async (): Promise<Measures> => ({ uni: await rawUnicast(bytes, N) });
  const candidate = async (): Promise<Measures> => {
    const unrel = await entityRate(N, false);
    const rel = await entityRate(N_RFC, true);
    const rel0 = await entityRate(N, true, 0);
    return {
      multi: await rawMulticast(bytes, N),
      codec: codecRate(N),
      unrel: unrel.rate,
      unrelLost: unrel.lost,
      rel: rel.rate,
      relLost: rel.lost,
      rel0: rel0.rate,
      rel0Lost: rel0.lost,
    };
  };
  const r = await alternate(
    {
      rounds: ROUNDS,
      budgetMs: BUDGET_MS,
      onRound: (i, b, c) =>
        progress(`round ${i + 1}: raw ${Math.round(b.uni ?? 0)} msg/s, entity U ${Math.round(c.unrel ?? 0)} msg/s`),
    },
    baseline,
    candidate,
  );
  const base = r.compare('uni');
  const row = (name: string, key: string): string => {
    const c = r.compare(key, 'uni');
    const lost = r.total('candidate', `${key}Lost`);
    return `| ${name} | ${mmm(c.candidate)} | ${mmm(c.ratio, 2)}${lost ? ` (${lost} lost)` : ''} |`;
  };
  const one: Stats = { min: 1, median: 1, max: 1, n: r.rounds };
  const unrel = r.compare('unrel', 'uni').ratio;
  return [
    '## Mbus',
    '',
    `One ${bytes.length}-byte datagram (a command with six typed arguments, HMAC-MD5-96) sent over loopback, at most ${WINDOW} messages in flight; messages per second and the ratio to raw \`dgram\` unicast of the same bytes. ${r.rounds} alternating rounds (raw unicast, then the Mbus paths; the order swapped every round), ${N} messages per measurement (${N_RFC} for reliable with the RFC timers). Each cell: min / **median** / max over the rounds; the ratio is taken per round against that round's raw unicast. Entities unicast to a known peer that has its own endpoint, which is why unicast is the baseline. The machine (2 CPUs) was shared with other helpers' builds and tests while measuring; min / max show how much that moved the figures.`,
    '',
    '| path | msg/s | ratio to raw dgram |',
    '|---|---:|---:|',
    `| raw \`dgram\` unicast 127.0.0.1 (baseline) | ${mmm(base.baseline)} | ${mmm(one, 2)} |`,
    row('raw `dgram` multicast, HOSTLOCAL TTL 0', 'multi'),
    row('codec: encode + HMAC-MD5-96 + verify + parse (no socket)', 'codec'),
    row('entity → entity, unreliable (U)', 'unrel'),
    row(`entity → entity, reliable (R), T_c = 70 ms (RFC), ${WINDOW} in flight`, 'rel'),
    row(`entity → entity, reliable (R), T_c = 0, ${WINDOW} in flight`, 'rel0'),
    '',
    `Goal "entity → entity unreliable ≥ 0.5 of raw \`dgram\`" (issue 15): median ${unrel.median.toFixed(2)} (min ${unrel.min.toFixed(2)}) — **${unrel.median >= 0.5 ? 'met' : 'not met'}**.`,
    '',
    'Reliable throughput with the RFC timers is bounded by the ack window: the receiver holds each ack up to T_c = 70 ms hoping to piggy-back it, so 64 outstanding messages allow about 64 / 70 ms ≈ 900 msg/s. With T_c = 0 every message is acked at once by a dedicated ack datagram.',
  ].join('\n');
}
