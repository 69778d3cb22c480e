// One sgframework identity on one broker: the MQTT client of a resource/app name, shared by every node using that
// name. Executes the compiled plan on every (re)connect, dispatches incoming messages, echoes, and stops cleanly.
import mqtt, { MqttClient, IClientOptions } from 'mqtt';
import { randomUUID } from 'crypto';
import { ConnectionPool, PoolUser } from '../common/pool';
import { NodeStatus, Status } from '../common/status';
import type { MqttEndpoint } from '../mqtt/endpoint';
import { pythonStrip } from './python';
import { classifyInbound } from './inbound';
import { RejectedInput } from '../common/rejects';
import {
  clientIdFor,
  compilePlan,
  InputEntry,
  MessageType,
  nameProblem,
  Publication,
  SgDeclaration,
  SgPlan,
  SgQos,
  startupSequence,
  stopPublication,
  subscriptionsOf,
  topicOf,
  willFor,
} from './plan';

export type { SgQos } from './plan';

/** An incoming command, data or availability message, after decoding, stripping and change-only filtering. */
export interface SgIncoming {
  topic: string;
  kind: InputEntry['kind'];
  messagetype: MessageType;
  service: string;
  signal: string;
  /** UTF-8 decoded and stripped with Python's whitespace set. */
  payload: string;
  /** Set for commands whose echo waits for the flow's answer: pass it back to answer(). */
  answerHandle?: string;
}

/** A node using the connection: declares what it needs and receives what matches its declarations. */
export interface SgUser extends PoolUser {
  declaration(): SgDeclaration;
  deliver(message: SgIncoming): void;
  warn(text: string): void;
}

export interface SgLogger {
  warn(text: string): void;
  error(text: string): void;
}

export interface SgConnectionOptions {
  name: string;
  qos: SgQos;
  clean: boolean;
  endpoint(): Promise<MqttEndpoint>;
  release(): Promise<void>;
  log: SgLogger;
  pid?: number;
  /** Milliseconds to wait for PUBACK of presence False and for DISCONNECT on close; default 2000. */
  closeTimeout?: number;
  /** Milliseconds between attempts when the broker endpoint cannot be obtained (embedded port taken); default 5000. */
  retryDelay?: number;
}

interface PendingAnswer {
  entry: InputEntry;
  payload: string;
  timer: NodeJS.Timeout;
}

interface LatestValue {
  payload: string;
  /** The configured default it replaces; a new configuration with another default starts over. */
  registeredDefault: string;
}

export class SgConnection {
  private readonly pool: ConnectionPool<SgUser>;
  private client: MqttClient | undefined;
  private connecting: Promise<void> | undefined;
  private plan: SgPlan;
  /** The plan the broker has seen (subscriptions and startup publications) on the current connection. */
  private applied: SgPlan | undefined;
  private appliedWill: string | undefined;
  private inputsByTopic = new Map<string, InputEntry>();
  private readonly latest = new Map<string, LatestValue>();
  /** callback_on_change_only memory; like sgframework it survives reconnects. */
  private readonly lastPayload = new Map<string, string>();
  private readonly pending = new Map<string, PendingAnswer>();
  private closed = false;
  private corked = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private lastOpenError = '';
  /** Dropped inbound messages (bad UTF-8, unregistered topics), said once per burst with a count. */
  private readonly rejects: RejectedInput;

  constructor(private readonly options: SgConnectionOptions) {
    this.plan = compilePlan(options.name, []);
    this.rejects = new RejectedInput(pythonStrip(options.name), (text) => this.warnUsers(text));
    this.pool = new ConnectionPool<SgUser>({
      connect: () => this.open(),
      disconnect: () => this.shutdown(),
      usersChanged: (users) => this.replan(users),
      onError: (err) => options.log.error(err.message),
    });
  }

  get name(): string {
    return this.plan.name || pythonStrip(this.options.name);
  }

  get userCount(): number {
    return this.pool.size;
  }

  get connected(): boolean {
    return this.client?.connected === true;
  }

  /** The plan currently in force (merged declarations of every user). */
  get currentPlan(): SgPlan {
    return this.plan;
  }

  register(user: SgUser): void {
    this.pool.register(user);
  }

  deregister(user: SgUser, removed: boolean): Promise<void> {
    return this.pool.deregister(user, removed);
  }

  /** Stops regardless of users: presence False (resources), DISCONNECT, release the broker. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }

  /** Publishes a declared data signal (sgframework send_data). Rejects for undeclared signals or when offline. */
  sendData(rawSignal: string, payload: string): Promise<void> {
    const signal = pythonStrip(rawSignal);
    const entry = this.plan.outputs.find((o) => o.signal === signal);
    if (!entry) {
      return Promise.reject(new Error(`"${signal}" is not a declared data signal of ${this.name} (declared: ${this.plan.outputs.map((o) => o.signal).join(', ') || 'none'})`));
    }
    this.remember(entry.topic, entry.defaultValue, payload);
    return this.publish({ topic: entry.topic, payload, qos: this.options.qos, retain: entry.retained });
  }

  /** Sends a command to any resource (sgframework send_command); no declaration needed. */
  sendCommand(rawService: string, rawSignal: string, payload: string, retain = false): Promise<void> {
    const service = pythonStrip(rawService);
    const signal = pythonStrip(rawSignal);
    const issue = nameProblem(service, 'service') ?? nameProblem(signal, 'signal');
    if (issue) return Promise.reject(new Error(issue));
    return this.publish({ topic: topicOf('command', service, signal), payload, qos: this.options.qos, retain });
  }

  /**
   * The flow's answer to a command whose echo waits for it: echoes `payload` (or, when null, the stripped command
   * payload, as sgframework does for a callback returning None).
   */
  answer(handle: string, payload: string | null): Promise<void> {
    const pending = this.pending.get(handle);
    if (!pending) return Promise.reject(new Error(`no command is waiting for this answer (handle ${handle} unknown or timed out)`));
    this.pending.delete(handle);
    clearTimeout(pending.timer);
    return this.echo(pending.entry, payload ?? pending.payload);
  }

  private echo(entry: InputEntry, payload: string): Promise<void> {
    const topic = topicOf('data', entry.service, entry.signal);
    this.remember(topic, entry.defaultValue, payload);
    return this.publish({ topic, payload, qos: this.options.qos, retain: entry.echoRetained });
  }

  /** sgframework replaces a default by the latest sent value only when a default was registered. */
  private remember(topic: string, registeredDefault: string | null, payload: string): void {
    if (registeredDefault !== null) this.latest.set(topic, { payload, registeredDefault });
  }

  private publish(p: Publication): Promise<void> {
    const client = this.client;
    if (!client || !client.connected) {
      return Promise.reject(new Error(`not connected to the broker; ${p.topic} not sent${this.latest.has(p.topic) ? ' (the value is sent on reconnect)' : ''}`));
    }
    this.corkForThisTurn(client);
    return new Promise((resolve, reject) => {
      client.publish(p.topic, p.payload, { qos: p.qos, retain: p.retain }, (err) => (err ? reject(err) : resolve()));
    });
  }

  /**
   * With Nagle off (for low echo latency) every publish would be its own TCP segment. Publishes a flow sends in one
   * event-loop turn are instead written together when the turn ends.
   */
  private corkForThisTurn(client: MqttClient): void {
    const stream = client.stream as unknown as { cork?(): void; uncork?(): void } | undefined;
    if (this.corked || !stream?.cork || !stream.uncork) return;
    this.corked = true;
    stream.cork();
    setImmediate(() => {
      this.corked = false;
      stream.uncork?.();
    });
  }

  private warnUsers(text: string, owners?: string[]): void {
    const users = this.pool.list().filter((u) => !owners || owners.includes(u.id));
    if (users.length === 0) this.options.log.warn(text);
    for (const user of users) user.warn(text);
  }

  private replan(users: SgUser[]): void {
    // Between a redeploy's stop and start nobody is registered; keep the plan for the users about to come back
    // (a connection left without users is closed by its owner's sweep after the deploy).
    if (this.closed || users.length === 0) return;
    const plan = compilePlan(this.options.name, users.map((u) => u.declaration()));
    this.plan = plan;
    this.inputsByTopic = new Map(plan.inputs.map((i) => [i.topic, i]));
    for (const warning of plan.warnings) this.warnUsers(`${this.name}: ${warning}`);
    const client = this.client;
    if (!client || !client.connected || !this.applied) return;
    if (this.willKey(plan) !== this.appliedWill) {
      // The last will and client id are fixed per connection; a resource joining an app name needs a new one.
      this.reconnect(this.applied);
      return;
    }
    this.applyChanges(client, this.applied, plan);
  }

  private willKey(plan: SgPlan): string {
    return JSON.stringify(willFor(plan, this.options.qos) ?? null);
  }

  private open(): Promise<void> {
    this.connecting = this.doOpen().catch((err: unknown) => {
      // E.g. the embedded broker's port is taken: say so, and try again while anyone still uses this connection.
      // The broker node may attach the status that names the reason (e.g. "port 1884 is in use by another program").
      this.pool.setStatus((err as { status?: NodeStatus } | null)?.status ?? Status.error('node-red:common.status.error'));
      const text = `${this.name}: cannot connect: ${err instanceof Error ? err.message : String(err)}; retrying every ${this.retryDelay / 1000} s`;
      if (text !== this.lastOpenError) this.warnUsers(text);
      this.lastOpenError = text;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        if (!this.closed && this.pool.size > 0 && !this.client) void this.open();
      }, this.retryDelay);
    });
    return this.connecting;
  }

  private get retryDelay(): number {
    return this.options.retryDelay ?? 5000;
  }

  private async doOpen(): Promise<void> {
    this.pool.setStatus(Status.connecting());
    const endpoint = await this.options.endpoint();
    if (this.closed || this.pool.size === 0) return;
    // All users of one deploy register in the same tick, before the endpoint resolves.
    this.replan(this.pool.list());
    const plan = this.plan;
    const will = willFor(plan, this.options.qos);
    const options: IClientOptions = {
      ...endpoint.options,
      clientId: clientIdFor(this.name, this.options.clean, this.options.pid ?? process.pid),
    };
    if (will) options.will = { topic: will.topic, payload: Buffer.from(will.payload), qos: will.qos, retain: will.retain };
    this.appliedWill = this.willKey(plan);
    this.lastOpenError = '';
    const client = mqtt.connect(endpoint.url, options);
    this.client = client;
    client.on('connect', () => this.onConnect(client));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('reconnect', () => this.pool.setStatus(Status.connecting()));
    client.on('close', () => {
      if (this.client === client) {
        this.applied = undefined;
        this.pool.setStatus(Status.disconnected());
      }
    });
    // mqtt.js repeats the same error on every reconnect attempt; say it once until something changes.
    let lastError = '';
    client.on('connect', () => (lastError = ''));
    client.on('error', (err) => {
      if (err.message === lastError) return;
      lastError = err.message;
      this.options.log.warn(`${this.name}: ${err.message}`);
    });
  }

  private reconnect(before: SgPlan): void {
    const old = this.client;
    this.client = undefined;
    this.applied = undefined;
    const seen = before;
    const ending = old ? this.stopClient(old, stopPublication(seen)) : Promise.resolve();
    ending.then(() => (this.closed || this.pool.size === 0 ? undefined : this.open())).catch((err: unknown) => this.options.log.error(String(err)));
  }

  /** §4.2: one SUBSCRIBE per input topic in registration order, then the resource's startup publications. */
  private onConnect(client: MqttClient): void {
    if (this.client !== client) return;
    // Commands and echoes are small packets; Nagle + delayed ACK would add ~40 ms to each command -> echo trip.
    (client.stream as unknown as { setNoDelay?(noDelay: boolean): void }).setNoDelay?.(true);
    const plan = this.plan;
    if (this.willKey(plan) !== this.appliedWill) {
      // A resource joined this name while the app connection was being opened: it needs its will, so start over.
      this.reconnect(compilePlan(this.options.name, [])); // nothing was announced on this connection yet
      return;
    }
    this.pool.setStatus(Status.connected());
    for (const topic of subscriptionsOf(plan)) client.subscribe(topic, { qos: this.options.qos });
    for (const p of startupSequence(plan, this.options.qos, (topic, registered) => this.latestFor(topic, registered))) {
      client.publish(p.topic, p.payload, { qos: p.qos, retain: p.retain });
    }
    this.applied = plan;
  }

  private latestFor(topic: string, registered: string): string | undefined {
    const latest = this.latest.get(topic);
    return latest && latest.registeredDefault === registered ? latest.payload : undefined;
  }

  /** A redeploy changed the declarations while connected: subscribe what is new, announce what is new or changed. */
  private applyChanges(client: MqttClient, before: SgPlan, after: SgPlan): void {
    const oldTopics = new Set(subscriptionsOf(before));
    const newTopics = subscriptionsOf(after);
    const removed = [...oldTopics].filter((t) => !newTopics.includes(t));
    if (removed.length > 0) client.unsubscribe(removed);
    for (const topic of newTopics) if (!oldTopics.has(topic)) client.subscribe(topic, { qos: this.options.qos });
    const key = (p: Publication): string => `${p.topic}\u0000${p.payload}\u0000${p.retain}`;
    const current = (topic: string, registered: string): string | undefined => this.latestFor(topic, registered);
    const announced = new Set(startupSequence(before, this.options.qos, current).map(key));
    for (const p of startupSequence(after, this.options.qos, current)) {
      if (!announced.has(key(p))) client.publish(p.topic, p.payload, { qos: p.qos, retain: p.retain });
    }
    this.applied = after;
  }

  /** §5: decode, strip, depth check, exact-topic lookup, change-only, deliver, echo. */
  private onMessage(rawTopic: string, bytes: Buffer): void {
    const inbound = classifyInbound(rawTopic, bytes, this.inputsByTopic);
    if (!inbound.ok) return this.rejects.note(inbound.reason, inbound.detail);
    const { topic, entry, payload } = inbound;
    if (entry.changeOnly) {
      if (this.lastPayload.get(topic) === payload) return;
      this.lastPayload.set(topic, payload);
    }
    const [messagetype, service, signal] = topic.split('/') as [MessageType, string, string];
    const message: SgIncoming = { topic, kind: entry.kind, messagetype, service, signal, payload };
    const echoNow = entry.kind === 'command' && entry.echo && !entry.echoAnswer;
    if (entry.kind === 'command' && entry.echo && entry.echoAnswer) {
      const handle = randomUUID();
      const timer = setTimeout(() => {
        this.pending.delete(handle);
        this.warnUsers(`${this.name}: no answer for ${topic} within ${entry.answerTimeout} ms; nothing echoed`, entry.owners);
      }, entry.answerTimeout);
      this.pending.set(handle, { entry, payload, timer });
      message.answerHandle = handle;
    }
    for (const user of this.pool.list()) {
      if (entry.owners.includes(user.id)) user.deliver({ ...message });
    }
    if (echoNow) this.echo(entry, payload).catch((err: unknown) => this.warnUsers(`${this.name}: echo on data/${service}/${signal} failed: ${String(err)}`, entry.owners));
  }

  /** Clean stop of one client: presence False (QoS 1, retained) acknowledged, then DISCONNECT; forced after a timeout. */
  private async stopClient(client: MqttClient, last: Publication | undefined): Promise<void> {
    const timeout = this.options.closeTimeout ?? 2000;
    const withTimeout = (work: (resolve: () => void) => void): Promise<void> =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeout);
        work(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    client.removeAllListeners('connect');
    client.removeAllListeners('message');
    client.on('error', () => undefined);
    if (last && client.connected) {
      await withTimeout((done) => client.publish(last.topic, last.payload, { qos: last.qos, retain: last.retain }, () => done()));
    }
    await withTimeout((done) => client.end(false, {}, () => done()));
    if (!client.disconnected) await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
  }

  private async shutdown(): Promise<void> {
    this.rejects.close();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const pending of this.pending.values()) clearTimeout(pending.timer);
    this.pending.clear();
    if (this.connecting) await this.connecting.catch(() => undefined);
    this.connecting = undefined;
    const client = this.client;
    const seen = this.applied ?? this.plan;
    this.client = undefined;
    this.applied = undefined;
    if (client) await this.stopClient(client, stopPublication(seen));
    this.pool.setStatus(Status.disconnected());
    await this.options.release();
  }
}
