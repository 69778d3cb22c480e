// mbus-entity: sends Mbus commands as the configured entity; emits received commands (output 1) and bus events (output 2).
import type { NodeAPI, Node, NodeDef, NodeMessage } from '../lib/red';
import { asError } from '../lib/red';
import { isMbusConfigNode, MbusUser } from './mbus-api';
import type { NodeStatus } from '../lib/status';
import { Address, Command, Entity, EntityEvents, MbusError, argsFromPlain, compileFilter, toPlain, toTyped } from '../../src/mbus';
import { MBUS_SYMBOL } from '../../src/common/guards';

interface MbusEntityDef extends NodeDef {
  config?: string;
  filters?: string[];
  destination?: string;
  reliable?: boolean;
  unknownEvents?: boolean;
}

const SYMBOL = MBUS_SYMBOL;

function commandsOf(msg: NodeMessage): Command[] {
  if (Array.isArray(msg.commands)) {
    return (msg.commands as Array<{ name?: unknown; topic?: unknown; args?: unknown; payload?: unknown }>).map((c, i) => {
      const name = String(c?.name ?? c?.topic ?? '');
      if (!SYMBOL.test(name)) throw new MbusError(`msg.commands[${i}].name "${name}" is not a command name like "app.cmd"`);
      return { name, args: argsFromPlain(c.args ?? c.payload) };
    });
  }
  const name = typeof msg.topic === 'string' ? msg.topic.trim() : '';
  if (!name) throw new MbusError('msg.topic must hold the command name (e.g. "app.ping")');
  if (!SYMBOL.test(name)) throw new MbusError(`msg.topic "${name}" is not a command name: a letter, then letters, digits, _ - . (e.g. "app.ping")`);
  return [{ name, args: argsFromPlain(msg.payload) }];
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType('mbus-entity', function (this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = def as MbusEntityDef;
    const found = cfg.config ? RED.nodes.getNode(cfg.config) : undefined;
    if (!isMbusConfigNode(found)) {
      node.status({ fill: 'red', shape: 'ring', text: 'mbus-entity.status.noConfig' });
      node.on('input', (_msg, _send, done) => done(new Error(RED._('mbus-entity.error.noConfig'))));
      return;
    }
    const config = found;
    const entity: Entity | undefined = config.entity;
    const accept = compileFilter(cfg.filters);
    const defaultDestination = cfg.destination ? Address.parse(cfg.destination) : Address.empty;

    const user: MbusUser = { id: node.id, status: (s: NodeStatus) => node.status(s) };
    config.register(user);

    const event = (topic: string, payload: Record<string, unknown>): void => node.send([null, { topic, payload }]);
    const listeners: Array<[keyof EntityEvents, (...args: never[]) => void]> = [];
    const listen = <K extends keyof EntityEvents>(ev: K, fn: (...args: EntityEvents[K]) => void): void => {
      entity?.on(ev, fn);
      listeners.push([ev, fn as (...args: never[]) => void]);
    };

    listen('command', (cmd, m) => {
      const base = {
        source: m.source.toString(),
        sourceAddress: m.source.toObject(),
        destination: m.destination.toString(),
        reliable: m.reliable,
        seq: m.seq,
        timestamp: m.timestamp,
      };
      if (accept(cmd.name)) {
        node.send([{ topic: cmd.name, payload: cmd.args.map(toPlain), arguments: cmd.args.map(toTyped), ...base }, null]);
      } else if (cfg.unknownEvents && !cmd.name.startsWith('mbus.')) {
        event('unknown', { command: cmd.name, arguments: cmd.args.map(toTyped), ...base });
      }
    });
    listen('new-entity', (a) => event('new-entity', { address: a.toString(), addressElements: a.toObject() }));
    listen('lost-entity', (a, reason) => event('lost-entity', { address: a.toString(), addressElements: a.toObject(), reason }));
    listen('delivery-failed', (f) => event('delivery-failed', { destination: f.destination.toString(), seq: f.seq, commands: f.commands.map((c) => c.name), reason: f.reason }));
    listen('quit', (m) => event('quit', { source: m.source.toString() }));
    listen('waiting', (c, m) => event('waiting', { condition: c, source: m.source.toString() }));
    listen('go', (c, m) => event('go', { condition: c, source: m.source.toString() }));

    node.on('input', (msg, _send, done) => {
      if (!entity) return done(new Error(RED._('mbus-entity.error.notRunning')));
      let commands: Command[];
      let destination: Address;
      try {
        commands = commandsOf(msg);
        destination = msg.destination !== undefined && msg.destination !== '' ? Address.from(msg.destination) : defaultDestination;
      } catch (err) {
        return done(asError(err));
      }
      const reliable = typeof msg.reliable === 'boolean' ? msg.reliable : !!cfg.reliable;
      entity.send(destination, commands, { reliable }).then(
        () => done(),
        (err: unknown) => done(asError(err)),
      );
    });

    node.on('close', (removed, done) => {
      for (const [ev, fn] of listeners) entity?.off(ev, fn as never);
      config
        .deregister(user, removed)
        .catch((err: unknown) => node.error(err))
        .finally(() => done());
    });
  });
};
