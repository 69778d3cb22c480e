// Plain mqtt.js v5 helpers for the independent peer in ApiGear tests (deliberately none of the project's code).
import mqtt, { IClientPublishOptions, IPublishPacket, MqttClient } from 'mqtt';
import { ManagedMqttClient } from '../../src/mqtt/managed-client';

export async function connectV5(url: string, clientId: string): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId,
    clean: true,
    reconnectPeriod: 100,
    connectTimeout: 5000,
  });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

export function subscribe(client: MqttClient, topic: string | string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    client.subscribe(topic, { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

export function publish(
  client: MqttClient,
  topic: string,
  body: string | Buffer,
  opts: IClientPublishOptions = {},
): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, body, { qos: 1, ...opts }, (err) => (err ? reject(err) : resolve())),
  );
}

export interface Received {
  topic: string;
  payload: Buffer;
  packet: IPublishPacket;
}

/** Collects every message a client receives, and waits for the next one matching a topic. */
export class Inbox {
  readonly all: Received[] = [];
  private waiters: Array<{ match: (t: string) => boolean; resolve: (r: Received) => void }> = [];

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const r = { topic, payload, packet };
      const i = this.waiters.findIndex((w) => w.match(topic));
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(r);
      else this.all.push(r);
    });
  }

  /** The next message on `topic` (queued ones first). */
  next(topic: string | ((t: string) => boolean)): Promise<Received> {
    const match = typeof topic === 'string' ? (t: string) => t === topic : topic;
    const i = this.all.findIndex((r) => match(r.topic));
    if (i >= 0) return Promise.resolve(this.all.splice(i, 1)[0]);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }

  take(topic: string): Received[] {
    const out = this.all.filter((r) => r.topic === topic);
    for (const r of out) this.all.splice(this.all.indexOf(r), 1);
    return out;
  }
}

export function endClient(client: MqttClient | ManagedMqttClient | undefined): Promise<void> {
  if (client instanceof ManagedMqttClient) return client.close();
  return new Promise((resolve) => (client ? client.end(true, {}, () => resolve()) : resolve()));
}

export function once<T>(emitter: { once(event: string, fn: (arg: T) => void): unknown }, event: string): Promise<T> {
  return new Promise((resolve) => emitter.once(event, resolve));
}

/** The package's managed client (what the nodes use) on MQTT 5 with a clean start, once connected. */
export async function connectManaged(url: string, clientId: string): Promise<ManagedMqttClient> {
  const client = new ManagedMqttClient({
    clientId,
    endpoint: async () => ({ url, options: { protocolVersion: 5, clean: true, connectTimeout: 5000 } }),
    retry: { initialMs: 100, maxMs: 1000 },
  });
  const up = new Promise<void>((resolve) => client.once('connect', () => resolve()));
  client.start();
  await up;
  return client;
}
