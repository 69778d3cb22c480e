// The service side of ApiGear over MQTT v5 on a plain mqtt.js client: retained props, signals, set and rpc requests.
import { EventEmitter } from 'events';
import type { IPublishPacket } from 'mqtt';
import type { ManagedMqttClient } from '../mqtt/managed-client';
import { ApiGearValueError, InterfacePlan, OperationPlan } from './plan';
import { encodeJson, Listeners, publish, QoS, subscribeAll } from './wire';
import { decodePayload } from './inbound';
import { RejectedInput } from '../common/rejects';
import { asError } from '../common/guards';

export interface SetRequest {
  property: string;
  value: unknown;
}

/** One incoming operation call; the reply goes to `responseTopic` with `correlationData` echoed byte for byte. */
export interface Call {
  operation: string;
  args: unknown[];
  /** Absent when the caller sent none (a v3 client): such calls cannot be answered. */
  responseTopic?: string;
  correlationData?: Buffer;
}

export interface ServiceOptions {
  qos?: QoS;
  /** Apply valid `set` requests to the property at once (publishing `prop`), besides reporting them. */
  applySet?: boolean;
  /** Dropped inbound messages are reported once per burst and reason, at most once per this many ms (default 10 s). */
  warnIntervalMs?: number;
}

/** The QoS the broker granted for our subscriptions, beside the configured one (lower: the broker's limit). */
export interface Grant {
  requestedQos: QoS;
  grantedQos: QoS;
}

export interface ServiceEvents {
  set: [SetRequest];
  call: [Call];
  /** Network input that was dropped (malformed JSON, unknown member, value breaking the IDL): one line per burst. */
  warning: [string];
  /** Subscribed (all SUBACKs in) and current properties republished after a (re)connect; with the QoS granted. */
  ready: [Grant];
  error: [Error];
}

export class ApiGearService extends EventEmitter<ServiceEvents> {
  private readonly values = new Map<string, string>();
  private readonly hooks: Listeners;
  private readonly qos: QoS;
  private readonly rejects: RejectedInput;
  private started = false;

  constructor(
    readonly plan: InterfacePlan,
    private readonly client: ManagedMqttClient,
    private readonly options: ServiceOptions = {},
  ) {
    super();
    this.qos = options.qos ?? 2;
    this.hooks = new Listeners(client);
    this.rejects = new RejectedInput(plan.interface, (text) => this.emit('warning', text), options.warnIntervalMs);
  }

  /** Inbound messages dropped so far for `reason` (e.g. 'not JSON', 'unknown member', 'breaks the IDL'). */
  dropped(reason: string): number {
    return this.rejects.total(reason);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.hooks.on('connect', () => this.onConnect());
    this.hooks.on('message', (topic: string, payload: Buffer, packet: IPublishPacket) =>
      this.onMessage(topic, payload, packet),
    );
    if (this.client.connected) this.onConnect();
  }

  /** Detaches from the client; the caller owns (and ends) the client itself. */
  stop(): void {
    this.started = false;
    this.hooks.removeAll();
    this.rejects.close();
  }

  /** The current JSON value of a property, if it was ever set. */
  value(name: string): unknown {
    const json = this.values.get(name);
    return json === undefined ? undefined : JSON.parse(json);
  }

  /**
   * Sets a property: validates (throwing before anything is published), then publishes it retained if it changed.
   * While disconnected the value is kept and goes out on the next connect. Resolves true if it changed.
   */
  async setProperty(name: string, value: unknown): Promise<boolean> {
    const prop = this.plan.properties.get(name);
    if (!prop)
      throw new ApiGearValueError(
        `${this.plan.interface} has no property ${name} (properties: ${[...this.plan.properties.keys()].join(', ') || 'none'})`,
      );
    prop.check(value);
    const json = encodeJson(value);
    if (this.values.get(name) === json) return false;
    this.values.set(name, json);
    if (this.client.connected) await publish(this.client, prop.topic, json, { qos: this.qos, retain: true });
    return true;
  }

  /**
   * Clears the retained value of every property of the interface (empty retained payloads), so clients stop seeing
   * properties of an implementation that no longer exists — including values an earlier instance of this node
   * published before a restart. For a removed service node, not for a restart.
   */
  async clearProperties(): Promise<void> {
    this.values.clear();
    if (!this.client.connected) return;
    await Promise.all(
      [...this.plan.properties.values()].map((p) => publish(this.client, p.topic, '', { qos: this.qos, retain: true })),
    );
  }

  /** Publishes a signal: a JSON array of the arguments in declaration order, not retained. */
  async emitSignal(name: string, args: unknown[]): Promise<void> {
    const sig = this.plan.signals.get(name);
    if (!sig)
      throw new ApiGearValueError(
        `${this.plan.interface} has no signal ${name} (signals: ${[...this.plan.signals.keys()].join(', ') || 'none'})`,
      );
    sig.checkArgs(args);
    await publish(this.client, sig.topic, encodeJson(args), { qos: this.qos, retain: false });
  }

  /**
   * Answers a call: the result (checked against the return type; `null` for void operations) goes to the
   * request's ResponseTopic, never to a topic we build ourselves, with CorrelationData echoed verbatim.
   * Resolves false when the call carried no ResponseTopic and so cannot be answered.
   */
  async reply(call: Call, result: unknown): Promise<boolean> {
    const op = this.operation(call.operation);
    if (!op.void) op.checkResult(result);
    if (!call.responseTopic) return false;
    const properties: IPublishPacket['properties'] = {};
    if (call.correlationData) properties.correlationData = call.correlationData;
    await publish(this.client, call.responseTopic, encodeJson(op.void ? (result ?? null) : result), {
      qos: this.qos,
      retain: false,
      properties,
    });
    return true;
  }

  private operation(name: string): OperationPlan {
    const op = this.plan.operations.get(name);
    if (!op)
      throw new ApiGearValueError(
        `${this.plan.interface} has no operation ${name} (operations: ${[...this.plan.operations.keys()].join(', ') || 'none'})`,
      );
    return op;
  }

  private onConnect(): void {
    // Clean start: the broker forgot our subscriptions, so subscribe again; republish props as the C++ service does.
    let grantedQos = this.qos;
    subscribeAll(this.client, this.plan.serviceSubscriptions, this.qos)
      .then((granted) => {
        grantedQos = granted;
        return Promise.all(
          [...this.values].map(([name, json]) =>
            publish(this.client, this.plan.properties.get(name)!.topic, json, { qos: this.qos, retain: true }),
          ),
        );
      })
      .then(() => {
        if (this.started) this.emit('ready', { requestedQos: this.qos, grantedQos });
      })
      .catch((err: unknown) => {
        if (this.started) this.emit('error', asError(err));
      });
  }

  private onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    const route = this.plan.route(topic);
    if (!route) return;
    if (route.verb === 'set') this.onSet(route.member, payload);
    else if (route.verb === 'rpc') this.onCall(route.member, payload, packet);
  }

  private onSet(name: string, payload: Buffer): void {
    // Member names from the wire are looked up in the plan's Maps only: `__proto__` or `constructor` find nothing.
    const prop = this.plan.properties.get(name);
    if (!prop) return this.rejects.note('unknown member', `set/${name}`);
    if (prop.readonly) return this.rejects.note('read-only property', `set/${name}`);
    const decoded = decodePayload(payload);
    if (!decoded) return this.rejects.note('empty payload', `set/${name}`);
    if (!decoded.ok) return this.rejects.note(decoded.reason, `set/${name}: ${decoded.error}`);
    try {
      prop.check(decoded.value);
    } catch (err) {
      return this.rejects.note('breaks the IDL', `set/${name}: ${(err as Error).message}`);
    }
    if (this.options.applySet) {
      this.setProperty(name, decoded.value).catch((err: unknown) => this.emit('error', asError(err)));
    }
    this.emit('set', { property: name, value: decoded.value });
  }

  private onCall(name: string, payload: Buffer, packet: IPublishPacket): void {
    // `_`-prefixed operations are reserved for template-internal helpers; we implement none.
    if (name.startsWith('_')) return;
    const op = this.plan.operations.get(name);
    if (!op) return this.rejects.note('unknown member', `rpc/${name}`);
    const decoded = decodePayload(payload) ?? { ok: true as const, value: [] };
    if (!decoded.ok) return this.rejects.note(decoded.reason, `rpc/${name}: ${decoded.error}`);
    try {
      op.checkArgs(decoded.value as unknown[]);
    } catch (err) {
      return this.rejects.note('breaks the IDL', `rpc/${name}: ${(err as Error).message}`);
    }
    const responseTopic = packet.properties?.responseTopic;
    const correlationData = packet.properties?.correlationData;
    if (!responseTopic) this.rejects.note('no ResponseTopic, cannot be answered', `rpc/${name} (an MQTT v3 caller?)`);
    this.emit('call', { operation: name, args: decoded.value as unknown[], responseTopic, correlationData });
  }
}
