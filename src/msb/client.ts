// The MSB websocket client: connect (SockJS or raw), register the self-description, publish events (with the event
// cache), receive function calls and configuration changes, answer pings, reconnect and re-register.
import { EventEmitter } from 'events';
import { randomInt, randomUUID } from 'crypto';
import type { ConnectionOptions } from 'tls';
import WebSocket from 'ws';
import { EventCache } from './cache';
import { decodeServerFrame, formatMessage, parseMessage } from './framing';
import { coerceParameterValue, SelfDescription, simpleTypeOfParameter } from './selfdescription';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'registered' | 'closed';
export type Priority = 0 | 1 | 2;

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
  /** Milliseconds between reconnect attempts; default 10000, never below `minimumReconnectInterval`. */
  reconnectInterval?: number;
  /** The floor for `reconnectInterval`; 3000 ms like the official clients. Tests may lower it. */
  minimumReconnectInterval?: number;
  /** Size of the event cache; 0 disables it. Default 1000. */
  eventCacheSize?: number;
  /** Passed to the TLS connection (ca, cert, key, passphrase, servername, …). Verification stays on unless … */
  tls?: ConnectionOptions;
  /** … this is set: accept self-signed certificates and any hostname. */
  allowUnverifiedTls?: boolean;
  /** Opening handshake timeout in ms (default 10000). */
  handshakeTimeout?: number;
}

export interface PublishRequest {
  eventId: string;
  /** Omitted from the wire when undefined. */
  dataObject?: unknown;
  priority?: Priority;
  /** `YYYY-MM-DDTHH:mm:ss.sssZ`; now when absent. */
  postDate?: string;
  correlationId?: string;
  /** Keep the event in the cache when not registered (instead of failing). */
  cached?: boolean;
}

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

export interface MsbClientEvents {
  state: [state: ClientState, detail: string | undefined];
  /** Every status keyword received (IO_*, NIO_*, …). */
  status: [keyword: string];
  /** A NIO_* keyword, its meaning, and the eventId it answers when it answers an event. */
  nio: [keyword: string, meaning: string, eventId: string | undefined];
  published: [eventId: string | undefined];
  call: [call: FunctionCall];
  configuration: [change: ConfigurationChange];
  /** Something dropped or odd that the user should hear about; the client keeps running. */
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

/** Milliseconds-precision UTC timestamp as the MSB expects: `YYYY-MM-DDTHH:mm:ss.sssZ`. */
export function msbDate(date: Date = new Date()): string {
  return date.toISOString();
}

const PRIORITIES: Record<string, Priority> = { LOW: 0, MEDIUM: 1, HIGH: 2, '0': 0, '1': 1, '2': 2 };

/** LOW/MEDIUM/HIGH (any case) or 0/1/2 -> the wire integer; undefined when not a priority. */
export function parsePriority(value: unknown): Priority | undefined {
  if (typeof value !== 'string' && typeof value !== 'number') return undefined;
  return PRIORITIES[String(value).trim().toUpperCase()];
}

/** A Date, epoch milliseconds or a parsable date string -> `YYYY-MM-DDTHH:mm:ss.sssZ`; undefined when invalid. */
export function parsePostDate(value: unknown): string | undefined {
  const date = value instanceof Date ? value : typeof value === 'number' || typeof value === 'string' ? new Date(value) : undefined;
  return date && !Number.isNaN(date.getTime()) ? msbDate(date) : undefined;
}

const MAX_PENDING_ACKS = 10000;
const MAX_FRAME_BYTES = 8000;
const PUBLISHED_SOCKJS = 'a["IO_PUBLISHED"]';

export class MsbClient extends EventEmitter<MsbClientEvents> {
  readonly sockJs: boolean;
  readonly autoReconnect: boolean;
  readonly reconnectInterval: number;
  private readonly cache: EventCache<{ eventId: string; message: Record<string, unknown> }>;
  private ws: WebSocket | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private currentState: ClientState = 'disconnected';
  private selfDescription: SelfDescription | undefined;
  private lastRegistered: string | undefined;
  private sessionUp = false;
  private userClosed = false;
  private closing: Promise<void> | undefined;
  private readonly overrides = new Map<string, unknown>();
  private pendingAcks = new AckQueue();
  private outbox: string[] = [];
  private flushTimer: NodeJS.Immediate | undefined;

  constructor(private readonly options: MsbClientOptions) {
    super();
    connectionUrl(options.url, true); // fail fast on a bad URL
    this.sockJs = options.sockJs ?? true;
    this.autoReconnect = options.autoReconnect ?? true;
    const floor = options.minimumReconnectInterval ?? 3000;
    this.reconnectInterval = Math.max(floor, options.reconnectInterval ?? 10000);
    this.cache = new EventCache(options.eventCacheSize ?? 1000, (dropped, size) =>
      this.emit('warning', `event cache full (${size}): dropped the oldest cached event "${dropped.eventId}"`),
    );
  }

  get state(): ClientState {
    return this.currentState;
  }

  get registered(): boolean {
    return this.currentState === 'registered';
  }

  get cachedEvents(): number {
    return this.cache.length;
  }

  /** The self-description as last set, with configuration values changed by the MSB applied. */
  get description(): SelfDescription | undefined {
    return this.selfDescription;
  }

  /** Current configuration parameter values (declared values, overridden by `K` changes). */
  get parameters(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, p] of Object.entries(this.selfDescription?.configuration.parameters ?? {})) out[name] = p.value;
    return out;
  }

  /**
   * Sets what to register. Sends `R` at once when the session is up and the description differs from the one last
   * registered on this session; otherwise it is registered on the next IO_CONNECTED.
   */
  setSelfDescription(sd: SelfDescription): void {
    const copy = JSON.parse(JSON.stringify(sd)) as SelfDescription;
    for (const [name, value] of this.overrides) {
      const p = copy.configuration.parameters[name];
      if (p) p.value = value;
      else this.overrides.delete(name);
    }
    this.selfDescription = copy;
    if (this.sessionUp && JSON.stringify(copy) !== this.lastRegistered) this.register();
  }

  connect(): void {
    if (this.userClosed || this.ws) return;
    this.clearReconnect();
    let url: string;
    try {
      url = connectionUrl(this.options.url, this.sockJs);
    } catch (err) {
      this.setState('disconnected', (err as Error).message);
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
    const ws = new WebSocket(url, { ...tls, handshakeTimeout: this.options.handshakeTimeout ?? 10000 });
    this.ws = ws;
    let failure: string | undefined;
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (this.ws !== ws) return;
      this.onFrame(isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString());
    });
    ws.on('error', (err: Error & { code?: string }) => {
      failure = err.code ?? err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.ws !== ws) return;
      this.ws = undefined;
      if (this.flushTimer) clearImmediate(this.flushTimer);
      this.flushTimer = undefined;
      this.outbox = [];
      this.sessionUp = false;
      this.lastRegistered = undefined;
      this.pendingAcks = new AckQueue();
      const detail = failure ?? (reason.length ? reason.toString() : code !== 1000 && code !== 1005 ? `code ${code}` : undefined);
      if (this.userClosed) {
        this.setState('closed', undefined);
        return;
      }
      this.setState('disconnected', detail);
      this.scheduleReconnect();
    });
  }

  /**
   * Publishes one event. Registered: sent now ('sent'). Not registered: cached if asked and the cache is enabled
   * ('cached'), else throws MsbNotRegisteredError — nothing is dropped silently.
   */
  publish(req: PublishRequest): 'sent' | 'cached' {
    const message: Record<string, unknown> = {
      uuid: this.selfDescription?.uuid,
      eventId: req.eventId,
      priority: req.priority ?? 0,
      postDate: req.postDate ?? msbDate(),
    };
    if (req.dataObject !== undefined && req.dataObject !== null) message.dataObject = req.dataObject;
    if (req.correlationId !== undefined && req.correlationId !== '') message.correlationId = req.correlationId;
    if (this.registered && this.ws) {
      this.sendEvent(req.eventId, formatMessage('E', message));
      return 'sent';
    }
    if (!req.cached) throw new MsbNotRegisteredError(req.eventId, `not registered with the MSB (${this.currentState}) and not cached`);
    if (!this.cache.enabled) throw new MsbNotRegisteredError(req.eventId, 'not registered with the MSB and the event cache is disabled');
    // Serialised at flush time: the service uuid may only be known once the self-description is compiled.
    this.cache.push({ eventId: req.eventId, message });
    return 'cached';
  }

  /** Stops for good: no reconnect; resolves when the socket is closed and every timer is cleared. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.userClosed = true;
    this.clearReconnect();
    const ws = this.ws;
    this.closing = new Promise<void>((resolve) => {
      if (!ws) {
        this.setState('closed', undefined);
        resolve();
        return;
      }
      this.flush(); // what was published before close() still goes out
      const force = setTimeout(() => ws.terminate(), 2000);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      else ws.close(1000, 'service stopped');
    });
    return this.closing;
  }

  private register(): void {
    if (!this.selfDescription) return;
    const text = JSON.stringify(this.selfDescription);
    this.lastRegistered = text;
    this.send(`R ${text}`);
  }

  private sendEvent(eventId: string, text: string): void {
    this.pendingAcks.push(eventId);
    this.send(text);
  }

  /**
   * Queues a message and flushes once per event-loop turn: a burst of publishes (Node-RED delivers each msg in its
   * own turn of the check phase) leaves as one SockJS frame holding several messages — SockJS frames are arrays, and
   * the server splits them — instead of one websocket frame, one syscall and one server read per event.
   */
  private send(text: string): void {
    this.outbox.push(text);
    this.flushTimer ??= setImmediate(() => this.flush());
  }

  private flush(): void {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.outbox;
    this.outbox = [];
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || batch.length === 0) return;
    // Corking the TCP socket turns the frames of one flush into one writev (ws corks per frame; corks nest).
    const socket = (ws as unknown as { _socket?: { cork?: () => void; uncork?: () => void } })._socket;
    const corked = typeof socket?.cork === 'function' && typeof socket.uncork === 'function';
    if (corked) socket.cork?.();
    try {
      if (!this.sockJs) {
        for (const text of batch) ws.send(text);
      } else {
        // Several messages per SockJS frame, but no frame above MAX_FRAME_BYTES unless one message alone is bigger:
        // servlet containers buffer text messages to a limit (Tomcat: 8 KiB) and close the session beyond it.
        let parts: string[] = [];
        let bytes = 2;
        for (const text of batch) {
          const part = JSON.stringify(text);
          const size = Buffer.byteLength(part) + 1;
          if (parts.length > 0 && bytes + size > MAX_FRAME_BYTES) {
            ws.send(`[${parts.join(',')}]`);
            parts = [];
            bytes = 2;
          }
          parts.push(part);
          bytes += size;
        }
        if (parts.length > 0) ws.send(`[${parts.join(',')}]`);
      }
    } finally {
      if (corked) socket.uncork?.();
    }
  }

  private onFrame(frame: string): void {
    // The commonest frame by far (one per event sent) skips the general decoder.
    if (frame === (this.sockJs ? PUBLISHED_SOCKJS : 'IO_PUBLISHED')) {
      this.onStatus('IO_PUBLISHED');
      return;
    }
    const decoded = decodeServerFrame(frame, this.sockJs);
    switch (decoded.kind) {
      case 'open':
      case 'heartbeat':
        return;
      case 'close':
        this.emit('warning', `MSB closed the session: ${decoded.code} ${decoded.reason}`);
        this.ws?.close();
        return;
      case 'invalid':
        this.emit('warning', `dropped a malformed frame from the MSB (${decoded.reason}): ${frame.slice(0, 80)}`);
        return;
      case 'messages':
        for (const text of decoded.messages) this.onMessage(text);
    }
  }

  private onMessage(text: string): void {
    const msg = parseMessage(text);
    if (msg.type === 'invalid') {
      this.emit('warning', `dropped a malformed message from the MSB (${msg.reason}): ${text.slice(0, 80)}`);
      return;
    }
    if (msg.type === 'status') {
      this.onStatus(msg.keyword);
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
    this.emit('warning', `ignored an unexpected ${msg.type} message from the MSB`);
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
        this.setState('registered', undefined);
        this.flushCache();
        return;
      case 'IO_PUBLISHED':
        this.emit('published', this.pendingAcks.shift());
        return;
      case 'NIO_EVENT_FORWARDING_ERROR':
      case 'NIO_UNEXPECTED_EVENT_FORWARDING_ERROR':
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword], this.pendingAcks.shift());
        return;
      case 'NIO_REGISTRATION_ERROR':
      case 'NIO_UNEXPECTED_REGISTRATION_ERROR':
        // Stay connected: retrying the same description would fail the same way; a redeploy or K sends a new one.
        this.lastRegistered = undefined;
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword], undefined);
        if (this.currentState === 'registered') this.setState('connected', undefined);
        return;
      case 'NIO_ALREADY_CONNECTED':
      case 'NIO_UNAUTHORIZED_CONNECTION':
        // Like the official clients: drop this session; the reconnect registers afresh.
        this.emit('nio', keyword, STATUS_KEYWORDS[keyword], keyword === 'NIO_UNAUTHORIZED_CONNECTION' ? this.pendingAcks.shift() : undefined);
        if (this.currentState === 'registered') this.setState('connected', undefined);
        this.ws?.close(1000, keyword);
        return;
      default:
        if (keyword.startsWith('NIO')) this.emit('nio', keyword, STATUS_KEYWORDS[keyword] ?? keyword, undefined);
    }
  }

  private onCall(body: unknown): void {
    if (!isRecord(body) || typeof body.functionId !== 'string') {
      this.emit('warning', 'dropped a function call without a functionId');
      return;
    }
    const params = body.functionParameters;
    if (params !== undefined && params !== null && !isRecord(params)) {
      this.emit('warning', `dropped a call of "${body.functionId}": functionParameters is not an object`);
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
      this.emit('warning', 'dropped a configuration message without params');
      return;
    }
    if (!sd || body.uuid !== sd.uuid) {
      this.emit('warning', `ignored a configuration message for another service (${String(body.uuid)})`);
      return;
    }
    const changed: Record<string, unknown> = {};
    for (const [name, raw] of Object.entries(body.params)) {
      const param = sd.configuration.parameters[name];
      if (!param) {
        this.emit('warning', `ignored unknown configuration parameter "${name}"`);
        continue;
      }
      const type = simpleTypeOfParameter(param.type, param.format) ?? 'string';
      try {
        const value = coerceParameterValue(type, raw, name);
        param.value = value;
        this.overrides.set(name, value);
        changed[name] = value;
      } catch (err) {
        this.emit('warning', `ignored configuration parameter ${(err as Error).message}`);
      }
    }
    // Re-register so the MSB holds the values the service now runs with (as the official clients do).
    this.register();
    this.emit('configuration', { parameters: this.parameters, changed });
  }

  private flushCache(): void {
    const uuid = this.selfDescription?.uuid;
    for (const entry of this.cache.drain()) this.sendEvent(entry.eventId, formatMessage('E', { ...entry.message, uuid }));
  }

  private setState(state: ClientState, detail: string | undefined): void {
    this.currentState = state;
    this.emit('state', state, detail);
  }

  private scheduleReconnect(): void {
    if (!this.autoReconnect || this.userClosed) return;
    this.clearReconnect();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, this.reconnectInterval);
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
  }
}

/** The eventIds of sent events awaiting IO_PUBLISHED/NIO_* (answered in order), bounded; O(1) push and shift. */
class AckQueue {
  private items: string[] = [];
  private head = 0;

  push(eventId: string): void {
    if (this.items.length - this.head >= MAX_PENDING_ACKS) this.head++;
    this.items.push(eventId);
  }

  shift(): string | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
