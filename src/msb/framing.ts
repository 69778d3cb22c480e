// MSB websocket framing: SockJS frames (o, h, a[...], c[...]) and raw text, parsed with real JSON, never by slicing.

/** What one incoming websocket text frame means. */
export type IncomingFrame =
  | { kind: 'open' }
  | { kind: 'heartbeat' }
  | { kind: 'messages'; messages: string[] }
  | { kind: 'close'; code: number; reason: string }
  | { kind: 'invalid'; reason: string };

/** Decodes a frame the server sent. In raw mode every frame is one message. */
export function decodeServerFrame(frame: string, sockJs: boolean): IncomingFrame {
  if (!sockJs) return { kind: 'messages', messages: [frame] };
  if (frame.length === 0) return { kind: 'invalid', reason: 'empty frame' };
  const tag = frame[0];
  if (tag === 'o' && frame.length === 1) return { kind: 'open' };
  if (tag === 'h' && frame.length === 1) return { kind: 'heartbeat' };
  if (tag === 'a') {
    const messages = parseStringArray(frame.slice(1));
    return messages
      ? { kind: 'messages', messages }
      : { kind: 'invalid', reason: 'a-frame is not a JSON array of strings' };
  }
  if (tag === 'c') {
    const body = parseJson(frame.slice(1));
    if (Array.isArray(body) && typeof body[0] === 'number') {
      return { kind: 'close', code: body[0], reason: typeof body[1] === 'string' ? body[1] : '' };
    }
    return { kind: 'invalid', reason: 'c-frame is not [code, "reason"]' };
  }
  return { kind: 'invalid', reason: `unknown SockJS frame type ${JSON.stringify(tag)}` };
}

/** Encodes one client message: SockJS wants a JSON array of strings, raw mode the bare text. */
export function encodeClientFrame(message: string, sockJs: boolean): string {
  return sockJs ? JSON.stringify([message]) : message;
}

/**
 * Decodes a frame a client sent (the emulator's side). SockJS clients send a JSON array of strings; some official
 * clients append a newline, so surrounding whitespace is tolerated. A bare JSON string is accepted too.
 */
export function decodeClientFrame(frame: string, sockJs: boolean): string[] | undefined {
  if (!sockJs) return [frame];
  const body = parseJson(frame.trim());
  if (typeof body === 'string') return [body];
  return Array.isArray(body) && body.every((m) => typeof m === 'string') ? body : undefined;
}

/** Server-side frames. */
export const serverFrame = {
  open: (): string => 'o',
  heartbeat: (): string => 'h',
  /** One server message: `a["…"]` under SockJS, the bare text in raw mode. */
  message: (message: string, sockJs: boolean): string => (sockJs ? `a${JSON.stringify([message])}` : message),
  close: (code: number, reason: string): string => `c${JSON.stringify([code, reason])}`,
};

/** A parsed MSB message: a typed message `<T> <json>` or a bare status keyword. */
export type MsbMessage =
  | { type: 'R' | 'E' | 'C' | 'K'; body: unknown }
  | { type: 'status'; keyword: string }
  | { type: 'invalid'; text: string; reason: string };

const TYPED = /^([RECK]) /;

export function parseMessage(text: string): MsbMessage {
  const typed = TYPED.exec(text);
  if (typed) {
    const body = parseJson(text.slice(2));
    if (body === undefined) return { type: 'invalid', text, reason: `${typed[1]} message body is not valid JSON` };
    return { type: typed[1] as 'R' | 'E' | 'C' | 'K', body };
  }
  const keyword = text.trim();
  if (/^[A-Za-z_]+$/.test(keyword)) return { type: 'status', keyword };
  return { type: 'invalid', text, reason: 'neither a typed message nor a status keyword' };
}

export function formatMessage(type: 'R' | 'E' | 'C' | 'K', body: unknown): string {
  return `${type} ${JSON.stringify(body)}`;
}

function parseStringArray(text: string): string[] | undefined {
  const body = parseJson(text);
  return Array.isArray(body) && body.every((m) => typeof m === 'string') ? body : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
