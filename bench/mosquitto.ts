// A private Mosquitto for the benches: the system's `mosquitto` binary with its default configuration (only a
// listener on a free loopback port), started and stopped by the bench so no shared broker is touched.
import { ChildProcess, spawn } from 'child_process';
import fs from 'fs';
import net from 'net';
import os from 'os';
import path from 'path';

export interface PrivateMosquitto {
  url: string;
  host: string;
  port: number;
  /** The one line that differs from the default configuration, or '' for none. */
  tweak: string;
  version: string;
  stop(): Promise<void>;
}

/** A port nobody listens on right now (the kernel's choice for port 0, released again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The `mosquitto` binary on PATH or in the usual sbin directories, or undefined when there is none. */
export function mosquittoBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/usr/local/sbin'])) {
    const file = path.join(dir, 'mosquitto');
    if (dir && fs.existsSync(file)) return file;
  }
  return undefined;
}

/**
 * Starts `mosquitto -c FILE` where FILE holds a listener on a free 127.0.0.1 port, `allow_anonymous true` (a
 * listener without authentication refuses clients otherwise since 2.0) and `tweak` (e.g. 'set_tcp_nodelay true').
 * Resolves once the port accepts connections.
 */
export async function startMosquitto(tweak = ''): Promise<PrivateMosquitto> {
  const bin = mosquittoBinary();
  if (!bin) throw new Error('bench: no mosquitto binary (apt-get install mosquitto)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-bench-mosquitto-'));
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, 'mosquitto.conf');
    fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\n${tweak ? `${tweak}\n` : ''}`);
    let log = '';
    const child: ChildProcess = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    let exited = false;
    const exit = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));
    const deadline = Date.now() + 10000;
    while (!exited && Date.now() < deadline && !(await accepts(port))) await new Promise((r) => setTimeout(r, 25));
    if (!exited && Date.now() < deadline) {
      const version = /mosquitto version (\S+)/.exec(log)?.[1] ?? '';
      return {
        url: `mqtt://127.0.0.1:${port}`,
        host: '127.0.0.1',
        port,
        tweak,
        version,
        stop: async () => {
          if (!exited) child.kill('SIGTERM');
          await exit;
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (!exited) child.kill('SIGKILL');
    await exit;
    // Another program may have taken the port between the probe and mosquitto's bind: try another one.
    if (attempt >= 3) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`bench: mosquitto did not start: ${log.trim()}`);
    }
  }
}
