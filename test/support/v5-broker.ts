// A throwaway MQTT v5 broker for tests: in-process aedes 2 (beta) on 127.0.0.1:0, or the broker at MQTT_URL.
import net from 'net';
import type { AddressInfo } from 'net';

export interface TestBroker {
  url: string;
  external: boolean;
  close(): Promise<void>;
}

// TypeScript compiles `import()` to `require()` under CommonJS; aedes is ESM-only, so keep a real dynamic import.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<unknown>;

interface AedesLike {
  handle(socket: net.Socket): void;
  close(cb?: () => void): void;
}

export async function startBroker(): Promise<TestBroker> {
  if (process.env.MQTT_URL) return { url: process.env.MQTT_URL, external: true, close: async () => undefined };
  const { Aedes } = (await importEsm('aedes')) as { Aedes: { createBroker(opts?: object): Promise<AedesLike> } };
  const broker = await Aedes.createBroker();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true); // small request/reply packets: no Nagle delay (see bench/apigear.bench.ts)
    socket.on('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    external: false,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A module name unique to this run, so retained values on a shared broker (Mosquitto) never leak between runs. */
export function uniqueModule(base = 'io.world'): string {
  return `${base}.t${process.pid}x${Math.floor(Math.random() * 1e9).toString(36)}`;
}
