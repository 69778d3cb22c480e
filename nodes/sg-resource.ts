// sg-resource: a Secure Gateway (sgframework) resource in a flow — declared commands out of the node, declared data
// into it, presence/availability and echo on the wire exactly as an sgframework 0.2.x Resource.
import type { Node, NodeAPI, NodeDef, NodeMessage } from './lib/red';
import { asError } from './lib/red';
import { formatOptions, joinConnection, payloadText, SgFormatDef } from './lib/sg-node';
import type { AdminRequest, AdminResponse } from './lib/red';
import type { CommandDeclaration, DataDeclaration, SgDeclaration, SgQos } from '../src/sg/plan';
import { compilePlan, DEFAULT_ANSWER_TIMEOUT, describePlan } from '../src/sg/plan';
import { pythonStr } from '../src/sg/python';

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

export = function (RED: NodeAPI): void {
  // The edit dialog shows what this node will put on the wire, computed by the same compiler the runtime uses.
  RED.httpAdmin.post('/sg-resource/plan', RED.auth.needsPermission('sg-resource.read'), (req: AdminRequest, res: AdminResponse) => {
    const body = (req.body ?? {}) as { resource?: string; commands?: CommandDef[]; data?: DataDef[]; qos?: number; clean?: boolean };
    const qos = (body.qos === 0 || body.qos === 2 ? body.qos : 1) as SgQos;
    const plan = compilePlan(String(body.resource ?? ''), [
      { owner: 'editor', role: 'resource', commands: commandsOf(body.commands, DEFAULT_ANSWER_TIMEOUT), data: dataOf(body.data) },
    ]);
    res.json({ lines: plan.name ? describePlan(plan, qos, body.clean !== false) : [], warnings: plan.warnings });
  });

  RED.nodes.registerType('sg-resource', function (this: Node, def: NodeDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const config = def as SgResourceDef;
    const format = formatOptions(config);
    const answerTimeout = Number(config.answerTimeout) > 0 ? Number(config.answerTimeout) : DEFAULT_ANSWER_TIMEOUT;
    const commands = commandsOf(config.commands, answerTimeout);
    const data = dataOf(config.data);
    const declaration: SgDeclaration = { owner: node.id, role: 'resource', commands, data };

    const connection = joinConnection(RED, node, 'sg-resource', config.broker, String(config.resource ?? ''), () => declaration, (message) => {
      const msg: NodeMessage = {
        topic: message.signal,
        payload: message.payload,
        messagetype: message.messagetype,
        service: message.service,
        signal: message.signal,
      };
      if (message.answerHandle) msg[ECHO_HANDLE] = message.answerHandle;
      node.send(msg);
    });

    node.on('input', (msg, _send, done) => {
      if (connection instanceof Error) {
        done(connection);
        return;
      }
      const handle = msg[ECHO_HANDLE];
      if (typeof handle === 'string' && handle.length > 0) {
        // An answer from the flow: its payload becomes the echo (no payload = echo the command as received).
        const answer = msg.payload === undefined || msg.payload === null ? null : pythonStr(msg.payload, format);
        connection.answer(handle, answer).then(() => done(), (err: unknown) => done(asError(err)));
        return;
      }
      if (typeof msg.topic !== 'string' || msg.topic.trim() === '') {
        done(new Error('msg.topic must name a declared data signal; nothing was published'));
        return;
      }
      const text = payloadText(msg, format);
      if (text instanceof Error) {
        done(text);
        return;
      }
      connection.sendData(msg.topic, text).then(() => done(), (err: unknown) => done(asError(err)));
    });
  });
};
