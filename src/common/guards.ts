// Type guards and rules every bus shares, defined once: plain objects, thrown values, the Mbus symbol, MQTT QoS.

/** A plain JSON-like object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Turns a possibly-thrown value into an Error whose message a Catch node can show. */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The message of a possibly-thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** An Mbus symbol (RFC 3259 command names, RPC procedure names and results): a letter, then letters, digits, _ - . */
export const MBUS_SYMBOL = /^[A-Za-z][A-Za-z0-9_.-]*$/;

export type QoS = 0 | 1 | 2;

/** An MQTT QoS from a flow property: 0 and 2 as given, anything else (missing, bad) the default 1. */
export function qosOf(value: unknown): QoS {
  if (value === undefined || value === null || value === '') return 1;
  const n = Number(value);
  return n === 0 || n === 2 ? n : 1;
}
