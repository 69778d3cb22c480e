// Turns broker connection settings (host, port, protocol version, keepalive, clean session, credentials, TLS) into an
// MQTT URL plus mqtt.js client options, so every MQTT-based node connects the same way.
import type { IClientOptions } from 'mqtt';

/** MQTT protocol versions a user can choose: 3.1 (`MQIsdp`, level 3, what sgframework sends), 3.1.1, 5. */
export type MqttProtocol = '3.1' | '3.1.1' | '5';

export const MQTT_PROTOCOLS: readonly MqttProtocol[] = ['3.1', '3.1.1', '5'];

/** TLS material as the core `tls-config` node's addTLSOptions() fills it in. */
export interface TlsSettings {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  passphrase?: string;
  servername?: string;
  ALPNProtocols?: string[];
  rejectUnauthorized?: boolean;
}

export interface BrokerSettings {
  host: string;
  port: number;
  protocol: MqttProtocol;
  /** Seconds; 0 disables keepalive. */
  keepalive: number;
  clean: boolean;
  username?: string;
  password?: string;
  /** Present means: connect with TLS (mqtts). */
  tls?: TlsSettings;
  /** Milliseconds between reconnect attempts; default 1000 (sgframework/paho starts at 1 s). */
  reconnectPeriod?: number;
  /** Milliseconds to wait for CONNACK; default 30000. */
  connectTimeout?: number;
}

export interface MqttEndpoint {
  url: string;
  options: IClientOptions;
}

/** Protocol id and level on the wire for each version. */
export function protocolFields(protocol: MqttProtocol): Pick<IClientOptions, 'protocolId' | 'protocolVersion'> {
  switch (protocol) {
    case '3.1':
      return { protocolId: 'MQIsdp', protocolVersion: 3 };
    case '5':
      return { protocolId: 'MQTT', protocolVersion: 5 };
    default:
      return { protocolId: 'MQTT', protocolVersion: 4 };
  }
}

/** Checks settings a user typed; returns a message naming the field and the rule, or undefined when fine. */
export function validateBrokerSettings(settings: BrokerSettings): string | undefined {
  if (!settings.host || /[\s/]/.test(settings.host))
    return `host "${settings.host}" must be a host name or IP address (no scheme, no path)`;
  if (!Number.isInteger(settings.port) || settings.port < 0 || settings.port > 65535)
    return `port ${settings.port} must be an integer 0..65535`;
  if (!MQTT_PROTOCOLS.includes(settings.protocol))
    return `protocol "${settings.protocol}" must be one of ${MQTT_PROTOCOLS.join(', ')}`;
  if (!Number.isInteger(settings.keepalive) || settings.keepalive < 0 || settings.keepalive > 65535)
    return `keepalive ${settings.keepalive} must be an integer 0..65535 seconds`;
  return undefined;
}

/** Builds the URL and base options for a new mqtt.js client; the caller adds clientId and will. */
export function resolveEndpoint(settings: BrokerSettings): MqttEndpoint {
  const problem = validateBrokerSettings(settings);
  if (problem) throw new Error(problem);
  const scheme = settings.tls ? 'mqtts' : 'mqtt';
  const host = settings.host.includes(':') && !settings.host.startsWith('[') ? `[${settings.host}]` : settings.host;
  const options: IClientOptions = {
    ...protocolFields(settings.protocol),
    keepalive: settings.keepalive,
    clean: settings.clean,
    reconnectPeriod: settings.reconnectPeriod ?? 1000,
    connectTimeout: settings.connectTimeout ?? 30000,
    // The owner re-subscribes in its own order on every connect (sgframework sends one SUBSCRIBE per topic in
    // registration order); mqtt.js's automatic resubscribe would send a second, differently ordered set.
    resubscribe: false,
  };
  if (settings.username) options.username = settings.username;
  if (settings.password) options.password = settings.password;
  if (settings.tls) {
    const tls = settings.tls;
    // sgframework's default TLS 1.0 fails against current OpenSSL; TLS 1.2 is the floor here.
    // minVersion and passphrase are passed through to tls.connect() but not in mqtt.js's option type.
    Object.assign(
      options,
      { minVersion: 'TLSv1.2' },
      tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {},
    );
    if (tls.ca !== undefined) options.ca = tls.ca;
    if (tls.cert !== undefined) options.cert = tls.cert;
    if (tls.key !== undefined) options.key = tls.key;
    if (tls.servername !== undefined) options.servername = tls.servername;
    if (tls.ALPNProtocols !== undefined) options.ALPNProtocols = tls.ALPNProtocols;
    options.rejectUnauthorized = tls.rejectUnauthorized !== false;
  }
  return { url: `${scheme}://${host}:${settings.port}`, options };
}
