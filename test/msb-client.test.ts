// The MSB client against the emulator on loopback: registration, events, calls, K, ping, cache, reconnect, close.
import assert from 'assert';
import { once } from 'events';
import WebSocket from 'ws';
import {
  compileSelfDescription,
  MsbClient,
  MsbClientOptions,
  MsbEmulator,
  MsbNotRegisteredError,
  SelfDescription,
} from '../src/msb';
import { poller } from './support/until';

const A = '11111111-2222-4333-8444-555555555555';
const B = '11111111-2222-4333-8444-666666666666';

function description(uuid: string, name = 'svc'): SelfDescription {
  return compileSelfDescription(
    {
      uuid,
      name,
      serviceClass: 'SmartObject',
      token: 'tok',
      parameters: [{ name: 'threshold', type: 'double', value: 1.5 }],
    },
    [
      { eventId: 'PING', dataFormat: { kind: 'simple', type: 'string' } },
      { eventId: 'ANSWER', dataFormat: { kind: 'simple', type: 'string' } },
    ],
    [{ functionId: 'ASK', dataFormat: { kind: 'simple', type: 'string' }, responseEvents: ['ANSWER'] }],
  );
}

const until = poller(5000, 10);

describe('msb client with the emulator', () => {
  let emulator: MsbEmulator;
  let url: string;
  const clients: MsbClient[] = [];
  const make = (opts: Partial<MsbClientOptions> = {}, uuid = A): MsbClient => {
    const c = new MsbClient({ url, minimumReconnectInterval: 50, reconnectInterval: 100, ...opts });
    c.setSelfDescription(description(uuid));
    clients.push(c);
    return c;
  };
  const registered = async (c: MsbClient): Promise<void> => {
    await until(() => c.registered, 'registration');
  };

  beforeEach(async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 20 });
    ({ url } = await emulator.start({ port: 0 }));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await emulator.close();
  });

  for (const sockJs of [true, false]) {
    it(`registers and publishes over ${sockJs ? 'SockJS' : 'the raw path'}`, async () => {
      const c = make({ sockJs });
      c.connect();
      await registered(c);
      assert.deepStrictEqual(emulator.services().get(A), description(A));
      assert.strictEqual(
        await c.publish({ eventId: 'PING', dataObject: 'hi "there"', priority: 2, correlationId: 'c-1' }),
        'published',
      );
      const e = await emulator.waitFor((r) => r.message.startsWith('E '));
      const body = JSON.parse(e.message.slice(2));
      assert.strictEqual(body.uuid, A);
      assert.strictEqual(body.dataObject, 'hi "there"');
      assert.strictEqual(body.priority, 2);
      assert.strictEqual(body.correlationId, 'c-1');
      assert.match(body.postDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      await emulator.waitFor((r) => r.message === 'IO_PUBLISHED');
    });
  }

  it('coalesces a burst into SockJS frames of at most 8000 bytes, in order', async () => {
    const c = make();
    c.connect();
    await registered(c);
    const frames: string[] = [];
    const ws = (c as unknown as { ws: { send(data: string): void } }).ws;
    const original = ws.send.bind(ws);
    ws.send = (data: string) => {
      frames.push(data);
      original(data);
    };
    for (let i = 0; i < 300; i++) void c.publish({ eventId: 'PING', dataObject: `event ${i} ${'x'.repeat(40)}` });
    await until(() => emulator.traffic.filter((r) => r.message.startsWith('E ')).length === 300, 'all events');
    assert.ok(frames.length > 1 && frames.length < 300, `${frames.length} frames`);
    assert.ok(
      frames.every((f) => Buffer.byteLength(f) <= 8000),
      'frame size bound',
    );
    const sent = emulator.traffic
      .filter((r) => r.message.startsWith('E '))
      .map((r) => String(JSON.parse(r.message.slice(2)).dataObject).split(' ')[1]);
    assert.deepStrictEqual(
      sent,
      Array.from({ length: 300 }, (_, i) => String(i)),
    );
  });

  it('routes an event through an integration flow into a function call, propagating or generating correlationIds', async () => {
    emulator.addFlow({
      source: { uuid: A, eventId: 'PING' },
      target: { uuid: B, functionId: 'ASK' },
      mapping: [{ from: '/dataObject', to: '/question' }],
    });
    const a = make();
    const b = make({}, B);
    a.connect();
    b.connect();
    await Promise.all([registered(a), registered(b)]);
    const calls: unknown[] = [];
    b.on('call', (call) => calls.push(call));
    void a.publish({ eventId: 'PING', dataObject: 'why?', correlationId: 'corr-42' });
    void a.publish({ eventId: 'PING', dataObject: 'and?' });
    await until(() => calls.length === 2, 'two calls');
    const [first, second] = calls as Array<{
      functionId: string;
      correlationId: string;
      functionParameters: Record<string, unknown>;
    }>;
    assert.deepStrictEqual(
      { ...first },
      { uuid: B, correlationId: 'corr-42', functionId: 'ASK', functionParameters: { question: 'why?' } },
    );
    assert.match(second.correlationId, /^[0-9a-f-]{36}$/);
    assert.deepStrictEqual(second.functionParameters, { question: 'and?' });
  });

  it('answers ping with pong, ignores heartbeats, and reports NIO errors in words', async () => {
    const c = make();
    c.connect();
    await registered(c);
    emulator.ping(A);
    await emulator.waitFor((r) => r.direction === 'in' && r.message === 'pong');
    const nio: string[] = [];
    c.on('nio', (keyword, meaning) => nio.push(`${keyword}: ${meaning}`));
    emulator.sendStatus(A, 'NIO_EVENT_FORWARDING_ERROR');
    await until(() => nio.length === 1, 'nio');
    assert.deepStrictEqual(nio, ['NIO_EVENT_FORWARDING_ERROR: event could not be forwarded']);
    assert.ok(c.registered);
  });

  it('drops malformed messages from the MSB with a warning per burst and reason, counted, and keeps running', async () => {
    const c = make({ warningInterval: 300 });
    const warnings: string[] = [];
    c.on('warning', (w) => warnings.push(w));
    c.connect();
    await registered(c);
    emulator.sendStatus(A, 'C {"functionId": broken');
    emulator.sendStatus(A, 'C {"uuid":"x"}');
    emulator.sendStatus(A, 'K {"uuid":"someone-else","params":{"threshold":3}}');
    emulator.sendStatus(A, '%%%');
    await until(() => c.counts.rejected === 4, 'four rejections counted');
    // The first of each reason at once; the rest of the burst as one counted line when the interval ends.
    await until(() => warnings.length === 3, 'three warnings');
    assert.match(warnings[0], /malformed message.*C message body is not valid JSON/);
    assert.match(warnings[1], /configuration message for another service/);
    assert.match(warnings[2], /malformed message.*\(2 times in the last 0.3 s\)/);
    assert.ok(c.registered);
    assert.strictEqual(await c.publish({ eventId: 'PING', dataObject: 'still here' }), 'published');
  });

  it('applies K to known parameters, re-registers with the new values and reports the change', async () => {
    const c = make();
    c.connect();
    await registered(c);
    const changes: unknown[] = [];
    c.on('configuration', (change) => changes.push(change));
    const before = emulator.traffic.filter((r) => r.message.startsWith('R ')).length;
    emulator.sendConfiguration(A, { threshold: '2.5', unknown: 1 });
    await until(() => changes.length === 1, 'configuration');
    assert.deepStrictEqual(changes[0], { parameters: { threshold: 2.5 }, changed: { threshold: 2.5 } });
    await until(
      () => emulator.traffic.filter((r) => r.message.startsWith('R ')).length === before + 1,
      're-registration',
    );
    const sd = emulator.services().get(A) as unknown as SelfDescription;
    assert.strictEqual(sd.configuration.parameters.threshold.value, 2.5);
    // A later redeploy keeps the value the MSB set.
    c.setSelfDescription(description(A, 'renamed'));
    assert.strictEqual(c.parameters.threshold, 2.5);
  });

  it('rejects a second connection of the same uuid with NIO_ALREADY_CONNECTED', async () => {
    const first = make();
    first.connect();
    await registered(first);
    const second = make({ autoReconnect: false });
    const nio: string[] = [];
    second.on('nio', (k) => nio.push(k));
    second.connect();
    await until(() => second.state === 'disconnected' && nio.length > 0, 'rejection');
    assert.deepStrictEqual(nio, ['NIO_ALREADY_CONNECTED']);
    assert.ok(first.registered);
  });

  it('fails publishing unregistered without cache, and flushes cached events in order after IO_REGISTERED', async () => {
    const warnings: string[] = [];
    const c = make({ eventCacheSize: 3 });
    c.on('warning', (w) => warnings.push(w));
    await assert.rejects(c.publish({ eventId: 'PING', dataObject: 'lost' }), MsbNotRegisteredError);
    for (let i = 1; i <= 5; i++)
      assert.strictEqual(await c.publish({ eventId: 'PING', dataObject: `m${i}`, cached: true }), 'cached');
    assert.strictEqual(warnings.length, 1, 'one warning for the burst of drops');
    assert.match(warnings[0], /event cache full \(3 events\): dropped the oldest/);
    assert.strictEqual(c.counts.dropped, 2);
    c.connect();
    await registered(c);
    await until(() => emulator.traffic.filter((r) => r.message.startsWith('E ')).length === 3, 'flush');
    const sent = emulator.traffic
      .filter((r) => r.message.startsWith('E '))
      .map((r) => JSON.parse(r.message.slice(2)).dataObject);
    assert.deepStrictEqual(sent, ['m3', 'm4', 'm5']);
    assert.strictEqual(c.cachedEvents, 0);
    const reg = emulator.traffic.findIndex((r) => r.message === 'IO_REGISTERED');
    const firstEvent = emulator.traffic.findIndex((r) => r.message.startsWith('E '));
    assert.ok(reg < firstEvent, 'events go out only after IO_REGISTERED');
  });

  it('reconnects on a fresh SockJS session after the server kills the connection, and re-registers', async () => {
    const c = make();
    const sessions: string[] = [];
    emulator.on('connection', (s) => sessions.push(s));
    c.connect();
    await registered(c);
    emulator.dropConnection(A);
    await until(() => c.state !== 'registered', 'drop');
    await assert.rejects(c.publish({ eventId: 'PING', dataObject: 'x' }), /not registered/);
    await registered(c);
    assert.strictEqual(sessions.length, 2);
    assert.strictEqual(emulator.traffic.filter((r) => r.message.startsWith('R ')).length, 2);
    assert.strictEqual(await c.publish({ eventId: 'PING', dataObject: 'again' }), 'published');
  });

  it('NIO_UNAUTHORIZED_CONNECTION and a SockJS c-frame end the session; the client reconnects and registers again', async () => {
    const c = make();
    const warnings: string[] = [];
    c.on('warning', (w) => warnings.push(w));
    c.connect();
    await registered(c);
    const registrations = (): number => emulator.traffic.filter((r) => r.message.startsWith('R ')).length;
    emulator.sendStatus(A, 'NIO_UNAUTHORIZED_CONNECTION');
    await until(() => registrations() === 2 && c.registered, 'registration after NIO_UNAUTHORIZED_CONNECTION');
    emulator.closeSession(A);
    await until(() => registrations() === 3 && c.registered, 'registration after c[3000,"Go away!"]');
    assert.ok(
      warnings.some((w) => /MSB closed the session: 3000 Go away!/.test(w)),
      warnings.join('; '),
    );
  });

  it('close releases the socket and the reconnect timer (no handle left behind)', async () => {
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const baseline = handles();
    const c = make();
    c.connect();
    await registered(c);
    const gone = once(emulator, 'disconnect');
    await c.close();
    await gone;
    assert.strictEqual(emulator.sessionCount, 0);
    // A client waiting to reconnect also stops cleanly.
    const d = make({ url: 'ws://127.0.0.1:1' });
    d.connect();
    await until(() => d.state === 'disconnected', 'refused');
    await d.close();
    assert.strictEqual(d.state, 'closed');
    await until(() => handles() <= baseline, `active handles back to ${baseline} (now ${handles()})`);
  });

  it('reports a rejected registration (NIO_REGISTRATION_ERROR) and stays connected, unregistered', async () => {
    await emulator.close();
    emulator = new MsbEmulator({ heartbeatInterval: 0, acceptedTokens: ['the-right-token'] });
    ({ url } = await emulator.start({ port: 0 }));
    const c = make();
    const nio: string[] = [];
    c.on('nio', (k, meaning) => nio.push(`${k}: ${meaning}`));
    c.connect();
    await until(() => nio.length === 1, 'rejection');
    assert.deepStrictEqual(nio, ['NIO_REGISTRATION_ERROR: registration rejected by the MSB']);
    assert.strictEqual(c.state, 'connected');
    await assert.rejects(c.publish({ eventId: 'PING', dataObject: 'x' }), /not registered/);
  });

  it('the emulator rejects invalid registrations and events from unregistered sessions', async () => {
    const ws = new WebSocket(`${url}/websocket/data/websocket`);
    const got: string[] = [];
    ws.on('message', (d) => got.push(d.toString()));
    await once(ws, 'open');
    ws.send('E {"uuid":"x","eventId":"E"}');
    ws.send('R {"uuid":"x"}');
    ws.send('R not json');
    await until(() => got.length === 4, 'answers');
    assert.deepStrictEqual(got, [
      'IO_CONNECTED',
      'NIO_UNAUTHORIZED_CONNECTION',
      'NIO_REGISTRATION_ERROR',
      'NIO_REGISTRATION_ERROR',
    ]);
    ws.close();
    await once(ws, 'close');
  });
});
