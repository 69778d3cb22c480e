// The MSB websocket client: connect (SockJS or raw), register the self-description, publish events (through the
// event cache when asked), receive function calls and configuration changes, answer pings, watch liveness, reconnect.
import { EventEmitter } from 'events';
import { randomInt, randomUUID } from 'crypto';
import type { Duplex } from 'stream';
import type { ConnectionOptions } from 'tls';
import type WebSocket from 'ws';
import { Outbox, OutboxEntry } from '../common/outbox';
import { RetryTimer } from '../common/backoff';
import { BurstCounter } from '../common/warn';
import { lazy } from '../common/lazy';
import { EventFields, EventHead, EventTemplate, msbNow, Priority } from './event-message';
import { decodeServerFrame, parseMessage } from './framing';
import { OutgoingBatch } from './outgoing';
import { coerceParameterValue, ConfigParameterValue, SelfDescription, simpleTypeOfParameter } from './selfdescription';
import { isRecord } from '../common/guards';

/** ws is loaded by the first connect, not by Node-RED's start. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see lazy), not at start
const WebSocketClass = lazy(() => require('ws') as typeof import('ws'));

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'registered' | 'closed';
export type { Priority };

/** Every status keyword the MSB websocket interface sends, with what it means in words. */
export const STATUS_KEYWORDS: Record<string, string> = {
  IO: 'ok',
  NIO: 'not ok',
  IO_CONNECTED: 'connected',
  IO_REGISTERED: 'registered',
  IO_PUBLISHED: 'event published',
  NIO_ALREADY_CONNECTED: 'a service with this uuid is already connected',
  NIO_REGISTRATION_ERROR: 'registration rejected by the MSB',
  NIO_UNEXPECTED_REGISTRATION_ERROR: 'unexpected registration error in the MSB',
  NIO_UNAUTHORIZED_CONNECTION: 'unauthorized connection (not registered)',
  NIO_EVENT_FORWARDING_ERROR: 'event could not be forwarded',
  NIO_UNEXPECTED_EVENT_FORWARDING_ERROR: 'unexpected event forwarding error in the MSB',
};

export interface MsbClientOptions {
  /** `ws://`, `wss://`, `http://` or `https://` host and port, optionally already ending in `/websocket/data`. */
  url: string;
  /** SockJS framing (default) or the raw websocket path. */
  sockJs?: boolean;
  autoReconnect?: boolean;
  /** Milliseconds before the first reconnect attempt; default 10000, never below `minimumReconnectInterval`. */
  reconnectInterval?: number;
  /** The floor for `reconnectInterval`; 3000 ms like the official clients. Tests may lower it. */
  minimumReconnectInterval?: number;
  /** Reconnect attempts back off exponentially (with jitter) up to this many ms. Default 60000. */
  maxReconnectInterval?: number;
  /** Size of the event cache in events; 0 disables it. Default 1000. */
  eventCacheSize?: number;
  /** Payload bytes the event cache may hold in all. Default 16 MiB. */
  eventCacheBytes?: number;
  /** Keep the event cache in this append-only file (durable across restarts); memory only when undefined. */
  eventCacheFile?: string;
  /** RFC 6455 ping every this many ms; no inbound frame for two intervals ends the connection. 0 = off. Default 15000. */
  pingInterval?: number;
  /** Repeated warnings of one kind are reported at most once per this many ms, with a count. Default 10000. */
  warningInterval?: number;
  /** Passed to the TLS connection (ca, cert, key, passphrase, servername, …). Verification stays on unless … */
  tls?: ConnectionOptions;
  /** … this is set: accept self-signed certificates and any hostname. */
  allowUnverifiedTls?: boolean;
  /** Opening handshake timeout in ms (default 10000). */
  handshakeTimeout?: number;
}

export interface PublishFields extends EventFields {
  /** Keep the event in the cache until the MSB acknowledges it (instead of failing when it cannot be delivered). */
  cached?: boolean;
}

export interface PublishRequest extends PublishFields {
  eventId: string;
}

/** How a publish ended: acknowledged by IO_PUBLISHED, or held in the event cache (durably when it has a file). */
export type PublishOutcome = 'published' | 'cached';

/** Called once per publish: `(undefined, outcome)`, or `(error)` when the event was not delivered and is not cached. */
export type PublishCallback = (err: Error | undefined, outcome?: PublishOutcome) => void;

export interface FunctionCall {
  uuid: string;
  functionId: string;
  correlationId?: string;
  functionParameters: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ConfigurationChange {
  /** Every parameter's current value. */
  parameters: Record<string, unknown>;
  /** Only the parameters this `K` changed. */
  changed: Record<string, unknown>;
}

/** Why the client is not connected, as data: the node maps `code` to status text. */
export interface DisconnectReason {
  code: 'unreachable' | 'no-answer' | 'already-connected' | 'unauthorized' | 'closed-by-msb' | 'lost' | 'bad-url';
  /** Words from the transport (e.g. ECONNREFUSED, the close reason); may be empty. */
  detail: string;
  /** Milliseconds until the next attempt, when one is scheduled. */
  retryInMs?: number;
}

/** What the client holds and has lost, for state views and status text. */
export interface ClientCounts {
  /** Events in the event cache (sent-but-unacknowledged cached events included). */
  cached: number;
  /** Cached events dropped to make room, since start. */
  dropped: number;
  /** Events written to the MSB and not yet answered. */
  unacknowledged: number;
  /** Frames and messages from the MSB that were rejected (malformed, unknown names, too deep), since start. */
  rejected: number;
}

export interface MsbClientEvents {
  state: [state: ClientState, reason: DisconnectReason | undefined];
  /** Every status keyword received (IO_*, NIO_*, …). */
  status: [keyword: string];
  /** A NIO_* keyword, its meaning, and the eventId it answers when it answers an event. */
  nio: [keyword: string, meaning: string, eventId: string | undefined];
  published: [eventId: string | undefined];
  call: [call: FunctionCall];
  configuration: [change: ConfigurationChange];
  /** Something dropped or odd that the user should hear about, at most once per burst; the client keeps running. */
  warning: [message: string];
}

export class MsbNotRegisteredError extends Error {
  constructor(eventId: string, reason: string) {
    super(`event "${eventId}" not sent: ${reason}`);
    this.name = 'MsbNotRegisteredError';
  }
}

/** The websocket URL to open: a fresh SockJS server/session path on every call, or the raw path. */
export function connectionUrl(url: string, sockJs: boolean): string {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new Error(`MSB URL ${JSON.stringify(url)} is not a URL; use ws://host:8085 or wss://host:8084`);
  }
  const schemes: Record<string, string> = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };
  const scheme = schemes[parsed.protocol];
  if (!scheme) throw new Error(`MSB URL must start with ws://, wss://, http:// or https://, not ${parsed.protocol}//`);
  let path = parsed.pathname.replace(/\/+$/, '');
  if (!path.endsWith('/websocket/data')) path += '/websocket/data';
  const tail = sockJs ? `/${randomInt(100, 1000)}/${randomUUID().replace(/-/g, '')}/websocket` : '/websocket';
  return `${scheme}//${parsed.host}${path}${tail}`;
}

/** Milliseconds-precision UTC timestamp as the MSB expects: `YYYY-MM-DDTHH:mm:ss.sssZ` (now when no date). */
export function msbDate(date?: Date): string {
  return date ? date.toISOString() : msbNow();
}

const PRIORITIES: Record<string, Priority> = { LOW: 0, MEDIUM: 1, HIGH: 2, '0': 0, '1': 1, '2': 2 };

/** LOW/MEDIUM/HIGH (any case) or 0/1/2 -> the wire integer; undefined when not a priority. */
export function parsePriority(value: unknown): Priority | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  return PRIORITIES[String(value).trim().toUpperCase()];
}

/** A Date, epoch milliseconds or a parsable date string -> `YYYY-MM-DDTHH:mm:ss.sssZ`; undefined when invalid. */
export function parsePostDate(value: unknown): string | undefined {
  const date =
    value instanceof Date
      ? value
      : typeof value === 'number' || typeof value === 'string'
        ? new Date(value)
        : undefined;
  return date && !Number.isNaN(date.getTime()) ? msbDate(date) : undefined;
}

const MAX_FRAME_BYTES = 8000;
/** Queued bytes that are sent without waiting for the end of the event-loop turn. */
const FLUSH_BYTES = 64 * 1024;
/** ws.send options for UTF-8 Buffers that are text messages (the MSB takes text frames only). */
const TEXT = { binary: false };
const PUBLISHED_SOCKJS = 'a["IO_PUBLISHED"]';
/** Cached events lent out to the socket at once; more follow as acknowledgements arrive. */
const SEND_WINDOW = 500;
/** Events awaiting IO_PUBLISHED before new ones are refused or cached (liveness cuts a stalled MSB long before). */
const MAX_UNACKNOWLEDGED = 100000;
/** Nesting depth of a C or K body beyond which it is rejected (like the Mbus codec). */
export const MAX_NESTING_DEPTH = 64;
/** Largest websocket message accepted from the MSB. */
const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
/** How long close() waits for outstanding acknowledgements before it closes the socket. */
const CLOSE_GRACE_MS = 1000;

/**
 * An event written to the socket and awaiting IO_PUBLISHED/NIO_*: lent out of the cache (seq), a cached event sent
 * straight away because the cache was empty (direct; back into the cache if the link drops), or an uncached one.
 */
type InFlight =
  { seq: number; data: Buffer } | { direct: Buffer } | { template: EventTemplate; callback: PublishCallback };

/** A cached publish whose outcome is not decided yet. */
interface CachedWaiter {
  eventId: string;
  durable: boolean;
  callback: PublishCallback;
}

export class MsbClient extends EventEmitter<MsbClientEvents> {
  readonly sockJs: boolean;
  readonly autoReconnect: boolean;
  readonly reconnectInterval: number;
  private readonly cache: Outbox | undefined;
  private readonly waiters = new Map<Buffer, CachedWaiter>();
  private inFlight = new Fifo<InFlight>();
  private cachedInFlight = 0;
  private dropped = 0;
  private readonly retry: RetryTimer;
  private readonly warnings: BurstCounter;
  private readonly warningDetail = new Map<string, string>();
  private ws: WebSocket | undefined;
  /** The TCP (or TLS) socket under `ws`, from its upgrade response: corked while a flush writes its frames. */
  private socket: Duplex | undefined;
  /** `E {"uuid":…,` of the registered service, built when the uuid changes. */
  private head = new EventHead(undefined);
  private liveness: NodeJS.Timeout | undefined;
  private closeReason: DisconnectReason | undefined;
  private currentState: ClientState = 'disconnected';
  private selfDescription: SelfDescription | undefined;
  private lastRegistered: string | undefined;
  private sessionUp = false;
  private userClosed = false;
  private closing: Promise<void> | undefined;
  private readonly overrides = new Map<string, unknown>();
  private readonly outgoing: OutgoingBatch;
  private flushTimer: NodeJS.Immediate | undefined;
  private opening = true;

  constructor(private readonly options: MsbClientOptions) {
    super();
    connectionUrl(options.url, true); // fail fast on a bad URL
    this.sockJs = options.sockJs ?? true;
    // Servlet containers buffer text messages to a limit (Tomcat: 8 KiB) and close the session beyond it.
    this.outgoing = new OutgoingBatch(this.sockJs, MAX_FRAME_BYTES);
    this.autoReconnect = options.autoReconnect ?? true;
    const floor = options.minimumReconnectInterval ?? 3000;
    this.reconnectInterval = Math.max(floor, options.reconnectInterval ?? 10000);
    this.retry = new RetryTimer({
      initialMs: this.reconnectInterval,
      maxMs: Math.max(this.reconnectInterval, options.maxReconnectInterval ?? 60000),
    });
    this.warnings = new BurstCounter((reason, count) => {
      const detail = this.warningDetail.get(reason) ?? reason;
      this.emit(
        'warning',
        count === 1 ? detail : `${detail} (${count} times in the last ${this.warningIntervalMs / 1000} s)`,
      );
    }, this.warningIntervalMs);
    const size = options.eventCacheSize ?? 1000;
    if (!Number.isInteger(size) || size < 0)
      throw new RangeError(`event cache size must be a whole number >= 0, not ${size}`);
    if (size > 0) {
      this.cache = new Outbox({
        maxEntries: size,
        maxBytes: options.eventCacheBytes ?? 16 * 1024 * 1024,
        file: options.eventCacheFile,
        onDrop: (entry) => this.onCacheDrop(entry),
        onWarning: (text) => this.warn('store', `event cache: ${text}`),
      });
    }
    this.opening = false;
  }

  get state(): ClientState {
    return this.currentState;
  }

  get registered(): boolean {
    return this.currentState === 'registered';
  }

  get cachedEvents(): number {
    return this.cache?.length ?? 0;
  }

  /** Whether the event cache survives a restart. */
  get durableCache(): boolean {
    return this.cache?.durable ?? false;
  }

  get counts(): ClientCounts {
    let rejected = 0;
    for (const reason of REJECTIONS) rejected += this.warnings.total(reason);
    return { cached: this.cachedEvents, dropped: this.dropped, unacknowledged: this.inFlight.length, rejected };
  }

  /** The self-description as last set, with configuration values changed by the MSB applied. */
  get description(): SelfDescription | undefined {
    return this.selfDescription;
  }

  /** Current configuration parameter values (declared values, overridden by `K` changes). */
  get parameters(): Record<string, unknown> {
    // fromEntries defines own properties: a parameter may be called "__proto__" without touching a prototype.
    return Object.fromEntries(
      Object.entries(this.selfDescription?.configuration.parameters ?? {}).map(([name, p]) => [name, p.value]),
    );
  }

  /**
   * Sets what to register. Sends `R` at once when the session is up and the description differs from the one last
   * registered on this session; otherwise it is registered on the next IO_CONNECTED.
   */
  setSelfDescription(sd: SelfDescription): void {
    const copy = JSON.parse(JSON.stringify(sd)) as SelfDescription;
    for (const [name, value] of this.overrides) {
      const p = ownParameter(copy, name);
      if (p) p.value = value;
      else this.overrides.delete(name);
    }
    this.selfDescription = copy;
    if (this.head.uuid !== copy.uuid) this.head = new EventHead(copy.uuid);
    if (this.sessionUp && JSON.stringify(copy) !== this.lastRegistered) this.register();
  }

  connect(): void {
    if (this.userClosed || this.ws) return;
    this.retry.cancel();
    let url: string;
    try {
      url = connectionUrl(this.options.url, this.sockJs);
    } catch (err) {
      this.setState('disconnected', { code: 'bad-url', detail: (err as Error).message });
      return;
    }
    const tls: ConnectionOptions = { ...this.options.tls };
    if (this.options.allowUnverifiedTls) {
      tls.rejectUnauthorized = false;
      tls.checkServerIdentity = () => undefined;
    } else if (tls.rejectUnauthorized === undefined) {
      tls.rejectUnauthorized = true;
    }
    this.setState('connecting', undefined);
    const ws = new (WebSocketClass())(url, {
      ...tls,
      handshakeTimeout: this.options.handshakeTimeout ?? 10000,
      maxPayload: MAX_PAYLOAD_BYTES,
    });
    this.ws = ws;
    this.closeReason = undefined;
    let failure: string | undefined;
    let alive = true;
    const life = (): void => {
      alive = true;
    };
    // The socket ws writes to, through public APIs (ws's upgrade event, the response's socket): flush corks it.
    ws.on('upgrade', (response: { socket: Duplex }) => {
      if (this.ws === ws) this.socket = response.socket;
    });
    ws.on('open', () => {
      const interval = this.options.pingInterval ?? 15000;
      if (interval <= 0 || this.ws !== ws) return;
      // Any inbound frame is life; a silent peer (process stopped, NAT state lost) is cut after two intervals.
      this.liveness = setInterval(() => {
        if (!alive) {
          this.closeReason = {
            code: 'no-answer',
            detail: `nothing received for ${Math.round((2 * interval) / 1000)} s`,
          };
          ws.terminate();
          return;
        }
        alive = false;
        try {
          ws.ping();
        } catch {
          // closing already; the close handler cleans up
        }
      }, interval);
    });
    ws.on('pong', life);
    ws.on('ping', life);
    const published = Buffer.from(this.sockJs ? PUBLISHED_SOCKJS : 'IO_PUBLISHED');
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      alive = true;
      if (this.ws !== ws) return;
      // The commonest frame by far (one per event sent) is recognised by its bytes, without decoding it.
      if (!isBinary && Buffer.isBuffer(data) && data.length === published.length && data.equals(published)) {
        this.tap?.('in', this.sockJs ? PUBLISHED_SOCKJS : 'IO_PUBLISHED', false);
        this.onPublished();
        return;
      }
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString();
      try {
        this.onFrame(text);
      } catch (err) {
        // A bug or a surprise in one frame must not end the connection, let alone the process.
        this.warn(
          'frame-error',
          `unexpected error handling a frame from the MSB (${describeFrame(text)}): ${(err as Error).message}`,
        );
      }
    });
    ws.on('error', (err: Error & { code?: string }) => {
      failure = err.code ?? err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      this.socket = undefined;
      if (this.liveness) clearInterval(this.liveness);
      this.liveness = undefined;
      if (this.flushTimer) clearImmediate(this.flushTimer);
      this.flushTimer = undefined;
      this.outgoing.clear();
      this.sessionUp = false;
      this.lastRegistered = undefined;
      this.linkLost();
      const why = this.closeReason ?? closeReasonOf(failure, code, reason);
      if (this.userClosed) {
        this.setState('closed', undefined);
        return;
      }
      if (this.autoReconnect) why.retryInMs = this.retry.schedule(() => this.connect());
      this.setState('disconnected', why);
    });
  }

  /**
   * Publishes one event. Resolves 'published' once the MSB acknowledged it (IO_PUBLISHED), or — cached events only —
   * 'cached' once it is held in the event cache (on disk when the cache is durable) while it cannot be delivered.
   * Rejects when it cannot be delivered and is not cached, or the MSB refused it: nothing is dropped silently.
   */
  publish(req: PublishRequest): Promise<PublishOutcome> {
    return new Promise((resolve, reject) => {
      this.publishEvent(new EventTemplate(req.eventId), req, (err, outcome) =>
        err ? reject(err) : resolve(outcome ?? 'published'),
      );
    });
  }

  /**
   * `publish` for hot paths: the event's constant part comes serialised from `template` (one per publishing node),
   * and the outcome goes to `callback` without a promise per event — once, synchronously when it is refused at once.
   */
  publishEvent(template: EventTemplate, fields: PublishFields, callback: PublishCallback): void {
    const eventId = template.eventId;
    if (this.userClosed) return callback(new MsbNotRegisteredError(eventId, 'the service is closing'));
    if (fields.cached) {
      if (!this.cache) return callback(new MsbNotRegisteredError(eventId, 'the event cache is disabled'));
      return this.publishCached(template, fields, callback);
    }
    if (!this.registered || !this.ws) {
      return callback(
        new MsbNotRegisteredError(eventId, `not registered with the MSB (${this.currentState}) and not cached`),
      );
    }
    if (this.inFlight.length >= MAX_UNACKNOWLEDGED) {
      return callback(
        new MsbNotRegisteredError(eventId, `${MAX_UNACKNOWLEDGED} events already await IO_PUBLISHED from the MSB`),
      );
    }
    let wire: string;
    try {
      wire = template.message(this.head, fields, this.sockJs);
    } catch (err) {
      return callback(unserialisable(eventId, err));
    }
    this.inFlight.push({ template, callback });
    this.queue(wire);
  }

  /** Stops for good: no reconnect; resolves when the socket is closed, the cache is on disk and every timer is cleared. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.userClosed = true;
    this.retry.cancel();
    const ws = this.ws;
    this.closing = (async () => {
      if (ws) {
        this.flush(); // what was published before close() still goes out
        // Give acknowledgements on their way a moment, so a redeploy does not fail or resend what just went out.
        const deadline = Date.now() + CLOSE_GRACE_MS;
        while (this.inFlight.length > 0 && this.ws === ws && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 10));
        await new Promise<void>((resolve) => {
          if (this.ws !== ws) return resolve();
          const force = setTimeout(() => ws.terminate(), 2000);
          ws.once('close', () => {
            clearTimeout(force);
            resolve();
          });
          if (ws.readyState === ws.CONNECTING) ws.terminate();
          else ws.close(1000, 'service stopped');
        });
      } else {
        this.setState('closed', undefined);
      }
      this.warnings.close();
      await this.cache?.close();
      // Cached events not delivered are in the store for the next start; say so to whoever still waits.
      for (const data of [...this.waiters.keys()]) this.settle(data, 'cached');
    })();
    return this.closing;
  }

  private publishCached(template: EventTemplate, fields: EventFields, callback: PublishCallback): void {
    const cache = this.cache!;
    const eventId = template.eventId;
    // Stored without the uuid (added when sent): the uuid may only be known once the self-description is compiled.
    let body: string;
    try {
      body = template.body(fields);
    } catch (err) {
      return callback(unserialisable(eventId, err));
    }
    const data = Buffer.from(body);
    this.waiters.set(data, { eventId, durable: false, callback });
    if (this.registered && this.ws && cache.length === 0 && this.inFlight.length < MAX_UNACKNOWLEDGED) {
      // Nothing waits before it: sent at once, stored only if the link drops before IO_PUBLISHED. A burst while
      // connected is thus not bounded by the cache size, and costs no disk write.
      this.inFlight.push({ direct: data });
      this.queue(this.head.fromBody(body, this.sockJs));
      return;
    }
    const held = (): void => {
      const waiter = this.waiters.get(data);
      if (!waiter) return;
      waiter.durable = true;
      if (!this.registered || !this.ws) this.settle(data, 'cached');
    };
    cache
      .push(data)
      .then(held, (err: Error) =>
        this.settle(data, new Error(`event "${eventId}" could not be stored in the event cache: ${err.message}`)),
      );
    // In memory, the event is held as soon as it is queued; on disk, once the write is synced.
    if (!cache.durable) held();
    this.pump();
  }

  /** Lends cached events out to the socket, oldest first, while registered and within the send window. */
  private pump(): void {
    const cache = this.cache;
    if (!cache || !this.registered || !this.ws) return;
    while (this.cachedInFlight < SEND_WINDOW) {
      const entry = cache.next();
      if (!entry) return;
      this.cachedInFlight++;
      this.inFlight.push({ seq: entry.seq, data: entry.data });
      this.queue(this.head.fromBody(entry.data.toString(), this.sockJs));
    }
  }

  /**
   * The link is gone: cached events written but not acknowledged are pending again in their place (front of the
   * cache, in order); uncached ones fail; cached publishes already on disk are reported as cached.
   */
  private linkLost(): void {
    const lost = this.inFlight.drain();
    this.cachedInFlight = 0;
    this.cache?.rewind();
    const back: Buffer[] = [];
    for (const f of lost) {
      if ('seq' in f) continue;
      if ('direct' in f) back.push(f.direct);
      else
        this.answer(
          f.callback,
          new Error(
            `event "${f.template.eventId}" not acknowledged: the connection to the MSB was lost after it was sent (not cached)`,
          ),
        );
    }
    // Cached events sent straight away were published before anything the cache holds now: they go in front.
    if (back.length > 0 && this.cache) {
      const held = (): void => {
        for (const data of back) {
          const waiter = this.waiters.get(data);
          if (waiter) waiter.durable = true;
        }
        if (!this.registered || !this.ws) this.settleDurable();
      };
      this.cache.requeueFront(back).then(held, (err: Error) => {
        for (const data of back)
          this.settle(
            data,
            new Error(`event "${eventIdOf(data)}" could not be stored in the event cache: ${err.message}`),
          );
      });
      if (!this.cache.durable) held();
    }
    this.settleDurable();
  }

  private settleDurable(): void {
    for (const [data, waiter] of this.waiters) if (waiter.durable) this.settle(data, 'cached');
  }

  private settle(data: Buffer, outcome: PublishOutcome | Error): void {
    const waiter = this.waiters.get(data);
    if (!waiter) return;
    this.waiters.delete(data);
    if (outcome instanceof Error) this.answer(waiter.callback, outcome);
    else this.answer(waiter.callback, undefined, outcome);
  }

  /** Tells a publisher how its event ended; a throwing callback is reported, never left to break the client's state. */
  private answer(callback: PublishCallback, err: Error | undefined, outcome?: PublishOutcome): void {
    try {
      callback(err, outcome);
    } catch (thrown) {
      this.warn('callback-error', `a publish callback threw: ${(thrown as Error)?.message ?? String(thrown)}`);
    }
  }

  private onCacheDrop(entry: OutboxEntry): void {
    this.dropped++;
    const size = this.options.eventCacheSize ?? 1000;
    this.warn(
      'cache-full',
      `event cache full (${size} events): dropped the oldest cached events, ${this.dropped} so far`,
    );
    this.settle(
      entry.data,
      new Error(`event "${eventIdOf(entry.data)}" dropped: the event cache is full (${size} events)`),
    );
  }

  /** Answers the oldest event in flight: acknowledged (undefined) or refused by the MSB (the NIO keyword). */
  private answerOldest(nio: string | undefined): string | undefined {
    const f = this.inFlight.shift();
    if (!f) return undefined;
    if ('direct' in f) {
      this.settle(
        f.direct,
        nio
          ? new Error(`event "${eventIdOf(f.direct)}" refused by the MSB: ${nio} (${STATUS_KEYWORDS[nio] ?? nio})`)
          : 'published',
      );
      return eventIdOf(f.direct);
    }
    if ('seq' in f) {
      this.cachedInFlight--;
      // A refused event is removed too: sending it again would be refused again.
      this.cache?.ack(f.seq);
      this.settle(
        f.data,
        nio
          ? new Error(`event "${eventIdOf(f.data)}" refused by the MSB: ${nio} (${STATUS_KEYWORDS[nio] ?? nio})`)
          : 'published',
      );
      this.pump();
      return eventIdOf(f.data);
    }
    const eventId = f.template.eventId;
    if (nio)
      this.answer(
        f.callback,
        new Error(`event "${eventId}" refused by the MSB: ${nio} (${STATUS_KEYWORDS[nio] ?? nio})`),
      );
    else this.answer(f.callback, undefined, 'published');
    return eventId;
  }

  private register(): void {
    if (!this.selfDescription) return;
    const text = JSON.stringify(this.selfDescription);
    this.lastRegistered = text;
    this.send(`R ${text}`);
  }

  /**
   * Sees every message sent, in its wire form (`literal`: a JSON string literal under SockJS, decoded only by whoever
   * shows it), and every frame received; the Busbar sidebar's counters and trace.
   */
  tap: ((direction: 'in' | 'out', text: string, literal: boolean) => void) | undefined;

  /** Queues a message (R, pong) for the next flush. */
  private send(text: string): void {
    this.queue(this.sockJs ? JSON.stringify(text) : text);
  }

  /**
   * Queues a message already in its wire form (under SockJS a JSON string literal) and flushes once per event-loop
   * turn, or every FLUSH_BYTES: a burst of publishes (Node-RED hands a burst of msgs over in one check phase) leaves
   * in few writes — under SockJS as frames of several messages each (SockJS frames are arrays, the server splits
   * them) — instead of one syscall and one server read per event.
   */
  private queue(wire: string): void {
    this.tap?.('out', wire, this.sockJs);
    this.outgoing.add(wire);
    // A long burst goes out in slices while it is still being published: the MSB starts on it at once.
    if (this.outgoing.byteLength >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    const ws = this.ws;
    if (!ws || ws.readyState !== ws.OPEN) {
      this.outgoing.clear();
      return;
    }
    if (this.outgoing.length === 0) return;
    const messages = this.outgoing.take();
    // Corking the socket turns the frames of one flush into one writev: on the raw path every event is its own
    // websocket frame (ws corks only per frame; corks nest). The messages are UTF-8 Buffers sent as text frames,
    // so ws writes header and masked payload as one buffer.
    const socket = this.socket;
    socket?.cork();
    try {
      for (const message of messages) ws.send(message, TEXT);
    } finally {
      socket?.uncork();
    }
  }

  private onFrame(frame: string): void {
    this.tap?.('in', frame, false);
    const decoded = decodeServerFrame(frame, this.sockJs);
    switch (decoded.kind) {
      case 'open':
      case 'heartbeat':
        return;
      case 'close':
        this.emit('warning', `MSB closed the session: ${decoded.code} ${decoded.reason}`);
        this.closeReason = { code: 'closed-by-msb', detail: `${decoded.code} ${decoded.reason}`.trim() };
        this.ws?.close();
        return;
      case 'invalid':
        this.warn('malformed', `dropped a malformed frame from the MSB (${decoded.reason}): ${frame.slice(0, 80)}`);
        return;
      case 'messages':
        for (const text of decoded.messages) {
          try {
            this.onMessage(text);
          } catch (err) {
            this.warn(
              'message-error',
              `unexpected error handling a ${describeMessage(text)} message from the MSB: ${(err as Error).message}`,
            );
          }
        }
    }
  }

  private onMessage(text: string): void {
    const msg = parseMessage(text);
    if (msg.type === 'invalid') {
      this.warn('malformed', `dropped a malformed message from the MSB (${msg.reason}): ${text.slice(0, 80)}`);
      return;
    }
    if (msg.type === 'status') {
      this.onStatus(msg.keyword);
      return;
    }
    if ((msg.type === 'C' || msg.type === 'K') && nestedDeeperThan(msg.body, MAX_NESTING_DEPTH)) {
      this.warn(
        'too-deep',
        `dropped a ${msg.type} message from the MSB nested deeper than ${MAX_NESTING_DEPTH} levels`,
      );
      return;
    }
    if (msg.type === 'C') {
      this.onCall(msg.body);
      return;
    }
    if (msg.type === 'K') {
      this.onConfiguration(msg.body);
      return;
    }
    this.warn('unexpected', `ignored an unexpected ${msg.type} message from the MSB`);
  }

  private onStatus(keyword: string): void {
    if (keyword === 'ping') {
      this.send('pong');
      return;
    }
    this.emit('status', keyword);
    switch (keyword) {
      case 'IO_CONNECTED':
        this.sessionUp = true;
        this.setState('connected', undefined);
        this.register();
        return;
      case 'IO_REGISTERED':
        this.retry.succeeded();
        this.setState('registered', undefined);
        this.pump();
        return;
      case 'IO_PUBLISHED':
        this.onPublished(false);
        return;
      case 'NIO_EVENT_FORWARDING_ERROR':
      case 'NIO_UNEXPECTED_EVENT_FORWARDING_ERROR':
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword] ?? keyword, this.answerOldest(keyword));
        return;
      case 'NIO_REGISTRATION_ERROR':
      case 'NIO_UNEXPECTED_REGISTRATION_ERROR':
        // Stay connected: retrying the same description would fail the same way; a redeploy or K sends a new one.
        this.lastRegistered = undefined;
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword] ?? keyword, undefined);
        if (this.currentState === 'registered') this.setState('connected', undefined);
        return;
      case 'NIO_ALREADY_CONNECTED':
      case 'NIO_UNAUTHORIZED_CONNECTION':
        // Like the official clients: drop this session; the reconnect registers afresh. Events in flight go back to
        // the cache (or fail) when the socket closes.
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword] ?? keyword, undefined);
        this.closeReason = {
          code: keyword === 'NIO_ALREADY_CONNECTED' ? 'already-connected' : 'unauthorized',
          detail: keyword,
        };
        if (this.currentState === 'registered') this.setState('connected', undefined);
        this.ws?.close(1000, keyword);
        return;
      default:
        if (keyword.startsWith('NIO')) this.emit('nio', keyword, STATUS_KEYWORDS[keyword] ?? keyword, undefined);
    }
  }

  /** IO_PUBLISHED: the oldest event in flight is delivered. Events are emitted only to listeners (one per event). */
  private onPublished(announce = true): void {
    if (announce && this.listenerCount('status') > 0) this.emit('status', 'IO_PUBLISHED');
    const eventId = this.answerOldest(undefined);
    if (this.listenerCount('published') > 0) this.emit('published', eventId);
  }

  private onCall(body: unknown): void {
    if (!isRecord(body) || typeof body.functionId !== 'string') {
      this.warn('malformed', 'dropped a function call without a functionId');
      return;
    }
    const params = body.functionParameters;
    if (params !== undefined && params !== null && !isRecord(params)) {
      this.warn(
        'malformed',
        `dropped a call of "${body.functionId.slice(0, 80)}": functionParameters is not an object`,
      );
      return;
    }
    this.emit('call', {
      ...body,
      uuid: typeof body.uuid === 'string' ? body.uuid : '',
      functionId: body.functionId,
      correlationId: typeof body.correlationId === 'string' ? body.correlationId : undefined,
      functionParameters: (params as Record<string, unknown> | undefined) ?? {},
    });
  }

  private onConfiguration(body: unknown): void {
    const sd = this.selfDescription;
    if (!isRecord(body) || !isRecord(body.params)) {
      this.warn('malformed', 'dropped a configuration message without params');
      return;
    }
    if (!sd || body.uuid !== sd.uuid) {
      this.warn(
        'other-service',
        `ignored a configuration message for another service (${String(body.uuid).slice(0, 80)})`,
      );
      return;
    }
    // Names come from the network: looked up in own data only, collected in a Map (no prototype to reach).
    const changed = new Map<string, unknown>();
    for (const [name, raw] of Object.entries(body.params)) {
      const param = ownParameter(sd, name);
      if (!param) {
        this.warn('unknown-parameter', `ignored unknown configuration parameter "${name.slice(0, 80)}"`);
        continue;
      }
      const type = simpleTypeOfParameter(param.type, param.format) ?? 'string';
      try {
        const value = coerceParameterValue(type, raw, name);
        param.value = value;
        this.overrides.set(name, value);
        changed.set(name, value);
      } catch (err) {
        this.warn('bad-parameter', `ignored configuration parameter ${(err as Error).message}`);
      }
    }
    // Re-register so the MSB holds the values the service now runs with (as the official clients do).
    this.register();
    this.emit('configuration', { parameters: this.parameters, changed: Object.fromEntries(changed) });
  }

  /** Reports at most once per burst per reason, with a count; the latest detail is what the report shows. */
  private warn(reason: string, detail: string): void {
    // Opening the cache may warn (torn tail, smaller bound) before anyone could listen: say it a turn later.
    if (this.opening) {
      setImmediate(() => this.warn(reason, detail));
      return;
    }
    this.warningDetail.set(reason, detail);
    this.warnings.note(reason);
  }

  private get warningIntervalMs(): number {
    return this.options.warningInterval ?? 10000;
  }

  private setState(state: ClientState, reason: DisconnectReason | undefined): void {
    this.currentState = state;
    if (state !== 'registered') this.settleDurable();
    this.emit('state', state, reason);
  }
}

/** Warning reasons that count as rejected input from the MSB. */
const REJECTIONS = [
  'malformed',
  'too-deep',
  'unknown-parameter',
  'bad-parameter',
  'other-service',
  'unexpected',
  'frame-error',
  'message-error',
];

function unserialisable(eventId: string, err: unknown): Error {
  return new Error(
    `event "${eventId}" not sent: its dataObject cannot be written as JSON (${(err as Error)?.message ?? String(err)})`,
  );
}

const EVENT_ID_PREFIX = /^\{"eventId":("(?:[^"\\]|\\.)*")/;

/** The eventId of a stored event body, read from its start (it is always the first key) without parsing it all. */
function eventIdOf(data: Buffer): string {
  const match = EVENT_ID_PREFIX.exec(data.toString('utf8', 0, Math.min(data.length, 1024)));
  try {
    return match?.[1] ? (JSON.parse(match[1]) as string) : '?';
  } catch {
    return '?';
  }
}

function closeReasonOf(failure: string | undefined, code: number, reason: Buffer): DisconnectReason {
  if (failure) return { code: 'unreachable', detail: failure };
  const words = reason.length ? reason.toString() : code !== 1000 && code !== 1005 ? `code ${code}` : '';
  return { code: 'lost', detail: words };
}

/** The configuration parameter of that name, if the description declares it (never one from the prototype). */
function ownParameter(sd: SelfDescription, name: string): ConfigParameterValue | undefined {
  const params = sd.configuration.parameters;
  return Object.prototype.hasOwnProperty.call(params, name) ? params[name] : undefined;
}

/** Whether arrays/objects nest deeper than `limit`; iterative, and stops at the first too-deep branch. */
export function nestedDeeperThan(value: unknown, limit: number): boolean {
  const stack: Array<{ v: unknown; d: number }> = [{ v: value, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (d >= limit) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v))
      if (typeof child === 'object' && child !== null) stack.push({ v: child, d: d + 1 });
  }
  return false;
}

function describeFrame(frame: string): string {
  const kind = frame.charAt(0);
  return kind !== '' && 'oahc'.includes(kind) ? `SockJS ${kind}-frame` : 'frame';
}

/** The message type for a warning: the typed letter, or the keyword (shortened, printable only). */
function describeMessage(text: string): string {
  const typed = /^([RECK]) /.exec(text);
  if (typed?.[1]) return typed[1];
  return JSON.stringify(text.slice(0, 40));
}

/**
 * A first-in first-out queue with O(1) push and shift: a ring that doubles when full and keeps its size, so a burst
 * after the first one allocates nothing; a shifted slot is cleared at once (nothing answered stays referenced).
 */
class Fifo<T> {
  private items: Array<T | undefined> = new Array<T | undefined>(16);
  private head = 0;
  private size = 0;

  get length(): number {
    return this.size;
  }

  push(item: T): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size) & (this.items.length - 1)] = item;
    this.size++;
  }

  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.size--;
    return item;
  }

  /** Removes and returns everything, oldest first. */
  drain(): T[] {
    const all: T[] = [];
    while (this.size > 0) all.push(this.shift() as T);
    this.head = 0;
    return all;
  }

  private grow(): void {
    const grown = new Array<T | undefined>(this.items.length * 2);
    for (let i = 0; i < this.size; i++) grown[i] = this.items[(this.head + i) & (this.items.length - 1)];
    this.items = grown;
    this.head = 0;
  }
}
