// Helpers shared by the suites that run a real Node-RED (palette install, browser): ports, polling, HTTP, processes.
import { ChildProcess, spawn, spawnSync } from 'child_process';
import net from 'net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `every` ms until it returns a value other than undefined/false, or throws after `ms`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 30000,
  every = 250,
): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(every);
  }
}

export interface HttpResult {
  status: number;
  type: string;
  text: string;
}

export async function get(url: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  const res = await fetch(url, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

export async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const res = await get(url, { Accept: 'application/json', ...headers });
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
  return JSON.parse(res.text) as T;
}

/** Deploys `flows` as a full deployment through the admin API (what the editor's Deploy button sends). */
export async function deployFlows(base: string, flows: unknown[]): Promise<void> {
  const res = await fetch(new URL('flows', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v2', 'Node-RED-Deployment-Type': 'full' },
    body: JSON.stringify({ flows }),
  });
  if (res.status !== 200 && res.status !== 204) throw new Error(`deploy: HTTP ${res.status} ${await res.text()}`);
}

/** Runs a command to completion, throwing with its output if it fails. */
export function run(cmd: string, args: string[], cwd: string, timeoutMs = 600000): string {
  const r = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, npm_config_fund: 'false', npm_config_audit: 'false', npm_config_update_notifier: 'false' },
  });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}) failed: ${r.error ?? ''}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

export interface RunningNodeRed {
  url: string;
  log(): string;
  stop(): Promise<void>;
}

/** Starts `node <nodeRedDir>/red.js` as a child on a free port and waits until the admin API answers. */
export async function startNodeRed(nodeRedDir: string, userDir: string, settingsFile: string): Promise<RunningNodeRed> {
  const port = await freePort();
  let output = '';
  const proc: ChildProcess = spawn(
    process.execPath,
    [
      require.resolve('node-red/red.js', { paths: [nodeRedDir] }),
      '--userDir',
      userDir,
      '--settings',
      settingsFile,
      '--port',
      String(port),
    ],
    { cwd: userDir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_RED_ENABLE_PROJECTS: 'false' } },
  );
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}/`;
  try {
    await waitFor(
      'Node-RED to start',
      async () => {
        if (proc.exitCode !== null) throw new Error(`Node-RED exited with ${proc.exitCode}:\n${output}`);
        return /Started flows/.test(output) && (await get(url + 'settings')).status === 200;
      },
      60000,
    );
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    log: () => output,
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), 15000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}
