// TLS verification (on by default, explicit skip, CA passthrough) against the emulator over wss, and the emulator CLI.
import assert from 'assert';
import { execFileSync, spawn } from 'child_process';
import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { compileSelfDescription, MsbClient, MsbClientOptions, MsbEmulator } from '../src/msb';
import { poller } from './support/until';
import { skipBecause } from './support/skip';

const nodes = [
  require('../nodes/msb/msb-config'),
  require('../nodes/msb/msb-event-out'),
  require('@node-red/nodes/core/network/05-tls.js'),
];
helper.init(require.resolve('node-red'));

const UUID = '22222222-3333-4444-8555-666666666666';

const until = poller(8000, 10);

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
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
    } catch {
      skipBecause(this, 'no openssl to make a self-signed certificate');
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
      if (state === 'disconnected') detail = d?.detail;
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

describe('msb-config with a core tls-config node', function () {
  let dir: string;
  let cert: string;
  let key: string;
  let emulator: MsbEmulator;
  let url: string;

  before(async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-tlsnode-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=DNS:localhost,IP:127.0.0.1',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
    } catch {
      skipBecause(this, 'no openssl to make a self-signed certificate');
    }
    cert = fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8');
    key = fs.readFileSync(path.join(dir, 'key.pem'), 'utf8');
    await helper.startServer();
  });
  after(async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    await helper.stopServer();
  });
  beforeEach(async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 0 });
    ({ url } = await emulator.start({ port: 0, tls: { key, cert } }));
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.close();
  });

  const flow = (tlsId: string, verify: boolean) => [
    {
      id: tlsId,
      type: 'tls-config',
      cert: '',
      key: '',
      ca: '',
      verifyservercert: verify,
      servername: '',
      alpnprotocol: '',
    },
    {
      id: 'cfg',
      type: 'msb-config',
      name: 'tls service',
      uuid: UUID,
      url,
      sockJs: true,
      tls: tlsId,
      allowUnverifiedTls: false,
      autoReconnect: false,
      reconnectInterval: 3,
      eventCacheSize: 10,
      parameters: [],
    },
    {
      id: 'ev',
      type: 'msb-event-out',
      service: 'cfg',
      eventId: 'E',
      dataType: 'string',
      priority: 'LOW',
      cached: false,
    },
  ];

  it('passes the tls-config CA through and registers with verification on', async () => {
    await helper.load(nodes, flow('tls', true), { tls: { cadata: cert } });
    await until(() => emulator.services().has(UUID), 'registration over wss with the CA');
  });

  it('without the CA the same service is refused (verification stays on)', async () => {
    await helper.load(nodes, flow('tls', true), { tls: {} });
    const cfg = helper.getNode('cfg') as unknown as {
      warn: { getCalls(): Array<{ thisValue: unknown; args: unknown[] }> };
    };
    await until(
      () =>
        cfg.warn
          .getCalls()
          .some((c) => c.thisValue === cfg && /msb-config\.warn\.disconnected/.test(String(c.args[0]))),
      'the refusal warning',
    );
    assert.strictEqual(emulator.services().size, 0);
  });
});

describe('busbar-msb-emulator CLI', () => {
  it('starts on the requested port with the demo flows and serves a client', async () => {
    const cli = path.join(__dirname, '..', 'src', 'msb', 'emulator-cli.js');
    const child = spawn(process.execPath, [cli, '--port', '0', '--demo', '--quiet'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
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

  it('loads integration flows from --flows and routes with them', async () => {
    const cli = path.join(__dirname, '..', 'src', 'msb', 'emulator-cli.js');
    const file = path.join(os.tmpdir(), `busbar-msb-flows-${process.pid}.json`);
    const target = '33333333-4444-4555-8666-777777777777';
    fs.writeFileSync(
      file,
      JSON.stringify([
        {
          source: { uuid: UUID, eventId: 'GO' },
          target: { uuid: target, functionId: 'RUN' },
          mapping: [{ from: '/dataObject', to: '/speed' }],
        },
      ]),
    );
    const child = spawn(process.execPath, [cli, '--port', '0', '--flows', file, '--quiet'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const clients: MsbClient[] = [];
    try {
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      await until(() => /listening on ws:\/\/127\.0\.0\.1:\d+/.test(out), 'the listening line');
      assert.match(out, /1 integration flow\(s\)/);
      const url = /listening on (ws:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1] as string;
      const source = new MsbClient({ url, autoReconnect: false });
      source.setSelfDescription(
        compileSelfDescription(
          { uuid: UUID, name: 'source', serviceClass: 'Application' },
          [{ eventId: 'GO', dataFormat: { kind: 'simple', type: 'int32' } }],
          [],
        ),
      );
      const sink = new MsbClient({ url, autoReconnect: false });
      sink.setSelfDescription(
        compileSelfDescription(
          { uuid: target, name: 'sink', serviceClass: 'SmartObject' },
          [],
          [{ functionId: 'RUN', dataFormat: { kind: 'none' } }],
        ),
      );
      clients.push(source, sink);
      const calls: unknown[] = [];
      sink.on('call', (call) => calls.push(call.functionParameters));
      source.connect();
      sink.connect();
      await until(() => source.registered && sink.registered, 'both registered');
      source.publish({ eventId: 'GO', dataObject: 12 });
      await until(() => calls.length === 1, 'the routed call');
      assert.deepStrictEqual(calls[0], { speed: 12 });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fs.rmSync(file, { force: true });
    }
  });

  it('rejects unknown options', () => {
    const cli = path.join(__dirname, '..', 'src', 'msb', 'emulator-cli.js');
    assert.throws(() => execFileSync(process.execPath, [cli, '--bogus'], { stdio: 'pipe' }), /unknown option --bogus/);
  });
});
