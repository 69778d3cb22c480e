// Effective entity settings from a config node's fields, its credentials and the optional ~/.mbus file.
import { Address } from './address';
import { DEFAULTS, DEFAULT_TIMERS, EntityOptions, Timers } from './entity';
import { MbusFileConfig, SecurityConfig, encryptionKey, hashKey } from './security';
import { Scope } from './transport';

export interface MbusSettings {
  addressElements?: Array<{ tag: string; value: string }>;
  group?: string;
  port?: string | number;
  scope?: string;
  iface?: string;
  useMbusFile?: boolean;
  hashAlgorithm?: string;
  encryptionAlgorithm?: string;
  maxDatagram?: string | number;
  sendUnicast?: boolean;
  answerUnknown?: boolean;
  retransmit?: string | number;
  retries?: string | number;
  ackDelay?: string | number;
  duplicateKeep?: string | number;
  helloMin?: string | number;
  helloMax?: string | number;
  maxPeers?: string | number;
  /** Undefined (flows saved before the option) means on. */
  oneReliablePerPeer?: boolean;
  /** Pack one turn's commands for a destination into one message; undefined (flows saved before the option) means on. */
  pack?: boolean;
}

export interface MbusCredentials {
  hashKey?: string;
  encryptionKey?: string;
  [k: string]: string | undefined;
}

/** True when the hash key is the RFC/UCL example key (no key configured): anyone on the bus can sign with it. */
export function isExampleKey(security: Partial<SecurityConfig> | undefined): boolean {
  const key = security?.hash?.key;
  return !key || key.equals(hashKey(DEFAULTS.hashKey).key);
}

function num(v: unknown, fallback: number): number {
  if (v === undefined || v === null || v === '') return fallback;
  const n = Number(v);
  return Number.isFinite(n) ? n : fallback;
}

/** The effective entity options: node fields win, then ~/.mbus (when enabled), then the RFC/spec defaults. */
export function entityOptions(def: MbusSettings, creds: MbusCredentials, file?: MbusFileConfig): EntityOptions {
  const elements = (def.addressElements ?? []).filter((e) => e && e.tag);
  const address = elements.length
    ? new Address(elements.map((e) => [String(e.tag).trim(), String(e.value).trim()] as const))
    : Address.parse('(app:node-red module:flow)');
  const hashAlg = def.hashAlgorithm === 'HMAC-SHA1-96' ? 'HMAC-SHA1-96' : 'HMAC-MD5-96';
  const encAlg =
    def.encryptionAlgorithm === 'DES' || def.encryptionAlgorithm === 'AES' ? def.encryptionAlgorithm : 'NOENCR';
  const security: SecurityConfig = {
    hash: creds.hashKey ? hashKey(creds.hashKey, hashAlg) : (file?.hashKey ?? hashKey(DEFAULTS.hashKey)),
    encryption:
      encAlg !== 'NOENCR'
        ? encryptionKey(creds.encryptionKey ?? '', encAlg)
        : (file?.encryptionKey ?? encryptionKey('(NOENCR)')),
  };
  if (encAlg !== 'NOENCR' && !creds.encryptionKey)
    throw new Error(`encryption ${encAlg} is selected but no encryption key is set`);
  const scope: Scope =
    def.scope === 'LINKLOCAL' || def.scope === 'HOSTLOCAL' ? def.scope : (file?.scope ?? DEFAULTS.scope);
  const timers: Partial<Timers> = {
    retransmit: num(def.retransmit, DEFAULT_TIMERS.retransmit),
    retries: num(def.retries, DEFAULT_TIMERS.retries),
    ackDelay: num(def.ackDelay, DEFAULT_TIMERS.ackDelay),
    duplicateKeep: num(def.duplicateKeep, DEFAULT_TIMERS.duplicateKeep),
    helloMin: num(def.helloMin, DEFAULT_TIMERS.helloMin),
    helloMax: num(def.helloMax, DEFAULT_TIMERS.helloMax),
  };
  if (timers.ackDelay! >= timers.retransmit!)
    throw new Error(
      `the ack delay T_c (${timers.ackDelay} ms) must be shorter than the retransmit timer T_r (${timers.retransmit} ms)`,
    );
  return {
    address,
    group: def.group || (file?.address && file.address !== 'BROADCAST' ? file.address : DEFAULTS.group),
    port: num(def.port, file?.port ?? DEFAULTS.port),
    scope,
    interface: def.iface || file?.interface,
    security,
    timers,
    maxDatagram: num(def.maxDatagram, DEFAULTS.maxDatagram),
    sendUnicast: def.sendUnicast ?? file?.sendUnicast ?? true,
    oneReliablePerPeer: def.oneReliablePerPeer ?? true,
    pack: def.pack ?? true,
    maxPeers: num(def.maxPeers, 1000),
  };
}

/** Compiles the command filter: exact names, `prefix.*` patterns; empty means every command outside `mbus.*`. */
export function compileFilter(filters: string[] | undefined): (name: string) => boolean {
  const list = (filters ?? []).map((f) => String(f).trim()).filter(Boolean);
  if (list.length === 0) return (name) => !name.startsWith('mbus.');
  const exact = new Set(list.filter((f) => !f.endsWith('*')));
  const prefixes = list.filter((f) => f.endsWith('*')).map((f) => f.slice(0, -1));
  return (name) => exact.has(name) || prefixes.some((p) => name.startsWith(p));
}
