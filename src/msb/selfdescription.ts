// Compiles a service's declarations (identity, events, functions, configuration parameters) into the MSB
// self-description sent with `R`: a pure function, validated at definition time with errors that name the field.

export const SIMPLE_TYPES = ['string', 'int32', 'int64', 'float', 'double', 'boolean', 'date-time', 'byte'] as const;
export type SimpleType = (typeof SIMPLE_TYPES)[number];
export const SERVICE_CLASSES = ['SmartObject', 'Application'] as const;
export type ServiceClass = (typeof SERVICE_CLASSES)[number];

/** How a declaration describes its payload. `none` = the event/function carries no dataObject. */
export type DataFormatDeclaration =
  | { kind: 'none' }
  | { kind: 'simple'; type: SimpleType; isArray?: boolean }
  /** `schema`: a JSON schema (object or JSON text), either a bare schema or a full MSB dataFormat with `dataObject`. */
  | { kind: 'complex'; schema: unknown; isArray?: boolean };

export interface EventDeclaration {
  eventId: string;
  name?: string;
  description?: string;
  dataFormat: DataFormatDeclaration;
}

export interface FunctionDeclaration {
  functionId: string;
  name?: string;
  description?: string;
  dataFormat: DataFormatDeclaration;
  /** eventIds of this service's events the function answers with. */
  responseEvents?: string[];
}

export interface ConfigParameterDeclaration {
  name: string;
  type: SimpleType;
  value: unknown;
}

export interface ServiceDeclaration {
  uuid: string;
  name: string;
  description?: string;
  serviceClass: ServiceClass;
  token?: string;
  parameters?: ConfigParameterDeclaration[];
}

/** A JSON schema object (draft-04 subset) as used in an MSB dataFormat. */
export type SchemaObject = { [key: string]: unknown };
/** `dataObject` is the payload schema; every other key is a definition referenced as `#/definitions/<key>`. */
export type DataFormat = { dataObject: SchemaObject; [definition: string]: SchemaObject };

export interface SelfDescriptionEvent {
  '@id': number;
  eventId: string;
  name: string;
  description: string;
  dataFormat?: DataFormat;
}

export interface SelfDescriptionFunction {
  functionId: string;
  name: string;
  description: string;
  dataFormat?: DataFormat;
  responseEvents: number[];
}

export interface ConfigParameterValue {
  value: unknown;
  type: string;
  format?: string;
}

export interface SelfDescription {
  '@class': ServiceClass;
  uuid: string;
  name: string;
  description: string;
  token: string;
  events: SelfDescriptionEvent[];
  functions: SelfDescriptionFunction[];
  configuration: { parameters: Record<string, ConfigParameterValue> };
}

/** A declaration that cannot become a valid self-description. `field` names where, e.g. `events[TEMP].dataFormat`. */
export class MsbDefinitionError extends Error {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(`${field}: ${rule}`);
    this.name = 'MsbDefinitionError';
  }
}

const SIMPLE_SCHEMAS: Record<SimpleType, SchemaObject> = {
  string: { type: 'string' },
  int32: { type: 'integer', format: 'int32' },
  int64: { type: 'integer', format: 'int64' },
  float: { type: 'number', format: 'float' },
  double: { type: 'number', format: 'double' },
  boolean: { type: 'boolean' },
  'date-time': { type: 'string', format: 'date-time' },
  byte: { type: 'string', format: 'byte' },
};

/** The configuration parameter type/format pair, uppercase as the Python and Node.js clients write it. */
const PARAMETER_TYPES: Record<SimpleType, { type: string; format?: string }> = {
  string: { type: 'STRING' },
  int32: { type: 'INTEGER', format: 'INT32' },
  int64: { type: 'INTEGER', format: 'INT64' },
  float: { type: 'NUMBER', format: 'FLOAT' },
  double: { type: 'NUMBER', format: 'DOUBLE' },
  boolean: { type: 'BOOLEAN' },
  'date-time': { type: 'STRING', format: 'DATE-TIME' },
  byte: { type: 'STRING', format: 'BYTE' },
};

/** Keys the MSB's dataFormat meta-schema allows in a schema object (event_schema.json of the official clients). */
const ALLOWED_KEYS = new Set([
  '$ref',
  'format',
  'title',
  'description',
  'default',
  'multipleOf',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'maxProperties',
  'minProperties',
  'required',
  'enum',
  'additionalProperties',
  'type',
  'items',
  'allOf',
  'properties',
  'discriminator',
  'readOnly',
  'example',
]);
const JSON_TYPES = new Set(['array', 'boolean', 'integer', 'null', 'number', 'object', 'string']);
const REF_PREFIX = '#/definitions/';

export function isSimpleType(value: unknown): value is SimpleType {
  return typeof value === 'string' && (SIMPLE_TYPES as readonly string[]).includes(value);
}

/**
 * Turns one data-format declaration into an MSB dataFormat (undefined for `none`). Complex schemas may be a bare
 * JSON schema (its `definitions`, nested at any depth, are hoisted to the top level) or a full dataFormat with
 * `dataObject`. `field` prefixes error messages.
 */
export function compileDataFormat(decl: DataFormatDeclaration, field = 'dataFormat'): DataFormat | undefined {
  if (decl.kind === 'none') return undefined;
  let format: DataFormat;
  if (decl.kind === 'simple') {
    if (!isSimpleType(decl.type)) {
      throw new MsbDefinitionError(
        `${field}.type`,
        `unknown data type ${JSON.stringify(decl.type)}; use one of ${SIMPLE_TYPES.join(', ')}`,
      );
    }
    const item = { ...SIMPLE_SCHEMAS[decl.type] };
    format = { dataObject: decl.isArray ? { type: 'array', items: item } : item };
  } else if (decl.kind === 'complex') {
    format = complexFormat(decl.schema, field);
    if (decl.isArray) {
      const root = format.dataObject;
      format.dataObject = { type: 'array', items: typeof root.$ref === 'string' ? { $ref: root.$ref } : root };
    }
  } else {
    throw new MsbDefinitionError(`${field}.kind`, `must be none, simple or complex`);
  }
  checkDataFormat(format, field);
  return format;
}

function complexFormat(schema: unknown, field: string): DataFormat {
  let value = schema;
  if (typeof value === 'string') {
    if (value.trim() === '')
      throw new MsbDefinitionError(`${field}.schema`, 'a complex data format needs a JSON schema');
    try {
      value = JSON.parse(value) as unknown;
    } catch (err) {
      throw new MsbDefinitionError(`${field}.schema`, `is not valid JSON (${(err as Error).message})`);
    }
  }
  if (!isObject(value)) throw new MsbDefinitionError(`${field}.schema`, 'must be a JSON object');
  const definitions: Record<string, SchemaObject> = {};
  let root: SchemaObject;
  if (isObject(value.dataObject)) {
    // A full dataFormat: keep it, but still hoist any nested `definitions` blocks.
    for (const [key, def] of Object.entries(value)) {
      if (key === 'dataObject') continue;
      if (!isObject(def)) throw new MsbDefinitionError(`${field}.schema.${key}`, 'a definition must be a JSON object');
      definitions[key] = hoist(def, definitions, `${field}.schema.${key}`);
    }
    root = hoist(value.dataObject, definitions, `${field}.schema.dataObject`);
  } else {
    root = hoist(value, definitions, `${field}.schema`);
  }
  // A complex root is an object described by a reference (the official clients emit `$ref` + `type: object`).
  if (typeof root.$ref === 'string' && root.type === undefined) root = { ...root, type: 'object' };
  return { dataObject: root, ...definitions };
}

/** Moves `definitions` (at any depth) into `into`, returning the schema without them. */
function hoist(schema: SchemaObject, into: Record<string, SchemaObject>, field: string): SchemaObject {
  const out: SchemaObject = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key === 'definitions' || key === '$schema' || key === '$id' || key === 'id') {
      if (key !== 'definitions') continue;
      if (!isObject(value)) throw new MsbDefinitionError(`${field}.definitions`, 'must be an object of named schemas');
      for (const [name, def] of Object.entries(value)) {
        if (name === 'dataObject')
          throw new MsbDefinitionError(
            `${field}.definitions.dataObject`,
            '"dataObject" is reserved for the payload schema',
          );
        if (!isObject(def)) throw new MsbDefinitionError(`${field}.definitions.${name}`, 'must be a JSON object');
        const hoisted = hoist(def, into, `${field}.definitions.${name}`);
        if (into[name] !== undefined && JSON.stringify(into[name]) !== JSON.stringify(hoisted)) {
          throw new MsbDefinitionError(`${field}.definitions.${name}`, 'is defined twice with different content');
        }
        into[name] = hoisted;
      }
      continue;
    }
    out[key] = hoistChildren(key, value, into, `${field}.${key}`);
  }
  return out;
}

function hoistChildren(key: string, value: unknown, into: Record<string, SchemaObject>, field: string): unknown {
  if (key === 'properties' && isObject(value)) {
    const props: SchemaObject = {};
    for (const [name, sub] of Object.entries(value))
      props[name] = isObject(sub) ? hoist(sub, into, `${field}.${name}`) : sub;
    return props;
  }
  if ((key === 'items' || key === 'additionalProperties') && isObject(value)) return hoist(value, into, field);
  if (key === 'allOf' && Array.isArray(value))
    return (value as unknown[]).map((sub, i) => (isObject(sub) ? hoist(sub, into, `${field}[${i}]`) : sub));
  return value;
}

/** Definition-time check against the MSB dataFormat meta-schema: allowed keys, draft-04 types, resolvable refs. */
export function checkDataFormat(format: DataFormat, field = 'dataFormat'): void {
  if (!isObject(format) || !isObject(format.dataObject))
    throw new MsbDefinitionError(field, 'must contain a dataObject schema');
  for (const [name, schema] of Object.entries(format)) {
    if (!/^[A-Za-z0-9_.-]+$/.test(name))
      throw new MsbDefinitionError(`${field}.${name}`, 'definition names may only use letters, digits, _ . -');
    checkSchema(schema, format, `${field}.${name}`);
  }
}

function checkSchema(schema: unknown, format: DataFormat, field: string): void {
  if (!isObject(schema)) throw new MsbDefinitionError(field, 'must be a JSON schema object');
  for (const [key, value] of Object.entries(schema)) {
    if (!ALLOWED_KEYS.has(key))
      throw new MsbDefinitionError(`${field}.${key}`, `keyword "${key}" is not allowed in an MSB data format`);
    if (key === 'type') {
      const types = Array.isArray(value) ? value : [value];
      for (const t of types) {
        if (typeof t !== 'string' || !JSON_TYPES.has(t))
          throw new MsbDefinitionError(`${field}.type`, `${JSON.stringify(t)} is not a JSON schema type`);
      }
    }
    if (key === '$ref') {
      if (typeof value !== 'string' || !value.startsWith(REF_PREFIX)) {
        throw new MsbDefinitionError(`${field}.$ref`, `must be "${REF_PREFIX}<Name>"`);
      }
      const target = value.slice(REF_PREFIX.length);
      if (target === 'dataObject' || !Object.prototype.hasOwnProperty.call(format, target)) {
        throw new MsbDefinitionError(`${field}.$ref`, `refers to "${value}", which is not defined`);
      }
    }
    if (key === 'properties') {
      if (!isObject(value)) throw new MsbDefinitionError(`${field}.properties`, 'must be an object');
      for (const [name, sub] of Object.entries(value)) checkSchema(sub, format, `${field}.properties.${name}`);
    }
    if (key === 'items') {
      if (Array.isArray(value)) value.forEach((sub, i) => checkSchema(sub, format, `${field}.items[${i}]`));
      else checkSchema(value, format, `${field}.items`);
    }
    if (key === 'additionalProperties' && typeof value !== 'boolean')
      checkSchema(value, format, `${field}.additionalProperties`);
    if (key === 'allOf') {
      if (!Array.isArray(value)) throw new MsbDefinitionError(`${field}.allOf`, 'must be an array');
      value.forEach((sub, i) => checkSchema(sub, format, `${field}.allOf[${i}]`));
    }
    if (key === 'required' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      throw new MsbDefinitionError(`${field}.required`, 'must be an array of property names');
    }
  }
}

/** Converts a configuration parameter's value to its declared type; throws naming the parameter if it cannot. */
export function coerceParameterValue(type: SimpleType, value: unknown, field: string): unknown {
  const bad = (rule: string): never => {
    throw new MsbDefinitionError(field, `${JSON.stringify(value)} ${rule}`);
  };
  switch (type) {
    case 'boolean':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(true|false)$/i.test(value.trim()))
        return value.trim().toLowerCase() === 'true';
      return bad('is not a boolean (true/false)');
    case 'int32':
    case 'int64': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n)) return bad('is not an integer');
      if (type === 'int32' && (n < -2147483648 || n > 2147483647)) return bad('is outside the int32 range');
      return n;
    }
    case 'float':
    case 'double': {
      const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isFinite(n)) return bad('is not a number');
      return n;
    }
    case 'date-time':
      if (value instanceof Date) return value.toISOString();
      if (typeof value === 'string' && !Number.isNaN(Date.parse(value))) return value;
      return bad('is not an ISO 8601 date-time');
    case 'byte':
    case 'string':
      if (typeof value === 'string') return value;
      if (typeof value === 'number' || typeof value === 'boolean') return String(value);
      return bad('is not a string');
    default:
      return bad(`has unknown type ${JSON.stringify(type)}`);
  }
}

export function parameterTypeOf(type: SimpleType): { type: string; format?: string } {
  return PARAMETER_TYPES[type];
}

/** Maps a parameter's wire type/format (either case, as clients differ) back to a declaration type. */
export function simpleTypeOfParameter(type: string, format?: string): SimpleType | undefined {
  const t = type.toLowerCase();
  const f = format?.toLowerCase();
  if (t === 'boolean') return 'boolean';
  if (t === 'integer') return f === 'int32' ? 'int32' : 'int64';
  if (t === 'number') return f === 'float' ? 'float' : 'double';
  if (t === 'string') return f === 'date-time' ? 'date-time' : f === 'byte' ? 'byte' : 'string';
  return undefined;
}

/**
 * The whole self-description. Events get 1-based `@id`s in eventId order (stable across deploys whatever the order
 * of nodes); the same eventId or functionId declared twice must be declared identically.
 */
export function compileSelfDescription(
  service: ServiceDeclaration,
  events: EventDeclaration[],
  functions: FunctionDeclaration[],
): SelfDescription {
  requireText(service.uuid, 'uuid');
  if (!/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(service.uuid)) {
    throw new MsbDefinitionError('uuid', `${JSON.stringify(service.uuid)} is not a UUID`);
  }
  requireText(service.name, 'name');
  if (!(SERVICE_CLASSES as readonly string[]).includes(service.serviceClass)) {
    throw new MsbDefinitionError('@class', `must be ${SERVICE_CLASSES.join(' or ')}`);
  }

  const eventsById = new Map<string, SelfDescriptionEvent>();
  for (const decl of events) {
    requireText(decl.eventId, 'events[].eventId');
    const field = `events[${decl.eventId}]`;
    const compiled: Omit<SelfDescriptionEvent, '@id'> = {
      eventId: decl.eventId,
      name: decl.name || decl.eventId,
      description: decl.description ?? '',
    };
    const dataFormat = compileDataFormat(decl.dataFormat, `${field}.dataFormat`);
    if (dataFormat) compiled.dataFormat = dataFormat;
    const seen = eventsById.get(decl.eventId);
    if (seen && JSON.stringify(seen) !== JSON.stringify({ '@id': 0, ...compiled })) {
      throw new MsbDefinitionError(field, 'is declared twice with different name, description or data format');
    }
    eventsById.set(decl.eventId, { '@id': 0, ...compiled });
  }
  const sortedEvents = [...eventsById.values()].sort((a, b) =>
    a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0,
  );
  sortedEvents.forEach((ev, i) => (ev['@id'] = i + 1));

  const functionsById = new Map<string, SelfDescriptionFunction>();
  for (const decl of functions) {
    requireText(decl.functionId, 'functions[].functionId');
    const field = `functions[${decl.functionId}]`;
    const responseEvents = [...new Set(decl.responseEvents ?? [])].map((eventId) => {
      const ev = eventsById.get(eventId);
      if (!ev)
        throw new MsbDefinitionError(
          `${field}.responseEvents`,
          `event "${eventId}" is not declared by any msb-event-out of this service`,
        );
      return ev['@id'];
    });
    const compiled: SelfDescriptionFunction = {
      functionId: decl.functionId,
      name: decl.name || decl.functionId,
      description: decl.description ?? '',
      responseEvents: responseEvents.sort((a, b) => a - b),
    };
    const dataFormat = compileDataFormat(decl.dataFormat, `${field}.dataFormat`);
    if (dataFormat) compiled.dataFormat = dataFormat;
    const seen = functionsById.get(decl.functionId);
    if (seen && JSON.stringify(seen) !== JSON.stringify(compiled)) {
      throw new MsbDefinitionError(
        field,
        'is declared twice with different name, description, data format or response events',
      );
    }
    functionsById.set(decl.functionId, compiled);
  }
  const sortedFunctions = [...functionsById.values()].sort((a, b) =>
    a.functionId < b.functionId ? -1 : a.functionId > b.functionId ? 1 : 0,
  );

  const parameters: Record<string, ConfigParameterValue> = {};
  for (const p of service.parameters ?? []) {
    requireText(p.name, 'configuration.parameters[].name');
    const field = `configuration.parameters.${p.name}`;
    if (Object.prototype.hasOwnProperty.call(parameters, p.name))
      throw new MsbDefinitionError(field, 'is declared twice');
    if (!isSimpleType(p.type)) throw new MsbDefinitionError(`${field}.type`, `unknown type ${JSON.stringify(p.type)}`);
    // Defined, not assigned: a parameter may be called "constructor" or even "__proto__".
    Object.defineProperty(parameters, p.name, {
      value: { value: coerceParameterValue(p.type, p.value, `${field}.value`), ...parameterTypeOf(p.type) },
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }

  return {
    '@class': service.serviceClass,
    uuid: service.uuid,
    name: service.name,
    description: service.description ?? '',
    token: service.token ?? '',
    events: sortedEvents,
    functions: sortedFunctions,
    configuration: { parameters },
  };
}

function requireText(value: unknown, field: string): void {
  if (typeof value !== 'string' || value.trim() === '') throw new MsbDefinitionError(field, 'is required');
}

function isObject(value: unknown): value is SchemaObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
