// E messages built straight into their wire form: the constant part of an event serialised once, the timestamp once
// per millisecond, and under SockJS each part escaped on its own instead of the whole message again per event.
export type Priority = 0 | 1 | 2;

/** The per-publish part of an event. */
export interface EventFields {
  /** Omitted from the wire when undefined or null. */
  dataObject?: unknown;
  priority?: Priority;
  /** `YYYY-MM-DDTHH:mm:ss.sssZ`; now when absent. */
  postDate?: string;
  /** Omitted from the wire when undefined or empty. */
  correlationId?: string;
}

/** A JSON text as the content of a JSON string literal (what a SockJS frame holds), without the quotes. */
export function escapeJson(json: string): string {
  return JSON.stringify(json).slice(1, -1);
}

/** The start of every E message of one service: `E {"uuid":"…",` plain and as the start of a SockJS string literal. */
export class EventHead {
  readonly plain: string;
  readonly sockJs: string;

  constructor(readonly uuid: string | undefined) {
    // The uuid goes first, as the official clients send it; without one (nothing registered yet) the body follows.
    this.plain = uuid === undefined ? 'E {' : `E {"uuid":${JSON.stringify(uuid)},`;
    this.sockJs = `"${escapeJson(this.plain)}`;
  }

  /** A stored event body (`{"eventId":…}`, no uuid) as the message to send, SockJS-quoted when asked. */
  fromBody(body: string, sockJs: boolean): string {
    const plain = this.plain + body.slice(1);
    return sockJs ? JSON.stringify(plain) : plain;
  }
}

/** Now as `YYYY-MM-DDTHH:mm:ss.sssZ`, formatted at most once per millisecond (with its quoted and escaped forms). */
class Clock {
  private ms = NaN;
  private iso = '';
  private quoted = '';
  private escaped = '';

  private tick(): void {
    const now = Date.now();
    if (now === this.ms) return;
    this.ms = now;
    this.iso = new Date(now).toISOString();
    this.quoted = `"${this.iso}"`;
    this.escaped = `\\"${this.iso}\\"`;
  }

  now(): string {
    this.tick();
    return this.iso;
  }

  nowQuoted(): string {
    this.tick();
    return this.quoted;
  }

  nowEscaped(): string {
    this.tick();
    return this.escaped;
  }
}

const clock = new Clock();

/** Now, formatted as the MSB expects (`YYYY-MM-DDTHH:mm:ss.sssZ`). */
export function msbNow(): string {
  return clock.now();
}

/**
 * The E messages of one event, its eventId and priority serialised once: what a node publishing one event holds.
 * Every message it builds is byte for byte what `E ${JSON.stringify({uuid, eventId, priority, postDate, dataObject,
 * correlationId})}` gives (and, under SockJS, that text as a JSON string).
 */
export class EventTemplate {
  /** Per priority 0..2, plain then SockJS-escaped: `"eventId":"…","priority":N,"postDate":`, built on first use. */
  private readonly heads: Array<string | undefined> = new Array<string | undefined>(6);

  constructor(readonly eventId: string) {}

  /** The body kept in the event cache: the message without its `E ` and without the uuid (added when sent). */
  body(fields: EventFields): string {
    return `{${this.rest(fields)}`;
  }

  /** The whole message: plain text for the raw path, or the JSON string literal a SockJS frame holds. */
  message(head: EventHead, fields: EventFields, sockJs: boolean): string {
    return sockJs ? this.sockJsMessage(head, fields) : head.plain + this.rest(fields);
  }

  private head(priority: Priority | undefined, escaped: boolean): string {
    const p = priority ?? 0;
    const known = p === 0 || p === 1 || p === 2;
    const slot = known ? p * 2 + (escaped ? 1 : 0) : -1;
    const cached = known ? this.heads[slot] : undefined;
    if (cached !== undefined) return cached;
    // Anything but 0, 1 or 2 (a caller outside TypeScript) is serialised as given, like JSON.stringify would.
    const plain = `"eventId":${JSON.stringify(this.eventId)},"priority":${JSON.stringify(p)},"postDate":`;
    const head = escaped ? escapeJson(plain) : plain;
    if (known) this.heads[slot] = head;
    return head;
  }

  /** Everything after `{` or `{"uuid":"…",`, plain. */
  private rest(fields: EventFields): string {
    let text =
      this.head(fields.priority, false) +
      (fields.postDate === undefined ? clock.nowQuoted() : JSON.stringify(fields.postDate));
    const data = fields.dataObject;
    if (data !== undefined && data !== null) {
      const json = JSON.stringify(data) as string | undefined; // undefined for a function or symbol: no key, like JSON.stringify of the object
      if (json !== undefined) text += `,"dataObject":${json}`;
    }
    const correlationId = fields.correlationId;
    if (correlationId !== undefined && correlationId !== '')
      text += `,"correlationId":${JSON.stringify(correlationId)}`;
    return `${text}}`;
  }

  private sockJsMessage(head: EventHead, fields: EventFields): string {
    let text =
      head.sockJs +
      this.head(fields.priority, true) +
      (fields.postDate === undefined ? clock.nowEscaped() : escapeJson(JSON.stringify(fields.postDate)));
    const data = fields.dataObject;
    if (data !== undefined && data !== null) {
      const json = JSON.stringify(data) as string | undefined;
      // Numbers, booleans (and null for NaN) hold nothing a JSON string must escape.
      if (json !== undefined)
        text += `,\\"dataObject\\":${typeof data === 'number' || typeof data === 'boolean' ? json : escapeJson(json)}`;
    }
    const correlationId = fields.correlationId;
    if (correlationId !== undefined && correlationId !== '')
      text += `,\\"correlationId\\":${escapeJson(JSON.stringify(correlationId))}`;
    return `${text}}"`;
  }
}
