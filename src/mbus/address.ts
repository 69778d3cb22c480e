// Mbus addresses (RFC 3259 §4): unordered sets of tag:value elements, with the subset and equality rules.
export class MbusError extends Error {
  constructor(
    message: string,
    readonly code = 'EMBUS',
  ) {
    super(message);
    this.name = 'MbusError';
  }
}

// Serialized forms, kept outside the objects so equal addresses stay deep-equal.
const texts = new WeakMap<object, string>();
const TAG = /^[A-Za-z][A-Za-z0-9]{0,31}$/;
const VALUE = /^[\x21-\x27\x2A-\x7E]{1,64}$/;

/** An Mbus address. Element order is kept for output but carries no meaning in comparisons. */
export class Address {
  private readonly map: ReadonlyMap<string, string>;
  readonly key: string;

  constructor(readonly elements: ReadonlyArray<readonly [string, string]>) {
    const map = new Map<string, string>();
    for (const [tag, value] of elements) {
      if (!TAG.test(tag)) throw new MbusError(`address tag "${tag}" must be letters (and digits), at most 32`);
      if (!VALUE.test(value))
        throw new MbusError(
          `address value "${value}" of tag "${tag}" must be 1-64 printable characters without space or parentheses`,
        );
      if (map.has(tag)) throw new MbusError(`address tag "${tag}" appears twice`);
      map.set(tag, value);
    }
    this.map = map;
    this.key = [...map.entries()]
      .map(([t, v]) => `${t}:${v}`)
      .sort()
      .join(' ');
  }

  static readonly empty = new Address([]);

  /** Parses `(a:b c:d)` (the parentheses are optional, any whitespace separates elements). */
  static parse(text: string): Address {
    let t = text.trim();
    if (t.startsWith('(')) {
      if (!t.endsWith(')')) throw new MbusError(`address "${text}" lacks its closing parenthesis`);
      t = t.slice(1, -1).trim();
    }
    if (t === '') return Address.empty;
    return new Address(
      t.split(/\s+/).map((el) => {
        const i = el.indexOf(':');
        if (i <= 0) throw new MbusError(`address element "${el}" is not tag:value`);
        return [el.slice(0, i), el.slice(i + 1)] as const;
      }),
    );
  }

  /** Accepts an address string, a `{tag: value}` object or an Address. */
  static from(value: unknown): Address {
    if (value instanceof Address) return value;
    if (typeof value === 'string') return Address.parse(value);
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      return new Address(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, String(v)] as const));
    }
    if (value === undefined || value === null) return Address.empty;
    throw new MbusError('an address must be a string like "(app:x module:y)" or an object like {"app":"x"}');
  }

  get size(): number {
    return this.map.size;
  }

  get(tag: string): string | undefined {
    return this.map.get(tag);
  }

  /** True when every element of this address appears in `other` (RFC 3259 §4 matching rule). */
  isSubsetOf(other: Address): boolean {
    for (const [tag, value] of this.map) if (other.map.get(tag) !== value) return false;
    return true;
  }

  equals(other: Address): boolean {
    return this.key === other.key;
  }

  /** Merges elements (later ones win); used to add `id` to a configured address. */
  with(tag: string, value: string): Address {
    return new Address([...this.elements.filter(([t]) => t !== tag), [tag, value]]);
  }

  toString(): string {
    let text = texts.get(this);
    if (text === undefined) {
      text = `(${this.elements.map(([t, v]) => `${t}:${v}`).join(' ')})`;
      texts.set(this, text);
    }
    return text;
  }

  toObject(): Record<string, string> {
    return Object.fromEntries(this.map);
  }
}
