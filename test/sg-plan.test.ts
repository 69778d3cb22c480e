// The sg plan compiler and Python value semantics, against the known answers of spec/sg.md (§3, §4.2, §5, §6).
import assert from 'assert';
import {
  clientIdFor,
  compilePlan,
  describePlan,
  Publication,
  SgDeclaration,
  startupSequence,
  stopPublication,
  subscriptionsOf,
  willFor,
} from '../src/sg/plan';
import { decodeUtf8, pythonFloat, pythonStr, pythonStrip } from '../src/sg/python';
import { testLoopCommands, testLoopData } from './support/sg-testloop';

const wire = (ps: Publication[]): string[] => ps.map((p) => `${p.topic} ${p.payload} q${p.qos} r${p.retain ? 1 : 0}`);

const taxisign: SgDeclaration = {
  owner: 'n1',
  role: 'resource',
  commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False', changeOnly: false }],
};

/** tests/test_framework_resource.py::testLoop registrations, as observed in spec §4.2 (test/support/sg-testloop). */
const testLoop: SgDeclaration = {
  owner: 'n2',
  role: 'resource',
  data: testLoopData(),
  commands: testLoopCommands(),
};

describe('sg plan compiler', () => {
  it('taxisignservice: subscribe, will, client id and the observed startup burst (§3.1, §4.2)', () => {
    const plan = compilePlan('taxisignservice', [taxisign]);
    assert.deepStrictEqual(subscriptionsOf(plan), ['command/taxisignservice/state']);
    assert.deepStrictEqual(willFor(plan, 1), {
      topic: 'resourceavailable/taxisignservice/presence',
      payload: 'False',
      qos: 1,
      retain: true,
    });
    assert.strictEqual(clientIdFor(plan.name, true, 18392), 'taxisignservice-18392');
    assert.strictEqual(clientIdFor(plan.name, false, 18392), 'taxisignservice');
    assert.deepStrictEqual(wire(startupSequence(plan, 1)), [
      'resourceavailable/taxisignservice/presence True q1 r1',
      'commandavailable/taxisignservice/state True q1 r1',
      'dataavailable/taxisignservice/state True q1 r1',
      'data/taxisignservice/state False q1 r1',
    ]);
    assert.deepStrictEqual(stopPublication(plan), {
      topic: 'resourceavailable/taxisignservice/presence',
      payload: 'False',
      qos: 1,
      retain: true,
    });
  });

  it('testLoop: data, echoed commands and a command without echo (§4.2)', () => {
    const plan = compilePlan('testresource', [testLoop]);
    assert.deepStrictEqual(wire(startupSequence(plan, 1)), [
      'resourceavailable/testresource/presence True q1 r1',
      'dataavailable/testresource/teststate3 True q1 r1',
      'dataavailable/testresource/teststate4 True q1 r1',
      'data/testresource/teststate4 101 q1 r0',
      'dataavailable/testresource/teststate7 True q1 r1',
      'commandavailable/testresource/teststate2 True q1 r1',
      'dataavailable/testresource/teststate2 True q1 r1',
      'data/testresource/teststate2 222 q1 r0',
      'commandavailable/testresource/teststate5 True q1 r1',
      'dataavailable/testresource/teststate5 True q1 r1',
      'commandavailable/testresource/teststate6 True q1 r1',
    ]);
  });

  it('uses the configured QoS everywhere except the stop publication, which is always QoS 1 (§4.4, §6)', () => {
    const plan = compilePlan('taxisignservice', [taxisign]);
    assert.ok(startupSequence(plan, 0).every((p) => p.qos === 0));
    assert.strictEqual(willFor(plan, 0)?.qos, 0);
    assert.strictEqual(stopPublication(plan)?.qos, 1);
  });

  it('re-sends the latest value instead of the default, and only where a default was registered (§4.3)', () => {
    const plan = compilePlan('testresource', [testLoop]);
    const latest: Record<string, string> = {
      'data/testresource/teststate4': '3.5',
      'data/testresource/teststate2': 'x',
    };
    const seq = wire(startupSequence(plan, 1, (topic) => latest[topic]));
    assert.ok(seq.includes('data/testresource/teststate4 3.5 q1 r0'));
    assert.ok(seq.includes('data/testresource/teststate2 x q1 r0'));
    assert.ok(!seq.some((s) => s.startsWith('data/testresource/teststate3 ')));
  });

  it('apps have no will and publish nothing; resourceavailable ignores the signal and uses "presence" (§7)', () => {
    const plan = compilePlan('taxiapp', [
      {
        owner: 'a',
        role: 'app',
        subscriptions: [
          { kind: 'availability', prefix: 'resourceavailable', service: 'taxisignservice', signal: '' },
          { kind: 'data', service: 'taxisignservice', signal: 'state', changeOnly: false },
        ],
      },
    ]);
    assert.strictEqual(willFor(plan, 1), undefined);
    assert.deepStrictEqual(startupSequence(plan, 1), []);
    assert.deepStrictEqual(subscriptionsOf(plan), [
      'resourceavailable/taxisignservice/presence',
      'data/taxisignservice/state',
    ]);
  });

  it('merges declarations of nodes sharing a name in registration order; the later one overwrites in place', () => {
    const plan = compilePlan('svc', [
      { owner: 'a', role: 'app', subscriptions: [{ kind: 'data', service: 'other', signal: 'x', changeOnly: false }] },
      {
        owner: 'b',
        role: 'resource',
        commands: [{ signal: 'c', echo: false, echoRetained: false, defaultValue: null, changeOnly: false }],
      },
      { owner: 'c', role: 'app', subscriptions: [{ kind: 'data', service: 'other', signal: 'x', changeOnly: true }] },
    ]);
    assert.strictEqual(plan.resource, true);
    assert.deepStrictEqual(subscriptionsOf(plan), ['data/other/x', 'command/svc/c']);
    assert.deepStrictEqual(plan.inputs[0]?.owners, ['a', 'c']);
    assert.strictEqual(plan.inputs[0]?.changeOnly, true);
    assert.match(plan.warnings.join('\n'), /data\/other\/x is declared twice/);
  });

  it('skips names containing "/", "+" or "#" with a warning instead of producing broken topics', () => {
    const plan = compilePlan('svc', [
      {
        owner: 'a',
        role: 'resource',
        commands: [{ signal: 'a/b', echo: true, echoRetained: false, defaultValue: null, changeOnly: false }],
        data: [{ signal: '#', defaultValue: null, retained: false }],
        subscriptions: [{ kind: 'data', service: '+', signal: 'x', changeOnly: false }],
      },
    ]);
    assert.deepStrictEqual(subscriptionsOf(plan), []);
    assert.strictEqual(plan.warnings.length, 3);
    // Each warning also comes as a catalog key, one for one, for the editor's translated preview.
    assert.deepStrictEqual(plan.issues, [
      { key: 'data-bad', args: { signal: '#' } },
      { key: 'command-bad', args: { signal: 'a/b' } },
      { key: 'subscription-bad', args: { service: '+', signal: 'x' } },
    ]);
    assert.match(compilePlan('bad/name', [taxisign]).warnings[0] ?? '', /name "bad\/name" contains/);
  });

  it('describes the plan for the editor', () => {
    const lines = describePlan(compilePlan('taxisignservice', [taxisign]), 1, true);
    assert.strictEqual(lines[0], 'client id: taxisignservice-<pid>');
    assert.strictEqual(lines[2], 'SUBSCRIBE command/taxisignservice/state (QoS 1)');
  });
});

describe('Python semantics', () => {
  it('strips Python whitespace, not JavaScript whitespace (§5)', () => {
    assert.strictEqual(pythonStrip('  padded  '), 'padded');
    assert.strictEqual(pythonStrip('\x1fA\x1f'), 'A');
    assert.strictEqual(pythonStrip('\u00a0\u2003x\u2003\u00a0'), 'x');
    assert.strictEqual(pythonStrip('\x85y\x1c'), 'y');
    assert.strictEqual(pythonStrip('\ufeffB\ufeff'), '\ufeffB\ufeff');
    assert.strictEqual(pythonStrip(' \t\r\n'), '');
  });

  it('formats values as str() does (§6)', () => {
    assert.deepStrictEqual(
      [true, false, 8, 27.1, 3.5, 2.5500000000000003, 1e16, 1e-5, 0.0001, -0.5, 1e22, NaN, -Infinity, 'on'].map((v) =>
        pythonStr(v),
      ),
      [
        'True',
        'False',
        '8',
        '27.1',
        '3.5',
        '2.5500000000000003',
        '1e+16',
        '1e-05',
        '0.0001',
        '-0.5',
        '1e+22',
        'nan',
        '-inf',
        'on',
      ],
    );
    assert.deepStrictEqual(
      [1, 8, 1e16, 1234567890123456].map((v) => pythonStr(v, { numbers: 'float' })),
      ['1.0', '8.0', '1e+16', '1234567890123456.0'],
    );
    assert.strictEqual(pythonFloat(123.456e-10), '1.23456e-08');
    assert.strictEqual(pythonStr({ a: 1, b: [true, null, 'x'] }), '{"a":1,"b":[true,null,"x"]}');
    assert.strictEqual(
      pythonStr({ a: 1, b: [true, null, "it's"] }, { objects: 'python' }),
      `{'a': 1, 'b': [True, None, "it's"]}`,
    );
  });

  it('rejects invalid UTF-8 instead of replacing it', () => {
    assert.strictEqual(decodeUtf8(Buffer.from([0xff, 0xfe, 0x62, 0x61, 0x64])), undefined);
    assert.strictEqual(decodeUtf8(Buffer.from('Grüße', 'utf8')), 'Grüße');
  });
});
