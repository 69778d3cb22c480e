// `npm run bench [-- name…]`: runs bench/<name>.bench.ts files, keeps each result in bench/results/<name>.md,
// and assembles BENCHMARKS.md from every result present (so one bus can be re-measured without the others) followed
// by the static notes in bench/notes/*.md (explanations backed by one-off measurements such as a packet capture).
// `npm run bench -- --assemble` only reassembles BENCHMARKS.md from the stored results.
import fs from 'fs';
import os from 'os';
import path from 'path';

/** What every bench module exports: a Markdown section (starting with a `## ` heading) of measured figures. */
export type BenchModule = { run(): Promise<string> };

const root = path.join(__dirname, '..', '..');
const resultsDir = path.join(root, 'bench', 'results');
const notesDir = path.join(root, 'bench', 'notes');

function markdownIn(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8').trim());
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const only = args.filter((a) => !a.startsWith('--'));
  const names = args.includes('--assemble')
    ? []
    : fs
        .readdirSync(__dirname)
        .filter((f) => f.endsWith('.bench.js'))
        .map((f) => f.slice(0, -'.bench.js'.length))
        .filter((name) => only.length === 0 || only.includes(name));
  fs.mkdirSync(resultsDir, { recursive: true });
  for (const name of names) {
    process.stdout.write(`bench ${name} …\n`);
    const mod = (await import(path.join(__dirname, `${name}.bench.js`))) as BenchModule;
    const t0 = Date.now();
    const section = await mod.run();
    const took = Math.round((Date.now() - t0) / 1000);
    const load = os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ');
    const stamp = `_Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC with \`npm run bench -- ${name}\` (${took} s), Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, load average at the end ${load} (1 / 5 / 15 min)._\n`;
    fs.writeFileSync(path.join(resultsDir, `${name}.md`), `${section.trim()}\n\n${stamp}`);
    process.stdout.write(section + '\n');
  }
  const header =
    '# Benchmarks\n\nEvery figure is compared with a baseline measured side by side on the same machine in the same ' +
    'run (raw `ws`, the core Node-RED MQTT nodes, raw mqtt.js, raw `dgram`, a Node-RED without this package), in ' +
    'alternating rounds (baseline and candidate take turns, the order swapped every round, so load from other work ' +
    'hits both). Rows give min / **median** / max over the rounds, and ratios are taken per round before their min / ' +
    'median / max. The MQTT benches run on the embedded broker and on a private Mosquitto with its default ' +
    'configuration that the bench starts itself. Reproduce all of them with `npm run bench`, or some with ' +
    '`npm run bench -- <name>…` (names: the `bench/<name>.bench.ts` files).';
  fs.writeFileSync(
    path.join(root, 'BENCHMARKS.md'),
    [header, ...markdownIn(resultsDir), ...markdownIn(notesDir)].join('\n\n') + '\n',
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
