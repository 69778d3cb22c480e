// An in-process MQTT broker (aedes, MQTT 3.1/3.1.1/5) on a loopback TCP port: the zero-setup default for users without
// a broker, and the peer of the MQTT test suites. aedes is ESM-only and heavy, so it is imported only when started.
// SharedEmbeddedBroker lets every user of one host:port in this process share one broker instead of fighting for the
// port (an imported example has its own sg-broker config node on the same port as the flow it was imported into).
import net from 'net';
import type { Aedes, AedesOptions } from 'aedes';

/** Port the embedded broker listens on by default: 1883 is usually taken by a system Mosquitto on gateways. */
export const DEFAULT_EMBEDDED_PORT = 1884;
export const DEFAULT_EMBEDDED_HOST = '127.0.0.1';

export interface EmbeddedBrokerOptions {
  /** TCP port; 0 picks a free one (tests). Default 1884. */
  port?: number;
  /** Interface to bind; loopback by default so the broker is not reachable from the network. */
  host?: string;
}

/** The port is held by something else (another program, or a broker this registry does not know about). */
export class PortInUseError extends Error {
  readonly code = 'EADDRINUSE';
  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    super(`port ${port} is in use by another program`);
    this.name = 'PortInUseError';
  }
}

type AedesModule = typeof import('aedes');

// TypeScript compiles `import()` to `require()` under module=commonjs; a real dynamic import keeps working on every
// Node.js that Node-RED supports, not only on those with require(esm).
// eslint-disable-next-line @typescript-eslint/no-implied-eval -- a literal import(), not user input: see above
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

let aedesModule: Promise<AedesModule> | undefined;
function loadAedes(): Promise<AedesModule> {
  aedesModule ??= importEsm('aedes') as Promise<AedesModule>;
  return aedesModule;
}

/**
 * aedes' default publish authorizer ($SYS/ is reserved to the broker), answering in a macrotask of its own.
 *
 * Why: aedes 2.0.0-beta.1 numbers each publish (`brokerCounter`) when it starts routing it, and every subscriber drops
 * a message whose number is lower than the last one it was given (`dedupe` in aedes/lib/client.js, meant for
 * overlapping subscriptions). All PUBLISH packets parsed from one TCP read are handled concurrently in microtasks, and a
 * retained one takes one step more (storing the retained value) before fan-out than a non-retained one. So a retained
 * QoS 2 or QoS 0 publish followed in the same read by a publish to the same subscriber was acknowledged to the
 * publisher and then silently dropped for that subscriber (QoS 1 was safe only because aedes writes the PUBACK first,
 * which costs a macrotask). Answering the authorization in its own macrotask lets the broker finish one publish
 * (number, retained store, fan-out — all microtasks with the in-memory persistence) before the next packet of the read
 * gets its number. The same dedupe drop as moscajs/aedes#994 (open); test/mqtt-embedded-qos2.test.ts reproduces it.
 */
function publishOneAtATime(
  _client: unknown,
  packet: { topic: string },
  callback: (error?: Error | null) => void,
): void {
  if (packet.topic.startsWith('$SYS/')) {
    callback(new Error('$SYS/ topic is reserved'));
    return;
  }
  setImmediate(callback, null);
}

export class EmbeddedBroker {
  private broker: Aedes | undefined;
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  private starting: Promise<number> | undefined;
  private boundPort = 0;

  constructor(private readonly options: EmbeddedBrokerOptions = {}) {}

  get host(): string {
    return this.options.host || DEFAULT_EMBEDDED_HOST;
  }

  /** The port actually bound (differs from the configured one when that was 0); 0 while not listening. */
  get port(): number {
    return this.boundPort;
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  /** The URL a client uses to reach this broker. Only valid after start() resolved. */
  get url(): string {
    return `mqtt://${this.host}:${this.boundPort}`;
  }

  /** Starts the broker once; concurrent and repeated calls share the same start. Resolves with the bound port. */
  start(): Promise<number> {
    this.starting ??= this.doStart().catch(async (err: unknown) => {
      this.starting = undefined;
      await this.close();
      throw err;
    });
    return this.starting;
  }

  private async doStart(): Promise<number> {
    const { Aedes } = await loadAedes();
    const opts: AedesOptions = {
      // sgframework uses MQTT 3.1, whose 23-character client id limit aedes enforces by default; Mosquitto accepts
      // longer ids (`<name>-<pid>` easily exceeds 23), so do the same.
      maxClientsIdLength: 1024,
      authorizePublish: publishOneAtATime,
    };
    const broker = await Aedes.createBroker(opts);
    this.broker = broker;
    const server = net.createServer((socket) => {
      // MQTT exchanges many small packets (PUBLISH, PUBACK); with Nagle + delayed ACK each round trip costs ~40 ms.
      socket.setNoDelay(true);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const port = this.options.port ?? DEFAULT_EMBEDDED_PORT;
      const onError = (err: NodeJS.ErrnoException): void =>
        reject(err.code === 'EADDRINUSE' ? new PortInUseError(this.host, port) : err);
      server.once('error', onError);
      server.listen(port, this.host, () => {
        server.removeListener('error', onError);
        resolve();
      });
    });
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : 0;
    return this.boundPort;
  }

  /**
   * Stops the broker and frees the port: broker first (it ends the client connections, so server.close() does not
   * wait for them), then the listening server, then any socket still open. Safe to call repeatedly or mid-start.
   */
  async close(): Promise<void> {
    const starting = this.starting;
    this.starting = undefined;
    if (starting) await starting.catch(() => undefined);
    const broker = this.broker;
    const server = this.server;
    this.broker = undefined;
    this.server = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
      await closed;
    }
    if (!this.server) this.boundPort = 0;
  }
}

interface SharedEntry {
  broker: EmbeddedBroker;
  holders: number;
}

/** One broker per "host:port" in this process, while anyone holds it. */
const sharedBrokers = new Map<string, SharedEntry>();
/** Brokers being stopped by their last holder: a new holder of the same port waits for the port to be free. */
const stoppingBrokers = new Map<string, Promise<void>>();

/**
 * One user's hold on the embedded broker of a host and port, with the EmbeddedBroker API (start, close, host, port,
 * url). Every holder of the same host:port uses the same broker instance; it starts with the first start() and stops
 * with the last close(). Port 0 (pick a free one) is never shared: each holder gets a broker of its own.
 */
export class SharedEmbeddedBroker {
  private entry: SharedEntry | undefined;
  private readonly key: string;

  constructor(private readonly options: EmbeddedBrokerOptions = {}) {
    const port = options.port ?? DEFAULT_EMBEDDED_PORT;
    this.key = port === 0 ? '' : `${options.host || DEFAULT_EMBEDDED_HOST}:${port}`;
  }

  /** How many holders share the broker of `host:port` right now (for tests and diagnostics). */
  static holders(port: number, host = DEFAULT_EMBEDDED_HOST): number {
    return sharedBrokers.get(`${host}:${port}`)?.holders ?? 0;
  }

  get host(): string {
    return this.options.host || DEFAULT_EMBEDDED_HOST;
  }

  get port(): number {
    return this.entry?.broker.port ?? 0;
  }

  get listening(): boolean {
    return this.entry?.broker.listening === true;
  }

  get url(): string {
    return `mqtt://${this.host}:${this.port}`;
  }

  /** Takes a hold (once per instance) and starts the shared broker if it is not running; resolves with its port. */
  async start(): Promise<number> {
    if (!this.entry) {
      let entry = this.key ? sharedBrokers.get(this.key) : undefined;
      if (!entry) {
        entry = { broker: new EmbeddedBroker(this.options), holders: 0 };
        if (this.key) sharedBrokers.set(this.key, entry);
      }
      entry.holders++;
      this.entry = entry;
    }
    const entry = this.entry;
    const stopping = stoppingBrokers.get(this.key);
    if (stopping) await stopping.catch(() => undefined); // its failure is its last holder's to report
    // A failed start (port taken) is retried by the next start() of any holder: EmbeddedBroker allows that.
    return entry.broker.start();
  }

  /** Gives the hold up; the last holder stops the broker and frees the port. Safe to call repeatedly. */
  async close(): Promise<void> {
    const entry = this.entry;
    this.entry = undefined;
    if (!entry) return;
    entry.holders--;
    if (entry.holders > 0) return;
    if (this.key && sharedBrokers.get(this.key) === entry) sharedBrokers.delete(this.key);
    const stopped = entry.broker.close();
    if (!this.key) return stopped;
    const key = this.key;
    const tracked = stopped.finally(() => {
      if (stoppingBrokers.get(key) === tracked) stoppingBrokers.delete(key);
    });
    stoppingBrokers.set(key, tracked);
    return tracked;
  }
}
