// The event cache: a bounded FIFO of events published while not registered, drained in order after IO_REGISTERED.

export class EventCache<T> {
  private items: T[] = [];

  /** `size` 0 disables the cache; `onDrop` hears about every entry pushed out to make room. */
  constructor(
    readonly size = 1000,
    private readonly onDrop?: (dropped: T, size: number) => void,
  ) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`event cache size must be a whole number >= 0, not ${size}`);
  }

  get length(): number {
    return this.items.length;
  }

  get enabled(): boolean {
    return this.size > 0;
  }

  /** Adds an entry, dropping the oldest when full. Returns false (nothing stored) when the cache is disabled. */
  push(item: T): boolean {
    if (this.size === 0) return false;
    while (this.items.length >= this.size) {
      const dropped = this.items.shift() as T;
      this.onDrop?.(dropped, this.size);
    }
    this.items.push(item);
    return true;
  }

  /** Removes and returns every entry, oldest first. */
  drain(): T[] {
    const all = this.items;
    this.items = [];
    return all;
  }

  /** Puts entries that could not be sent back in front, keeping order (and the size bound). */
  requeue(items: T[]): void {
    this.items = [...items, ...this.items];
    while (this.items.length > this.size) {
      const dropped = this.items.shift() as T;
      this.onDrop?.(dropped, this.size);
    }
  }

  clear(): void {
    this.items = [];
  }
}
