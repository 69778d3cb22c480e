// The one error family of the nodes and the one input wrapper: an error names the field and the rule it broke and
// carries its catalog key, so every message a user sees comes from the catalogs (en-US and de); any failure of an
// input handler ends in done(err), which a Catch node sees, and an unexpected one also shows on the node.
import { asError } from '../../src/common/guards';
import type { DoneFunction, Node, NodeAPI, NodeMessage, SendFunction } from './red';
import { Status } from './status';

export class NodeInputError extends Error {
  constructor(
    /** The catalog key of the message, e.g. `mbus-rpc.error.procedure`; its last part is the code. */
    readonly key: string,
    message: string,
    /** The msg property or node setting at fault, e.g. `msg.topic`. */
    readonly field?: string,
    /** The rule it broke, in words of the catalog, when it differs from the message. */
    readonly rule?: string,
  ) {
    super(message);
    this.name = 'NodeInputError';
  }

  get code(): string {
    return this.key.slice(this.key.lastIndexOf('.') + 1);
  }
}

/** An error from the catalog: `key` translated with `args`; `field` is the msg property or setting at fault. */
export function catalogError(
  RED: NodeAPI,
  key: string,
  args: Record<string, unknown> = {},
  field?: string,
): NodeInputError {
  return new NodeInputError(key, RED._(key, args), field);
}

export type InputHandler = (msg: NodeMessage, send: SendFunction) => void | Promise<void>;

/**
 * Registers `handler` for input. It finishes the message by returning (or resolving): done() is called for it. A
 * throw or a rejection becomes done(err); an error that is not a NodeInputError (not the flow's input at fault but
 * something unexpected) also turns the node's status red until the next state change.
 */
export function onInput(node: Node, handler: InputHandler): void {
  node.on('input', (msg: NodeMessage, send: SendFunction, done: DoneFunction) => {
    const fail = (err: unknown): void => {
      const error = asError(err);
      if (!(error instanceof NodeInputError)) node.status(Status.error('node-red:common.status.error'));
      done(error);
    };
    try {
      const result = handler(msg, send);
      if (result instanceof Promise) result.then(() => done(), fail);
      else done();
    } catch (err) {
      fail(err);
    }
  });
}

/** A close handler that deregisters and reports a failure instead of swallowing it; done() is always called. */
export function closeWith(node: Node, release: (removed: boolean) => Promise<void> | void): void {
  node.on('close', (removed: boolean, done: () => void) => {
    Promise.resolve()
      .then(() => release(removed))
      .catch((err: unknown) => node.error(asError(err).message))
      .finally(done);
  });
}
