// The state model behind the Busbar sidebar: trace ring (bounded, masked, readable), resources seen on an sg broker,
// and the registry's views, pushes, trace switch and discovery for msb-config, sg-broker and mbus-config in a real
// Node-RED runtime with in-process peers (MSB emulator, embedded MQTT broker, two Mbus entities on loopback).
import assert from 'assert';
import dgram from 'dgram';
import helper from 'node-red-node-test-helper';
import mqtt from 'mqtt';
import { maskSecrets, readableMqtt, readableSockJs, TraceRing } from '../src/common/trace';
import { SgResourceWatch } from '../src/sg/watch';
import { MsbEmulator } from '../src/msb';
import { registry, PUSH_INTERVAL_MS } from '../nodes/lib/busbar-admin';
import type { ProbeView } from '../nodes/lib/busbar-admin';
import { load, sgNodes } from './lib/nodes';
import { startTestBroker, TestBroker, uniqueName } from './lib/mqtt-peer';

const msbNodes = [require('../nodes/msb/msb-config'), require('../nodes/msb/msb-event-out')];
const mbusNodes = [require('../nodes/mbus/mbus-config'), require('../nodes/mbus/mbus-entity')];
const sidebarPlugin = require('../nodes/busbar-sidebar');
const redEvents = (require('@node-red/util') as { events: NodeJS.EventEmitter }).events;

helper.init(require.resolve('node-red'));

/** Polls an async check every 50 ms until it gives a value (not undefined/false); rejects naming what it waited for. */
async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  ms = 8000,
): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Pushed {
  topic: string;
  data: ProbeView;
  at: number;
}

async function views(): Promise<ProbeView[]> {
  const res = await helper.request().get('/busbar/nodes').expect(200);
  return (res.body as { nodes: ProbeView[] }).nodes;
}

async function viewOf(id: string): Promise<ProbeView | undefined> {
  return (await views()).find((v) => v.id === id);
}

describe('Busbar sidebar: trace ring', () => {
  it('records nothing while off, and forgets everything when switched off', () => {
    const ring = new TraceRing();
    ring.record('in', 'ws', 'hello');
    assert.strictEqual(ring.size, 0);
    ring.enabled = true;
    ring.record('in', 'ws', 'hello');
    assert.deepStrictEqual(
      ring.list().map((e) => [e.direction, e.kind, e.text]),
      [['in', 'ws', 'hello']],
    );
    ring.enabled = false;
    assert.strictEqual(ring.size, 0);
  });

  it('keeps the last N entries and stays under its byte bound', () => {
    const ring = new TraceRing({ maxEntries: 200, maxBytes: 64 * 1024, maxEntryChars: 1000 });
    ring.enabled = true;
    for (let i = 0; i < 1000; i++)
      ring.record(i % 2 ? 'in' : 'out', 'mqtt', `frame ${i} ${'x'.repeat(i % 3 === 0 ? 5000 : 10)}`);
    assert.ok(ring.size <= 200, `${ring.size} entries`);
    assert.ok(ring.byteSize <= 64 * 1024, `${ring.byteSize} bytes`);
    const list = ring.list();
    assert.match(list[list.length - 1]!.text, /^frame 999 /);
    assert.ok(
      list.every((e) => e.text.length <= 1000 + 30),
      'every entry is cut to maxEntryChars',
    );
    // Entries stay in order, newest last.
    const numbers = list.map((e) => Number(/^frame (\d+)/.exec(e.text)?.[1]));
    assert.deepStrictEqual(
      [...numbers].sort((a, b) => a - b),
      numbers,
    );
  });

  it('masks tokens, keys and passwords in JSON, key=value pairs and authorization headers', () => {
    const masked = maskSecrets(
      'R {"uuid":"u1","token":"secret-a","name":"x","hashKey":"(HMAC,abc)","nested":{"password": "p w"}}',
    );
    assert.ok(!/secret-a|HMAC|p w/.test(masked), masked);
    assert.match(masked, /"token":"\*\*\*"/);
    assert.match(masked, /"uuid":"u1"/);
    assert.strictEqual(maskSecrets('user=bob password=hunter2&x=1'), 'user=bob password=***&x=1');
    assert.strictEqual(maskSecrets('Authorization: Bearer abc.def.ghi'), 'Authorization: Bearer ***');
    const ring = new TraceRing();
    ring.enabled = true;
    ring.record('out', 'ws', '{"apiKey":"k-123"}');
    assert.strictEqual(ring.list()[0]!.text, '{"apiKey":"***"}');
  });

  it('shows SockJS frames unwrapped and MQTT publishes as topic and payload', () => {
    assert.strictEqual(readableSockJs('a["IO_PUBLISHED","C {\\"a\\":1}"]'), 'IO_PUBLISHED\nC {"a":1}');
    assert.strictEqual(readableSockJs('o'), 'SockJS open');
    assert.strictEqual(readableSockJs('h'), 'SockJS heartbeat');
    assert.strictEqual(readableSockJs('not sockjs ['), 'not sockjs [');
    assert.strictEqual(readableMqtt('data/taxi/speed', Buffer.from('42')), 'data/taxi/speed  42');
    assert.strictEqual(readableMqtt('data/taxi/raw', Buffer.from([0xff, 0xfe, 0x00])), 'data/taxi/raw  <3 bytes>');
    // A megabyte payload: only its head is decoded and kept.
    const big = readableMqtt('data/taxi/log', Buffer.from('ü'.repeat(512 * 1024)));
    assert.ok(big.length < 10000 && big.startsWith('data/taxi/log  üü') && big.endsWith('…'), `${big.length} chars`);
    const ring = new TraceRing({ maxEntryChars: 100 });
    ring.enabled = true;
    ring.record('in', 'mqtt', `{"token":"${'s'.repeat(1024 * 1024)}"}`);
    const [entry] = ring.list();
    assert.ok(entry!.text.length < 140 && !entry!.text.includes('sss'), entry!.text);
  });
});

describe('Busbar sidebar: resources seen on an sg broker', () => {
  it('builds presence, availability and latest values per resource from the sg topics, ignoring others', () => {
    const watch = new SgResourceWatch();
    assert.ok(watch.take('resourceavailable/taxi/presence', 'True'));
    assert.ok(watch.take('commandavailable/taxi/light', 'True'));
    assert.ok(watch.take('dataavailable/taxi/speed', 'True'));
    assert.ok(watch.take('data/taxi/speed', Buffer.from('42.5')));
    assert.ok(watch.take('dataavailable/taxi/light', 'False'));
    assert.ok(!watch.take('some/other/topic/deep', 'x'));
    assert.ok(!watch.take('homeassistant/status', 'online'));
    assert.ok(!watch.take('weird/taxi/x', 'True'), 'an unknown prefix is not an sg topic');
    const [taxi] = watch.list();
    assert.strictEqual(taxi?.name, 'taxi');
    assert.strictEqual(taxi?.presence, true);
    assert.deepStrictEqual(Object.keys(taxi?.commands ?? {}), ['light']);
    assert.strictEqual(taxi?.data.speed?.value, '42.5');
    assert.strictEqual(taxi?.data.light?.available, false);
    assert.strictEqual(
      Object.getPrototypeOf(taxi?.data),
      null,
      'signal names from the wire go into null-prototype tables',
    );
    assert.ok(watch.take('data/taxi/__proto__', '1'));
    assert.strictEqual(({} as Record<string, unknown>).value, undefined);
  });

  it('stays bounded under a flood of names', () => {
    const watch = new SgResourceWatch();
    for (let i = 0; i < 2000; i++) watch.take(`resourceavailable/r${i}/presence`, 'True');
    for (let i = 0; i < 2000; i++) watch.take(`data/r0/s${i}`, 'v');
    assert.strictEqual(watch.list().length, 500);
    assert.strictEqual(Object.keys(watch.list().find((r) => r.name === 'r0')?.data ?? {}).length, 200);
  });
});

describe('Busbar sidebar: config nodes in a Node-RED runtime', function () {
  const pushes: Pushed[] = [];
  const onComms = (msg: { topic: string; data: ProbeView }): void => {
    if (msg.topic.startsWith('busbar/')) pushes.push({ topic: msg.topic, data: msg.data, at: Date.now() });
  };
  before(async () => {
    await helper.startServer();
    redEvents.on('comms', onComms);
  });
  after(async () => {
    redEvents.removeListener('comms', onComms);
    registry.setOpen(false);
    await helper.stopServer();
  });
  afterEach(async () => {
    registry.setOpen(false);
    pushes.length = 0;
    await helper.unload();
  });

  describe('msb-config against the MSB emulator', () => {
    let emulator: MsbEmulator;
    let url: string;
    beforeEach(async () => {
      emulator = new MsbEmulator({ heartbeatInterval: 0 });
      ({ url } = await emulator.start({ port: 0 }));
    });
    afterEach(() => emulator.close());

    const flow = (): object[] => [
      {
        id: 'svc',
        type: 'msb-config',
        name: 'service one',
        uuid: 'aaaaaaaa-0000-4000-8000-00000000000a',
        description: 'd',
        serviceClass: 'SmartObject',
        url,
        sockJs: true,
        reconnectInterval: 3,
        eventCacheSize: 100,
        eventCacheDurable: false,
        parameters: [],
      },
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'svc',
        eventId: 'TEMP',
        dataType: 'double',
        priority: 'LOW',
        cached: false,
      },
    ];

    it('shows state, counters that move with events, the self-description, and a masked, unwrapped trace', async () => {
      await load(msbNodes as never, flow(), { svc: { token: 'secret-token-1' } });
      const registered = await until(async () => {
        const v = await viewOf('svc');
        return v?.state.phase === 'registered' ? v : undefined;
      }, 'msb-config registered');
      assert.strictEqual(registered.bus, 'msb');
      assert.ok(registered.state.since <= Date.now());
      assert.deepStrictEqual(
        (registered.snapshot.selfDescription as { events: Array<{ eventId: string }> }).events.map((e) => e.eventId),
        ['TEMP'],
      );

      const on = await helper.request().post('/busbar/trace/svc').send({ enabled: true }).expect(200);
      assert.strictEqual(on.body.enabled, true);
      const before = registered.counters;
      (helper.getNode('ev') as unknown as { receive(msg: object): void }).receive({ payload: 21.5 });
      const after = await until(async () => {
        const v = await viewOf('svc');
        return v && v.counters.sent > before.sent && v.counters.acknowledged > before.acknowledged ? v : undefined;
      }, 'sent and acknowledged counters move');
      assert.strictEqual(after.counters.errors, 0);
      const trace = await until(async () => {
        const res = await helper.request().get('/busbar/trace/svc').expect(200);
        const entries = (res.body as { entries: Array<{ direction: string; text: string }> }).entries;
        return entries.some((e) => e.direction === 'in' && e.text === 'IO_PUBLISHED') &&
          entries.some((e) => e.direction === 'out' && e.text.startsWith('E '))
          ? entries
          : undefined;
      }, 'an event out and its IO_PUBLISHED in (unwrapped from a[...])');
      assert.ok(!trace.some((e) => e.text.startsWith('a[')), 'SockJS frames are unwrapped');

      // A re-registration (what a redeploy does) carries the token: it shows masked.
      assert.ok(emulator.dropConnection('aaaaaaaa-0000-4000-8000-00000000000a'));
      await until(async () => {
        const res = await helper.request().get('/busbar/trace/svc').expect(200);
        const entries = (res.body as { entries: Array<{ direction: string; text: string }> }).entries;
        const reg = entries.find((e) => e.direction === 'out' && e.text.startsWith('R '));
        return reg ? reg : undefined;
      }, 'the registration in the trace').then((reg) => {
        assert.ok(!reg.text.includes('secret-token-1'), reg.text);
        assert.match(reg.text, /"token":"\*\*\*"/);
      });
    });

    it('pushes over comms only while the sidebar is open, at most 4 times a second per config node', async () => {
      await load(msbNodes as never, flow());
      await until(async () => (await viewOf('svc'))?.state.phase === 'registered', 'registered');
      const ev = helper.getNode('ev') as unknown as { receive(msg: object): void };
      for (let i = 0; i < 50; i++) ev.receive({ payload: i });
      await until(async () => ((await viewOf('svc'))?.counters.acknowledged ?? 0) >= 50, '50 acknowledged');
      assert.strictEqual(
        pushes.filter((p) => p.topic.startsWith('busbar/node/')).length,
        0,
        'nothing pushed while closed',
      );

      const opened = await helper.request().post('/busbar/sidebar').send({ open: true }).expect(200);
      assert.strictEqual(opened.body.open, true);
      assert.ok((opened.body.nodes as ProbeView[]).some((v) => v.id === 'svc'));
      const t0 = Date.now();
      const flood = setInterval(() => ev.receive({ payload: Math.random() }), 2);
      try {
        await until(
          () => Date.now() - t0 > 1500 && pushes.filter((p) => p.topic === 'busbar/node/svc').length >= 2,
          'pushes while open',
          10000,
        );
      } finally {
        clearInterval(flood);
      }
      const svcPushes = pushes.filter((p) => p.topic === 'busbar/node/svc');
      const span = (svcPushes[svcPushes.length - 1]!.at - svcPushes[0]!.at) / 1000;
      assert.ok(
        svcPushes.length <= Math.ceil(span * (1000 / PUSH_INTERVAL_MS)) + 1,
        `${svcPushes.length} pushes in ${span}s`,
      );
      assert.ok(svcPushes[svcPushes.length - 1]!.data.counters.sent > 50);

      await helper.request().post('/busbar/sidebar').send({ open: false }).expect(200);
      const closedAt = pushes.filter((p) => p.topic.startsWith('busbar/node/')).length;
      const acked = (await viewOf('svc'))!.counters.acknowledged;
      for (let i = 0; i < 20; i++) ev.receive({ payload: i });
      // The positive marker: 20 more events acknowledged, counted while no push went out.
      await until(
        async () => ((await viewOf('svc'))?.counters.acknowledged ?? 0) >= acked + 20,
        '20 more events acknowledged',
      );
      assert.strictEqual(registry.open, false);
      assert.strictEqual(registry.pushing, false, 'the push timer is stopped');
      assert.strictEqual(
        pushes.filter((p) => p.topic.startsWith('busbar/node/')).length,
        closedAt,
        'no pushes after close',
      );
    });
  });

  describe('sg-broker with an sg-resource on a broker', () => {
    let broker: TestBroker;
    before(async () => {
      broker = await startTestBroker();
    });
    after(() => broker.close());

    it('counts publishes, traces topic + payload, and discovers the resources on the broker (ours and others)', async () => {
      const ours = uniqueName('sidebarours');
      const theirs = uniqueName('sidebartheirs');
      const flow = [
        {
          id: 'broker',
          type: 'sg-broker',
          mode: 'external',
          host: broker.host,
          port: broker.port,
          protocol: '3.1.1',
          qos: 1,
          clean: true,
          keepalive: 10,
        },
        {
          id: 'res',
          type: 'sg-resource',
          broker: 'broker',
          resource: ours,
          commands: [{ signal: 'light', echo: true, echoRetained: true, defaultValue: 'False', changeOnly: false }],
          data: [{ signal: 'speed', defaultValue: '0' }],
          wires: [[]],
        },
      ];
      // Another resource on the same broker, published by an independent client.
      const other = await mqtt.connectAsync(broker.url, { clientId: `other-${theirs}` });
      try {
        await other.publishAsync(`resourceavailable/${theirs}/presence`, 'True', { retain: true, qos: 1 });
        await other.publishAsync(`commandavailable/${theirs}/door`, 'True', { retain: true, qos: 1 });
        await load(sgNodes, flow);
        const view = await until(async () => {
          const v = await viewOf('broker');
          return v?.state.phase === 'connected' && v.counters.sent > 0 ? v : undefined;
        }, 'sg-broker connected with the startup publications counted');
        assert.strictEqual(view.bus, 'sg');

        const found = await helper.request().get('/busbar/discover/broker').expect(200);
        const resources = await until(
          async () => {
            const res = (await helper.request().get('/busbar/discover/broker').expect(200)).body as {
              resources: Array<{ name: string; ours: boolean; commands: string[]; data: string[] }>;
            };
            return res.resources.some((r) => r.name === ours) && res.resources.some((r) => r.name === theirs)
              ? res.resources
              : undefined;
          },
          `both resources discovered (first answer ${JSON.stringify(found.body)})`,
        );
        const mine = resources.find((r) => r.name === ours)!;
        const others = resources.find((r) => r.name === theirs)!;
        assert.strictEqual(mine.ours, true);
        assert.strictEqual(others.ours, false);
        assert.deepStrictEqual(others.commands, ['door']);
        assert.ok(mine.data.includes('speed') && mine.commands.includes('light'), JSON.stringify(mine));

        await helper.request().post('/busbar/trace/broker').send({ enabled: true }).expect(200);
        const received = (await viewOf('broker'))!.counters.received;
        await other.publishAsync(`command/${ours}/light`, 'True', { qos: 1 });
        const entries = await until(async () => {
          const res = (await helper.request().get('/busbar/trace/broker').expect(200)).body as {
            entries: Array<{ direction: string; text: string }>;
          };
          return res.entries.some((e) => e.direction === 'in' && e.text === `command/${ours}/light  True`) &&
            res.entries.some((e) => e.direction === 'out' && e.text === `data/${ours}/light  True`)
            ? res.entries
            : undefined;
        }, 'the command in and its echo out in the trace');
        assert.ok(entries.length > 0);
        assert.ok((await viewOf('broker'))!.counters.received > received);

        // The sidebar's detail shows presence and latest values from the watch.
        const detail = await until(async () => {
          const v = await viewOf('broker');
          const rs = (v?.snapshot.resources ?? []) as Array<{
            name: string;
            presence?: boolean;
            data: Record<string, { value?: string }>;
          }>;
          const r = rs.find((x) => x.name === ours);
          return r?.presence === true && r.data.light?.value === 'True' ? r : undefined;
        }, 'our resource present with its latest light value');
        assert.ok(detail);
      } finally {
        await other.publishAsync(`resourceavailable/${theirs}/presence`, '', { retain: true, qos: 1 });
        await other.publishAsync(`commandavailable/${theirs}/door`, '', { retain: true, qos: 1 });
        await other.endAsync();
      }
    });
  });

  describe('mbus-config: two entities on loopback multicast', () => {
    let holder: dgram.Socket;
    beforeEach(async () => {
      holder = dgram.createSocket({ type: 'udp4', reuseAddr: true });
      await new Promise<void>((r) => holder.bind({ port: 0, exclusive: false }, () => r()));
    });
    afterEach(() => holder.close());

    it('shows our address, the entity heard, traffic counters, the trace with header and commands, and destinations', async () => {
      const port = holder.address().port;
      const base = { type: 'mbus-config', port, group: '224.255.222.239', scope: 'HOSTLOCAL', helloMin: 100 };
      const flow = [
        {
          ...base,
          id: 'm1',
          addressElements: [
            { tag: 'app', value: 'sidebar' },
            { tag: 'module', value: 'one' },
          ],
        },
        {
          ...base,
          id: 'm2',
          addressElements: [
            { tag: 'app', value: 'sidebar' },
            { tag: 'module', value: 'two' },
          ],
        },
        {
          id: 'e1',
          type: 'mbus-entity',
          config: 'm1',
          filters: ['sidebar.*'],
          destination: '(app:sidebar module:two)',
          wires: [[], []],
        },
        { id: 'e2', type: 'mbus-entity', config: 'm2', filters: ['sidebar.*'], wires: [[], []] },
      ];
      const key = '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)';
      await load(mbusNodes as never, flow, { m1: { hashKey: key }, m2: { hashKey: key } });
      let last: ProbeView | undefined;
      const v1 = await until(async () => {
        const v = await viewOf('m1');
        const entities = (v?.snapshot.entities ?? []) as Array<{ address: string }>;
        last = v;
        return v?.state.phase === 'connected' &&
          v.counters.sent > 0 &&
          v.counters.received > 0 &&
          entities.some((e) => e.address.startsWith('(app:sidebar module:two'))
          ? v
          : undefined;
      }, 'm1 hears m2').catch((err: Error) => {
        throw new Error(`${err.message}: ${JSON.stringify(last)}`);
      });
      assert.strictEqual(v1.bus, 'mbus');
      assert.match(String(v1.snapshot.address), /^\(app:sidebar module:one/);
      assert.ok(v1.counters.sent > 0 && v1.counters.received > 0, JSON.stringify(v1.counters));

      const dest = (await helper.request().get('/busbar/discover/m1').expect(200)).body as {
        destinations: string[];
        own: string;
      };
      assert.ok(
        dest.destinations.some((d) => d.startsWith('(app:sidebar module:two')),
        JSON.stringify(dest),
      );
      assert.match(dest.own, /^\(app:sidebar module:one/);

      await helper.request().post('/busbar/trace/m2').send({ enabled: true }).expect(200);
      (helper.getNode('e1') as unknown as { receive(msg: object): void }).receive({
        topic: 'sidebar.ping',
        payload: [1, 'two'],
      });
      await until(async () => {
        const res = (await helper.request().get('/busbar/trace/m2').expect(200)).body as {
          entries: Array<{ direction: string; text: string }>;
        };
        return res.entries.some(
          (e) => e.direction === 'in' && /\(app:sidebar module:one/.test(e.text) && /sidebar\.ping/.test(e.text),
        );
      }, "the command in m2's trace with its header");
    });
  });

  it('the plugin module loads in a runtime; reading or switching the trace of an unknown id is a 404', async () => {
    await load([sidebarPlugin] as never, []);
    await helper.request().get('/busbar/nodes').expect(200);
    await helper.request().get('/busbar/trace/nope').expect(404);
    await helper.request().post('/busbar/trace/nope').send({ enabled: true }).expect(404);
  });
});
