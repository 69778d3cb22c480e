// What the Busbar sidebar sees: a registry of the package's config nodes, their state/counters/detail and trace,
// the admin endpoints that read and switch them, and throttled comms pushes while an editor has the tab open.
import type { TrafficCounts } from '../../src/common/counters';
import type { StateSince } from '../../src/common/connection-state';
import { TraceRing } from '../../src/common/trace';
import type { AdminRequest, AdminResponse, NodeAPI } from './red';

export type Bus = 'msb' | 'sg' | 'mbus' | 'apigear';

export interface ProbeState {
  /** e.g. connecting, connected, registered, waiting, failed, closed. */
  phase: string;
  /** The reason in words (runtime language), when not healthy. */
  reason?: string;
  /** When the phase last changed (ms since epoch). */
  since: number;
}

/** What one config node shows in the sidebar; every function is cheap and side-effect free. */
export interface BusbarProbe {
  readonly id: string;
  readonly type: string;
  readonly bus: Bus;
  name(): string;
  state(): ProbeState;
  lastError(): string | undefined;
  counters(): TrafficCounts;
  snapshot(): Record<string, unknown>;
  /** Names seen on the bus, for the edit dialogs (may listen briefly; never required). */
  discover?(): Promise<Record<string, unknown>>;
  readonly trace: TraceRing;
}

export interface ProbeView {
  id: string;
  type: string;
  bus: Bus;
  name: string;
  state: ProbeState;
  lastError?: string;
  counters: TrafficCounts;
  snapshot: Record<string, unknown>;
  trace: { enabled: boolean; size: number };
}

/**
 * A config node's contract state as the sidebar shows it: phase and since as the node keeps them, and the reason in
 * words (`words`, or the state's detail) while the link is not up.
 */
export function probeState(state: StateSince, words?: string): ProbeState {
  const reason = state.phase === 'waiting' || state.phase === 'failed' ? (words ?? state.detail) : undefined;
  return { phase: state.phase, since: state.since, ...(reason ? { reason } : {}) };
}

/** Remembers when the phase changed, so "since" survives repeated reports of the same phase. */
export class PhaseClock {
  private current: ProbeState = { phase: 'closed', since: Date.now() };
  private error: string | undefined;

  set(phase: string, reason?: string): void {
    if (phase !== this.current.phase) this.current = { phase, reason, since: Date.now() };
    else this.current = { ...this.current, reason };
    if (reason) this.error = reason;
  }

  get state(): ProbeState {
    return this.current;
  }

  get lastError(): string | undefined {
    return this.error;
  }
}

/** Pushes per config node at most this often while the tab is open (4/s). */
export const PUSH_INTERVAL_MS = 250;
/** The sidebar renews its "open" every 20 s; a closed browser stops the pushes after this. */
export const OPEN_EXPIRY_MS = 60000;

export class BusbarRegistry {
  private readonly probes = new Map<string, BusbarProbe>();
  private readonly lastPushed = new Map<string, string>();
  private openUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Where pushes go (RED.comms.publish); unset in runtimes without comms (test helper). */
  publish: ((topic: string, data: unknown, retain?: boolean) => void) | undefined;

  add(probe: BusbarProbe): () => void {
    this.probes.set(probe.id, probe);
    return () => {
      if (this.probes.get(probe.id) !== probe) return;
      this.probes.delete(probe.id);
      this.lastPushed.delete(probe.id);
      if (this.open) this.publish?.(`busbar/removed/${probe.id}`, { id: probe.id });
    };
  }

  get(id: string): BusbarProbe | undefined {
    return this.probes.get(id);
  }

  view(probe: BusbarProbe): ProbeView {
    const lastError = probe.lastError();
    return {
      id: probe.id,
      type: probe.type,
      bus: probe.bus,
      name: probe.name(),
      state: probe.state(),
      ...(lastError ? { lastError } : {}),
      counters: probe.counters(),
      snapshot: probe.snapshot(),
      trace: { enabled: probe.trace.enabled, size: probe.trace.size },
    };
  }

  list(): ProbeView[] {
    return [...this.probes.values()].map((p) => this.view(p));
  }

  /** True while some editor has the tab open (its last "open" has not expired). */
  get open(): boolean {
    return Date.now() < this.openUntil;
  }

  /** True while the push timer runs. */
  get pushing(): boolean {
    return this.timer !== undefined;
  }

  setOpen(open: boolean, forMs = OPEN_EXPIRY_MS): void {
    this.openUntil = open ? Date.now() + forMs : 0;
    if (open && !this.timer) {
      this.lastPushed.clear();
      this.timer = setInterval(() => this.push(), PUSH_INTERVAL_MS);
      this.timer.unref();
    }
    if (!open) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round of pushes: each config node whose view changed since its last push. */
  push(): void {
    if (!this.open) {
      this.stop();
      return;
    }
    for (const probe of this.probes.values()) {
      let view: ProbeView;
      try {
        view = this.view(probe);
      } catch {
        continue; // a node half closed: it is removed in a moment
      }
      const json = JSON.stringify(view);
      if (this.lastPushed.get(probe.id) === json) continue;
      this.lastPushed.set(probe.id, json);
      this.publish?.(`busbar/node/${probe.id}`, view);
    }
  }
}

/** The one registry of this process. */
export const registry = new BusbarRegistry();

const installed = new WeakSet<object>();

/** Installs the admin endpoints once per runtime (every Busbar node module calls this). */
export function installBusbarAdmin(RED: NodeAPI): void {
  const comms = (RED as unknown as { comms?: { publish(topic: string, data: unknown, retain?: boolean): void } }).comms;
  if (comms) registry.publish = (topic, data, retain) => comms.publish(topic, data, retain);
  if (!RED.httpAdmin || installed.has(RED.httpAdmin)) return;
  installed.add(RED.httpAdmin);
  const read = RED.auth.needsPermission('busbar.read');
  const write = RED.auth.needsPermission('busbar.write');
  const probeOf = (req: AdminRequest, res: AdminResponse): BusbarProbe | undefined => {
    const probe = registry.get(req.params.id ?? '');
    if (!probe) res.status(404).json({ error: 'not deployed' });
    return probe;
  };

  RED.httpAdmin.get('/busbar/nodes', read, (_req, res) => res.json({ nodes: registry.list(), open: registry.open }));
  // The tab says it is open (renewed while it stays open) or closed; pushes run only in between.
  RED.httpAdmin.post('/busbar/sidebar', read, (req, res) => {
    const open = flag(req, 'open');
    registry.setOpen(open);
    res.json({ open: registry.open, nodes: registry.list() });
  });
  RED.httpAdmin.get('/busbar/trace/:id', read, (req, res) => {
    const probe = probeOf(req, res);
    if (!probe) return;
    const since = Number(req.query.since ?? 0);
    res.json({ enabled: probe.trace.enabled, entries: probe.trace.list(Number.isFinite(since) ? since : 0) });
  });
  RED.httpAdmin.post('/busbar/trace/:id', write, (req, res) => {
    const probe = probeOf(req, res);
    if (!probe) return;
    probe.trace.enabled = flag(req, 'enabled');
    res.json({ enabled: probe.trace.enabled });
  });
  RED.httpAdmin.get('/busbar/discover/:id', read, (req, res) => {
    const probe = probeOf(req, res);
    if (!probe) return;
    if (!probe.discover) {
      res.json({});
      return;
    }
    probe.discover().then(
      (found) => res.json(found),
      (err: unknown) => res.status(500).json({ error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/** A boolean from the JSON body or the query (`?open=true`). */
function flag(req: AdminRequest, name: string): boolean {
  const body = req.body;
  const fromBody =
    typeof body === 'object' && body !== null && Object.prototype.hasOwnProperty.call(body, name)
      ? (body as Record<string, unknown>)[name]
      : undefined;
  const value = fromBody ?? req.query[name];
  return value === true || value === 'true' || value === '1';
}
