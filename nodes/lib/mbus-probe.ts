// The Busbar sidebar's view of one mbus-config: our address, the entities heard (and recently lost), reliable
// messages in flight, traffic counters and the trace (header + commands as they go on the wire, unencrypted).
import type { Address, Entity } from '../../src/mbus';
import { formatMessage } from '../../src/mbus/codec';
import { newCounts } from '../../src/common/counters';
import { TraceRing } from '../../src/common/trace';
import type { StateSince } from '../../src/common/connection-state';
import { BusbarProbe, probeState } from './busbar-admin';

/** Lost entities remembered for the sidebar (newest first). */
const MAX_LOST = 50;

export interface MbusProbe extends BusbarProbe {
  /** Hooks the entity's events and tap; call once the entity exists. */
  attach(entity: Entity): void;
}

/** `state` and `error` are the config node's (its contract state; its configuration or start failure). */
export function mbusProbe(
  id: string,
  name: () => string,
  entity: () => Entity | undefined,
  state: () => StateSince,
  error: () => string | undefined,
): MbusProbe {
  const traffic = newCounts();
  const trace = new TraceRing();
  const lost: Array<{ address: string; at: number; why: string }> = [];
  const firstHeard = new Map<string, number>();

  return {
    id,
    type: 'mbus-config',
    bus: 'mbus',
    trace,
    name,
    state: () => probeState(state()),
    lastError: error,
    counters: () => {
      const e = entity();
      const dropped = e ? [...e.counters.values()].reduce((n, v) => n + v, 0) : 0;
      return { ...traffic, queued: e?.pending.waiting ?? 0, dropped };
    },
    snapshot: () => {
      const e = entity();
      const now = Date.now();
      return {
        address: e?.address.toString(),
        group: e ? `${e.group}:${e.port}` : undefined,
        reliableInFlight: e?.pending.reliableInFlight ?? 0,
        entities: (e?.entities ?? []).map((p) => {
          const key = p.address.toString();
          const first = firstHeard.get(key) ?? 0;
          return {
            address: key,
            lastHello: p.lastHeard,
            state: now - first < 10000 ? 'new' : 'alive',
            endpoint: `${p.endpoint.address}:${p.endpoint.port}`,
          };
        }),
        lost: lost.slice(),
      };
    },
    discover: () =>
      Promise.resolve({
        destinations: (entity()?.entities ?? []).map((p) => p.address.toString()),
        own: entity()?.address.toString(),
      }),
    attach: (e: Entity) => {
      e.tap = (direction, message) => {
        if (direction === 'out') traffic.sent++;
        else traffic.received++;
        if (trace.enabled)
          trace.record(direction, 'udp', typeof message === 'string' ? message.trim() : formatMessage(message).trim());
      };
      e.on('new-entity', (address: Address) => {
        firstHeard.set(address.toString(), Date.now());
        if (firstHeard.size > 4096) firstHeard.delete(firstHeard.keys().next().value as string);
      });
      e.on('lost-entity', (address: Address, why) => {
        firstHeard.delete(address.toString());
        lost.unshift({ address: address.toString(), at: Date.now(), why });
        lost.length = Math.min(lost.length, MAX_LOST);
      });
      e.on('delivery-failed', () => traffic.errors++);
    },
  };
}
