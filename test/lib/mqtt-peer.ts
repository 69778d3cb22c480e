// Test peers for the MQTT suites: the broker under test (in-process, or the real one named by MQTT_URL), an
// independent raw mqtt.js observer, and a TCP proxy that can cut connections abruptly.
import net from 'net';
import mqtt, { MqttClient, IClientOptions } from 'mqtt';
import { randomBytes } from 'crypto';
import { EmbeddedBroker } from '../../src/mqtt/embedded-broker';

export interface TestBroker {
  url: string;
  host: string;
  port: number;
  /** True when the suite runs against an external broker (MQTT_URL). */
  external: boolean;
  close(): Promise<void>;
}

/** The broker the MQTT tests talk to: MQTT_URL (e.g. Mosquitto) when set, else an in-process aedes on a free port. */
export async function startTestBroker(): Promise<TestBroker> {
  const env = process.env.MQTT_URL;
  if (env) {
    const u = new URL(env);
    return { url: env, host: u.hostname, port: Number(u.port || 1883), external: true, close: async () => undefined };
  }
  const broker = new EmbeddedBroker({ port: 0 });
  const port = await broker.start();
  return { url: broker.url, host: broker.host, port, external: false, close: () => broker.close() };
}

/** A unique name per test run, so retained messages of earlier runs on a shared broker cannot interfere. */
export function uniqueName(base: string): string {
  const name = `${base}${randomBytes(3).toString('hex')}`;
  usedNames.push(name);
  return name;
}

const usedNames: string[] = [];

/** Clears every retained message under `+/<name>/#` for the names handed out since the last call. */
export async function clearUsedNames(url: string): Promise<void> {
  const names = usedNames.splice(0);
  if (names.length === 0) return;
  const client = await mqtt.connectAsync(url, { clientId: uniqueName('sweeper-'), reconnectPeriod: 0 });
  usedNames.pop();
  const retained = new Set<string>();
  client.on('message', (topic, payload, packet) => {
    if (packet.retain && payload.length > 0) retained.add(topic);
  });
  await client.subscribeAsync(
    names.map((n) => `+/${n}/#`),
    { qos: 1 },
  );
  // Retained messages follow the SUBACK; a round trip through the broker (own message) marks their end.
  const marker = `busbar-test/${randomBytes(4).toString('hex')}`;
  await client.subscribeAsync(marker, { qos: 1 });
  await new Promise<void>((resolve) => {
    client.on('message', (topic) => topic === marker && resolve());
    void client.publishAsync(marker, 'x', { qos: 1 });
  });
  for (const topic of retained) await client.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
  await client.endAsync();
}

export interface Seen {
  topic: string;
  payload: string;
  retain: boolean;
  qos: number;
}

/** An independent MQTT client that records what the broker delivers, in order. */
export class Observer {
  readonly seen: Seen[] = [];
  private waiters: Array<() => void> = [];
  private constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.seen.push({ topic, payload: payload.toString('utf8'), retain: packet.retain, qos: packet.qos });
      for (const w of this.waiters) w();
    });
  }

  static async connect(url: string, options: IClientOptions = {}): Promise<Observer> {
    // MQTT 5 with retain-as-published, so live retained publications show their retain flag.
    const client = await mqtt.connectAsync(url, {
      clientId: uniqueName('observer-'),
      protocolVersion: 5,
      reconnectPeriod: 0,
      ...options,
    });
    return new Observer(client);
  }

  /** QoS 2 by default, so the delivered QoS is the publisher's. */
  async subscribe(topics: string | string[], qos: 0 | 1 | 2 = 2): Promise<void> {
    await this.client.subscribeAsync(topics, { qos, rap: true });
  }

  async publish(topic: string, payload: string | Buffer, retain = false, qos: 0 | 1 | 2 = 1): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos, retain });
  }

  /** Resolves when `count` messages match `filter`; rejects with what was seen after `ms`. */
  waitFor(filter: (s: Seen) => boolean, count = 1, ms = 5000): Promise<Seen[]> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hits = this.seen.filter(filter);
        if (hits.length >= count) {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== listener);
          resolve(hits);
          return true;
        }
        return false;
      };
      const listener = (): void => {
        check();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== listener);
        reject(new Error(`timed out waiting for ${count} message(s); seen: ${JSON.stringify(this.seen)}`));
      }, ms);
      if (!check()) this.waiters.push(listener);
    });
  }

  clear(): void {
    this.seen.length = 0;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** Clears retained messages left by a test on a shared broker. */
export async function clearRetained(url: string, topics: string[]): Promise<void> {
  if (topics.length === 0) return;
  const client = await mqtt.connectAsync(url, { clientId: uniqueName('cleaner-'), reconnectPeriod: 0 });
  for (const topic of new Set(topics)) await client.publishAsync(topic, Buffer.alloc(0), { qos: 1, retain: true });
  await client.endAsync();
}

/** A TCP forwarder in front of the broker; kill() cuts every connection without an MQTT DISCONNECT. */
export class KillableProxy {
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | undefined;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<number> {
    const server = net.createServer((inbound) => {
      const outbound = net.connect(this.target.port, this.target.host);
      this.sockets.add(inbound);
      this.sockets.add(outbound);
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      const drop = (): void => {
        inbound.destroy();
        outbound.destroy();
        this.sockets.delete(inbound);
        this.sockets.delete(outbound);
      };
      inbound.on('error', drop);
      outbound.on('error', drop);
      inbound.on('close', drop);
      outbound.on('close', drop);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  get connections(): number {
    return this.sockets.size / 2;
  }

  kill(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.kill();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// aedes is ESM-only; a real dynamic import (TypeScript would turn `import()` into `require()`).
const importEsm = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<typeof import('aedes')>;

/** What the fault broker saw: every client PUBLISH, CONNECT (with its will) and disconnect, across restarts. */
export interface BrokerLog {
  publishes: Array<{ clientId: string; topic: string; payload: Buffer }>;
  connects: Array<{ clientId: string; will: boolean }>;
  disconnects: string[];
  authAttempts: number;
}

/**
 * An in-process aedes broker that a test can kill (every socket cut, no DISCONNECT, all state gone) and start again
 * on the same port, with an optional password check (aedes' authenticate hook) that the test can change meanwhile.
 */
export class FaultBroker {
  readonly log: BrokerLog = { publishes: [], connects: [], disconnects: [], authAttempts: 0 };
  /** When set, CONNECTs must carry this user name and password (else CONNACK 4, bad user name or password). */
  credentials: { user: string; password: string } | undefined;
  /** While true, PUBLISHes are taken in but neither routed nor acknowledged: they stay in flight at the sender. */
  holdPublishes = false;
  /** PUBLISHes held (never acknowledged) so far. */
  held = 0;
  port = 0;
  private broker: import('aedes').Aedes | undefined;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async start(): Promise<number> {
    const { Aedes } = await importEsm('aedes');
    const broker = await Aedes.createBroker({
      maxClientsIdLength: 1024,
      authenticate: (_client, user, password, done) => {
        this.log.authAttempts++;
        const want = this.credentials;
        if (!want || (user === want.user && password?.toString() === want.password)) return done(null, true);
        done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }) as never, false);
      },
      // Recorded here, before the broker acknowledges: a PUBACK the client got means the message is in this log
      // (aedes sends the PUBACK of a QoS 1 publish before it routes it).
      authorizePublish: (client, packet, callback) => {
        if (this.holdPublishes) {
          this.held++;
          return; // never answered: no PUBACK, no delivery
        }
        if (client)
          this.log.publishes.push({ clientId: client.id, topic: packet.topic, payload: Buffer.from(packet.payload) });
        setImmediate(callback, null);
      },
    });
    broker.on('client', (client) =>
      this.log.connects.push({ clientId: client.id, will: Boolean((client as unknown as { will?: unknown }).will) }),
    );
    broker.on('clientDisconnect', (client) => this.log.disconnects.push(client.id));
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    this.broker = broker;
    this.server = server;
    return this.port;
  }

  /** The broker dies: sockets cut without DISCONNECT, the port closed, sessions and retained messages gone. */
  async kill(): Promise<void> {
    const server = this.server;
    const broker = this.broker;
    this.server = undefined;
    this.broker = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
  }

  /** Publishes the broker received on `topic`, as text. */
  received(topic: string): string[] {
    return this.log.publishes.filter((p) => p.topic === topic).map((p) => p.payload.toString('utf8'));
  }
}

/** A module name unique to this run, so retained values on a shared broker (Mosquitto) never leak between runs. */
export function uniqueModule(base = 'io.world'): string {
  return `${base}.t${process.pid}x${Math.floor(Math.random() * 1e9).toString(36)}`;
}
