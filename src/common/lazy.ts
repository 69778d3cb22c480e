// Loads a dependency on first use, not at module load: Node-RED requires every node file at start, used or not.

/** `load` runs once, on the first call; later calls return what it returned (or throw what it threw, anew). */
export function lazy<T>(load: () => T): () => T {
  let loaded: { value: T } | undefined;
  return () => (loaded ??= { value: load() }).value;
}
