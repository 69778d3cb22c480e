// A throwaway MQTT v5 broker for tests: the embedded broker (in-process aedes 2 beta) on 127.0.0.1:0, or MQTT_URL.
import { EmbeddedBroker } from '../../src/mqtt/embedded-broker';

export interface TestBroker {
  url: string;
  external: boolean;
  close(): Promise<void>;
}

/** The broker under test: the package's embedded broker (aedes 2, as users get it) on a free port, or MQTT_URL. */
export async function startBroker(): Promise<TestBroker> {
  if (process.env.MQTT_URL) return { url: process.env.MQTT_URL, external: true, close: async () => undefined };
  const broker = new EmbeddedBroker({ port: 0 });
  await broker.start();
  return { url: broker.url, external: false, close: () => broker.close() };
}

/** A module name unique to this run, so retained values on a shared broker (Mosquitto) never leak between runs. */
export function uniqueModule(base = 'io.world'): string {
  return `${base}.t${process.pid}x${Math.floor(Math.random() * 1e9).toString(36)}`;
}
