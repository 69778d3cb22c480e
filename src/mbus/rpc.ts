// Mbus guidelines RPC (draft-ietf-mmusic-mbus-guidelines-00 §5.2, as libgmbus speaks it): calls, returns, handler table.
import { Address, MbusError } from './address';
import { Command, M, MValue, Message } from './codec';
import type { Entity } from './entity';
import { MBUS_SYMBOL } from '../common/guards';

export interface RpcReturn {
  /** appstatus OK (true) or FAILED (false). */
  success: boolean;
  /** The application's result symbol, e.g. OK, FAILED, BAR_COMPLETED; UNKNOWN when the callee has no such procedure. */
  result: string;
  description: string;
  arguments: MValue[];
  /** RPC-STATUS from the return meta: OK (the procedure was called) or UNKNOWN. */
  rpcStatus: string;
}

export interface RpcCall {
  procedure: string;
  id: string;
  arguments: MValue[];
  meta: Map<string, MValue>;
  source: Address;
  message: Message;
}

export interface RpcReply {
  success?: boolean;
  result?: string;
  description?: string;
  arguments?: MValue[];
  /** Return as `R` instead of `U` (the guidelines demand it for multicast RPCs). */
  reliable?: boolean;
}

export type RpcHandler = (call: RpcCall) => void;

const SYMBOL = MBUS_SYMBOL;

function metaList(entries: Array<[string, MValue]>): MValue {
  return M.list(...entries.map(([k, v]) => M.list(M.str(k), v)));
}

/** Reads a meta map `(("ID" "1") ("RPC-TYPE" "UNICAST"))`; keys may be Strings or Symbols, values any type. */
export function parseMeta(v: MValue | undefined): Map<string, MValue> | undefined {
  if (!v || v.type !== 'list') return undefined;
  const out = new Map<string, MValue>();
  for (const e of v.value) {
    if (e.type !== 'list' || e.value.length !== 2) return undefined;
    const [k, value] = e.value;
    if (!k || !value || (k.type !== 'string' && k.type !== 'symbol')) return undefined;
    out.set(k.value.toUpperCase(), value);
  }
  return out;
}

function text(v: MValue | undefined): string | undefined {
  if (!v) return undefined;
  if (v.type === 'string' || v.type === 'symbol') return v.value;
  if (v.type === 'integer') return v.value.toString();
  return undefined;
}

export function buildCall(procedure: string, id: string, args: MValue[]): Command {
  return {
    name: procedure,
    args: [
      metaList([
        ['ID', M.str(id)],
        ['RPC-TYPE', M.str('UNICAST')],
      ]),
      M.list(...args),
    ],
  };
}

export function buildReturn(procedure: string, id: string, reply: RpcReply, rpcStatus = 'OK'): Command {
  const success = reply.success !== false;
  const result = reply.result || (success ? 'OK' : 'FAILED');
  if (!SYMBOL.test(result)) throw new MbusError(`RPC result "${result}" must be a symbol (e.g. OK, NO_SUCH_ITEM)`);
  return {
    name: `${procedure}.return`,
    args: [
      metaList([
        ['ID', M.str(id)],
        ['RPC-STATUS', M.str(rpcStatus)],
      ]),
      M.list(
        M.list(M.sym(success ? 'OK' : 'FAILED'), M.sym(result), M.str(reply.description ?? '')),
        M.list(...(reply.arguments ?? [])),
      ),
    ],
  };
}

/** Recognises a guidelines call: first argument a meta map with an ID, second the argument list. */
export function readCall(cmd: Command, message: Message): RpcCall | undefined {
  if (cmd.name.endsWith('.return') || cmd.args.length < 1) return undefined;
  const meta = parseMeta(cmd.args[0]);
  const id = text(meta?.get('ID'));
  if (!meta || id === undefined) return undefined;
  const a = cmd.args[1];
  return {
    procedure: cmd.name,
    id,
    arguments: a && a.type === 'list' ? a.value : [],
    meta,
    source: message.source,
    message,
  };
}

export function readReturn(cmd: Command): { procedure: string; id: string; ret: RpcReturn } | undefined {
  if (!cmd.name.endsWith('.return')) return undefined;
  const meta = parseMeta(cmd.args[0]);
  const id = text(meta?.get('ID'));
  if (!meta || id === undefined) return undefined;
  const rpcStatus = (text(meta.get('RPC-STATUS')) ?? 'OK').toUpperCase();
  const body = cmd.args[1];
  let success = rpcStatus === 'OK';
  let result = rpcStatus === 'OK' ? 'OK' : rpcStatus;
  let description = '';
  let args: MValue[] = [];
  if (body && body.type === 'list') {
    const st = body.value[0];
    if (st && st.type === 'list') {
      const s = text(st.value[0]);
      if (s !== undefined) success = success && s.toUpperCase() === 'OK';
      result = text(st.value[1]) ?? (success ? 'OK' : 'FAILED');
      description = text(st.value[2]) ?? '';
    }
    const r = body.value[1];
    if (r && r.type === 'list') args = r.value;
  }
  if (rpcStatus === 'UNKNOWN') {
    success = false;
    result = 'UNKNOWN';
  }
  return {
    procedure: cmd.name.slice(0, -'.return'.length),
    id,
    ret: { success, result, description, arguments: args, rpcStatus },
  };
}

interface Pending {
  procedure: string;
  callee: Address;
  timer: NodeJS.Timeout;
  resolve(r: RpcReturn): void;
}

let rpcCounter = 0;

export class RpcError extends MbusError {
  constructor(
    message: string,
    code: string,
    readonly ret: RpcReturn,
  ) {
    super(message, code);
  }
}

export interface RpcOptions {
  /** Answer calls to procedures nobody serves with RPC-STATUS UNKNOWN (off by default, like libgmbus). */
  answerUnknown?: boolean;
}

/** Calls and serves guidelines RPCs over one entity. */
export class RpcEndpoint {
  private readonly pending = new Map<string, Pending>();
  private handlers = new Map<string, RpcHandler>();
  answerUnknown: boolean;
  private readonly onCommand = (cmd: Command, msg: Message): void => this.dispatch(cmd, msg);

  constructor(
    readonly entity: Entity,
    options: RpcOptions = {},
  ) {
    this.answerUnknown = !!options.answerUnknown;
    entity.on('command', this.onCommand);
  }

  /** Replaces the handler table (compiled once per deploy from the serving nodes). */
  setHandlers(table: Map<string, RpcHandler>): void {
    this.handlers = new Map(table);
  }

  /**
   * Calls `procedure` at `destination` (one known entity; a partial address that matches exactly one is completed).
   * Resolves with the return — including application failures and UNKNOWN. Rejects with RpcError on timeout or
   * when reliable delivery of the call fails.
   */
  call(destination: Address, procedure: string, args: MValue[], timeoutMs = 2000): Promise<RpcReturn> {
    const peer = this.entity.resolvePeer(destination);
    const id = String(rpcCounter++);
    const key = `${peer.address.key}|${id}`;
    // A call still waiting behind another reliable message to the same callee is withdrawn when the RPC times out.
    const abort = new AbortController();
    return new Promise<RpcReturn>((resolve, reject) => {
      const fail = (code: string, description: string): void => {
        if (!this.pending.delete(key)) return;
        clearTimeout(p.timer);
        abort.abort();
        const ret: RpcReturn = {
          success: false,
          result: code === 'ETIMEDOUT' ? 'TIMEOUT' : 'DELIVERY_FAILED',
          description,
          arguments: [],
          rpcStatus: 'FAILED',
        };
        reject(new RpcError(`RPC ${procedure} to ${peer.address}: ${description}`, code, ret));
      };
      const p: Pending = {
        procedure,
        callee: peer.address,
        timer: setTimeout(() => fail('ETIMEDOUT', `timeout after ${timeoutMs} ms`), timeoutMs),
        resolve: (r) => {
          clearTimeout(p.timer);
          this.pending.delete(key);
          resolve(r);
        },
      };
      this.pending.set(key, p);
      // Alone, like returns (see reply()).
      this.entity
        .send(peer.address, [buildCall(procedure, id, args)], { reliable: true, signal: abort.signal, alone: true })
        .catch((err: Error) => {
          fail(
            (err as MbusError).code === 'EDELIVERY' ? 'EDELIVERY' : (err as MbusError).code || 'EDELIVERY',
            `delivery failed: ${err.message}`,
          );
        });
    });
  }

  /** Sends the return for a call (deferred replies simply call this later). */
  reply(call: RpcCall, reply: RpcReply, rpcStatus = 'OK'): Promise<number> {
    // Alone: libgmbus's RPC layer reads only the first command of a message (a packed second call or return is lost).
    return this.entity.send(call.source, [buildReturn(call.procedure, call.id, reply, rpcStatus)], {
      reliable: !!reply.reliable,
      alone: true,
    });
  }

  private dispatch(cmd: Command, msg: Message): void {
    const r = readReturn(cmd);
    if (r) {
      const p = this.pending.get(`${msg.source.key}|${r.id}`);
      if (p && p.procedure === r.procedure) p.resolve(r.ret);
      return;
    }
    const handler = this.handlers.get(cmd.name);
    if (!handler && !this.answerUnknown) return;
    if (!msg.destination.equals(this.entity.address)) return; // RPCs go to one fully qualified callee
    const call = readCall(cmd, msg);
    if (!call) return;
    if (handler) handler(call);
    else
      this.reply(
        call,
        { success: false, result: 'UNKNOWN', description: `no procedure ${cmd.name} here` },
        'UNKNOWN',
      ).catch(() => undefined);
  }

  isServed(name: string): boolean {
    return this.handlers.has(name);
  }

  close(): void {
    this.entity.off('command', this.onCommand);
    for (const [k, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(k);
      p.resolve({
        success: false,
        result: 'CLOSED',
        description: 'the Mbus entity stopped',
        arguments: [],
        rpcStatus: 'FAILED',
      });
    }
  }
}
