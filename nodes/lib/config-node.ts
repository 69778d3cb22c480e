// The one contract every bus's config node keeps (msb-config, sg-broker, mbus-config; ApiGear uses sg-broker):
// users register and deregister(removed) as with the core MQTT broker node, the state is fanned out as a status,
// and the state, counters and a per-bus snapshot are there for whoever shows them (logs, an editor sidebar).
import type { ConnectionState, StateSince } from '../../src/common/connection-state';
import { StateTracker } from '../../src/common/connection-state';
import type { ConnectionPool, PoolUser } from '../../src/common/pool';
import type { Node } from './red';
import { NodeStatus, statusOf } from './status';

/** What a config node has counted since it started; a bus that does not count something reports 0. */
export interface Counters {
  sent: number;
  received: number;
  acknowledged: number;
  queued: number;
  dropped: number;
  errors: number;
}

export const noCounters = (): Counters => ({ sent: 0, received: 0, acknowledged: 0, queued: 0, dropped: 0, errors: 0 });

/** A flow node using a config node: it is shown the config node's status. */
export type BusUser = PoolUser<NodeStatus>;

export interface BusConfigNode<
  U extends BusUser = BusUser,
  Credentials = Record<string, string | undefined>,
> extends Node<Credentials> {
  /** Adds a user; the first one starts the connection. The user is shown the current status at once. */
  register(user: U): void;
  /** Removes a user (from its close(removed)); the connection stops when the last user is removed. */
  deregister(user: U, removed: boolean): Promise<void>;
  /** The link's state, with the time it was entered. */
  readonly state: StateSince;
  /** The last error said about the link, if any (in the runtime's language). */
  readonly lastError: { message: string; at: number } | undefined;
  counters(): Counters;
  /** Bus detail as plain JSON data (peers, connections, plan), for a state view. */
  snapshot(): Record<string, unknown>;
}

/**
 * The state half of the contract, for a config node that owns a pool: records each state (keeping `since`), fans it
 * out as one status through the one mapping, and remembers the last error.
 */
export class ConfigNodeState<U extends BusUser> {
  private readonly tracker = new StateTracker();
  private error: { message: string; at: number } | undefined;

  constructor(private readonly pool: ConnectionPool<U, NodeStatus>) {}

  get state(): StateSince {
    return this.tracker.current;
  }

  get lastError(): { message: string; at: number } | undefined {
    return this.error;
  }

  /** Records `state` and shows it to every user: `text` is the bus's words for it (a catalog key or text). */
  show(state: ConnectionState, text?: string): void {
    this.tracker.set(state);
    this.pool.setStatus(statusOf(state, text));
  }

  /** Shows a status that refines the current state (e.g. a count), without changing it. */
  showStatus(status: NodeStatus): void {
    this.pool.setStatus(status);
  }

  noteError(message: string): void {
    this.error = { message, at: Date.now() };
  }
}

/** True for a config node of `type` that keeps the contract (the guard for `configNode`). */
export function isBusConfigNode(node: unknown, type: string): node is BusConfigNode {
  if (typeof node !== 'object' || node === null) return false;
  const n = node as Partial<BusConfigNode>;
  return (
    n.type === type &&
    typeof n.register === 'function' &&
    typeof n.deregister === 'function' &&
    typeof n.snapshot === 'function'
  );
}
