// Every catalog key the runtime code of a node set uses exists in that set's catalogs, in English and German: the
// text a user reads for an error, a warning or a status comes from the catalogs, never from a missing key.
import assert from 'assert';
import fs from 'fs';
import path from 'path';
import { packageRoot } from './lib/package-facts';

const SETS = ['msb', 'sg', 'mbus', 'apigear'];
const LANGS = ['en-US', 'de'];

function lookup(catalog: unknown, key: string): unknown {
  let at: unknown = catalog;
  for (const part of key.split('.')) {
    if (typeof at !== 'object' || at === null || !Object.prototype.hasOwnProperty.call(at, part)) return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

/** Literal keys in `catalogError(RED, '<key>'` and `RED._('<key>'` calls (keys completed at run time are skipped). */
function keysUsed(source: string): string[] {
  const keys = new Set<string>();
  for (const m of source.matchAll(/(?:catalogError\(RED, |RED\._\()'([A-Za-z-]+\.[A-Za-z0-9.-]+)'/g))
    if (m[1] && !m[1].endsWith('.')) keys.add(m[1]);
  return [...keys];
}

describe('runtime catalog keys', () => {
  for (const set of SETS) {
    it(`${set}: every key its runtime code uses is in en-US and de`, () => {
      const dir = path.join(packageRoot, 'nodes', set);
      const used = fs
        .readdirSync(dir)
        .filter((f) => f.endsWith('.ts'))
        .flatMap((f) => keysUsed(fs.readFileSync(path.join(dir, f), 'utf8')));
      assert.ok(used.length > 0, `no catalog keys found in nodes/${set}/*.ts`);
      const missing: string[] = [];
      for (const lang of LANGS) {
        const catalog = JSON.parse(fs.readFileSync(path.join(dir, 'locales', lang, `${set}.json`), 'utf8')) as unknown;
        for (const key of used) if (typeof lookup(catalog, key) !== 'string') missing.push(`${lang}: ${key}`);
      }
      assert.deepStrictEqual(missing, []);
    });
  }
});
