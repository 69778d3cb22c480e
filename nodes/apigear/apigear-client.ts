// apigear-client: uses a remote ApiGear interface — property changes and signals out, set and invoke in, the
// operation's result coming out on the same msg.
import type { DoneFunction, Node, NodeAPI, NodeMessage, SendFunction } from '../lib/red';
import { asError } from '../lib/red';
import { ApiGearClient, argsFromPayload, namedArgs } from '../../src/apigear';
import { Status } from '../lib/status';
import { catalogError } from '../lib/errors';
import { ApiGearDef, brokerOf, clientIdOf, openClient, planOf, qosOf, registerAdmin, topicOf } from './apigear-common';

interface ClientDef extends ApiGearDef {
  /** Seconds to wait for an operation's reply. */
  timeout?: number | string;
}

export = function (RED: NodeAPI): void {
  registerAdmin(RED);
  RED.nodes.registerType('apigear-client', function (this: Node, def: ClientDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = def;
    const timeoutSeconds = Number(config.timeout);
    const timeoutMs = Number.isFinite(timeoutSeconds) && timeoutSeconds > 0 ? timeoutSeconds * 1000 : 30000;
    let core: ApiGearClient | undefined;
    let connection: ReturnType<typeof openClient> | undefined;

    try {
      const plan = planOf(RED, config);
      const broker = brokerOf(RED, config);
      if (!broker) throw catalogError(RED, 'apigear.error.noBroker', {}, 'broker');
      connection = openClient(node, broker, clientIdOf(RED, node, config, 'nr-apigear-cli'), (client) => {
        // The id really used (unique in this Node-RED) is the one in the reply topics.
        core = new ApiGearClient(plan, client, { clientId: client.clientId, qos: qosOf(config.qos), timeoutMs });
        core.on('ready', (g) =>
          node.status(
            Status.connected(g.grantedQos < g.requestedQos ? 'apigear-client.status.qos-limited' : undefined),
          ),
        );
        core.on('warning', (text) => node.warn(text));
        core.on('error', (err) => {
          node.status(Status.error('node-red:common.status.error'));
          node.error(err.message);
        });
        core.on('property', (p) =>
          node.send([{ topic: `prop/${p.property}`, property: p.property, payload: p.value }, null, null]),
        );
        core.on('signal', (s) => {
          const params = plan.signals.get(s.signal)?.params ?? [];
          node.send([
            null,
            { topic: `sig/${s.signal}`, signal: s.signal, payload: namedArgs(params, s.args), args: s.args },
            null,
          ]);
        });
        core.start();
      });
    } catch (err) {
      node.status(Status.error('apigear-client.status.invalid'));
      node.error(asError(err).message);
    }

    node.on('input', (msg, send, done) => handle(msg, send, done));

    function handle(msg: NodeMessage, send: SendFunction, done: DoneFunction): void {
      const target = topicOf(msg.topic);
      if (!core) return done(catalogError(RED, 'apigear.error.unavailable'));
      if (!target) return done(catalogError(RED, 'apigear-client.error.topic', {}, 'msg.topic'));
      const client = core;
      const plan = client.plan;
      const verb =
        target.verb ??
        (plan.properties.has(target.member) ? 'set' : plan.operations.has(target.member) ? 'rpc' : undefined);
      let work: Promise<void>;
      try {
        if (verb === 'set' || verb === 'prop') work = client.setProperty(target.member, msg.payload);
        else if (verb === 'rpc') {
          const op = plan.operations.get(target.member);
          if (!op)
            throw catalogError(
              RED,
              'apigear-client.error.noOperation',
              {
                interface: plan.interface,
                member: target.member,
                operations: [...plan.operations.keys()].join(', ') || '-',
              },
              'msg.topic',
            );
          const args = argsFromPayload(plan.interface, op.name, op.params, msg.payload);
          const msgTimeout = Number(msg.timeout);
          work = client
            .invoke(op.name, args, Number.isFinite(msgTimeout) && msgTimeout > 0 ? msgTimeout : timeoutMs)
            .then((result) => {
              msg.payload = result;
              msg.operation = op.name;
              send([null, null, msg]);
            });
        } else {
          throw catalogError(
            RED,
            'apigear-client.error.noMember',
            { topic: JSON.stringify(msg.topic), interface: plan.interface },
            'msg.topic',
          );
        }
      } catch (err) {
        return done(asError(err));
      }
      work.then(
        () => done(),
        (err: unknown) => done(asError(err)),
      );
    }

    node.on('close', (removed, done) => {
      core?.stop();
      core = undefined;
      const closing = connection ? connection.close(removed) : Promise.resolve();
      closing.catch((err: unknown) => node.error(asError(err).message)).finally(done);
    });
  });
};
