// Network input a core dropped, said at a rate a gateway can afford: one line per burst and reason, with the count.
import { BurstCounter } from './warn';

/** Longest piece of wire text (a topic, a member name, a parse error) quoted in a warning. */
const MAX_DETAIL = 160;

/** Quotes wire text for a log line: control characters visible, long text cut. */
export function clip(text: string, max = MAX_DETAIL): string {
  const shown = JSON.stringify(text.length > max ? text.slice(0, max) : text).slice(1, -1);
  return text.length > max ? `${shown}…` : shown;
}

/**
 * Counts dropped inbound messages per reason. `reason` must come from a fixed set chosen by the caller (never from
 * the wire), so a flood of different topics cannot grow the counters; `detail` (the latest example) may quote the wire.
 * Lines read "<n> inbound message(s) dropped (<reason>); last: <detail>".
 */
export class RejectedInput {
  private readonly latest = new Map<string, string>();
  private readonly counter: BurstCounter;

  constructor(
    private readonly prefix: string,
    warn: (text: string) => void,
    intervalMs?: number,
  ) {
    this.counter = new BurstCounter((reason, count) => {
      warn(
        `${this.prefix}: ${count} inbound message${count === 1 ? '' : 's'} dropped (${reason}); last: ${this.latest.get(reason) ?? ''}`,
      );
    }, intervalMs);
  }

  note(reason: string, detail: string): void {
    this.latest.set(reason, clip(detail));
    this.counter.note(reason);
  }

  total(reason: string): number {
    return this.counter.total(reason);
  }

  /** Says what the open bursts still hold. */
  close(): void {
    this.counter.close();
  }
}
