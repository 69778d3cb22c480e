// The store-and-forward queue: order, bounds, lending and acknowledgement, and the durable log across restarts,
// torn tails and compaction — on real files in a temporary folder.
import assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { until } from './support/until';
import { Outbox, OutboxEntry } from '../src/common/outbox';

const b = (s: string): Buffer => Buffer.from(s);
const texts = (entries: OutboxEntry[]): string[] => entries.map((e) => e.data.toString());

describe('Outbox', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-outbox-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps order, lends the oldest out and removes only what is acknowledged', async () => {
    const box = new Outbox({ maxEntries: 10, maxBytes: 1000 });
    await box.push(b('a'));
    await box.push(b('b'));
    await box.push(b('c'));
    const first = box.next()!;
    const second = box.next()!;
    assert.deepStrictEqual(texts([first, second]), ['a', 'b']);
    assert.strictEqual(box.inFlight, 2);
    box.ack(second.seq);
    box.rewind();
    assert.deepStrictEqual(texts(box.peekAll()), ['a', 'c']);
    assert.strictEqual(box.next()!.data.toString(), 'a');
    assert.strictEqual(box.ackOldest()!.data.toString(), 'a');
    assert.deepStrictEqual(texts(box.peekAll()), ['c']);
    await box.close();
  });

  it('drops the oldest over the entry and byte bounds and reports each drop', async () => {
    const dropped: string[] = [];
    const box = new Outbox({ maxEntries: 3, maxBytes: 5, onDrop: (e) => dropped.push(e.data.toString()) });
    for (const s of ['1', '2', '3', '4']) await box.push(b(s));
    assert.deepStrictEqual(dropped, ['1']);
    await box.push(b('xyz'));
    assert.deepStrictEqual(dropped, ['1', '2']);
    assert.deepStrictEqual(texts(box.peekAll()), ['3', '4', 'xyz']);
    assert.strictEqual(box.bytes, 5);
    await box.close();
  });

  it('puts unacknowledged sends back in front, in their order', async () => {
    const box = new Outbox({ maxEntries: 10, maxBytes: 1000 });
    await box.push(b('later'));
    await box.requeueFront([b('x'), b('y')]);
    assert.deepStrictEqual(texts(box.peekAll()), ['x', 'y', 'later']);
    await box.requeueFront([b('w')]);
    assert.deepStrictEqual(texts(box.peekAll()), ['w', 'x', 'y', 'later']);
    await box.close();
  });

  it('survives a restart: what was pushed and not acknowledged comes back in order', async () => {
    const file = path.join(dir, 'sub', 'q.log');
    const box = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file });
    for (let i = 0; i < 20; i++) await box.push(b(`e${i}`));
    box.next();
    box.ackOldest(); // e0 delivered
    await box.requeueFront([b('front')]);
    await box.close();
    const again = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file });
    assert.deepStrictEqual(texts(again.peekAll()), ['front', ...Array.from({ length: 19 }, (_, i) => `e${i + 1}`)]);
    await again.push(b('new'));
    assert.strictEqual(texts(again.peekAll()).at(-1), 'new');
    await again.close();
  });

  it('writes an acknowledgement without waiting for the next push or close, so a power cut does not bring it back', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 10, maxBytes: 1000, file });
    for (const s of ['a', 'b', 'c']) await box.push(b(s));
    box.next();
    box.next();
    box.ackOldest();
    box.ackOldest();
    // What a restart right now would find: a copy of the file, read by a second outbox.
    const afterCut = (): string[] => {
      const copy = path.join(dir, `copy-${Math.random()}.log`);
      fs.copyFileSync(file, copy);
      const reader = new Outbox({ maxEntries: 10, maxBytes: 1000, file: copy });
      const left = texts(reader.peekAll());
      void reader.close();
      return left;
    };
    await until(() => afterCut().length === 1, 'the log compacted to one entry', 5000, 10);
    assert.deepStrictEqual(afterCut(), ['c']);
    await box.close();
  });

  it('resolves push only after the entry is in the file, one write for a burst', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 1000, maxBytes: 1 << 20, file });
    await Promise.all(Array.from({ length: 500 }, (_, i) => box.push(b(`burst${i}`))));
    // Read by a second reader while the first is still open: everything acknowledged as written is there.
    const content = fs.readFileSync(file);
    assert.ok(content.includes(b('burst0')) && content.includes(b('burst499')));
    await box.close();
  });

  it('skips a record cut short by a power cut, warns, and appends cleanly after it', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file });
    for (const s of ['one', 'two', 'three']) await box.push(b(s));
    await box.close();
    const size = fs.statSync(file).size;
    fs.truncateSync(file, size - 3); // the last record loses its tail
    const warnings: string[] = [];
    const again = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file, onWarning: (w) => warnings.push(w) });
    assert.deepStrictEqual(texts(again.peekAll()), ['one', 'two']);
    assert.strictEqual(warnings.length, 1);
    assert.match(warnings[0]!, /torn or damaged record/);
    await again.push(b('four'));
    await again.close();
    const third = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file, onWarning: (w) => warnings.push(w) });
    assert.deepStrictEqual(texts(third.peekAll()), ['one', 'two', 'four']);
    assert.strictEqual(warnings.length, 1);
    await third.close();
  });

  it('treats a damaged byte in the middle as the end of the log', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file });
    for (const s of ['aaaa', 'bbbb', 'cccc']) await box.push(b(s));
    await box.close();
    const content = fs.readFileSync(file);
    content[content.indexOf(b('bbbb'))] = 0x42 ^ 0xff;
    fs.writeFileSync(file, content);
    const warnings: string[] = [];
    const again = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file, onWarning: (w) => warnings.push(w) });
    assert.deepStrictEqual(texts(again.peekAll()), ['aaaa']);
    assert.strictEqual(warnings.length, 1);
    await again.close();
  });

  it('empties the file once everything is delivered, and compacts a long log', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 100_000, maxBytes: 1 << 30, file });
    const payload = Buffer.alloc(1000, 0x61);
    for (let round = 0; round < 3; round++) {
      await Promise.all(Array.from({ length: 1000 }, () => box.push(payload)));
      for (let i = 0; i < 999; i++) {
        box.next();
        box.ackOldest();
      }
    }
    await box.push(b('tail'));
    // 3 MB were written, 3 entries are live: compaction kept the file near the live size.
    assert.ok(fs.statSync(file).size < 1 << 20, `file is ${fs.statSync(file).size} bytes`);
    while (box.next()) box.ackOldest();
    await box.close();
    assert.strictEqual(fs.statSync(file).size, 0);
    const again = new Outbox({ maxEntries: 10, maxBytes: 1 << 20, file });
    assert.strictEqual(again.length, 0);
    await again.close();
  });

  it('refuses a second writer on the same file and applies a smaller bound on reopen', async () => {
    const file = path.join(dir, 'q.log');
    const box = new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file });
    assert.throws(() => new Outbox({ maxEntries: 100, maxBytes: 1 << 20, file }), /already open/);
    for (let i = 0; i < 10; i++) await box.push(b(`${i}`));
    await box.close();
    const dropped: string[] = [];
    const small = new Outbox({
      maxEntries: 4,
      maxBytes: 1 << 20,
      file,
      onDrop: (e) => dropped.push(e.data.toString()),
    });
    assert.deepStrictEqual(dropped, ['0', '1', '2', '3', '4', '5']);
    assert.deepStrictEqual(texts(small.peekAll()), ['6', '7', '8', '9']);
    await small.close();
  });
});
