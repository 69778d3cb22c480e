// Polling for tests: wait for something the code under test does asynchronously, with a bound.

/** Calls `fn` now and every `every` ms until it returns something other than undefined or false, and resolves with
 *  that; rejects with "timed out waiting for <what>" once more than `ms` have passed. */
export function until<T>(fn: () => T | undefined | false, what: string, ms: number, every: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const tick = (): void => {
      const v = fn();
      if (v !== undefined && v !== false) return resolve(v);
      if (Date.now() - t0 > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, every);
    };
    tick();
  });
}

/** `until` with a test file's own default bound and polling interval. */
export function poller(defaultMs: number, every: number) {
  return <T>(fn: () => T | undefined | false, what: string, ms = defaultMs): Promise<T> => until(fn, what, ms, every);
}
