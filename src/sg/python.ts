// Python string semantics that sgframework peers depend on: str.strip()'s whitespace set, str() of values
// (True/False, 1.0, 1e-05), and strict UTF-8 decoding.

/** Characters Python's str.strip() removes (str.isspace()); differs from JS trim() in \x1c-\x1f, \x85 and \ufeff. */
const PY_WHITESPACE = new Set<string>([
  '\t',
  '\n',
  '\x0b',
  '\x0c',
  '\r',
  '\x1c',
  '\x1d',
  '\x1e',
  '\x1f',
  ' ',
  '\x85',
  '\xa0',
  '\u1680',
  '\u2000',
  '\u2001',
  '\u2002',
  '\u2003',
  '\u2004',
  '\u2005',
  '\u2006',
  '\u2007',
  '\u2008',
  '\u2009',
  '\u200a',
  '\u2028',
  '\u2029',
  '\u202f',
  '\u205f',
  '\u3000',
]);

/** Python `s.strip()`. */
export function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PY_WHITESPACE.has(text.charAt(start))) start++;
  while (end > start && PY_WHITESPACE.has(text.charAt(end - 1))) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 or returns undefined for invalid input (sgframework would crash; we drop with a warning). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Python `repr(float)`: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16, always a `.0` or exponent. */
export function pythonFloat(value: number): string {
  if (Number.isNaN(value)) return 'nan';
  if (value === Infinity) return 'inf';
  if (value === -Infinity) return '-inf';
  if (value === 0) return Object.is(value, -0) ? '-0.0' : '0.0';
  // JS and Python both produce the shortest digit string that round-trips; only the layout differs.
  const [mantissa, exp] = Math.abs(value).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exponent = Number(exp);
  const decpt = exponent + 1; // position of the decimal point relative to the digit string
  const sign = value < 0 ? '-' : '';
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  const e = Math.abs(exponent);
  return `${sign}${m}e${exponent < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
}

/** Python `repr(str)`: single quotes unless the text has a single quote and no double quote. */
export function pythonStringRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (ch === quote || ch === '\\') out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (code >= 0x80 && code < 0xa0) out += `\\x${code.toString(16)}`;
    else out += ch;
  }
  return out + quote;
}

export type ObjectFormat = 'json' | 'python';
export type NumberFormat = 'auto' | 'float';

export interface FormatOptions {
  /** Objects and arrays as JSON (default) or as Python's repr of dict/list. */
  objects?: ObjectFormat;
  /** `auto`: whole numbers as Python ints (`8`), others as floats (`27.1`); `float`: every number as a float (`8.0`). */
  numbers?: NumberFormat;
}

function pythonNumber(value: number, numbers: NumberFormat): string {
  if (numbers === 'auto' && Number.isSafeInteger(value)) return String(value);
  return pythonFloat(value);
}

function pythonRepr(value: unknown, options: Required<FormatOptions>, seen: Set<object>): string {
  if (value === null || value === undefined) return 'None';
  if (typeof value === 'string') return pythonStringRepr(value);
  if (typeof value !== 'object') return pythonStr(value, options);
  if (seen.has(value)) return '...';
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((v) => pythonRepr(v, options, seen)).join(', ')}]`;
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([k, v]) => `${pythonStringRepr(k)}: ${pythonRepr(v, options, seen)}`).join(', ')}}`;
  } finally {
    seen.delete(value);
  }
}

/**
 * The text an sgframework peer would send for `value`: Python `str(value)`. Strings pass unchanged, booleans become
 * `True`/`False` (peers compare `payload == 'True'`), numbers follow Python's int/float formatting.
 */
export function pythonStr(value: unknown, options: FormatOptions = {}): string {
  const opts: Required<FormatOptions> = { objects: options.objects ?? 'json', numbers: options.numbers ?? 'auto' };
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return pythonNumber(value, opts.numbers);
  if (typeof value === 'bigint') return value.toString();
  if (value === null || value === undefined) return 'None';
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (value instanceof Date) return value.toISOString();
  if (opts.objects === 'python') return pythonRepr(value, opts, new Set());
  return JSON.stringify(value);
}
