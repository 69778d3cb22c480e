// Mbus codec and security: the spec §8 known-answer vectors, the negative cases, and a bounded parser fuzz.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import vectors from './fixtures/mbus-vectors.json';
import {
  RejectedMessage,
  Address,
  M,
  MValue,
  argsFromPlain,
  decrypt,
  encrypt,
  encryptionKey,
  formatFloat,
  formatMessage,
  formatValue,
  hashKey,
  mac,
  openDatagram,
  parseKeyEntry,
  parseMbusFile,
  parseMessage,
  sealDatagram,
  SecurityConfig,
  toPlain,
  DatagramError,
  fromPlain,
  desEngineInUse,
  setDesEngine,
  loadMbusFile,
  helloInterval,
  deadAfter,
  retransmitSchedule,
  DEFAULT_TIMERS,
} from '../src/mbus';
import { desCbc } from '../src/mbus/des';
import { mulberry32 } from './support/random';
import { buildCall, buildReturn, readCall, readReturn } from '../src/mbus/rpc';

const KEYS: Record<string, string> = { K1: 'MTIzNDU2Nzg5MDEy', K2: 'MTIzMTU2MTg5MTEy' };
const NOENCR = encryptionKey('(NOENCR)');

function sec(v: { key: string; alg?: string }): SecurityConfig {
  const alg = v.alg === 'sha1' ? 'HMAC-SHA1-96' : 'HMAC-MD5-96';
  return { hash: hashKey(`(${alg},${KEYS[v.key]})`), encryption: NOENCR };
}

function dropReason(s: SecurityConfig, d: Buffer): string {
  try {
    parseMessage(openDatagram(s, d));
  } catch (err) {
    return err instanceof DatagramError ? err.reason : ((err as { code?: string }).code ?? 'other');
  }
  return 'accepted';
}

describe('mbus codec: spec §8 known-answer vectors', () => {
  for (const v of vectors as Array<{ id: string; key: string; alg?: string; datagram: string }>) {
    it(`${v.id}: hash verifies and the message parses; re-serialized it parses to the same`, () => {
      const d = Buffer.from(v.datagram, 'latin1');
      const s = sec(v);
      const body = d.subarray(17);
      assert.strictEqual(mac(s.hash, body), v.datagram.slice(0, 16));
      const msg = parseMessage(openDatagram(s, d));
      assert.ok(msg.source.get('id'), 'source has an id');
      const again = parseMessage(formatMessage(msg));
      assert.deepStrictEqual(again, msg);
    });
  }

  const byId = (prefix: string): { key: string; datagram: string; alg?: string } =>
    (vectors as Array<{ id: string; key: string; datagram: string }>).find((v) => v.id.startsWith(prefix))!;
  const parse = (prefix: string) => {
    const v = byId(prefix);
    return parseMessage(openDatagram(sec(v), Buffer.from(v.datagram, 'latin1')));
  };

  it('V-S1, V-S3, V-S4 are byte-for-byte what we emit', () => {
    for (const id of ['V-S1', 'V-S3', 'V-S4']) {
      const v = byId(id);
      const msg = parseMessage(v.datagram.slice(17));
      assert.strictEqual(sealDatagram(sec(v), formatMessage(msg)).toString('latin1'), v.datagram, id);
    }
  });

  it('V-U1: UCL %6d padding in the header', () => {
    const m = parse('V-U1');
    assert.strictEqual(m.seq, 1);
    assert.strictEqual(m.timestamp, 1795364669016);
    assert.strictEqual(m.reliable, false);
    assert.strictEqual(m.source.toString(), '(app:ucltest module:peer id:4711-1@127.0.0.1)');
    assert.strictEqual(m.destination.size, 0);
    assert.deepStrictEqual(m.commands, [{ name: 'mbus.hello', args: [] }]);
  });

  it('V-U2: every value type', () => {
    const [c] = parse('V-U2').commands;
    assert.strictEqual(c.name, 'test.tick');
    assert.deepStrictEqual(c.args, [
      M.str('hello world'),
      M.int(42),
      M.float(3.5),
      M.sym('sym_bol'),
      M.list(M.int(1), M.int(2)),
      M.data(Buffer.from([0, 1, 2])),
    ]);
    assert.strictEqual(formatValue(M.list(...c.args)), '("hello world" 42 3.5 sym_bol (1 2 ) <AAEC> )');
  });

  it('V-U3: bye', () => assert.strictEqual(parse('V-U3').commands[0].name, 'mbus.bye'));

  it('V-U4: UCL `\\ ` escapes decode to plain spaces and quotes', () => {
    const c = parse('V-U4').commands[0];
    assert.deepStrictEqual(c, { name: 'mbus.waiting', args: [M.str('rz token "q"')] });
  });

  it('V-N1/V-U6: RFC escapes, negative float, nested list', () => {
    for (const id of ['V-N1', 'V-U6']) {
      const m = parse(id);
      assert.deepStrictEqual(m.commands[0].args, [
        M.str('hi "q" back\\slash'),
        M.int(7),
        M.float(-1.5),
        M.list(M.sym('a'), M.str('b'), M.list(M.int(1), M.int(2))),
      ]);
    }
    assert.strictEqual(parse('V-N1').reliable, true);
  });

  it('V-U5: a header-only ack with UCL-padded AckList', () => {
    const m = parse('V-U5');
    assert.deepStrictEqual(m.acks, [1]);
    assert.deepStrictEqual(m.commands, []);
  });

  it('V-G1: libgmbus `mbus.hello()` and trailing spaces in addresses', () => {
    const m = parse('V-G1');
    assert.strictEqual(m.commands[0].name, 'mbus.hello');
    assert.ok(Address.parse('(app:test module:server id:15776-0@192.0.2.2)').equals(m.source));
  });

  it('V-G2/V-G3/V-D1/V-D2: guidelines RPC call and return, piggy-backed ack', () => {
    const g2 = parse('V-G2');
    const call = readCall(g2.commands[0], g2)!;
    assert.strictEqual(call.id, '0');
    assert.deepStrictEqual(call.arguments, [M.int(5), M.int(3)]);
    const g3 = parse('V-G3');
    assert.deepStrictEqual(g3.acks, [1]);
    const ret = readReturn(g3.commands[0])!;
    assert.deepStrictEqual(ret, {
      procedure: 'math.sum',
      id: '0',
      ret: { success: true, result: 'OK', description: '', arguments: [M.int(8)], rpcStatus: 'OK' },
    });
    const d1 = parse('V-D1');
    assert.deepStrictEqual(readCall(d1.commands[0], d1)!.arguments, [
      M.str('gg'),
      M.int(17),
      M.list(M.str('a'), M.str('b')),
    ]);
    const d2 = readReturn(parse('V-D2').commands[0])!;
    assert.deepStrictEqual(d2.ret, {
      success: true,
      result: 'BAR_COMPLETED',
      description: 'Success!',
      arguments: [M.int(1)],
      rpcStatus: 'OK',
    });
  });

  it('our RPC call and return are libgmbus-shaped (spaced lists, String meta)', () => {
    // Byte-identical to the captured libgmbus traffic (V-G2/V-G3) apart from the space before `(` UCL needs.
    const call = formatMessage({
      seq: 1,
      timestamp: 5,
      reliable: true,
      source: Address.parse('(a:b)'),
      destination: Address.parse('(c:d)'),
      acks: [],
      commands: [buildCall('math.sum', '0', [M.int(5), M.int(3)])],
    });
    assert.strictEqual(call.split('\n')[1], 'math.sum ((("ID" "0" ) ("RPC-TYPE" "UNICAST" ) ) (5 3 ) )');
    const r = formatValue(M.list(...buildReturn('math.sum', '0', { arguments: [M.int(8)] }).args));
    assert.strictEqual(r, '((("ID" "0" ) ("RPC-STATUS" "OK" ) ) ((OK OK "" ) (8 ) ) )');
  });

  it('V-S2: no final LF is still a message (the MAC covers exactly what is there)', () => {
    assert.strictEqual(parse('V-S2').commands[0].name, 'mbus.hello');
  });

  it('V-DES: UCL DES-CBC capture decrypts (zero IV, zero padding) and re-encrypts to the same bytes', () => {
    const ct = Buffer.from(
      'e34159a6489ea7fb5720ad38b338fe2f01be76067d6c0a1fa6e50ca97e5f31d34232fc63f95ba0e8f54354807f5ac1a70c348b7ae8a37a35c3f84e6825d05bff621be15c544c7d4daab9ec1692e879e4c8851545a13610bed49142cd5abdc1a28e3cfe384b3478a0',
      'hex',
    );
    const s: SecurityConfig = { hash: hashKey(KEYS.K1), encryption: encryptionKey('(DES,ASNFZ4mrze8=)') };
    const d = Buffer.concat([Buffer.from('jVoS7/f91+0acP/z\n'), ct]);
    const text = openDatagram(s, d);
    assert.strictEqual(
      text,
      'mbus/1.0      1 1795364794000 U (app:ucltest module:peer id:4711-1@127.0.0.1) () ()\nmbus.hello ()\n',
    );
    assert.deepStrictEqual(encrypt(s.encryption, Buffer.from(text)), ct);
    assert.strictEqual(decrypt(s.encryption, ct).length, 98);
  });

  it('classic DES vector (key 0123456789abcdef, "Now is t")', () => {
    const k = encryptionKey(`(DES,${Buffer.from('0123456789abcdef', 'hex').toString('base64')})`);
    assert.strictEqual(encrypt(k, Buffer.from('Now is t')).toString('hex'), '3fa40e8a984d4815');
  });

  it('the plain TypeScript DES gives the same answers (classic vector, V-DES round trip)', () => {
    const before = desEngineInUse();
    try {
      setDesEngine('typescript');
      assert.strictEqual(
        desCbc(Buffer.from('0123456789abcdef', 'hex'), Buffer.alloc(8), Buffer.from('Now is t'), false).toString('hex'),
        '3fa40e8a984d4815',
      );
      const ct = Buffer.from(
        'e34159a6489ea7fb5720ad38b338fe2f01be76067d6c0a1fa6e50ca97e5f31d34232fc63f95ba0e8f54354807f5ac1a70c348b7ae8a37a35c3f84e6825d05bff621be15c544c7d4daab9ec1692e879e4c8851545a13610bed49142cd5abdc1a28e3cfe384b3478a0',
        'hex',
      );
      const des = encryptionKey('(DES,ASNFZ4mrze8=)');
      const plain = decrypt(des, ct);
      assert.strictEqual(
        plain.toString(),
        'mbus/1.0      1 1795364794000 U (app:ucltest module:peer id:4711-1@127.0.0.1) () ()\nmbus.hello ()\n',
      );
      assert.deepStrictEqual(encrypt(des, plain), ct);
    } finally {
      setDesEngine(before);
    }
    assert.notStrictEqual(desEngineInUse(), undefined);
  });

  it('AES-128-CBC round trip, MAC over the ciphertext', () => {
    const s: SecurityConfig = {
      hash: hashKey(KEYS.K1),
      encryption: encryptionKey(`(AES,${Buffer.alloc(16, 7).toString('base64')})`),
    };
    const text = 'mbus/1.0 0 1 U (app:x id:1-1@127.0.0.1) () ()\nmbus.hello ()\n';
    const d = sealDatagram(s, text);
    assert.strictEqual((d.length - 17) % 16, 0);
    assert.strictEqual(openDatagram(s, d), text);
  });
});

describe('mbus codec: negative cases', () => {
  const s = sec({ key: 'K1' });
  const good = (vectors as Array<{ id: string; datagram: string }>).find((v) => v.id.startsWith('V-U2'))!.datagram;

  it('a flipped hash character is dropped as "hash"', () => {
    const bad = (good[0] === 'Q' ? 'R' : 'Q') + good.slice(1);
    assert.strictEqual(dropReason(s, Buffer.from(bad, 'latin1')), 'hash');
  });
  it('a flipped body byte is dropped as "hash"', () => {
    assert.strictEqual(dropReason(s, Buffer.from(good.replace('42', '43'), 'latin1')), 'hash');
  });
  it('a missing hash line is dropped', () => {
    assert.strictEqual(dropReason(s, Buffer.from(good.slice(17), 'latin1')), 'short');
  });
  it('the wrong key is dropped', () => {
    assert.strictEqual(dropReason(sec({ key: 'K2' }), Buffer.from(good, 'latin1')), 'hash');
  });
  it('a decrypted body that does not start with mbus/ is dropped', () => {
    const e: SecurityConfig = { hash: hashKey(KEYS.K1), encryption: encryptionKey('(DES,ASNFZ4mrze8=)') };
    const body = encrypt(e.encryption, Buffer.from('hello there, not an mbus message'));
    const d = Buffer.concat([Buffer.from(`${mac(e.hash, body)}\n`), body]);
    assert.strictEqual(dropReason(e, d), 'decrypt');
    const odd = Buffer.concat([Buffer.from(`${mac(e.hash, Buffer.from('abc'))}\n`), Buffer.from('abc')]);
    assert.strictEqual(dropReason(e, odd), 'decrypt');
  });
  it('CRLF line ends and a CRLF after the hash are accepted', () => {
    const text = 'mbus/1.0 3 1000 U (app:x id:1-1@h) () (1  2)\r\nfoo.bar ("a(b" 1)\r\n';
    const b = Buffer.from(text);
    const d = Buffer.concat([Buffer.from(`${mac(s.hash, b)}\r\n`), b]);
    const m = parseMessage(openDatagram(s, d));
    assert.deepStrictEqual(m.acks, [1, 2]);
    assert.deepStrictEqual(m.commands[0].args, [M.str('a(b'), M.int(1)]);
  });
  it('invalid UTF-8 inside the body is dropped as "utf8"', () => {
    const b = Buffer.concat([
      Buffer.from('mbus/1.0 3 1000 U (app:x id:1-1@h) () ()\nfoo ("'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('")\n'),
    ]);
    assert.strictEqual(dropReason(s, Buffer.concat([Buffer.from(`${mac(s.hash, b)}\n`), b])), 'utf8');
  });
  for (const bad of [
    'mbus/2.0 1 1 U (a:b) () ()\n',
    'mbus/1.0 x 1 U (a:b) () ()\n',
    'mbus/1.0 1 1 X (a:b) () ()\n',
    'mbus/1.0 1 1 U (a:b () ()\n',
    'mbus/1.0 1 1 U (a:b) () (1 x)\n',
    'mbus/1.0 1 1 U (a:b a:c) () ()\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo ("unterminated)\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo (1 2\n',
    'mbus/1.0 1 1 U (a:b) () ()\n1foo ()\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo (<A!A=>)\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo (1.2.3)\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo () junk\n',
    'mbus/1.0 1 1 U (a:b) () ()\nfoo ' + '('.repeat(100) + ')'.repeat(100) + '\n',
  ]) {
    it(`rejects ${JSON.stringify(bad.slice(0, 60))}`, () => {
      assert.throws(
        () => parseMessage(bad),
        (e: { code?: string }) => e.code === 'EPARSE' || e.code === 'EMBUS',
      );
    });
  }
});

describe('mbus codec: values', () => {
  it('integers beyond 2^53 stay exact as BigInt', () => {
    const m = parseMessage('mbus/1.0 1 1 U (a:b) () ()\nx (18446744073709551615 -9007199254740993 5)\n');
    const plain = m.commands[0].args.map(toPlain);
    assert.deepStrictEqual(plain, [18446744073709551615n, -9007199254740993n, 5]);
    assert.strictEqual(formatValue(M.list(...argsFromPlain(plain))), '(18446744073709551615 -9007199254740993 5 )');
  });
  it('floats always keep their point and never use an exponent', () => {
    assert.strictEqual(formatFloat(3), '3.0');
    assert.strictEqual(formatFloat(-0.5), '-0.5');
    assert.strictEqual(formatFloat(1e21), '1000000000000000000000.0');
    assert.strictEqual(formatFloat(1.5e-7), '0.00000015');
    assert.strictEqual(formatFloat(-2.5e25), '-25000000000000000000000000.0');
    assert.strictEqual(formatValue(fromPlain({ type: 'float', value: 3 })), '3.0');
    assert.throws(() => formatFloat(NaN), /NaN/);
    const back = parseMessage('mbus/1.0 1 1 U (a:b) () ()\nx (3.500000 3.)\n').commands[0].args;
    assert.deepStrictEqual(back, [M.float(3.5), M.float(3)]);
  });
});

describe('mbus codec: what RFC 3259 forbids is rejected, with a reason to count', () => {
  const head = 'mbus/1.0 1 1 U (a:b id:1-1@127.0.0.1) () ()\n';
  for (const [what, text, rejection] of [
    ['an exponent float', `${head}x (1e400)\n`, 'float'],
    ['an exponent float with a point', `${head}x (1.5E3)\n`, 'float'],
    ['a negative exponent float inside a list', `${head}x ((2 -3.0e-2))\n`, 'float'],
    ['a float that is no finite number', `${head}x (${'9'.repeat(400)}.0)\n`, 'float'],
    ['a reliable message from ()', 'mbus/1.0 1 1 R () (a:b id:1-2@127.0.0.1) ()\nx ()\n', 'empty-source'],
    ['a header-only reliable message from ()', 'mbus/1.0 7 1 R () () ()\n', 'empty-source'],
    ['a SeqNum of 2^32', 'mbus/1.0 4294967296 1 U (a:b) () ()\n', 'seq-range'],
    ['a 20-digit SeqNum', 'mbus/1.0 99999999999999999999 1 U (a:b) () ()\n', 'seq-range'],
    ['an acknowledged SeqNum above 2^32-1', 'mbus/1.0 1 1 U (a:b) () (1 4294967296 )\n', 'seq-range'],
  ] as const) {
    it(`rejects ${what} (${rejection})`, () => {
      assert.throws(
        () => parseMessage(text),
        (e: unknown) => e instanceof RejectedMessage && e.rejection === rejection && e.code === 'EREJECT',
      );
    });
  }
  it('still accepts the edges: SeqNum 2^32-1, a 400-digit integer, an unreliable message from ()', () => {
    assert.strictEqual(parseMessage('mbus/1.0 4294967295 1 U (a:b) () (4294967295 )\n').seq, 4294967295);
    assert.strictEqual(parseMessage(`${head}x (${'9'.repeat(400)})\n`).commands[0].args[0].type, 'integer');
    assert.strictEqual(parseMessage('mbus/1.0 1 1 U () () ()\nx ()\n').source.size, 0);
  });
  it('string escapes: emits \\\\ \\" \\n; parses \\n as LF and \\x as x', () => {
    assert.strictEqual(formatValue(M.str('a"b\\c\nd e')), '"a\\"b\\\\c\\nd e"');
    assert.deepStrictEqual(
      parseMessage('mbus/1.0 1 1 U (a:b) () ()\nx ("a\\"b\\\\c\\nd\\ e" "ü€")\n').commands[0].args,
      [M.str('a"b\\c\nd e'), M.str('ü€')],
    );
  });
  it('plain values in and typed values out', () => {
    const args = argsFromPlain([
      1,
      2.5,
      'x',
      true,
      Buffer.from('hi'),
      [1, [2]],
      { type: 'symbol', value: 'OK' },
      12345678901234567890n,
    ]);
    assert.strictEqual(formatValue(M.list(...args)), '(1 2.5 "x" 1 <aGk=> (1 (2 ) ) OK 12345678901234567890 )');
    assert.throws(() => argsFromPlain([null]), /payload\[0\]: null/);
    assert.throws(() => argsFromPlain([{ type: 'symbol', value: '1x' }]), /symbol/);
    assert.throws(() => formatValue(M.sym('not a symbol')), /not a valid symbol/);
  });
});

describe('mbus security: key forms and config file', () => {
  it('accepts every key form seen in the wild', () => {
    assert.strictEqual(parseKeyEntry('(NOENCR)').algorithm, 'NOENCR');
    assert.strictEqual(parseKeyEntry('(NOENCR, )').algorithm, 'NOENCR');
    assert.strictEqual(hashKey('(HMAC-MD5-96, Y2eAxOs7XWLxrby6)').key.length, 12);
    assert.strictEqual(hashKey('(HMAC-MD5-96,MTIzMTU2MTg5MTEy)').key.toString(), '123156189112');
    assert.strictEqual(hashKey('MTIzNDU2Nzg5MDEy').algorithm, 'HMAC-MD5-96');
    assert.strictEqual(hashKey('(HMAC-SHA1-96,MTIzNDU2Nzg5MDEy)').algorithm, 'HMAC-SHA1-96');
    assert.throws(() => encryptionKey('(DES,MTIzMTU2MQ==)'), /8 octets/);
    assert.throws(() => hashKey('(HMAC-FOO,AAAA)'), /not supported/);
    assert.throws(() => hashKey('(HMAC-MD5-96,!!)'), /base64/);
  });
  it('reads $MBUS (a file, or a directory holding .mbus) and never creates it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mbus-'));
    try {
      assert.strictEqual(loadMbusFile({ MBUS: dir }), undefined);
      assert.deepStrictEqual(fs.readdirSync(dir), [], 'nothing created');
      fs.writeFileSync(
        path.join(dir, '.mbus'),
        '[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96, Y2eAxOs7XWLxrby6)\nENCRYPTIONKEY=(NOENCR, )\nPORT=47086\n',
      );
      assert.strictEqual(loadMbusFile({ MBUS: dir })?.port, 47086);
      assert.strictEqual(loadMbusFile({ MBUS: path.join(dir, '.mbus') })?.hashKey?.key.length, 12);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('parses the RFC example file', () => {
    const f = parseMbusFile(
      '[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(NOENCR)\n# c\nSCOPE=LINKLOCAL\nADDRESS=224.255.222.239\nPORT=47000\nSEND_UNICAST=no\n',
    );
    assert.strictEqual(f.hashKey?.key.toString(), '123156189112');
    assert.strictEqual(f.encryptionKey?.algorithm, 'NOENCR');
    assert.strictEqual(f.scope, 'LINKLOCAL');
    assert.strictEqual(f.port, 47000);
    assert.strictEqual(f.sendUnicast, false);
  });
});

describe('mbus addresses', () => {
  it('match as sets: subset for delivery, equality for reliable', () => {
    const own = Address.parse('(conf:test media:audio module:engine app:rat id:4711-1@192.168.1.1)');
    assert.ok(Address.parse('(media:audio module:engine)').isSubsetOf(own));
    assert.ok(Address.parse('(module:engine)').isSubsetOf(own));
    assert.ok(Address.parse('()').isSubsetOf(own));
    assert.ok(!Address.parse('(module:engine foo:bar)').isSubsetOf(own));
    assert.ok(!Address.parse('(foo:bar)').isSubsetOf(own));
    assert.ok(Address.parse('(app:rat id:4711-1@192.168.1.1 module:engine media:audio conf:test )').equals(own));
    assert.ok(!Address.parse('(app:rat)').equals(own));
    assert.deepStrictEqual(Address.from({ app: 'x', module: 'y' }).toString(), '(app:x module:y)');
  });
});

describe('mbus timers (RFC 3259 §7, §8 arithmetic)', () => {
  it('hello interval, dither and dead time', () => {
    assert.strictEqual(helloInterval(DEFAULT_TIMERS, 1, 0), 900);
    assert.strictEqual(Math.round(helloInterval(DEFAULT_TIMERS, 1, 0.999999)), 1100);
    assert.strictEqual(helloInterval(DEFAULT_TIMERS, 5, 0.5), 1000);
    assert.strictEqual(helloInterval(DEFAULT_TIMERS, 10, 0.5), 2000);
    assert.strictEqual(deadAfter(DEFAULT_TIMERS, 5), 5500);
    assert.strictEqual(deadAfter(DEFAULT_TIMERS, 20), 22000);
  });
  it('reliable schedule: sends at 0, 100, 300 ms, failure at 600 ms = T_k', () => {
    assert.deepStrictEqual(retransmitSchedule(DEFAULT_TIMERS), { sends: [0, 100, 300], failAt: 600 });
    assert.deepStrictEqual(retransmitSchedule({ ...DEFAULT_TIMERS, retries: 1 }), { sends: [0], failAt: 100 });
  });
});

const rng = mulberry32;

describe('mbus parser fuzz (bounded)', () => {
  const s = sec({ key: 'K1' });
  const seeds = (vectors as Array<{ datagram: string }>).map((v) => Buffer.from(v.datagram, 'latin1').subarray(17));
  const alphabet = Buffer.from('()"<>\\ \t\r\n:.-_0123456789abcRUmbus/1.0=+@\x00\xff');

  function check(body: Buffer): void {
    const d = Buffer.concat([Buffer.from(`${mac(s.hash, body)}\n`), body]);
    try {
      const m = parseMessage(openDatagram(s, d));
      // What we accept we can write back and read again.
      try {
        formatMessage(m);
      } catch (err) {
        assert.ok((err as { code?: string }).code === 'EMBUS', String(err));
      }
    } catch (err) {
      assert.ok(
        err instanceof Error && String((err as unknown as { code?: string }).code).startsWith('E'),
        `unclean rejection: ${String(err)}`,
      );
    }
  }

  it('3000 mutated vectors and 2000 random datagrams: no crash, no hang, only clean drops', () => {
    const r = rng(4711);
    for (let i = 0; i < 3000; i++) {
      const b = Buffer.from(seeds[i % seeds.length]);
      const edits = 1 + Math.floor(r() * 4);
      let out = b;
      for (let e = 0; e < edits; e++) {
        const pos = Math.floor(r() * out.length);
        const op = r();
        const ch = alphabet[Math.floor(r() * alphabet.length)];
        if (op < 0.4) out[pos] = ch;
        else if (op < 0.7) out = Buffer.concat([out.subarray(0, pos), Buffer.from([ch]), out.subarray(pos)]);
        else out = Buffer.concat([out.subarray(0, pos), out.subarray(pos + 1)]);
      }
      check(out);
    }
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(r() * 300);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++)
        b[j] = r() < 0.8 ? alphabet[Math.floor(r() * alphabet.length)] : Math.floor(r() * 256);
      const body = r() < 0.5 ? Buffer.concat([Buffer.from('mbus/1.0 1 2 U (a:b) () ()\n'), b]) : b;
      check(body);
      // and raw, without a valid hash
      try {
        parseMessage(openDatagram(s, b));
      } catch (err) {
        assert.ok(err instanceof DatagramError || (err as { code?: string }).code === 'EPARSE');
      }
    }
  });

  it('500 random ciphertexts with a valid hash through DES decryption: only clean drops', () => {
    const r = rng(42);
    const des: SecurityConfig = { hash: hashKey(KEYS.K1), encryption: encryptionKey('(DES,ASNFZ4mrze8=)') };
    for (let i = 0; i < 500; i++) {
      const body = Buffer.alloc(Math.floor(r() * 40) * (r() < 0.9 ? 8 : 3));
      for (let j = 0; j < body.length; j++) body[j] = Math.floor(r() * 256);
      const d = Buffer.concat([Buffer.from(`${mac(des.hash, body)}\n`), body]);
      assert.throws(
        () => parseMessage(openDatagram(des, d)),
        (e: unknown) => e instanceof DatagramError,
      );
    }
  });
});

export type { MValue };
