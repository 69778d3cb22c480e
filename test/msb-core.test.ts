// src/msb without Node-RED: framing, self-description shapes, payload validation, the nesting bound.
import assert from 'assert';
import {
  compileDataFormat,
  compileSelfDescription,
  connectionUrl,
  decodeClientFrame,
  decodeServerFrame,
  encodeClientFrame,
  nestedDeeperThan,
  MsbDefinitionError,
  parseMessage,
  serverFrame,
  validatorFor,
} from '../src/msb';

const UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';

describe('msb framing', () => {
  it('decodes o, h, a and c frames with real JSON, including nested escaped JSON', () => {
    assert.deepStrictEqual(decodeServerFrame('o', true), { kind: 'open' });
    assert.deepStrictEqual(decodeServerFrame('h', true), { kind: 'heartbeat' });
    assert.deepStrictEqual(decodeServerFrame('c[3000,"Go away!"]', true), {
      kind: 'close',
      code: 3000,
      reason: 'Go away!',
    });
    const call = 'C {"uuid":"u","functionId":"F","functionParameters":{"dataObject":"say \\"hi\\"\\n"}}';
    const frame = serverFrame.message(call, true);
    assert.deepStrictEqual(decodeServerFrame(frame, true), { kind: 'messages', messages: [call] });
    assert.deepStrictEqual(decodeServerFrame('a["IO_CONNECTED","IO_REGISTERED"]', true), {
      kind: 'messages',
      messages: ['IO_CONNECTED', 'IO_REGISTERED'],
    });
    assert.strictEqual(decodeServerFrame('a[broken', true).kind, 'invalid');
    assert.strictEqual(decodeServerFrame('a[1,2]', true).kind, 'invalid');
    assert.strictEqual(decodeServerFrame('x', true).kind, 'invalid');
    assert.deepStrictEqual(decodeServerFrame('IO_CONNECTED', false), { kind: 'messages', messages: ['IO_CONNECTED'] });
  });

  it('encodes client frames as a JSON array of one string, and accepts what the official clients send', () => {
    assert.strictEqual(encodeClientFrame('pong', true), '["pong"]');
    assert.strictEqual(encodeClientFrame('pong', false), 'pong');
    const r = 'R {"uuid":"a\\"b"}';
    assert.deepStrictEqual(decodeClientFrame(encodeClientFrame(r, true), true), [r]);
    assert.deepStrictEqual(decodeClientFrame('["R {\\"a\\":1}"]\n', true), ['R {"a":1}']); // C# trailing newline
    assert.strictEqual(decodeClientFrame('[R {}]', true), undefined);
  });

  it('parses typed messages and status keywords', () => {
    assert.deepStrictEqual(parseMessage('K {"uuid":"u","params":{"a":1}}'), {
      type: 'K',
      body: { uuid: 'u', params: { a: 1 } },
    });
    assert.deepStrictEqual(parseMessage('NIO_ALREADY_CONNECTED'), { type: 'status', keyword: 'NIO_ALREADY_CONNECTED' });
    assert.strictEqual(parseMessage('C {nope').type, 'invalid');
  });

  it('builds SockJS and raw paths for every URL form, fresh per connect', () => {
    const a = connectionUrl('http://host:8085', true);
    const b = connectionUrl('http://host:8085', true);
    assert.match(a, /^ws:\/\/host:8085\/websocket\/data\/\d{3}\/[0-9a-f]{32}\/websocket$/);
    assert.notStrictEqual(a, b);
    assert.match(connectionUrl('https://host:8084/', true), /^wss:\/\/host:8084\/websocket\/data\/\d{3}\//);
    assert.strictEqual(
      connectionUrl('wss://host:8084/websocket/data', false),
      'wss://host:8084/websocket/data/websocket',
    );
    assert.strictEqual(connectionUrl('ws://h:1', false), 'ws://h:1/websocket/data/websocket');
    assert.throws(() => connectionUrl('ftp://h', true), /ws:\/\/, wss:\/\/, http:\/\/ or https:\/\//);
  });
});

describe('msb self-description compiler', () => {
  const service = {
    uuid: UUID,
    name: 'Oven',
    description: 'an oven',
    serviceClass: 'SmartObject' as const,
    token: 't0k',
  };

  it('compiles simple, array and no-payload events with 1-based @ids and response events as @ids', () => {
    const sd = compileSelfDescription(
      {
        ...service,
        parameters: [
          { name: 'limit', type: 'int32', value: '42' },
          { name: 'on', type: 'boolean', value: 'true' },
        ],
      },
      [
        { eventId: 'TEMP', name: 'Temperature', dataFormat: { kind: 'simple', type: 'double' } },
        { eventId: 'ALARM', dataFormat: { kind: 'none' } },
        { eventId: 'SERIES', dataFormat: { kind: 'simple', type: 'int32', isArray: true } },
      ],
      [{ functionId: 'SET', dataFormat: { kind: 'simple', type: 'string' }, responseEvents: ['TEMP', 'ALARM'] }],
    );
    assert.deepStrictEqual(sd, {
      '@class': 'SmartObject',
      uuid: UUID,
      name: 'Oven',
      description: 'an oven',
      token: 't0k',
      events: [
        { '@id': 1, eventId: 'ALARM', name: 'ALARM', description: '' },
        {
          '@id': 2,
          eventId: 'SERIES',
          name: 'SERIES',
          description: '',
          dataFormat: { dataObject: { type: 'array', items: { type: 'integer', format: 'int32' } } },
        },
        {
          '@id': 3,
          eventId: 'TEMP',
          name: 'Temperature',
          description: '',
          dataFormat: { dataObject: { type: 'number', format: 'double' } },
        },
      ],
      functions: [
        {
          functionId: 'SET',
          name: 'SET',
          description: '',
          responseEvents: [1, 3],
          dataFormat: { dataObject: { type: 'string' } },
        },
      ],
      configuration: {
        parameters: {
          limit: { value: 42, type: 'INTEGER', format: 'INT32' },
          on: { value: true, type: 'BOOLEAN' },
        },
      },
    });
  });

  it('compiles a complex JSON schema, hoisting nested definitions to the top level', () => {
    const schema = {
      $schema: 'http://json-schema.org/draft-04/schema#',
      $ref: '#/definitions/ComplexObject1',
      definitions: {
        ComplexObject1: {
          type: 'object',
          properties: { megaprop: { $ref: '#/definitions/ComplexObject2' } },
          definitions: {
            ComplexObject2: {
              type: 'object',
              properties: { superprop: { type: 'array', items: { type: 'integer', format: 'int32' } } },
            },
          },
        },
      },
    };
    assert.deepStrictEqual(compileDataFormat({ kind: 'complex', schema: JSON.stringify(schema) }), {
      dataObject: { $ref: '#/definitions/ComplexObject1', type: 'object' },
      ComplexObject1: { type: 'object', properties: { megaprop: { $ref: '#/definitions/ComplexObject2' } } },
      ComplexObject2: {
        type: 'object',
        properties: { superprop: { type: 'array', items: { type: 'integer', format: 'int32' } } },
      },
    });
    // Array of complex: the root reference moves into items.
    const arr = compileDataFormat({ kind: 'complex', schema, isArray: true });
    assert.deepStrictEqual(arr?.dataObject, { type: 'array', items: { $ref: '#/definitions/ComplexObject1' } });
    // A full dataFormat with dataObject is kept as it is.
    const full = { dataObject: { type: 'number', format: 'float' } };
    assert.deepStrictEqual(compileDataFormat({ kind: 'complex', schema: full }), full);
  });

  it('rejects bad declarations with errors naming the field and the rule', () => {
    const bad = (fn: () => unknown, re: RegExp): void =>
      assert.throws(fn, (err: Error) => err instanceof MsbDefinitionError && re.test(err.message));
    bad(
      () => compileDataFormat({ kind: 'complex', schema: '{"$ref":"#/definitions/Missing"}' }, 'events[E].dataFormat'),
      /events\[E\]\.dataFormat\.dataObject\.\$ref: refers to "#\/definitions\/Missing"/,
    );
    bad(
      () => compileDataFormat({ kind: 'complex', schema: '{"type":"object","patternProperties":{}}' }),
      /patternProperties.*not allowed/,
    );
    bad(
      () => compileDataFormat({ kind: 'complex', schema: '{"type":"int65"}' }),
      /type: "int65" is not a JSON schema type/,
    );
    bad(() => compileDataFormat({ kind: 'complex', schema: '{oops' }), /schema: is not valid JSON/);
    bad(
      () =>
        compileSelfDescription(
          service,
          [],
          [{ functionId: 'F', dataFormat: { kind: 'none' }, responseEvents: ['NOPE'] }],
        ),
      /functions\[F\]\.responseEvents: event "NOPE" is not declared/,
    );
    bad(() => compileSelfDescription({ ...service, uuid: 'x' }, [], []), /uuid: "x" is not a UUID/);
    bad(
      () =>
        compileSelfDescription(
          service,
          [
            { eventId: 'E', dataFormat: { kind: 'simple', type: 'string' } },
            { eventId: 'E', dataFormat: { kind: 'simple', type: 'int32' } },
          ],
          [],
        ),
      /events\[E\]: is declared twice/,
    );
    bad(
      () => compileSelfDescription({ ...service, parameters: [{ name: 'p', type: 'int32', value: 'abc' }] }, [], []),
      /configuration\.parameters\.p\.value: "abc" is not an integer/,
    );
  });
});

describe('msb payload validation', () => {
  it('validates simple, array and complex payloads, naming path and rule', () => {
    const int32 = validatorFor({ dataObject: { type: 'integer', format: 'int32' } });
    assert.strictEqual(int32(7), undefined);
    assert.match(String(int32(1.5)?.message), /^invalid payload at payload: type: must be integer/);
    assert.match(String(int32(2 ** 31)?.message), /format/);
    const list = validatorFor({ dataObject: { type: 'array', items: { type: 'string', format: 'date-time' } } });
    assert.strictEqual(list(['2024-01-02T03:04:05.678Z']), undefined);
    assert.match(String(list(['2024-01-02T03:04:05.678Z', 'yesterday'])?.message), /payload\[1\]: format/);
    const complex = validatorFor({
      dataObject: { $ref: '#/definitions/Reading', type: 'object' },
      Reading: {
        type: 'object',
        required: ['value'],
        properties: { value: { type: 'number' }, tags: { type: 'array', items: { $ref: '#/definitions/Tag' } } },
      },
      Tag: { type: 'object', properties: { name: { type: 'string' } } },
    });
    assert.strictEqual(complex({ value: 1, tags: [{ name: 'a' }] }), undefined);
    assert.match(
      String(complex({ value: 1, tags: [{ name: 3 }] })?.message),
      /payload\.tags\[0\]\.name: type: must be string/,
    );
    assert.match(String(complex({})?.message), /required/);
  });

  it('compiles each distinct format once', () => {
    const format = { dataObject: { type: 'string' } };
    const a = validatorFor(format);
    const b = validatorFor(JSON.parse(JSON.stringify(format)));
    assert.strictEqual(a('x'), b('x'));
  });
});

describe('msb nesting bound', () => {
  it('finds a branch deeper than the limit without recursion, and passes flat or shallow values', () => {
    const deep = JSON.parse('['.repeat(10000) + ']'.repeat(10000)) as unknown;
    assert.strictEqual(nestedDeeperThan(deep, 64), true);
    let sixtyFour: unknown = 1;
    for (let i = 0; i < 64; i++) sixtyFour = { a: sixtyFour };
    assert.strictEqual(nestedDeeperThan(sixtyFour, 64), false);
    assert.strictEqual(nestedDeeperThan({ a: sixtyFour }, 64), true);
    assert.strictEqual(nestedDeeperThan('text', 64), false);
    assert.strictEqual(nestedDeeperThan({ a: [1, 2, { b: null }] }, 64), false);
  });
});
