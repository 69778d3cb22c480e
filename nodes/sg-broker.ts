// sg-broker config node: MQTT connection settings shared by sg-resource, sg-app (and the ApiGear nodes), with an
// embedded in-process broker as the zero-setup default. Owns the sg connections, one per resource/app name.
import type { Node, NodeAPI, NodeDef } from './lib/red';
import type { SgBrokerCredentials, SgBrokerDef, SgBrokerMode, SgBrokerNode } from './lib/sg-broker-api';
import { ConnectionPool, PoolUser } from '../src/common/pool';
import { DEFAULT_EMBEDDED_PORT, PortInUseError, SharedEmbeddedBroker } from '../src/mqtt/embedded-broker';
import { Status } from '../src/common/status';
import { BrokerSettings, MqttEndpoint, MqttProtocol, MQTT_PROTOCOLS, resolveEndpoint, TlsSettings } from '../src/mqtt/endpoint';
import { SgConnection, SgQos } from '../src/sg/connection';

interface TlsConfigNode {
  addTLSOptions(opts: TlsSettings): TlsSettings;
}

function toInt(value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isFinite(n) ? Math.trunc(n) : NaN;
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType(
    'sg-broker',
    function (this: Node<SgBrokerCredentials>, def: NodeDef) {
      RED.nodes.createNode(this, def);
      const config = def as SgBrokerDef;
      const node = this as SgBrokerNode & { mode: SgBrokerMode; qos: SgQos; protocol: MqttProtocol; clean: boolean };
      node.mode = config.mode === 'external' ? 'external' : 'embedded';
      const qos = toInt(config.qos, 1);
      node.qos = (qos === 0 || qos === 2 ? qos : 1) as SgQos;
      node.protocol = MQTT_PROTOCOLS.includes(config.protocol as MqttProtocol) ? (config.protocol as MqttProtocol) : '3.1.1';
      node.clean = config.clean !== false;
      const keepalive = toInt(config.keepalive, 10);

      // Every embedded sg-broker on the same port shares one broker (an imported example brings its own config node).
      const embedded =
        node.mode === 'embedded' ? new SharedEmbeddedBroker({ port: toInt(config.embeddedPort, DEFAULT_EMBEDDED_PORT) }) : undefined;
      // A port held by another program: an error whose text and red status say so; the sg connection retries.
      const startEmbedded = async (): Promise<void> => {
        if (!embedded) return;
        await embedded.start().catch((err: unknown) => {
          if (!(err instanceof PortInUseError)) throw err;
          const key = 'sg-broker.errors.port-in-use';
          const translated = RED._(key, { port: err.port });
          const text = translated === key ? err.message : translated; // catalog not loaded (test helper)
          throw Object.assign(new Error(text), { status: Status.error(text) });
        });
      };

      const pool = new ConnectionPool<PoolUser>({
        connect: startEmbedded,
        disconnect: async () => {
          if (embedded) await embedded.close();
        },
        onError: (err) => node.error(RED._('sg-broker.errors.embedded', { error: err.message })),
      });

      const settings = (): BrokerSettings => {
        if (embedded) {
          return { host: embedded.host, port: embedded.port, protocol: node.protocol, keepalive, clean: node.clean };
        }
        const s: BrokerSettings = {
          host: (config.host || '').trim(),
          port: toInt(config.port, 1883),
          protocol: node.protocol,
          keepalive,
          clean: node.clean,
          username: node.credentials.user || undefined,
          password: node.credentials.password || undefined,
        };
        if (config.tls) {
          const tlsNode = RED.nodes.getNode(config.tls) as TlsConfigNode | null;
          if (tlsNode) s.tls = tlsNode.addTLSOptions({});
        }
        return s;
      };

      node.endpoint = async (user: PoolUser): Promise<MqttEndpoint> => {
        // The pool replays its status to new users; this config node has no status of its own to give them.
        pool.register({ id: user.id, status: () => undefined });
        await startEmbedded();
        return resolveEndpoint(settings());
      };

      node.release = async (user: PoolUser, removed: boolean): Promise<void> => {
        await pool.deregister({ id: user.id, status: () => undefined }, removed);
      };

      const connections = new Map<string, SgConnection>();
      node.sgConnection = (name: string): SgConnection => {
        let connection = connections.get(name);
        if (!connection) {
          const user: PoolUser = { id: `sg-connection:${node.id}:${name}`, status: () => undefined };
          connection = new SgConnection({
            name,
            qos: node.qos,
            clean: node.clean,
            endpoint: () => node.endpoint(user),
            release: () => node.release(user, true),
            log: {
              warn: (text) => node.warn(text),
              error: (text) => node.error(text),
            },
          });
          connections.set(name, connection);
        }
        return connection;
      };

      // A node moved to another name or broker is only "restarted" (close with removed=false), so its old connection
      // would keep running without users. After every deploy, close connections nobody uses any more, and forget
      // users whose node no longer exists.
      const sweep = (): void => {
        for (const [name, connection] of connections) {
          if (connection.userCount === 0) {
            connections.delete(name);
            connection.close().catch((err: unknown) => node.error(String(err)));
          }
        }
        for (const user of pool.list()) {
          if (!user.id.startsWith('sg-connection:') && !RED.nodes.getNode(user.id)) {
            pool.deregister(user, true).catch((err: unknown) => node.error(String(err)));
          }
        }
      };
      RED.events.on('flows:started', sweep);

      this.on('close', (_removed: boolean, done: () => void) => {
        RED.events.removeListener('flows:started', sweep);
        const all = [...connections.values()];
        connections.clear();
        Promise.allSettled(all.map((c) => c.close()))
          .then(() => pool.close())
          .catch((err: unknown) => node.error(String(err)))
          .finally(done);
      });
    },
    { credentials: { user: { type: 'text' }, password: { type: 'password' } } },
  );
};
