// What apigear-service and apigear-client share: reading the declared interface, the v5 connection through the
// sg-broker config node, status wiring, the editor's parse endpoint, and msg-topic parsing.
import mqtt, { IClientOptions, MqttClient } from 'mqtt';
import type { Node, NodeAPI, NodeDef, AdminRequest, AdminResponse } from './red';
import { compilePlan, HandMember, InterfacePlan, Module, moduleFromMembers, parseModule } from '../../src/apigear';
import { Status } from '../../src/common/status';
import type { PoolUser } from '../../src/common/pool';

/**
 * The part of the sg-broker config node the ApiGear nodes use (its runtime API, see nodes/lib/sg-broker-api.ts):
 * connection settings for a new client, and a release when the node closes.
 */
export interface MqttBrokerConfig {
  endpoint(user: PoolUser): Promise<{ url: string; options: IClientOptions }>;
  release(user: PoolUser, removed: boolean): Promise<void>;
}

/** Flow JSON shared by both ApiGear node types. */
export interface ApiGearDef extends NodeDef {
  broker?: string;
  /** `yaml`: a pasted ApiGear module; `members`: members listed by hand. */
  source?: 'yaml' | 'members';
  moduleYaml?: string;
  /** Module name when members are listed by hand (the YAML carries its own). */
  module?: string;
  interface?: string;
  members?: HandMember[];
  clientId?: string;
  qos?: number | string;
}

export type QoS = 0 | 1 | 2;

/**
 * QoS for every publish and subscription of a node. Default 1, the ApiGear spec's default: the generated templates use
 * 2, but the embedded aedes 2.0.0-beta.1 broker now and then acknowledges a QoS 2 publish without delivering it.
 */
export function qosOf(value: unknown): QoS {
  if (value === undefined || value === null || value === '') return 1;
  const n = Number(value);
  return n === 0 || n === 2 ? n : 1;
}

/** Compiles the node's declaration; throws an error naming the declaration at fault. */
export function planOf(def: ApiGearDef): InterfacePlan {
  let mod: Module;
  if (def.source === 'members') mod = moduleFromMembers((def.module ?? '').trim(), (def.interface ?? '').trim(), def.members ?? []);
  else {
    if (!def.moduleYaml || !def.moduleYaml.trim()) throw new Error('no ApiGear module YAML is given');
    mod = parseModule(def.moduleYaml);
  }
  return compilePlan(mod, (def.interface ?? '').trim());
}

/** The node's MQTT client id: as configured, else derived from the node id, which stays the same across deploys. */
export function clientIdOf(node: Node, def: ApiGearDef, prefix: string): string {
  const id = (def.clientId ?? '').trim();
  // The id becomes a topic level of every reply topic, so it cannot hold MQTT separators or wildcards.
  if (id && !/^[^\s+#/]{1,128}$/.test(id)) throw new Error(`client id ${JSON.stringify(id)}: up to 128 characters, no spaces, +, # or /`);
  return id || `${prefix}-${node.id.replace(/[^A-Za-z0-9_-]/g, '')}`;
}

/** The verb/member addressed by `msg.topic` (`set/last`, `rpc/say`, …, or a bare member name). */
export function topicOf(topic: unknown): { verb?: string; member: string } | undefined {
  if (typeof topic !== 'string' || topic.trim() === '') return undefined;
  const parts = topic.trim().split('/');
  if (parts.length === 1) return { member: parts[0] };
  return { verb: parts[parts.length - 2], member: parts[parts.length - 1] };
}

/** CorrelationData as a Buffer, whether it survived as a Buffer, its JSON form, or a plain byte array. */
export function bytesOf(value: unknown): Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) return Buffer.from(value as number[]);
  const json = value as { type?: unknown; data?: unknown };
  if (json.type === 'Buffer' && Array.isArray(json.data)) return bytesOf(json.data);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return undefined;
}

/**
 * One node's own MQTT v5 connection through the sg-broker config node: explicit client id, clean start,
 * resubscription left to the ApiGear core (it subscribes on every connect). Status follows the connection.
 */
export class V5Connection {
  client: MqttClient | undefined;
  private readonly user: PoolUser;
  private opening: Promise<MqttClient | undefined> | undefined;
  private closed = false;

  constructor(
    private readonly node: Node,
    private readonly broker: MqttBrokerConfig,
    private readonly clientId: string,
  ) {
    this.user = { id: node.id, status: () => undefined };
  }

  /** Settles once the client exists (or opening failed): inputs that arrive before wait for it. */
  get opened(): Promise<unknown> {
    return this.opening ?? Promise.resolve(undefined);
  }

  open(onClient: (client: MqttClient) => void): void {
    this.node.status(Status.connecting());
    this.opening = this.broker.endpoint(this.user).then(
      ({ url, options }) => {
        if (this.closed) return undefined;
        const client = mqtt.connect(url, {
          ...options,
          // ApiGear needs v5 (ResponseTopic, CorrelationData) whatever protocol the broker node is set to for sg.
          protocolId: 'MQTT',
          protocolVersion: 5,
          clientId: this.clientId,
          clean: true,
          resubscribe: false,
        });
        this.client = client;
        // Calls are request/reply with small QoS 1/2 packets: Nagle plus delayed ACK would add ~40 ms per exchange.
        client.on('connect', () => (client.stream as { setNoDelay?: (on: boolean) => void } | undefined)?.setNoDelay?.(true));
        client.on('reconnect', () => this.node.status(Status.connecting()));
        client.on('close', () => this.node.status(Status.disconnected()));
        // A broker that is down fails every reconnect attempt the same way: say so once, not every second.
        let lastError = '';
        client.on('connect', () => {
          lastError = '';
        });
        client.on('error', (err) => {
          this.node.status(Status.error('node-red:common.status.error'));
          if (err.message !== lastError) this.node.warn(`MQTT: ${err.message}`);
          lastError = err.message;
        });
        onClient(client);
        return client;
      },
    ).catch((err: unknown) => {
      // Broker node failures (embedded broker cannot listen) and connect-time throws (a malformed URL) end here, as a
      // status and a log line — never as an unhandled rejection that could take the runtime down.
      this.node.status(Status.error('node-red:common.status.error'));
      this.node.error(`MQTT broker: ${err instanceof Error ? err.message : String(err)}`);
      this.client?.end(true);
      return undefined;
    });
  }

  /** Ends the client (forcibly if a clean end stalls) and releases the broker config node. */
  async close(removed: boolean): Promise<void> {
    this.closed = true;
    const client = await this.opening;
    if (client) {
      await new Promise<void>((resolve) => {
        const guard = setTimeout(() => client.end(true, {}, () => resolve()), 2000);
        client.end(false, {}, () => {
          clearTimeout(guard);
          resolve();
        });
      });
      client.removeAllListeners();
    }
    if (this.opening) await this.broker.release(this.user, removed);
    this.node.status({});
  }
}

export function brokerOf(RED: NodeAPI, def: ApiGearDef): MqttBrokerConfig | undefined {
  const broker = def.broker ? (RED.nodes.getNode(def.broker) as Partial<MqttBrokerConfig> | null) : null;
  if (!broker || typeof broker.endpoint !== 'function' || typeof broker.release !== 'function') return undefined;
  return broker as MqttBrokerConfig;
}

export interface InterfaceSummary {
  module: string;
  interfaces: Array<{
    name: string;
    properties: Array<{ name: string; type: string; readonly: boolean }>;
    operations: Array<{ name: string; params: string; returns: string }>;
    signals: Array<{ name: string; params: string }>;
  }>;
}

function typeText(t: { type: string; array: boolean }): string {
  return t.array ? `${t.type}[]` : t.type;
}

/** What the editor shows after parsing a pasted module: interfaces and their members with IDL types. */
export function summarise(mod: Module): InterfaceSummary {
  return {
    module: mod.name,
    interfaces: mod.interfaces.map((i) => ({
      name: i.name,
      properties: i.properties.map((p) => ({ name: p.name, type: typeText(p), readonly: p.readonly })),
      operations: i.operations.map((o) => ({ name: o.name, params: o.params.map((p) => `${p.name}: ${typeText(p)}`).join(', '), returns: typeText(o.return) })),
      signals: i.signals.map((s) => ({ name: s.name, params: s.params.map((p) => `${p.name}: ${typeText(p)}`).join(', ') })),
    })),
  };
}

// Both node types call registerAdmin; keyed by the admin app so the route exists once per runtime.
const adminApps = new WeakSet<object>();

/** The editor posts the pasted YAML here to fill the interface drop-down; registered once per runtime. */
export function registerAdmin(RED: NodeAPI): void {
  if (adminApps.has(RED.httpAdmin)) return;
  adminApps.add(RED.httpAdmin);
  RED.httpAdmin.post('/busbar/apigear/module', RED.auth.needsPermission('apigear.read'), (req: AdminRequest, res: AdminResponse) => {
    const body = req.body as { yaml?: unknown } | undefined;
    try {
      if (!body || typeof body.yaml !== 'string') throw new Error('no module YAML was sent');
      res.json(summarise(parseModule(body.yaml)));
    } catch (err) {
      res.status(400).json({ error: err instanceof Error ? err.message : String(err) });
    }
  });
}

export type { Node, NodeAPI };
