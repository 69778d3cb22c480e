// The messages one event-loop turn sends, written as UTF-8 straight into one growing buffer: per message only
// short-lived strings (no heap object per queued event survives until the flush), and per flush one buffer whose
// views are the websocket messages — SockJS frames of several messages each, or one message each on the raw path.

const INITIAL_BYTES = 16 * 1024;
const MAX_HINT_BYTES = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const OPEN = 0x5b; // [
const COMMA = 0x2c; // ,
const CLOSE = 0x5d; // ]

export class OutgoingBatch {
  private bytes: Buffer = EMPTY;
  private used = 0;
  /** Size of the last batch taken: the next buffer starts that big (bounded), so a steady burst rarely grows it. */
  private hint = INITIAL_BYTES;
  /** End offsets of the `count` websocket messages completed so far (kept between batches, only ever grown). */
  private readonly ends: number[] = [];
  private count = 0;
  /** SockJS: where the open frame starts, and how many messages it holds. */
  private frameStart = 0;
  private inFrame = 0;

  /**
   * @param sockJs messages are JSON string literals gathered into SockJS frames (`[m1,m2,…]`) of at most
   *   `maxFrameBytes` each, unless one message alone is bigger; otherwise each message is sent as it is
   */
  constructor(
    private readonly sockJs: boolean,
    private readonly maxFrameBytes: number,
  ) {}

  /** Bytes written so far. */
  get byteLength(): number {
    return this.used;
  }

  get length(): number {
    return this.count + (this.inFrame > 0 ? 1 : 0);
  }

  /** Appends one message in its wire form (under SockJS a JSON string literal). */
  add(wire: string): void {
    const size = Buffer.byteLength(wire);
    if (!this.sockJs) {
      this.reserve(size);
      this.used += this.bytes.write(wire, this.used);
      this.ends[this.count++] = this.used;
      return;
    }
    if (this.inFrame > 0 && this.used - this.frameStart + 1 + size + 1 > this.maxFrameBytes) this.closeFrame();
    this.reserve(size + 2);
    this.bytes[this.used++] = this.inFrame === 0 ? OPEN : COMMA;
    this.used += this.bytes.write(wire, this.used);
    this.inFrame++;
  }

  /** The websocket messages written, in order, as views of one buffer; the batch starts afresh. */
  take(): Buffer[] {
    if (this.inFrame > 0) this.closeFrame();
    const bytes = this.bytes;
    const messages = new Array<Buffer>(this.count);
    let start = 0;
    for (let i = 0; i < this.count; i++) {
      // ends holds the end of each of the count messages; the fallback (an empty view) is never taken.
      const end = this.ends[i] ?? start;
      messages[i] = bytes.subarray(start, end);
      start = end;
    }
    // A fresh buffer next time: what was taken may still be referenced by writes in progress.
    this.hint = Math.max(INITIAL_BYTES, Math.min(this.used, MAX_HINT_BYTES));
    this.reset(EMPTY);
    return messages;
  }

  /** Forgets everything written (the connection is gone). */
  clear(): void {
    this.reset(EMPTY);
  }

  private reset(bytes: Buffer): void {
    this.bytes = bytes;
    this.used = 0;
    this.count = 0;
    this.frameStart = 0;
    this.inFrame = 0;
  }

  private closeFrame(): void {
    this.reserve(1);
    this.bytes[this.used++] = CLOSE;
    this.ends[this.count++] = this.used;
    this.frameStart = this.used;
    this.inFrame = 0;
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.bytes.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.hint, this.used + extra));
    this.bytes.copy(grown, 0, 0, this.used);
    this.bytes = grown;
  }
}
