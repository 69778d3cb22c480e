// A peer that reads an ApiGear interface the way ApiGear's generated adapters do: JSON.parse on every payload of every
// topic under the interface prefix. Anything unparsable is recorded (a generated Python client would stop receiving).
import mqtt, { MqttClient } from 'mqtt';

export interface Unparsable {
  topic: string;
  hex: string;
  retain: boolean;
  error: string;
}

export class StrictJsonPeer {
  readonly unparsable: Unparsable[] = [];
  readonly parsed: Array<{ topic: string; value: unknown; retain: boolean }> = [];
  private waiters: Array<() => void> = [];

  private constructor(private readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      try {
        this.parsed.push({ topic, value: JSON.parse(payload.toString('utf8')) as unknown, retain: packet.retain });
      } catch (err) {
        this.unparsable.push({
          topic,
          hex: payload.toString('hex').slice(0, 64),
          retain: packet.retain,
          error: (err as Error).message,
        });
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Connects (MQTT v5, or 3.1.1 where the broker has no v5) and subscribes to everything under `prefix`. */
  static async watch(url: string, prefix: string, protocolVersion: 4 | 5 = 5): Promise<StrictJsonPeer> {
    const client = await mqtt.connectAsync(url, {
      protocolVersion,
      clientId: `strict-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      reconnectPeriod: 0,
    });
    const peer = new StrictJsonPeer(client);
    await client.subscribeAsync(`${prefix}/#`, { qos: 1 });
    return peer;
  }

  /** Resolves once a parsed message on `topic` satisfies `match` (bounded by `ms`). */
  async seen(topic: string, match: (value: unknown) => boolean = () => true, ms = 10000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.parsed.some((m) => m.topic === topic && match(m.value))) {
      if (Date.now() > deadline)
        throw new Error(
          `strict peer: nothing parsable on ${topic} within ${ms} ms (unparsable: ${JSON.stringify(this.unparsable)})`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  end(): Promise<void> {
    return this.client.endAsync(true);
  }
}
