// What apigear-service and apigear-client share: reading the declared interface, the node's managed MQTT v5 client
// from the sg-broker config node with its state shown as status, the editor's parse endpoint, and msg-topic parsing.
import { configNode } from '../lib/red';
import type { Node, NodeAPI, NodeDef, AdminRequest, AdminResponse } from '../lib/red';
import { catalogError } from '../lib/errors';
import { isSgBrokerNode, SgBrokerNode } from '../sg/sg-broker-api';
import { compilePlan, HandMember, InterfacePlan, Module, moduleFromMembers, parseModule } from '../../src/apigear';
import type { ManagedMqttClient } from '../../src/mqtt/managed-client';
import { messageOf, qosOf as mqttQos } from '../../src/common/guards';

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
  return mqttQos(value);
}

/** Compiles the node's declaration; throws an error naming the declaration at fault. */
export function planOf(RED: NodeAPI, def: ApiGearDef): InterfacePlan {
  let mod: Module;
  if (def.source === 'members')
    mod = moduleFromMembers((def.module ?? '').trim(), (def.interface ?? '').trim(), def.members ?? []);
  else {
    if (!def.moduleYaml || !def.moduleYaml.trim()) throw catalogError(RED, 'apigear.error.noYaml', {}, 'moduleYaml');
    mod = parseModule(def.moduleYaml);
  }
  return compilePlan(mod, (def.interface ?? '').trim());
}

/** The node's MQTT client id: as configured, else derived from the node id, which stays the same across deploys. */
export function clientIdOf(RED: NodeAPI, node: Node, def: ApiGearDef, prefix: string): string {
  const id = (def.clientId ?? '').trim();
  // The id becomes a topic level of every reply topic, so it cannot hold MQTT separators or wildcards.
  if (id && !/^[^\s+#/]{1,128}$/.test(id))
    throw catalogError(RED, 'apigear.error.clientId', { id: JSON.stringify(id) }, 'clientId');
  return id || `${prefix}-${node.id.replace(/[^A-Za-z0-9_-]/g, '')}`;
}

/** The verb/member addressed by `msg.topic` (`set/last`, `rpc/say`, …, or a bare member name). */
export function topicOf(topic: unknown): { verb?: string; member: string } | undefined {
  if (typeof topic !== 'string' || topic.trim() === '') return undefined;
  const parts = topic.trim().split('/');
  const member = parts[parts.length - 1] ?? '';
  return parts.length === 1 ? { member } : { verb: parts[parts.length - 2], member };
}

/** CorrelationData as a Buffer, whether it survived as a Buffer, its JSON form, or a plain byte array. */
export function bytesOf(value: unknown): Buffer | undefined {
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value);
  if (Array.isArray(value) && value.every((b) => Number.isInteger(b) && b >= 0 && b <= 255))
    return Buffer.from(value as number[]);
  const json = value as { type?: unknown; data?: unknown };
  if (json.type === 'Buffer' && Array.isArray(json.data)) return bytesOf(json.data);
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return undefined;
}

/**
 * The node's own MQTT v5 client through the sg-broker config node: explicit client id (unique in this Node-RED), clean
 * start, subscriptions left to the ApiGear core (it subscribes on every connect), the broker's reconnect policy and
 * offline queue. Its state becomes the node's status; a failure is logged once per change of reason.
 */
export function openClient(
  node: Node,
  broker: SgBrokerNode,
  clientId: string,
  onReady: (client: ManagedMqttClient) => void,
): { client: ManagedMqttClient; close(removed: boolean): Promise<void> } {
  let removedFlag = true;
  const client = broker.mqttClient({
    owner: node.id,
    clientId,
    // ApiGear needs v5 (ResponseTopic, CorrelationData) whatever protocol the broker node is set to for sg.
    overrides: { protocolId: 'MQTT', protocolVersion: 5, clean: true },
    removed: () => removedFlag,
  });
  client.on('state', (state) => {
    // "connected" is the core's ready (subscribed), shown by the node itself.
    if (state.phase !== 'connected') node.status(broker.describe(state).status);
  });
  client.on('failure', (state) => {
    const view = broker.describe(state);
    if (view.log) node.warn(`${client.clientId}: ${view.log}`);
  });
  client.on('dropped', (count) => node.warn(broker.droppedText(client.clientId, count)));
  client.on('warning', (text) => node.warn(text));
  onReady(client);
  client.start();
  return {
    client,
    close: async (removed: boolean) => {
      removedFlag = removed;
      await client.close();
      node.status({});
    },
  };
}

export function brokerOf(RED: NodeAPI, def: ApiGearDef): SgBrokerNode | undefined {
  return configNode(RED, def.broker, isSgBrokerNode);
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
      operations: i.operations.map((o) => ({
        name: o.name,
        params: o.params.map((p) => `${p.name}: ${typeText(p)}`).join(', '),
        returns: typeText(o.return),
      })),
      signals: i.signals.map((s) => ({
        name: s.name,
        params: s.params.map((p) => `${p.name}: ${typeText(p)}`).join(', '),
      })),
    })),
  };
}

// Both node types call registerAdmin; keyed by the admin app so the route exists once per runtime.
const adminApps = new WeakSet<object>();

/** The editor posts the pasted YAML here to fill the interface drop-down; registered once per runtime. */
export function registerAdmin(RED: NodeAPI): void {
  if (adminApps.has(RED.httpAdmin)) return;
  adminApps.add(RED.httpAdmin);
  RED.httpAdmin.post(
    '/busbar/apigear/module',
    RED.auth.needsPermission('apigear.read'),
    (req: AdminRequest, res: AdminResponse) => {
      const body = req.body as { yaml?: unknown } | undefined;
      try {
        if (!body || typeof body.yaml !== 'string') throw catalogError(RED, 'apigear.error.noYamlSent', {}, 'yaml');
        res.json(summarise(parseModule(body.yaml)));
      } catch (err) {
        res.status(400).json({ error: messageOf(err) });
      }
    },
  );
}

export type { Node, NodeAPI };
