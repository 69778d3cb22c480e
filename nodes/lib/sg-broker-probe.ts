// The Busbar sidebar's view of one sg-broker: its sg connections and ApiGear clients, their traffic and trace, and —
// only while someone looks — the sgframework resources seen on the broker (a watch that stops itself when idle).
import type { ManagedMqttClient, MqttTap } from '../../src/mqtt/managed-client';
import type { ConnectionState } from '../../src/mqtt/connection-state';
import type { SgConnection } from '../../src/sg/connection';
import { newCounts, TrafficCounts } from '../../src/common/counters';
import { readableMqtt, TraceRing } from '../../src/common/trace';
import { SeenResource, SgResourceWatch, WATCH_TOPICS } from '../../src/sg/watch';
import { BusbarProbe, PhaseClock } from './busbar-admin';

/** The watch unsubscribes and disconnects this long after the last look (sidebar push or dialog). */
const WATCH_IDLE_MS = 30000;
/** ApiGear services publish their properties retained at `<module>/<Interface>/prop/<name>`. */
const APIGEAR_PROPERTIES = '+/+/prop/+';
const MAX_APIGEAR_MODULES = 200;
const MAX_APIGEAR_INTERFACES = 100;

/** A dialog asking for names waits this long for the retained availability topics. */
const DISCOVER_WAIT_MS = 1500;

export interface SgBrokerProbeOptions {
  id: string;
  name(): string;
  connections(): SgConnection[];
  /** ApiGear clients handed out, with the node that owns each. */
  clients: Map<ManagedMqttClient, string>;
  /** A managed client of this broker for the watch (no tap: the watch's traffic is not the flows' traffic). */
  watchClient(): ManagedMqttClient;
  reason(state: ConnectionState): string;
  ownerLabel(ownerId: string): string;
  /** What an ApiGear node says about its interface (served or used, property values, calls in flight). */
  ownerDetail(ownerId: string): unknown;
}

export interface SgBrokerProbe extends BusbarProbe {
  tap: MqttTap;
  close(): Promise<void>;
}

export function sgBrokerProbe(o: SgBrokerProbeOptions): SgBrokerProbe {
  const clock = new PhaseClock();
  const traffic = newCounts();
  const trace = new TraceRing();
  const watch = new SgResourceWatch();
  /** ApiGear interfaces announced on the broker, by module. */
  const announced = new Map<string, Set<string>>();
  const takeApiGear = (topic: string): void => {
    const parts = topic.split('/');
    if (parts.length !== 4 || parts[2] !== 'prop' || !parts[0] || !parts[1]) return;
    let interfaces = announced.get(parts[0]);
    if (!interfaces) {
      if (announced.size >= MAX_APIGEAR_MODULES) return;
      interfaces = new Set();
      announced.set(parts[0], interfaces);
    }
    if (interfaces.size < MAX_APIGEAR_INTERFACES) interfaces.add(parts[1]);
  };
  let watcher: ManagedMqttClient | undefined;
  let idle: NodeJS.Timeout | undefined;
  let closed = false;

  const stopWatch = async (): Promise<void> => {
    if (idle) clearTimeout(idle);
    idle = undefined;
    const w = watcher;
    watcher = undefined;
    watch.clear();
    announced.clear();
    await w?.close().catch(() => undefined);
  };
  /** Starts the watch if needed; it runs until nobody has looked for WATCH_IDLE_MS. */
  const looked = (): void => {
    if (closed) return;
    if (!watcher) {
      try {
        const w = o.watchClient();
        watcher = w;
        w.on('connect', () => void w.subscribe([...WATCH_TOPICS, APIGEAR_PROPERTIES], 0).catch(() => undefined));
        w.on('message', (topic, payload) => {
          if (!watch.take(topic, payload)) takeApiGear(topic);
        });
        w.start();
      } catch {
        watcher = undefined; // e.g. settings that do not validate: the connections say why
      }
    }
    if (idle) clearTimeout(idle);
    idle = setTimeout(() => void stopWatch(), WATCH_IDLE_MS);
    idle.unref();
  };

  const states = (): Array<{ label: string; state: ConnectionState; backlog: number; dropped?: number }> => [
    ...o.connections().map((c) => ({ label: `sg ${c.name}`, state: c.state, backlog: c.backlog })),
    ...[...o.clients].map(([c, owner]) => ({
      label: o.ownerLabel(owner),
      state: c.state,
      backlog: c.backlog,
      dropped: c.droppedCount,
    })),
  ];

  const ours = (): Set<string> =>
    new Set(
      o
        .connections()
        .filter((c) => c.currentPlan.resource)
        .map((c) => c.currentPlan.name),
    );

  return {
    id: o.id,
    type: 'sg-broker',
    bus: 'sg',
    trace,
    name: () => o.name(),
    state: () => {
      const all = states();
      const down = all.find((s) => s.state.phase !== 'connected');
      if (all.length === 0) clock.set('idle');
      else if (!down) clock.set('connected');
      else clock.set(down.state.phase, down.state.reason ? `${down.label}: ${o.reason(down.state)}` : undefined);
      return clock.state;
    },
    lastError: () => clock.lastError,
    counters: (): TrafficCounts => {
      const all = states();
      return {
        ...traffic,
        queued: all.reduce((n, s) => n + s.backlog, 0),
        dropped: all.reduce((n, s) => n + (s.dropped ?? 0), 0),
      };
    },
    snapshot: () => {
      looked();
      const mine = ours();
      return {
        connections: states().map((s) => ({ label: s.label, phase: s.state.phase, backlog: s.backlog })),
        resources: watch.list().map((r: SeenResource) => ({ ...r, ours: mine.has(r.name) })),
        apigear: [...o.clients.values()].map((owner) => ({
          node: o.ownerLabel(owner),
          ...(o.ownerDetail(owner) ?? {}),
        })),
      };
    },
    discover: async () => {
      const fresh = !watcher;
      looked();
      if (fresh) await new Promise((resolve) => setTimeout(resolve, DISCOVER_WAIT_MS).unref());
      const mine = ours();
      return {
        resources: watch.list().map((r) => ({
          name: r.name,
          ours: mine.has(r.name),
          presence: r.presence,
          commands: Object.keys(r.commands),
          data: Object.keys(r.data),
        })),
        apigear: [...announced].map(([module, interfaces]) => ({ module, interfaces: [...interfaces].sort() })),
      };
    },
    tap: (direction, topic, payload) => {
      if (direction === 'out') traffic.sent++;
      else traffic.received++;
      if (trace.enabled) trace.record(direction, 'mqtt', readableMqtt(topic, payload));
    },
    close: async () => {
      closed = true;
      trace.enabled = false;
      await stopWatch();
    },
  };
}
