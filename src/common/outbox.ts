// Store-and-forward: a bounded, ordered queue of outgoing messages, optionally durable in an append-only file.
//
// One module for every bus that must not lose what a flow handed it while the link is down (the MSB event cache,
// the MQTT offline queue). Pure JavaScript: gateways install from the palette on ARM, so no native database.
//
// File format, one record after another, little-endian:
//   u32 payload length | u32 CRC-32 of everything after this field | u8 kind (1 put, 2 delete) | f64 seq | payload
// A put adds `seq`, a delete removes it; the queue on disk is the puts without a delete, ordered by seq. A record
// cut short by a power cut, or one whose CRC does not match, ends the log: it and anything after it is skipped with
// a warning and cut off, so the next append does not land behind garbage.
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import { asError } from './guards';

export interface OutboxOptions {
  /** At most this many entries; pushing more drops the oldest. */
  maxEntries: number;
  /** At most this many payload bytes in all; pushing more drops the oldest. */
  maxBytes: number;
  /** Durable when set: the append-only log file (its folder is created). Memory only when undefined. */
  file?: string;
  /** Hears about every entry dropped to make room (count them; say them once per burst). */
  onDrop?: (entry: OutboxEntry) => void;
  /** Hears about trouble with the file (torn tail skipped, write failed); the queue itself carries on in memory. */
  onWarning?: (text: string) => void;
}

export interface OutboxEntry {
  readonly seq: number;
  readonly data: Buffer;
}

const HEADER = 17; // length + crc + kind + seq
const PUT = 1;
const DELETE = 2;
/** Compact the file when it holds this many times the live bytes (and at least COMPACT_MIN bytes). */
const COMPACT_RATIO = 4;
const COMPACT_MIN = 1 << 20;

/** Files held open by an Outbox in this process: two writers on one log would interleave records. */
const openFiles = new Set<string>();

interface Slot extends OutboxEntry {
  inFlight: boolean;
}

/**
 * Entries leave the queue only through ack() (delivered) or by being dropped for room. next() lends the oldest entry
 * out for sending; rewind() after a lost link makes everything lent out pending again, in its place.
 */
export class Outbox {
  private slots: Slot[] = [];
  private head = 0;
  private liveBytes = 0;
  private nextSeq = 1;
  private readonly file: string | undefined;
  private fd: number | undefined;
  private fileBytes = 0;
  private writeBuffer: Buffer[] = [];
  private writeWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private writing: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: OutboxOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new RangeError(`outbox maxEntries must be a whole number >= 1, not ${options.maxEntries}`);
    }
    if (!(options.maxBytes >= 1)) throw new RangeError(`outbox maxBytes must be >= 1, not ${options.maxBytes}`);
    if (options.file !== undefined) {
      this.file = path.resolve(options.file);
      if (openFiles.has(this.file)) throw new Error(`the store ${this.file} is already open in this process`);
      this.recover(this.file);
      openFiles.add(this.file);
    }
  }

  /** Entries queued, lent out ones included. */
  get length(): number {
    return this.slots.length - this.head;
  }

  /** Payload bytes queued. */
  get bytes(): number {
    return this.liveBytes;
  }

  get durable(): boolean {
    return this.file !== undefined;
  }

  /** Entries lent out by next() and neither acknowledged nor rewound. */
  get inFlight(): number {
    let n = 0;
    for (const slot of this.pending()) if (slot.inFlight) n++;
    return n;
  }

  /**
   * Appends one entry (dropping the oldest when over a bound). The promise resolves once the entry is on disk (at
   * once when memory only); writes that arrive in the same turn share one write and one fdatasync.
   */
  push(data: Buffer): Promise<void> {
    return this.insert([data], false);
  }

  /**
   * Puts entries that were sent but not acknowledged when the link dropped back in front of everything queued, in
   * their order. Bounds apply as for push (the oldest go first, so these are the first dropped).
   */
  requeueFront(datas: Buffer[]): Promise<void> {
    return this.insert(datas, true);
  }

  /** The live entries, oldest first (the slots before `head` are dropped and wait for compaction). */
  private *pending(): IterableIterator<Slot> {
    for (let i = this.head; i < this.slots.length; i++) {
      const slot = this.slots[i];
      if (slot) yield slot;
    }
  }

  /** The oldest entry not lent out yet, now lent out; undefined when there is none. */
  next(): OutboxEntry | undefined {
    for (const slot of this.pending()) {
      if (!slot.inFlight) {
        slot.inFlight = true;
        return slot;
      }
    }
    return undefined;
  }

  /** Delivered: removes the entry. An unknown seq (dropped meanwhile) is ignored. */
  ack(seq: number): void {
    const index = this.indexOf(seq);
    if (index < 0) return;
    const [slot] = this.slots.splice(index, 1);
    if (slot) this.liveBytes -= slot.data.length;
    this.record(DELETE, seq);
    this.afterRemove();
    // Written soon (not synced): without it a delivered entry would stay on disk until the next push and come back
    // after a power cut although it was acknowledged.
    if (this.fd !== undefined) this.scheduleWrite();
  }

  /** Delivered in order (acknowledgements that name no entry): removes the oldest lent-out entry and returns it. */
  ackOldest(): OutboxEntry | undefined {
    for (const slot of this.pending()) {
      if (slot.inFlight) {
        this.ack(slot.seq);
        return slot;
      }
    }
    return undefined;
  }

  /** The link dropped: everything lent out is pending again, in its place. */
  rewind(): void {
    for (const slot of this.pending()) slot.inFlight = false;
  }

  /** Every queued entry, oldest first, without lending them out (for state views and tests). */
  peekAll(): OutboxEntry[] {
    return this.slots.slice(this.head).map(({ seq, data }) => ({ seq, data }));
  }

  /** Finishes pending writes and releases the file. The queue on disk stays for the next open. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushWrites();
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      await new Promise<void>((resolve) => fs.close(fd, () => resolve()));
    }
    if (this.file) openFiles.delete(this.file);
  }

  private insert(datas: Buffer[], front: boolean): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the outbox is closed'));
    if (datas.length === 0) return Promise.resolve();
    const slots: Slot[] = datas.map((data) => ({ seq: 0, data, inFlight: false }));
    if (front) {
      let seq = this.slots[this.head]?.seq ?? this.nextSeq;
      for (let i = slots.length - 1; i >= 0; i--) (slots[i] as { seq: number }).seq = --seq;
      this.slots = [...slots, ...this.slots.slice(this.head)];
      this.head = 0;
    } else {
      for (const slot of slots) {
        (slot as { seq: number }).seq = this.nextSeq++;
        this.slots.push(slot);
      }
    }
    for (const slot of slots) {
      this.liveBytes += slot.data.length;
      this.record(PUT, slot.seq, slot.data);
    }
    this.enforceBounds();
    if (this.fd === undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.writeWaiters.push({ resolve, reject });
      this.scheduleWrite();
    });
  }

  private enforceBounds(): void {
    while (this.length > this.options.maxEntries || (this.liveBytes > this.options.maxBytes && this.length > 1)) {
      const slot = this.slots[this.head];
      if (!slot) break;
      this.head++;
      this.liveBytes -= slot.data.length;
      this.record(DELETE, slot.seq);
      this.options.onDrop?.(slot);
    }
    this.afterRemove();
  }

  private afterRemove(): void {
    // Keep the array from growing without end when entries leave from the front.
    if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
    if (this.length === 0) {
      this.slots = [];
      this.head = 0;
    }
  }

  private indexOf(seq: number): number {
    // Acknowledgements nearly always name the oldest entries: search from the front.
    for (let i = this.head; i < this.slots.length; i++) if (this.slots[i]?.seq === seq) return i;
    return -1;
  }

  private record(kind: number, seq: number, data?: Buffer): void {
    if (this.fd === undefined) return;
    this.writeBuffer.push(encodeRecord(kind, seq, data));
  }

  private scheduleWrite(): void {
    if (this.writing) return;
    this.writing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.writeLoop());
  }

  private async writeLoop(): Promise<void> {
    try {
      while (this.fd !== undefined && (this.writeBuffer.length > 0 || this.writeWaiters.length > 0)) {
        const chunk = Buffer.concat(this.writeBuffer);
        const waiters = this.writeWaiters;
        this.writeBuffer = [];
        this.writeWaiters = [];
        try {
          if (this.length === 0 && this.writeBuffer.length === 0) {
            // Everything delivered: an empty log is the cheapest compaction there is.
            await truncate(this.fd, 0);
            this.fileBytes = 0;
          } else if (
            this.fileBytes + chunk.length > COMPACT_MIN &&
            this.fileBytes + chunk.length > COMPACT_RATIO * this.liveBytes
          ) {
            await this.compact();
          } else {
            await writeAll(this.fd, chunk);
            this.fileBytes += chunk.length;
          }
          if (waiters.length > 0) await datasync(this.fd);
          for (const w of waiters) w.resolve();
        } catch (err) {
          const error = asError(err);
          this.options.onWarning?.(`could not write the store ${this.file}: ${error.message}`);
          for (const w of waiters) w.reject(error);
        }
      }
    } finally {
      this.writing = undefined;
    }
    if (this.writeBuffer.length > 0 || this.writeWaiters.length > 0) this.scheduleWrite();
  }

  /** Rewrites the log as just the live entries: written to a new file, synced, then renamed over the old one. */
  private async compact(): Promise<void> {
    const file = this.file!;
    const tmp = `${file}.compact`;
    const chunk = Buffer.concat(this.slots.slice(this.head).map((s) => encodeRecord(PUT, s.seq, s.data)));
    await fs.promises.writeFile(tmp, chunk);
    const tmpFd = await fs.promises.open(tmp, 'r+');
    try {
      await tmpFd.datasync();
    } finally {
      await tmpFd.close();
    }
    await fs.promises.rename(tmp, file);
    const old = this.fd!;
    this.fd = fs.openSync(file, 'a');
    fs.close(old, () => undefined);
    this.fileBytes = chunk.length;
  }

  /** The write in progress (read through a call: a field narrowed to undefined above may be set again). */
  private pendingWrite(): Promise<void> | undefined {
    return this.writing;
  }

  private async flushWrites(): Promise<void> {
    while (this.writing) await this.writing;
    if (this.fd !== undefined && this.writeBuffer.length > 0) {
      this.scheduleWrite();
      await this.pendingWrite();
    }
  }

  /** Reads what a previous run left, skipping a torn or corrupt tail, and opens the log for appending. */
  private recover(file: string): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    let content: Buffer;
    try {
      content = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      content = Buffer.alloc(0);
    }
    const live = new Map<number, Buffer>();
    let offset = 0;
    while (offset < content.length) {
      const rest = content.length - offset;
      if (rest < HEADER) break;
      const length = content.readUInt32LE(offset);
      if (length > rest - HEADER) break;
      const body = content.subarray(offset + 8, offset + HEADER + length);
      if (crc32(body) !== content.readUInt32LE(offset + 4)) break;
      const kind = body[0];
      const seq = body.readDoubleLE(1);
      if (kind === PUT) live.set(seq, Buffer.from(body.subarray(9)));
      else if (kind === DELETE) live.delete(seq);
      else break;
      offset += HEADER + length;
    }
    if (offset < content.length) {
      this.options.onWarning?.(
        `the store ${file} ends in a torn or damaged record: skipped its last ${content.length - offset} bytes`,
      );
      fs.truncateSync(file, offset);
    }
    const seqs = [...live.keys()].sort((a, b) => a - b);
    for (const seq of seqs) {
      const data = live.get(seq)!;
      this.slots.push({ seq, data, inFlight: false });
      this.liveBytes += data.length;
    }
    const last = seqs[seqs.length - 1];
    if (last !== undefined) this.nextSeq = last + 1;
    this.fd = fs.openSync(file, 'a');
    this.fileBytes = offset;
    // A smaller bound than last time applies at once; the dropped entries are reported like any other drop.
    this.enforceBounds();
    if (this.writeBuffer.length > 0) this.scheduleWrite();
  }
}

function encodeRecord(kind: number, seq: number, data?: Buffer): Buffer {
  const length = data ? data.length : 0;
  const record = Buffer.allocUnsafe(HEADER + length);
  record.writeUInt32LE(length, 0);
  record[8] = kind;
  record.writeDoubleLE(seq, 9);
  if (data) data.copy(record, HEADER);
  record.writeUInt32LE(crc32(record.subarray(8)), 4);
  return record;
}

function writeAll(fd: number, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (offset: number): void => {
      if (offset >= chunk.length) return resolve();
      fs.write(fd, chunk, offset, chunk.length - offset, null, (err, written) =>
        err ? reject(err) : step(offset + written),
      );
    };
    step(0);
  });
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function truncate(fd: number, size: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, size, (err) => (err ? reject(err) : resolve())));
}
