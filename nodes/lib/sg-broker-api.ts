// The runtime API of the sg-broker config node, for every node that connects through it (sg-*, apigear-*).
import type { Node, NodeDef } from './red';
import type { PoolUser } from '../../src/common/pool';
import type { MqttEndpoint, MqttProtocol } from '../../src/mqtt/endpoint';
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
}

export interface SgBrokerCredentials {
  user?: string;
  password?: string;
}

/**
 * What other nodes (sg-resource, sg-app, apigear-*) use of an sg-broker instance, obtained with
 * `RED.nodes.getNode(config.broker) as SgBrokerNode`.
 */
export interface SgBrokerNode extends Node<SgBrokerCredentials> {
  readonly mode: SgBrokerMode;
  /** QoS for sg publications and subscriptions (sgframework's `qos`, default 1). */
  readonly qos: SgQos;
  readonly protocol: MqttProtocol;
  /** Clean session flag; also decides the sg client id (`<name>-<pid>` when true, `<name>` when false). */
  readonly clean: boolean;
  /**
   * URL and base mqtt.js options for a new client (protocol, keepalive, clean, credentials, TLS). Registers `user`
   * and starts the embedded broker on first use. The caller sets clientId and will, and may override
   * protocolVersion — when it does, it must set protocolId to 'MQTT' too (3.1 uses 'MQIsdp').
   */
  endpoint(user: PoolUser): Promise<MqttEndpoint>;
  /** Gives `user` up; with removed=true for the last user, the embedded broker stops. Call from close(removed). */
  release(user: PoolUser, removed: boolean): Promise<void>;
  /** The shared sg connection for one resource/app name on this broker (created on first use). */
  sgConnection(name: string): SgConnection;
}
