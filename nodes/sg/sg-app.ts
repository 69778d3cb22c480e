// sg-app: a Secure Gateway (sgframework) app in a flow — sends commands, receives the data and availability it
// subscribed to; no will and nothing published on connect, exactly as an sgframework 0.2.x App.
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../lib/red';
import { asError } from '../lib/red';
import { catalogError } from '../lib/errors';
import { formatOptions, joinConnection, payloadText, SgFormatDef } from './sg-node';
import type { AvailabilityPrefix, SgDeclaration, SubscriptionDeclaration } from '../../src/sg/plan';
import { PAYLOAD_TRUE } from '../../src/sg/plan';
import { pythonStrip } from '../../src/sg/python';

interface SubscriptionDef {
  /** `data`, or an availability prefix: `commandavailable`, `dataavailable`, `resourceavailable`. */
  type?: 'data' | AvailabilityPrefix;
  service?: string;
  signal?: string;
  changeOnly?: boolean;
}

interface SgAppDef extends NodeDef, SgFormatDef {
  broker?: string;
  app?: string;
  subscriptions?: SubscriptionDef[];
  service?: string;
  signal?: string;
  retain?: boolean;
}

/** `<service>/<signal>` or `command/<service>/<signal>` from msg.topic. */
function commandTarget(topic: string): [string, string] | undefined {
  const parts = topic.split('/');
  const [a, b, c] = parts;
  if (parts.length === 2 && a !== undefined && b !== undefined) return [a, b];
  if (parts.length === 3 && a !== undefined && pythonStrip(a) === 'command' && b !== undefined && c !== undefined)
    return [b, c];
  return undefined;
}

export = function (RED: NodeAPI): void {
  RED.nodes.registerType('sg-app', function (this: Node, def: SgAppDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = def;
    const format = formatOptions(config);
    const subscriptions: SubscriptionDeclaration[] = (config.subscriptions ?? []).map((s) =>
      s.type === 'commandavailable' || s.type === 'dataavailable' || s.type === 'resourceavailable'
        ? { kind: 'availability', prefix: s.type, service: String(s.service ?? ''), signal: String(s.signal ?? '') }
        : {
            kind: 'data',
            service: String(s.service ?? ''),
            signal: String(s.signal ?? ''),
            changeOnly: s.changeOnly === true,
          },
    );
    const declaration: SgDeclaration = { owner: node.id, role: 'app', subscriptions };

    const connection = joinConnection(
      RED,
      node,
      'sg-app',
      config.broker,
      String(config.app ?? ''),
      () => declaration,
      (message) => {
        const msg: NodeMessage = {
          topic: message.topic,
          payload: message.payload,
          messagetype: message.messagetype,
          service: message.service,
          signal: message.signal,
        };
        if (message.kind === 'availability') {
          msg.payload = message.payload === PAYLOAD_TRUE;
          msg.text = message.payload;
        }
        node.send(msg);
      },
    );

    node.on('input', (msg, _send, done) => {
      if (connection instanceof Error) {
        done(connection);
        return;
      }
      let target: [string, string] | undefined;
      if (typeof msg.topic === 'string' && msg.topic.trim() !== '') {
        target = commandTarget(msg.topic);
        if (!target) {
          done(catalogError(RED, 'sg-app.error.topic', { topic: msg.topic }, 'msg.topic'));
          return;
        }
      } else if (config.service && config.signal) {
        target = [config.service, config.signal];
      } else {
        done(catalogError(RED, 'sg-app.error.noTopic', {}, 'msg.topic'));
        return;
      }
      const text = payloadText(RED, msg, format, () => node.warn(RED._('sg-app.warn.not-utf8')));
      if (text instanceof Error) {
        done(text);
        return;
      }
      const retain = typeof msg.retain === 'boolean' ? msg.retain : config.retain === true;
      connection.sendCommand(target[0], target[1], text, retain).then(
        () => done(),
        (err: unknown) => done(asError(err)),
      );
    });
  });
};
