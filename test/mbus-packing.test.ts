// Mbus packing on loopback multicast: one turn's commands for one destination in one message, size split, acks, RPC.
import assert from 'assert';
import dgram from 'dgram';
import { once } from 'events';
import {
  Address,
  Command,
  Entity,
  EntityOptions,
  M,
  Message,
  RpcEndpoint,
  SecurityConfig,
  encryptionKey,
  formatMessage,
  hashKey,
  openDatagram,
  parseMessage,
  sealDatagram,
} from '../src/mbus';
import { poller } from './support/until';

const KEY = '(HMAC-MD5-96,MTIzNDU2Nzg5MDEy)';
const GROUP = '224.255.222.239';
const FAST = { helloMin: 200, helloFactor: 20 };
const SEC: SecurityConfig = { hash: hashKey(KEY), encryption: encryptionKey('(NOENCR)') };
const DES: SecurityConfig = { hash: hashKey(KEY), encryption: encryptionKey('(DES,ASNFZ4mrze8=)') };
const until = poller(10000, 10);

const cmd = (name: string, ...args: Command['args']): Command => ({ name, args });

/** A member of the bus written by hand: it sees every datagram on the group (from the bus port, so nobody unicasts to it). */
class Sniffer {
  readonly sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  readonly address = Address.parse(
    `(app:pack module:sniffer id:${process.pid}-7${Math.floor(Math.random() * 9999)}@127.0.0.1)`,
  );
  /** Every datagram it could open, with its size. */
  readonly received: Array<{ msg: Message; size: number }> = [];
  private seq = 0;
  constructor(
    readonly port: number,
    readonly sec: SecurityConfig = SEC,
  ) {}
  async open(): Promise<void> {
    this.sock.bind({ port: this.port, exclusive: false });
    await once(this.sock, 'listening');
    this.sock.addMembership(GROUP, '127.0.0.1');
    this.sock.setMulticastInterface('127.0.0.1');
    this.sock.setMulticastTTL(0);
    this.sock.on('message', (d) => {
      try {
        this.received.push({ msg: parseMessage(openDatagram(this.sec, d)), size: d.length });
      } catch {
        /* not readable with our key */
      }
    });
  }
  /** Messages from `source` that carry commands (hellos left out). */
  from(source: Address): Message[] {
    return this.received
      .map((r) => r.msg)
      .filter((m) => m.source.equals(source) && m.commands.length > 0 && m.commands[0].name !== 'mbus.hello');
  }
  send(
    destination: Address,
    commands: Command[],
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
    this.sock.send(sealDatagram(this.sec, text), this.port, GROUP);
    return seq;
  }
  hello(): void {
    this.send(Address.empty, [cmd('mbus.hello')]);
  }
  close(): void {
    this.sock.close();
  }
}

const names = (m: Message): string[] => m.commands.map((c) => c.name);

describe('mbus packing', function () {
  const entities: Entity[] = [];
  const sniffers: Sniffer[] = [];
  let port = 0;

  async function entity(opts: Partial<EntityOptions> & { name: string }): Promise<Entity> {
    const e = new Entity({ address: `(app:pack module:${opts.name})`, port, security: SEC, timers: FAST, ...opts });
    await e.start();
    port = e.port;
    entities.push(e);
    return e;
  }
  async function sniffer(sec?: SecurityConfig): Promise<Sniffer> {
    const s = new Sniffer(port, sec);
    await s.open();
    sniffers.push(s);
    return s;
  }
  /** An entity that knows the sniffer as a peer (it said hello). */
  async function withPeer(
    opts: Partial<EntityOptions> = {},
    sec?: SecurityConfig,
  ): Promise<{ a: Entity; peer: Sniffer }> {
    const a = await entity({ name: 'a', ...opts });
    const peer = await sniffer(sec);
    peer.hello();
    await until(() => a.entities.some((p) => p.address.equals(peer.address)), 'the sniffer is a known peer');
    return { a, peer };
  }

  beforeEach(() => {
    port = 0;
  });
  afterEach(async () => {
    for (const s of sniffers.splice(0)) s.close();
    await Promise.all(entities.splice(0).map((e) => e.stop()));
  });

  it("sends one turn's commands for one destination as one message, in order; every caller gets its SeqNum", async () => {
    const { a, peer } = await withPeer();
    const sent = [1, 2, 3, 4, 5].map((i) => a.send(peer.address, [cmd(`test.n${i}`, M.int(i))]));
    const seqs = await Promise.all(sent);
    const msgs = await until(() => peer.from(a.address).length >= 1 && peer.from(a.address), 'the packed message');
    assert.strictEqual(msgs.length, 1);
    assert.deepStrictEqual(names(msgs[0]), ['test.n1', 'test.n2', 'test.n3', 'test.n4', 'test.n5']);
    assert.deepStrictEqual(seqs, [msgs[0].seq, msgs[0].seq, msgs[0].seq, msgs[0].seq, msgs[0].seq]);
    // A later turn is a later message.
    await a.send(peer.address, [cmd('test.later')]);
    const later = await until(() => peer.from(a.address)[1], 'the next message');
    assert.deepStrictEqual(names(later), ['test.later']);
    assert.ok(later.seq > msgs[0].seq);
  });

  it('an entity receives a packed message as its commands, in order (also between two entities)', async () => {
    const a = await entity({ name: 'a', sendUnicast: false });
    const b = await entity({ name: 'b' });
    const peer = await sniffer();
    await until(() => a.entities.some((p) => p.address.equals(b.address)), 'discovery');
    const got: string[] = [];
    b.on('command', (c, m) => c.name.startsWith('test.') && got.push(`${c.name}@${m.seq}`));
    await Promise.all([1, 2, 3].map((i) => a.send(b.address, [cmd(`test.e${i}`)])));
    await until(() => got.length === 3, 'three commands at b');
    const seq = peer.from(a.address)[0].seq;
    assert.deepStrictEqual(got, [`test.e1@${seq}`, `test.e2@${seq}`, `test.e3@${seq}`]);
    // A hand-made message with three commands, as RFC 3259 §5 allows.
    peer.hello();
    peer.send(b.address, [cmd('test.x', M.str('one')), cmd('test.y', M.list(M.int(2))), cmd('test.z')]);
    await until(() => got.length === 6, 'the hand-made multi-command message');
    assert.deepStrictEqual(
      got.slice(3).map((g) => g.split('@')[0]),
      ['test.x', 'test.y', 'test.z'],
    );
  });

  it('receives a reliable multi-command message: delivered once in order, acknowledged once, a retransmission re-acked only', async () => {
    const { a, peer } = await withPeer();
    const got: string[] = [];
    a.on('command', (c) => c.name.startsWith('test.') && got.push(c.name));
    const commands = [cmd('test.r1'), cmd('test.r2'), cmd('test.r3')];
    const seq = peer.send(a.address, commands, { reliable: true });
    const acks = (): Message[] =>
      peer.received.map((r) => r.msg).filter((m) => m.source.equals(a.address) && m.acks.includes(seq));
    await until(() => acks().length === 1, 'the ack');
    assert.deepStrictEqual(got, ['test.r1', 'test.r2', 'test.r3']);
    peer.send(a.address, commands, { reliable: true, seq });
    await until(() => acks().length === 2, 'the ack of the retransmission');
    assert.deepStrictEqual(got, ['test.r1', 'test.r2', 'test.r3'], 'not delivered again');
  });

  for (const [label, sec] of [
    ['plain', SEC],
    ['DES-encrypted (padding counts)', DES],
  ] as const) {
    it(`splits at the datagram limit, ${label}: every datagram within it, all commands in order; one too big fails alone`, async () => {
      const { a, peer } = await withPeer({ maxDatagram: 400, security: sec }, sec);
      const big = cmd('test.big', M.str('x'.repeat(500)));
      const outcomes = Array.from({ length: 20 }, (_, i) =>
        i === 7 ? big : cmd('test.n', M.int(i), M.str('payload-'.repeat(3))),
      ).map((c) =>
        a.send(peer.address, [c]).then(
          () => 'sent',
          (e: { code?: string }) => e.code,
        ),
      );
      const results = await Promise.all(outcomes);
      assert.deepStrictEqual(
        results.filter((r) => r !== 'sent'),
        ['ETOOBIG'],
      );
      assert.strictEqual(results[7], 'ETOOBIG');
      const msgs = await until(() => {
        const m = peer.from(a.address);
        return m.reduce((n, x) => n + x.commands.length, 0) >= 19 && m;
      }, 'all 19 commands');
      assert.ok(msgs.length >= 3, `split into ${msgs.length} messages`);
      const sizes = peer.received.filter((r) => r.msg.source.equals(a.address)).map((r) => r.size);
      assert.ok(Math.max(...sizes) <= 400, `largest datagram ${Math.max(...sizes)} bytes`);
      const order = msgs.flatMap((m) => m.commands.map((c) => Number((c.args[0] as { value: bigint }).value)));
      assert.deepStrictEqual(order, [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    });
  }

  it('a packed reliable message is acknowledged once and settles every caller with its SeqNum', async () => {
    const { a, peer } = await withPeer({ timers: { ...FAST, retransmit: 300 } });
    const sent = [1, 2, 3, 4].map((i) => a.send(peer.address, [cmd(`test.r${i}`)], { reliable: true }));
    const m = await until(() => peer.from(a.address)[0], 'the reliable message');
    assert.strictEqual(m.reliable, true);
    assert.deepStrictEqual(names(m), ['test.r1', 'test.r2', 'test.r3', 'test.r4']);
    peer.send(a.address, [], { acks: [m.seq] });
    assert.deepStrictEqual(await Promise.all(sent), [m.seq, m.seq, m.seq, m.seq]);
  });

  it('a lost packed reliable message is retransmitted whole (same SeqNum, same commands); unanswered, every caller fails once', async () => {
    const { a, peer } = await withPeer({ timers: { ...FAST, retransmit: 300 } });
    const sent = [1, 2, 3].map((i) => a.send(peer.address, [cmd(`test.l${i}`)], { reliable: true }));
    const [first, second] = await until(
      () => peer.from(a.address).length >= 2 && peer.from(a.address),
      'a retransmission',
    );
    assert.strictEqual(second.seq, first.seq);
    assert.deepStrictEqual(names(second), names(first));
    assert.deepStrictEqual(names(first), ['test.l1', 'test.l2', 'test.l3']);
    peer.send(a.address, [], { acks: [first.seq] });
    assert.deepStrictEqual(await Promise.all(sent), [first.seq, first.seq, first.seq]);

    // Never acknowledged: one delivery-failed naming all commands, and each caller rejected.
    const failures: string[][] = [];
    a.on('delivery-failed', (f) => failures.push(f.commands.map((c) => c.name)));
    const doomed = [1, 2].map((i) =>
      a.send(peer.address, [cmd(`test.d${i}`)], { reliable: true }).catch((e: { code?: string }) => e.code),
    );
    assert.deepStrictEqual(await Promise.all(doomed), ['EDELIVERY', 'EDELIVERY']);
    assert.deepStrictEqual(failures, [['test.d1', 'test.d2']]);
    const tries = peer.from(a.address).filter((m) => m.commands[0].name === 'test.d1');
    assert.strictEqual(tries.length, 3, 'N_r transmissions of the one message');
  });

  it('reliable and unreliable are never mixed in one message; each kind keeps its order', async () => {
    const { a, peer } = await withPeer();
    const sent = [
      a.send(peer.address, [cmd('test.u1')]),
      a.send(peer.address, [cmd('test.r1')], { reliable: true }),
      a.send(peer.address, [cmd('test.u2')]),
      a.send(peer.address, [cmd('test.r2')], { reliable: true }),
    ];
    const msgs = await until(() => peer.from(a.address).length >= 2 && peer.from(a.address), 'both messages');
    const u = msgs.find((m) => !m.reliable);
    const r = msgs.find((m) => m.reliable);
    assert.ok(u && r);
    assert.deepStrictEqual(names(u), ['test.u1', 'test.u2']);
    assert.deepStrictEqual(names(r), ['test.r1', 'test.r2']);
    peer.send(a.address, [], { acks: [r.seq] });
    await Promise.all(sent);
  });

  it('RPC still works: calls issued in one turn each go alone and all return; the returns go alone too', async () => {
    const a = await entity({ name: 'a', sendUnicast: false });
    const b = await entity({ name: 'b', sendUnicast: false });
    const peer = await sniffer();
    await until(
      () => a.entities.some((p) => p.address.equals(b.address)) && b.entities.some((p) => p.address.equals(a.address)),
      'discovery',
    );
    const caller = new RpcEndpoint(a);
    const callee = new RpcEndpoint(b);
    try {
      callee.setHandlers(
        new Map([
          [
            'math.sum',
            (call) => {
              const sum = call.arguments.reduce((s, v) => s + (v.type === 'integer' ? v.value : 0n), 0n);
              callee.reply(call, { arguments: [M.int(sum)] }).catch(() => undefined);
            },
          ],
        ]),
      );
      const returns = await Promise.all(
        [1, 2, 3].map((i) => caller.call(b.address, 'math.sum', [M.int(i), M.int(10)])),
      );
      assert.deepStrictEqual(
        returns.map((r) => (r.arguments[0] as { value: bigint }).value),
        [11n, 12n, 13n],
      );
      const rpc = (): Message[] =>
        [...peer.from(a.address), ...peer.from(b.address)].filter((m) =>
          m.commands.some((c) => c.name.startsWith('math.sum')),
        );
      const rpcMessages = await until(() => rpc().length >= 6 && rpc(), 'three calls and three returns at the sniffer');
      for (const m of rpcMessages) assert.strictEqual(m.commands.length, 1, `${names(m).join(',')} alone`);
    } finally {
      caller.close();
      callee.close();
    }
  });

  it('hello and bye go alone; what was handed over before stop() goes out before the bye', async () => {
    const { a, peer } = await withPeer({ sendUnicast: false });
    void a.send(Address.empty, [cmd('test.before1')]);
    void a.send(Address.empty, [cmd('test.before2')]);
    await a.stop();
    const all = await until(() => {
      const m = peer.received.map((r) => r.msg).filter((x) => x.source.equals(a.address));
      return m.some((x) => x.commands.some((c) => c.name === 'mbus.bye')) && m;
    }, 'the bye');
    for (const m of all)
      if (m.commands.some((c) => c.name === 'mbus.hello' || c.name === 'mbus.bye'))
        assert.strictEqual(m.commands.length, 1, `${names(m)} alone`);
    const order = all.flatMap(names).filter((n) => n !== 'mbus.hello');
    assert.deepStrictEqual(order, ['test.before1', 'test.before2', 'mbus.bye']);
  });

  it('with packing off, every send is a message of its own', async () => {
    const { a, peer } = await withPeer({ pack: false });
    await Promise.all([1, 2, 3].map((i) => a.send(peer.address, [cmd(`test.s${i}`)])));
    const msgs = await until(() => peer.from(a.address).length >= 3 && peer.from(a.address), 'three messages');
    assert.deepStrictEqual(msgs.map(names), [['test.s1'], ['test.s2'], ['test.s3']]);
  });
});
