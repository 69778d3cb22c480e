// Payload validators: one ajv validator compiled per data format (cached by its JSON), errors naming path and rule.
import type Ajv from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { lazy } from '../common/lazy';
import type { DataFormat } from './selfdescription';

/** ajv is loaded by the first validator compiled, not by Node-RED's start. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see lazy), not at start
const AjvClass = lazy(() => (require('ajv') as typeof import('ajv')).default);

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const FLOAT_MAX = 3.4028234663852886e38;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function makeAjv(): Ajv {
  const ajv = new (AjvClass())({ allErrors: false, strict: false, validateFormats: true });
  ajv.addFormat('int32', {
    type: 'number',
    validate: (n: number) => Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX,
  });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: (n: number) => Number.isFinite(n) && Math.abs(n) <= FLOAT_MAX });
  ajv.addFormat('double', { type: 'number', validate: (n: number) => Number.isFinite(n) });
  ajv.addFormat('date-time', {
    type: 'string',
    validate: (s: string) => DATE_TIME.test(s) && !Number.isNaN(Date.parse(s)),
  });
  ajv.addFormat('byte', { type: 'string', validate: (s: string) => BASE64.test(s) });
  return ajv;
}

let shared: Ajv | undefined;
const cache = new Map<string, ValidateFunction>();

/** The error a payload gets when it does not match: `message` names the JSON path and the rule. */
export class MsbValidationError extends Error {
  constructor(
    readonly path: string,
    readonly rule: string,
  ) {
    super(`invalid payload at ${path}: ${rule}`);
    this.name = 'MsbValidationError';
  }
}

export type PayloadValidator = (value: unknown) => MsbValidationError | undefined;

/**
 * A validator for values of `format.dataObject`, with the format's other keys as `#/definitions/…`. Compiled once
 * per distinct format; later calls with an equal format reuse it.
 */
export function validatorFor(format: DataFormat): PayloadValidator {
  const key = JSON.stringify(format);
  let validate = cache.get(key);
  if (!validate) {
    const { dataObject, ...definitions } = format;
    shared ??= makeAjv();
    validate = shared.compile({ definitions, allOf: [dataObject] });
    cache.set(key, validate);
  }
  const fn = validate;
  return (value) => (fn(value) ? undefined : describe(fn.errors?.[0]));
}

function describe(error: ErrorObject | undefined): MsbValidationError {
  if (!error) return new MsbValidationError('payload', 'does not match the data format');
  const path =
    'payload' +
    error.instancePath
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
      .join('');
  let rule = `${error.keyword}: ${error.message ?? 'does not match'}`;
  if (error.keyword === 'additionalProperties')
    rule += ` (${String((error.params as { additionalProperty?: string }).additionalProperty)})`;
  if (error.keyword === 'enum')
    rule += ` (${JSON.stringify((error.params as { allowedValues?: unknown }).allowedValues)})`;
  return new MsbValidationError(path, rule);
}

/**
 * Converts JavaScript values a flow naturally holds into the wire form of the format: a Date becomes an ISO
 * date-time string, a Buffer becomes base64 for `byte` (also inside arrays of them). Anything else is unchanged.
 */
export function toWireValue(format: DataFormat | undefined, value: unknown): unknown {
  return wireConverter(format)(value);
}

const unchanged = (value: unknown): unknown => value;

/** `toWireValue` for one format, decided once (a node converts every msg with the same format). */
export function wireConverter(format: DataFormat | undefined): (value: unknown) => unknown {
  if (!format) return unchanged;
  const root = format.dataObject;
  const items =
    root.type === 'array' && typeof root.items === 'object' && root.items !== null
      ? (root.items as Record<string, unknown>)
      : undefined;
  const convert = (schema: Record<string, unknown>): ((v: unknown) => unknown) | undefined => {
    if (schema.format === 'date-time') return (v) => (v instanceof Date ? v.toISOString() : v);
    if (schema.format === 'byte') return (v) => (Buffer.isBuffer(v) ? v.toString('base64') : v);
    return undefined;
  };
  const single = convert(root);
  const each = items ? convert(items) : undefined;
  if (!single && !each) return unchanged;
  return (value) => {
    if (each && Array.isArray(value)) return value.map(each);
    return single ? single(value) : value;
  };
}
