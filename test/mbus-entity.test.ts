// Mbus entities on loopback multicast: discovery and loss, reliable delivery, retransmission, duplicates, RPC, second process.
import assert from 'assert';
import dgram from 'dgram';
import path from 'path';
import { fork } from 'child_process';
import { once } from 'events';
import {
  Address,
  Entity,
  EntityOptions,
  M,
  Message,
  RpcEndpoint,
  RpcError,
  encryptionKey,
  formatMessage,
  hashKey,
  mac,
  openDatagram,
  parseMessage,
  sealDatagram,
} from '../src/mbus';
import { poller } from './support/until';

const KEY = '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)';
const GROUP = '224.255.222.239';
const FAST = { helloMin: 200, helloFactor: 20 }; // quick discovery; peers are declared lost after 1.1 s of silence

const until = poller(5000, 10);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A peer that speaks the wire format by hand, so a test can withhold acks, repeat SeqNums or forge hashes. */
class RawPeer {
  readonly sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  readonly address = Address.parse(
    `(app:raw module:peer id:${process.pid}-9${Math.floor(Math.random() * 9999)}@127.0.0.1)`,
  );
  readonly received: Message[] = [];
  seq = 0;
  private readonly sec = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
  constructor(readonly port: number) {}
  async open(): Promise<void> {
    this.sock.bind({ port: this.port, exclusive: false });
    await once(this.sock, 'listening');
    this.sock.addMembership(GROUP, '127.0.0.1');
    this.sock.setMulticastInterface('127.0.0.1');
    this.sock.setMulticastTTL(0);
    this.sock.on('message', (d) => {
      try {
        const m = parseMessage(openDatagram(this.sec, d));
        if (!m.source.equals(this.address) && m.destination.isSubsetOf(this.address)) this.received.push(m);
      } catch {
        /* not for the raw peer */
      }
    });
  }
  sendRaw(data: Buffer): void {
    this.sock.send(data, this.port, GROUP);
  }
  send(
    destination: Address,
    commands: Message['commands'],
    opts: { reliable?: boolean; seq?: number; acks?: number[] } = {},
  ): number {
    const seq = opts.seq ?? this.seq++;
    const text = formatMessage({
      seq,
      timestamp: Date.now(),
      reliable: !!opts.reliable,
      source: this.address,
      destination,
      acks: opts.acks ?? [],
      commands,
    });
    this.sendRaw(sealDatagram(this.sec, text));
    return seq;
  }
  hello(): void {
    this.send(Address.empty, [{ name: 'mbus.hello', args: [] }]);
  }
  close(): void {
    this.sock.close();
  }
}

describe('mbus entities on loopback multicast', function () {
  const entities: Entity[] = [];
  const raws: RawPeer[] = [];
  let port = 0;

  async function entity(opts: Partial<EntityOptions> & { name: string }): Promise<Entity> {
    const e = new Entity({
      address: `(app:busbar-test module:${opts.name})`,
      port,
      security: { hash: hashKey(KEY) },
      timers: FAST,
      ...opts,
    });
    await e.start();
    port = e.port;
    entities.push(e);
    return e;
  }
  async function raw(): Promise<RawPeer> {
    const r = new RawPeer(port);
    await r.open();
    raws.push(r);
    return r;
  }
  async function pair(): Promise<[Entity, Entity]> {
    const a = await entity({ name: 'a' });
    const b = await entity({ name: 'b' });
    await until(
      () => a.entities.some((p) => p.address.equals(b.address)) && b.entities.some((p) => p.address.equals(a.address)),
      'discovery',
    );
    return [a, b];
  }

  beforeEach(() => {
    port = 0; // the first entity of each test picks a free port; the others join it
  });
  afterEach(async () => {
    for (const r of raws.splice(0)) r.close();
    await Promise.all(entities.splice(0).map((e) => e.stop()));
  });

  it('discover each other by hello and forget on bye', async () => {
    const a = await entity({ name: 'a' });
    const seen: string[] = [];
    a.on('new-entity', (addr) => seen.push(`new ${addr.get('module')}`));
    a.on('lost-entity', (addr, why) => seen.push(`lost ${addr.get('module')} ${why}`));
    const b = await entity({ name: 'b' });
    assert.ok(a.address.get('id')?.startsWith(`${process.pid}-`));
    assert.notStrictEqual(a.address.get('id'), b.address.get('id'));
    await until(() => seen.includes('new b'), 'new-entity');
    await b.stop();
    await until(() => seen.includes('lost b bye'), 'lost-entity on bye');
  });

  it('LINKLOCAL with an interface chosen by name (lo) works the same way', async () => {
    const a = await entity({ name: 'a', scope: 'LINKLOCAL', interface: 'lo' });
    const b = await entity({ name: 'b', scope: 'LINKLOCAL', interface: 'lo' });
    assert.ok(a.address.get('id')?.endsWith('@127.0.0.1'));
    await until(() => a.entities.some((p) => p.address.equals(b.address)), 'link-local discovery');
    await a.send(b.address, [{ name: 'test.ll', args: [] }], { reliable: true });
    await assert.rejects(entity({ name: 'c', scope: 'LINKLOCAL', interface: 'no-such-if0' }), /no IPv4 address/);
  });

  it('keeps buses on different groups with the same port apart', async () => {
    const a = await entity({ name: 'a' });
    const other = await entity({ name: 'other', group: '224.255.222.240' });
    const b = await entity({ name: 'b' });
    const other2 = await entity({ name: 'other2', group: '224.255.222.240' });
    await until(() => a.entities.some((p) => p.address.equals(b.address)), 'same-group discovery');
    // The other group's hellos are on the wire (its second entity heard them): only now is silence at `a` meaningful.
    await until(() => other2.entities.some((p) => p.address.equals(other.address)), 'the other group hearing itself');
    assert.ok(!a.entities.some((p) => p.address.equals(other.address)), 'a must not hear the other group');
    assert.ok(
      !other.entities.some((p) => p.address.equals(a.address) || p.address.equals(b.address)),
      'the other group hears nobody of ours',
    );
  });

  it('loses a silent entity after the RFC timeout', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    const lost: string[] = [];
    a.on('lost-entity', (addr, why) => lost.push(`${addr.get('app')} ${why}`));
    r.hello();
    await until(() => a.entities.length === 1, 'raw peer known');
    await until(() => lost.includes('raw timeout'), 'lost-entity on timeout', 8000);
  });

  it('delivers a reliable message once, acknowledged; the send completes on the ack', async () => {
    const [a, b] = await pair();
    const got: unknown[] = [];
    b.on('command', (c, m) => c.name === 'test.echo' && got.push([c.args, m.reliable, m.source.toString()]));
    await a.send(Address.parse(`(module:b)`), [{ name: 'test.echo', args: [M.str('hi "q"'), M.int(2n ** 60n)] }], {
      reliable: true,
    });
    assert.deepStrictEqual(got, [[[M.str('hi "q"'), M.int(2n ** 60n)], true, a.address.toString()]]);
  });

  it('refuses reliable sends to unknown or ambiguous destinations, and datagrams above the size limit', async () => {
    const [a] = await pair();
    await assert.rejects(
      a.send(Address.parse('(module:nobody)'), [{ name: 'x', args: [] }], { reliable: true }),
      /no known entity/,
    );
    await assert.rejects(a.send(Address.empty, [{ name: 'x', args: [] }], { reliable: true }), /not \(\) \(everyone\)/);
    await entity({ name: 'b' }); // a second (module:b)? no: a second app:busbar-test
    await until(() => a.entities.length === 2, 'third entity');
    await assert.rejects(
      a.send(Address.parse('(app:busbar-test)'), [{ name: 'x', args: [] }], { reliable: true }),
      /matches 2 entities/,
    );
    await assert.rejects(
      a.send(Address.empty, [{ name: 'x', args: [M.str('y'.repeat(1500))] }]),
      /more than the maximum datagram size of 1500 bytes/,
    );
  });

  it('retransmits with the same SeqNum when acks are withheld, then reports the failure', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    const failures: number[] = [];
    a.on('delivery-failed', (f) => failures.push(f.seq));
    r.hello();
    await until(() => a.entities.length === 1, 'raw known');
    await assert.rejects(
      a.send(r.address, [{ name: 'test.x', args: [] }], { reliable: true }),
      (e: { code?: string }) => e.code === 'EDELIVERY',
    );
    const tx = r.received.filter((m) => m.commands[0]?.name === 'test.x');
    assert.strictEqual(tx.length, 3, 'N_r = 3 transmissions');
    assert.ok(tx.every((m) => m.seq === tx[0].seq && m.reliable));
    assert.deepStrictEqual(failures, [tx[0].seq]);
  });

  it('completes when the ack comes with a retransmission', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    r.hello();
    await until(() => a.entities.length === 1, 'raw known');
    const p = a.send(r.address, [{ name: 'test.y', args: [] }], { reliable: true });
    const second = await until(() => r.received.filter((m) => m.commands[0]?.name === 'test.y')[1], 'a retransmission');
    r.send(a.address, [], { acks: [second.seq] });
    await p;
  });

  it('suppresses duplicates of a reliable message but acks every copy', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    const got: string[] = [];
    a.on('command', (c) => got.push(c.name));
    r.hello();
    await until(() => a.entities.length === 1, 'raw known');
    const seq = r.send(a.address, [{ name: 'test.once', args: [] }], { reliable: true });
    await until(() => r.received.some((m) => m.acks.includes(seq)), 'first ack');
    r.send(a.address, [{ name: 'test.once', args: [] }], { reliable: true, seq });
    await until(() => r.received.filter((m) => m.acks.includes(seq)).length === 2, 'second ack');
    // A reliable message to a mere subset of our address is neither processed nor acked.
    const partial = r.send(Address.parse('(module:a)'), [{ name: 'test.partial', args: [] }], { reliable: true });
    r.send(a.address, [{ name: 'test.after', args: [] }]);
    await until(() => got.includes('test.after'), 'later message');
    assert.deepStrictEqual(
      got.filter((n) => n.startsWith('test.')),
      ['test.once', 'test.after'],
    );
    assert.ok(!r.received.some((m) => m.acks.includes(partial)));
  });

  it('survives a listener that throws', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    const warnings: string[] = [];
    const got: string[] = [];
    a.on('warning', (e) => warnings.push(e.message));
    a.on('command', (c) => {
      if (c.name === 'test.boom') throw new Error('listener failed');
      got.push(c.name);
    });
    r.send(Address.empty, [{ name: 'test.boom', args: [] }]);
    r.send(Address.empty, [{ name: 'test.fine', args: [] }]);
    await until(() => got.includes('test.fine'), 'entity still receiving');
    assert.deepStrictEqual(warnings, ['listener failed']);
  });

  it('ignores a datagram with a bad HMAC', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    const got: string[] = [];
    const drops: string[] = [];
    a.on('command', (c) => got.push(c.name));
    a.on('drop', (why) => drops.push(why));
    const text = formatMessage({
      seq: 1,
      timestamp: Date.now(),
      reliable: false,
      source: r.address,
      destination: Address.empty,
      acks: [],
      commands: [{ name: 'test.forged', args: [] }],
    });
    const body = Buffer.from(text);
    const bad = Buffer.concat([Buffer.from(`${mac(hashKey('(HMAC-MD5-96,d3JvbmdrZXl3cm9u)'), body)}\n`), body]);
    r.sendRaw(bad);
    r.send(Address.empty, [{ name: 'test.genuine', args: [] }]);
    await until(() => got.includes('test.genuine'), 'genuine message');
    assert.deepStrictEqual(
      got.filter((n) => n.startsWith('test.')),
      ['test.genuine'],
    );
    assert.ok(drops.includes('hash'));
    assert.strictEqual(a.entities.length, 1);
  });

  it('answers mbus.ping with a hello, and surfaces waiting/go/quit as events', async () => {
    const a = await entity({ name: 'a', timers: { ...FAST, helloMin: 200 } });
    const r = await raw();
    const events: string[] = [];
    a.on('waiting', (c) => events.push(`waiting ${c}`));
    a.on('go', (c) => events.push(`go ${c}`));
    a.on('quit', () => events.push('quit'));
    r.send(Address.parse('(module:a)'), [{ name: 'mbus.ping', args: [] }]);
    await until(
      () => r.received.some((m) => m.commands[0]?.name === 'mbus.hello' && m.source.equals(a.address)),
      'hello',
    );
    r.send(Address.empty, [
      { name: 'mbus.waiting', args: [M.str('rz token')] },
      { name: 'mbus.go', args: [M.sym('tok')] },
      { name: 'mbus.quit', args: [] },
    ]);
    await until(() => events.length === 3, 'events');
    assert.deepStrictEqual(events, ['waiting rz token', 'go tok', 'quit']);
  });

  it('talks DES-encrypted to an entity with the same key and cannot be read without it', async () => {
    const des = { hash: hashKey(KEY), encryption: encryptionKey('(DES,ASNFZ4mrze8=)') };
    const a = await entity({ name: 'a', security: des });
    const b = await entity({ name: 'b', security: des });
    const r = await raw(); // knows the hash key but not the DES key
    const drops: string[] = [];
    r.sock.on('message', () => undefined);
    await until(() => a.entities.some((p) => p.address.equals(b.address)), 'encrypted discovery');
    const got: string[] = [];
    b.on('command', (c) => got.push(c.name));
    a.on('drop', (why) => drops.push(why));
    await a.send(b.address, [{ name: 'secret.thing', args: [M.str('x')] }], { reliable: true });
    assert.deepStrictEqual(
      got.filter((n) => n === 'secret.thing'),
      ['secret.thing'],
    );
    assert.ok(!r.received.some((m) => m.commands[0]?.name === 'secret.thing'));
    r.hello();
    await until(() => drops.includes('decrypt'), 'plaintext dropped by the encrypting entity');
  });

  it('RPC round-trips in both directions, UNKNOWN answers, and timeouts', async () => {
    const [a, b] = await pair();
    const ra = new RpcEndpoint(a);
    const rb = new RpcEndpoint(b, { answerUnknown: true });
    try {
      ra.setHandlers(
        new Map([
          [
            'math.sum',
            (call) =>
              void ra.reply(call, {
                arguments: [M.int(call.arguments.reduce((s, v) => s + (v.type === 'integer' ? v.value : 0n), 0n))],
              }),
          ],
        ]),
      );
      rb.setHandlers(
        new Map([
          [
            'tools.foo.bar',
            (call) =>
              setTimeout(
                () =>
                  void rb.reply(call, { success: false, result: 'NO_SUCH_P1', description: 'deferred', arguments: [] }),
                150,
              ),
          ],
        ]),
      );
      const r1 = await rb.call(Address.parse('(module:a)'), 'math.sum', [M.int(5), M.int(3)]);
      assert.deepStrictEqual(r1, {
        success: true,
        result: 'OK',
        description: '',
        arguments: [M.int(8)],
        rpcStatus: 'OK',
      });
      const r2 = await ra.call(b.address, 'tools.foo.bar', [M.str('gg')]);
      assert.deepStrictEqual(r2, {
        success: false,
        result: 'NO_SUCH_P1',
        description: 'deferred',
        arguments: [],
        rpcStatus: 'OK',
      });
      const r3 = await ra.call(b.address, 'no.such', []);
      assert.strictEqual(r3.result, 'UNKNOWN');
      assert.strictEqual(r3.rpcStatus, 'UNKNOWN');
      await assert.rejects(
        rb.call(a.address, 'no.such', [], 300),
        (e: RpcError) => e.code === 'ETIMEDOUT' && e.ret.result === 'TIMEOUT',
      );
    } finally {
      ra.close();
      rb.close();
    }
  });

  it('fails an RPC at once when the call cannot be delivered', async () => {
    const a = await entity({ name: 'a' });
    const r = await raw();
    r.hello();
    await until(() => a.entities.length === 1, 'raw known');
    const rpc = new RpcEndpoint(a);
    try {
      await assert.rejects(
        rpc.call(r.address, 'math.sum', [], 5000),
        (e: RpcError) => e.code === 'EDELIVERY' && e.ret.result === 'DELIVERY_FAILED',
      );
    } finally {
      rpc.close();
    }
  });

  it('talks to an entity in a second process (reliable echo and RPC)', async () => {
    const a = await entity({ name: 'a' });
    const child = fork(path.join(__dirname, 'fixtures', 'mbus-child.js'), [String(a.port), KEY], { stdio: 'inherit' });
    try {
      const [hello] = (await once(child, 'message')) as [{ address: string }];
      const childAddr = Address.parse(hello.address);
      assert.notStrictEqual(childAddr.get('id')?.split('-')[0], String(process.pid));
      await until(() => a.entities.some((p) => p.address.equals(childAddr)), 'child discovered');
      const replies: unknown[] = [];
      a.on('command', (c) => c.name === 'test.echo.reply' && replies.push(c.args));
      await a.send(
        Address.parse('(module:child)'),
        [{ name: 'test.echo', args: [M.float(2.5), M.data(Buffer.from([1, 2]))] }],
        { reliable: true },
      );
      await until(() => replies.length === 1, 'echo reply');
      assert.deepStrictEqual(replies[0], [M.float(2.5), M.data(Buffer.from([1, 2]))]);
      const rpc = new RpcEndpoint(a);
      try {
        const r = await rpc.call(childAddr, 'math.sum', [M.int(40), M.int(2)]);
        assert.deepStrictEqual(r.arguments, [M.int(42)]);
      } finally {
        rpc.close();
      }
      const lost = new Promise((res) => a.on('lost-entity', (addr, why) => addr.equals(childAddr) && res(why)));
      child.send('stop');
      assert.strictEqual(await lost, 'bye');
    } finally {
      if (child.exitCode === null) child.kill();
      await sleep(0);
    }
  });
});
