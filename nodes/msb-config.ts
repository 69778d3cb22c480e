// msb-config: one MSB service = one websocket. Compiles the self-description from its users, registers it once per
// deploy, fans connection status out, routes function calls and configuration changes, publishes events.
import type { ConnectionOptions } from 'tls';
import { ConnectionPool } from '../src/common/pool';
import { NodeStatus, Status } from '../src/common/status';
import { FunctionCall, MsbClient, PublishRequest } from '../src/msb/client';
import {
  compileSelfDescription,
  ConfigParameterDeclaration,
  EventDeclaration,
  FunctionDeclaration,
  MsbDefinitionError,
  SelfDescription,
  ServiceClass,
  SimpleType,
} from '../src/msb/selfdescription';
import { dataFormatFromProps, DataFormatProps, isMsbConfigNode, MsbConfigNode, MsbUser } from './lib/msb';
import { AdminRequest, AdminResponse, asError, Node, NodeAPI, NodeDef } from './lib/red';

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

interface TlsConfigNode {
  addTLSOptions(opts: ConnectionOptions): void;
}

const MIN_RECONNECT_S = 3;
const DEPLOY_FALLBACK_MS = 10000;

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

function serviceFrom(def: { uuid?: string; name?: string; description?: string; serviceClass?: string; parameters?: MsbConfigDef['parameters'] }, token: string | undefined) {
  return {
    uuid: (def.uuid ?? '').trim(),
    name: (def.name ?? '').trim(),
    description: def.description ?? '',
    serviceClass: (def.serviceClass || 'SmartObject') as ServiceClass,
    token: token ?? '',
    parameters: (def.parameters ?? []).map(
      (p): ConfigParameterDeclaration => ({ name: String(p.name ?? '').trim(), type: (p.type ?? 'string') as SimpleType, value: p.value ?? '' }),
    ),
  };
}

function eventFrom(p: EventProps): EventDeclaration {
  return { eventId: String(p.eventId ?? '').trim(), name: p.name || undefined, description: p.description ?? '', dataFormat: dataFormatFromProps(p) };
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

export = function (RED: NodeAPI) {
  watchDeploys(RED);
  // Editor preview of the self-description a dialog's (possibly undeployed) declarations compile to. Registered once
  // at module load, and it runs the very compiler the runtime uses.
  RED.httpAdmin.post('/msb-config/self-description', RED.auth.needsPermission('msb-config.read'), (req: AdminRequest, res: AdminResponse) => {
    const body = (req.body ?? {}) as { service?: MsbConfigDef; hasToken?: boolean; events?: EventProps[]; functions?: FunctionProps[] };
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
  });
  // What a deployed msb-config runs with right now: state, registered description, live parameter values, cache.
  RED.httpAdmin.get('/msb-config/:id/state', RED.auth.needsPermission('msb-config.read'), (req: AdminRequest, res: AdminResponse) => {
    const node = RED.nodes.getNode(req.params.id);
    if (!isMsbConfigNode(node)) {
      res.status(404).json({ error: 'not deployed' });
      return;
    }
    res.json((node as MsbConfigNode & { stateForEditor(): unknown }).stateForEditor());
  });

  RED.nodes.registerType(
    'msb-config',
    function (this: Node<{ token?: string }>, def: MsbConfigDef) {
      RED.nodes.createNode(this, def);
      const node = this as unknown as MsbConfigNode & Node<{ token?: string }> & { stateForEditor(): unknown };
      const service = serviceFrom(def, this.credentials?.token);
      const reconnectSeconds = Math.max(MIN_RECONNECT_S, Number(def.reconnectInterval ?? 10) || 10);
      const cacheSize = Math.max(0, Math.floor(Number(def.eventCacheSize ?? 1000)));
      const tls: ConnectionOptions = {};
      if (def.tls) {
        const tlsNode = RED.nodes.getNode(def.tls) as TlsConfigNode | null;
        if (tlsNode && typeof tlsNode.addTLSOptions === 'function') tlsNode.addTLSOptions(tls);
      }
      const contextKey = (def.contextKey ?? '').trim();

      let client: MsbClient | undefined;
      let lastDetail: string | undefined;
      let definitionError: string | undefined;
      let nioStatus = false;
      // A NIO that ends the session (uuid already connected, unauthorized) stays visible until registration succeeds,
      // rather than being replaced by "disconnected" a moment later.
      let sessionNio: string | undefined;

      const setStatus = (status: NodeStatus): void => pool.setStatus(status);

      // Values the MSB set with K outlive redeploys (not restarts of Node-RED): they are kept per config node and
      // uuid together with the value declared in the editor at the time, and apply only while that declared value is
      // unchanged — editing a parameter in the editor makes the editor's value win again. (Node context would not do:
      // with the default memory store Node-RED deletes a node's context whenever the node is restarted.)
      const changesKey = `${node.id}/${service.uuid}`;
      const declaredValues = (): Record<string, unknown> => {
        try {
          return Object.fromEntries(Object.entries(compileSelfDescription(service, [], []).configuration.parameters).map(([k, v]) => [k, v.value]));
        } catch {
          return {};
        }
      };
      const rememberChanges = (changed: Record<string, unknown>): void => {
        const declared = declaredValues();
        const stored = rememberedChanges.get(changesKey) ?? {};
        for (const [name, value] of Object.entries(changed)) stored[name] = { declared: declared[name], value };
        rememberedChanges.set(changesKey, stored);
      };
      const applyRememberedChanges = (sd: SelfDescription): void => {
        const stored = rememberedChanges.get(changesKey);
        if (!stored) return;
        const declared = declaredValues();
        for (const [name, entry] of Object.entries(stored)) {
          const param = sd.configuration.parameters[name];
          if (param && JSON.stringify(declared[name]) === JSON.stringify(entry.declared)) param.value = entry.value;
        }
      };
      const mirrorParameters = (parameters: Record<string, unknown>): void => {
        if (contextKey) node.context().global.set(contextKey, parameters);
      };

      const createClient = (): MsbClient => {
        const c = new MsbClient({
          url: def.url || 'ws://127.0.0.1:8085',
          sockJs: def.sockJs !== false,
          autoReconnect: def.autoReconnect !== false,
          reconnectInterval: reconnectSeconds * 1000,
          eventCacheSize: cacheSize,
          tls,
          allowUnverifiedTls: def.allowUnverifiedTls === true,
        });
        c.on('state', (state, detail) => {
          if (definitionError) return;
          nioStatus = false;
          if (state === 'connecting') setStatus(Status.connecting('msb.status.connecting'));
          else if (state === 'connected') setStatus({ fill: 'green', shape: 'ring', text: 'msb.status.connected' });
          else if (state === 'registered') setStatus(Status.connected('msb.status.registered'));
          else if (state === 'disconnected') setStatus(sessionNio ? Status.error(`msb.status.${sessionNio}`) : Status.disconnected('msb.status.disconnected'));
          else if (state === 'closed') setStatus(Status.disconnected('msb.status.disconnected'));
          if (state === 'disconnected' && detail && detail !== lastDetail) node.warn(RED._('msb-config.warn.disconnected', { url: def.url, detail }));
          if (state === 'registered') {
            sessionNio = undefined;
            node.log(RED._('msb-config.log.registered', { uuid: service.uuid }));
          }
          lastDetail = state === 'disconnected' ? detail : undefined;
        });
        c.on('nio', (keyword, meaning, eventId) => {
          nioStatus = true;
          if (keyword === 'NIO_ALREADY_CONNECTED' || keyword === 'NIO_UNAUTHORIZED_CONNECTION') sessionNio = keyword;
          setStatus(Status.error(`msb.status.${keyword}`));
          node.warn(`${keyword}: ${meaning}${eventId ? ` (event "${eventId}")` : ''}`);
        });
        c.on('published', () => {
          if (nioStatus && c.registered && !definitionError) {
            nioStatus = false;
            setStatus(Status.connected('msb.status.registered'));
          }
        });
        c.on('warning', (text) => node.warn(text));
        c.on('call', (call) => dispatchCall(call));
        c.on('configuration', (change) => {
          rememberChanges(change.changed);
          mirrorParameters(change.parameters);
          for (const user of pool.list()) user.onConfiguration?.(change);
        });
        return c;
      };

      const dispatchCall = (call: FunctionCall): void => {
        let targets = pool.list().filter((u) => u.function?.functionId === call.functionId && u.onCall);
        // Like the Python client: "/name" from the MSB also reaches a function declared as "name".
        if (targets.length === 0 && /^\/[^/]/.test(call.functionId)) targets = pool.list().filter((u) => u.function?.functionId === call.functionId.slice(1) && u.onCall);
        if (targets.length === 0) {
          node.warn(RED._('msb-config.warn.unknownFunction', { functionId: call.functionId }));
          return;
        }
        for (const user of targets) user.onCall?.(call);
      };

      const pool = new ConnectionPool<MsbUser>({
        connect: () => {
          client ??= createClient();
          if (compiled) client.setSelfDescription(compiled);
          client.connect();
        },
        disconnect: async () => {
          const c = client;
          client = undefined;
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
            setStatus(client?.registered ? Status.connected('msb.status.registered') : Status.connecting('msb.status.connecting'));
          }
          client?.setSelfDescription(compiled);
          const parameters = client?.parameters ?? {};
          mirrorParameters(parameters);
          for (const u of users) u.onConfiguration?.({ parameters, changed: {} });
        } catch (err) {
          definitionError = err instanceof MsbDefinitionError ? err.message : asError(err).message;
          node.error(RED._('msb-config.error.definition', { error: definitionError }));
          setStatus(Status.error('msb.status.invalid'));
        }
      };
      let closed = false;
      let deployFallback: NodeJS.Timeout | undefined;
      let compiled: SelfDescription | undefined;

      node.register = (user) => pool.register(user);
      node.deregister = (user, removed) => pool.deregister(user, removed);
      node.publish = (req: PublishRequest) => {
        if (definitionError) throw new Error(RED._('msb-config.error.notRegisteredInvalid', { error: definitionError }));
        if (!client) throw new Error(RED._('msb-config.error.noConnection'));
        return client.publish(req);
      };
      Object.defineProperty(node, 'parameters', {
        get: (): Record<string, unknown> => client?.parameters ?? Object.fromEntries(Object.entries(compiled?.configuration.parameters ?? {}).map(([k, v]) => [k, v.value])),
      });
      node.stateForEditor = () => ({
        state: client?.state ?? 'disconnected',
        definitionError,
        cachedEvents: client?.cachedEvents ?? 0,
        parameters: node.parameters,
        selfDescription: forEditor(client?.description ?? compiled),
      });

      this.on('close', (removed: boolean, done: () => void) => {
        closed = true;
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
