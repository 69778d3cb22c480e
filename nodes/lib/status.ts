// Node-RED status dots for the sg and ApiGear nodes: the catalog keys live here, in the adapters, never in src/.
import type { NodeStatus } from '../../src/common/status';

export type { NodeStatus } from '../../src/common/status';

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
