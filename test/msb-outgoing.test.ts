// The bytes one flush sends: every message once, in order, SockJS frames within the size bound, UTF-8 intact.
import assert from 'assert';
import { OutgoingBatch } from '../src/msb/outgoing';

function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = ['a', 'xyz', '"', '\\', 'ü', '€', '😀', '\n', 'E {"uuid":"u","eventId":"V","dataObject":1.5}'];

function message(next: () => number): string {
  const long = next() < 0.02;
  let s = '';
  const n = long ? 3000 + Math.floor(next() * 3000) : Math.floor(next() * 40);
  for (let i = 0; i < n; i++) s += PIECES[Math.floor(next() * PIECES.length)];
  return s;
}

describe('msb outgoing batch', () => {
  it('SockJS: 200 seeded batches come out as frames of at most 8000 bytes (one message alone may be bigger), in order', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const next = random(seed);
      const batch = new OutgoingBatch(true, 8000);
      for (let round = 0; round < 3; round++) {
        const sent = Array.from({ length: Math.floor(next() * 300) }, () => message(next));
        for (const m of sent) batch.add(JSON.stringify(m));
        const frames = batch.take();
        assert.strictEqual(batch.length, 0);
        const got: string[] = [];
        for (const frame of frames) {
          const parts = JSON.parse(frame.toString('utf8')) as string[];
          assert.ok(parts.length >= 1, `seed ${seed}: no empty frame`);
          assert.ok(
            frame.length <= 8000 || parts.length === 1,
            `seed ${seed}: frame of ${frame.length} bytes holds ${parts.length} messages`,
          );
          got.push(...parts);
        }
        assert.deepStrictEqual(got, sent, `seed ${seed}, round ${round}`);
        // Filling frames: no two neighbours would have fitted into one.
        for (let i = 1; i < frames.length; i++) {
          const firstOfNext = Buffer.byteLength(JSON.stringify((JSON.parse(frames[i].toString()) as string[])[0]));
          assert.ok(frames[i - 1].length + 1 + firstOfNext > 8000, `seed ${seed}: frame ${i - 1} closed early`);
        }
      }
    }
  });

  it('raw path: every message is its own websocket message, byte for byte', () => {
    const next = random(7);
    const batch = new OutgoingBatch(false, 8000);
    const sent = Array.from({ length: 2000 }, () => message(next));
    for (const m of sent) batch.add(m);
    assert.strictEqual(batch.length, 2000);
    assert.deepStrictEqual(
      batch.take().map((b) => b.toString('utf8')),
      sent,
    );
    assert.deepStrictEqual(batch.take(), []);
  });

  it('what was taken stays intact while the next batch is written', () => {
    const batch = new OutgoingBatch(false, 8000);
    batch.add('first');
    const taken = batch.take();
    batch.add('second, longer');
    batch.clear();
    batch.add('third');
    assert.strictEqual(taken[0].toString(), 'first');
    assert.deepStrictEqual(batch.take().map(String), ['third']);
  });
});
