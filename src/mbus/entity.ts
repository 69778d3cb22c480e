// An Mbus entity (RFC 3259 §7-9): addressing, packed sends, reliable delivery with acks, awareness of peers, bus events.
import { EventEmitter } from 'events';
import os from 'os';
import type { RemoteInfo } from 'dgram';
import { Address, MbusError } from './address';
import { Command, Message, RejectedMessage, formatCommands, formatHeader, parseMessage } from './codec';
import { DatagramError, DropReason, SecurityConfig, hashKey, openDatagram, sealDatagram, sealedSize } from './security';
import { OpenFailure, Scope, Transport, hostId } from './transport';
import { asError } from '../common/guards';

export interface Timers {
  /** T_r: first retransmission after this many ms; the n-th waits n·T_r. */
  retransmit: number;
  /** N_r: transmissions before a reliable message fails. */
  retries: number;
  /** T_c: how long an ack may wait for a message to piggy-back on. */
  ackDelay: number;
  /** How long (source, SeqNum) pairs of reliable messages are remembered to suppress duplicates. */
  duplicateKeep: number;
  helloMin: number;
  helloFactor: number;
  helloDitherMin: number;
  helloDitherMax: number;
  helloDead: number;
  /**
   * Cap on our own hello_d, whatever the RFC scaling says: UCL drops a member after 5 s of silence (5 × RAT's 1 s
   * heartbeat) and libgmbus after 5 × hello_d × 1.1 ≥ 5.5 s. With 2000 ms our longest gap is 2.2 s, so one lost
   * hello never makes either peer forget us. A flood of fake hellos cannot stretch it.
   */
  helloMax: number;
}

export const DEFAULT_TIMERS: Timers = {
  retransmit: 100,
  retries: 3,
  ackDelay: 70,
  duplicateKeep: 10000,
  helloMin: 1000,
  helloFactor: 200,
  helloDitherMin: 0.9,
  helloDitherMax: 1.1,
  helloDead: 5,
  helloMax: 2000,
};

export const DEFAULTS = {
  group: '224.255.222.239',
  port: 47000,
  scope: 'HOSTLOCAL' as Scope,
  maxDatagram: 1500,
  hashKey: '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)',
};

export const MAX_UDP = 65507;

export interface EntityOptions {
  /** Own address without `id` (it is added: `<pid>-<n>@<host>`); an `id` given here is kept. */
  address: Address | string | Record<string, string>;
  group?: string;
  port?: number;
  scope?: Scope;
  interface?: string;
  security?: Partial<SecurityConfig>;
  timers?: Partial<Timers>;
  maxDatagram?: number;
  /** Send to a single known peer by unicast when it uses its own endpoint (spec §6). */
  sendUnicast?: boolean;
  /**
   * Keep at most one reliable message outstanding per destination (default on). UCL remembers only the last reliable
   * SeqNum per sender, so with several in flight a lost ack makes it deliver a retransmission twice.
   */
  oneReliablePerPeer?: boolean;
  /** Awareness table bound; beyond it the longest idle peer (first those heard only once) is evicted. Default 1000. */
  maxPeers?: number;
  /**
   * Pack the commands sent to one destination in the same event-loop turn into one message (one header, one HMAC, one
   * datagram) up to maxDatagram (default on). Off: every send() is a message of its own.
   */
  pack?: boolean;
}

export interface PeerInfo {
  address: Address;
  lastHeard: number;
  endpoint: { address: string; port: number };
  /** Messages heard from it; a peer heard once is the first to go when the table is full (a flood of fake sources). */
  heard: number;
  /** When its endpoint last changed: unicast waits until it has been stable for a while (see ENDPOINT_SETTLE_MS). */
  endpointChangedAt?: number;
}

export interface SendOptions {
  reliable?: boolean;
  /** Aborted while the message still waits behind another reliable one for the same destination: it is never sent. */
  signal?: AbortSignal;
  /**
   * Never packed with other sends: these commands make a message of their own (guidelines RPC — libgmbus's RPC layer
   * reads only the first command of a message).
   */
  alone?: boolean;
}

export interface DeliveryFailure {
  seq: number;
  destination: Address;
  commands: Command[];
  reason: string;
}

export interface EntityEvents {
  command: [Command, Message];
  'new-entity': [Address];
  'lost-entity': [Address, 'bye' | 'timeout' | 'evicted'];
  'delivery-failed': [DeliveryFailure];
  quit: [Message];
  waiting: [string, Message];
  go: [string, Message];
  drop: [DropReason, string, RemoteInfo];
  /** A listener threw while handling a received message; the entity keeps running. */
  warning: [Error];
  stopped: [];
}

/**
 * RFC 3259 §8.1.1: hello_e = max(c_hello_min, c_hello_factor·entities) · dither, with `rnd` uniform in [0,1); hello_d
 * capped at `helloMax` (never below `helloMin`) so the peers' fixed timeouts never expire between our hellos.
 */
export function helloInterval(t: Timers, entities: number, rnd: number): number {
  const d = Math.min(Math.max(t.helloMin, t.helloFactor * entities), Math.max(t.helloMax, t.helloMin));
  return d * (t.helloDitherMin + rnd * (t.helloDitherMax - t.helloDitherMin));
}

/** RFC 3259 §8.2: an entity silent for c_hello_dead · hello_d · c_hello_dither_max ms is gone. */
export function deadAfter(t: Timers, entities: number): number {
  return t.helloDead * Math.max(t.helloMin, t.helloFactor * entities) * t.helloDitherMax;
}

/** RFC 3259 §8.1.3: retransmission n waits n·T_r; after N_r transmissions the message has failed (at T_k). */
export function retransmitSchedule(t: Timers): { sends: number[]; failAt: number } {
  const sends = [0];
  let at = 0;
  for (let n = 1; ; n++) {
    at += n * t.retransmit;
    if (n + 1 > t.retries) return { sends, failAt: at };
    sends.push(at);
  }
}

let idCounter = 0;
const SEQ_WRAP = 2 ** 32;
/**
 * After a peer's endpoint changes, send to it by multicast (which reaches it wherever it is) for this long before
 * unicasting again: a datagram that merely claims a peer's address cannot redirect our unicasts to the claimant.
 */
const ENDPOINT_SETTLE_MS = 10000;
/** Reliable messages that may wait behind the outstanding one for the same destination. */
const MAX_WAITING_PER_PEER = 1000;

// Every running entity of this process by address key: a datagram claiming one of these addresses must come from
// that entity's own send socket, or it is a spoof (it would poison duplicate suppression and acks between them).
const ownEntities = new Map<string, Entity>();

// This host's addresses, for entities whose send socket is bound to the wildcard (LINKLOCAL without an interface).
let localAddresses: { at: number; set: Set<string> } | undefined;
function isLocalAddress(a: string): boolean {
  const now = Date.now();
  if (!localAddresses || now - localAddresses.at > 5000) {
    const set = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) for (const i of list ?? []) set.add(i.address);
    localAddresses = { at: now, set };
  }
  return localAddresses.set.has(a);
}

interface Outstanding {
  destination: Address;
  datagram: Buffer;
  to?: { address: string; port: number };
  n: number;
  timer?: NodeJS.Timeout;
  commands: Command[];
  resolve(): void;
  reject(err: Error): void;
}

/** One send() call waiting to be packed: its command lines are formatted at once, so a bad command fails its caller only. */
interface Sending {
  commands: Command[];
  text: string;
  /** UTF-8 octets of `text`. */
  bytes: number;
  alone: boolean;
  signal?: AbortSignal;
  resolve(seq: number): void;
  reject(err: Error): void;
}

/**
 * What waits for one destination and kind (reliable or not; they are never mixed in a message). Unreliable sends go
 * out at the next flush; reliable ones when the destination's lane is free — everything that waited meanwhile then
 * goes packed into the next message, so one outstanding message per destination still carries many commands.
 */
interface SendQueue {
  destination: Address;
  reliable: boolean;
  waiting: Sending[];
  /** Reliable messages of this queue not yet acknowledged or failed. */
  inFlight: number;
}

/** A packed message, ready to go. */
interface Packed {
  seq: number;
  destination: Address;
  datagram: Buffer;
  to?: { address: string; port: number };
  sendings: Sending[];
}

interface AckQueue {
  address: Address;
  seqs: number[];
  timer: NodeJS.Timeout;
}

function conditionOf(cmd: Command): string {
  const a = cmd.args[0];
  return a && (a.type === 'string' || a.type === 'symbol') ? a.value : '';
}

export class Entity extends EventEmitter {
  private ownAddress: Address;
  /** The `id` is ours to fill in (host part from the interface, known only once it has an address). */
  private readonly idSerial?: string;
  private readonly iface?: string;
  readonly timers: Timers;
  readonly maxDatagram: number;
  readonly group: string;
  readonly scope: Scope;
  private readonly security: SecurityConfig;
  private readonly transport: Transport;
  private readonly sendUnicast: boolean;
  private readonly oneReliablePerPeer: boolean;
  readonly maxPeers: number;
  private readonly pack: boolean;
  /** Sends waiting for the next flush or for their lane, by kind and destination, in the order they were made. */
  private readonly queues = new Map<string, SendQueue>();
  private flushTimer?: NodeJS.Immediate;
  /** Counted events by reason: every drop reason, `evicted` peers. */
  readonly counters = new Map<string, number>();
  private seq = 0;
  private running = false;
  private readonly peers = new Map<string, PeerInfo>();
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly acks = new Map<string, AckQueue>();
  private readonly seen = new Map<string, number>();
  private helloTimer?: NodeJS.Timeout;
  private helloNext = 0;
  private helloPrev = 0;
  private entitiesPrev = 1;
  private pingTimer?: NodeJS.Timeout;
  private sweepTimer?: NodeJS.Timeout;
  private starting?: Promise<void>;

  constructor(options: EntityOptions) {
    super();
    this.timers = { ...DEFAULT_TIMERS, ...stripUndefined(options.timers ?? {}) };
    this.maxDatagram = options.maxDatagram ?? DEFAULTS.maxDatagram;
    if (!(this.maxDatagram >= 200 && this.maxDatagram <= MAX_UDP))
      throw new MbusError(`max datagram size must be between 200 and ${MAX_UDP} bytes, got ${options.maxDatagram}`);
    this.group = options.group || DEFAULTS.group;
    this.scope = options.scope ?? DEFAULTS.scope;
    let address = Address.from(options.address);
    if (address.size === 0)
      throw new MbusError('the entity address needs at least one element besides id, e.g. (app:node-red)');
    this.iface = options.interface;
    if (!address.get('id')) {
      idCounter = (idCounter % 99999) + 1;
      this.idSerial = `${process.pid}-${idCounter}`;
      let host = '0.0.0.0';
      try {
        host = hostId(this.scope, options.interface);
      } catch (err) {
        // The interface may come up later (boot before the network): start() fills in the host then, or retries.
        if (!(err instanceof OpenFailure)) throw err;
      }
      address = address.with('id', `${this.idSerial}@${host}`);
    }
    this.ownAddress = address;
    this.security = {
      hash: options.security?.hash ?? hashKey(DEFAULTS.hashKey),
      encryption: options.security?.encryption ?? { algorithm: 'NOENCR', key: Buffer.alloc(0) },
    };
    this.sendUnicast = options.sendUnicast ?? true;
    this.oneReliablePerPeer = options.oneReliablePerPeer ?? true;
    this.pack = options.pack ?? true;
    this.maxPeers = options.maxPeers ?? 1000;
    if (!(this.maxPeers >= 1))
      throw new MbusError(`the peer table needs room for at least 1 entity, got ${options.maxPeers}`);
    this.transport = new Transport(
      { group: this.group, port: options.port ?? DEFAULTS.port, scope: this.scope, interface: options.interface },
      (data, rinfo) => this.receive(data, rinfo),
    );
  }

  override on<K extends keyof EntityEvents>(event: K, listener: (...args: EntityEvents[K]) => void): this {
    return super.on(event, listener as (...args: unknown[]) => void);
  }
  override off<K extends keyof EntityEvents>(event: K, listener: (...args: EntityEvents[K]) => void): this {
    return super.off(event, listener as (...args: unknown[]) => void);
  }
  override emit<K extends keyof EntityEvents>(event: K, ...args: EntityEvents[K]): boolean {
    return super.emit(event, ...args);
  }

  /** Our full address, `id` included. */
  get address(): Address {
    return this.ownAddress;
  }

  get port(): number {
    return this.transport.port;
  }
  get sendPort(): number {
    return this.transport.sendPort;
  }
  get isRunning(): boolean {
    return this.running;
  }

  /** Known peers (not counting ourselves). */
  /** Sees every message sent (its text) and every message received and parsed; the Busbar sidebar's counters and trace. */
  tap: ((direction: 'in' | 'out', message: string | Message) => void) | undefined;

  /** Sends waiting for their turn, and reliable messages sent and not yet acknowledged. */
  get pending(): { waiting: number; reliableInFlight: number } {
    let waiting = 0;
    let reliableInFlight = 0;
    for (const q of this.queues.values()) {
      waiting += q.waiting.length;
      if (q.reliable) reliableInFlight += q.inFlight;
    }
    return { waiting, reliableInFlight };
  }

  get entities(): PeerInfo[] {
    return [...this.peers.values()];
  }

  /** Opens the sockets; rejects with an OpenFailure (reason as data) that is worth retrying. Concurrent calls share one attempt. */
  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.starting ??= this.open().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async open(): Promise<void> {
    if (this.idSerial) {
      const id = `${this.idSerial}@${hostId(this.scope, this.iface)}`;
      if (id !== this.ownAddress.get('id')) this.ownAddress = this.ownAddress.with('id', id);
    }
    if (ownEntities.has(this.ownAddress.key))
      throw new MbusError(`another entity in this process already uses ${this.ownAddress}`);
    await this.transport.open();
    ownEntities.set(this.ownAddress.key, this);
    this.running = true;
    this.helloPrev = 0;
    this.entitiesPrev = 1;
    this.scheduleHello(Math.random() * this.timers.helloMin);
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
  }

  /** Says bye, fails what is still outstanding and releases every socket and timer. */
  async stop(): Promise<void> {
    if (this.starting) await this.starting.catch(() => undefined); // a start in progress finishes first, then stops
    if (!this.running) return;
    this.flush(); // what was handed over before stop() goes out before the bye
    try {
      await this.send(Address.empty, [{ name: 'mbus.bye', args: [] }]);
    } catch {
      /* closing anyway */
    }
    this.running = false;
    clearImmediate(this.flushTimer);
    this.flushTimer = undefined;
    const closed = new MbusError('the Mbus entity stopped before the message was sent', 'ECLOSED');
    for (const q of this.queues.values()) for (const s of q.waiting.splice(0)) s.reject(closed);
    this.queues.clear();
    if (ownEntities.get(this.ownAddress.key) === this) ownEntities.delete(this.ownAddress.key);
    clearTimeout(this.helloTimer);
    clearTimeout(this.pingTimer);
    clearInterval(this.sweepTimer);
    for (const q of this.acks.values()) clearTimeout(q.timer);
    this.acks.clear();
    for (const [seq, o] of this.outstanding) {
      clearTimeout(o.timer);
      this.outstanding.delete(seq);
      o.reject(new MbusError('the Mbus entity stopped before the message was acknowledged', 'ECLOSED'));
    }
    this.peers.clear();
    this.seen.clear();
    await this.transport.close();
    this.emit('stopped');
  }

  /** The one known entity a reliable message may go to: an exact address, or a partial one that matches exactly one peer. */
  resolvePeer(destination: Address): PeerInfo {
    if (destination.size === 0)
      throw new MbusError('reliable messages and RPCs need a destination address, not () (everyone)', 'EUNKNOWN');
    const exact = this.peers.get(destination.key);
    if (exact) return exact;
    const matches = [...this.peers.values()].filter((p) => destination.isSubsetOf(p.address));
    const [only] = matches;
    if (only && matches.length === 1) return only;
    throw new MbusError(
      matches.length === 0
        ? `no known entity matches ${destination} (reliable messages and RPCs need a peer that has said hello)`
        : `${destination} matches ${matches.length} entities; reliable messages and RPCs need a unique destination`,
      matches.length === 0 ? 'EUNKNOWN' : 'ENOTUNIQUE',
    );
  }

  /**
   * Sends commands. Unreliable: resolves once the datagram is out. Reliable: resolves on the ack, rejects when
   * N_r transmissions went unanswered (and emits `delivery-failed`). Sends to one destination made in the same
   * event-loop turn go out packed into as few messages as maxDatagram allows, in order; with one reliable message
   * per destination, reliable sends wait for the lane and then go packed together.
   */
  send(destination: Address, commands: Command[], options: SendOptions = {}): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (!this.running) throw new MbusError('the Mbus entity is not running', 'ECLOSED');
      const reliable = !!options.reliable;
      const dest = reliable ? this.resolvePeer(destination).address : destination;
      const text = formatCommands(commands);
      // hello and bye alone: libgmbus recognises them only as a message's first command, and then ignores the rest.
      const alone =
        !this.pack || !!options.alone || commands.some((c) => c.name === 'mbus.hello' || c.name === 'mbus.bye');
      const key = `${reliable ? 'R' : 'U'}${dest.key}`;
      let q = this.queues.get(key);
      if (!q) this.queues.set(key, (q = { destination: dest, reliable, waiting: [], inFlight: 0 }));
      else if (reliable && q.waiting.length >= MAX_WAITING_PER_PEER)
        throw new MbusError(
          `${MAX_WAITING_PER_PEER} reliable messages already wait for ${destination}; it acknowledges too slowly`,
          'EBUSY',
        );
      q.waiting.push({
        commands,
        text,
        bytes: Buffer.byteLength(text, 'utf8'),
        alone,
        signal: options.signal,
        resolve,
        reject,
      });
      this.flushTimer ??= setImmediate(() => this.flush());
    });
  }

  /** Sends what waits: every unreliable queue, and each reliable one whose lane is free. */
  private flush(): void {
    clearImmediate(this.flushTimer); // when called directly (stop)
    this.flushTimer = undefined;
    for (const [key, q] of this.queues) this.flushQueue(key, q);
  }

  private flushQueue(key: string, q: SendQueue): void {
    if (!this.running) return;
    if (q.reliable && q.waiting.length > 0) {
      try {
        this.resolvePeer(q.destination); // the peer may have left while its messages waited
      } catch (err) {
        for (const s of q.waiting.splice(0)) s.reject(err as Error);
      }
    }
    while (q.waiting.length > 0 && !(q.reliable && this.oneReliablePerPeer && q.inFlight > 0)) {
      const m = this.packNext(q);
      if (!m) continue;
      if (q.reliable) this.sendReliable(key, q, m);
      else
        this.transport.send(m.datagram, m.to).then(
          () => m.sendings.forEach((s) => s.resolve(m.seq)),
          (err: Error) => m.sendings.forEach((s) => s.reject(err)),
        );
    }
    if (q.waiting.length === 0 && q.inFlight === 0) this.queues.delete(key);
  }

  /**
   * Takes the longest run of waiting sends that fits one datagram (a send that fits no datagram fails alone, as does
   * a withdrawn one) and makes the message. Undefined when all it looked at failed.
   */
  private packNext(q: SendQueue): Packed | undefined {
    const dest = q.destination;
    const ackQueue = this.acks.get(dest.key);
    const seq = this.seq;
    const timestamp = Date.now();
    const header = formatHeader({
      seq,
      timestamp,
      reliable: q.reliable,
      source: this.address,
      destination: dest,
      acks: ackQueue ? ackQueue.seqs : [],
    });
    let bytes = Buffer.byteLength(header, 'latin1'); // the header is ASCII
    let n = 0;
    while (n < q.waiting.length) {
      const s = q.waiting[n];
      if (!s) break;
      if (s.signal?.aborted) {
        q.waiting.splice(n, 1);
        s.reject(new MbusError(`the message to ${dest} was cancelled before it was sent`, 'ECANCELED'));
        continue;
      }
      if (n > 0 && s.alone) break;
      const size = sealedSize(this.security, bytes + s.bytes);
      if (size > this.maxDatagram) {
        if (n > 0) break;
        q.waiting.splice(n, 1);
        s.reject(
          new MbusError(
            `the message is ${size} bytes, more than the maximum datagram size of ${this.maxDatagram} bytes`,
            'ETOOBIG',
          ),
        );
        continue;
      }
      bytes += s.bytes;
      n++;
      if (s.alone) break;
    }
    if (n === 0) return undefined;
    const sendings = q.waiting.splice(0, n);
    let text = header;
    for (const s of sendings) text += s.text;
    this.tap?.('out', text);
    const datagram = sealDatagram(this.security, text);
    this.seq = (this.seq + 1) % SEQ_WRAP;
    if (ackQueue) {
      clearTimeout(ackQueue.timer);
      this.acks.delete(dest.key);
    }
    const peer = this.peers.get(dest.key);
    const settled = !peer?.endpointChangedAt || timestamp - peer.endpointChangedAt >= ENDPOINT_SETTLE_MS;
    const to = peer && this.sendUnicast && peer.endpoint.port !== this.port && settled ? peer.endpoint : undefined;
    return { seq, destination: dest, datagram, to, sendings };
  }

  /** One packed reliable message: every caller in it settles with its ack or its failure; then the lane goes on. */
  private sendReliable(key: string, q: SendQueue, m: Packed): void {
    q.inFlight++;
    const settle = (): void => {
      q.inFlight--;
      if (this.queues.get(key) !== q) return;
      if (q.waiting.length > 0) this.flushTimer ??= setImmediate(() => this.flush());
      else if (q.inFlight === 0) this.queues.delete(key);
    };
    const o: Outstanding = {
      destination: m.destination,
      datagram: m.datagram,
      to: m.to,
      n: 1,
      commands: m.sendings.flatMap((s) => s.commands),
      resolve: () => {
        settle();
        for (const s of m.sendings) s.resolve(m.seq);
      },
      reject: (err) => {
        settle();
        for (const s of m.sendings) s.reject(err);
      },
    };
    this.outstanding.set(m.seq, o);
    this.armRetransmit(m.seq, o);
    this.transport.send(m.datagram, m.to).catch(() => undefined); // a lost send is what retransmission is for
  }

  private armRetransmit(seq: number, o: Outstanding): void {
    o.timer = setTimeout(() => {
      o.n++;
      if (o.n > this.timers.retries) {
        this.outstanding.delete(seq);
        const failure: DeliveryFailure = {
          seq,
          destination: o.destination,
          commands: o.commands,
          reason: `no acknowledgement after ${this.timers.retries} transmissions`,
        };
        this.emit('delivery-failed', failure);
        o.reject(new MbusError(`reliable delivery to ${o.destination} failed: ${failure.reason}`, 'EDELIVERY'));
        return;
      }
      this.transport.send(o.datagram, o.to).catch(() => undefined);
      this.armRetransmit(seq, o);
    }, o.n * this.timers.retransmit);
  }

  private receive(data: Buffer, rinfo: RemoteInfo): void {
    try {
      this.handle(data, rinfo);
    } catch (err) {
      // A throwing listener must not take the socket (and the Node-RED process) down.
      if (this.listenerCount('warning') > 0) this.emit('warning', asError(err));
    }
  }

  private handle(data: Buffer, rinfo: RemoteInfo): void {
    if (!this.running) return;
    let msg: Message;
    try {
      msg = parseMessage(openDatagram(this.security, data));
    } catch (err) {
      const reason: DropReason =
        err instanceof DatagramError ? err.reason : err instanceof RejectedMessage ? err.rejection : 'parse';
      this.drop(reason, (err as Error).message, rinfo);
      return;
    }
    const key = msg.source.key;
    const own = ownEntities.get(key);
    if (own && !own.sentFrom(rinfo)) {
      this.drop(
        'spoofed',
        `claims the address ${msg.source} of an entity in this process but did not come from its socket`,
        rinfo,
      );
      return;
    }
    if (own === this) return; // our own multicast, looped back
    this.tap?.('in', msg);
    const now = Date.now();
    const bye = msg.commands.some((c) => c.name === 'mbus.bye');
    if (msg.source.size > 0 && !bye) {
      const known = this.peers.get(key);
      if (known) {
        known.lastHeard = now;
        known.heard++;
        // Keep the table in order of last contact: the first entry is the longest idle.
        this.peers.delete(key);
        this.peers.set(key, known);
        // Endpoints are never mutated (an outstanding message keeps the one it was sent to); a new one only on change.
        if (known.endpoint.port !== rinfo.port || known.endpoint.address !== rinfo.address) {
          known.endpoint = { address: rinfo.address, port: rinfo.port };
          known.endpointChangedAt = now;
        }
      } else {
        if (this.peers.size >= this.maxPeers) this.evictOne();
        this.peers.set(key, {
          address: msg.source,
          lastHeard: now,
          endpoint: { address: rinfo.address, port: rinfo.port },
          heard: 1,
        });
        this.emit('new-entity', msg.source);
      }
    }
    const forUs = msg.destination.isSubsetOf(this.address);
    if (!forUs) return;
    for (const a of msg.acks) {
      const o = this.outstanding.get(a);
      if (o && o.destination.equals(msg.source)) {
        clearTimeout(o.timer);
        this.outstanding.delete(a);
        o.resolve();
      }
    }
    if (msg.reliable) {
      // RFC 3259 §7: only a message addressed exactly to us is acknowledged and processed (never an ack to ()).
      if (!msg.destination.equals(this.address) || msg.source.size === 0) return;
      this.queueAck(msg.source, msg.seq);
      const dupKey = `${key}|${msg.seq}`;
      if (this.seen.has(dupKey)) return;
      this.seen.set(dupKey, now);
      if (this.seen.size > 100000) this.seen.delete(this.seen.keys().next().value as string);
    }
    for (const cmd of msg.commands) {
      switch (cmd.name) {
        case 'mbus.bye':
          if (this.peers.delete(key)) {
            this.emit('lost-entity', msg.source, 'bye');
            this.countDropped();
          }
          break;
        case 'mbus.ping':
          this.answerPing();
          break;
        case 'mbus.quit':
          this.emit('quit', msg);
          break;
        case 'mbus.waiting':
          this.emit('waiting', conditionOf(cmd), msg);
          break;
        case 'mbus.go':
          this.emit('go', conditionOf(cmd), msg);
          break;
      }
      this.emit('command', cmd, msg);
    }
  }

  private drop(reason: DropReason, detail: string, rinfo: RemoteInfo): void {
    this.count(reason);
    this.emit('drop', reason, detail, rinfo);
  }

  private count(reason: string): void {
    this.counters.set(reason, (this.counters.get(reason) ?? 0) + 1);
  }

  /** True when a datagram with this sender came from our own send socket. */
  private sentFrom(rinfo: RemoteInfo): boolean {
    if (rinfo.port !== this.transport.sendPort) return false;
    const bound = this.transport.sendAddress;
    return bound && bound !== '0.0.0.0' ? rinfo.address === bound : isLocalAddress(rinfo.address);
  }

  /** Table full: the longest idle peer heard only once (a flood of fake sources) goes first, else the longest idle. */
  private evictOne(): void {
    let victim: PeerInfo | undefined;
    for (const p of this.peers.values()) {
      if (p.heard === 1) {
        victim = p;
        break;
      }
    }
    victim ??= this.peers.values().next().value as PeerInfo;
    this.peers.delete(victim.address.key);
    this.count('evicted');
    this.emit('lost-entity', victim.address, 'evicted');
  }

  private queueAck(source: Address, seq: number): void {
    const q = this.acks.get(source.key);
    if (q) {
      if (!q.seqs.includes(seq)) q.seqs.push(seq);
      return;
    }
    const timer = setTimeout(() => {
      if (this.acks.get(source.key) !== queue) return;
      // Nothing to piggy-back on within T_c: a dedicated ack (header only), now, with what else waits for the sender.
      this.send(source, []).catch(() => undefined);
      const key = `U${source.key}`;
      const q = this.queues.get(key);
      if (q) this.flushQueue(key, q);
    }, this.timers.ackDelay);
    const queue: AckQueue = { address: source, seqs: [seq], timer };
    this.acks.set(source.key, queue);
  }

  // ------------------------------------------------------------ awareness (RFC 3259 §8)

  private helloInterval(): number {
    return helloInterval(this.timers, this.peers.size + 1, Math.random());
  }

  private scheduleHello(delay: number): void {
    clearTimeout(this.helloTimer);
    this.helloNext = Date.now() + delay;
    this.helloTimer = setTimeout(() => this.helloDue(), Math.max(0, delay));
  }

  private helloDue(): void {
    if (!this.running) return;
    const now = Date.now();
    const e = this.helloInterval();
    if (this.helloPrev + e <= now) {
      this.sayHello();
      this.scheduleHello(this.helloInterval());
    } else {
      this.scheduleHello(this.helloPrev + e - now);
    }
    this.entitiesPrev = this.peers.size + 1;
  }

  private sayHello(): void {
    this.helloPrev = Date.now();
    this.send(Address.empty, [{ name: 'mbus.hello', args: [] }]).catch(() => undefined);
  }

  /** Reverse reconsideration (RFC 3259 §8.1.4) when entities leave. */
  private countDropped(): void {
    const n = this.peers.size + 1;
    const now = Date.now();
    const f = n / this.entitiesPrev;
    if (f < 1) {
      this.helloPrev = now - f * (now - this.helloPrev);
      this.scheduleHello(f * (this.helloNext - now));
    }
    this.entitiesPrev = n;
  }

  private answerPing(): void {
    if (this.pingTimer) return; // pings during the delay share one hello
    this.pingTimer = setTimeout(() => {
      this.pingTimer = undefined;
      if (!this.running) return;
      this.sayHello();
      this.scheduleHello(this.helloInterval());
    }, Math.random() * this.timers.helloMin);
  }

  private sweep(): void {
    const now = Date.now();
    const t = this.timers;
    const dead = deadAfter(t, this.peers.size + 1);
    let dropped = false;
    for (const [k, p] of this.peers) {
      if (now - p.lastHeard > dead) {
        this.peers.delete(k);
        dropped = true;
        this.emit('lost-entity', p.address, 'timeout');
      }
    }
    if (dropped) this.countDropped();
    for (const [k, at] of this.seen) if (now - at > t.duplicateKeep) this.seen.delete(k);
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== undefined && v !== null && !Number.isNaN(v)),
  ) as Partial<T>;
}
