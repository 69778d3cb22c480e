// apigear-service: implements an ApiGear interface in the flow — properties and signals in, set requests and
// operation calls out, replies returned to the node published to the caller's ResponseTopic.
import type { DoneFunction, Node, NodeAPI, NodeMessage, SendFunction } from '../lib/red';
import { asError } from '../lib/red';
import { ApiGearService, argsFromPayload, Call, namedArgs } from '../../src/apigear';
import { Status } from '../lib/status';
import { catalogError } from '../lib/errors';
import {
  ApiGearDef,
  brokerOf,
  bytesOf,
  clientIdOf,
  openClient,
  planOf,
  qosOf,
  registerAdmin,
  topicOf,
} from './apigear-common';

interface ServiceDef extends ApiGearDef {
  applySet?: boolean;
  /** Opt-in: a deleted or disabled node clears its retained properties (empty payloads generated clients cannot parse). */
  clearRetained?: boolean;
}

export = function (RED: NodeAPI): void {
  registerAdmin(RED);
  RED.nodes.registerType('apigear-service', function (this: Node, def: ServiceDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = def;
    let service: ApiGearService | undefined;
    let connection: ReturnType<typeof openClient> | undefined;

    try {
      const plan = planOf(RED, config);
      const broker = brokerOf(RED, config);
      if (!broker) throw catalogError(RED, 'apigear.error.noBroker', {}, 'broker');
      connection = openClient(node, broker, clientIdOf(RED, node, config, 'nr-apigear-svc'), (client) => {
        service = new ApiGearService(plan, client, { qos: qosOf(config.qos), applySet: config.applySet !== false });
        service.on('ready', (g) =>
          node.status(
            Status.connected(g.grantedQos < g.requestedQos ? 'apigear-service.status.qos-limited' : undefined),
          ),
        );
        service.on('warning', (text) => node.warn(text));
        service.on('error', (err) => {
          node.status(Status.error('node-red:common.status.error'));
          node.error(err.message);
        });
        service.on('set', (req) => {
          node.send([{ topic: `set/${req.property}`, property: req.property, payload: req.value }, null]);
        });
        service.on('call', (call: Call) => {
          const params = plan.operations.get(call.operation)?.params ?? [];
          const msg: NodeMessage = {
            topic: `rpc/${call.operation}`,
            operation: call.operation,
            payload: namedArgs(params, call.args),
            args: call.args,
            responseTopic: call.responseTopic,
            correlationData: call.correlationData,
          };
          node.send([null, msg]);
        });
        service.start();
      });
    } catch (err) {
      node.status(Status.error('apigear-service.status.invalid'));
      node.error(asError(err).message);
    }

    node.on('input', (msg, send, done) => handle(msg, send, done));

    function handle(msg: NodeMessage, send: SendFunction, done: DoneFunction): void {
      const target = topicOf(msg.topic);
      if (!service) return done(catalogError(RED, 'apigear.error.unavailable'));
      if (!target) return done(catalogError(RED, 'apigear-service.error.topic', {}, 'msg.topic'));
      const plan = service.plan;
      const verb =
        target.verb ??
        (plan.properties.has(target.member)
          ? 'prop'
          : plan.signals.has(target.member)
            ? 'sig'
            : plan.operations.has(target.member)
              ? 'rpc'
              : undefined);
      let work: Promise<unknown>;
      try {
        if (verb === 'prop' || verb === 'set') work = service.setProperty(target.member, msg.payload);
        else if (verb === 'sig') {
          const sig = plan.signals.get(target.member);
          if (!sig)
            throw catalogError(
              RED,
              'apigear-service.error.noSignal',
              { interface: plan.interface, member: target.member, signals: [...plan.signals.keys()].join(', ') || '-' },
              'msg.topic',
            );
          work = service.emitSignal(target.member, argsFromPayload(plan.interface, sig.name, sig.params, msg.payload));
        } else if (verb === 'rpc') {
          const call: Call = {
            operation: target.member,
            args: Array.isArray(msg.args) ? msg.args : [],
            responseTopic: typeof msg.responseTopic === 'string' ? msg.responseTopic : undefined,
            correlationData: bytesOf(msg.correlationData),
          };
          work = service.reply(call, msg.payload).then((answered) => {
            if (!answered)
              node.warn(`${plan.interface}.${target.member}: the call carried no ResponseTopic, so no reply was sent`);
          });
        } else {
          throw catalogError(
            RED,
            'apigear-service.error.noMember',
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
      const closing = service;
      service = undefined;
      // By default nothing is published on close: ApiGear's generated clients JSON-parse every message, and an empty
      // retained payload kills their network thread (Python) or the process (C++). Clearing is the user's opt-in.
      const cleared =
        removed && closing && config.clearRetained === true
          ? Promise.race([
              closing.clearProperties().catch(() => undefined),
              new Promise<void>((resolve) => setTimeout(resolve, 2000).unref()),
            ])
          : Promise.resolve();
      cleared
        .then(() => {
          closing?.stop();
          return connection ? connection.close(removed) : undefined;
        })
        .catch((err: unknown) => node.error(asError(err).message))
        .finally(done);
    });
  });
};
