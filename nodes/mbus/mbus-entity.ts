// mbus-entity: sends Mbus commands as the configured entity; emits received commands (output 1) and bus events (output 2).
import type { NodeAPI, Node, NodeDef, NodeMessage } from '../lib/red';
import { configNode } from '../lib/red';
import { catalogError, closeWith, onInput } from '../lib/errors';
import { Status } from '../lib/status';
import { isMbusConfigNode, MbusUser } from './mbus-api';
import type { NodeStatus } from '../lib/status';
import { Address, Command, Entity, EntityEvents, argsFromPlain, compileFilter, toPlain, toTyped } from '../../src/mbus';
import { MBUS_SYMBOL, messageOf } from '../../src/common/guards';

interface MbusEntityDef extends NodeDef {
  config?: string;
  filters?: string[];
  destination?: string;
  reliable?: boolean;
  unknownEvents?: boolean;
}

const SYMBOL = MBUS_SYMBOL;

function commandsOf(RED: NodeAPI, msg: NodeMessage): Command[] {
  if (Array.isArray(msg.commands)) {
    return (msg.commands as Array<{ name?: unknown; topic?: unknown; args?: unknown; payload?: unknown }>).map(
      (c, index) => {
        const name = String(c?.name ?? c?.topic ?? '');
        if (!SYMBOL.test(name))
          throw catalogError(RED, 'mbus-entity.error.commandName', { index, name }, `msg.commands[${index}].name`);
        return { name, args: argsFromPlain(c.args ?? c.payload) };
      },
    );
  }
  const name = typeof msg.topic === 'string' ? msg.topic.trim() : '';
  if (!name) throw catalogError(RED, 'mbus-entity.error.noTopic', {}, 'msg.topic');
  if (!SYMBOL.test(name)) throw catalogError(RED, 'mbus-entity.error.topicName', { name }, 'msg.topic');
  return [{ name, args: argsFromPlain(msg.payload) }];
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType('mbus-entity', function (this: Node, def: MbusEntityDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const cfg = def;
    const found = configNode(RED, cfg.config, isMbusConfigNode);
    if (!found) {
      node.status({ fill: 'red', shape: 'ring', text: 'mbus-entity.status.noConfig' });
      node.on('input', (_msg, _send, done) => done(new Error(RED._('mbus-entity.error.noConfig'))));
      return;
    }
    const config = found;
    const entity: Entity | undefined = config.entity;
    const accept = compileFilter(cfg.filters);
    // A saved destination that does not parse (an old flow, a hand edit) is said once and fails every message that
    // does not bring its own msg.destination; the node still receives.
    let defaultDestination = Address.empty;
    let destinationError: Error | undefined;
    try {
      if (cfg.destination) defaultDestination = Address.parse(cfg.destination);
    } catch (err) {
      destinationError = catalogError(
        RED,
        'mbus-entity.error.destination',
        { destination: cfg.destination, error: messageOf(err) },
        'destination',
      );
      node.error(destinationError.message);
    }

    const user: MbusUser = {
      id: node.id,
      status: (s: NodeStatus) => node.status(destinationError ? Status.failed('mbus-entity.status.badDestination') : s),
    };
    if (destinationError) node.status(Status.failed('mbus-entity.status.badDestination'));
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
        node.send([
          { topic: cmd.name, payload: cmd.args.map(toPlain), arguments: cmd.args.map(toTyped), ...base },
          null,
        ]);
      } else if (cfg.unknownEvents && !cmd.name.startsWith('mbus.')) {
        event('unknown', { command: cmd.name, arguments: cmd.args.map(toTyped), ...base });
      }
    });
    listen('new-entity', (a) => event('new-entity', { address: a.toString(), addressElements: a.toObject() }));
    listen('lost-entity', (a, reason) =>
      event('lost-entity', { address: a.toString(), addressElements: a.toObject(), reason }),
    );
    listen('delivery-failed', (f) =>
      event('delivery-failed', {
        destination: f.destination.toString(),
        seq: f.seq,
        commands: f.commands.map((c) => c.name),
        reason: f.reason,
      }),
    );
    listen('quit', (m) => event('quit', { source: m.source.toString() }));
    listen('waiting', (c, m) => event('waiting', { condition: c, source: m.source.toString() }));
    listen('go', (c, m) => event('go', { condition: c, source: m.source.toString() }));

    onInput(node, async (msg) => {
      if (!entity) throw new Error(RED._('mbus-entity.error.notRunning'));
      const commands = commandsOf(RED, msg);
      const own = msg.destination !== undefined && msg.destination !== '';
      if (!own && destinationError) throw destinationError;
      const destination = own ? Address.from(msg.destination) : defaultDestination;
      const reliable = typeof msg.reliable === 'boolean' ? msg.reliable : !!cfg.reliable;
      await entity.send(destination, commands, { reliable });
    });

    closeWith(node, async (removed) => {
      for (const [ev, fn] of listeners) entity?.off(ev, fn as never);
      await config.deregister(user, removed);
    });
  });
};
