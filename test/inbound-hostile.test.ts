// Hostile-input building blocks: ApiGear payload decoding (strict UTF-8, nesting bound), the sg inbound checks, and
// rejections said once per burst with their count.
import assert from 'assert';
import { decodePayload, jsonDepthExceeds, MAX_JSON_DEPTH } from '../src/apigear/inbound';
import { classifyInbound } from '../src/sg/inbound';
import { compilePlan as compileSgPlan } from '../src/sg/plan';
import { clip, RejectedInput } from '../src/common/rejects';
import { compilePlan, parseModule } from '../src/apigear';
import { helloYaml } from './support/hello';
import { until } from './support/until';

describe('hostile inbound input', () => {
  it('decodes ApiGear payloads strictly: invalid UTF-8, nesting beyond the bound and a BOM are refused', () => {
    assert.deepStrictEqual(decodePayload(Buffer.from('{"content":"ok"}')), { ok: true, value: { content: 'ok' } });
    assert.strictEqual(decodePayload(Buffer.alloc(0)), undefined);
    assert.strictEqual((decodePayload(Buffer.from([0x22, 0xff, 0x22])) as { reason: string }).reason, 'not UTF-8');
    const nested = (n: number): Buffer => Buffer.from('['.repeat(n) + ']'.repeat(n));
    assert.strictEqual(decodePayload(nested(MAX_JSON_DEPTH))?.ok, true);
    assert.strictEqual((decodePayload(nested(MAX_JSON_DEPTH + 1)) as { reason: string }).reason, 'too deeply nested');
    assert.strictEqual((decodePayload(nested(1_000_000)) as { reason: string }).reason, 'too deeply nested');
    // Brackets inside strings (and escaped quotes) do not count.
    assert.strictEqual(jsonDepthExceeds(JSON.stringify({ a: '[[[[\\"[[[[' }), 2), false);
    assert.strictEqual((decodePayload(Buffer.from('\ufeff[]')) as { reason: string }).reason, 'not JSON');
  });

  it('keeps __proto__ and constructor from the wire as plain data, and the IDL refuses them as unknown fields', () => {
    const plan = compilePlan(parseModule(helloYaml()), 'Hello');
    const prop = plan.properties.get('last')!;
    const decoded = decodePayload(Buffer.from('{"__proto__":{"polluted":1},"content":"x"}'));
    assert.ok(decoded?.ok);
    assert.throws(() => prop.check(decoded.value), /has no field __proto__/);
    assert.throws(
      () => prop.check(JSON.parse('{"constructor":{"prototype":{"polluted":1}}}')),
      /must have field content/,
    );
    assert.strictEqual(plan.properties.get('__proto__'), undefined);
    assert.strictEqual(plan.route(`io.world/Hello/set/constructor`)?.member, 'constructor');
    assert.strictEqual(({} as Record<string, unknown>).polluted, undefined);
  });

  it('sg: accepts registered topics only, strips like Python, refuses invalid UTF-8 and prototype names', () => {
    const plan = compileSgPlan('r', [
      {
        owner: 'n',
        role: 'resource',
        commands: [{ signal: 'state', echo: true, echoRetained: false, defaultValue: null, changeOnly: false }],
      },
    ]);
    const inputs = new Map(plan.inputs.map((i) => [i.topic, i]));
    const ok = classifyInbound('command/r/state', Buffer.from('  on \u00a0'), inputs);
    assert.ok(ok.ok && ok.payload === 'on' && ok.entry.signal === 'state');
    assert.deepStrictEqual(classifyInbound('command/r/state', Buffer.from([0xff]), inputs), {
      ok: false,
      reason: 'not UTF-8',
      detail: 'payload on command/r/state',
    });
    assert.strictEqual(
      (classifyInbound('command/r/__proto__', Buffer.from('x'), inputs) as { reason: string }).reason,
      'unregistered topic',
    );
    assert.strictEqual(
      (classifyInbound('command/r/constructor', Buffer.from('x'), inputs) as { reason: string }).reason,
      'unregistered topic',
    );
    assert.strictEqual(
      (classifyInbound('command/r/state/x', Buffer.from('x'), inputs) as { reason: string }).reason,
      'wrong topic structure',
    );
  });

  it('says rejections once per burst and reason, with the count; close() says the rest', async () => {
    const lines: string[] = [];
    const rejects = new RejectedInput('Hello', (t) => lines.push(t), 100);
    for (let i = 0; i < 1000; i++) rejects.note(i % 2 ? 'not JSON' : 'unknown member', `set/m${i}`);
    assert.deepStrictEqual(lines, [
      'Hello: 1 inbound message dropped (unknown member); last: set/m0',
      'Hello: 1 inbound message dropped (not JSON); last: set/m1',
    ]);
    await until(() => lines.length === 4, 'the end-of-window lines', 5000, 20);
    assert.match(lines[2], /^Hello: 499 inbound messages dropped \((unknown member|not JSON)\); last: set\/m99[89]$/);
    rejects.note('not JSON', 'set/again');
    rejects.note('not JSON', 'set/again2');
    rejects.close();
    assert.strictEqual(rejects.total('not JSON'), 502);
    assert.ok(lines.length <= 7, lines.join('\n'));
    assert.strictEqual(clip('a\u0000b'), 'a\\u0000b');
    assert.strictEqual(clip('x'.repeat(500)).length, 161);
  });
});
