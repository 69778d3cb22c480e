// Decoding ApiGear payloads from the network defensively: strict UTF-8, bounded nesting, then JSON.
import { messageOf } from '../common/guards';
/** Deepest array/object nesting accepted from the wire; IDL structs nest a few levels, a hostile payload thousands. */
export const MAX_JSON_DEPTH = 64;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export type Decoded =
  { ok: true; value: unknown } | { ok: false; reason: 'not UTF-8' | 'too deeply nested' | 'not JSON'; error: string };

/** The nesting depth of JSON text, stopping as soon as it exceeds `limit` (strings skipped, escapes honoured). */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * Decodes a payload as ApiGear's generated adapters read it (UTF-8 JSON), but refuses what would cost us: invalid
 * UTF-8 (toString would silently substitute U+FFFD), nesting beyond MAX_JSON_DEPTH (later recursion in validation or
 * JSON.stringify could overflow the stack). `undefined` for an empty payload (a cleared retained value).
 */
export function decodePayload(payload: Uint8Array): Decoded | undefined {
  if (payload.length === 0) return undefined;
  let text: string;
  try {
    text = strictUtf8.decode(payload);
  } catch {
    return { ok: false, reason: 'not UTF-8', error: 'invalid UTF-8 bytes' };
  }
  if (jsonDepthExceeds(text, MAX_JSON_DEPTH))
    return { ok: false, reason: 'too deeply nested', error: `nested deeper than ${MAX_JSON_DEPTH} levels` };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, reason: 'not JSON', error: messageOf(err) };
  }
}
