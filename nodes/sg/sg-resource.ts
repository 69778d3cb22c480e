// sg-resource: a Secure Gateway (sgframework) resource in a flow — declared commands out of the node, declared data
// into it, presence/availability and echo on the wire exactly as an sgframework 0.2.x Resource.
import type { Node, NodeAPI, NodeDef, NodeMessage } from '../lib/red';
import { asError } from '../lib/red';
import { catalogError } from '../lib/errors';
import { formatOptions, joinConnection, payloadText, SgFormatDef } from './sg-node';
import type { AdminRequest, AdminResponse } from '../lib/red';
import type { CommandDeclaration, DataDeclaration, SgDeclaration, SgQos } from '../../src/sg/plan';
import {
  clientIdFor,
  compilePlan,
  DEFAULT_ANSWER_TIMEOUT,
  describePlan,
  startupSequence,
  subscriptionsOf,
  willFor,
} from '../../src/sg/plan';
import type { SgPlan } from '../../src/sg/plan';
import { pythonStr } from '../../src/sg/python';

interface CommandDef {
  signal?: string;
  echo?: boolean;
  echoRetained?: boolean;
  defaultValue?: string | null;
  changeOnly?: boolean;
  echoAnswer?: boolean;
}

interface DataDef {
  signal?: string;
  defaultValue?: string | null;
  retained?: boolean;
}

interface SgResourceDef extends NodeDef, SgFormatDef {
  broker?: string;
  resource?: string;
  commands?: CommandDef[];
  data?: DataDef[];
  answerTimeout?: number | string;
}

function defaultOf(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** The property of an output msg that, sent back to this node, makes the msg the command's echo. */
const ECHO_HANDLE = 'echoHandle';

function commandsOf(defs: CommandDef[] | undefined, answerTimeout: number): CommandDeclaration[] {
  return (Array.isArray(defs) ? defs : []).map((c) => ({
    signal: String(c.signal ?? ''),
    echo: c.echo !== false,
    echoRetained: c.echoRetained === true,
    defaultValue: defaultOf(c.defaultValue),
    changeOnly: c.changeOnly === true,
    echoAnswer: c.echoAnswer === true,
    answerTimeout,
  }));
}

function dataOf(defs: DataDef[] | undefined): DataDeclaration[] {
  return (Array.isArray(defs) ? defs : []).map((d) => ({
    signal: String(d.signal ?? ''),
    defaultValue: defaultOf(d.defaultValue),
    retained: d.retained === true,
  }));
}

/** One line of the editor's plan preview as a catalog key (under sg-resource.plan.) and its arguments. */
interface PreviewItem {
  key: string;
  args: Record<string, string | number>;
}

/** The plan's wire artefacts as catalog items, in the order describePlan lists them. */
function previewSteps(plan: SgPlan, qos: SgQos, clean: boolean): PreviewItem[] {
  if (!plan.name) return [];
  const steps: PreviewItem[] = [
    { key: 'client-id', args: { id: clientIdFor(plan.name, clean, 0).replace(/-0$/, '-<pid>') } },
  ];
  const will = willFor(plan, qos);
  steps.push(
    will
      ? { key: 'will', args: { topic: will.topic, payload: will.payload, qos: will.qos } }
      : { key: 'no-will', args: {} },
  );
  for (const topic of subscriptionsOf(plan)) steps.push({ key: 'subscribe', args: { topic, qos } });
  for (const p of startupSequence(plan, qos)) {
    steps.push({
      key: p.retain ? 'publish-retained' : 'publish',
      args: { topic: p.topic, payload: p.payload, qos: p.qos },
    });
  }
  return steps;
}

export = function (RED: NodeAPI): void {
  // The edit dialog shows what this node will put on the wire, computed by the same compiler the runtime uses.
  RED.httpAdmin.post(
    '/sg-resource/plan',
    RED.auth.needsPermission('sg-resource.read'),
    (req: AdminRequest, res: AdminResponse) => {
      const body = (req.body ?? {}) as {
        resource?: string;
        commands?: CommandDef[];
        data?: DataDef[];
        qos?: number;
        clean?: boolean;
      };
      const qos = body.qos === 0 || body.qos === 2 ? body.qos : 1;
      const resource = String(body.resource ?? '');
      const commands = commandsOf(body.commands, DEFAULT_ANSWER_TIMEOUT);
      const data = dataOf(body.data);
      const plan = compilePlan(resource, [{ owner: 'editor', role: 'resource', commands, data }]);
      const clean = body.clean !== false;
      // lines/warnings: the runtime's English text (logs, older editors); steps/issues: catalog keys the dialog translates.
      res.json({
        lines: plan.name ? describePlan(plan, qos, clean) : [],
        warnings: plan.warnings,
        steps: previewSteps(plan, qos, clean),
        issues: plan.issues,
      });
    },
  );

  RED.nodes.registerType('sg-resource', function (this: Node, def: SgResourceDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = def;
    const format = formatOptions(config);
    const answerTimeout = Number(config.answerTimeout) > 0 ? Number(config.answerTimeout) : DEFAULT_ANSWER_TIMEOUT;
    const commands = commandsOf(config.commands, answerTimeout);
    const data = dataOf(config.data);
    const declaration: SgDeclaration = { owner: node.id, role: 'resource', commands, data };

    const connection = joinConnection(
      RED,
      node,
      'sg-resource',
      config.broker,
      String(config.resource ?? ''),
      () => declaration,
      (message) => {
        const msg: NodeMessage = {
          topic: message.signal,
          payload: message.payload,
          messagetype: message.messagetype,
          service: message.service,
          signal: message.signal,
        };
        if (message.answerHandle) msg[ECHO_HANDLE] = message.answerHandle;
        node.send(msg);
      },
    );

    node.on('input', (msg, _send, done) => {
      if (connection instanceof Error) {
        done(connection);
        return;
      }
      const handle = msg[ECHO_HANDLE];
      if (typeof handle === 'string' && handle.length > 0) {
        // An answer from the flow: its payload becomes the echo (no payload = echo the command as received).
        const answer = msg.payload === undefined || msg.payload === null ? null : pythonStr(msg.payload, format);
        connection.answer(handle, answer).then(
          () => done(),
          (err: unknown) => done(asError(err)),
        );
        return;
      }
      if (typeof msg.topic !== 'string' || msg.topic.trim() === '') {
        done(catalogError(RED, 'sg-resource.error.topic', {}, 'msg.topic'));
        return;
      }
      const text = payloadText(RED, msg, format, () => node.warn(RED._('sg-resource.warn.not-utf8')));
      if (text instanceof Error) {
        done(text);
        return;
      }
      connection.sendData(msg.topic, text).then(
        () => done(),
        (err: unknown) => done(asError(err)),
      );
    });
  });
};
