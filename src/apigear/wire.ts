// Shared wire helpers for both adapters: JSON payload decoding, publish as a promise, subscribe-all readiness.
import type { ManagedMqttClient, PublishOptions } from '../mqtt/managed-client';
import { messageOf } from '../common/guards';
export { ListenerSet as Listeners } from '../mqtt/managed-client';

export type QoS = 0 | 1 | 2;

/** Decodes an ApiGear JSON payload; undefined for an empty payload (a cleared retained value). */
export function decodeJson(payload: Buffer): { ok: true; value: unknown } | { ok: false; error: string } | undefined {
  if (payload.length === 0) return undefined;
  try {
    return { ok: true, value: JSON.parse(payload.toString('utf8')) as unknown };
  } catch (err) {
    return { ok: false, error: messageOf(err) };
  }
}

export function encodeJson(value: unknown): string {
  // `undefined` has no JSON form; a void reply or an absent value goes out as null.
  return JSON.stringify(value === undefined ? null : value);
}

/** Publishes through the managed client: queued while disconnected, settled on PUBACK/PUBCOMP or with an error. */
export function publish(
  client: ManagedMqttClient,
  topic: string,
  body: string | Buffer,
  opts: PublishOptions,
): Promise<void> {
  return client.publish(topic, body, opts);
}

/**
 * Subscribes to every topic at `qos`; resolves when all SUBACKs are in (ApiGear's "ready") with the lowest QoS the
 * broker granted (a broker without QoS 2 grants 1), rejects on a refusal.
 */
export function subscribeAll(client: ManagedMqttClient, topics: string[], qos: QoS): Promise<QoS> {
  return client.subscribe(topics, qos).then((granted) => {
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) throw new Error(`broker refused subscription to ${refused.join(', ')}`);
    return granted.reduce<QoS>((low, g) => (g.qos < low ? (g.qos as QoS) : low), qos);
  });
}
