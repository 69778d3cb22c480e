// Per-node views of node-red-node-test-helper's spies: they sit on Node.prototype, so a node's `status.getCalls()`
// also lists every other node's calls. These filter by the node the call was made on.
import helper from 'node-red-node-test-helper';

interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}
type Spied = Record<string, { getCalls(): SpyCall[] }>;

export function callsOf(id: string, method: 'status' | 'error' | 'warn' | 'log'): unknown[][] {
  const node = helper.getNode(id) as unknown as Spied;
  return node[method]
    .getCalls()
    .filter((c) => c.thisValue === node)
    .map((c) => c.args);
}

export function lastStatus(id: string): { fill?: string; shape?: string; text?: string } | undefined {
  const calls = callsOf(id, 'status');
  return calls[calls.length - 1]?.[0] as { fill?: string; shape?: string; text?: string } | undefined;
}

/** Waits (bounded: 5 s) until the node shows a green status, i.e. its subscriptions are acknowledged. */
export async function green(id: string): Promise<void> {
  for (let i = 0; i < 250 && lastStatus(id)?.fill !== 'green'; i++) await new Promise((r) => setTimeout(r, 20));
  if (lastStatus(id)?.fill !== 'green')
    throw new Error(`${id} did not connect (status ${JSON.stringify(lastStatus(id))})`);
}
