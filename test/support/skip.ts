// Skipping a test with its reason on record (the reporter prints it); under CI=true a skip of something CI provides
// (an interop peer, Node-RED 3.1 for the palette test) fails instead, so a green CI run has really run it.

/** Under CI=true (what .ci/run and most CI services set). */
export const inCi = /^(1|true|yes)$/i.test(process.env.CI ?? '');

interface Skippable {
  skip(): never;
  test?: Mocha.Runnable;
}

/**
 * Skips the current test (or, from a before hook, its whole suite) and records `reason` for the reporter.
 * With `requiredInCi`, under CI=true it throws instead: CI provides that peer, so its absence is a failure.
 */
export function skipBecause(ctx: Skippable, reason: string, options: { requiredInCi?: boolean } = {}): never {
  if (options.requiredInCi && inCi) throw new Error(`CI=true requires this test, but it would be skipped: ${reason}`);
  const runnable = ctx.test as (Mocha.Runnable & { type?: string }) | undefined;
  // From a hook, every test of the hook's suite is skipped: the reason belongs to the suite.
  const holder = (runnable?.type === 'hook' ? runnable.parent : runnable) as { skipReason?: string } | undefined;
  if (holder) holder.skipReason = reason;
  return ctx.skip();
}
