// An in-process MQTT broker (aedes, MQTT 3.1/3.1.1/5) on a loopback TCP port: the zero-setup default for users without
// a broker, and the peer of the MQTT test suites. aedes is ESM-only and heavy, so it is imported only when started.
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

type AedesModule = typeof import('aedes');

// TypeScript compiles `import()` to `require()` under module=commonjs; a real dynamic import keeps working on every
// Node.js that Node-RED supports, not only on those with require(esm).
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

let aedesModule: Promise<AedesModule> | undefined;
function loadAedes(): Promise<AedesModule> {
  aedesModule ??= importEsm('aedes') as Promise<AedesModule>;
  return aedesModule;
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
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(this.options.port ?? DEFAULT_EMBEDDED_PORT, this.host, () => {
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
