// The one state -> status mapping for every bus: phase to dot and ring, text from the bus's own catalog words.
import type { ConnectionState } from '../../src/common/connection-state';

export type StatusFill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
export type StatusShape = 'dot' | 'ring';

/** A Node-RED node status; `text` is an i18n key (e.g. `node-red:common.status.connected`) or short plain text. */
export interface NodeStatus {
  fill?: StatusFill;
  shape?: StatusShape;
  text?: string;
}

export const Status = {
  connecting: (text = 'node-red:common.status.connecting'): NodeStatus => ({ fill: 'yellow', shape: 'ring', text }),
  connected: (text = 'node-red:common.status.connected'): NodeStatus => ({ fill: 'green', shape: 'dot', text }),
  disconnected: (text = 'node-red:common.status.disconnected'): NodeStatus => ({ fill: 'red', shape: 'ring', text }),
  /** A connection failure that is retried (ring) — the text names the reason. */
  retrying: (text: string): NodeStatus => ({ fill: 'red', shape: 'ring', text }),
  /** A failure nothing but a new configuration fixes (dot). */
  failed: (text: string): NodeStatus => ({ fill: 'red', shape: 'dot', text }),
  error: (text: string): NodeStatus => ({ fill: 'red', shape: 'ring', text }),
} as const;

/**
 * The status for a connection state: green dot when connected or registered, yellow ring while connecting, red
 * ring while waiting to retry or closed, red dot when failed for good. `text` is what the bus says about the state
 * (its catalog words); without it, the core's words for the phase.
 */
export function statusOf(state: ConnectionState, text?: string): NodeStatus {
  switch (state.phase) {
    case 'connected':
    case 'registered':
      return Status.connected(text);
    case 'connecting':
      return Status.connecting(text);
    case 'waiting':
      return Status.retrying(text ?? 'node-red:common.status.disconnected');
    case 'failed':
      return Status.failed(text ?? 'node-red:common.status.error');
    case 'closed':
      return Status.disconnected(text);
  }
}
