// mbus-config: one Mbus entity (address, group/port/scope, keys, timers) shared by every mbus-entity and mbus-rpc node.
import type { NodeAPI, Node, NodeDef } from './lib/red';
import { ConnectionPool, PoolUser } from '../src/common/pool';
import { Status } from '../src/common/status';
import { DEFAULTS, DEFAULT_TIMERS, Entity, MbusCredentials, MbusSettings, RpcCall, RpcEndpoint, RpcHandler, entityOptions, loadMbusFile } from '../src/mbus';
import type { MbusConfigNode, MbusUser } from './lib/mbus';

type MbusConfigDef = NodeDef & MbusSettings;

const HOLD_CALL_MS = 60000;

export = function (RED: NodeAPI): void {
  // "1 peer" / "2 peers": the runtime picks the catalog key, so each language words both forms itself.
  const peersText = (count: number): string => RED._(count === 1 ? 'mbus-config.status.peer' : 'mbus-config.status.peers', { count });

  RED.nodes.registerType(
    'mbus-config',
    function (this: Node<MbusCredentials>, def: NodeDef) {
      RED.nodes.createNode(this, def);
      const node = this as MbusConfigNode;
      const cfg = def as MbusConfigDef;
      const served = new Map<string, { call: RpcCall; at: number }>();
      let handleCounter = 0;
      const lastWarn = new Map<string, number>();
      let sweep: NodeJS.Timeout | undefined;

      try {
        const file = cfg.useMbusFile ? loadMbusFile() : undefined;
        node.entity = new Entity(entityOptions(cfg, node.credentials ?? {}, file));
        node.rpc = new RpcEndpoint(node.entity, { answerUnknown: !!cfg.answerUnknown });
        node.entity.on('drop', (reason, detail, rinfo) => {
          // Bad network input is dropped with a warning, at most once a minute per reason.
          const now = Date.now();
          if (now - (lastWarn.get(reason) ?? 0) < 60000) return;
          lastWarn.set(reason, now);
          node.warn(RED._('mbus-config.warn.dropped', { reason, detail, from: `${rinfo.address}:${rinfo.port}` }));
        });
        // Users see how many peers the entity knows (translated here: the text carries a number).
        const showPeers = (): void => {
          if (node.entity?.isRunning) node.pool.setStatus(Status.connected(peersText(node.entity.entities.length)));
        };
        node.entity.on('warning', (err) => node.warn(err.message));
        node.entity.on('new-entity', showPeers);
        node.entity.on('lost-entity', showPeers);
      } catch (err) {
        node.configError = err instanceof Error ? err : new Error(String(err));
        node.error(RED._('mbus-config.error.config', { error: node.configError.message }));
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

      node.pool = new ConnectionPool<MbusUser>({
        connect: async () => {
          const entity = node.entity;
          if (!entity) {
            node.pool.setStatus(Status.error(node.configError?.message ?? 'invalid configuration'));
            return;
          }
          node.pool.setStatus(Status.connecting());
          try {
            await entity.start();
            node.pool.setStatus(Status.connected(peersText(0)));
            sweep = setInterval(() => {
              const now = Date.now();
              for (const [h, s] of served) if (now - s.at > HOLD_CALL_MS) served.delete(h);
            }, 10000);
          } catch (err) {
            node.pool.setStatus(Status.error(err instanceof Error ? err.message : String(err)));
            node.error(err);
          }
        },
        disconnect: async () => {
          clearInterval(sweep);
          served.clear();
          await node.entity?.stop();
          node.pool.setStatus(Status.disconnected());
        },
        usersChanged: compileHandlers,
        onError: (err) => node.error(err),
      });

      node.replyTo = async (handle, reply) => {
        const s = served.get(handle);
        if (!s || !node.rpc) return false;
        served.delete(handle);
        await node.rpc.reply(s.call, reply);
        return true;
      };

      node.on('close', (_removed, done) => {
        clearInterval(sweep);
        node.rpc?.close();
        node.pool
          .close()
          .catch((err: unknown) => node.error(err))
          .finally(() => done());
      });
    },
    { credentials: { hashKey: { type: 'password' }, encryptionKey: { type: 'password' } } },
  );

  // Lets the editor show the address and timers in effect (including ~/.mbus) without exposing keys.
  RED.httpAdmin.get('/mbus-config/:id/effective', RED.auth.needsPermission('mbus-config.read'), (req, res) => {
    const node = RED.nodes.getNode(req.params.id) as MbusConfigNode | null;
    const e = node?.entity;
    if (!e) {
      res.json({ deployed: false, error: node?.configError?.message, defaults: { ...DEFAULTS, hashKey: undefined, timers: DEFAULT_TIMERS } });
      return;
    }
    res.json({
      deployed: true,
      running: e.isRunning,
      address: e.address.toString(),
      group: e.group,
      port: e.port,
      scope: e.scope,
      maxDatagram: e.maxDatagram,
      timers: e.timers,
      peers: e.entities.map((p) => p.address.toString()),
    });
  });
};
