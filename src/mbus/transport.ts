// Mbus UDP transport (spec §9): one shared receive socket per (group, port, interface), one send socket per entity.
import dgram from 'dgram';
import os from 'os';
import { asError } from '../common/guards';
import { MbusError } from './address';

export type Scope = 'HOSTLOCAL' | 'LINKLOCAL';

export interface TransportOptions {
  group: string;
  /** 0 picks a free port (tests); read the bound one from `port` after open(). */
  port: number;
  scope: Scope;
  /** Interface address or name for LINKLOCAL; HOSTLOCAL always uses 127.0.0.1. */
  interface?: string;
}

export type DatagramHandler = (data: Buffer, rinfo: dgram.RemoteInfo) => void;

/** Why the sockets could not be opened, as data (the Node-RED layer words it); all of them are worth retrying. */
export type OpenFailureReason =
  'no-ipv4' | 'port-in-use' | 'address-unavailable' | 'no-device' | 'permission' | 'other';

export class OpenFailure extends MbusError {
  constructor(
    readonly reason: OpenFailureReason,
    readonly detail: { interface?: string; port?: number; group?: string; errno?: string },
    message: string,
  ) {
    super(message, 'ETRANSPORT');
  }
}

function classify(err: unknown): { reason: OpenFailureReason; errno?: string } {
  const errno = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (errno) {
    case 'EADDRINUSE':
      return { reason: 'port-in-use', errno };
    case 'EADDRNOTAVAIL':
      return { reason: 'address-unavailable', errno };
    case 'ENODEV':
      return { reason: 'no-device', errno };
    case 'EACCES':
    case 'EPERM':
      return { reason: 'permission', errno };
    default:
      return { reason: 'other', errno };
  }
}

/** Resolves an interface name (`eth0`) or address to an IPv4 address; undefined means the system default. */
export function resolveInterface(scope: Scope, iface?: string): string | undefined {
  if (scope === 'HOSTLOCAL') return '127.0.0.1';
  const v = (iface ?? '').trim();
  if (v === '') return undefined;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(v)) return v;
  const addrs = os.networkInterfaces()[v];
  const a = addrs?.find((x) => x.family === 'IPv4');
  // An interface that is down or not configured yet (DHCP at boot) is not listed or has no IPv4 address.
  if (!a) throw new OpenFailure('no-ipv4', { interface: v }, `network interface "${v}" has no IPv4 address`);
  return a.address;
}

/** The host-id for `id:` — the address of the interface used to send to the Mbus. */
export function hostId(scope: Scope, iface?: string): string {
  const a = resolveInterface(scope, iface);
  if (a) return a;
  for (const list of Object.values(os.networkInterfaces())) {
    const x = list?.find((i) => i.family === 'IPv4' && !i.internal);
    if (x) return x.address;
  }
  return '127.0.0.1';
}

class SharedReceiver {
  readonly handlers = new Set<DatagramHandler>();
  constructor(
    readonly key: string,
    readonly socket: dgram.Socket,
    readonly port: number,
  ) {
    socket.on('message', (data, rinfo) => {
      for (const h of [...this.handlers]) h(data, rinfo);
    });
  }
}

const receivers = new Map<string, SharedReceiver>();
const opening = new Map<string, Promise<SharedReceiver>>();

function bindSocket(sock: dgram.Socket, port: number, address?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    sock.once('error', onError);
    sock.bind({ port, address, exclusive: false }, () => {
      sock.removeListener('error', onError);
      resolve();
    });
  });
}

async function openReceiver(group: string, port: number, iface: string | undefined): Promise<SharedReceiver> {
  const key = `${group}|${port}|${iface ?? ''}`;
  if (port !== 0) {
    const have = receivers.get(key);
    if (have) return have;
    const pending = opening.get(key);
    if (pending) return pending;
  }
  const p = (async () => {
    // Bound to the group address (as libgmbus does), Linux delivers only this group's datagrams; bound to the
    // wildcard address it would also deliver other groups joined on the same port by anyone (IP_MULTICAST_ALL).
    // Systems that refuse a multicast bind address (Windows) get the wildcard.
    let sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    try {
      try {
        await bindSocket(sock, port, group);
      } catch (first) {
        sock.close();
        sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
        // A port held without SO_REUSEADDR fails both binds; the first error names the cause as well.
        await bindSocket(sock, port).catch((second: unknown) =>
          Promise.reject(asError(classify(second).reason === 'other' ? first : second)),
        );
      }
      sock.addMembership(group, iface);
    } catch (err) {
      sock.close();
      const { reason, errno } = classify(err);
      throw new OpenFailure(
        reason,
        { group, port, interface: iface, errno },
        `cannot join ${group}:${port} on ${iface ?? 'the default interface'}: ${(err as Error).message}`,
      );
    }
    const actual = sock.address().port;
    const r = new SharedReceiver(`${group}|${actual}|${iface ?? ''}`, sock, actual);
    sock.on('error', () => undefined); // receive errors on UDP are transient; never crash the runtime
    receivers.set(r.key, r);
    return r;
  })();
  if (port !== 0) opening.set(key, p);
  try {
    return await p;
  } finally {
    opening.delete(key);
  }
}

/** One entity's sockets: its share of the group receiver plus its own ephemeral send socket (which also takes unicast). */
export class Transport {
  private receiver?: SharedReceiver;
  private sender?: dgram.Socket;
  private iface?: string;
  port = 0;
  /** The local port of the send socket (peers unicast here). */
  sendPort = 0;
  /** The address the send socket is bound to (0.0.0.0 when no interface is chosen). */
  sendAddress = '';

  constructor(
    readonly options: TransportOptions,
    private readonly onDatagram: DatagramHandler,
  ) {}

  async open(): Promise<void> {
    const { group, scope } = this.options;
    this.iface = resolveInterface(scope, this.options.interface);
    const receiver = await openReceiver(group, this.options.port, this.iface);
    receiver.handlers.add(this.onDatagram);
    this.receiver = receiver;
    this.port = receiver.port;
    const s = dgram.createSocket({ type: 'udp4' });
    try {
      await bindSocket(s, 0, this.iface ?? '0.0.0.0');
      if (this.iface) s.setMulticastInterface(this.iface);
      s.setMulticastTTL(scope === 'HOSTLOCAL' ? 0 : 1);
      s.setMulticastLoopback(true);
    } catch (err) {
      s.close();
      await this.close();
      const { reason, errno } = classify(err);
      throw new OpenFailure(
        reason,
        { interface: this.iface, errno },
        `cannot open the send socket: ${(err as Error).message}`,
      );
    }
    s.on('message', this.onDatagram);
    s.on('error', () => undefined);
    this.sender = s;
    this.sendPort = s.address().port;
    this.sendAddress = s.address().address;
  }

  /** Sends to the group, or unicast to `to` when given. */
  send(data: Buffer, to?: { address: string; port: number }): Promise<void> {
    const s = this.sender;
    if (!s) return Promise.reject(new MbusError('the Mbus entity is not running', 'ECLOSED'));
    return new Promise((resolve, reject) => {
      s.send(data, to ? to.port : this.port, to ? to.address : this.options.group, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  async close(): Promise<void> {
    const r = this.receiver;
    this.receiver = undefined;
    if (r) {
      r.handlers.delete(this.onDatagram);
      if (r.handlers.size === 0 && receivers.get(r.key) === r) {
        receivers.delete(r.key);
        await new Promise<void>((res) => r.socket.close(() => res()));
      }
    }
    const s = this.sender;
    this.sender = undefined;
    if (s) await new Promise<void>((res) => s.close(() => res()));
  }
}
