// The MSB client under injected faults, against the in-process emulator: a server that stops answering but keeps
// TCP open, a kill and restart on the same port in the middle of a cached burst, hostile names and deep nesting.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import {
  compileSelfDescription,
  MsbClient,
  MsbClientOptions,
  MsbEmulator,
  PublishOutcome,
  SelfDescription,
} from '../src/msb';
import { poller } from './support/until';

const A = '7a110000-0000-4000-8000-00000000000a';
const until = poller(15000, 10);

function description(): SelfDescription {
  return compileSelfDescription(
    { uuid: A, name: 'faults', serviceClass: 'SmartObject', parameters: [{ name: 'limit', type: 'double', value: 1 }] },
    [{ eventId: 'N', dataFormat: { kind: 'simple', type: 'int32' } }],
    [{ functionId: 'F', dataFormat: { kind: 'simple', type: 'string' } }],
  );
}

/** The dataObjects of every E the emulator received from the service, in arrival order. */
function arrived(emulator: MsbEmulator): number[] {
  return emulator.traffic
    .filter((r) => r.direction === 'in' && r.message.startsWith('E '))
    .map((r) => (JSON.parse(r.message.slice(2)) as { dataObject: number }).dataObject);
}

/** How each publish ended. */
type Outcome = PublishOutcome | 'failed' | 'pending';

describe('msb client under faults', function () {
  this.timeout(40000);
  let emulator: MsbEmulator;
  let url: string;
  let port: number;
  const clients: MsbClient[] = [];
  const make = (opts: Partial<MsbClientOptions> = {}): MsbClient => {
    const c = new MsbClient({
      url,
      minimumReconnectInterval: 50,
      reconnectInterval: 100,
      maxReconnectInterval: 400,
      ...opts,
    });
    c.setSelfDescription(description());
    clients.push(c);
    return c;
  };
  const track = (outcomes: Outcome[], i: number, p: Promise<PublishOutcome>): void => {
    outcomes[i] = 'pending';
    p.then(
      (o) => (outcomes[i] = o),
      () => (outcomes[i] = 'failed'),
    );
  };

  beforeEach(async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 1_000_000 });
    ({ url, port } = await emulator.start({ port: 0 }));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await emulator.close();
  });

  it('a server that stops answering but keeps TCP open is cut; nothing published meanwhile is reported sent and lost', async () => {
    const c = make({ pingInterval: 200 });
    const reasons: string[] = [];
    c.on('state', (state, reason) => reason && reasons.push(reason.code));
    c.connect();
    await until(() => c.registered, 'registration');
    emulator.stall(true);
    const stalledAt = Date.now();
    const uncached: Outcome[] = [];
    const cached: Outcome[] = [];
    // Events keep coming during the stall, until the silence is noticed and the link is cut.
    let i = 0;
    while (!reasons.includes('no-answer')) {
      track(uncached, i, c.publish({ eventId: 'N', dataObject: -1 - i }));
      track(cached, i, c.publish({ eventId: 'N', dataObject: i, cached: true }));
      i++;
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(i < 1000, 'the stall is noticed');
    }
    const noticedAfter = Date.now() - stalledAt;
    await until(
      () => uncached.every((o) => o !== 'pending') && cached.every((o) => o !== 'pending'),
      'every publish answered',
    );
    // Not one event published into the stall was acknowledged: uncached ones failed (done(err)), cached ones are held.
    assert.deepStrictEqual([...new Set(uncached)], ['failed']);
    assert.deepStrictEqual([...new Set(cached)], ['cached']);
    assert.strictEqual(c.cachedEvents, i);
    emulator.stall(false);
    await until(() => c.registered && c.cachedEvents === 0, 'reconnected and the cache replayed');
    const got = arrived(emulator).filter((n) => n >= 0);
    assert.deepStrictEqual(
      [...new Set(got)],
      Array.from({ length: i }, (_, k) => k),
      'every cached event, in order',
    );
    assert.ok(reasons.includes('no-answer'));
    process.stdout.write(
      `      stall noticed after ${noticedAfter} ms (ping every 200 ms); ${i} uncached events failed, ${i} cached held and replayed in order, 0 reported sent and lost\n`,
    );
  });

  for (const durable of [false, true]) {
    it(`kill and restart on the same port during a cached burst: every event arrives in order or is counted as dropped (${durable ? 'durable' : 'memory'} cache)`, async () => {
      const dir = durable ? fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-faults-')) : undefined;
      const c = make({ eventCacheSize: 300, eventCacheFile: dir ? path.join(dir, 'msb.log') : undefined });
      let warningLines = 0;
      c.on('warning', () => warningLines++);
      c.connect();
      await until(() => c.registered, 'registration');
      const total = 3000;
      const outcomes: Outcome[] = [];
      let killed = false;
      const before = emulator;
      for (let i = 0; i < total; i++) {
        track(outcomes, i, c.publish({ eventId: 'N', dataObject: i, cached: true }));
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
        if (i === 600) {
          await emulator.close();
          killed = true;
        }
        if (killed && i === 2400) {
          // The MSB comes back on the same port while the burst goes on.
          emulator = new MsbEmulator({ heartbeatInterval: 0, trafficLimit: 1_000_000, flows: [] });
          await emulator.start({ port });
          killed = false;
        }
      }
      await until(
        () => c.registered && c.cachedEvents === 0 && outcomes.every((o) => o !== 'pending'),
        'burst delivered',
      );
      // Both MSB lives together: what the first one received before the kill, then the second one.
      const all = [...arrived(before), ...arrived(emulator)];
      const firsts: number[] = [];
      const seen = new Set<number>();
      for (const n of all) if (!seen.has(n) && seen.add(n)) firsts.push(n);
      assert.deepStrictEqual(
        firsts,
        [...firsts].sort((x, y) => x - y),
        'first arrivals in publish order',
      );
      const missing = Array.from({ length: total }, (_, k) => k).filter((k) => !seen.has(k));
      const counts = c.counts;
      assert.ok(counts.dropped > 0, 'the cache overflowed during the outage');
      // Nothing vanished unreported: every event that never arrived is counted as dropped (a drop may also hit an
      // event already written but not yet acknowledged, so the count may be a little higher).
      assert.ok(missing.length <= counts.dropped, `${missing.length} missing, ${counts.dropped} counted as dropped`);
      assert.ok(counts.dropped - missing.length <= 500, 'drops beyond the missing ones are bounded by the send window');
      // Every publish ended: acknowledged, held (then delivered), or failed because it was dropped before it was held.
      assert.ok(outcomes.every((o) => o === 'published' || o === 'cached' || o === 'failed'));
      // Event i failed only if it never arrived.
      assert.ok(outcomes.every((o, k) => o !== 'failed' || !seen.has(k)));
      assert.ok(warningLines <= 2, `${warningLines} warning lines for the drops: one per burst`);
      process.stdout.write(
        `      ${durable ? 'durable' : 'memory'}: ${total} published, ${seen.size} arrived (${all.length - seen.size} resent after a lost ack), ${missing.length} missing, ${counts.dropped} counted as dropped, ${warningLines} warning line(s)\n`,
      );
      await c.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });
  }

  it('a cached burst larger than the cache while connected goes straight out: nothing dropped, all acknowledged', async () => {
    const c = make({ eventCacheSize: 10 });
    c.connect();
    await until(() => c.registered, 'registration');
    const outcomes = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => c.publish({ eventId: 'N', dataObject: i, cached: true })),
    );
    assert.deepStrictEqual([...new Set(outcomes)], ['published']);
    assert.strictEqual(c.counts.dropped, 0);
    assert.deepStrictEqual(
      arrived(emulator),
      Array.from({ length: 1000 }, (_, i) => i),
    );
  });

  it('hostile K and C frames: prototype names and 10,000-deep nesting are warned and dropped, nothing else touched', async () => {
    const c = make({ warningInterval: 60000 });
    const warnings: string[] = [];
    const calls: unknown[] = [];
    c.on('warning', (w) => warnings.push(w));
    c.on('call', (call) => calls.push(call));
    c.connect();
    await until(() => c.registered, 'registration');
    const names = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    for (const name of names) emulator.sendStatus(A, `K {"uuid":"${A}","params":{"${name}":{"value":"polluted"}}}`);
    const deep = '['.repeat(10000) + ']'.repeat(10000);
    emulator.sendStatus(A, `K {"uuid":"${A}","params":{"limit":${deep}}}`);
    emulator.sendStatus(A, `C {"uuid":"${A}","functionId":"F","functionParameters":{"dataObject":${deep}}}`);
    emulator.sendRawFrame(
      A,
      `a${JSON.stringify([`C {"uuid":"${A}","functionId":"F","functionParameters":{"dataObject":${deep}}}`])}`,
    );
    await until(() => c.counts.rejected === 7, 'seven rejections');
    assert.strictEqual(
      Object.prototype.hasOwnProperty.call(Object.prototype, 'value'),
      false,
      'Object.prototype untouched',
    );
    assert.strictEqual(({} as Record<string, unknown>).value, undefined);
    assert.strictEqual(typeof {}.toString, 'function');
    assert.deepStrictEqual(calls, []);
    assert.ok(
      warnings.some((w) => /unknown configuration parameter "__proto__"/.test(w)),
      warnings.join('\n'),
    );
    assert.ok(warnings.some((w) => /nested deeper than 64 levels/.test(w)));
    assert.strictEqual(c.parameters.limit, 1);
    assert.ok(c.registered);
    assert.strictEqual(await c.publish({ eventId: 'N', dataObject: 1 }), 'published');
  });

  it('reconnects with backoff from the interval and counts unanswered events in flight', async () => {
    const c = make({ pingInterval: 0 });
    const delays: number[] = [];
    c.on('state', (state, reason) => reason?.retryInMs !== undefined && delays.push(reason.retryInMs));
    c.connect();
    await until(() => c.registered, 'registration');
    await emulator.close();
    await until(() => delays.length >= 4, 'four retries');
    // Equal jitter: each delay in [base/2, base], base doubling from 100 ms up to the 400 ms cap.
    assert.ok(delays[0] >= 50 && delays[0] <= 100, `${delays}`);
    assert.ok(delays[3] >= 200 && delays[3] <= 400, `${delays}`);
    emulator = new MsbEmulator({ heartbeatInterval: 0 });
    await emulator.start({ port });
    await until(() => c.registered, 'registered again');
  });
});
