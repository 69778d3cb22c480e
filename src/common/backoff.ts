// The one recovery policy every bus uses: exponential backoff with jitter up to a cap, reset after a success.

export interface BackoffOptions {
  /** First delay, and the floor every later delay grows from. */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Source of randomness in [0, 1); injectable so tests can pin the jitter. */
  random?: () => number;
}

/**
 * Delays for successive retries. "Equal jitter": each delay is uniformly random in [base/2, base], where base grows
 * by `factor` per attempt up to `maxMs`. Half the delay is guaranteed, so a flapping peer is never hammered, and the
 * random half spreads many gateways that lost the same broker at the same instant.
 */
export class Backoff {
  private attempts = 0;
  private readonly factor: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    if (!(options.initialMs > 0) || !(options.maxMs >= options.initialMs)) {
      throw new RangeError(`backoff needs 0 < initialMs <= maxMs, not ${options.initialMs} and ${options.maxMs}`);
    }
    this.factor = options.factor ?? 2;
    this.random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempt(): number {
    return this.attempts;
  }

  /** The delay before the next retry; each call counts as one more failed attempt. */
  next(): number {
    const base = Math.min(this.options.maxMs, this.options.initialMs * this.factor ** Math.min(this.attempts, 64));
    this.attempts += 1;
    return Math.round(base / 2 + (this.random() * base) / 2);
  }

  /** After a success: the next failure starts again from `initialMs`. */
  reset(): void {
    this.attempts = 0;
  }
}

/** A single pending retry driven by a Backoff: scheduling again replaces the pending one, cancel() releases it. */
export class RetryTimer {
  private timer: NodeJS.Timeout | undefined;
  readonly backoff: Backoff;

  constructor(options: BackoffOptions) {
    this.backoff = new Backoff(options);
  }

  get pending(): boolean {
    return this.timer !== undefined;
  }

  /** Runs `retry` after the next backoff delay and returns that delay (for the status text). */
  schedule(retry: () => void): number {
    this.cancel();
    const delay = this.backoff.next();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      retry();
    }, delay);
    return delay;
  }

  /** Call when the connection is up again: the next failure retries quickly. */
  succeeded(): void {
    this.backoff.reset();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
