// Node status shapes shared by every bus, so a config node can fan one status out to all its users.

export type StatusFill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
export type StatusShape = 'dot' | 'ring';

export interface NodeStatus {
  fill?: StatusFill;
  shape?: StatusShape;
  /** An i18n key (e.g. `node-red:common.status.connected`) or short plain text. */
  text?: string;
}

export const Status = {
  connecting: (text = 'node-red:common.status.connecting'): NodeStatus => ({ fill: 'yellow', shape: 'ring', text }),
  connected: (text = 'node-red:common.status.connected'): NodeStatus => ({ fill: 'green', shape: 'dot', text }),
  disconnected: (text = 'node-red:common.status.disconnected'): NodeStatus => ({ fill: 'red', shape: 'ring', text }),
  error: (text: string): NodeStatus => ({ fill: 'red', shape: 'ring', text }),
} as const;
