// `npm run bench [-- name…]`: runs bench/<name>.bench.ts files, keeps each result in bench/results/<name>.md,
// and assembles BENCHMARKS.md from every result present (so one bus can be re-measured without the others).
// `npm run bench -- --assemble` only reassembles BENCHMARKS.md from the stored results.
import fs from 'fs';
import os from 'os';
import path from 'path';

/** What every bench module exports: a Markdown section (starting with a `## ` heading) of measured figures. */
export type BenchModule = { run(): Promise<string> };

const root = path.join(__dirname, '..', '..');
const resultsDir = path.join(root, 'bench', 'results');

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
    const section = await mod.run();
    const stamp = `_Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench -- ${name}\`, Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}._\n`;
    fs.writeFileSync(path.join(resultsDir, `${name}.md`), `${section.trim()}\n\n${stamp}`);
    process.stdout.write(section + '\n');
  }
  const sections = fs
    .readdirSync(resultsDir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => fs.readFileSync(path.join(resultsDir, f), 'utf8').trim());
  const header =
    '# Benchmarks\n\nEvery figure is a ratio against a baseline run side by side in the same process, on the same ' +
    'machine, in the same run (raw `ws`, the core Node-RED MQTT nodes, raw `dgram`). Reproduce all of them with ' +
    '`npm run bench`, or one bus with `npm run bench -- <name>`.\n';
  fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), [header, ...sections].join('\n\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
