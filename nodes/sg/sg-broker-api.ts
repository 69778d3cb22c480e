// The runtime API of the sg-broker config node, for every node that connects through it (sg-*, apigear-*).
import type { NodeDef } from '../lib/red';
import type { NodeStatus } from '../lib/status';
import { BusConfigNode, BusUser, isBusConfigNode } from '../lib/config-node';
import type { PoolUser } from '../../src/common/pool';
import type { MqttEndpoint, MqttProtocol } from '../../src/mqtt/endpoint';
import type { ConnectionState } from '../../src/mqtt/connection-state';
import type { ManagedMqttClient } from '../../src/mqtt/managed-client';
import type { IClientOptions } from 'mqtt';
import type { SgConnection, SgQos } from '../../src/sg/connection';

export type { MqttEndpoint, MqttProtocol } from '../../src/mqtt/endpoint';
export type { PoolUser } from '../../src/common/pool';

export type SgBrokerMode = 'embedded' | 'external';

/** The flow JSON of an sg-broker node. */
export interface SgBrokerDef extends NodeDef {
  mode?: SgBrokerMode;
  host?: string;
  port?: number | string;
  embeddedPort?: number | string;
  protocol?: MqttProtocol;
  keepalive?: number | string;
  qos?: number | string;
  clean?: boolean;
  tls?: string;
  /** Seconds before the first reconnect attempt (default 1); doubles per failure up to reconnectMax (default 60). */
  reconnectMin?: number | string;
  reconnectMax?: number | string;
  /** Seconds a connection must stay up before the backoff starts over (default 10). */
  stableAfter?: number | string;
  /** Offline queue bound in messages (default 10000). */
  queueSize?: number | string;
  /** Queue QoS 0 publishes while disconnected too. */
  queueQos0?: boolean;
  /** Keep the offline queue in the Node-RED user directory, so a restart loses nothing. */
  queueDurable?: boolean;
}

export interface SgBrokerCredentials {
  user?: string;
  password?: string;
}

/** A connection state as a node shows it: status dot and text, and the log line for a failure. */
export interface StateView {
  status: NodeStatus;
  log: string;
}

/** What a node asks for when it wants its own managed MQTT client (the ApiGear nodes). */
export interface MqttClientRequest {
  /** The requesting node's id: the broker user, and the key of its durable queue file. */
  owner: string;
  /** Wanted client id; a suffix is added when another connection of this Node-RED holds it. */
  clientId: string;
  /** Options that win over the broker's (ApiGear: MQTT 5, clean start). */
  overrides?: IClientOptions;
  /** Node-RED's close flag of the owner, read when the client closes: the last user removed stops the embedded broker. */
  removed(): boolean;
}

/**
 * What other nodes (sg-resource, sg-app, apigear-*) use of an sg-broker instance, obtained with
 * `configNode(RED, config.broker, isSgBrokerNode)`.
 */
export interface SgBrokerNode extends BusConfigNode<BusUser, SgBrokerCredentials> {
  readonly mode: SgBrokerMode;
  /** QoS for sg publications and subscriptions (sgframework's `qos`, default 1). */
  readonly qos: SgQos;
  readonly protocol: MqttProtocol;
  /** Clean session flag; also decides the sg client id (`<name>-<pid>` when true, `<name>` when false). */
  readonly clean: boolean;
  /**
   * URL and base mqtt.js options for a new client (protocol, keepalive, clean, credentials, TLS). Registers `user`
   * and starts the embedded broker on first use; waits until the deploy has created every node. Rejects with a
   * ConfigurationError when the settings cannot be honoured (e.g. a TLS reference that does not resolve).
   */
  endpoint(user: PoolUser): Promise<MqttEndpoint>;
  /** Gives `user` up; with removed=true for the last user, the embedded broker stops. Call from close(removed). */
  release(user: PoolUser, removed: boolean): Promise<void>;
  /** The shared sg connection for one resource/app name on this broker (created on first use). */
  sgConnection(name: string): SgConnection;
  /** A managed client with this broker's settings, reconnect policy and offline queue (not started). */
  mqttClient(request: MqttClientRequest): ManagedMqttClient;
  /** Status and log text for a connection state, in the runtime's language. */
  describe(state: ConnectionState): StateView;
  /** The log line for publishes dropped from a full offline queue. */
  droppedText(connection: string, count: number): string;
}

export function isSgBrokerNode(node: unknown): node is SgBrokerNode {
  return isBusConfigNode(node, 'sg-broker');
}
