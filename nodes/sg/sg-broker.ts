// sg-broker config node: MQTT connection settings shared by sg-resource, sg-app and the ApiGear nodes, with an
// embedded in-process broker as the zero-setup default. Owns the sg connections (one per resource/app name), hands
// out managed MQTT clients to the ApiGear nodes, and turns connection states into status and log text.
import path from 'path';
import type { NodeAPI } from '../lib/red';
import { configNode, isTlsConfigNode } from '../lib/red';
import type { MqttClientRequest, SgBrokerDef, SgBrokerMode, SgBrokerNode, StateView } from './sg-broker-api';
import { statusOf } from '../lib/status';
import { BusUser, Counters, noCounters } from '../lib/config-node';
import type { StateSince } from '../../src/common/connection-state';
import { ConnectionPool, PoolUser } from '../../src/common/pool';
import { DEFAULT_EMBEDDED_PORT, PortInUseError, SharedEmbeddedBroker } from '../../src/mqtt/embedded-broker';
import { BrokerSettings, MqttEndpoint, MqttProtocol, MQTT_PROTOCOLS, resolveEndpoint } from '../../src/mqtt/endpoint';
import { ConfigurationError, ConnectionState } from '../../src/mqtt/connection-state';
import { claimClientId } from '../../src/mqtt/client-ids';
import { ManagedMqttClient, QueueOptions } from '../../src/mqtt/managed-client';
import { SgConnection, SgQos } from '../../src/sg/connection';
import { messageOf, qosOf } from '../../src/common/guards';

function toInt(value: unknown, fallback: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = Number(value);
  return Number.isFinite(n) ? Math.trunc(n) : NaN;
}

function positive(value: unknown, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** A file name part from any id: the queue file of a connection must be one path segment. */
function fileSafe(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, '_');
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType(
    'sg-broker',
    function (
      this: SgBrokerNode & { mode: SgBrokerMode; qos: SgQos; protocol: MqttProtocol; clean: boolean },
      def: SgBrokerDef,
    ) {
      RED.nodes.createNode(this, def);
      const config = def;
      const node = this;
      node.mode = config.mode === 'external' ? 'external' : 'embedded';
      node.qos = qosOf(config.qos);
      node.protocol = MQTT_PROTOCOLS.includes(config.protocol as MqttProtocol)
        ? (config.protocol as MqttProtocol)
        : '3.1.1';
      node.clean = config.clean !== false;
      const keepalive = toInt(config.keepalive, 10);
      const retry = {
        initialMs: Math.round(positive(config.reconnectMin, 1) * 1000),
        maxMs: Math.round(Math.max(positive(config.reconnectMin, 1), positive(config.reconnectMax, 60)) * 1000),
      };
      const stableMs = Math.round(positive(config.stableAfter, 10) * 1000);
      const userDir = typeof RED.settings.userDir === 'string' ? RED.settings.userDir : undefined;
      const queueFor = (key: string): QueueOptions => ({
        maxEntries: Math.max(1, Math.trunc(positive(config.queueSize, 10000))),
        qos0: config.queueQos0 === true,
        // Durable: one append-only log per connection in the user directory, so a gateway restart loses nothing.
        file:
          config.queueDurable === true && userDir
            ? path.join(userDir, 'busbar', `mqtt-${fileSafe(node.id)}-${fileSafe(key)}.log`)
            : undefined,
      });

      // Every embedded sg-broker on the same port shares one broker (an imported example brings its own config node).
      const embedded =
        node.mode === 'embedded'
          ? new SharedEmbeddedBroker({ port: toInt(config.embeddedPort, DEFAULT_EMBEDDED_PORT) })
          : undefined;
      // A port held by another program: a failure whose reason says so (as data: the connection retries with backoff).
      const startEmbedded = async (): Promise<void> => {
        if (!embedded) return;
        await embedded.start().catch((err: unknown) => {
          if (!(err instanceof PortInUseError)) throw err;
          const key = 'sg-broker.errors.port-in-use';
          const translated = RED._(key, { port: err.port });
          const text = translated === key ? err.message : translated; // catalog not loaded (test helper)
          throw Object.assign(new Error(text), { reason: 'port-in-use', code: err.port });
        });
      };

      const pool = new ConnectionPool<BusUser>({
        connect: startEmbedded,
        disconnect: async () => {
          if (embedded) await embedded.close();
        },
        onError: (err) => node.error(RED._('sg-broker.errors.embedded', { error: err.message })),
      });

      // Connections wait until the deploy has created every node: the will of a resource must be on the first
      // CONNECT even when an sg-app of the same name was created before it.
      let deployed!: () => void;
      const nextDeploy = (): Promise<void> =>
        new Promise<void>((resolve) => {
          // Should the event never come (a runtime that starts nodes some other way), connect anyway.
          const fallback = setTimeout(resolve, 10000);
          fallback.unref?.();
          deployed = () => {
            clearTimeout(fallback);
            resolve();
          };
        });
      let settled = nextDeploy();
      const onStarted = (): void => deployed();
      const onStarting = (): void => {
        settled = nextDeploy();
      };
      RED.events.on('flows:started', onStarted);
      RED.events.on('flows:starting', onStarting);

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
          const tlsNode = configNode(RED, config.tls, isTlsConfigNode);
          // Never weaker than configured: a TLS reference that does not resolve is an error, not plain MQTT.
          if (!tlsNode || typeof tlsNode.addTLSOptions !== 'function')
            throw new ConfigurationError(RED._('sg-broker.errors.tls-missing', { id: config.tls }));
          s.tls = tlsNode.addTLSOptions({});
        }
        return s;
      };

      node.endpoint = async (user: PoolUser): Promise<MqttEndpoint> => {
        // The pool replays its status to new users; this config node has no status of its own to give them.
        pool.register({ id: user.id, status: () => undefined });
        await settled;
        await startEmbedded();
        try {
          return resolveEndpoint(settings());
        } catch (err) {
          // Settings that do not validate will not get better by retrying.
          if (err instanceof ConfigurationError) throw err;
          throw new ConfigurationError(messageOf(err));
        }
      };

      node.release = async (user: PoolUser, removed: boolean): Promise<void> => {
        await pool.deregister({ id: user.id, status: () => undefined }, removed);
      };

      node.describe = (state: ConnectionState): StateView => describe(RED, state);
      node.register = (user) => pool.register(user);
      node.deregister = (user, removed) => pool.deregister(user, removed);
      // Its state is that of the least healthy connection it serves (sg names and ApiGear clients alike).
      const clients = new Set<ManagedMqttClient>();
      const links = (): Array<{ name: string; state: ConnectionState; backlog: number; dropped?: number }> => [
        ...[...connections.values()].map((c) => ({ name: c.name, state: c.state, backlog: c.backlog })),
        ...[...clients].map((c) => ({ name: c.clientId, state: c.state, backlog: c.backlog, dropped: c.droppedCount })),
      ];
      let since: StateSince = { phase: 'closed', since: Date.now() };
      Object.defineProperty(node, 'state', {
        get: (): StateSince => {
          const worst = links()
            .map((l) => l.state)
            .sort((a, b) => HEALTH[a.phase] - HEALTH[b.phase])[0] ?? { phase: 'closed' };
          if (worst.phase !== since.phase || worst.reason !== since.reason) since = { ...worst, since: Date.now() };
          return since;
        },
      });
      let lastError: { message: string; at: number } | undefined;
      Object.defineProperty(node, 'lastError', { get: () => lastError });
      node.counters = (): Counters => {
        const all = links();
        return {
          ...noCounters(),
          queued: all.reduce((n, l) => n + l.backlog, 0),
          dropped: all.reduce((n, l) => n + (l.dropped ?? 0), 0),
        };
      };
      node.snapshot = () => ({ mode: node.mode, protocol: node.protocol, connections: links() });
      node.droppedText = (connection: string, count: number): string =>
        RED._('sg-broker.log.dropped', { connection, count });

      node.mqttClient = (request: MqttClientRequest): ManagedMqttClient => {
        const claimed = claimClientId(request.clientId);
        const user: PoolUser = { id: request.owner, status: () => undefined };
        try {
          const client = new ManagedMqttClient({
            clientId: claimed.id,
            endpoint: () => node.endpoint(user),
            overrides: request.overrides,
            retry,
            stableMs,
            queue: queueFor(request.owner),
            closed: async () => {
              clients.delete(client);
              claimed.release();
              await node.release(user, request.removed());
            },
          });
          clients.add(client);
          return client;
        } catch (err) {
          claimed.release(); // e.g. the durable queue file is held by another connection
          throw err;
        }
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
            retry,
            stableMs,
            queue: queueFor(`sg-${name}`),
            failure: (state, clientId) => {
              const text = `${clientId}: ${describe(RED, state).log}`;
              lastError = { message: text, at: Date.now() };
              node.warn(text);
            },
            dropped: (count, clientId) => node.warn(node.droppedText(clientId, count)),
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
        RED.events.removeListener('flows:started', onStarted);
        RED.events.removeListener('flows:starting', onStarting);
        deployed();
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

/** Lower is less healthy: the config node shows its least healthy connection. */
const HEALTH: Record<ConnectionState['phase'], number> = {
  failed: 0,
  waiting: 1,
  connecting: 2,
  closed: 3,
  connected: 4,
  registered: 4,
};

/** A connection state as a status (dot + text) and, for failures, the log line; texts from this node's catalog. */
function describe(RED: NodeAPI, state: ConnectionState): StateView {
  const reason = state.reason ? RED._(`sg-broker.reason.${state.reason}`, { code: state.code ?? '' }) : '';
  const seconds = Math.max(1, Math.round((state.retryMs ?? 0) / 1000));
  const words =
    state.phase === 'waiting'
      ? RED._('sg-broker.state.waiting', { reason, seconds })
      : state.phase === 'failed'
        ? RED._('sg-broker.state.failed', { reason })
        : undefined;
  const status = statusOf(state, words);
  const log = state.reason ? `${reason}${state.detail ? ` (${state.detail})` : ''}` : '';
  return { status, log };
}
