// Compiles (module, interface) into the topic plan, subscriptions and ajv validators both adapters execute.
import type { ErrorObject, ValidateFunction } from 'ajv';
import { lazy } from '../common/lazy';
import { findInterface, Interface, Module, Operation, Param, Signal, TypeRef } from './module';

/** A value or argument list that breaks the IDL: names the member and the rule, so a Catch node can say why. */
export class ApiGearValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiGearValueError';
  }
}

export interface Check {
  /** Throws ApiGearValueError naming `where` and the rule broken. */
  (value: unknown): void;
}

export interface OperationPlan {
  name: string;
  params: Param[];
  returns: TypeRef;
  void: boolean;
  /** `M/I/rpc/<op>`: where requests are published. */
  topic: string;
  checkArgs(args: unknown[]): void;
  checkResult(value: unknown): void;
  /** The conventional reply topic for a caller (`M/I/rpc/<op>/<clientId>/result`). Services never build it; they use ResponseTopic. */
  responseTopic(clientId: string): string;
}

export interface SignalPlan {
  name: string;
  params: Param[];
  topic: string;
  checkArgs(args: unknown[]): void;
}

export interface PropertyPlan {
  name: string;
  type: TypeRef;
  readonly: boolean;
  /** `M/I/prop/<p>`, retained, service → clients. */
  topic: string;
  /** `M/I/set/<p>`, client → service. */
  setTopic: string;
  check: Check;
}

export interface InterfacePlan {
  module: string;
  interface: string;
  /** `{module}/{Interface}`: module name with its dots, IDL spelling throughout. */
  prefix: string;
  properties: Map<string, PropertyPlan>;
  operations: Map<string, OperationPlan>;
  signals: Map<string, SignalPlan>;
  /** What a service subscribes to: `M/I/set/+` and `M/I/rpc/+` (single level, so reply topics never match). */
  serviceSubscriptions: string[];
  /** What a client with this id subscribes to: `M/I/prop/+`, `M/I/sig/+`, `M/I/rpc/+/<clientId>/result`. */
  clientSubscriptions(clientId: string): string[];
  /** Splits an incoming topic of this interface into verb and member, or undefined if it is not ours. */
  route(topic: string): { verb: 'prop' | 'set' | 'sig' | 'rpc' | 'result'; member: string } | undefined;
}

const INT32 = { minimum: -2147483648, maximum: 2147483647 };

type Schema = Record<string, unknown>;

function primitiveSchema(type: string): Schema | undefined {
  switch (type) {
    case 'bool':
      return { type: 'boolean' };
    case 'int':
    case 'int32':
      return { type: 'integer', ...INT32 };
    case 'int64':
      // JSON numbers in JavaScript are exact only to 2^53; beyond that a value would silently change.
      return { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER };
    case 'float':
    case 'float32':
    case 'float64':
      return { type: 'number' };
    case 'string':
      return { type: 'string' };
    case 'any':
      return {};
    default:
      return undefined;
  }
}

function typeSchema(mod: Module, t: TypeRef): Schema {
  let base: Schema;
  const prim = primitiveSchema(t.type);
  if (prim) base = prim;
  else if (mod.externs.includes(t.type)) base = {};
  else base = { $ref: `apigear#/definitions/${t.type}` };
  return t.array ? { type: 'array', items: base } : base;
}

function definitions(mod: Module): Schema {
  const defs: Schema = {};
  for (const e of mod.enums) {
    defs[e.name] = { type: 'integer', enum: e.members.map((m) => m.value) };
  }
  for (const s of mod.structs) {
    const properties: Schema = {};
    for (const f of s.fields) properties[f.name] = typeSchema(mod, f);
    defs[s.name] = { type: 'object', properties, required: s.fields.map((f) => f.name), additionalProperties: false };
  }
  return defs;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return String(value);
}

function pathOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('');
}

function valueAt(root: unknown, instancePath: string): unknown {
  let v: unknown = root;
  for (const seg of instancePath.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    // Keys come from the wire: own properties only, so "__proto__" or "constructor" never reach Object.prototype.
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    v = Object.prototype.hasOwnProperty.call(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  return v;
}

function rule(e: ErrorObject, mod: Module, value: unknown): string {
  const got = describe(valueAt(value, e.instancePath));
  switch (e.keyword) {
    case 'type':
      return `must be ${e.params.type === 'integer' ? 'an integer' : `of type ${String(e.params.type)}`} (got ${got})`;
    case 'enum': {
      const ref = /definitions\/([^/]+)\/enum$/.exec(e.schemaPath);
      const decl = ref ? mod.enums.find((x) => x.name === ref[1]) : undefined;
      const allowed = decl
        ? decl.members.map((m) => `${m.value} (${m.name})`).join(', ')
        : (e.params.allowedValues as unknown[]).join(', ');
      return `must be ${decl ? `a ${decl.name} value` : 'one of'}: ${allowed} (got ${got})`;
    }
    case 'required':
      return `must have field ${String(e.params.missingProperty)}`;
    case 'additionalProperties':
      return `has no field ${String(e.params.additionalProperty)}`;
    case 'minimum':
    case 'maximum':
      return `must be ${e.keyword === 'minimum' ? '>=' : '<='} ${String(e.params.limit)} (got ${got})`;
    default:
      return `${e.message ?? 'is invalid'} (got ${got})`;
  }
}

/** ajv is loaded by the first plan compiled, not by Node-RED's start. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see lazy), not at start
const AjvClass = lazy(() => (require('ajv') as typeof import('ajv')).default);

/** One ajv instance per plan: the module's structs and enums are added once as `apigear#/definitions/*`. */
function makeCompiler(mod: Module): (t: TypeRef, where: string) => Check {
  const ajv = new (AjvClass())({ allErrors: false, strict: true });
  ajv.addSchema({ $id: 'apigear', definitions: definitions(mod) });
  return (t, where) => {
    const validate: ValidateFunction = ajv.compile(typeSchema(mod, t));
    return (value: unknown) => {
      if (value === undefined) throw new ApiGearValueError(`${where}: a value is required`);
      if (!validate(value)) {
        const e = validate.errors?.[0];
        throw new ApiGearValueError(
          `${where}${e ? pathOf(e.instancePath) : ''}: ${e ? rule(e, mod, value) : 'is invalid'}`,
        );
      }
    };
  };
}

function argsCheck(
  itf: string,
  member: string,
  params: Param[],
  compile: (t: TypeRef, where: string) => Check,
): (args: unknown[]) => void {
  const checks = params.map((p) => compile(p, `${itf}.${member}(${p.name})`));
  return (args) => {
    if (!Array.isArray(args)) throw new ApiGearValueError(`${itf}.${member}: arguments must be a JSON array`);
    if (args.length !== params.length) {
      throw new ApiGearValueError(
        `${itf}.${member}: expects ${params.length} argument${params.length === 1 ? '' : 's'} (${params.map((p) => p.name).join(', ')}), got ${args.length}`,
      );
    }
    checks.forEach((check, i) => check(args[i]));
  };
}

export function compilePlan(mod: Module, interfaceName: string): InterfacePlan {
  const itf: Interface = findInterface(mod, interfaceName);
  const prefix = `${mod.name}/${itf.name}`;
  const compile = makeCompiler(mod);
  const properties = new Map<string, PropertyPlan>();
  for (const p of itf.properties) {
    properties.set(p.name, {
      name: p.name,
      type: { type: p.type, array: p.array },
      readonly: p.readonly,
      topic: `${prefix}/prop/${p.name}`,
      setTopic: `${prefix}/set/${p.name}`,
      check: compile(p, `${itf.name}.${p.name}`),
    });
  }
  const operations = new Map<string, OperationPlan>();
  for (const o of itf.operations) operations.set(o.name, operationPlan(prefix, itf.name, o, compile));
  const signals = new Map<string, SignalPlan>();
  for (const s of itf.signals) signals.set(s.name, signalPlan(prefix, itf.name, s, compile));
  const levels = prefix.split('/').length;
  return {
    module: mod.name,
    interface: itf.name,
    prefix,
    properties,
    operations,
    signals,
    serviceSubscriptions: [`${prefix}/set/+`, `${prefix}/rpc/+`],
    clientSubscriptions: (clientId) => [`${prefix}/prop/+`, `${prefix}/sig/+`, `${prefix}/rpc/+/${clientId}/result`],
    route(topic) {
      if (!topic.startsWith(`${prefix}/`)) return undefined;
      const rest = topic.split('/').slice(levels);
      const [verb, member] = rest;
      if (member === undefined) return undefined;
      if (rest.length === 2 && (verb === 'prop' || verb === 'set' || verb === 'sig' || verb === 'rpc'))
        return { verb, member };
      if (rest.length === 4 && verb === 'rpc' && rest[3] === 'result') return { verb: 'result', member };
      return undefined;
    },
  };
}

function operationPlan(
  prefix: string,
  itf: string,
  o: Operation,
  compile: (t: TypeRef, where: string) => Check,
): OperationPlan {
  const isVoid = o.return.type === 'void' && !o.return.array;
  const checkReturn = isVoid ? undefined : compile(o.return, `${itf}.${o.name} return value`);
  return {
    name: o.name,
    params: o.params,
    returns: o.return,
    void: isVoid,
    topic: `${prefix}/rpc/${o.name}`,
    checkArgs: argsCheck(itf, o.name, o.params, compile),
    // Void replies differ between implementations (C++ sends none, Python sends 0), so nothing is checked for them.
    checkResult: (value) => checkReturn?.(value),
    responseTopic: (clientId) => `${prefix}/rpc/${o.name}/${clientId}/result`,
  };
}

function signalPlan(prefix: string, itf: string, s: Signal, compile: (t: TypeRef, where: string) => Check): SignalPlan {
  return {
    name: s.name,
    params: s.params,
    topic: `${prefix}/sig/${s.name}`,
    checkArgs: argsCheck(itf, s.name, s.params, compile),
  };
}

/**
 * Flow-side argument lists: a JSON array in declaration order (the wire form), or an object keyed by parameter
 * names (handier in a Function node). Anything else is rejected rather than guessed at.
 */
export function argsFromPayload(itf: string, member: string, params: Param[], payload: unknown): unknown[] {
  if (Array.isArray(payload)) return payload;
  if ((payload === undefined || payload === null || payload === '') && params.length === 0) return [];
  if (payload !== null && typeof payload === 'object' && !Buffer.isBuffer(payload)) {
    const named = payload as Record<string, unknown>;
    for (const key of Object.keys(named)) {
      if (!params.some((p) => p.name === key)) {
        throw new ApiGearValueError(
          `${itf}.${member}: has no parameter ${key} (parameters: ${params.map((p) => p.name).join(', ') || 'none'})`,
        );
      }
    }
    return params.map((p) => {
      if (!(p.name in named)) throw new ApiGearValueError(`${itf}.${member}(${p.name}): argument is missing`);
      return named[p.name];
    });
  }
  const shape = params.map((p) => p.name).join(', ');
  throw new ApiGearValueError(
    `${itf}.${member}: arguments must be an array [${shape}] or an object {${shape}} (got ${describe(payload)})`,
  );
}

/** The inverse for flow outputs: positional wire arguments as an object keyed by parameter names. */
export function namedArgs(params: Param[], args: unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  params.forEach((p, i) => {
    out[p.name] = args[i];
  });
  return out;
}
