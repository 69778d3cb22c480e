// mbus-config settings: node fields win over ~/.mbus, which wins over the spec defaults; bad combinations are named.
import assert from 'assert';
import { Address, compileFilter, entityOptions, isExampleKey, parseMbusFile } from '../src/mbus';

describe('mbus settings', () => {
  const file = parseMbusFile(
    '[MBUS]\nCONFIG_VERSION=1\nHASHKEY=(HMAC-MD5-96,MTIzMTU2MTg5MTEy)\nENCRYPTIONKEY=(DES,ASNFZ4mrze8=)\nSCOPE=LINKLOCAL\nADDRESS=224.255.222.240\nPORT=47086\n',
  );

  it('uses the spec defaults when nothing is set', () => {
    const o = entityOptions({}, {});
    assert.strictEqual(o.group, '224.255.222.239');
    assert.strictEqual(o.port, 47000);
    assert.strictEqual(o.scope, 'HOSTLOCAL');
    assert.strictEqual(o.maxDatagram, 1500);
    assert.strictEqual(o.security?.hash?.algorithm, 'HMAC-MD5-96');
    assert.strictEqual(o.security?.encryption?.algorithm, 'NOENCR');
    assert.deepStrictEqual(o.timers, {
      retransmit: 100,
      retries: 3,
      ackDelay: 70,
      duplicateKeep: 10000,
      helloMin: 1000,
      helloMax: 2000,
    });
    assert.strictEqual(String(o.address), '(app:node-red module:flow)');
    assert.strictEqual(o.pack, true, 'packing is on for flows saved before the option');
    assert.strictEqual(o.oneReliablePerPeer, true);
    assert.strictEqual(entityOptions({ pack: false }, {}).pack, false);
  });

  it('takes what the node leaves empty from ~/.mbus, and the node fields win', () => {
    const fromFile = entityOptions({ addressElements: [{ tag: 'app', value: 'x' }] }, {}, file);
    assert.deepStrictEqual([fromFile.group, fromFile.port, fromFile.scope], ['224.255.222.240', 47086, 'LINKLOCAL']);
    assert.strictEqual(fromFile.security?.hash?.key.toString(), '123156189112');
    assert.strictEqual(fromFile.security?.encryption?.algorithm, 'DES');
    const fields = entityOptions(
      { group: '239.255.255.247', port: 47001, scope: 'HOSTLOCAL', encryptionAlgorithm: 'NOENCR' },
      { hashKey: 'MTIzNDU2Nzg5MDEy' },
      file,
    );
    assert.deepStrictEqual([fields.group, fields.port, fields.scope], ['239.255.255.247', 47001, 'HOSTLOCAL']);
    assert.strictEqual(fields.security?.hash?.key.toString(), '123456789012');
  });

  it('names what is wrong', () => {
    assert.throws(() => entityOptions({ encryptionAlgorithm: 'AES' }, {}), /AES is selected but no encryption key/);
    assert.throws(
      () => entityOptions({ encryptionAlgorithm: 'DES' }, { encryptionKey: 'AAAA' }),
      /DES key is 8 octets/,
    );
    assert.throws(() => entityOptions({ ackDelay: 100, retransmit: 100 }, {}), /T_c .* must be shorter than .* T_r/);
    assert.throws(
      () => entityOptions({ addressElements: [{ tag: 'app', value: 'a b' }] }, {}),
      /printable characters without space/,
    );
    assert.throws(() => entityOptions({}, { hashKey: '(HMAC-MD5-96,***)' }), /not valid base64/);
  });

  it('never echoes key material in errors', () => {
    const secret = 'c2VjcmV0a2V5MTIz!';
    for (const creds of [
      { hashKey: `(HMAC-MD5-96,${secret})` },
      { hashKey: secret },
      { hashKey: `(${secret})` },
      { hashKey: `(HMAC-MD5-96,${secret}` },
    ]) {
      assert.throws(
        () => entityOptions({}, creds),
        (e: Error) => !e.message.includes('c2VjcmV0') && !e.message.toUpperCase().includes('C2VJCMV0'),
      );
    }
    assert.throws(
      () => entityOptions({ encryptionAlgorithm: 'DES' }, { encryptionKey: `(AES-256,${secret})` }),
      (e: Error) => !e.message.includes('c2VjcmV0'),
    );
  });

  it('says when the hash key is the public example key', () => {
    assert.ok(isExampleKey(entityOptions({}, {}).security));
    assert.ok(isExampleKey(entityOptions({}, { hashKey: 'MTIzNDU2Nzg5MDEy' }).security));
    assert.ok(!isExampleKey(entityOptions({}, { hashKey: 'c2VjcmV0a2V5MTIz' }).security));
  });

  it('compiles command filters: exact names and prefix*, default everything but mbus.*', () => {
    const all = compileFilter([]);
    assert.ok(all('rat.audio.mute') && !all('mbus.hello'));
    const f = compileFilter(['rat.*', 'tools.foo.bar', ' ']);
    assert.ok(f('rat.x') && f('tools.foo.bar') && !f('tools.foo.barx') && !f('mbus.ping'));
    assert.ok(compileFilter(['mbus.*'])('mbus.waiting'));
    void Address;
  });
});
