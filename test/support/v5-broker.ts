// The ApiGear suites' broker: the one test broker factory (test/lib/mqtt-peer.ts), plus a per-run module name.
export { startTestBroker as startBroker } from '../lib/mqtt-peer';
export type { TestBroker } from '../lib/mqtt-peer';

/** A module name unique to this run, so retained values on a shared broker (Mosquitto) never leak between runs. */
export function uniqueModule(base = 'io.world'): string {
  return `${base}.t${process.pid}x${Math.floor(Math.random() * 1e9).toString(36)}`;
}
