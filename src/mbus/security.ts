// Mbus hash and encryption (RFC 3259 §11): HMAC-*-96 over the body, DES-CBC / AES-128-CBC with zero IV and padding.
import crypto from 'crypto';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { MbusError } from './address';
import { desCbc } from './des';

export type HashAlgorithm = 'HMAC-MD5-96' | 'HMAC-SHA1-96';
export type EncryptionAlgorithm = 'NOENCR' | 'DES' | 'AES';

export interface KeySpec<A extends string> {
  algorithm: A;
  key: Buffer;
}

export interface SecurityConfig {
  hash: KeySpec<HashAlgorithm>;
  encryption: KeySpec<EncryptionAlgorithm>;
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function decodeKey(b64: string, what: string): Buffer {
  const t = b64.trim();
  // Never echo the text: a malformed key is still mostly key material (it ends up in logs and status).
  if (!B64.test(t) || t.length % 4 === 1)
    throw new MbusError(`${what}: the key is not valid base64 (${t.length} characters)`);
  return Buffer.from(t, 'base64');
}

/** Parses `(ALG,base64)`, `(ALG, base64)`, `(NOENCR)`, `(NOENCR, )` — or a bare base64 key with a default algorithm. */
export function parseKeyEntry(text: string): { algorithm: string; key: Buffer } {
  const t = text.trim();
  const m = /^\(\s*([A-Za-z0-9-]+)\s*(?:,\s*([^)]*?)\s*)?\)$/.exec(t);
  if (!m) throw new MbusError('a key entry is not of the form (ALGORITHM,base64key)');
  const algorithm = (m[1] ?? '').toUpperCase();
  return { algorithm, key: m[2] ? decodeKey(m[2], algorithm) : Buffer.alloc(0) };
}

// The algorithm ids RFC 3259 §12 names; anything else is shown as "unknown" (a bare key in parentheses is no name).
const KNOWN_ALGORITHMS = new Set(['NOENCR', 'AES', 'DES', '3DES', 'IDEA', 'HMAC-MD5-96', 'HMAC-SHA1-96']);
const algorithmName = (a: string): string => (KNOWN_ALGORITHMS.has(a) ? a : 'of unknown name');

export function hashKey(text: string, defaultAlg: HashAlgorithm = 'HMAC-MD5-96'): KeySpec<HashAlgorithm> {
  const t = text.trim();
  const e = t.startsWith('(') ? parseKeyEntry(t) : { algorithm: defaultAlg, key: decodeKey(t, 'hash key') };
  if (e.algorithm !== 'HMAC-MD5-96' && e.algorithm !== 'HMAC-SHA1-96')
    throw new MbusError(`hash algorithm ${algorithmName(e.algorithm)} is not supported (HMAC-MD5-96 or HMAC-SHA1-96)`);
  return { algorithm: e.algorithm, key: e.key };
}

export function encryptionKey(text: string, defaultAlg: EncryptionAlgorithm = 'NOENCR'): KeySpec<EncryptionAlgorithm> {
  const t = text.trim();
  const e =
    t === ''
      ? { algorithm: 'NOENCR', key: Buffer.alloc(0) }
      : t.startsWith('(')
        ? parseKeyEntry(t)
        : { algorithm: defaultAlg, key: decodeKey(t, 'encryption key') };
  if (e.algorithm === 'NOENCR') return { algorithm: 'NOENCR', key: Buffer.alloc(0) };
  if (e.algorithm === 'DES') {
    if (e.key.length !== 8) throw new MbusError(`a DES key is 8 octets (12 base64 characters), got ${e.key.length}`);
    return { algorithm: 'DES', key: e.key };
  }
  if (e.algorithm === 'AES') {
    if (e.key.length !== 16) throw new MbusError(`an AES key is 16 octets (24 base64 characters), got ${e.key.length}`);
    return { algorithm: 'AES', key: e.key };
  }
  throw new MbusError(`encryption algorithm ${algorithmName(e.algorithm)} is not supported (NOENCR, DES or AES)`);
}

/** 16 base64 characters: the first 12 octets of the HMAC over the body. */
export function mac(hash: KeySpec<HashAlgorithm>, body: Buffer): string {
  const h = crypto.createHmac(hash.algorithm === 'HMAC-SHA1-96' ? 'sha1' : 'md5', hash.key);
  // 12 octets are exactly 16 base64 characters, so the first 16 characters of the whole digest's base64 are the
  // same text without an intermediate Buffer.
  return h.update(body).digest('base64').slice(0, 16);
}

// OpenSSL 3 moved single DES to the legacy provider; 3DES with three equal keys is single DES. Where neither is
// available (e.g. a FIPS build) the plain TypeScript DES takes over.
type DesEngine = 'des-cbc' | 'des-ede3-cbc' | 'typescript';
let desEngine: DesEngine | undefined;

export function desEngineInUse(): DesEngine {
  if (desEngine) return desEngine;
  for (const name of ['des-cbc', 'des-ede3-cbc'] as const) {
    try {
      crypto.createCipheriv(name, Buffer.alloc(name === 'des-cbc' ? 8 : 24, 1), Buffer.alloc(8));
      return (desEngine = name);
    } catch {
      /* try the next */
    }
  }
  return (desEngine = 'typescript');
}

/** For tests: force an engine (undefined = detect again). */
export function setDesEngine(engine: DesEngine | undefined): void {
  desEngine = engine;
}

function runCipher(enc: KeySpec<EncryptionAlgorithm>, data: Buffer, decrypting: boolean): Buffer {
  let name: string;
  let key = enc.key;
  let iv: Buffer;
  if (enc.algorithm === 'AES') {
    name = 'aes-128-cbc';
    iv = Buffer.alloc(16);
  } else {
    iv = Buffer.alloc(8);
    const engine = desEngineInUse();
    if (engine === 'typescript') return desCbc(enc.key, iv, data, decrypting);
    name = engine;
    if (engine === 'des-ede3-cbc') key = Buffer.concat([enc.key, enc.key, enc.key]);
  }
  const c = decrypting ? crypto.createDecipheriv(name, key, iv) : crypto.createCipheriv(name, key, iv);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(data), c.final()]);
}

const blockSize = (enc: KeySpec<EncryptionAlgorithm>): number => (enc.algorithm === 'AES' ? 16 : 8);

export function encrypt(enc: KeySpec<EncryptionAlgorithm>, plain: Buffer): Buffer {
  if (enc.algorithm === 'NOENCR') return plain;
  const bs = blockSize(enc);
  const padded = Buffer.alloc(Math.ceil(plain.length / bs) * bs || bs);
  plain.copy(padded);
  return runCipher(enc, padded, false);
}

export function decrypt(enc: KeySpec<EncryptionAlgorithm>, body: Buffer): Buffer {
  if (enc.algorithm === 'NOENCR') return body;
  const bs = blockSize(enc);
  if (body.length === 0 || body.length % bs !== 0)
    throw new MbusError(`ciphertext length ${body.length} is not a multiple of ${bs}`, 'EDECRYPT');
  const out = runCipher(enc, body, true);
  let end = out.length;
  while (end > 0 && out[end - 1] === 0) end--;
  return out.subarray(0, end);
}

/**
 * Why a received datagram was dropped: the first five are checked here, `parse` and the RFC rejections (`float`,
 * `empty-source`, `seq-range`) by the codec, `spoofed` by the entity (our own entity's address from another socket).
 */
export type DropReason =
  'short' | 'hash' | 'decrypt' | 'utf8' | 'parse' | 'size' | 'float' | 'empty-source' | 'seq-range' | 'spoofed';

export class DatagramError extends MbusError {
  constructor(
    readonly reason: DropReason,
    message: string,
  ) {
    super(message, 'EDROP');
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Checks the hash, decrypts and returns the message text; throws DatagramError for every datagram to drop. */
export function openDatagram(sec: SecurityConfig, dgram: Buffer): string {
  const lf = dgram.indexOf(0x0a);
  if (lf < 16 || lf > 17 || (lf === 17 && dgram[16] !== 0x0d))
    throw new DatagramError('short', 'no 16-character hash line');
  const body = dgram.subarray(lf + 1);
  const want = mac(sec.hash, body);
  // The received hash bytes are compared as they are (a latin1 round trip of them would be the identity).
  if (!crypto.timingSafeEqual(dgram.subarray(0, 16), Buffer.from(want, 'latin1')))
    throw new DatagramError('hash', 'wrong hash');
  let plain: Buffer;
  try {
    plain = decrypt(sec.encryption, body);
  } catch (err) {
    throw new DatagramError('decrypt', (err as Error).message);
  }
  let end = plain.length;
  while (end > 0 && plain[end - 1] === 0) end--; // UCL stops at the first NUL; padding is trailing NULs
  plain = plain.subarray(0, end);
  if (plain.subarray(0, 5).toString('latin1') !== 'mbus/')
    throw new DatagramError('decrypt', 'body does not start with "mbus/"');
  try {
    return utf8.decode(plain);
  } catch {
    throw new DatagramError('utf8', 'body is not valid UTF-8');
  }
}

/** The size of the datagram sealDatagram makes of a body of `bodyBytes` UTF-8 octets: hash line plus (padded) body. */
export function sealedSize(sec: SecurityConfig, bodyBytes: number): number {
  if (sec.encryption.algorithm === 'NOENCR') return 17 + bodyBytes;
  const bs = blockSize(sec.encryption);
  return 17 + (Math.ceil(bodyBytes / bs) * bs || bs);
}

export function sealDatagram(sec: SecurityConfig, text: string): Buffer {
  if (sec.encryption.algorithm === 'NOENCR') {
    // One buffer for the whole datagram: the text goes in after the 17-octet hash line, the MAC is written in front.
    const out = Buffer.allocUnsafe(17 + Buffer.byteLength(text, 'utf8'));
    out.write(text, 17, 'utf8');
    out.write(mac(sec.hash, out.subarray(17)), 0, 'latin1');
    out[16] = 0x0a;
    return out;
  }
  const body = encrypt(sec.encryption, Buffer.from(text, 'utf8'));
  return Buffer.concat([Buffer.from(`${mac(sec.hash, body)}\n`, 'latin1'), body]);
}

export interface MbusFileConfig {
  hashKey?: KeySpec<HashAlgorithm>;
  encryptionKey?: KeySpec<EncryptionAlgorithm>;
  scope?: 'HOSTLOCAL' | 'LINKLOCAL';
  address?: string;
  port?: number;
  sendUnicast?: boolean;
  interface?: string;
  file: string;
}

/** Where the RFC 3259 §12 config file is: `$MBUS` (a file, or a directory holding `.mbus`) or `~/.mbus`. */
export function mbusFilePath(env: NodeJS.ProcessEnv = process.env): string {
  const m = env.MBUS;
  if (m) {
    try {
      if (fs.statSync(m).isDirectory()) return path.join(m, '.mbus');
    } catch {
      /* not there: use as a file name */
    }
    return m;
  }
  return path.join(os.homedir(), '.mbus');
}

/** Parses an `[MBUS]` file. Read-only: a missing file is `undefined`, never created. */
export function parseMbusFile(text: string, file = '(text)'): MbusFileConfig {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  if (lines[0] !== '[MBUS]') throw new MbusError(`${file}: the first line must be [MBUS]`);
  const out: MbusFileConfig = { file };
  for (const line of lines.slice(1)) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i).trim().toUpperCase();
    const v = line.slice(i + 1).trim();
    if (k === 'HASHKEY') out.hashKey = hashKey(v);
    else if (k === 'ENCRYPTIONKEY') out.encryptionKey = encryptionKey(v);
    else if (k === 'SCOPE' && (v === 'HOSTLOCAL' || v === 'LINKLOCAL')) out.scope = v;
    else if (k === 'ADDRESS') out.address = v;
    else if (k === 'PORT' && /^\d+$/.test(v)) out.port = Number(v);
    else if (k === 'SEND_UNICAST') out.sendUnicast = /^(yes|true|1)$/i.test(v);
    else if (k === 'INTERFACE') out.interface = v;
  }
  return out;
}

export function loadMbusFile(env: NodeJS.ProcessEnv = process.env): MbusFileConfig | undefined {
  const file = mbusFilePath(env);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return parseMbusFile(text, file);
}
