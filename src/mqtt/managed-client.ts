// The one managed MQTT client behind the sg and ApiGear cores: connects with the broker node's settings, recovers from
// every failure with one backoff policy, reports its state as data, and stores and forwards publishes while down.
//
// mqtt.js's own reconnect is switched off (reconnectPeriod 0): it gives up after a CONNACK refusal, and its offline
// store would resend in-flight messages behind our back. Each attempt is a fresh mqtt.js client; every publish stays
// ours until its PUBACK/PUBCOMP (or, for a durable queue, until it is on disk), so a message in flight when the link
// drops is put back at the front of the queue and sent again after the reconnect: retransmitted or failed, never lost.
import { EventEmitter } from 'events';
import type {
  IClientOptions,
  IClientPublishOptions,
  IDisconnectPacket,
  IPublishPacket,
  ISubscriptionGrant,
  MqttClient,
} from 'mqtt';
import { RetryTimer } from '../common/backoff';
import { lazy } from '../common/lazy';
import { Outbox, OutboxEntry } from '../common/outbox';
import { BurstCounter, ChangeWarner } from '../common/warn';
import {
  ConnectionReason,
  ConnectionState,
  ENDPOINT_REASONS,
  refusalReason,
  SESSION_TAKEN_OVER,
} from './connection-state';
import type { MqttEndpoint } from './endpoint';
import { asError, messageOf } from '../common/guards';

/** mqtt.js (40 ms, several MB) is loaded by the first connect, not by Node-RED's start. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see lazy), not at start
const mqttLib = lazy(() => require('mqtt') as typeof import('mqtt'));

export type QoS = 0 | 1 | 2;

export interface PublishOptions {
  qos: QoS;
  retain?: boolean;
  /** MQTT 5 request/reply properties (ApiGear). */
  properties?: { responseTopic?: string; correlationData?: Buffer };
}

export interface Will {
  topic: string;
  payload: string | Buffer;
  qos: QoS;
  retain: boolean;
}

export interface QueueOptions {
  /** Default 10000 messages. */
  maxEntries?: number;
  /** Default 16 MiB of payload. */
  maxBytes?: number;
  /** Queue QoS 0 publishes while disconnected too (default: they fail with an error). */
  qos0?: boolean;
  /** Durable queue: append-only log file (in the Node-RED user directory); a publish is done once it is on disk. */
  file?: string;
}

export interface ManagedClientOptions {
  clientId: string;
  /** URL and base options; asked again before every attempt (the embedded broker may have moved, TLS may be gone). */
  endpoint(): Promise<MqttEndpoint>;
  /** Options that win over the endpoint's (ApiGear: MQTT 5, clean start). */
  overrides?: IClientOptions;
  /** The last will for the next attempt. */
  will?(): Will | undefined;
  retry?: { initialMs: number; maxMs: number };
  /** A connection that stays up this long resets the backoff; one that drops sooner keeps it growing. Default 10 s. */
  stableMs?: number;
  queue?: QueueOptions;
  /** Milliseconds close() waits for the queue to drain, the last publication and DISCONNECT. Default 2000. */
  closeTimeoutMs?: number;
  /** Called at the end of close(), e.g. to give the broker settings (and an embedded broker) up. */
  closed?(): Promise<void>;
  /** Sees every publish handed over and every message received (the Busbar sidebar's counters and trace). */
  tap?: MqttTap;
}

export type MqttTap = (direction: 'in' | 'out', topic: string, payload: string | Buffer) => void;

export interface ManagedClientEvents {
  state: [ConnectionState];
  /** A failure whose reason differs from the last one reported (a broker down for a day is one line, not one per retry). */
  failure: [ConnectionState];
  /** CONNACK accepted: (re)subscribe and publish session state now, before the queue is flushed. */
  connect: [];
  /** An established connection went down. */
  close: [];
  message: [string, Buffer, IPublishPacket];
  /** Queued publishes dropped to make room: the first of a burst at once, the rest counted per interval. */
  dropped: [number];
  /** Trouble with the durable queue file (the queue carries on in memory). */
  warning: [string];
}

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

interface Item {
  topic: string;
  /** The payload as given: text goes to mqtt.js as is (it encodes UTF-8 straight into the packet). */
  payload: string | Buffer;
  qos: QoS;
  retain: boolean;
  properties?: PublishOptions['properties'];
  /** The buffer the outbox holds for this item: `data` (memory queue) or its encoded record (durable queue). */
  key?: Buffer;
  /** Set while the item is lent out of the outbox. */
  seq?: number;
  waiter?: Waiter;
}

/** Publishes per corked write (see corkForThisTurn). */
const CORK_BATCH = 64;

/** Outbox entries lent to the connection at once while flushing a backlog. */
const FLUSH_WINDOW = 256;

/** Listeners we attach to one library client, so that exactly those (and never the library's own) are removed. */
export class ListenerSet {
  private readonly attached: Array<[string, (...args: never[]) => void]> = [];
  constructor(
    private readonly emitter: {
      on(event: string, fn: (...args: never[]) => void): unknown;
      removeListener(event: string, fn: (...args: never[]) => void): unknown;
    },
  ) {}

  on(event: string, handler: (...args: never[]) => void): void {
    this.emitter.on(event, handler);
    this.attached.push([event, handler]);
  }

  removeAll(): void {
    for (const [event, handler] of this.attached.splice(0)) this.emitter.removeListener(event, handler);
  }
}

export class ManagedMqttClient extends EventEmitter<ManagedClientEvents> {
  private client: MqttClient | undefined;
  private hooks: ListenerSet | undefined;
  /** Bumped whenever a client is dropped: callbacks of an older client are ignored. */
  private generation = 0;
  private live = false;
  private started = false;
  private closing = false;
  /** Publishes written since the stream was corked (0: not corked). */
  private corked = 0;
  private stateNow: ConnectionState = { phase: 'closed' };
  private readonly retry: RetryTimer;
  private stableTimer: NodeJS.Timeout | undefined;
  private readonly failures: ChangeWarner;
  private readonly drops: BurstCounter;
  private readonly outbox: Outbox;
  /** Outbox entries by their data buffer (memory queue), for their waiter and options. */
  private readonly queued = new Map<Buffer, Item>();
  /** Sent on the current connection, not yet acknowledged, in send order. */
  private readonly inFlight = new Set<Item>();
  private lent = 0;
  private drainWaiters: Array<() => void> = [];
  /** Connections in a row that the broker closed before they became stable. */
  private shortLived = 0;

  constructor(private readonly options: ManagedClientOptions) {
    super();
    this.retry = new RetryTimer(options.retry ?? { initialMs: 1000, maxMs: 60000 });
    this.failures = new ChangeWarner(() => this.emit('failure', this.stateNow));
    this.drops = new BurstCounter((_reason, count) => this.emit('dropped', count));
    const queue = options.queue ?? {};
    this.outbox = new Outbox({
      maxEntries: queue.maxEntries ?? 10000,
      maxBytes: queue.maxBytes ?? 16 * 1024 * 1024,
      file: queue.file,
      onDrop: (entry) => this.onDrop(entry),
      onWarning: (text) => this.emit('warning', text),
    });
  }

  get clientId(): string {
    return this.options.clientId;
  }

  get connected(): boolean {
    return this.live;
  }

  get state(): ConnectionState {
    return this.stateNow;
  }

  /** Publishes waiting for a connection (queued) or for their acknowledgement (in flight). */
  get backlog(): number {
    return this.outbox.length + this.inFlight.size - this.lent;
  }

  /** Publishes dropped from a full queue since start. */
  get droppedCount(): number {
    return this.drops.total('overflow');
  }

  /** The protocol level of the current connection (5 for MQTT 5). */
  get protocolVersion(): number | undefined {
    return this.client?.options.protocolVersion;
  }

  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.attempt();
  }

  /**
   * Publishes a message. Resolves after PUBACK/PUBCOMP (QoS 1/2), after the write (QoS 0), or — with a durable queue —
   * once it is on disk; rejects when it cannot be delivered (queue overflow, QoS 0 while down, closed).
   */
  publish(topic: string, payload: string | Buffer, opts: PublishOptions): Promise<void> {
    if (this.closing)
      return Promise.reject(new Error(`the MQTT connection ${this.clientId} is closed; ${topic} not sent`));
    this.options.tap?.('out', topic, payload);
    const qos = opts.qos;
    if (qos === 0 && !this.live && !this.options.queue?.qos0) {
      return Promise.reject(
        new Error(`not connected to the broker; ${topic} not sent (QoS 0 messages are not queued)`),
      );
    }
    // A Buffer goes out as its bytes.
    const item: Item = { topic, payload, qos, retain: opts.retain === true, properties: opts.properties };
    return new Promise<void>((resolve, reject) => {
      item.waiter = { resolve, reject };
      if (this.live && this.outbox.length === 0 && !this.outbox.durable) this.send(item);
      else this.enqueue(item);
    });
  }

  /**
   * Publishes on the current connection only, never queued: state that is published again on every connect anyway
   * (sg startup announcements, ApiGear property values). Rejects when not connected.
   */
  publishNow(topic: string, payload: string | Buffer, opts: PublishOptions): Promise<void> {
    const client = this.client;
    if (!client || !this.live) return Promise.reject(new Error(`not connected to the broker; ${topic} not sent`));
    this.options.tap?.('out', topic, payload);
    this.corkForThisTurn(client);
    return new Promise((resolve, reject) => {
      client.publish(topic, payload, publishOptions(opts.qos, opts.retain === true, opts.properties), (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  /** One SUBSCRIBE packet for `topics`; resolves with the grants. */
  subscribe(topics: string[], qos: QoS): Promise<ISubscriptionGrant[]> {
    const client = this.client;
    if (!client || !this.live) return Promise.reject(new Error('not connected to the broker; subscription not sent'));
    const map: Record<string, { qos: QoS }> = {};
    for (const t of topics) map[t] = { qos };
    return new Promise((resolve, reject) =>
      client.subscribe(map, (err, granted) => (err ? reject(err) : resolve(granted ?? []))),
    );
  }

  unsubscribe(topics: string[]): Promise<void> {
    const client = this.client;
    if (!client || !this.live) return Promise.resolve();
    return new Promise((resolve, reject) => client.unsubscribe(topics, (err) => (err ? reject(err) : resolve())));
  }

  /**
   * Ends the current connection cleanly (after `last`, e.g. sg presence False) and connects again at once — for a
   * change of will, which is fixed per connection. Queued and in-flight publishes carry over.
   */
  async restart(last?: { topic: string; payload: string; qos: QoS; retain: boolean }): Promise<void> {
    if (this.closing) return;
    const client = this.client;
    if (client) {
      if (last && this.live)
        await this.withTimeout(this.publishNow(last.topic, last.payload, last).catch(() => undefined));
      this.dropClient(client);
      await this.endClient(client);
    }
    this.retry.cancel();
    if (!this.closing) this.attempt();
  }

  /**
   * Stops for good: lets the queue drain for a moment, publishes `last` (e.g. sg presence False), DISCONNECTs (so the
   * broker discards the will), and fails what is still undelivered — except in a durable queue, which keeps it.
   */
  async close(last?: { topic: string; payload: string; qos: QoS; retain: boolean }): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.retry.cancel();
    if (this.live && this.backlog > 0)
      await this.withTimeout(new Promise<void>((resolve) => this.drainWaiters.push(resolve)));
    const client = this.client;
    if (client) {
      if (last && this.live)
        await this.withTimeout(this.publishNow(last.topic, last.payload, last).catch(() => undefined));
      this.dropClient(client);
      await this.endClient(client);
    }
    const closed = new Error(
      `the MQTT connection ${this.clientId} was closed before the broker acknowledged the message`,
    );
    for (const item of this.queued.values()) this.settle(item, closed);
    this.queued.clear();
    await this.outbox.close();
    this.drops.close();
    this.setState({ phase: 'closed' });
    await this.options.closed?.();
  }

  private attempt(): void {
    if (this.closing) return;
    const generation = ++this.generation;
    this.setState({ phase: 'connecting' });
    this.options.endpoint().then(
      (endpoint) => {
        if (generation === this.generation && !this.closing) this.dial(endpoint);
      },
      (err: unknown) => {
        if (generation !== this.generation || this.closing) return;
        const named = err as { permanent?: unknown; reason?: unknown; code?: unknown } | null;
        if (named?.permanent === true) return this.failed('config', undefined, messageOf(err), true);
        const reason = ENDPOINT_REASONS.find((r) => r === named?.reason) ?? 'broker';
        this.failed(reason, typeof named?.code === 'number' ? named.code : undefined, messageOf(err));
      },
    );
  }

  private dial(endpoint: MqttEndpoint): void {
    const will = this.options.will?.();
    const options: IClientOptions = {
      ...endpoint.options,
      ...this.options.overrides,
      clientId: this.clientId,
      reconnectPeriod: 0,
      resubscribe: false,
    };
    if (will)
      options.will = { topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos, retain: will.retain };
    let client: MqttClient;
    try {
      client = mqttLib().connect(endpoint.url, options);
    } catch (err) {
      this.failed('config', undefined, messageOf(err), true);
      return;
    }
    const hooks = new ListenerSet(client);
    this.client = client;
    this.hooks = hooks;
    let lastError: Error | undefined;
    let disconnectCode: number | undefined;
    let connectedAt = 0;
    hooks.on('error', (err: Error) => (lastError = err));
    hooks.on('disconnect', (packet: IDisconnectPacket) => (disconnectCode = packet.reasonCode));
    hooks.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) => {
      this.options.tap?.('in', topic, payload);
      this.emit('message', topic, payload, packet);
    });
    hooks.on('connect', () => {
      if (this.client !== client) return;
      connectedAt = Date.now();
      // Commands, echoes and calls are small packets: Nagle plus delayed ACK would add ~40 ms to each exchange.
      (client.stream as unknown as { setNoDelay?(on: boolean): void } | undefined)?.setNoDelay?.(true);
      this.live = true;
      this.failures.clear();
      this.setState({ phase: 'connected' });
      clearTimeout(this.stableTimer);
      this.stableTimer = setTimeout(() => {
        this.shortLived = 0;
        this.retry.succeeded();
      }, this.options.stableMs ?? 10000);
      this.stableTimer.unref?.();
      this.emit('connect');
      this.pump();
    });
    hooks.on('close', () => {
      if (this.client !== client) return;
      const wasUp = connectedAt > 0;
      this.dropClient(client);
      client.end(true);
      if (wasUp) this.emit('close');
      if (this.closing) return;
      const code = (lastError as { code?: unknown } | undefined)?.code;
      if (disconnectCode === SESSION_TAKEN_OVER) this.failed('taken-over', disconnectCode, 'session taken over');
      else if (!wasUp && typeof code === 'number') this.failed(refusalReason(code), code, lastError?.message);
      else {
        // A broker that closes connections it has just accepted, again and again, is (in MQTT 3) usually handing our
        // client id to someone else; once is just a lost link.
        const early = wasUp && !lastError && Date.now() - connectedAt < (this.options.stableMs ?? 10000);
        this.shortLived = early ? this.shortLived + 1 : 0;
        if (this.shortLived >= 2) this.failed('closed-early', disconnectCode, 'closed by the broker');
        else this.failed(wasUp ? 'lost' : 'unreachable', disconnectCode, lastError?.message);
      }
    });
  }

  /** Forgets a client: our listeners off (a no-op error listener stays so a late socket error cannot throw). */
  private dropClient(client: MqttClient): void {
    if (this.client !== client) return;
    this.generation++;
    this.hooks?.removeAll();
    this.hooks = undefined;
    client.on('error', () => undefined);
    this.client = undefined;
    this.live = false;
    clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    // What was sent but not acknowledged goes back to the front, in order, to be sent again on the next connection.
    const unacked: Item[] = [];
    for (const item of this.inFlight) if (item.seq === undefined) unacked.push(item);
    this.inFlight.clear();
    this.lent = 0;
    this.outbox.rewind();
    const requeue: Item[] = [];
    for (const item of unacked) {
      if (item.qos === 0 && !this.options.queue?.qos0)
        this.settle(
          item,
          new Error(`the connection dropped before ${item.topic} was sent (QoS 0 messages are not queued)`),
        );
      else requeue.push(item);
    }
    for (const item of this.queued.values()) item.seq = undefined;
    if (requeue.length > 0) {
      for (const item of requeue) {
        item.key = ownBuffer(item.payload);
        this.queued.set(item.key, item);
      }
      this.outbox.requeueFront(requeue.map((i) => i.key!)).catch(() => undefined);
    }
  }

  private endClient(client: MqttClient): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => client.end(true, {}, () => resolve()), this.options.closeTimeoutMs ?? 2000);
      client.end(false, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private failed(
    reason: ConnectionReason,
    code: number | undefined,
    detail: string | undefined,
    permanent = false,
  ): void {
    if (permanent) {
      this.setState({ phase: 'failed', reason, code, detail });
      this.failures.report(`${reason}:${code ?? ''}:${detail ?? ''}`);
      return;
    }
    const retryMs = this.retry.schedule(() => this.attempt());
    this.setState({ phase: 'waiting', reason, code, detail, retryMs });
    this.failures.report(`${reason}:${code ?? ''}`);
  }

  private setState(state: ConnectionState): void {
    this.stateNow = state;
    this.emit('state', state);
  }

  private enqueue(item: Item): void {
    item.key = this.outbox.durable ? encodeItem(item) : ownBuffer(item.payload);
    this.queued.set(item.key, item);
    const stored = this.outbox.push(item.key);
    if (this.outbox.durable) {
      stored.then(
        () => this.settle(item),
        (err: unknown) => this.settle(item, asError(err)),
      );
    } else stored.catch(() => undefined);
    this.pump();
  }

  /** Flushes queued entries in order while connected, a window at a time. */
  private pump(): void {
    while (this.live && this.lent < FLUSH_WINDOW) {
      const entry = this.outbox.next();
      if (!entry) break;
      let item = this.queued.get(entry.data);
      if (!item) {
        // Recovered from the durable queue of an earlier run: nobody waits for it any more.
        item = decodeItem(entry.data);
        if (!item) {
          this.outbox.ack(entry.seq); // unreadable record: nothing to send
          continue;
        }
        item.key = entry.data;
        this.queued.set(entry.data, item);
      }
      item.seq = entry.seq;
      this.lent++;
      this.send(item);
    }
    if (this.backlog === 0) for (const wake of this.drainWaiters.splice(0)) wake();
  }

  private send(item: Item): void {
    const client = this.client!;
    const generation = this.generation;
    this.inFlight.add(item);
    this.corkForThisTurn(client);
    client.publish(item.topic, item.payload, publishOptions(item.qos, item.retain, item.properties), (err) => {
      if (generation !== this.generation) return; // the connection was replaced; the item was put back in the queue
      this.inFlight.delete(item);
      if (item.seq !== undefined) {
        this.lent--;
        const seq = item.seq;
        item.seq = undefined;
        if (item.key) this.queued.delete(item.key);
        this.outbox.ack(seq);
      }
      // An error here is about this message (e.g. a topic the library rejects), not the link: fail it, go on.
      this.settle(item, err ?? undefined);
      if (this.outbox.length > 0 || this.drainWaiters.length > 0) this.pump();
    });
  }

  private settle(item: Item, err?: Error): void {
    const waiter = item.waiter;
    item.waiter = undefined;
    if (!waiter) return;
    if (err) waiter.reject(err);
    else waiter.resolve();
  }

  private onDrop(entry: OutboxEntry): void {
    const item = this.queued.get(entry.data);
    this.queued.delete(entry.data);
    if (item)
      this.settle(
        item,
        new Error(`offline queue full (${this.outbox.length} messages): ${item.topic} dropped, oldest first`),
      );
    this.drops.note('overflow');
  }

  /**
   * Publishes made in one event-loop turn leave in as few TCP segments as possible, Nagle being off. A long burst is
   * uncorked every CORK_BATCH publishes: one writev of thousands of tiny chunks costs more than it saves.
   */
  private corkForThisTurn(client: MqttClient): void {
    const stream = client.stream as unknown as { cork?(): void; uncork?(): void } | undefined;
    if (!stream?.cork || !stream.uncork) return;
    if (this.corked > 0) {
      if (++this.corked <= CORK_BATCH) return;
      stream.uncork();
      stream.cork();
      this.corked = 1;
      return;
    }
    this.corked = 1;
    stream.cork();
    setImmediate(() => {
      this.corked = 0;
      stream.uncork?.();
    });
  }

  private withTimeout(work: Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.options.closeTimeoutMs ?? 2000);
      void work.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/**
 * mqtt.js's options for one publish, with no `properties` key unless there are properties: mqtt.js spreads the options
 * into its defaults, and a key that is present but undefined takes V8 off its fast path there (mqtt.js's publish() cost
 * 8× as much CPU of its own with `properties: undefined`; measured with --cpu-prof on a burst of QoS 1 publishes).
 */
function publishOptions(qos: QoS, retain: boolean, properties: PublishOptions['properties']): IClientPublishOptions {
  return properties ? { qos, retain, properties } : { qos, retain };
}

/** The bytes of a payload in a Buffer object of this message's own: the memory queue keys its entries by identity. */
function ownBuffer(payload: string | Buffer): Buffer {
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload.subarray(0);
}

/** A durable queue record: u32 length of a JSON header (topic, qos, retain, v5 properties), the header, the payload. */
function encodeItem(item: Item): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      t: item.topic,
      q: item.qos,
      r: item.retain,
      rt: item.properties?.responseTopic,
      cd: item.properties?.correlationData?.toString('base64'),
    }),
    'utf8',
  );
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32LE(header.length, 0);
  return Buffer.concat([
    prefix,
    header,
    typeof item.payload === 'string' ? Buffer.from(item.payload, 'utf8') : item.payload,
  ]);
}

function decodeItem(record: Buffer): Item | undefined {
  try {
    const length = record.readUInt32LE(0);
    const header = JSON.parse(record.subarray(4, 4 + length).toString('utf8')) as {
      t: string;
      q: QoS;
      r: boolean;
      rt?: string;
      cd?: string;
    };
    const properties: PublishOptions['properties'] = {};
    if (header.rt) properties.responseTopic = header.rt;
    if (header.cd) properties.correlationData = Buffer.from(header.cd, 'base64');
    return {
      topic: header.t,
      qos: header.q,
      retain: header.r,
      payload: record.subarray(4 + length),
      properties: header.rt || header.cd ? properties : undefined,
    };
  } catch {
    return undefined;
  }
}
