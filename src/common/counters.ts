// Traffic counters every connection keeps whether or not anyone looks (plain integers: no per-message cost beyond +1).

export interface TrafficCounts {
  sent: number;
  received: number;
  acknowledged: number;
  /** Waiting to be sent (queue, cache); a gauge set by the owner, not a running total. */
  queued: number;
  dropped: number;
  errors: number;
}

export function newCounts(): TrafficCounts {
  return { sent: 0, received: 0, acknowledged: 0, queued: 0, dropped: 0, errors: 0 };
}
