// ApiGear module IDL (`schema: apigear.module/1.0`): parsed from YAML into a checked, typed model.
import { lazy } from '../common/lazy';
import { isRecord, messageOf } from '../common/guards';

/** yaml is loaded by the first module parsed, not by Node-RED's start. */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use (see lazy), not at start
const yaml = lazy(() => require('yaml') as typeof import('yaml'));

/** A type reference as the IDL writes it: a primitive, an enum, a struct or an extern, optionally an array. */
export interface TypeRef {
  /** `bool`, `int`, `int32`, `int64`, `float`, `float32`, `float64`, `string`, `void`, `any`, or a declared name. */
  type: string;
  array: boolean;
}

export interface Param extends TypeRef {
  name: string;
}

export interface Property extends TypeRef {
  name: string;
  readonly: boolean;
}

export interface Operation {
  name: string;
  params: Param[];
  /** `{ type: 'void', array: false }` when the IDL has no return. */
  return: TypeRef;
}

export interface Signal {
  name: string;
  params: Param[];
}

export interface Interface {
  name: string;
  properties: Property[];
  operations: Operation[];
  signals: Signal[];
}

export interface EnumMember {
  name: string;
  value: number;
}

export interface EnumDecl {
  name: string;
  members: EnumMember[];
}

export interface StructDecl {
  name: string;
  fields: Param[];
}

export interface Module {
  name: string;
  version: string;
  interfaces: Interface[];
  structs: StructDecl[];
  enums: EnumDecl[];
  /** Extern type names: their JSON shape is module-specific, so values of these types are not checked. */
  externs: string[];
}

/** The IDL's built-in types. `any` is ours: hand-declared members without a type accept any JSON value. */
export const PRIMITIVES = ['bool', 'int', 'int32', 'int64', 'float', 'float32', 'float64', 'string', 'any'] as const;

export class ModuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModuleError';
  }
}

type Raw = Record<string, unknown>;

function list(v: unknown, where: string): Raw[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ModuleError(`${where} must be a list`);
  return v.map((item, i) => {
    if (!isRecord(item)) throw new ModuleError(`${where}[${i}] must be a mapping`);
    return item;
  });
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Module names are dotted identifiers (`io.world`, `tb.simple`); they become the first topic level verbatim. */
const MODULE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function name(raw: Raw, where: string): string {
  const n = raw.name;
  if (typeof n !== 'string' || !NAME.test(n))
    throw new ModuleError(`${where}: name must be an identifier (got ${JSON.stringify(n)})`);
  return n;
}

/** Reads `type` (with an optional `[]` suffix) and `array`; a missing type is `void` for returns, an error elsewhere. */
export function typeRef(raw: Raw, where: string, missing?: string): TypeRef {
  let t = raw.type;
  if (t === undefined || t === null || t === '') {
    if (missing === undefined) throw new ModuleError(`${where}: type is missing`);
    t = missing;
  }
  if (typeof t !== 'string') throw new ModuleError(`${where}: type must be a string`);
  let array = raw.array === true;
  let base = t.trim();
  if (base.endsWith('[]')) {
    array = true;
    base = base.slice(0, -2).trim();
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.]*$/.test(base))
    throw new ModuleError(`${where}: type ${JSON.stringify(t)} is not a type name`);
  return { type: base, array };
}

function params(raw: unknown, where: string): Param[] {
  const seen = new Set<string>();
  return list(raw, `${where}.params`).map((p, i) => {
    const n = name(p, `${where}.params[${i}]`);
    if (seen.has(n)) throw new ModuleError(`${where}: parameter ${n} is declared twice`);
    seen.add(n);
    return { name: n, ...typeRef(p, `${where}(${n})`) };
  });
}

function unique<T extends { name: string }>(items: T[], where: string): T[] {
  const seen = new Set<string>();
  for (const item of items) {
    if (seen.has(item.name)) throw new ModuleError(`${where}: ${item.name} is declared twice`);
    seen.add(item.name);
  }
  return items;
}

function parseInterface(raw: Raw, i: number): Interface {
  const n = name(raw, `interfaces[${i}]`);
  const properties = list(raw.properties, `${n}.properties`).map((p, j) => {
    const pn = name(p, `${n}.properties[${j}]`);
    return { name: pn, readonly: p.readonly === true, ...typeRef(p, `${n}.${pn}`) };
  });
  const operations = list(raw.operations, `${n}.operations`).map((o, j) => {
    const on = name(o, `${n}.operations[${j}]`);
    const ret = o.return;
    let returns: TypeRef = { type: 'void', array: false };
    if (typeof ret === 'string') returns = typeRef({ type: ret }, `${n}.${on} return`, 'void');
    else if (isRecord(ret)) returns = typeRef(ret, `${n}.${on} return`, 'void');
    else if (ret !== undefined && ret !== null)
      throw new ModuleError(`${n}.${on}: return must be a mapping with a type`);
    return { name: on, params: params(o.params, `${n}.${on}`), return: returns };
  });
  const signals = list(raw.signals, `${n}.signals`).map((s, j) => {
    const sn = name(s, `${n}.signals[${j}]`);
    return { name: sn, params: params(s.params, `${n}.${sn}`) };
  });
  return {
    name: n,
    properties: unique(properties, `${n}.properties`),
    operations: unique(operations, `${n}.operations`),
    signals: unique(signals, `${n}.signals`),
  };
}

/** Checks that every referenced type is a primitive or declared here, so the validators never meet a dangling name. */
export function checkTypes(mod: Module): void {
  const known = new Set<string>([
    ...PRIMITIVES,
    ...mod.structs.map((s) => s.name),
    ...mod.enums.map((e) => e.name),
    ...mod.externs,
  ]);
  const check = (t: TypeRef, where: string, voidOk = false): void => {
    if (t.type === 'void' && voidOk && !t.array) return;
    if (!known.has(t.type)) throw new ModuleError(`${where}: unknown type ${t.type}`);
  };
  for (const s of mod.structs) for (const f of s.fields) check(f, `${s.name}.${f.name}`);
  for (const itf of mod.interfaces) {
    for (const p of itf.properties) check(p, `${itf.name}.${p.name}`);
    for (const o of itf.operations) {
      for (const p of o.params) check(p, `${itf.name}.${o.name}(${p.name})`);
      check(o.return, `${itf.name}.${o.name} return`, true);
    }
    for (const s of itf.signals) for (const p of s.params) check(p, `${itf.name}.${s.name}(${p.name})`);
  }
}

/** Parses an already-loaded module document (what `yaml.parse` returns). */
export function moduleFromObject(doc: unknown): Module {
  if (!isRecord(doc)) throw new ModuleError('the module must be a YAML mapping');
  const schema = doc.schema;
  if (schema !== undefined && (typeof schema !== 'string' || !schema.startsWith('apigear.module/'))) {
    throw new ModuleError(`schema must be apigear.module/1.0 (got ${JSON.stringify(schema)})`);
  }
  const modName = doc.name;
  if (typeof modName !== 'string' || !MODULE_NAME.test(modName)) {
    throw new ModuleError(`module name must be a dotted identifier such as io.world (got ${JSON.stringify(modName)})`);
  }
  const enums = list(doc.enums, 'enums').map((e, i): EnumDecl => {
    const en = name(e, `enums[${i}]`);
    let next = 0;
    const members = list(e.members, `${en}.members`).map((m, j) => {
      const mn = name(m, `${en}.members[${j}]`);
      // Members without a value count on from the previous one, as the IDL's generators do.
      const value = m.value === undefined ? next : m.value;
      if (typeof value !== 'number' || !Number.isInteger(value))
        throw new ModuleError(`${en}.${mn}: value must be an integer`);
      next = value + 1;
      return { name: mn, value };
    });
    if (members.length === 0) throw new ModuleError(`enum ${en} has no members`);
    return { name: en, members: unique(members, `${en}.members`) };
  });
  const structs = list(doc.structs, 'structs').map((s, i): StructDecl => {
    const sn = name(s, `structs[${i}]`);
    const fields = list(s.fields, `${sn}.fields`).map((f, j) => {
      const fn = name(f, `${sn}.fields[${j}]`);
      return { name: fn, ...typeRef(f, `${sn}.${fn}`) };
    });
    return { name: sn, fields: unique(fields, `${sn}.fields`) };
  });
  const externs = list(doc.externs, 'externs').map((x, i) => name(x, `externs[${i}]`));
  const mod: Module = {
    name: modName,
    version: doc.version === undefined ? '' : String(doc.version),
    interfaces: unique(list(doc.interfaces, 'interfaces').map(parseInterface), 'interfaces'),
    structs: unique(structs, 'structs'),
    enums: unique(enums, 'enums'),
    externs,
  };
  const typeNames = new Set<string>();
  for (const t of [...mod.structs, ...mod.enums]) {
    if (typeNames.has(t.name)) throw new ModuleError(`type ${t.name} is declared twice`);
    if ((PRIMITIVES as readonly string[]).includes(t.name))
      throw new ModuleError(`type ${t.name} shadows a built-in type`);
    typeNames.add(t.name);
  }
  checkTypes(mod);
  return mod;
}

/** Parses module YAML text. Errors name the YAML line (syntax) or the declaration (model) that is wrong. */
export function parseModule(text: string): Module {
  let doc: unknown;
  try {
    doc = yaml().parse(text);
  } catch (err) {
    throw new ModuleError(`module YAML does not parse: ${messageOf(err)}`);
  }
  return moduleFromObject(doc);
}

export function findInterface(mod: Module, interfaceName: string): Interface {
  const itf = mod.interfaces.find((i) => i.name === interfaceName);
  if (!itf) {
    const names = mod.interfaces.map((i) => i.name).join(', ') || 'none';
    throw new ModuleError(
      `module ${mod.name} has no interface ${JSON.stringify(interfaceName)} (it declares: ${names})`,
    );
  }
  return itf;
}

/** One member listed by hand in the editor instead of pasting a module. */
export interface HandMember {
  kind: 'property' | 'operation' | 'signal';
  name: string;
  /** Property type or operation return type: a primitive, optionally with `[]`; empty means any JSON (or void). */
  type?: string;
  /** Operation or signal parameters as `name: type, name: type` (types optional, default any). */
  params?: string;
}

/** Parses `a: int, b: string[], c` into params; a missing type accepts any JSON value. */
export function parseParamList(text: string, where: string): Param[] {
  const out: Param[] = [];
  for (const piece of text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const [rawName = '', rawType] = piece.split(':').map((s) => s.trim());
    if (!NAME.test(rawName))
      throw new ModuleError(`${where}: parameter ${JSON.stringify(rawName)} is not an identifier`);
    out.push({ name: rawName, ...typeRef({ type: rawType }, `${where}(${rawName})`, 'any') });
  }
  return unique(out, `${where} parameters`);
}

/** Builds a one-interface module from hand-listed members (primitive types only, since no structs are declared). */
export function moduleFromMembers(moduleName: string, interfaceName: string, members: HandMember[]): Module {
  if (!MODULE_NAME.test(moduleName))
    throw new ModuleError(
      `module name must be a dotted identifier such as io.world (got ${JSON.stringify(moduleName)})`,
    );
  if (!NAME.test(interfaceName))
    throw new ModuleError(`interface name must be an identifier (got ${JSON.stringify(interfaceName)})`);
  const itf: Interface = { name: interfaceName, properties: [], operations: [], signals: [] };
  members.forEach((m, i) => {
    const n = name(m as unknown as Raw, `member ${i + 1}`);
    if (m.kind === 'property')
      itf.properties.push({ name: n, readonly: false, ...typeRef({ type: m.type }, `${interfaceName}.${n}`, 'any') });
    else if (m.kind === 'operation') {
      itf.operations.push({
        name: n,
        params: parseParamList(m.params ?? '', `${interfaceName}.${n}`),
        return: typeRef({ type: m.type }, `${interfaceName}.${n} return`, 'void'),
      });
    } else if (m.kind === 'signal')
      itf.signals.push({ name: n, params: parseParamList(m.params ?? '', `${interfaceName}.${n}`) });
    else throw new ModuleError(`member ${n}: kind must be property, operation or signal`);
  });
  unique(itf.properties, `${interfaceName}.properties`);
  unique(itf.operations, `${interfaceName}.operations`);
  unique(itf.signals, `${interfaceName}.signals`);
  const mod: Module = { name: moduleName, version: '', interfaces: [itf], structs: [], enums: [], externs: [] };
  checkTypes(mod);
  return mod;
}
