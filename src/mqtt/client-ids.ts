// Client ids in use by this process: two connections with one id knock each other off the broker, so the second
// claim of an id gets a suffix instead (`name-1234`, then `name-1234-2`).

const inUse = new Set<string>();

export interface ClaimedId {
  readonly id: string;
  release(): void;
}

/** Claims `wanted`, or the first free `wanted-2`, `wanted-3`, … when another connection of this process holds it. */
export function claimClientId(wanted: string): ClaimedId {
  let id = wanted;
  for (let n = 2; inUse.has(id); n++) id = `${wanted}-${n}`;
  inUse.add(id);
  let released = false;
  return {
    id,
    release: () => {
      if (released) return;
      released = true;
      inUse.delete(id);
    },
  };
}
