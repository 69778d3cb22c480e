// Shared wire helpers for both adapters: JSON payload decoding, publish as a promise, subscribe-all readiness.
import type { IClientPublishOptions, MqttClient } from 'mqtt';

export type QoS = 0 | 1 | 2;

/** Decodes an ApiGear JSON payload; undefined for an empty payload (a cleared retained value). */
export function decodeJson(payload: Buffer): { ok: true; value: unknown } | { ok: false; error: string } | undefined {
  if (payload.length === 0) return undefined;
  try {
    return { ok: true, value: JSON.parse(payload.toString('utf8')) as unknown };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

export function encodeJson(value: unknown): string {
  // `undefined` has no JSON form; a void reply or an absent value goes out as null.
  return JSON.stringify(value === undefined ? null : value);
}

export function publish(client: MqttClient, topic: string, body: string | Buffer, opts: IClientPublishOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, body, opts, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Subscribes to every topic at `qos`; resolves when all SUBACKs are in (ApiGear's "ready") with the lowest QoS the
 * broker granted (a broker without QoS 2 grants 1), rejects on a refusal.
 */
export function subscribeAll(client: MqttClient, topics: string[], qos: QoS): Promise<QoS> {
  return new Promise((resolve, reject) => {
    const map: Record<string, { qos: QoS }> = {};
    for (const t of topics) map[t] = { qos };
    client.subscribe(map, (err, granted) => {
      if (err) return reject(err);
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) return reject(new Error(`broker refused subscription to ${refused.join(', ')}`));
      resolve((granted ?? []).reduce<QoS>((low, g) => (g.qos < low ? (g.qos as QoS) : low), qos));
    });
  });
}

/** Listener bookkeeping: every handler we attach to the shared MQTT client is recorded and removed on stop. */
export class Listeners {
  private readonly attached: Array<[string, (...args: never[]) => void]> = [];
  constructor(private readonly client: MqttClient) {}

  on(event: 'connect' | 'message' | 'close' | 'offline' | 'error', handler: (...args: never[]) => void): void {
    this.client.on(event as 'connect', handler as never);
    this.attached.push([event, handler]);
  }

  removeAll(): void {
    for (const [event, handler] of this.attached.splice(0)) this.client.removeListener(event as 'connect', handler as never);
  }
}
