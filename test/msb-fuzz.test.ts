// A seeded fuzz of what an MSB (or anyone on a plain ws:// link) can send: SockJS frames and MSB messages, valid,
// malformed and hostile, into an msb-config in a real Node-RED runtime. Nothing may crash the process, leave an
// unhandled rejection, stall the event loop for a second, or warn at an unbounded rate.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { monitorEventLoopDelay } from 'perf_hooks';
import helper from 'node-red-node-test-helper';
import { MsbEmulator } from '../src/msb';
import { mulberry32 } from './support/random';
import { poller } from './support/until';

const nodes = [
  require('../nodes/msb/msb-config'),
  require('../nodes/msb/msb-event-out'),
  require('../nodes/msb/msb-function-in'),
];

helper.init(require.resolve('node-red'));

const A = 'f0220000-0000-4000-8000-0000000000a1';
const INPUTS = 10000;
const SEED = 0x5eed10;
const until = poller(20000, 10);

const prng = mulberry32;

const KEYWORDS = [
  'IO',
  'NIO',
  'IO_CONNECTED',
  'IO_REGISTERED',
  'IO_PUBLISHED',
  'NIO_REGISTRATION_ERROR',
  'NIO_UNEXPECTED_REGISTRATION_ERROR',
  'NIO_EVENT_FORWARDING_ERROR',
  'NIO_UNEXPECTED_EVENT_FORWARDING_ERROR',
  'ping',
  'NIO_SOMETHING_NEW',
  'pong',
];
const NAMES = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'limit',
  'F',
  '/F',
  'G',
  '',
  ' ',
  'dataObject',
  'a'.repeat(300),
  '\u0000',
  'é€😀',
];

function generator(random: () => number) {
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const text = (): string => {
    const n = int(20);
    let s = '';
    for (let i = 0; i < n; i++)
      s += String.fromCharCode(pick([32 + int(95), int(32), 0x80 + int(0x780), 0xd800 + int(0x800)]));
    return s;
  };
  const value = (depth: number): unknown => {
    const k = int(depth > 6 ? 5 : 8);
    if (k === 0) return null;
    if (k === 1) return random() < 0.5;
    if (k === 2) return pick([0, -1, 1.5, 1e308, -2147483649, Number.MAX_SAFE_INTEGER]);
    if (k === 3) return text();
    if (k === 4) return pick(NAMES);
    if (k === 5) return Array.from({ length: int(4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = int(4); i > 0; i--)
      Object.defineProperty(o, pick(NAMES), {
        value: value(depth + 1),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    return o;
  };
  const nested = (depth: number): string =>
    random() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
  const message = (): string => {
    switch (int(9)) {
      case 0:
        return pick(KEYWORDS);
      case 1:
        return text();
      case 2:
        return `C ${JSON.stringify({ uuid: pick([A, 'x', undefined]), functionId: pick(NAMES), correlationId: pick(['c', undefined, 7]), functionParameters: value(0) })}`;
      case 3:
        return `K ${JSON.stringify({ uuid: pick([A, A, 'other']), params: value(0) })}`;
      case 4:
        return `${pick(['C', 'K'])} {"uuid":"${A}","functionId":"F","params":{"limit":${nested(int(2) ? 10 + int(100) : 2000 + int(8000))}},"functionParameters":{"dataObject":${nested(int(200))}}}`;
      case 5:
        return `${pick(['C', 'K', 'R', 'E'])} ${text()}`;
      case 6:
        return `${pick(['R', 'E'])} ${JSON.stringify(value(0))}`;
      case 7:
        return `C {"uuid":"${A}","functionId":"F","functionParameters":{"dataObject":${JSON.stringify(text())}}}`;
      default:
        // eslint-disable-next-line no-control-regex -- strips the control characters a JSON key must not hold
        return `K {"uuid":"${A}","params":{"${pick(NAMES).replace(/["\\\u0000-\u001f]/g, '')}":${JSON.stringify(value(3))}}}`;
    }
  };
  /** One websocket text frame as the server could send it (a valid c-frame is left out: it ends the session). */
  return (): string => {
    switch (int(8)) {
      case 0:
        return pick([
          'o',
          'h',
          '',
          'a',
          'a[',
          'a[]',
          'a{}',
          'a[1,2]',
          'a[null]',
          'c',
          'c[]',
          'c{"x":1}',
          'x',
          'hh',
          'oo',
        ]);
      case 1:
        return `a${JSON.stringify(Array.from({ length: 1 + int(3) }, message))}`;
      case 2:
        return `a${JSON.stringify([message()]).slice(0, 1 + int(30))}`;
      case 3:
        return text();
      case 4:
        return `a${JSON.stringify([message(), value(0)])}`;
      default:
        return `a${JSON.stringify([message()])}`;
    }
  };
}

describe('msb-config fuzz', function () {
  this.timeout(120000);
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-fuzz-'));
  let emulator: MsbEmulator;

  before(() => {
    helper.settings({ userDir });
    return helper.startServer();
  });
  after(async () => {
    await helper.unload();
    await emulator?.close();
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
    await helper.stopServer();
  });

  it(`${INPUTS} seeded frames: no crash, no unhandled rejection, no event-loop stall over 1 s, warnings at a bounded rate`, async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 1000 });
    const { url } = await emulator.start({ port: 0 });
    await helper.load(nodes, [
      {
        id: 'cfg',
        type: 'msb-config',
        name: 'fuzz',
        uuid: A,
        serviceClass: 'SmartObject',
        url,
        sockJs: true,
        autoReconnect: true,
        reconnectInterval: 3,
        eventCacheSize: 100,
        pingInterval: 0,
        parameters: [{ name: 'limit', type: 'double', value: 1 }],
      },
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'N',
        dataType: 'int32',
        priority: 'LOW',
        cached: true,
      },
      {
        id: 'fn',
        type: 'msb-function-in',
        service: 'cfg',
        functionId: 'F',
        dataType: 'string',
        responseEvents: [],
        validateCalls: true,
        wires: [['out']],
      },
      { id: 'conf', type: 'msb-function-in', service: 'cfg', mode: 'configuration', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ] as Parameters<typeof helper.load>[1]);
    await until(() => emulator.services().has(A), 'registration');
    const cfg = helper.getNode('cfg') as unknown as { warn: { getCalls(): Array<{ thisValue: unknown }> } };
    const warned = (): number => cfg.warn.getCalls().filter((c) => c.thisValue === cfg).length;
    const warnedBefore = warned();

    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };
    process.on('unhandledRejection', onRejection);
    const delay = monitorEventLoopDelay({ resolution: 20 });
    delay.enable();
    const next = generator(prng(SEED));
    const started = Date.now();
    let pongs = 0;
    const countPongs = (r: { direction: string; message: string }): void => {
      if (r.direction === 'in' && r.message === 'pong') pongs++;
    };
    emulator.on('traffic', countPongs);
    try {
      for (let sent = 0; sent < INPUTS;) {
        for (let i = 0; i < 100 && sent < INPUTS; i++, sent++)
          assert.ok(emulator.sendRawFrame(A, next()), `session alive at input ${sent}`);
        // A ping after the batch: its pong means the client has handled every frame before it.
        const expected = pongs + 1;
        emulator.ping(A);
        await until(() => pongs >= expected, `pong after input ${sent}`);
      }
    } finally {
      delay.disable();
      emulator.off('traffic', countPongs);
      process.off('unhandledRejection', onRejection);
    }
    const seconds = (Date.now() - started) / 1000;
    const state = (await helper.request().get('/msb-config/cfg/state').expect(200)).body as {
      counts: { rejected: number };
    };
    const lines = warned() - warnedBefore;
    process.stdout.write(
      `      ${INPUTS} inputs in ${seconds.toFixed(1)} s, ${state.counts.rejected} rejected, ${lines} warning lines, max event-loop delay ${(delay.max / 1e6).toFixed(0)} ms\n`,
    );
    assert.deepStrictEqual(rejections, []);
    assert.ok(delay.max < 1e9, `event loop stalled for ${(delay.max / 1e6).toFixed(0)} ms`);
    assert.ok(state.counts.rejected > 1000, 'the fuzz reached the rejection paths');
    // At most one line per reason and 10 s window (plus the first of each): about 20 reasons can occur.
    assert.ok(lines <= 20 * (Math.ceil(seconds / 10) + 1), `${lines} warning lines in ${seconds.toFixed(1)} s`);
    assert.strictEqual(({} as Record<string, unknown>).value, undefined, 'Object.prototype untouched');
    assert.strictEqual(({} as Record<string, unknown>).a, undefined);
    // Still a working service: registers again on request and publishes.
    emulator.sendStatus(A, 'IO_CONNECTED');
    const node = helper.getNode('ev') as unknown as { receive(msg: object): void };
    node.receive({ payload: 424242 });
    await until(
      () => emulator.traffic.some((r) => r.direction === 'in' && r.message.includes('424242')),
      'an event after the fuzz',
    );
  });
});
