// A bounded ring of the last frames a connection sent and received, in readable form with secrets masked (off by default).

export type TraceDirection = 'in' | 'out';

export interface TraceEntry {
  /** Milliseconds since the epoch. */
  time: number;
  direction: TraceDirection;
  /** What carried the frame: `ws`, `mqtt`, `udp`. */
  kind: string;
  /** The readable form, masked and cut to `maxEntryChars`. */
  text: string;
}

export interface TraceOptions {
  maxEntries?: number;
  maxBytes?: number;
  maxEntryChars?: number;
}

export const TRACE_DEFAULTS = { maxEntries: 200, maxBytes: 256 * 1024, maxEntryChars: 2048 } as const;

// JSON members or key=value pairs whose name says they hold a secret: their value is replaced, the name stays.
const SECRET_NAME = '(?:token|password|passwd|pass|secret|key|apikey|api_key|credentials?|authorization|auth)';
const JSON_SECRET = new RegExp(`("[\\w.-]*${SECRET_NAME}[\\w.-]*"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|[^,}\\]\\s]+)`, 'gi');
const PAIR_SECRET = new RegExp(
  `(\\b[\\w.-]*${SECRET_NAME}[\\w.-]*\\s*[=:]\\s*)(?!Bearer\\b|Basic\\b)([^\\s&;,"]+)`,
  'gi',
);
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/g;

/** Replaces the values of secret-named fields (tokens, keys, passwords) and bearer credentials with `***`. */
export function maskSecrets(text: string): string {
  return text
    .replace(JSON_SECRET, (_m, name: string) => `${name}"***"`)
    .replace(BEARER, (_m, scheme: string) => `${scheme} ***`)
    .replace(PAIR_SECRET, (_m, name: string) => `${name}***`);
}

/** A SockJS frame in words: `a[...]` unwrapped to its messages, `o`/`h`/`c` named. */
export function readableSockJs(frame: string): string {
  if (frame === 'o') return 'SockJS open';
  if (frame === 'h') return 'SockJS heartbeat';
  if (frame.startsWith('c[')) return `SockJS close ${frame.slice(1)}`;
  if (frame.startsWith('a[') || frame.startsWith('[')) {
    try {
      const parts: unknown = JSON.parse(frame.startsWith('a') ? frame.slice(1) : frame);
      if (Array.isArray(parts) && parts.every((p) => typeof p === 'string')) return parts.join('\n');
    } catch {
      // not SockJS framing after all: shown as it came
    }
  }
  return frame;
}

/** An MQTT publish in words: topic, then the payload as text (or its size when it is not UTF-8 text). */
export function readableMqtt(topic: string, payload: string | Buffer): string {
  if (typeof payload === 'string') return `${topic}  ${payload}`;
  // Only the head is decoded: the trace keeps a few thousand characters of any frame.
  const head = payload.subarray(0, READABLE_BYTES);
  const text = head.toString('utf8');
  // Not UTF-8 text: a replacement character anywhere but in a character cut at the end of the head.
  const bad = text.indexOf('\ufffd');
  const binary = bad !== -1 && !(payload.length > head.length && bad >= text.length - 3);
  return `${topic}  ${binary ? `<${payload.length} bytes>` : text}${payload.length > head.length ? '…' : ''}`;
}

/** Bytes of a binary payload decoded for the trace. */
const READABLE_BYTES = 8192;

export class TraceRing {
  private readonly entries: TraceEntry[] = [];
  private bytes = 0;
  private on = false;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxEntryChars: number;

  constructor(options: TraceOptions = {}) {
    this.maxEntries = Math.max(1, options.maxEntries ?? TRACE_DEFAULTS.maxEntries);
    this.maxBytes = Math.max(256, options.maxBytes ?? TRACE_DEFAULTS.maxBytes);
    this.maxEntryChars = Math.max(16, options.maxEntryChars ?? TRACE_DEFAULTS.maxEntryChars);
  }

  /** Recording costs nothing while off: callers test this before building the readable form. */
  get enabled(): boolean {
    return this.on;
  }

  set enabled(on: boolean) {
    this.on = on;
    if (!on) this.clear();
  }

  get size(): number {
    return this.entries.length;
  }

  get byteSize(): number {
    return this.bytes;
  }

  record(direction: TraceDirection, kind: string, text: string, time = Date.now()): void {
    if (!this.on) return;
    // Cut before masking (a megabyte payload costs no more than a short one), and again after (masking may lengthen).
    const cut = text.length > this.maxEntryChars + 256 ? text.slice(0, this.maxEntryChars + 256) : text;
    let masked = maskSecrets(cut);
    if (masked.length > this.maxEntryChars || cut !== text)
      masked = `${masked.slice(0, this.maxEntryChars)}… (${text.length} chars)`;
    const entry: TraceEntry = { time, direction, kind, text: masked };
    this.entries.push(entry);
    this.bytes += sizeOf(entry);
    while (this.entries.length > this.maxEntries || (this.bytes > this.maxBytes && this.entries.length > 1)) {
      const old = this.entries.shift();
      if (old) this.bytes -= sizeOf(old);
    }
  }

  /** Oldest first; entries after `since` (ms) only, when given. */
  list(since = 0): TraceEntry[] {
    return this.entries.filter((e) => e.time > since);
  }

  clear(): void {
    this.entries.length = 0;
    this.bytes = 0;
  }
}

function sizeOf(entry: TraceEntry): number {
  return entry.text.length * 2 + entry.kind.length * 2 + 32;
}
