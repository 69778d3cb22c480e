// sgframework's inbound checks (spec §5 steps 1-3) as one pure function: strict UTF-8, strip, topic depth, exact lookup.
import type { InputEntry } from './plan';
import { decodeUtf8, pythonStrip } from './python';

/** Why an inbound message was dropped: a fixed set, so counters keyed by it stay bounded whatever arrives. */
export type SgRejectReason = 'not UTF-8' | 'wrong topic structure' | 'unregistered topic';

export type SgInbound =
  | { ok: true; topic: string; entry: InputEntry; payload: string }
  | { ok: false; reason: SgRejectReason; detail: string };

/**
 * Accepts a message only for a topic registered in `inputs` (a Map: names from the wire are never looked up in an
 * object's prototype). Invalid UTF-8 is dropped rather than decoded lossily (sgframework itself would wedge on it).
 */
export function classifyInbound(
  rawTopic: string,
  bytes: Uint8Array,
  inputs: ReadonlyMap<string, InputEntry>,
): SgInbound {
  const text = decodeUtf8(bytes);
  if (text === undefined) return { ok: false, reason: 'not UTF-8', detail: `payload on ${rawTopic}` };
  const topic = pythonStrip(rawTopic);
  if (topic.split('/').length !== 3) return { ok: false, reason: 'wrong topic structure', detail: rawTopic };
  const entry = inputs.get(topic);
  if (!entry) return { ok: false, reason: 'unregistered topic', detail: rawTopic };
  return { ok: true, topic, entry, payload: pythonStrip(text) };
}
