// Warnings a gateway can afford to log: one line per burst with a count, one line per change of reason.

/**
 * Counts repeated events per reason (drops, rejected frames, overflow) and reports them at most once per interval:
 * the first event of a quiet period is reported at once with count 1, the rest of the burst is counted and reported
 * as one line ("N more since the last report") when the interval ends. Nothing is lost: close() reports what is left.
 */
export class BurstCounter {
  private readonly pending = new Map<string, { count: number; timer: NodeJS.Timeout }>();
  private readonly totals = new Map<string, number>();

  constructor(
    private readonly report: (reason: string, count: number) => void,
    private readonly intervalMs = 10_000,
  ) {}

  /** Records `count` events of `reason`. */
  note(reason: string, count = 1): void {
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + count);
    const window = this.pending.get(reason);
    if (window) {
      window.count += count;
      return;
    }
    this.report(reason, count);
    this.openWindow(reason);
  }

  /** Every event counted so far, by reason (for state endpoints and status text). */
  total(reason: string): number {
    return this.totals.get(reason) ?? 0;
  }

  /** Reports what the open windows hold and stops their timers. */
  close(): void {
    for (const [reason, window] of this.pending) {
      clearTimeout(window.timer);
      if (window.count > 0) this.report(reason, window.count);
    }
    this.pending.clear();
  }

  private openWindow(reason: string): void {
    const timer = setTimeout(() => {
      const window = this.pending.get(reason);
      this.pending.delete(reason);
      // A burst that went on through the whole window is reported and watched for another window.
      if (window && window.count > 0) {
        this.report(reason, window.count);
        this.openWindow(reason);
      }
    }, this.intervalMs);
    timer.unref();
    this.pending.set(reason, { count: 0, timer });
  }
}

/**
 * Says a failure once per change of reason: a broker that stays unreachable for a day logs one line, not one per
 * retry. `clear()` after a success, so the same failure later is said again.
 */
export class ChangeWarner {
  private last: string | undefined;

  constructor(private readonly warn: (reason: string) => void) {}

  /** Warns when `reason` differs from the last one warned; returns whether it did. */
  report(reason: string): boolean {
    if (reason === this.last) return false;
    this.last = reason;
    this.warn(reason);
    return true;
  }

  clear(): void {
    this.last = undefined;
  }

  get current(): string | undefined {
    return this.last;
  }
}
