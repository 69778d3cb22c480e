// The client side of ApiGear over MQTT v5 on a plain mqtt.js client: property cache, signals, set and invoke.
import { randomUUID } from 'crypto';
import { EventEmitter } from 'events';
import type { IPublishPacket } from 'mqtt';
import type { ManagedMqttClient } from '../mqtt/managed-client';
import { ApiGearValueError, InterfacePlan, OperationPlan } from './plan';
import { encodeJson, Listeners, publish, QoS, subscribeAll } from './wire';
import { decodePayload } from './inbound';
import { RejectedInput } from '../common/rejects';
import type { Grant } from './service';
import { asError } from '../common/guards';

export interface ClientOptions {
  /** Our MQTT client id: it is part of every reply topic, so it must be the id the connection really uses. */
  clientId: string;
  qos?: QoS;
  /** Default time to wait for a reply, in milliseconds. */
  timeoutMs?: number;
  /** Dropped inbound messages are reported once per burst and reason, at most once per this many ms (default 10 s). */
  warnIntervalMs?: number;
}

export interface ClientEvents {
  property: [{ property: string; value: unknown }];
  signal: [{ signal: string; args: unknown[] }];
  warning: [string];
  /** Subscribed (all SUBACKs in); with the QoS granted (lower than configured: the broker's limit). */
  ready: [Grant];
  error: [Error];
}

interface Pending {
  operation: OperationPlan;
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ApiGearTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiGearTimeoutError';
  }
}

export class ApiGearClient extends EventEmitter<ClientEvents> {
  private readonly cache = new Map<string, string>();
  private readonly pending = new Map<string, Pending>();
  private readonly hooks: Listeners;
  private readonly qos: QoS;
  private readonly subscriptions: string[];
  private readonly rejects: RejectedInput;
  private started = false;
  private readyNow = false;
  private waiters: Array<() => void> = [];
  /** Replies that matched no pending call (late, duplicate or someone else's): dropped, but counted. */
  dropped = 0;

  constructor(
    readonly plan: InterfacePlan,
    private readonly client: ManagedMqttClient,
    private readonly options: ClientOptions,
  ) {
    super();
    if (!options.clientId || /[+#/]/.test(options.clientId)) {
      throw new Error('ApiGear client needs an explicit client id without /, + or # (it becomes a topic level)');
    }
    this.qos = options.qos ?? 2;
    this.subscriptions = plan.clientSubscriptions(options.clientId);
    this.hooks = new Listeners(client);
    this.rejects = new RejectedInput(plan.interface, (text) => this.emit('warning', text), options.warnIntervalMs);
  }

  /** Inbound messages dropped so far for `reason` (e.g. 'not JSON', 'unknown member', 'breaks the IDL'). */
  droppedFor(reason: string): number {
    return this.rejects.total(reason);
  }

  get ready(): boolean {
    return this.readyNow;
  }

  /** Last value seen for a property (undefined before the first `prop` arrives). */
  value(name: string): unknown {
    const json = this.cache.get(name);
    return json === undefined ? undefined : JSON.parse(json);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.hooks.on('connect', () => this.onConnect());
    this.hooks.on('close', () => {
      this.readyNow = false;
    });
    this.hooks.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) =>
      this.onMessage(topic, payload, packet),
    );
    if (this.client.connected) this.onConnect();
  }

  /** Detaches from the client and fails every pending call; the caller owns (and ends) the client. */
  stop(): void {
    this.started = false;
    this.readyNow = false;
    this.hooks.removeAll();
    this.rejects.close();
    for (const [key, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(key);
      p.reject(
        new Error(`${this.plan.interface}.${p.operation.name}: the client was stopped before the reply arrived`),
      );
    }
    for (const w of this.waiters.splice(0)) w();
  }

  /** Requests a property change (`set/<p>`, not retained). Validates first: a bad value publishes nothing. */
  async setProperty(name: string, value: unknown): Promise<void> {
    const prop = this.plan.properties.get(name);
    if (!prop)
      throw new ApiGearValueError(
        `${this.plan.interface} has no property ${name} (properties: ${[...this.plan.properties.keys()].join(', ') || 'none'})`,
      );
    if (prop.readonly) throw new ApiGearValueError(`${this.plan.interface}.${name}: property is read-only`);
    prop.check(value);
    await publish(this.client, prop.setTopic, encodeJson(value), { qos: this.qos, retain: false });
  }

  /**
   * Invokes an operation and resolves with its return value. Fresh CorrelationData per call; the reply is matched
   * by exact bytes, so services that echo (as the spec requires) always match, whatever id format they use.
   * Void operations complete on the publish acknowledgement or on a reply, whichever comes first.
   */
  async invoke(name: string, args: unknown[], timeoutMs = this.options.timeoutMs ?? 30000): Promise<unknown> {
    const op = this.plan.operations.get(name);
    if (!op)
      throw new ApiGearValueError(
        `${this.plan.interface} has no operation ${name} (operations: ${[...this.plan.operations.keys()].join(', ') || 'none'})`,
      );
    op.checkArgs(args);
    const deadline = Date.now() + timeoutMs;
    // A reply can only reach us once the result subscription is acknowledged.
    await this.whenReady(timeoutMs, op);
    const correlationData = Buffer.from(randomUUID(), 'utf8');
    const key = correlationData.toString('hex');
    const result = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.pending.delete(key);
          reject(new ApiGearTimeoutError(`${this.plan.interface}.${name}: no reply within ${timeoutMs} ms`));
        },
        Math.max(0, deadline - Date.now()),
      );
      this.pending.set(key, { operation: op, resolve, reject, timer });
    });
    const sent = publish(this.client, op.topic, encodeJson(args), {
      qos: this.qos,
      retain: false,
      properties: { responseTopic: op.responseTopic(this.options.clientId), correlationData },
    });
    sent.then(
      () => {
        if (op.void) this.settle(key, (p) => p.resolve(null));
      },
      (err: unknown) => this.settle(key, (p) => p.reject(asError(err))),
    );
    return result;
  }

  private settle(key: string, fn: (p: Pending) => void): boolean {
    const p = this.pending.get(key);
    if (!p) return false;
    this.pending.delete(key);
    clearTimeout(p.timer);
    fn(p);
    return true;
  }

  private whenReady(timeoutMs: number, op: OperationPlan): Promise<void> {
    if (this.readyNow) return Promise.resolve();
    if (!this.started) return Promise.reject(new Error(`${this.plan.interface}.${op.name}: the client is not started`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(
          new ApiGearTimeoutError(
            `${this.plan.interface}.${op.name}: not connected to the broker within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      const wake = (): void => {
        clearTimeout(timer);
        if (this.readyNow) resolve();
        else reject(new Error(`${this.plan.interface}.${op.name}: the client was stopped`));
      };
      this.waiters.push(wake);
    });
  }

  private onConnect(): void {
    this.readyNow = false;
    subscribeAll(this.client, this.subscriptions, this.qos)
      .then((grantedQos) => {
        if (!this.started) return;
        this.readyNow = true;
        for (const w of this.waiters.splice(0)) w();
        this.emit('ready', { requestedQos: this.qos, grantedQos });
      })
      .catch((err: unknown) => {
        if (this.started) this.emit('error', asError(err));
      });
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const route = this.plan.route(topic);
    if (!route) return;
    if (route.verb === 'prop') this.onProperty(route.member, payload);
    else if (route.verb === 'sig') this.onSignal(route.member, payload);
    else if (route.verb === 'result') this.onResult(route.member, payload, packet);
  }

  private onProperty(name: string, payload: Buffer): void {
    // Member names from the wire are looked up in the plan's Maps only: `__proto__` or `constructor` find nothing.
    const prop = this.plan.properties.get(name);
    if (!prop) return this.rejects.note('unknown member', `prop/${name}`);
    const decoded = decodePayload(payload);
    if (!decoded) {
      // An empty retained message clears the value at the broker; forget ours so the next value is reported.
      this.cache.delete(name);
      return;
    }
    if (!decoded.ok) return this.rejects.note(decoded.reason, `prop/${name}: ${decoded.error}`);
    try {
      prop.check(decoded.value);
    } catch (err) {
      return this.rejects.note('breaks the IDL', `prop/${name}: ${(err as Error).message}`);
    }
    const json = JSON.stringify(decoded.value);
    if (this.cache.get(name) === json) return;
    this.cache.set(name, json);
    this.emit('property', { property: name, value: decoded.value });
  }

  private onSignal(name: string, payload: Buffer): void {
    const sig = this.plan.signals.get(name);
    if (!sig) return this.rejects.note('unknown member', `sig/${name}`);
    const decoded = decodePayload(payload) ?? { ok: true as const, value: [] };
    if (!decoded.ok) return this.rejects.note(decoded.reason, `sig/${name}: ${decoded.error}`);
    try {
      sig.checkArgs(decoded.value as unknown[]);
    } catch (err) {
      return this.rejects.note('breaks the IDL', `sig/${name}: ${(err as Error).message}`);
    }
    this.emit('signal', { signal: name, args: decoded.value as unknown[] });
  }

  private onResult(name: string, payload: Buffer, packet: IPublishPacket): void {
    const corr = packet.properties?.correlationData;
    const key = corr ? Buffer.from(corr).toString('hex') : undefined;
    const p = key === undefined ? undefined : this.pending.get(key);
    if (!p || p.operation.name !== name) {
      // Late (after a timeout), duplicate (QoS retransmit) or someone else's: dropped, counted, said once per burst.
      this.dropped++;
      this.rejects.note('reply matches no pending call', `rpc/${name}/…/result`);
      return;
    }
    const decoded = decodePayload(payload) ?? { ok: true as const, value: null };
    this.settle(key!, (pending) => {
      if (!decoded.ok)
        return pending.reject(
          new Error(`${this.plan.interface}.${name}: reply is ${decoded.reason} (${decoded.error})`),
        );
      try {
        pending.operation.checkResult(decoded.value);
      } catch (err) {
        return pending.reject(err as Error);
      }
      pending.resolve(decoded.value);
    });
  }
}
