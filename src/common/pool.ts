// The users registry every config node owns: connect on the first user, re-plan once per change, fan one value
import { asError } from './guards';
// (the adapter's status) out, disconnect when the last user is removed (the core MQTT broker node's pattern, typed).

/** A user of a pool; `status` receives whatever the owner fans out (nodes/ fans out Node-RED status objects). */
export interface PoolUser<Shown = unknown> {
  readonly id: string;
  status(shown: Shown): void;
}

/** What a pool of `U` fans out: the parameter of its users' `status`. */
export type ShownBy<U> = U extends PoolUser<infer S> ? S : never;

export interface PoolHooks<U extends PoolUser> {
  /** Called when the first user registers (and again after a disconnect, when a user returns). */
  connect(): void | Promise<void>;
  /** Called when the last user is removed, or when the pool is closed. Must release every socket and timer. */
  disconnect(): Promise<void>;
  /**
   * Called once after any burst of register/deregister calls (a deploy registers many users in one tick),
   * so the connection can recompile its plan (self-description, subscriptions, …) once, not once per node.
   */
  usersChanged?(users: U[]): void;
  /** Reports a failure of connect/disconnect/usersChanged that has nobody else to tell. */
  onError?(err: Error): void;
}

/** A pool of users `U` that all show values of type `S` (by default, what `U`'s `status` takes). */
export class ConnectionPool<U extends PoolUser<S>, S = ShownBy<U>> {
  private readonly users = new Map<string, U>();
  private lastStatus: S | undefined;
  private connected = false;
  private closing = false;
  private changeScheduled: NodeJS.Immediate | undefined;

  constructor(private readonly hooks: PoolHooks<U>) {}

  get size(): number {
    return this.users.size;
  }

  list(): U[] {
    return [...this.users.values()];
  }

  /** The value last fanned out (undefined before the first). */
  get status(): S | undefined {
    return this.lastStatus;
  }

  register(user: U): void {
    if (this.closing) return;
    this.users.set(user.id, user);
    if (this.lastStatus !== undefined) user.status(this.lastStatus);
    this.scheduleChange();
    if (!this.connected) {
      this.connected = true;
      this.guard(() => this.hooks.connect());
    }
  }

  /**
   * `removed` is Node-RED's close flag: true when the user was deleted or disabled. A user that is only
   * restarted (redeploy of a modified node) comes straight back, so the connection stays up for it.
   */
  async deregister(user: U, removed: boolean): Promise<void> {
    this.users.delete(user.id);
    if (this.closing) return;
    this.scheduleChange();
    if (removed && this.users.size === 0 && this.connected) {
      this.connected = false;
      this.cancelChange();
      await this.hooks.disconnect();
    }
  }

  /** Sends one status to every user and remembers it for users that register later. */
  setStatus(status: S): void {
    this.lastStatus = status;
    for (const user of this.users.values()) user.status(status);
  }

  /** The config node's own close: stop everything regardless of users. */
  async close(): Promise<void> {
    this.closing = true;
    this.cancelChange();
    if (this.connected) {
      this.connected = false;
      await this.hooks.disconnect();
    }
    this.users.clear();
  }

  private scheduleChange(): void {
    if (!this.hooks.usersChanged || this.changeScheduled) return;
    this.changeScheduled = setImmediate(() => {
      this.changeScheduled = undefined;
      this.guard(() => this.hooks.usersChanged?.(this.list()));
    });
  }

  private cancelChange(): void {
    if (this.changeScheduled) clearImmediate(this.changeScheduled);
    this.changeScheduled = undefined;
  }

  private guard(fn: () => void | Promise<void>): void {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((err: unknown) => this.reportError(err));
    } catch (err) {
      this.reportError(err);
    }
  }

  private reportError(err: unknown): void {
    const error = asError(err);
    if (this.hooks.onError) this.hooks.onError(error);
  }
}
