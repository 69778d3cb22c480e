// E messages built from a template are byte for byte what serialising the whole event gives, plain and SockJS.
import assert from 'assert';
import { decodeClientFrame, EventFields, EventHead, EventTemplate, msbNow, parseMessage, Priority } from '../src/msb';

/** Deterministic pseudo-random numbers (mulberry32), so a failure names a reproducible seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Characters that need care in JSON and in a JSON string inside JSON: quotes, backslashes, controls, surrogates. */
const NASTY = [
  '"',
  '\\',
  '\\"',
  '\n',
  '\u0000',
  '\u001f',
  '\u2028',
  '\u2029',
  'ü',
  '😀',
  '\ud83d',
  '\ude00',
  '/',
  '</script>',
  ' ',
  'a',
  'Z',
];

function text(next: () => number): string {
  let s = '';
  const n = Math.floor(next() * 8);
  for (let i = 0; i < n; i++) s += NASTY[Math.floor(next() * NASTY.length)];
  return s;
}

function value(next: () => number, depth = 0): unknown {
  const pick = Math.floor(next() * (depth > 2 ? 7 : 10));
  switch (pick) {
    case 0:
      return next() * 2000 - 1000;
    case 1:
      return [0, -0, 1e300, -1e-300, NaN, Infinity, 42][Math.floor(next() * 7)];
    case 2:
      return next() < 0.5;
    case 3:
      return null;
    case 4:
      return undefined;
    case 5:
    case 6:
      return text(next);
    case 7:
      return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
    case 8: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(next() * 4); i > 0; i--) o[text(next)] = value(next, depth + 1);
      return o;
    }
    default:
      return { when: new Date(Math.floor(next() * 4e12)), f: () => 1, nested: { s: text(next) } };
  }
}

/** What the client sent before templates: the whole event as one object, uuid first, then stringified. */
function reference(uuid: string | undefined, eventId: string, fields: EventFields): string {
  const message: Record<string, unknown> = uuid === undefined ? {} : { uuid };
  message.eventId = eventId;
  message.priority = fields.priority ?? 0;
  message.postDate = fields.postDate;
  if (fields.dataObject !== undefined && fields.dataObject !== null) message.dataObject = fields.dataObject;
  if (fields.correlationId !== undefined && fields.correlationId !== '') message.correlationId = fields.correlationId;
  return `E ${JSON.stringify(message)}`;
}

describe('msb E messages from a template', () => {
  it('equal the serialised event for 5000 seeded events: raw text, SockJS string, cached body', () => {
    for (let seed = 1; seed <= 5000; seed++) {
      const next = random(seed);
      const uuid = next() < 0.1 ? undefined : next() < 0.5 ? 'be0c0000-0000-4000-8000-00000000000a' : text(next);
      const eventId = next() < 0.5 ? 'VALUE' : text(next);
      const fields: EventFields = {
        dataObject: value(next),
        priority: Math.floor(next() * 3) as Priority,
        postDate: next() < 0.8 ? new Date(Math.floor(next() * 4e12)).toISOString() : text(next),
        correlationId: next() < 0.3 ? undefined : next() < 0.2 ? '' : text(next),
      };
      const template = new EventTemplate(eventId);
      const head = new EventHead(uuid);
      const expected = reference(uuid, eventId, fields);
      assert.strictEqual(template.message(head, fields, false), expected, `seed ${seed}: raw`);
      assert.strictEqual(template.message(head, fields, true), JSON.stringify(expected), `seed ${seed}: SockJS`);
      const body = template.body(fields);
      assert.strictEqual(head.fromBody(body, false), expected, `seed ${seed}: from the cached body`);
      assert.strictEqual(
        head.fromBody(body, true),
        JSON.stringify(expected),
        `seed ${seed}: from the cached body, SockJS`,
      );
      // And the emulator (parsing like the MSB: a SockJS frame is a JSON array of strings) reads the same event back.
      const frame = `[${template.message(head, fields, true)}]`;
      assert.deepStrictEqual(decodeClientFrame(frame, true), [expected], `seed ${seed}: SockJS frame`);
      assert.strictEqual(parseMessage(expected).type, 'E', `seed ${seed}: parses as an E message`);
    }
  });

  it('stamps the current time when no postDate is given, formatted as the MSB expects', () => {
    const template = new EventTemplate('VALUE');
    const before = Date.now();
    const body = JSON.parse(template.body({ dataObject: 1 })) as { postDate: string };
    const sockJs = JSON.parse(JSON.parse(template.message(new EventHead('u'), { dataObject: 1 }, true)).slice(2)) as {
      postDate: string;
    };
    const after = Date.now();
    for (const postDate of [body.postDate, sockJs.postDate, msbNow()]) {
      assert.match(postDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const t = Date.parse(postDate);
      assert.ok(
        t >= before && t <= Date.now(),
        `${postDate} between ${new Date(before).toISOString()} and ${new Date(after).toISOString()}`,
      );
    }
  });

  it('leaves dataObject out when it has no JSON form, as JSON.stringify of the whole event does', () => {
    for (const dataObject of [() => 1, Symbol('s'), undefined, null]) {
      const fields = { dataObject, postDate: '2024-01-01T00:00:00.000Z' };
      assert.strictEqual(
        new EventTemplate('E').message(new EventHead('u'), fields, false),
        'E {"uuid":"u","eventId":"E","priority":0,"postDate":"2024-01-01T00:00:00.000Z"}',
      );
      assert.strictEqual(
        new EventTemplate('E').message(new EventHead('u'), fields, true),
        JSON.stringify(reference('u', 'E', fields)),
      );
    }
  });

  it('serialises a priority outside 0..2 as given instead of failing (callers outside TypeScript)', () => {
    const fields = { dataObject: 'x', priority: 'HIGH' as unknown as Priority, postDate: '2024-01-01T00:00:00.000Z' };
    assert.strictEqual(new EventTemplate('E').message(new EventHead('u'), fields, false), reference('u', 'E', fields));
    assert.strictEqual(
      new EventTemplate('E').message(new EventHead('u'), fields, true),
      JSON.stringify(reference('u', 'E', fields)),
    );
  });
});
