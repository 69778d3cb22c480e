// msb-config: one MSB service = one websocket. Compiles the self-description from its users, registers it once per
// deploy, fans connection status out, routes function calls and configuration changes, publishes events.
import * as os from 'os';
import * as path from 'path';
import type { ConnectionOptions } from 'tls';
import { ConnectionPool } from '../../src/common/pool';
import { NodeStatus, Status, statusOf } from '../lib/status';
import { Counters } from '../lib/config-node';
import { ConnectionState, StateSince, StateTracker } from '../../src/common/connection-state';
import { BurstCounter, ChangeWarner } from '../../src/common/warn';
import {
  ClientState,
  connectionUrl,
  DisconnectReason,
  FunctionCall,
  MsbClient,
  PublishCallback,
  PublishFields,
} from '../../src/msb/client';
import type { EventTemplate } from '../../src/msb/event-message';
import {
  compileSelfDescription,
  ConfigParameterDeclaration,
  EventDeclaration,
  FunctionDeclaration,
  MsbDefinitionError,
  SelfDescription,
  ServiceClass,
  SimpleType,
} from '../../src/msb/selfdescription';
import { dataFormatFromProps, DataFormatProps, isMsbConfigNode, MsbConfigNode, MsbUser } from './msb-api';
import { AdminRequest, AdminResponse, asError, configNode, isTlsConfigNode, Node, NodeAPI, NodeDef } from '../lib/red';
import { installBusbarAdmin, probeState, registry } from '../lib/busbar-admin';
import { newCounts } from '../../src/common/counters';
import { readableSockJs, TraceRing } from '../../src/common/trace';

interface MsbConfigDef extends NodeDef {
  uuid?: string;
  description?: string;
  serviceClass?: string;
  url?: string;
  sockJs?: boolean;
  tls?: string;
  allowUnverifiedTls?: boolean;
  autoReconnect?: boolean;
  reconnectInterval?: number | string;
  eventCacheSize?: number | string;
  /** Keep the event cache in the user directory (survives restarts); default true. */
  eventCacheDurable?: boolean;
  /** Byte limit of the event cache in MB; default 16. */
  eventCacheMB?: number | string;
  /** Seconds between RFC 6455 pings; silence for two intervals reconnects. Default 15. */
  pingInterval?: number | string;
  parameters?: Array<{ name?: string; type?: string; value?: unknown }>;
  contextKey?: string;
}

interface EventProps extends DataFormatProps {
  eventId?: string;
  name?: string;
  description?: string;
}

interface FunctionProps extends EventProps {
  functionId?: string;
  responseEvents?: string[];
}

const MIN_RECONNECT_S = 3;
const DEPLOY_FALLBACK_MS = 10000;
/** How often the status text picks up changed counts (cached, dropped, unacknowledged). */
const COUNTS_REFRESH_MS = 1000;
const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The status key for a reason the client gave for being disconnected. */
const DISCONNECT_STATUS: Record<DisconnectReason['code'], string> = {
  unreachable: 'msb.status.unreachable',
  'no-answer': 'msb.status.noAnswer',
  'already-connected': 'msb.status.NIO_ALREADY_CONNECTED',
  unauthorized: 'msb.status.NIO_UNAUTHORIZED_CONNECTION',
  'closed-by-msb': 'msb.status.closedByMsb',
  lost: 'msb.status.disconnected',
  'bad-url': 'msb.status.badUrl',
};

/** A message in its SockJS wire form (a JSON string literal) as the text it carries, for the trace. */
function unquote(literal: string): string {
  try {
    const text: unknown = JSON.parse(literal);
    return typeof text === 'string' ? text : literal;
  } catch {
    return literal;
  }
}

/** Where a service's durable event cache lives: one store per uuid in the Node-RED user directory. */
function eventCacheFile(userDir: string, uuid: string): string {
  return path.join(userDir, 'busbar', `msb-${uuid.toLowerCase()}.log`);
}

/**
 * A deploy stops and starts nodes over several ticks, so users come and go in more than one burst. While the
 * runtime is between `flows:stopping`/`flows:starting` and `flows:started`, config nodes hold their compiled
 * self-description and register it once when the flows have started: one re-registration per deploy.
 */
let deploying = false;
const pendingAfterDeploy = new Set<() => void>();
/** Configuration values set by the MSB (K), per config node and uuid: parameter -> editor value then, MSB value. */
const rememberedChanges = new Map<string, Record<string, { declared: unknown; value: unknown }>>();
const watchedEventBuses = new WeakSet<object>();

function watchDeploys(RED: NodeAPI): void {
  if (watchedEventBuses.has(RED.events)) return;
  watchedEventBuses.add(RED.events);
  const begin = (): void => {
    deploying = true;
  };
  RED.events.on('flows:stopping', begin);
  RED.events.on('flows:starting', begin);
  RED.events.on('flows:started', () => {
    deploying = false;
    const pending = [...pendingAfterDeploy];
    pendingAfterDeploy.clear();
    for (const apply of pending) apply();
  });
}

function serviceFrom(
  def: {
    uuid?: string;
    name?: string;
    description?: string;
    serviceClass?: string;
    parameters?: MsbConfigDef['parameters'];
  },
  token: string | undefined,
) {
  return {
    uuid: (def.uuid ?? '').trim(),
    name: (def.name ?? '').trim(),
    description: def.description ?? '',
    serviceClass: (def.serviceClass || 'SmartObject') as ServiceClass,
    token: token ?? '',
    parameters: (def.parameters ?? []).map((p): ConfigParameterDeclaration => ({
      name: String(p.name ?? '').trim(),
      type: (p.type ?? 'string') as SimpleType,
      value: p.value ?? '',
    })),
  };
}

function eventFrom(p: EventProps): EventDeclaration {
  return {
    eventId: String(p.eventId ?? '').trim(),
    name: p.name || undefined,
    description: p.description ?? '',
    dataFormat: dataFormatFromProps(p),
  };
}

function functionFrom(p: FunctionProps): FunctionDeclaration {
  return {
    functionId: String(p.functionId ?? '').trim(),
    name: p.name || undefined,
    description: p.description ?? '',
    dataFormat: dataFormatFromProps(p),
    responseEvents: Array.isArray(p.responseEvents) ? p.responseEvents.map(String) : [],
  };
}

/** Hides the token in anything shown to the editor. */
function forEditor(sd: SelfDescription | undefined): unknown {
  return sd ? { ...sd, token: sd.token ? '********' : '' } : undefined;
}

/** The client's state as the common connection state (a disconnect with a retry scheduled is `waiting`). */
function connectionState(state: ClientState, reason: DisconnectReason | undefined): ConnectionState {
  if (state === 'disconnected') {
    if (reason?.code === 'bad-url') return { phase: 'failed', reason: reason.code, detail: reason.detail };
    return {
      phase: reason?.retryInMs !== undefined ? 'waiting' : 'closed',
      reason: reason?.code,
      detail: reason?.detail,
      retryMs: reason?.retryInMs,
    };
  }
  return { phase: state === 'closed' ? 'closed' : state };
}

export = function (RED: NodeAPI) {
  watchDeploys(RED);
  // Editor preview of the self-description a dialog's (possibly undeployed) declarations compile to. Registered once
  // at module load, and it runs the very compiler the runtime uses.
  RED.httpAdmin.post(
    '/msb-config/self-description',
    RED.auth.needsPermission('msb-config.read'),
    (req: AdminRequest, res: AdminResponse) => {
      const body = (req.body ?? {}) as {
        service?: MsbConfigDef;
        hasToken?: boolean;
        events?: EventProps[];
        functions?: FunctionProps[];
      };
      try {
        const sd = compileSelfDescription(
          serviceFrom(body.service ?? {}, body.hasToken ? 'token' : ''),
          (body.events ?? []).map(eventFrom),
          (body.functions ?? []).map(functionFrom),
        );
        res.json({ selfDescription: forEditor(sd) });
      } catch (err) {
        res.status(400).json({ error: asError(err).message });
      }
    },
  );
  // What a deployed msb-config runs with right now: state, registered description, live parameter values, cache.
  RED.httpAdmin.get(
    '/msb-config/:id/state',
    RED.auth.needsPermission('msb-config.read'),
    (req: AdminRequest, res: AdminResponse) => {
      const node = RED.nodes.getNode(req.params.id ?? '');
      if (!isMsbConfigNode(node)) {
        res.status(404).json({ error: 'not deployed' });
        return;
      }
      res.json(node.snapshot());
    },
  );

  installBusbarAdmin(RED);
  RED.nodes.registerType(
    'msb-config',
    function (this: MsbConfigNode & Node<{ token?: string }>, def: MsbConfigDef) {
      RED.nodes.createNode(this, def);
      const node = this;
      const service = serviceFrom(def, this.credentials?.token);
      const reconnectSeconds = Math.max(MIN_RECONNECT_S, Number(def.reconnectInterval ?? 10) || 10);
      const cacheSize = Math.max(0, Math.floor(Number(def.eventCacheSize ?? 1000)));
      const cacheBytes = Math.max(1, Number(def.eventCacheMB ?? 16) || 16) * 1024 * 1024;
      const pingSeconds = Math.max(0, Number(def.pingInterval ?? 15) || 0);
      const userDir =
        typeof RED.settings.userDir === 'string' ? RED.settings.userDir : path.join(os.homedir(), '.node-red');
      const cacheFile =
        def.eventCacheDurable !== false && cacheSize > 0 && UUID_PATTERN.test(service.uuid)
          ? eventCacheFile(userDir, service.uuid)
          : undefined;
      const url = def.url || 'ws://127.0.0.1:8085';
      // A URL the client cannot use is a definition error shown on every node of the service, not a silent retry.
      let urlError: string | undefined;
      try {
        connectionUrl(url, true);
      } catch (err) {
        urlError = asError(err).message;
      }
      const tls: ConnectionOptions = {};
      if (def.tls) {
        const tlsNode = configNode(RED, def.tls, isTlsConfigNode);
        if (tlsNode && typeof tlsNode.addTLSOptions === 'function') tlsNode.addTLSOptions(tls);
      }
      const contextKey = (def.contextKey ?? '').trim();

      let client: MsbClient | undefined;
      let definitionError: string | undefined;
      let nioStatus: string | undefined;
      // A NIO that ends the session (uuid already connected, unauthorized) stays visible until registration succeeds,
      // rather than being replaced by "connecting" a moment later.
      let sessionNio: string | undefined;
      let disconnectStatus = 'msb.status.disconnected';
      // An unreachable MSB is said once, not once per retry; said again after it was reachable.
      const connectionWarner = new ChangeWarner((text) => {
        lastError = { message: text, at: Date.now() };
        node.warn(text);
      });
      let lastError: { message: string; at: number } | undefined;
      const tracker = new StateTracker();
      // NIO answers and calls of unknown functions come from the network: said once per burst and kind, counted.
      const latest = new Map<string, string>();
      const bursts = new BurstCounter((kind, count) => {
        const text = latest.get(kind) ?? kind;
        node.warn(count === 1 ? text : RED._('msb-config.warn.repeated', { text, count }));
      });
      const warnBurst = (kind: string, text: string): void => {
        latest.set(kind, text);
        bursts.note(kind);
      };
      // What the Busbar sidebar shows: phase and since, traffic, the last K, the trace.
      /** The last disconnect in words, for the sidebar's state line. */
      let disconnectWords: string | undefined;
      const traffic = newCounts();
      const trace = new TraceRing();
      let lastChange: { at: number; changed: Record<string, unknown> } | undefined;
      let countsShown = '';
      let countsTimer: NodeJS.Timeout | undefined;

      const setStatus = (status: NodeStatus): void => pool.setStatus(status);

      // Values the MSB set with K outlive redeploys (not restarts of Node-RED): they are kept per config node and
      // uuid together with the value declared in the editor at the time, and apply only while that declared value is
      // unchanged — editing a parameter in the editor makes the editor's value win again. (Node context would not do:
      // with the default memory store Node-RED deletes a node's context whenever the node is restarted.)
      const changesKey = `${node.id}/${service.uuid}`;
      const declaredValues = (): Record<string, unknown> => {
        try {
          return Object.fromEntries(
            Object.entries(compileSelfDescription(service, [], []).configuration.parameters).map(([k, v]) => [
              k,
              v.value,
            ]),
          );
        } catch {
          return {};
        }
      };
      const rememberChanges = (changed: Record<string, unknown>): void => {
        const declared = declaredValues();
        const stored =
          rememberedChanges.get(changesKey) ??
          (Object.create(null) as Record<string, { declared: unknown; value: unknown }>);
        for (const [name, value] of Object.entries(changed)) stored[name] = { declared: declared[name], value };
        rememberedChanges.set(changesKey, stored);
      };
      const applyRememberedChanges = (sd: SelfDescription): void => {
        const stored = rememberedChanges.get(changesKey);
        if (!stored) return;
        const declared = declaredValues();
        for (const [name, entry] of Object.entries(stored)) {
          const param = Object.prototype.hasOwnProperty.call(sd.configuration.parameters, name)
            ? sd.configuration.parameters[name]
            : undefined;
          if (param && JSON.stringify(declared[name]) === JSON.stringify(entry.declared)) param.value = entry.value;
        }
      };
      const mirrorParameters = (parameters: Record<string, unknown>): void => {
        if (contextKey) node.context().global.set(contextKey, parameters);
      };

      /** The status for a client state, with the counts appended when any is not zero. */
      const statusFor = (state: ClientState): NodeStatus => {
        let status: NodeStatus;
        if (urlError) status = Status.error('msb.status.badUrl');
        else if (definitionError) status = Status.error('msb.status.invalid');
        else if (state === 'registered')
          status = nioStatus
            ? Status.error(`msb.status.${nioStatus}`)
            : statusOf({ phase: 'registered' }, 'msb.status.registered');
        else if (state === 'connected')
          status = sessionNio
            ? Status.error(`msb.status.${sessionNio}`)
            : { fill: 'green', shape: 'ring', text: 'msb.status.connected' };
        else if (state === 'connecting')
          status = sessionNio
            ? Status.error(`msb.status.${sessionNio}`)
            : statusOf({ phase: 'connecting' }, 'msb.status.connecting');
        else if (state === 'disconnected') status = statusOf(tracker.current, disconnectStatus);
        else status = statusOf({ phase: 'closed' }, 'msb.status.disconnected');
        const counts = client?.counts;
        countsShown = counts ? `${counts.cached}/${counts.dropped}/${counts.unacknowledged}` : '';
        if (counts && (counts.cached > 0 || counts.dropped > 0 || counts.unacknowledged > 0) && status.text) {
          // With numbers the text is translated here (the editor translates bare keys only).
          status = { ...status, text: `${RED._(status.text)} · ${RED._('msb.status.counts', { ...counts })}` };
        }
        return status;
      };
      const showStatus = (): void => setStatus(statusFor(client?.state ?? 'disconnected'));

      const createClient = (): MsbClient => {
        const options = {
          url,
          sockJs: def.sockJs !== false,
          autoReconnect: def.autoReconnect !== false,
          reconnectInterval: reconnectSeconds * 1000,
          eventCacheSize: cacheSize,
          eventCacheBytes: cacheBytes,
          eventCacheFile: cacheFile,
          pingInterval: pingSeconds * 1000,
          tls,
          allowUnverifiedTls: def.allowUnverifiedTls === true,
        };
        let c: MsbClient;
        try {
          c = new MsbClient(options);
        } catch (err) {
          // The store is held by another service of the same uuid in this process (a copied node): keep going in
          // memory; the MSB refuses the second connection anyway.
          if (!cacheFile) throw err;
          node.warn(RED._('msb-config.warn.storeUnavailable', { file: cacheFile, error: asError(err).message }));
          c = new MsbClient({ ...options, eventCacheFile: undefined });
        }
        c.tap = (direction, text, literal) => {
          if (direction === 'out') traffic.sent++;
          else if (text !== 'h') traffic.received++;
          if (trace.enabled)
            trace.record(direction, 'ws', direction === 'in' ? readableSockJs(text) : literal ? unquote(text) : text);
        };
        c.on('state', (state, reason) => {
          tracker.set(connectionState(state, reason));
          disconnectWords =
            state === 'disconnected' && reason
              ? `${RED._(DISCONNECT_STATUS[reason.code] ?? 'msb.status.disconnected')}${reason.detail ? ` (${reason.detail})` : ''}`
              : undefined;
          if (state !== 'registered') nioStatus = undefined;
          if (state === 'disconnected' && reason) {
            disconnectStatus = DISCONNECT_STATUS[reason.code] ?? 'msb.status.disconnected';
            if (reason.code === 'already-connected' || reason.code === 'unauthorized')
              sessionNio =
                reason.code === 'already-connected' ? 'NIO_ALREADY_CONNECTED' : 'NIO_UNAUTHORIZED_CONNECTION';
            else sessionNio = undefined;
            const words = RED._(disconnectStatus);
            connectionWarner.report(
              RED._('msb-config.warn.disconnected', { url, reason: words, detail: reason.detail || '-' }),
            );
          }
          if (state === 'registered') {
            sessionNio = undefined;
            connectionWarner.clear();
            node.log(RED._('msb-config.log.registered', { uuid: service.uuid }));
          }
          showStatus();
        });
        c.on('nio', (keyword, meaning, eventId) => {
          traffic.errors++;
          if (keyword !== 'NIO_ALREADY_CONNECTED' && keyword !== 'NIO_UNAUTHORIZED_CONNECTION') nioStatus = keyword;
          setStatus(Status.error(`msb.status.${keyword}`));
          warnBurst(keyword, `${keyword}: ${meaning}${eventId ? ` (event "${eventId}")` : ''}`);
        });
        c.on('published', () => {
          traffic.acknowledged++;
          if (nioStatus && c.registered && !definitionError) {
            nioStatus = undefined;
            showStatus();
          }
        });
        c.on('warning', (text) => node.warn(text));
        c.on('call', (call) => dispatchCall(call));
        c.on('configuration', (change) => {
          rememberChanges(change.changed);
          lastChange = { at: Date.now(), changed: change.changed };
          mirrorParameters(change.parameters);
          for (const user of pool.list()) user.onConfiguration?.(change);
        });
        // Counts change with every event; the status follows at most once per COUNTS_REFRESH_MS.
        countsTimer ??= setInterval(() => {
          const counts = client?.counts;
          if (counts && `${counts.cached}/${counts.dropped}/${counts.unacknowledged}` !== countsShown) showStatus();
        }, COUNTS_REFRESH_MS);
        countsTimer.unref();
        return c;
      };

      const dispatchCall = (call: FunctionCall): void => {
        let targets = pool.list().filter((u) => u.function?.functionId === call.functionId && u.onCall !== undefined);
        // Like the Python client: "/name" from the MSB also reaches a function declared as "name".
        if (targets.length === 0 && /^\/[^/]/.test(call.functionId))
          targets = pool
            .list()
            .filter((u) => u.function?.functionId === call.functionId.slice(1) && u.onCall !== undefined);
        if (targets.length === 0) {
          warnBurst(
            'unknownFunction',
            RED._('msb-config.warn.unknownFunction', { functionId: call.functionId.slice(0, 80) }),
          );
          return;
        }
        for (const user of targets) user.onCall?.(call);
      };

      const pool = new ConnectionPool<MsbUser>({
        connect: () => {
          if (urlError) {
            setStatus(statusFor('disconnected'));
            return;
          }
          client ??= createClient();
          if (compiled) client.setSelfDescription(compiled);
          client.connect();
        },
        disconnect: async () => {
          const c = client;
          client = undefined;
          if (countsTimer) clearInterval(countsTimer);
          countsTimer = undefined;
          await c?.close();
        },
        usersChanged: () => {
          if (deploying) {
            pendingAfterDeploy.add(applyUsers);
            // Should `flows:started` never come (a failed start), register anyway rather than never.
            deployFallback ??= setTimeout(() => {
              deployFallback = undefined;
              if (pendingAfterDeploy.delete(applyUsers)) applyUsers();
            }, DEPLOY_FALLBACK_MS);
            return;
          }
          applyUsers();
        },
        onError: (err) => node.error(err.message),
      });
      const applyUsers = (): void => {
        if (deployFallback) clearTimeout(deployFallback);
        deployFallback = undefined;
        if (closed) return;
        const users = pool.list();
        try {
          compiled = compileSelfDescription(
            service,
            users.flatMap((u) => (u.event ? [u.event] : [])),
            users.flatMap((u) => (u.function ? [u.function] : [])),
          );
          applyRememberedChanges(compiled);
          if (definitionError) {
            definitionError = undefined;
            showStatus();
          }
          client?.setSelfDescription(compiled);
          const parameters = client?.parameters ?? {};
          mirrorParameters(parameters);
          for (const u of users) u.onConfiguration?.({ parameters, changed: {} });
        } catch (err) {
          definitionError = err instanceof MsbDefinitionError ? err.message : asError(err).message;
          node.error(RED._('msb-config.error.definition', { error: definitionError }));
          showStatus();
        }
      };
      let closed = false;
      let deployFallback: NodeJS.Timeout | undefined;
      let compiled: SelfDescription | undefined;

      node.register = (user) => pool.register(user);
      node.deregister = (user, removed) => pool.deregister(user, removed);
      node.publishEvent = (template: EventTemplate, fields: PublishFields, callback: PublishCallback) => {
        if (urlError) return callback(new Error(RED._('msb-config.error.badUrl', { url, error: urlError })));
        if (definitionError)
          return callback(new Error(RED._('msb-config.error.notRegisteredInvalid', { error: definitionError })));
        if (!client) return callback(new Error(RED._('msb-config.error.noConnection')));
        client.publishEvent(template, fields, callback);
      };
      Object.defineProperty(node, 'parameters', {
        get: (): Record<string, unknown> =>
          client?.parameters ??
          Object.fromEntries(Object.entries(compiled?.configuration.parameters ?? {}).map(([k, v]) => [k, v.value])),
      });
      Object.defineProperty(node, 'state', {
        get: (): StateSince => {
          if (urlError) tracker.set({ phase: 'failed', reason: 'bad-url', detail: urlError });
          else if (definitionError) tracker.set({ phase: 'failed', reason: 'definition', detail: definitionError });
          return tracker.current;
        },
      });
      Object.defineProperty(node, 'lastError', { get: () => lastError });
      // Traffic as the tap counts it, the gauges and rejections as the client keeps them.
      node.counters = (): Counters => {
        const counts = client?.counts;
        return {
          ...traffic,
          queued: counts?.cached ?? 0,
          dropped: counts?.dropped ?? 0,
          errors: traffic.errors + (counts?.rejected ?? 0),
        };
      };
      node.snapshot = () => ({
        state: client?.state ?? 'disconnected',
        definitionError: urlError ?? definitionError,
        cachedEvents: client?.cachedEvents ?? 0,
        counts: client?.counts ?? { cached: 0, dropped: 0, unacknowledged: 0, rejected: 0 },
        durableCache: client?.durableCache ?? cacheFile !== undefined,
        parameters: node.parameters,
        selfDescription: forEditor(client?.description ?? compiled),
      });

      const unregisterProbe = registry.add({
        id: node.id,
        type: 'msb-config',
        bus: 'msb',
        name: () => node.name || service.name || service.uuid,
        state: () => probeState(node.state, urlError ?? definitionError ?? disconnectWords),
        lastError: () => urlError ?? definitionError ?? node.lastError?.message,
        counters: () => node.counters(),
        snapshot: () => ({
          uuid: service.uuid,
          url,
          pendingAcks: client?.counts.unacknowledged ?? 0,
          cachedEvents: client?.cachedEvents ?? 0,
          lastChange,
          selfDescription: forEditor(client?.description ?? compiled),
        }),
        trace,
      });

      this.on('close', (removed: boolean, done: () => void) => {
        closed = true;
        unregisterProbe();
        trace.enabled = false;
        bursts.close();
        if (countsTimer) clearInterval(countsTimer);
        countsTimer = undefined;
        if (removed) rememberedChanges.delete(changesKey);
        pendingAfterDeploy.delete(applyUsers);
        if (deployFallback) clearTimeout(deployFallback);
        deployFallback = undefined;
        pool.close().then(done, (err: unknown) => {
          node.error(asError(err).message);
          done();
        });
      });
    },
    { credentials: { token: { type: 'password' } } },
  );
};
