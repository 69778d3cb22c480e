// What every bus core reports about its link: a phase, the reason as data, and since when. nodes/ words it (status
// dots, catalog text); nothing here knows about Node-RED.

/**
 * `registered` is a bus that also announces itself after connecting (MSB); `waiting` retries by itself after
 * `retryMs`; `failed` does not (a configuration that cannot be honoured); `closed` is stopped on purpose.
 */
export type ConnectionPhase = 'connecting' | 'connected' | 'registered' | 'waiting' | 'failed' | 'closed';

export interface ConnectionState<Reason extends string = string> {
  phase: ConnectionPhase;
  /** Why the link is not (fully) up, as a code each bus defines (e.g. `unreachable`, `port-in-use`). */
  reason?: Reason;
  /** A protocol code that goes with the reason (CONNACK code, NIO keyword, port). */
  code?: number | string;
  /** The underlying error text, for logs, e.g. `connect ECONNREFUSED 127.0.0.1:1884`. */
  detail?: string;
  /** Milliseconds until the next attempt, for `waiting`. */
  retryMs?: number;
}

/** A state as a config node holds it: with the time it was entered (phase and reason unchanged since). */
export type StateSince<Reason extends string = string> = ConnectionState<Reason> & { since: number };

/** Keeps the current state and the time it began; a repeat of the same phase and reason keeps `since`. */
export class StateTracker<Reason extends string = string> {
  private value: StateSince<Reason>;

  constructor(
    initial: ConnectionState<Reason> = { phase: 'closed' },
    private readonly now: () => number = Date.now,
  ) {
    this.value = { ...initial, since: now() };
  }

  get current(): StateSince<Reason> {
    return this.value;
  }

  /** Records `state`; returns true when phase or reason changed. */
  set(state: ConnectionState<Reason>): boolean {
    const changed = state.phase !== this.value.phase || state.reason !== this.value.reason;
    this.value = { ...state, since: changed ? this.now() : this.value.since };
    return changed;
  }
}
