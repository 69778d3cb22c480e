// TLS verification (on by default, explicit skip, CA passthrough) against the emulator over wss, and the emulator CLI.
import assert from 'assert';
import { execFileSync, spawn } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { compileSelfDescription, MsbClient, MsbClientOptions, MsbEmulator } from '../src/msb';

const UUID = '22222222-3333-4444-8555-666666666666';

async function until(check: () => boolean, what: string, timeout = 8000): Promise<void> {
  const end = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function client(opts: MsbClientOptions): MsbClient {
  const c = new MsbClient({ autoReconnect: false, ...opts });
  c.setSelfDescription(compileSelfDescription({ uuid: UUID, name: 'tls', serviceClass: 'Application' }, [], []));
  return c;
}

describe('msb TLS', function () {
  let dir: string;
  let cert: string;
  let key: string;
  let emulator: MsbEmulator;
  let url: string;
  const clients: MsbClient[] = [];

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    } catch {
      this.skip(); // no openssl to make a self-signed certificate
    }
    cert = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    key = fs.readFileSync(path.join(dir, 'key.pem'), 'utf8');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  beforeEach(async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 0 });
    ({ url } = await emulator.start({ port: 0, tls: { key, cert } }));
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await emulator.close();
  });

  it('refuses a self-signed certificate by default', async () => {
    assert.match(url, /^wss:\/\//);
    const c = client({ url });
    clients.push(c);
    let detail: string | undefined;
    c.on('state', (state, d) => {
      if (state === 'disconnected') detail = d;
    });
    c.connect();
    await until(() => detail !== undefined, 'the refusal');
    assert.match(String(detail), /SELF_SIGNED|self.signed|certificate/i);
    assert.strictEqual(emulator.services().size, 0);
  });

  it('connects with the explicit skip switch, or with the CA passed through and verification on', async () => {
    const skip = client({ url, allowUnverifiedTls: true });
    clients.push(skip);
    skip.connect();
    await until(() => skip.registered, 'registration without verification');
    await skip.close();
    const verified = client({ url: url.replace('wss:', 'https:'), tls: { ca: cert } });
    clients.push(verified);
    verified.connect();
    await until(() => verified.registered, 'registration with the CA');
  });
});

describe('busbar-msb-emulator CLI', () => {
  it('starts on the requested port with the demo flows and serves a client', async () => {
    const cli = path.join(__dirname, '..', 'src', 'msb', 'emulator-cli.js');
    const child = spawn(process.execPath, [cli, '--port', '0', '--demo', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await until(() => /listening on ws:\/\/127\.0\.0\.1:\d+/.test(out), 'the listening line');
      assert.match(out, /2 integration flow\(s\)/);
      const url = /listening on (ws:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] as string;
      const c = client({ url });
      c.connect();
      await until(() => c.registered, 'registration with the CLI emulator');
      await c.close();
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });

  it('rejects unknown options', () => {
    const cli = path.join(__dirname, '..', 'src', 'msb', 'emulator-cli.js');
    assert.throws(() => execFileSync(process.execPath, [cli, '--bogus'], { stdio: 'pipe' }), /unknown option --bogus/);
  });
});
