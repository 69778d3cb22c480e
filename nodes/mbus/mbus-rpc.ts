// mbus-rpc: calls a guidelines RPC (call mode) or serves procedures to the bus with replies from the flow (serve mode).
import type { NodeAPI, Node, NodeDef, NodeMessage } from '../lib/red';
import { configNode } from '../lib/red';
import { asError } from '../lib/red';
import { catalogError, closeWith } from '../lib/errors';
import { isMbusConfigNode, MbusUser } from './mbus-api';
import type { NodeStatus } from '../lib/status';
import { Address, RpcCall, RpcError, RpcReturn, argsFromPlain, toPlain, toTyped } from '../../src/mbus';

interface MbusRpcDef extends NodeDef {
  config?: string;
  mode?: 'call' | 'serve';
  procedure?: string;
  procedures?: string[];
  destination?: string;
  timeout?: string | number;
}

const SYMBOL = /^[A-Za-z][A-Za-z0-9_.-]*$/;

function statusOf(r: RpcReturn): Record<string, unknown> {
  return {
    success: r.success,
    result: r.result,
    description: r.description,
    arguments: r.arguments.map(toTyped),
    rpcStatus: r.rpcStatus,
  };
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType('mbus-rpc', function (this: Node, def: MbusRpcDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = def;
    const found = configNode(RED, cfg.config, isMbusConfigNode);
    if (!found) {
      node.status({ fill: 'red', shape: 'ring', text: 'mbus-rpc.status.noConfig' });
      node.on('input', (_msg, _send, done) => done(new Error(RED._('mbus-rpc.error.noConfig'))));
      return;
    }
    const config = found;
    const serveMode = cfg.mode === 'serve';
    const timeout = Number(cfg.timeout) > 0 ? Number(cfg.timeout) : 2000;
    const named = serveMode
      ? [...(cfg.procedures ?? []), ...(cfg.procedure ? [cfg.procedure] : [])].map((p) => String(p).trim())
      : [];
    const procedures = named.filter((p) => SYMBOL.test(p));
    // A name that is not a symbol cannot be called over Mbus: not served, and said so once.
    const invalid = named.filter((p) => !SYMBOL.test(p));
    if (invalid.length > 0)
      node.warn(
        RED._('mbus-rpc.warn.invalidProcedures', { procedures: invalid.map((p) => JSON.stringify(p)).join(', ') }),
      );

    const user: MbusUser = {
      id: node.id,
      status: (s: NodeStatus) => node.status(s),
      procedures: () => procedures,
      serve: (call: RpcCall, handle: string) => {
        node.send({
          topic: call.procedure,
          payload: call.arguments.map(toPlain),
          arguments: call.arguments.map(toTyped),
          source: call.source.toString(),
          sourceAddress: call.source.toObject(),
          rpcCall: { handle, id: call.id, procedure: call.procedure, source: call.source.toString() },
        });
      },
    };
    config.register(user);

    node.on('input', (msg: NodeMessage, send, done) => {
      const rpc = config.rpc;
      if (!rpc) return done(new Error(RED._('mbus-rpc.error.notRunning')));
      const handleOf = (msg.rpcCall as { handle?: unknown } | undefined)?.handle;
      if (typeof handleOf === 'string') {
        // A reply from the flow to a call this node (or a paired serving node) emitted.
        const st = (msg.rpc ?? {}) as { success?: unknown; result?: unknown; description?: unknown };
        let args;
        try {
          args = argsFromPlain(msg.payload);
        } catch (err) {
          return done(asError(err));
        }
        config
          .replyTo(handleOf, {
            success: st.success !== false,
            result: typeof st.result === 'string' && st.result ? st.result : undefined,
            description: typeof st.description === 'string' ? st.description : '',
            arguments: args,
          })
          .then(
            (ok) => done(ok ? undefined : new Error(RED._('mbus-rpc.error.unknownHandle', { handle: handleOf }))),
            (err: unknown) => done(asError(err)),
          );
        return;
      }
      if (serveMode) return done(new Error(RED._('mbus-rpc.error.noHandle')));
      let procedure: string;
      let destination: Address;
      let args;
      try {
        procedure = (typeof msg.topic === 'string' && msg.topic.trim()) || cfg.procedure || '';
        if (!SYMBOL.test(procedure)) throw catalogError(RED, 'mbus-rpc.error.procedure', { procedure }, 'msg.topic');
        const d = msg.destination !== undefined && msg.destination !== '' ? msg.destination : cfg.destination;
        destination = Address.from(d);
        if (destination.size === 0) throw catalogError(RED, 'mbus-rpc.error.noDestination', {}, 'msg.destination');
        args = argsFromPlain(msg.payload);
      } catch (err) {
        return done(asError(err));
      }
      const ms = Number(msg.timeout) > 0 ? Number(msg.timeout) : timeout;
      let call: Promise<RpcReturn>;
      try {
        call = rpc.call(destination, procedure, args, ms);
      } catch (err) {
        return done(asError(err));
      }
      call.then(
        (r) => {
          msg.payload = r.arguments.map(toPlain);
          msg.rpc = statusOf(r);
          send(msg);
          done();
        },
        (err: unknown) => {
          if (err instanceof RpcError) msg.rpc = statusOf(err.ret);
          done(asError(err));
        },
      );
    });

    closeWith(node, (removed) => config.deregister(user, removed));
  });
};
