// The slice of the Node-RED runtime API our adapters use, typed once so no node needs `any`.
import type { NodeStatus } from './status';

export interface NodeMessage {
  _msgid?: string;
  payload?: unknown;
  topic?: string;
  [key: string]: unknown;
}

export type SendFunction = (msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>) => void;
export type DoneFunction = (err?: Error) => void;

/** Properties every node's flow JSON carries. */
export interface NodeDef {
  id: string;
  type: string;
  name?: string;
  z?: string;
  [key: string]: unknown;
}

/** A runtime node instance, as Node-RED's `createNode` makes it. */
export interface Node<Credentials = Record<string, string | undefined>> {
  id: string;
  type: string;
  name?: string;
  z?: string;
  credentials: Credentials;
  on(event: 'input', listener: (msg: NodeMessage, send: SendFunction, done: DoneFunction) => void): void;
  on(event: 'close', listener: (removed: boolean, done: () => void) => void): void;
  send(msg: NodeMessage | null | Array<NodeMessage | NodeMessage[] | null>): void;
  status(status: NodeStatus | Record<string, never>): void;
  log(msg: unknown): void;
  warn(msg: unknown): void;
  error(err: unknown, msg?: NodeMessage): void;
  debug(msg: unknown): void;
  trace(msg: unknown): void;
  context(): NodeContext;
}

/** A context store slice: `get`/`set` on the node's own, its flow's and the global context. */
export interface ContextStore {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
}

export interface NodeContext extends ContextStore {
  flow: ContextStore;
  global: ContextStore;
}

export interface CredentialsDef {
  [name: string]: { type: 'text' | 'password' };
}

export interface NodeAPI {
  nodes: {
    createNode(node: object, def: NodeDef): void;
    /** `Def` is the node's flow JSON, `Self` the node as its constructor completes it (a config node's API). */
    registerType<Def extends NodeDef, Self extends object = Node>(
      type: string,
      constructor: (this: Self, def: Def) => void,
      options?: { credentials?: CredentialsDef; settings?: Record<string, { value: unknown; exportable?: boolean }> },
    ): void;
    getNode(id: string): unknown;
  };
  util: {
    cloneMessage<T extends NodeMessage>(msg: T): T;
    evaluateNodeProperty(
      value: string,
      type: string,
      node: Node,
      msg: NodeMessage | undefined,
      callback: (err: Error | null, result: unknown) => void,
    ): void;
    generateId(): string;
  };
  settings: Record<string, unknown>;
  events: {
    on(event: string, listener: (...args: unknown[]) => void): void;
    removeListener(event: string, listener: (...args: unknown[]) => void): void;
  };
  httpAdmin: {
    get(path: string, ...handlers: Array<(req: AdminRequest, res: AdminResponse, next?: () => void) => void>): void;
    post(path: string, ...handlers: Array<(req: AdminRequest, res: AdminResponse, next?: () => void) => void>): void;
  };
  auth: { needsPermission(permission: string): (req: AdminRequest, res: AdminResponse, next?: () => void) => void };
  _(key: string, substitutions?: Record<string, unknown>): string;
}

export interface AdminRequest {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
}

export interface AdminResponse {
  json(body: unknown): void;
  status(code: number): AdminResponse;
  send(body?: unknown): void;
}

export { asError } from '../../src/common/guards';

/** A config node looked up by id and checked by `guard`: undefined when the id is empty, unknown or of another kind. */
export function configNode<T>(RED: NodeAPI, id: unknown, guard: (node: unknown) => node is T): T | undefined {
  if (typeof id !== 'string' || id === '') return undefined;
  const node = RED.nodes.getNode(id);
  return guard(node) ? node : undefined;
}

/** Node-RED's core tls-config node, as far as we use it. */
export interface TlsConfigNode {
  addTLSOptions<T extends object>(options: T): T;
}

export function isTlsConfigNode(node: unknown): node is TlsConfigNode {
  return (
    typeof node === 'object' && node !== null && typeof (node as Partial<TlsConfigNode>).addTLSOptions === 'function'
  );
}
