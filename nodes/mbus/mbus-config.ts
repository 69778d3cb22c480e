// mbus-config: one Mbus entity (address, group/port/scope, keys, timers) shared by every mbus-entity and mbus-rpc node.
import type { NodeAPI, NodeDef } from '../lib/red';
import { ConnectionPool } from '../../src/common/pool';
import { ConfigNodeState, noCounters } from '../lib/config-node';
import { RetryTimer } from '../../src/common/backoff';
import { BurstCounter, ChangeWarner } from '../../src/common/warn';
import {
  DEFAULTS,
  DEFAULT_TIMERS,
  Entity,
  MbusSettings,
  OpenFailure,
  RpcCall,
  RpcEndpoint,
  RpcHandler,
  entityOptions,
  isExampleKey,
  loadMbusFile,
} from '../../src/mbus';
import { isMbusConfigNode, MbusConfigNode, MbusUser } from './mbus-api';
import { asError, messageOf } from '../../src/common/guards';

type MbusConfigDef = NodeDef & MbusSettings;

const HOLD_CALL_MS = 60000;
/** Drops and evictions of one reason are said at once, then at most once a minute with their count. */
const WARN_INTERVAL_MS = 60000;
/** A failed start (interface not up yet, port taken) is retried from 1 s, doubling, up to every 30 s. */
const RETRY = { initialMs: 1000, maxMs: 30000 };

export = function (RED: NodeAPI): void {
  // "1 peer" / "2 peers": the runtime picks the catalog key, so each language words both forms itself.
  const peersText = (count: number): string =>
    RED._(count === 1 ? 'mbus-config.status.peer' : 'mbus-config.status.peers', { count });

  RED.nodes.registerType(
    'mbus-config',
    function (this: MbusConfigNode, def: MbusConfigDef) {
      RED.nodes.createNode(this, def);
      const node = this;
      const cfg = def;
      const served = new Map<string, { call: RpcCall; at: number }>();
      let handleCounter = 0;
      let sweep: NodeJS.Timeout | undefined;
      let peersTimer: NodeJS.Timeout | undefined;
      // The latest of each kind, so the counted once-a-minute line can name an example.
      const latestDrop = new Map<string, { detail: string; from: string }>();
      let latestEvicted = '';
      const counted = new BurstCounter((reason, count) => {
        if (reason === 'evicted') {
          node.warn(
            RED._('mbus-config.warn.evicted', { count, max: node.entity?.maxPeers ?? 0, address: latestEvicted }),
          );
          return;
        }
        const last = latestDrop.get(reason) ?? { detail: '', from: '' };
        const words = RED._(`mbus-config.dropReason.${reason}`);
        node.warn(
          RED._(count === 1 ? 'mbus-config.warn.dropped' : 'mbus-config.warn.droppedMore', {
            count,
            reason: words,
            detail: last.detail,
            from: last.from,
          }),
        );
      }, WARN_INTERVAL_MS);
      const retry = new RetryTimer(RETRY);
      const startWarner = new ChangeWarner((text) =>
        node.warn(RED._('mbus-config.warn.startFailed', { reason: text })),
      );
      /** True while users want the entity up (between the pool's connect and disconnect). */
      let wanted = false;

      try {
        const file = cfg.useMbusFile ? loadMbusFile() : undefined;
        const options = entityOptions(cfg, node.credentials ?? {}, file);
        node.exampleKey = isExampleKey(options.security);
        if (node.exampleKey) node.warn(RED._('mbus-config.warn.exampleKey'));
        node.entity = new Entity(options);
        node.rpc = new RpcEndpoint(node.entity, { answerUnknown: !!cfg.answerUnknown });
        node.entity.on('drop', (reason, detail, rinfo) => {
          // Bad network input is dropped and counted: said at once, then once a minute with how many.
          latestDrop.set(reason, { detail, from: `${rinfo.address}:${rinfo.port}` });
          counted.note(reason);
        });
        // Users see how many peers the entity knows (translated here: the text carries a number), updated at most
        // every 250 ms so a flood of fake hellos is not also a flood of status updates to every node and the editor.
        const showPeers = (): void => {
          if (peersTimer) return;
          peersTimer = setTimeout(() => {
            peersTimer = undefined;
            if (node.entity?.isRunning) shown.show({ phase: 'connected' }, peersText(node.entity.entities.length));
          }, 250);
        };
        node.entity.on('warning', (err) => node.warn(err.message));
        node.entity.on('new-entity', showPeers);
        node.entity.on('lost-entity', (address, why) => {
          if (why === 'evicted') {
            latestEvicted = address.toString();
            counted.note('evicted');
          }
          showPeers();
        });
      } catch (err) {
        const error = asError(err);
        node.configError = error;
        node.error(RED._('mbus-config.error.config', { error: error.message }));
      }

      const compileHandlers = (users: MbusUser[]): void => {
        const table = new Map<string, RpcHandler>();
        for (const u of users) {
          for (const p of u.procedures?.() ?? []) {
            if (table.has(p)) {
              node.warn(RED._('mbus-config.warn.duplicateProcedure', { procedure: p }));
              continue;
            }
            table.set(p, (call) => {
              const handle = `${node.id}:${++handleCounter}`;
              served.set(handle, { call, at: Date.now() });
              u.serve?.(call, handle);
            });
          }
        }
        node.rpc?.setHandlers(table);
      };

      /** The reason a start failed, in the editor's words ("port 47000 in use"). */
      const openFailureText = (err: unknown): string => {
        if (err instanceof OpenFailure) {
          const d = err.detail;
          return RED._(`mbus-config.openFailure.${err.reason}`, {
            interface: d.interface ?? '',
            port: d.port ?? '',
            group: d.group ?? '',
            address: d.interface ?? d.group ?? '',
            errno: d.errno ?? '',
            message: err.message,
          });
        }
        return messageOf(err);
      };

      // One start attempt; a failure is retried with backoff until it works or the users go away — no redeploy.
      const attempt = async (entity: Entity): Promise<void> => {
        try {
          await entity.start();
        } catch (err) {
          if (!wanted) return;
          const why = openFailureText(err);
          node.startFailure = why;
          startWarner.report(why);
          const delay = retry.schedule(() => void attempt(entity));
          const reason = err instanceof OpenFailure ? err.reason : 'start';
          shown.noteError(why);
          shown.show(
            { phase: 'waiting', reason, detail: why, retryMs: delay },
            RED._('mbus-config.status.retrying', { reason: why, seconds: Math.ceil(delay / 1000) }),
          );
          return;
        }
        if (!wanted) {
          await entity.stop();
          return;
        }
        retry.succeeded();
        node.startFailure = undefined;
        if (startWarner.current !== undefined)
          node.log(RED._('mbus-config.log.started', { address: entity.address.toString() }));
        startWarner.clear();
        shown.show({ phase: 'connected' }, peersText(entity.entities.length));
        clearInterval(sweep);
        sweep = setInterval(() => {
          const now = Date.now();
          for (const [h, s] of served) if (now - s.at > HOLD_CALL_MS) served.delete(h);
        }, 10000);
      };

      const pool: ConnectionPool<MbusUser> = new ConnectionPool<MbusUser>({
        connect: async () => {
          const entity = node.entity;
          if (!entity) {
            const why = node.configError?.message ?? RED._('mbus-config.errors.invalid');
            shown.noteError(why);
            shown.show({ phase: 'failed', reason: 'config', detail: why }, why);
            return;
          }
          wanted = true;
          retry.cancel();
          shown.show({ phase: 'connecting' });
          await attempt(entity);
        },
        disconnect: async () => {
          wanted = false;
          retry.cancel();
          clearInterval(sweep);
          served.clear();
          await node.entity?.stop();
          shown.show({ phase: 'closed' });
        },
        usersChanged: compileHandlers,
        onError: (err) => node.error(err),
      });

      const shown = new ConfigNodeState(pool);
      node.register = (user) => pool.register(user);
      node.deregister = (user, removed) => pool.deregister(user, removed);
      Object.defineProperty(node, 'state', { get: () => shown.state });
      Object.defineProperty(node, 'lastError', { get: () => shown.lastError });
      node.counters = () => {
        const e = node.entity;
        const dropped = e ? [...e.counters.values()].reduce((a, b) => a + b, 0) : 0;
        return { ...noCounters(), dropped, errors: dropped };
      };
      node.snapshot = () => effective(node);

      node.replyTo = async (handle, reply) => {
        const s = served.get(handle);
        if (!s || !node.rpc) return false;
        served.delete(handle);
        await node.rpc.reply(s.call, reply);
        return true;
      };

      node.on('close', (_removed, done) => {
        wanted = false;
        retry.cancel();
        clearTimeout(peersTimer);
        counted.close();
        clearInterval(sweep);
        node.rpc?.close();
        pool
          .close()
          .catch((err: unknown) => node.error(err))
          .finally(() => done());
      });
    },
    { credentials: { hashKey: { type: 'password' }, encryptionKey: { type: 'password' } } },
  );

  // Lets the editor show the address and timers in effect (including ~/.mbus) without exposing keys.
  RED.httpAdmin.get('/mbus-config/:id/effective', RED.auth.needsPermission('mbus-config.read'), (req, res) => {
    const node = RED.nodes.getNode(req.params.id ?? '');
    res.json(
      isMbusConfigNode(node)
        ? effective(node)
        : { deployed: false, defaults: { ...DEFAULTS, hashKey: undefined, timers: DEFAULT_TIMERS } },
    );
  });
};

/** The entity as the editor and a state view see it: address and timers in effect, peers, counters; never keys. */
function effective(node: MbusConfigNode): Record<string, unknown> {
  const e = node.entity;
  if (!e)
    return {
      deployed: false,
      error: node.configError?.message,
      defaults: { ...DEFAULTS, hashKey: undefined, timers: DEFAULT_TIMERS },
    };
  return {
    deployed: true,
    running: e.isRunning,
    startFailure: node.startFailure,
    exampleKey: !!node.exampleKey,
    counters: Object.fromEntries(e.counters),
    maxPeers: e.maxPeers,
    address: e.address.toString(),
    group: e.group,
    port: e.port,
    scope: e.scope,
    maxDatagram: e.maxDatagram,
    timers: e.timers,
    peers: e.entities.map((p) => p.address.toString()),
  };
}
