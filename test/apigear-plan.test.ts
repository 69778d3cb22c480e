// ApiGear module parsing and the compiled topic plan and validators (pure: no broker).
import assert from 'assert';
import { argsFromPayload, compilePlan, moduleFromMembers, parseModule } from '../src/apigear';
import { helloYaml } from './support/hello';

describe('apigear module and plan', () => {
  it('parses the io.world module: interface, members, enum values and struct fields', () => {
    const mod = parseModule(helloYaml());
    assert.strictEqual(mod.name, 'io.world');
    assert.strictEqual(mod.version, '1.0.0');
    const hello = mod.interfaces[0];
    assert.deepStrictEqual(hello.properties, [{ name: 'last', type: 'Message', array: false, readonly: false }]);
    assert.deepStrictEqual(
      hello.operations[0].params.map((p) => `${p.name}:${p.type}`),
      ['msg:Message', 'when:When'],
    );
    assert.deepStrictEqual(hello.operations[0].return, { type: 'int', array: false });
    assert.deepStrictEqual(hello.signals[0], {
      name: 'justSaid',
      params: [{ name: 'msg', type: 'Message', array: false }],
    });
    assert.deepStrictEqual(
      mod.enums[0].members.map((m) => m.value),
      [0, 1, 2],
    );
    assert.deepStrictEqual(mod.structs[0].fields, [{ name: 'content', type: 'string', array: false }]);
  });

  it('compiles the topic plan with the dotted module name and IDL spelling', () => {
    const plan = compilePlan(parseModule(helloYaml()), 'Hello');
    assert.strictEqual(plan.prefix, 'io.world/Hello');
    assert.strictEqual(plan.properties.get('last')?.topic, 'io.world/Hello/prop/last');
    assert.strictEqual(plan.properties.get('last')?.setTopic, 'io.world/Hello/set/last');
    assert.strictEqual(plan.signals.get('justSaid')?.topic, 'io.world/Hello/sig/justSaid');
    assert.strictEqual(plan.operations.get('say')?.topic, 'io.world/Hello/rpc/say');
    assert.strictEqual(plan.operations.get('say')?.responseTopic('nr-cli'), 'io.world/Hello/rpc/say/nr-cli/result');
    assert.deepStrictEqual(plan.serviceSubscriptions, ['io.world/Hello/set/+', 'io.world/Hello/rpc/+']);
    assert.deepStrictEqual(plan.clientSubscriptions('nr-cli'), [
      'io.world/Hello/prop/+',
      'io.world/Hello/sig/+',
      'io.world/Hello/rpc/+/nr-cli/result',
    ]);
    assert.deepStrictEqual(plan.route('io.world/Hello/rpc/say/nr-cli/result'), { verb: 'result', member: 'say' });
    assert.deepStrictEqual(plan.route('io.world/Hello/set/last'), { verb: 'set', member: 'last' });
    assert.strictEqual(plan.route('io.world/Other/set/last'), undefined);
    assert.strictEqual(plan.route('io.world/Hello/rpc/say/x'), undefined);
  });

  it('validates structs as objects and enums as integers, naming member and rule', () => {
    const plan = compilePlan(parseModule(helloYaml()), 'Hello');
    const last = plan.properties.get('last')!;
    last.check({ content: 'hi' });
    assert.throws(
      () => last.check({ content: 5 }),
      /^ApiGearValueError: Hello\.last\.content: must be of type string \(got 5\)$/,
    );
    assert.throws(() => last.check({}), /Hello\.last: must have field content/);
    assert.throws(() => last.check({ content: 'x', extra: 1 }), /Hello\.last: has no field extra/);
    assert.throws(() => last.check('hi'), /Hello\.last: must be of type object/);
    const say = plan.operations.get('say')!;
    say.checkArgs([{ content: 'hi' }, 1]);
    assert.throws(
      () => say.checkArgs([{ content: 'hi' }, 5]),
      /Hello\.say\(when\): must be a When value: 0 \(Now\), 1 \(Soon\), 2 \(Never\) \(got 5\)/,
    );
    assert.throws(() => say.checkArgs([{ content: 'hi' }, 'Now']), /Hello\.say\(when\): must be an integer/);
    assert.throws(() => say.checkArgs([{ content: 'hi' }]), /Hello\.say: expects 2 arguments \(msg, when\), got 1/);
    say.checkResult(42);
    assert.throws(() => say.checkResult(4.5), /Hello\.say return value: must be an integer/);
  });

  it('accepts arguments as an array or by name, and rejects anything else', () => {
    const plan = compilePlan(parseModule(helloYaml()), 'Hello');
    const params = plan.operations.get('say')!.params;
    assert.deepStrictEqual(argsFromPayload('Hello', 'say', params, { when: 1, msg: { content: 'a' } }), [
      { content: 'a' },
      1,
    ]);
    assert.deepStrictEqual(argsFromPayload('Hello', 'say', params, [{ content: 'a' }, 1]), [{ content: 'a' }, 1]);
    assert.throws(
      () => argsFromPayload('Hello', 'say', params, { msg: { content: 'a' } }),
      /Hello\.say\(when\): argument is missing/,
    );
    assert.throws(
      () => argsFromPayload('Hello', 'say', params, { msg: {}, when: 0, whom: 1 }),
      /Hello\.say: has no parameter whom/,
    );
    assert.throws(
      () => argsFromPayload('Hello', 'say', params, 'hi'),
      /arguments must be an array \[msg, when\] or an object \{msg, when\}/,
    );
    assert.deepStrictEqual(argsFromPayload('Hello', 'ping', [], undefined), []);
  });

  it('handles arrays, sized ints, floats, bools, `[]` types, enums without values and read-only properties', () => {
    const mod = parseModule(`schema: apigear.module/1.0
name: tb.simple
interfaces:
  - name: Simple
    properties:
      - { name: propInts, type: int32, array: true }
      - { name: propFloats, type: "float[]" }
      - { name: propBool, type: bool, readonly: true }
      - { name: propLevel, type: Level }
    operations:
      - name: funcVoid
enums:
  - name: Level
    members:
      - { name: low }
      - { name: high }
`);
    const plan = compilePlan(mod, 'Simple');
    plan.properties.get('propInts')!.check([1, -2]);
    assert.throws(
      () => plan.properties.get('propInts')!.check([1, 2.5]),
      /Simple\.propInts\[1\]: must be an integer \(got 2\.5\)/,
    );
    assert.throws(
      () => plan.properties.get('propInts')!.check([2 ** 31]),
      /Simple\.propInts\[0\]: must be <= 2147483647/,
    );
    plan.properties.get('propFloats')!.check([1.5, 2]);
    assert.throws(() => plan.properties.get('propBool')!.check(1), /Simple\.propBool: must be of type boolean/);
    assert.strictEqual(plan.properties.get('propBool')!.readonly, true);
    plan.properties.get('propLevel')!.check(1);
    assert.throws(() => plan.properties.get('propLevel')!.check(2), /must be a Level value: 0 \(low\), 1 \(high\)/);
    const fv = plan.operations.get('funcVoid')!;
    assert.strictEqual(fv.void, true);
    fv.checkArgs([]);
    fv.checkResult(0); // Python replies 0 to void calls; that must not fail.
  });

  it('reports module mistakes with the declaration at fault', () => {
    assert.throws(
      () =>
        parseModule('name: io.world\ninterfaces:\n  - name: Hello\n    properties:\n      - { name: p, type: Nope }\n'),
      /Hello\.p: unknown type Nope/,
    );
    assert.throws(() => parseModule('schema: other/1\nname: x'), /schema must be apigear\.module\/1\.0/);
    assert.throws(() => parseModule('name: "io world"'), /module name must be a dotted identifier/);
    assert.throws(
      () => parseModule('name: a\ninterfaces: [ {name: I, operations: [{name: f}, {name: f}]} ]'),
      /I\.operations: f is declared twice/,
    );
    assert.throws(() => parseModule('name: a\n  - : ['), /module YAML does not parse/);
    assert.throws(
      () => compilePlan(parseModule(helloYaml()), 'Goodbye'),
      /module io\.world has no interface "Goodbye" \(it declares: Hello\)/,
    );
  });

  it('builds a module from members listed by hand', () => {
    const mod = moduleFromMembers('demo', 'Counter', [
      { kind: 'property', name: 'count', type: 'int' },
      { kind: 'property', name: 'anything' },
      { kind: 'operation', name: 'increment', params: 'step: int', type: 'int' },
      { kind: 'operation', name: 'reset' },
      { kind: 'signal', name: 'overflow', params: 'at: int, note' },
    ]);
    const plan = compilePlan(mod, 'Counter');
    assert.strictEqual(plan.operations.get('increment')!.topic, 'demo/Counter/rpc/increment');
    assert.throws(
      () => plan.operations.get('increment')!.checkArgs(['1']),
      /Counter\.increment\(step\): must be an integer/,
    );
    plan.properties.get('anything')!.check({ any: ['json'] });
    plan.signals.get('overflow')!.checkArgs([3, { free: 'form' }]);
    assert.strictEqual(plan.operations.get('reset')!.void, true);
    assert.throws(
      () => moduleFromMembers('demo', 'Counter', [{ kind: 'property', name: 'x', type: 'Message' }]),
      /Counter\.x: unknown type Message/,
    );
  });
});
