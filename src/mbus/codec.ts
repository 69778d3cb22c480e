// Mbus message text (RFC 3259 §5): typed values, header and commands; emits conservatively, parses strictly where the RFC forbids.
import { Address, MbusError } from './address';
import { MBUS_SYMBOL } from '../common/guards';

/** Why a well-formed-looking message is refused: what RFC 3259 forbids, named so receivers can count it. */
export type Rejection = 'float' | 'empty-source' | 'seq-range';

/** A message the RFC forbids (as opposed to one that is merely malformed, which is code EPARSE without a rejection). */
export class RejectedMessage extends MbusError {
  constructor(
    readonly rejection: Rejection,
    message: string,
  ) {
    super(message, 'EREJECT');
  }
}

/** SeqNum and AckList entries are 1*10DIGIT in 0..2^32-1 (RFC 3259 §5.2). */
export const MAX_SEQ = 2 ** 32 - 1;

export type MValue =
  | { type: 'integer'; value: bigint }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'symbol'; value: string }
  | { type: 'data'; value: Buffer }
  | { type: 'list'; value: MValue[] };

export interface Command {
  name: string;
  args: MValue[];
}

export interface Message {
  seq: number;
  timestamp: number;
  reliable: boolean;
  source: Address;
  destination: Address;
  acks: number[];
  commands: Command[];
}

export const M = {
  int: (v: number | bigint): MValue => ({ type: 'integer', value: BigInt(v) }),
  float: (v: number): MValue => ({ type: 'float', value: v }),
  str: (v: string): MValue => ({ type: 'string', value: v }),
  sym: (v: string): MValue => ({ type: 'symbol', value: v }),
  data: (v: Buffer): MValue => ({ type: 'data', value: v }),
  list: (...v: MValue[]): MValue => ({ type: 'list', value: v }),
};

const SYMBOL = MBUS_SYMBOL;
const MAX_DEPTH = 64;

// ---------------------------------------------------------------- serialization

/** Fixed notation that always keeps a `.` and never uses an exponent (libgmbus reads any `.` token as Float). */
export function formatFloat(v: number): string {
  if (!Number.isFinite(v)) throw new MbusError(`float ${v} cannot be sent: Mbus has no NaN or Infinity`);
  let s = String(Math.abs(v));
  const e = s.indexOf('e');
  if (e >= 0) {
    const mant = s.slice(0, e).replace('.', '');
    const exp = Number(s.slice(e + 1));
    const point = (s.slice(0, e).indexOf('.') >= 0 ? s.slice(0, e).indexOf('.') : s.slice(0, e).length) + exp;
    if (point <= 0) s = `0.${'0'.repeat(-point)}${mant}`;
    else if (point >= mant.length) s = `${mant}${'0'.repeat(point - mant.length)}`;
    else s = `${mant.slice(0, point)}.${mant.slice(point)}`;
  }
  if (!s.includes('.')) s += '.0';
  return (v < 0 || Object.is(v, -0) ? '-' : '') + s;
}

const NEEDS_ESCAPE = /[\\"\n]/;

export function escapeString(s: string): string {
  // Most strings have nothing to escape; testing first spares the replace and its callback.
  return NEEDS_ESCAPE.test(s) ? s.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`)) : s;
}

export function formatValue(v: MValue, depth = 0): string {
  if (depth > MAX_DEPTH) throw new MbusError(`lists nest deeper than ${MAX_DEPTH}`);
  switch (v.type) {
    case 'integer':
      return v.value.toString();
    case 'float':
      return formatFloat(v.value);
    case 'string':
      return `"${escapeString(v.value)}"`;
    case 'symbol':
      if (!SYMBOL.test(v.value))
        throw new MbusError(`"${v.value}" is not a valid symbol (a letter, then letters, digits, _ - .)`);
      return v.value;
    case 'data':
      return `<${v.value.toString('base64')}>`;
    case 'list': {
      // libgmbus needs whitespace after every element, including the last: `(a b )`.
      let out = '(';
      for (const x of v.value) out += `${formatValue(x, depth + 1)} `;
      return `${out})`;
    }
  }
}

export function formatCommand(c: Command): string {
  if (!SYMBOL.test(c.name)) throw new MbusError(`command name "${c.name}" is not a valid symbol (e.g. "app.cmd")`);
  return `${c.name} ${formatValue({ type: 'list', value: c.args })}`;
}

/** The header line, LF included; the commands follow it, one line each. */
export function formatHeader(m: Omit<Message, 'commands'>): string {
  const acks = m.acks.length ? `(${m.acks.map((a) => `${a} `).join('')})` : '()';
  return `mbus/1.0 ${m.seq} ${m.timestamp} ${m.reliable ? 'R' : 'U'} ${m.source} ${m.destination} ${acks}\n`;
}

/** Command lines, each ending with LF. */
export function formatCommands(commands: Command[]): string {
  let s = '';
  for (const c of commands) s += `${formatCommand(c)}\n`;
  return s;
}

export function formatMessage(m: Message): string {
  return formatHeader(m) + formatCommands(m.commands);
}

// ---------------------------------------------------------------- parsing

class Cursor {
  i = 0;
  constructor(readonly s: string) {}
  get done(): boolean {
    return this.i >= this.s.length;
  }
  peek(): string {
    return this.s[this.i] ?? '';
  }
  fail(what: string): never {
    throw new MbusError(`${what} at offset ${this.i}`, 'EPARSE');
  }
  /** Spaces and tabs (header fields, UCL `%6d` padding). */
  wsp(): number {
    const start = this.i;
    while (this.s[this.i] === ' ' || this.s[this.i] === '\t') this.i++;
    return this.i - start;
  }
  /** Any whitespace, allowed inside lists. */
  anyWs(): void {
    const s = this.s;
    let i = this.i;
    for (let ch = s.charCodeAt(i); ch === 0x20 || ch === 0x09 || ch === 0x0d || ch === 0x0a; ch = s.charCodeAt(++i));
    this.i = i;
  }
  /** Up to whitespace or one of `()"<>` (charCodeAt past the end is NaN, which ends it too). */
  token(): string {
    const s = this.s;
    const start = this.i;
    let i = start;
    for (;;) {
      const ch = s.charCodeAt(i);
      if (
        ch !== ch ||
        ch === 0x20 ||
        ch === 0x09 ||
        ch === 0x0d ||
        ch === 0x0a ||
        ch === 0x28 ||
        ch === 0x29 ||
        ch === 0x22 ||
        ch === 0x3c ||
        ch === 0x3e
      )
        break;
      i++;
    }
    this.i = i;
    return s.slice(start, i);
  }
  /** Line end: LF or CRLF (or end of text). */
  eol(): void {
    this.wsp();
    if (this.s[this.i] === '\r' && this.s[this.i + 1] === '\n') this.i += 2;
    else if (this.s[this.i] === '\n') this.i++;
    else if (!this.done) this.fail('expected end of line');
  }
}

const INT = /^-?\d+$/;
// RFC 3259 §2: Float = *1"-" 1*DIGIT "." 1*DIGIT — never an exponent (`3.` is tolerated: harmless and unambiguous).
const FLOAT = /^-?\d+\.\d*$/;
const EXPONENT_FLOAT = /^-?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$/;
const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function parseValue(c: Cursor, depth: number): MValue {
  const ch = c.peek();
  if (ch === '(') return { type: 'list', value: parseList(c, depth + 1) };
  if (ch === '"') {
    c.i++;
    // Runs of plain characters are taken as slices; only escapes are handled one by one.
    const s = c.s;
    let out = '';
    let run = c.i;
    for (;;) {
      if (c.done) c.fail('unterminated string');
      const x = s.charCodeAt(c.i++);
      if (x === 0x22) {
        out += s.slice(run, c.i - 1);
        break;
      }
      if (x === 0x5c) {
        out += s.slice(run, c.i - 1);
        if (c.done) c.fail('unterminated string escape');
        const e = s[c.i++];
        // RFC escapes are \\ \" \n; any other \x is x (covers UCL's `\ `).
        out += e === 'n' ? '\n' : e;
        run = c.i;
      }
    }
    return { type: 'string', value: out };
  }
  if (ch === '<') {
    const end = c.s.indexOf('>', c.i);
    if (end < 0) c.fail('unterminated data');
    const b64 = c.s.slice(c.i + 1, end).replace(/\s+/g, '');
    if (!B64.test(b64) || b64.length % 4 === 1) c.fail('invalid base64 in data');
    c.i = end + 1;
    return { type: 'data', value: Buffer.from(b64, 'base64') };
  }
  const tok = c.token();
  if (tok === '') c.fail(`unexpected ${c.done ? 'end of message' : `"${c.peek()}"`}`);
  if (INT.test(tok)) return { type: 'integer', value: BigInt(tok) };
  if (FLOAT.test(tok)) {
    const value = Number(tok);
    // 400 digits before the point are syntactically a Float but no finite number: refused, never Infinity in a flow.
    if (!Number.isFinite(value))
      throw new RejectedMessage('float', `float "${tok.slice(0, 20)}…" is not a finite number`);
    return { type: 'float', value };
  }
  if (EXPONENT_FLOAT.test(tok))
    throw new RejectedMessage('float', `float "${tok.slice(0, 20)}" uses an exponent, which RFC 3259 does not allow`);
  if (/^[A-Za-z]/.test(tok)) return { type: 'symbol', value: tok };
  return c.fail(`"${tok.slice(0, 20)}" is no Mbus value`);
}

function parseList(c: Cursor, depth: number): MValue[] {
  if (depth > MAX_DEPTH) c.fail(`lists nest deeper than ${MAX_DEPTH}`);
  if (c.peek() !== '(') c.fail('expected "("');
  c.i++;
  const out: MValue[] = [];
  for (;;) {
    c.anyWs();
    if (c.done) c.fail('unterminated list');
    if (c.peek() === ')') {
      c.i++;
      return out;
    }
    const before = c.i;
    out.push(parseValue(c, depth));
    // Values must be separated; `"a""b"` or `1(2)` are tolerated only across delimiters that end a token.
    if (c.i === before) c.fail('no progress');
  }
}

// Peers repeat the same few addresses in every message; Address objects are immutable, so parsed ones are reused.
const addressCache = new Map<string, Address>();

function parseAddress(c: Cursor): Address {
  if (c.peek() !== '(') c.fail('expected address "("');
  const end = c.s.indexOf(')', c.i);
  if (end < 0) c.fail('unterminated address');
  const text = c.s.slice(c.i, end + 1);
  const cached = addressCache.get(text);
  if (cached) {
    c.i = end + 1;
    return cached;
  }
  if (/[\r\n(]/.test(text.slice(1))) c.fail('malformed address');
  c.i = end + 1;
  const a = Address.parse(text);
  if (addressCache.size >= 512) addressCache.clear();
  addressCache.set(text, a);
  return a;
}

/** 1 to 20 ASCII digits (what /^\d{1,20}$/ accepts), without a regular expression per header field. */
function isDigits(tok: string): boolean {
  if (tok.length === 0 || tok.length > 20) return false;
  for (let i = 0; i < tok.length; i++) {
    const ch = tok.charCodeAt(i);
    if (ch < 0x30 || ch > 0x39) return false;
  }
  return true;
}

function parseNumber(c: Cursor, what: string, max: number): number {
  const tok = c.token();
  if (!isDigits(tok)) c.fail(`${what} "${tok.slice(0, 20)}" is not a number`);
  const n = Number(tok);
  if (n > max) {
    if (max === MAX_SEQ) throw new RejectedMessage('seq-range', `${what} ${tok} is outside 0..${MAX_SEQ}`);
    c.fail(`${what} ${tok} out of range`);
  }
  return n;
}

/** Parses message text (after hash check and decryption). Throws MbusError (code EPARSE) on anything malformed. */
export function parseMessage(text: string): Message {
  const c = new Cursor(text);
  if (!text.startsWith('mbus/1.0')) c.fail('message does not start with "mbus/1.0"');
  c.i = 8;
  const need = (what: string): void => {
    if (c.wsp() === 0) c.fail(`expected whitespace before ${what}`);
  };
  need('SeqNum');
  const seq = parseNumber(c, 'SeqNum', MAX_SEQ);
  need('TimeStamp');
  const timestamp = parseNumber(c, 'TimeStamp', Number.MAX_SAFE_INTEGER);
  need('MessageType');
  const type = c.token();
  if (type !== 'R' && type !== 'U') c.fail(`MessageType "${type.slice(0, 8)}" is neither R nor U`);
  need('SrcAddr');
  const source = parseAddress(c);
  need('DestAddr');
  const destination = parseAddress(c);
  need('AckList');
  if (c.peek() !== '(') c.fail('expected AckList');
  const ackEnd = c.s.indexOf(')', c.i);
  if (ackEnd < 0) c.fail('unterminated AckList');
  const ackText = c.s.slice(c.i + 1, ackEnd).trim();
  if (ackText !== '' && !/^\d{1,20}(\s+\d{1,20})*$/.test(ackText)) c.fail('malformed AckList');
  const acks = ackText === '' ? [] : ackText.split(/\s+/).map(Number);
  for (const a of acks)
    if (a > MAX_SEQ) throw new RejectedMessage('seq-range', `acknowledged SeqNum ${a} is outside 0..${MAX_SEQ}`);
  c.i = ackEnd + 1;
  c.eol();
  const commands: Command[] = [];
  while (!c.done) {
    c.wsp();
    if (c.peek() === '\n' || c.peek() === '\r') {
      c.eol(); // tolerate blank lines
      continue;
    }
    const name = c.token();
    if (!SYMBOL.test(name)) c.fail(`command name "${name.slice(0, 20)}" is not a symbol`);
    c.wsp(); // `name (args)` (UCL, RFC) and `name(args)` (libgmbus)
    const args = parseList(c, 0);
    commands.push({ name, args });
    c.eol();
  }
  // A reliable message needs a sender to acknowledge; an ack to () would go to everyone, and UCL matches acks by
  // SeqNum alone, so it could complete another entity's pending message.
  if (type === 'R' && source.size === 0)
    throw new RejectedMessage('empty-source', 'a reliable message from the empty address () cannot be acknowledged');
  return { seq, timestamp, reliable: type === 'R', source, destination, acks, commands };
}

// ---------------------------------------------------------------- plain JS values for flows

/** A value as a flow sees it: numbers, bigints beyond 2^53, strings, Buffers, arrays; Symbols and Floats stay tagged when needed. */
export function toPlain(v: MValue): unknown {
  switch (v.type) {
    case 'integer':
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : v.value;
    case 'float':
    case 'string':
    case 'symbol':
      return v.value;
    case 'data':
      return v.value;
    case 'list':
      return v.value.map(toPlain);
  }
}

const TYPES = new Set(['integer', 'float', 'string', 'symbol', 'data', 'list']);

/**
 * Converts what a flow gives into Mbus values: integer numbers and bigints → Integer, other numbers → Float,
 * booleans → 0/1, strings → String, Buffers → Data, arrays → List, `{type, value}` → that exact type
 * (e.g. `{type:"symbol", value:"OK"}`, `{type:"float", value:3}`).
 */
export function fromPlain(x: unknown, path = 'payload', depth = 0): MValue {
  if (depth > MAX_DEPTH) throw new MbusError(`${path}: lists nest deeper than ${MAX_DEPTH}`);
  if (typeof x === 'bigint') return { type: 'integer', value: x };
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new MbusError(`${path}: ${x} cannot be sent (no NaN/Infinity in Mbus)`);
    return Number.isInteger(x) && !Object.is(x, -0)
      ? { type: 'integer', value: BigInt(x) }
      : { type: 'float', value: x };
  }
  if (typeof x === 'boolean') return { type: 'integer', value: x ? 1n : 0n };
  if (typeof x === 'string') return { type: 'string', value: x };
  if (Buffer.isBuffer(x)) return { type: 'data', value: x };
  if (x instanceof Uint8Array) return { type: 'data', value: Buffer.from(x) };
  if (Array.isArray(x)) return { type: 'list', value: x.map((e, i) => fromPlain(e, `${path}[${i}]`, depth + 1)) };
  if (x && typeof x === 'object') {
    const o = x as { type?: unknown; value?: unknown; data?: unknown };
    if (o.type === 'Buffer' && Array.isArray(o.data)) return { type: 'data', value: Buffer.from(o.data as number[]) };
    if (typeof o.type === 'string' && TYPES.has(o.type)) {
      const p = `${path}.value`;
      switch (o.type) {
        case 'integer':
          if (typeof o.value === 'bigint') return { type: 'integer', value: o.value };
          if (typeof o.value === 'number' && Number.isInteger(o.value))
            return { type: 'integer', value: BigInt(o.value) };
          if (typeof o.value === 'string' && /^-?\d+$/.test(o.value))
            return { type: 'integer', value: BigInt(o.value) };
          throw new MbusError(`${p}: an integer needs an integral number, bigint or digit string`);
        case 'float':
          if (typeof o.value === 'number' && Number.isFinite(o.value)) return { type: 'float', value: o.value };
          throw new MbusError(`${p}: a float needs a finite number`);
        case 'string':
          return { type: 'string', value: String(o.value) };
        case 'symbol':
          if (typeof o.value === 'string' && SYMBOL.test(o.value)) return { type: 'symbol', value: o.value };
          throw new MbusError(`${p}: a symbol is a letter followed by letters, digits, _ - .`);
        case 'data':
          if (Buffer.isBuffer(o.value)) return { type: 'data', value: o.value };
          if (typeof o.value === 'string') return { type: 'data', value: Buffer.from(o.value, 'base64') };
          if (o.value && typeof o.value === 'object' && Array.isArray((o.value as { data?: unknown }).data))
            return { type: 'data', value: Buffer.from((o.value as { data: number[] }).data) };
          throw new MbusError(`${p}: data needs a Buffer or a base64 string`);
        case 'list':
          if (Array.isArray(o.value)) return fromPlain(o.value, p, depth);
          throw new MbusError(`${p}: a list needs an array`);
      }
    }
  }
  throw new MbusError(`${path}: ${x === null ? 'null' : typeof x} cannot be sent as an Mbus value`);
}

/** Arguments for one command: an array is the argument list; any other single value becomes a one-element list. */
export function argsFromPlain(payload: unknown): MValue[] {
  if (payload === undefined || payload === null) return [];
  if (Array.isArray(payload)) return payload.map((e, i) => fromPlain(e, `payload[${i}]`));
  return [fromPlain(payload)];
}

/** A JSON-friendly typed form (bigints as strings, Data as base64) for flows that need exact types. */
export function toTyped(v: MValue): unknown {
  switch (v.type) {
    case 'integer':
      return { type: 'integer', value: v.value.toString() };
    case 'data':
      return { type: 'data', value: v.value.toString('base64') };
    case 'list':
      return { type: 'list', value: v.value.map(toTyped) };
    default:
      return { type: v.type, value: v.value };
  }
}
