// A seeded fuzz of MQTT topics and payloads into sg-resource, sg-app, apigear-service and apigear-client through a
// real in-process broker: invalid JSON, deep nesting, huge arrays, invalid UTF-8, __proto__/constructor keys and
// members, wrong types, unknown members. No crash, no unhandled rejection, no event-loop stall over 1 s; every valid
// input delivered exactly once; rejections warned one line per burst. FUZZ_SEED / FUZZ_INPUTS override the defaults.
import assert from 'assert';
import { monitorEventLoopDelay } from 'perf_hooks';
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import { helloYaml } from './support/hello';
import { callsOf, green } from './support/node-calls';
import { uniqueModule } from './lib/mqtt-peer';
import { until } from './support/until';
import { mulberry32 } from './support/random';
import type { SgBrokerNode } from '../nodes/sg/sg-broker-api';

helper.init(require.resolve('node-red'));

const nodes = [
  require('../nodes/sg/sg-broker'),
  require('../nodes/sg/sg-resource'),
  require('../nodes/sg/sg-app'),
  require('../nodes/apigear/apigear-service'),
  require('../nodes/apigear/apigear-client'),
] as TestNodeInitializer[];

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed11);
const INPUTS = Number(process.env.FUZZ_INPUTS ?? 10000);

const prng = mulberry32;

type Target = 'svc-set' | 'svc-rpc' | 'cli-prop' | 'cli-sig' | 'res-cmd' | 'app-data' | 'app-avail';

interface Input {
  topic: string;
  payload: Buffer;
  /** The node output that must see it once, or undefined when it must be dropped (or never routed). */
  expect?: Target;
  properties?: mqtt.IClientPublishOptions['properties'];
}

/** The generator: which hostile shapes, how often. Names from the wire include prototype keys on purpose (no U+0000, +, # in topics: the broker would refuse them). */
function generator(rand: () => number, P: string, res: string, cliId: string): (i: number) => Input {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (n: number): number => Math.floor(rand() * n);
  const evilNames = [
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    '',
    ' last',
    'last ',
    'LAST',
    'x'.repeat(300),
    'sät',
    '😀',
    '_internal',
  ];
  const invalidUtf8 = [
    Buffer.from([0xff, 0xfe, 0x62]),
    Buffer.from([0xc3, 0x28]),
    Buffer.from('{"content":"\xff"}', 'latin1'),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  ];
  const deep = (n: number, open = '[', close = ']'): string => open.repeat(n) + close.repeat(n);
  const hostileJson = (): Buffer => {
    switch (int(12)) {
      case 0:
        return Buffer.from(
          pick(['{', '[1,]', 'nul', '{"content":', "{'content':'x'}", 'NaN', '+1', '"\\u12"', '[', '}{']),
        );
      case 1:
        return Buffer.from(deep(pick([65, 100, 1000, 100000])));
      case 2:
        return Buffer.from(`{"content":${deep(pick([70, 5000]), '{"a":', '}')}}`);
      case 3:
        return pick(invalidUtf8);
      case 4:
        return Buffer.from(
          pick([
            '{"__proto__":{"polluted":1},"content":"x"}',
            '{"constructor":{"prototype":{"polluted":1}},"content":"x"}',
            '[{"__proto__":{"content":"x"}},0]',
            '{"content":"x","__proto__":null}',
          ]),
        );
      case 5:
        return Buffer.from(
          pick([
            '"a string"',
            '42',
            'true',
            'null',
            '[]',
            '{}',
            '[[]]',
            '{"content":1}',
            '{"content":null}',
            '[{"content":"x"},7]',
            '[{"content":"x"},"Now"]',
            '[{"content":"x"},0.5]',
          ]),
        );
      case 6:
        return Buffer.from(
          pick([
            '{"content":"x","extra":1}',
            '{"contents":"x"}',
            '[{"content":"x"},0,"extra"]',
            '[{"content":"x","when":0}]',
          ]),
        );
      case 7:
        // A huge array: big but finite work; wrong shape for every member here.
        return Buffer.from(`[${Array.from({ length: pick([1000, 50000, 200000]) }, (_, k) => k % 10).join(',')}]`);
      case 8:
        return Buffer.from(`{"content":"${'y'.repeat(pick([10, 100000]))}","n":${'9'.repeat(400)}}`);
      case 9:
        return Buffer.alloc(0);
      case 10:
        return Buffer.from('\ufeff{"content":"bom"}');
      default:
        return Buffer.from(JSON.stringify({ content: 'x', ['\u0000']: 1 }));
    }
  };
  const validText = (i: number): string =>
    `fz${i}:${pick(['', ' padded ', '__proto__', 'True', 'False', '\u00a0nbsp', 'ünïcødé 😀', 'x'.repeat(int(2000)), '{"json":1}', '\\n'])}`;
  return (i) => {
    const r = rand();
    const valid = rand() < 0.35;
    const content = { content: `fz${i}` };
    if (r < 0.16) {
      if (valid) return { topic: `${P}/set/last`, payload: Buffer.from(JSON.stringify(content)), expect: 'svc-set' };
      return { topic: `${P}/set/${rand() < 0.3 ? pick(evilNames) : 'last'}`, payload: hostileJson() };
    }
    if (r < 0.32) {
      // MQTT 5 properties from the wire too: odd ResponseTopics, big CorrelationData, prototype-named user properties.
      const properties =
        rand() < 0.2
          ? undefined
          : {
              responseTopic:
                rand() < 0.8 ? `${P}/rpc/say/fuzzer/result` : pick([' ', 'x'.repeat(5000), '__proto__', 'a//b']),
              correlationData: rand() < 0.9 ? Buffer.from([int(256)]) : Buffer.alloc(int(65536), 0xff),
              userProperties:
                rand() < 0.5 ? undefined : JSON.parse('{"__proto__":"x","constructor":"y","toString":"z"}'),
            };
      if (valid)
        return {
          topic: `${P}/rpc/say`,
          payload: Buffer.from(JSON.stringify([content, int(3)])),
          expect: 'svc-rpc',
          properties,
        };
      return { topic: `${P}/rpc/${rand() < 0.3 ? pick(evilNames) : 'say'}`, payload: hostileJson(), properties };
    }
    if (r < 0.46) {
      if (valid) return { topic: `${P}/prop/last`, payload: Buffer.from(JSON.stringify(content)), expect: 'cli-prop' };
      const payload = hostileJson();
      return {
        topic: `${P}/prop/${rand() < 0.3 ? pick(evilNames) : 'last'}`,
        payload: payload.length === 0 ? Buffer.from('{') : payload,
      };
    }
    if (r < 0.58) {
      if (valid)
        return { topic: `${P}/sig/justSaid`, payload: Buffer.from(JSON.stringify([content])), expect: 'cli-sig' };
      return { topic: `${P}/sig/${rand() < 0.3 ? pick(evilNames) : 'justSaid'}`, payload: hostileJson() };
    }
    if (r < 0.62) {
      // Replies nobody asked for, with and without CorrelationData: dropped (and counted) by the client.
      return {
        topic: `${P}/rpc/${pick(['say', ...evilNames])}/${cliId}/result`,
        payload: hostileJson(),
        properties: rand() < 0.5 ? { correlationData: Buffer.from([int(256)]) } : undefined,
      };
    }
    if (r < 0.76) {
      if (valid || rand() < 0.4)
        return { topic: `command/${res}/state`, payload: Buffer.from(validText(i)), expect: 'res-cmd' };
      return { topic: `command/${res}/${rand() < 0.5 ? pick(evilNames) : 'state'}`, payload: pick(invalidUtf8) };
    }
    if (r < 0.88) {
      if (valid || rand() < 0.4)
        return { topic: `data/${res}/level`, payload: Buffer.from(validText(i)), expect: 'app-data' };
      return { topic: `data/${res}/${rand() < 0.5 ? pick(evilNames) : 'level'}`, payload: pick(invalidUtf8) };
    }
    if (r < 0.92) {
      if (valid)
        return { topic: `resourceavailable/${res}/presence`, payload: Buffer.from(validText(i)), expect: 'app-avail' };
      return { topic: `resourceavailable/${res}/presence`, payload: pick(invalidUtf8) };
    }
    // Random topics: other levels, wildcards-as-text, prototype names, long and odd characters.
    const levels = Array.from({ length: 1 + int(6) }, () =>
      pick([...evilNames, 'command', 'data', res, P, 'set', 'rpc', 'prop', 'sig', 'result']),
    );
    return {
      topic: levels.join('/').replace(/[+#]/g, '') || 'x',
      payload: rand() < 0.5 ? hostileJson() : Buffer.from(validText(i)),
    };
  };
}

describe(`fuzz: hostile MQTT topics and payloads into sg and ApiGear nodes (seed ${SEED}, ${INPUTS} inputs)`, function () {
  this.timeout(240000);
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('no crash, no unhandled rejection, no stall over 1 s; valid inputs delivered once; rejections one line per burst', async () => {
    const moduleName = uniqueModule('fz.mod');
    const P = `${moduleName}/Hello`;
    const res = `fzres${process.pid}`;
    const cliId = `fzcli${process.pid}`;
    const outs = ['svcSet', 'svcCall', 'cliProp', 'cliSig', 'cliRes', 'resOut', 'appOut'];
    await helper.load(
      nodes as never,
      [
        { id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: 0, protocol: '3.1.1' },
        {
          id: 'res',
          type: 'sg-resource',
          broker: 'b1',
          resource: res,
          commands: [{ signal: 'state', echo: true, defaultValue: null }],
          data: [{ signal: 'level', defaultValue: null }],
          wires: [['resOut']],
        },
        {
          id: 'app',
          type: 'sg-app',
          broker: 'b1',
          app: `fzapp${process.pid}`,
          subscriptions: [
            { type: 'data', service: res, signal: 'level' },
            { type: 'resourceavailable', service: res, signal: '' },
          ],
          wires: [['appOut']],
        },
        {
          id: 'svc',
          type: 'apigear-service',
          broker: 'b1',
          moduleYaml: helloYaml(moduleName),
          interface: 'Hello',
          applySet: false,
          wires: [['svcSet'], ['svcCall']],
        },
        {
          id: 'cli',
          type: 'apigear-client',
          broker: 'b1',
          moduleYaml: helloYaml(moduleName),
          interface: 'Hello',
          clientId: cliId,
          wires: [['cliProp'], ['cliSig'], ['cliRes']],
        },
        ...outs.map((id) => ({ id, type: 'helper' })),
      ] as never,
    );
    await Promise.all(['res', 'app', 'svc', 'cli'].map(green));
    const broker = helper.getNode('b1') as unknown as SgBrokerNode;
    const probe = { id: 'probe', status: () => undefined };
    const { url } = await broker.endpoint(probe);
    await broker.release(probe, false);

    const got = new Map<string, number>(outs.map((o) => [o, 0]));
    const isFuzz = (m: { payload?: unknown; text?: unknown }): boolean => {
      const v = typeof m.text === 'string' ? m.text : m.payload;
      if (typeof v === 'string') return v.startsWith('fz');
      return /"content":"fz\d+"/.test(JSON.stringify(v));
    };
    for (const id of outs) {
      (
        helper.getNode(id) as unknown as { on(e: string, fn: (m: { payload?: unknown; text?: unknown }) => void): void }
      ).on('input', (m) => {
        if (isFuzz(m)) got.set(id, (got.get(id) ?? 0) + 1);
      });
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    const lag = monitorEventLoopDelay({ resolution: 20 });
    lag.enable();

    const fuzzer = await mqtt.connectAsync(url, {
      protocolVersion: 5,
      clientId: `fuzzer-${process.pid}`,
      reconnectPeriod: 0,
    });
    // A fuzz input the broker itself refuses would end the fuzzer's connection: fail at once instead of hanging.
    const fuzzerClosed = new Promise<never>((_, reject) =>
      fuzzer.once('close', () => reject(new Error('the broker closed the fuzzer connection'))),
    );
    fuzzerClosed.catch(() => undefined);
    const next = generator(prng(SEED), P, res, cliId);
    const expected = new Map<Target, number>();
    let bytes = 0;
    const t0 = Date.now();
    try {
      const window: Array<Promise<unknown>> = [];
      for (let i = 0; i < INPUTS; i++) {
        const input = next(i);
        if (input.expect) expected.set(input.expect, (expected.get(input.expect) ?? 0) + 1);
        bytes += input.payload.length;
        window.push(fuzzer.publishAsync(input.topic, input.payload, { qos: 1, properties: input.properties }));
        if (window.length >= 100) await Promise.race([Promise.all(window.splice(0)), fuzzerClosed]);
      }
      await Promise.race([Promise.all(window), fuzzerClosed]);
      const want: Array<[string, Target]> = [
        ['svcSet', 'svc-set'],
        ['svcCall', 'svc-rpc'],
        ['cliProp', 'cli-prop'],
        ['cliSig', 'cli-sig'],
        ['resOut', 'res-cmd'],
      ];
      // Positive end marker: every valid input has come out of its node (the broker keeps per-publisher order).
      const appExpected = (expected.get('app-data') ?? 0) + (expected.get('app-avail') ?? 0);
      await until(
        () => want.every(([id, t]) => got.get(id) === (expected.get(t) ?? 0)) && got.get('appOut') === appExpected,
        'every valid fuzz input to come out of its node',
        120000,
        100,
      );
      const elapsed = Date.now() - t0;
      lag.disable();
      const warnLines = Object.fromEntries(['res', 'app', 'svc', 'cli'].map((id) => [id, callsOf(id, 'warn').length]));
      const totalLines = Object.values(warnLines).reduce((a, b) => a + b, 0);
      const counted = ['res', 'app', 'svc', 'cli']
        .flatMap((id) => callsOf(id, 'warn'))
        .reduce((sum, a) => sum + Number(/(\d+) inbound messages? dropped/.exec(String(a[0]))?.[1] ?? 0), 0);
      const maxLagMs = lag.max / 1e6;
      console.log(
        `      fuzz: seed ${SEED}, ${INPUTS} inputs (${(bytes / 1e6).toFixed(1)} MB) in ${(elapsed / 1000).toFixed(1)} s; ` +
          `delivered ${JSON.stringify(Object.fromEntries(got))}; warning lines ${JSON.stringify(warnLines)} = ${totalLines} (saying ${counted} drops so far; the rest of the open bursts is said when they end); max event-loop delay ${maxLagMs.toFixed(0)} ms`,
      );
      assert.deepStrictEqual(unhandled, [], 'no unhandled rejection');
      assert.ok(maxLagMs < 1000, `event loop stalled for ${maxLagMs.toFixed(0)} ms`);
      // Each node warns per reason at most once at once and once per 10 s window after that.
      const windows = 2 + Math.ceil(elapsed / 10000);
      for (const [id, lines] of Object.entries(warnLines)) {
        assert.ok(lines <= 8 * windows, `${id}: ${lines} warning lines for a ${elapsed} ms fuzz`);
      }
      for (const id of ['svc', 'cli']) {
        assert.ok(
          callsOf(id, 'warn').some((a) =>
            /\d+ inbound messages? dropped \((not JSON|too deeply nested|breaks the IDL|not UTF-8|unknown member)\)/.test(
              String(a[0]),
            ),
          ),
          `${id} said it dropped input`,
        );
      }
      assert.ok(
        callsOf('res', 'warn').some((a) => /inbound messages? dropped \(not UTF-8\)/.test(String(a[0]))),
        'sg said it dropped input',
      );
      // Nothing from the wire reached Object.prototype.
      assert.strictEqual(({} as Record<string, unknown>).polluted, undefined);
    } finally {
      lag.disable();
      process.removeListener('unhandledRejection', onUnhandled);
      await fuzzer.endAsync(true);
    }
  });
});
