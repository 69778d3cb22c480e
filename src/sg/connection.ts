// One sgframework identity on one broker: the managed MQTT client of a resource/app name, shared by every node using
// that name. Executes the compiled plan on every (re)connect, dispatches incoming messages, echoes, and stops cleanly.
import { randomUUID } from 'crypto';
import { ConnectionPool, PoolUser } from '../common/pool';
import type { MqttEndpoint } from '../mqtt/endpoint';
import type { ConnectionState } from '../mqtt/connection-state';
import { claimClientId, ClaimedId } from '../mqtt/client-ids';
import { ManagedMqttClient, QueueOptions } from '../mqtt/managed-client';
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
import { messageOf } from '../common/guards';

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
  /** The connection's state (phase and reason), for the node's status. */
  connectionState(state: ConnectionState): void;
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
  /** Reconnect backoff bounds; default 1 s .. 60 s. */
  retry?: { initialMs: number; maxMs: number };
  /** A connection up this long resets the backoff; default 10 s. */
  stableMs?: number;
  /** The offline queue (bounds, QoS 0, durable file). */
  queue?: QueueOptions;
  /** A failure whose reason differs from the last one (log it once, not once per user or retry). */
  failure?(state: ConnectionState, clientId: string): void;
  /** Publishes dropped from a full offline queue: once per burst, with the count. */
  dropped?(count: number, clientId: string): void;
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
  private client: ManagedMqttClient | undefined;
  private claimed: ClaimedId | undefined;
  private plan: SgPlan;
  /** The plan the broker has seen (subscriptions and startup publications) on the current connection. */
  private applied: SgPlan | undefined;
  /** The will the current (or last) attempt was made with. */
  private dialedWill: string | undefined;
  private inputsByTopic = new Map<string, InputEntry>();
  private readonly latest = new Map<string, LatestValue>();
  /** callback_on_change_only memory; like sgframework it survives reconnects. */
  private readonly lastPayload = new Map<string, string>();
  private readonly pending = new Map<string, PendingAnswer>();
  private closed = false;
  private lastState: ConnectionState = { phase: 'closed' };
  private stopping: Promise<void> = Promise.resolve();
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

  /** The MQTT client id in use (unique in this process), once connecting. */
  get clientId(): string | undefined {
    return this.claimed?.id;
  }

  /** Publishes queued or awaiting their acknowledgement. */
  get backlog(): number {
    return this.client?.backlog ?? 0;
  }

  get state(): ConnectionState {
    return this.lastState;
  }

  /** The plan currently in force (merged declarations of every user). */
  get currentPlan(): SgPlan {
    return this.plan;
  }

  register(user: SgUser): void {
    this.pool.register(user);
    user.connectionState(this.lastState);
  }

  deregister(user: SgUser, removed: boolean): Promise<void> {
    return this.pool.deregister(user, removed);
  }

  /** Stops regardless of users: presence False (resources), DISCONNECT, release the broker. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool.close();
  }

  /**
   * Publishes a declared data signal (sgframework send_data). Rejects for undeclared signals; while disconnected the
   * message is queued (see the broker's offline queue) and the promise settles when it is delivered or dropped.
   */
  sendData(rawSignal: string, payload: string | Buffer): Promise<void> {
    const signal = pythonStrip(rawSignal);
    const entry = this.plan.outputs.find((o) => o.signal === signal);
    if (!entry) {
      return Promise.reject(
        new Error(
          `"${signal}" is not a declared data signal of ${this.name} (declared: ${this.plan.outputs.map((o) => o.signal).join(', ') || 'none'})`,
        ),
      );
    }
    this.remember(entry.topic, entry.defaultValue, payload);
    return this.publish({ topic: entry.topic, payload, qos: this.options.qos, retain: entry.retained });
  }

  /** Sends a command to any resource (sgframework send_command); no declaration needed. */
  sendCommand(rawService: string, rawSignal: string, payload: string | Buffer, retain = false): Promise<void> {
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
  answer(handle: string, payload: string | Buffer | null): Promise<void> {
    const pending = this.pending.get(handle);
    if (!pending)
      return Promise.reject(new Error(`no command is waiting for this answer (handle ${handle} unknown or timed out)`));
    this.pending.delete(handle);
    clearTimeout(pending.timer);
    return this.echo(pending.entry, payload ?? pending.payload);
  }

  private echo(entry: InputEntry, payload: string | Buffer): Promise<void> {
    const topic = topicOf('data', entry.service, entry.signal);
    this.remember(topic, entry.defaultValue, payload);
    return this.publish({ topic, payload, qos: this.options.qos, retain: entry.echoRetained });
  }

  /** sgframework replaces a default by the latest sent value only when a default was registered (text values only). */
  private remember(topic: string, registeredDefault: string | null, payload: string | Buffer): void {
    if (registeredDefault !== null && typeof payload === 'string')
      this.latest.set(topic, { payload, registeredDefault });
  }

  private publish(p: { topic: string; payload: string | Buffer; qos: SgQos; retain: boolean }): Promise<void> {
    const client = this.client;
    if (!client)
      return Promise.reject(new Error(`${this.name} is not connecting (no node uses it); ${p.topic} not sent`));
    return client.publish(p.topic, p.payload, { qos: p.qos, retain: p.retain });
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
    const plan = compilePlan(
      this.options.name,
      users.map((u) => u.declaration()),
    );
    const planChanged = JSON.stringify(plan) !== JSON.stringify(this.plan);
    this.plan = plan;
    this.inputsByTopic = new Map(plan.inputs.map((i) => [i.topic, i]));
    if (planChanged) for (const warning of plan.warnings) this.warnUsers(`${this.name}: ${warning}`);
    const client = this.client;
    if (!client || !client.connected || !this.applied) return;
    if (this.willKey(plan) !== this.dialedWill) {
      // The last will is fixed per connection; a resource joining an app name needs a new one.
      this.restart(this.applied);
      return;
    }
    this.applyChanges(client, this.applied, plan);
  }

  private willKey(plan: SgPlan): string {
    return JSON.stringify(willFor(plan, this.options.qos) ?? null);
  }

  private open(): void {
    // A connection closed a moment ago may still be releasing its queue file: open after it.
    void this.stopping.then(() => {
      if (this.closed || this.pool.size === 0 || this.client) return;
      try {
        this.openNow();
      } catch (err) {
        // E.g. the durable queue file cannot be opened: say so; nothing is sent weaker than configured.
        this.setState({ phase: 'failed', reason: 'config', detail: messageOf(err) });
        this.options.log.error(`${this.name}: ${messageOf(err)}`);
      }
    });
  }

  private openNow(): void {
    this.claimed ??= claimClientId(clientIdFor(this.name, this.options.clean, this.options.pid ?? process.pid));
    const client = new ManagedMqttClient({
      clientId: this.claimed.id,
      endpoint: () => this.options.endpoint(),
      will: () => {
        // Every user of a deploy has registered by now (the broker node holds the endpoint until the flows started),
        // so the first CONNECT already carries the will of a resource, whatever the node order.
        this.replan(this.pool.list());
        this.dialedWill = this.willKey(this.plan);
        const will = willFor(this.plan, this.options.qos);
        return will && { ...will };
      },
      retry: this.options.retry,
      stableMs: this.options.stableMs,
      queue: this.options.queue,
      closeTimeoutMs: this.options.closeTimeout,
    });
    this.client = client;
    client.on('state', (state) => this.setState(state));
    client.on('failure', (state) => this.options.failure?.(state, client.clientId));
    client.on('connect', () => this.onConnect(client));
    client.on('close', () => (this.applied = undefined));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('dropped', (count) => this.options.dropped?.(count, client.clientId));
    client.on('warning', (text) => this.warnUsers(`${this.name}: ${text}`));
    client.start();
  }

  private setState(state: ConnectionState): void {
    this.lastState = state;
    for (const user of this.pool.list()) user.connectionState(state);
  }

  private restart(before: SgPlan): void {
    const client = this.client;
    this.applied = undefined;
    client?.restart(stopPublication(before)).catch((err: unknown) => this.options.log.error(String(err)));
  }

  /** §4.2: one SUBSCRIBE per input topic in registration order, then the resource's startup publications. */
  private onConnect(client: ManagedMqttClient): void {
    if (this.client !== client) return;
    const plan = this.plan;
    if (this.willKey(plan) !== this.dialedWill) {
      // A resource joined this name while the connection was being opened: it needs its will, so start over.
      this.restart(compilePlan(this.options.name, [])); // nothing was announced on this connection yet
      return;
    }
    const failed = (err: unknown): void => this.options.log.warn(`${this.name}: ${messageOf(err)}`);
    for (const topic of subscriptionsOf(plan)) client.subscribe([topic], this.options.qos).catch(failed);
    for (const p of startupSequence(plan, this.options.qos, (topic, registered) => this.latestFor(topic, registered))) {
      client.publishNow(p.topic, p.payload, { qos: p.qos, retain: p.retain }).catch(() => undefined);
    }
    this.applied = plan;
  }

  private latestFor(topic: string, registered: string): string | undefined {
    const latest = this.latest.get(topic);
    return latest && latest.registeredDefault === registered ? latest.payload : undefined;
  }

  /** A redeploy changed the declarations while connected: subscribe what is new, announce what is new or changed. */
  private applyChanges(client: ManagedMqttClient, before: SgPlan, after: SgPlan): void {
    const oldTopics = new Set(subscriptionsOf(before));
    const newTopics = subscriptionsOf(after);
    const removed = [...oldTopics].filter((t) => !newTopics.includes(t));
    const failed = (err: unknown): void => this.options.log.warn(`${this.name}: ${messageOf(err)}`);
    if (removed.length > 0) client.unsubscribe(removed).catch(failed);
    for (const topic of newTopics) if (!oldTopics.has(topic)) client.subscribe([topic], this.options.qos).catch(failed);
    const key = (p: Publication): string => `${p.topic}\u0000${p.payload}\u0000${p.retain}`;
    const current = (topic: string, registered: string): string | undefined => this.latestFor(topic, registered);
    const announced = new Set(startupSequence(before, this.options.qos, current).map(key));
    for (const p of startupSequence(after, this.options.qos, current)) {
      if (!announced.has(key(p)))
        client.publishNow(p.topic, p.payload, { qos: p.qos, retain: p.retain }).catch(() => undefined);
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
        this.warnUsers(
          `${this.name}: no answer for ${topic} within ${entry.answerTimeout} ms; nothing echoed`,
          entry.owners,
        );
      }, entry.answerTimeout);
      this.pending.set(handle, { entry, payload, timer });
      message.answerHandle = handle;
    }
    for (const user of this.pool.list()) {
      if (entry.owners.includes(user.id)) user.deliver({ ...message });
    }
    if (echoNow)
      this.echo(entry, payload).catch((err: unknown) =>
        this.warnUsers(`${this.name}: echo on data/${service}/${signal} failed: ${String(err)}`, entry.owners),
      );
  }

  private shutdown(): Promise<void> {
    const stopped = this.stop();
    this.stopping = stopped.catch(() => undefined);
    return stopped;
  }

  private async stop(): Promise<void> {
    this.rejects.close();
    for (const pending of this.pending.values()) clearTimeout(pending.timer);
    this.pending.clear();
    const client = this.client;
    const seen = this.applied ?? this.plan;
    this.client = undefined;
    this.applied = undefined;
    if (client) await client.close(stopPublication(seen));
    this.claimed?.release();
    this.claimed = undefined;
    this.setState({ phase: 'closed' });
    await this.options.release();
  }
}
