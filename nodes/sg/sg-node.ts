// What sg-resource and sg-app share: finding the broker, joining the connection of a name, formatting values.
import type { Node, NodeAPI, NodeMessage } from '../lib/red';
import { configNode } from '../lib/red';
import { isSgBrokerNode } from './sg-broker-api';
import type { SgConnection, SgIncoming, SgUser } from '../../src/sg/connection';
import { nameProblem, SgDeclaration } from '../../src/sg/plan';
import { FormatOptions, NumberFormat, ObjectFormat, pythonStr, pythonStrip } from '../../src/sg/python';
import { isUtf8 } from 'buffer';
import { Status } from '../lib/status';
import { catalogError } from '../lib/errors';

export interface SgFormatDef {
  objectFormat?: ObjectFormat;
  numberFormat?: NumberFormat;
}

export function formatOptions(def: SgFormatDef): FormatOptions {
  return {
    objects: def.objectFormat === 'python' ? 'python' : 'json',
    numbers: def.numberFormat === 'float' ? 'float' : 'auto',
  };
}

/**
 * Text for a payload, or an Error naming what is wrong. A Buffer goes out as its bytes; sgframework decodes every
 * payload as UTF-8, so bytes that are not UTF-8 are sent with a warning (`warnNotUtf8`), not silently replaced.
 */
export function payloadText(
  RED: NodeAPI,
  msg: NodeMessage,
  options: FormatOptions,
  warnNotUtf8?: () => void,
): string | Buffer | Error {
  if (msg.payload === undefined || msg.payload === null)
    return catalogError(RED, 'sg.error.noPayload', {}, 'msg.payload');
  if (Buffer.isBuffer(msg.payload)) {
    if (!isUtf8(msg.payload)) warnNotUtf8?.();
    return msg.payload;
  }
  return pythonStr(msg.payload, options);
}

/**
 * Joins the connection of `name` on the node's sg-broker and leaves it on close. Returns an Error (and shows a red
 * status) when the broker is missing or the name unusable, so input handlers can fail each message with it.
 */
export function joinConnection(
  RED: NodeAPI,
  node: Node,
  type: 'sg-resource' | 'sg-app',
  brokerId: string | undefined,
  name: string,
  declaration: () => SgDeclaration,
  deliver: (message: SgIncoming) => void,
): SgConnection | Error {
  const broker = configNode(RED, brokerId, isSgBrokerNode);
  if (!broker) {
    node.status(Status.error(`${type}.status.no-broker`));
    return catalogError(RED, 'sg.error.noBroker', {}, 'broker');
  }
  const problem = nameProblem(pythonStrip(name), type === 'sg-resource' ? 'resource name' : 'app name');
  if (problem) {
    node.status(Status.error(`${type}.status.bad-name`));
    node.warn(problem);
    return new Error(problem);
  }
  const connection = broker.sgConnection(name);
  const user: SgUser = {
    id: node.id,
    status: () => undefined,
    declaration,
    deliver,
    warn: (text) => node.warn(text),
    connectionState: (state) => node.status(broker.describe(state).status),
  };
  connection.register(user);
  node.on('close', (removed: boolean, done: () => void) => {
    connection
      .deregister(user, removed)
      .catch((err: unknown) => node.error(String(err)))
      .finally(done);
  });
  return connection;
}
