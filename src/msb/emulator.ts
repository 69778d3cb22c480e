// An emulator of the MSB 1.5/1.6 websocket interface for tests, the demo and users without an MSB: SockJS and raw
// paths, registration, events, integration flows from an event of one service to a function of another, pushed
// K/ping/status messages, raw frames and stalls for fault tests, and a record of all traffic (off for benchmarks).
import { EventEmitter } from 'events';
import http from 'http';
import https from 'https';
import { randomUUID } from 'crypto';
import type { AddressInfo, Socket } from 'net';
import type { Duplex } from 'stream';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeClientFrame, formatMessage, parseMessage, serverFrame } from './framing';
import { isRecord } from '../common/guards';

/** Routes one event of one service to one function of another, as an MSB integration flow does. */
export interface IntegrationFlow {
  id?: string;
  name?: string;
  source: { uuid: string; eventId: string };
  target: { uuid: string; functionId: string };
  /**
   * JSON pointers from the event message (`/dataObject`, `/dataObject/temperature`, `/postDate`, …) to the function
   * parameters (`/dataObject`, `/a`, …). Default: `[{ from: '/dataObject', to: '/dataObject' }]`.
   */
  mapping?: Array<{ from: string; to: string }>;
}

export interface TrafficRecord {
  time: number;
  direction: 'in' | 'out';
  session: string;
  /** The registered service uuid of the session, when known. */
  uuid?: string;
  /** One MSB message (already unframed), or the frame itself for o/h/c frames. */
  message: string;
}

export interface EmulatorOptions {
  /** Integration flows to start with. */
  flows?: IntegrationFlow[];
  /** SockJS heartbeat `h` period in ms; 0 = none. Default 25000 (Spring's default). */
  heartbeatInterval?: number;
  /** Keep at most this many traffic records (oldest dropped). Default 10000. */
  trafficLimit?: number;
  /**
   * Record traffic (`traffic` list and events, `waitFor`). Default true; a benchmark turns it off so the emulator's
   * bookkeeping does not weigh on both sides it compares (count acknowledgements with `publishedCount`).
   */
  recordTraffic?: boolean;
  /** Answer R with IO_REGISTERED only if the self-description's token is in this list (default: any token). */
  acceptedTokens?: string[];
}

interface Session {
  id: string;
  ws: WebSocket;
  sockJs: boolean;
  uuid?: string;
  selfDescription?: Record<string, unknown>;
  heartbeat?: NodeJS.Timeout;
  /** The TCP socket under the websocket: paused while the emulator plays a stalled MSB. */
  socket: Duplex;
  /** Whether `socket` is corked until the end of this event-loop turn. */
  corked: boolean;
}

export interface EmulatorEvents {
  connection: [session: string];
  disconnect: [session: string, uuid: string | undefined];
  registered: [uuid: string, selfDescription: Record<string, unknown>];
  traffic: [record: TrafficRecord];
}

const SOCKJS_PATH = /^\/websocket\/data\/([^/.]+)\/([^/.]+)\/websocket\/?$/;
const RAW_PATH = /^\/websocket\/data\/websocket\/?$/;
const PRIORITIES = new Set<unknown>([0, 1, 2, 'LOW', 'MEDIUM', 'HIGH']);
const PUBLISHED_SOCKJS = serverFrame.message('IO_PUBLISHED', true);

export class MsbEmulator extends EventEmitter<EmulatorEvents> {
  /** Every message in and out, in order. */
  readonly traffic: TrafficRecord[] = [];
  private readonly flows = new Map<string, IntegrationFlow>();
  private readonly sessions = new Map<string, Session>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server | undefined;
  private wss: WebSocketServer | undefined;
  private readonly heartbeatInterval: number;
  private held: Array<{ session: Session; body: unknown }> | undefined;
  private readonly trafficLimit: number;
  private readonly recording: boolean;
  private readonly published = new Map<string, number>();
  private readonly corked = new Set<Session>();
  private uncorkTimer: NodeJS.Immediate | undefined;
  private stalled = false;

  constructor(private readonly options: EmulatorOptions = {}) {
    super();
    this.heartbeatInterval = options.heartbeatInterval ?? 25000;
    this.trafficLimit = options.trafficLimit ?? 10000;
    this.recording = options.recordTraffic ?? true;
    for (const flow of options.flows ?? []) this.addFlow(flow);
  }

  /**
   * Listens on `host` (default 127.0.0.1) and `port` (default 0 = any free port); with `tls` (PEM key and cert) it
   * serves wss:// like the MSB's port 8084.
   */
  async start(
    opts: { host?: string; port?: number; tls?: { key: string | Buffer; cert: string | Buffer } } = {},
  ): Promise<{ port: number; url: string }> {
    if (this.server) throw new Error('MSB emulator already started');
    const host = opts.host ?? '127.0.0.1';
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.onHttp(req, res);
    const server: http.Server = opts.tls
      ? https.createServer({ key: opts.tls.key, cert: opts.tls.cert }, handler)
      : http.createServer(handler);
    const wss = new WebSocketServer({ noServer: true });
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    server.on('upgrade', (req, socket, head) => {
      const path = (req.url ?? '').split('?')[0] ?? '';
      const sockJs = SOCKJS_PATH.test(path);
      if (!sockJs && !RAW_PATH.test(path)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws, sockJs, socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    this.wss = wss;
    const port = (server.address() as AddressInfo).port;
    const urlHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host;
    return { port, url: `${opts.tls ? 'wss' : 'ws'}://${urlHost}:${port}` };
  }

  /** Closes every session and the listening socket. */
  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.uncorkAll();
    for (const session of this.sessions.values()) {
      if (session.heartbeat) clearInterval(session.heartbeat);
      session.ws.terminate();
    }
    this.sessions.clear();
    this.wss?.close();
    this.wss = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  addFlow(flow: IntegrationFlow): string {
    if (!flow?.source?.uuid || !flow.source.eventId || !flow.target?.uuid || !flow.target.functionId) {
      throw new Error('an integration flow needs source.uuid, source.eventId, target.uuid and target.functionId');
    }
    for (const m of flow.mapping ?? []) {
      if (!m.from.startsWith('/') || !m.to.startsWith('/'))
        throw new Error(`mapping ${m.from} -> ${m.to}: both sides must be JSON pointers starting with /`);
    }
    const id = flow.id ?? randomUUID();
    this.flows.set(id, { ...flow, id });
    return id;
  }

  removeFlow(id: string): boolean {
    return this.flows.delete(id);
  }

  listFlows(): IntegrationFlow[] {
    return [...this.flows.values()];
  }

  /** Registered services: uuid → self-description as last registered. */
  services(): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const s of this.sessions.values()) if (s.uuid && s.selfDescription) out.set(s.uuid, s.selfDescription);
    return out;
  }

  /** IO_PUBLISHED answers sent to the service since the emulator started (counted with or without the record). */
  publishedCount(uuid: string): number {
    return this.published.get(uuid) ?? 0;
  }

  /** Number of open websocket sessions (registered or not). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** Sends `K {"uuid":…,"params":{…}}` to the service; false when it is not connected. */
  sendConfiguration(uuid: string, params: Record<string, unknown>): boolean {
    return this.sendTo(uuid, formatMessage('K', { uuid, params }));
  }

  /** Sends an application-level `ping`; the client should answer `pong`. */
  ping(uuid: string): boolean {
    return this.sendTo(uuid, 'ping');
  }

  /** Sends any status keyword or raw message text (e.g. `NIO_EVENT_FORWARDING_ERROR`). */
  sendStatus(uuid: string, keyword: string): boolean {
    return this.sendTo(uuid, keyword);
  }

  /** Calls a function directly, as if a flow had fired; generates a correlationId when none is given. */
  callFunction(
    uuid: string,
    functionId: string,
    functionParameters: Record<string, unknown>,
    correlationId: string = randomUUID(),
  ): boolean {
    return this.sendTo(uuid, formatMessage('C', { uuid, correlationId, functionId, functionParameters }));
  }

  /**
   * Holds registrations (a slow MSB): `R` is recorded but not answered until `holdRegistrations(false)` answers
   * every held one in order.
   */
  holdRegistrations(hold: boolean): void {
    if (hold) {
      this.held ??= [];
      return;
    }
    const held = this.held ?? [];
    this.held = undefined;
    for (const { session, body } of held) if (this.sessions.has(session.id)) this.onRegistration(session, body);
  }

  /**
   * Closes the service's session the SockJS way: a `c[code,"reason"]` frame, then the websocket close (Spring's
   * `c[3000,"Go away!"]` by default). On the raw path only the websocket close is sent.
   */
  closeSession(uuid: string, code = 3000, reason = 'Go away!'): boolean {
    const session = this.sessionOf(uuid);
    if (!session) return false;
    if (session.sockJs) this.sendFrame(session, serverFrame.close(code, reason), serverFrame.close(code, reason));
    session.ws.close(1000, reason);
    return true;
  }

  /** Kills the service's connection from the server side (no close handshake), as a network failure would. */
  dropConnection(uuid: string): boolean {
    const session = this.sessionOf(uuid);
    if (!session) return false;
    this.uncorkAll(); // what was answered before the failure still reaches the client
    session.ws.terminate();
    return true;
  }

  /**
   * Plays an MSB that stops answering but keeps TCP open (process stopped, NAT or firewall state lost): nothing is
   * read from any session (so no pong either) and nothing is sent, new sessions included, until `stall(false)`.
   */
  stall(stalled: boolean): void {
    this.stalled = stalled;
    for (const session of this.sessions.values()) {
      if (stalled) session.socket.pause();
      else session.socket.resume();
    }
  }

  /** Sends one websocket text frame exactly as given (no SockJS wrapping), for malformed or hostile input. */
  sendRawFrame(uuid: string, frame: string): boolean {
    const session = this.sessionOf(uuid);
    if (!session || session.ws.readyState !== WebSocket.OPEN) return false;
    this.record(session, 'out', frame);
    session.ws.send(frame);
    return true;
  }

  /** Resolves with the first traffic record (already seen or future) matching; rejects after `timeout` ms. */
  waitFor(match: (r: TrafficRecord) => boolean, timeout = 5000): Promise<TrafficRecord> {
    const seen = this.traffic.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (r: TrafficRecord): void => {
        if (!match(r)) return;
        clearTimeout(timer);
        this.off('traffic', listener);
        resolve(r);
      };
      const timer = setTimeout(() => {
        this.off('traffic', listener);
        reject(new Error(`MSB emulator: no matching traffic within ${timeout} ms`));
      }, timeout);
      this.on('traffic', listener);
    });
  }

  private onHttp(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/actuator/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"UP"}');
    } else if (path === '/websocket/data/info') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          websocket: true,
          origins: ['*:*'],
          cookie_needed: false,
          entropy: Math.floor(Math.random() * 2 ** 31),
        }),
      );
    } else {
      res.writeHead(404).end();
    }
  }

  private onConnection(ws: WebSocket, sockJs: boolean, socket: Duplex): void {
    const session: Session = { id: randomUUID(), ws, sockJs, socket, corked: false };
    this.sessions.set(session.id, session);
    if (this.stalled) socket.pause();
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      // Spring's text handlers close the session on a binary message (1003, not acceptable), so do we.
      if (isBinary) {
        this.record(session, 'in', '(binary message)');
        ws.close(1003, 'Binary messages not supported');
        return;
      }
      this.onFrame(session, data.toString());
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (session.heartbeat) clearInterval(session.heartbeat);
      this.corked.delete(session);
      if (this.sessions.delete(session.id)) this.emit('disconnect', session.id, session.uuid);
    });
    if (sockJs) {
      this.sendFrame(session, serverFrame.open(), 'o');
      if (this.heartbeatInterval > 0)
        session.heartbeat = setInterval(
          () => this.sendFrame(session, serverFrame.heartbeat(), 'h'),
          this.heartbeatInterval,
        );
    }
    this.emit('connection', session.id);
    this.sendMessage(session, 'IO_CONNECTED');
  }

  private onFrame(session: Session, frame: string): void {
    const messages = decodeClientFrame(frame, session.sockJs);
    if (!messages) {
      this.record(session, 'in', frame);
      return; // Spring drops undecodable SockJS frames; so do we (recorded for assertions).
    }
    for (const text of messages) {
      this.record(session, 'in', text);
      this.onMessage(session, text);
    }
  }

  private onMessage(session: Session, text: string): void {
    const msg = parseMessage(text);
    if (msg.type === 'R') this.onRegistration(session, msg.body);
    else if (msg.type === 'E') this.onEvent(session, msg.body);
    else if (msg.type === 'invalid' && text.startsWith('R')) this.sendMessage(session, 'NIO_REGISTRATION_ERROR');
    else if (msg.type === 'invalid' && text.startsWith('E'))
      this.sendMessage(session, session.uuid ? 'NIO_UNEXPECTED_EVENT_FORWARDING_ERROR' : 'NIO_UNAUTHORIZED_CONNECTION');
    // `pong` and anything else: recorded, no answer.
  }

  private onRegistration(session: Session, body: unknown): void {
    if (this.held) {
      this.held.push({ session, body });
      return;
    }
    const problem = registrationProblem(body);
    if (problem || !isRecord(body)) {
      this.sendMessage(session, 'NIO_REGISTRATION_ERROR');
      return;
    }
    const uuid = body.uuid as string;
    const other = [...this.sessions.values()].find((s) => s !== session && s.uuid === uuid);
    if (other) {
      this.sendMessage(session, 'NIO_ALREADY_CONNECTED');
      return;
    }
    if (this.options.acceptedTokens && !this.options.acceptedTokens.includes(String(body.token ?? ''))) {
      this.sendMessage(session, 'NIO_REGISTRATION_ERROR');
      return;
    }
    session.uuid = uuid;
    session.selfDescription = body;
    this.sendMessage(session, 'IO_REGISTERED');
    this.emit('registered', uuid, body);
  }

  private onEvent(session: Session, body: unknown): void {
    if (!session.uuid || !session.selfDescription) {
      this.sendMessage(session, 'NIO_UNAUTHORIZED_CONNECTION');
      return;
    }
    if (!isRecord(body) || body.uuid !== session.uuid) {
      this.sendMessage(session, 'NIO_UNAUTHORIZED_CONNECTION');
      return;
    }
    const events = Array.isArray(session.selfDescription.events) ? (session.selfDescription.events as unknown[]) : [];
    const known = events.some((e) => isRecord(e) && e.eventId === body.eventId);
    const priorityOk = body.priority === undefined || PRIORITIES.has(body.priority);
    const dateOk =
      body.postDate === undefined || (typeof body.postDate === 'string' && !Number.isNaN(Date.parse(body.postDate)));
    if (!known || !priorityOk || !dateOk) {
      this.sendMessage(session, 'NIO_EVENT_FORWARDING_ERROR');
      return;
    }
    this.sendFrame(session, session.sockJs ? PUBLISHED_SOCKJS : 'IO_PUBLISHED', 'IO_PUBLISHED');
    this.published.set(session.uuid, (this.published.get(session.uuid) ?? 0) + 1);
    for (const flow of this.flows.values()) {
      if (flow.source.uuid !== session.uuid || flow.source.eventId !== body.eventId) continue;
      // A call to a service that is not connected only shows in the traffic record: nothing to build without one.
      if (!this.recording && !this.sessionOf(flow.target.uuid)) continue;
      const functionParameters: Record<string, unknown> = {};
      for (const m of flow.mapping ?? [{ from: '/dataObject', to: '/dataObject' }]) {
        const value = getPointer(body, m.from);
        if (value !== undefined) setPointer(functionParameters, m.to, value);
      }
      const correlationId =
        typeof body.correlationId === 'string' && body.correlationId !== '' ? body.correlationId : randomUUID();
      this.sendTo(
        flow.target.uuid,
        formatMessage('C', {
          uuid: flow.target.uuid,
          correlationId,
          functionId: flow.target.functionId,
          functionParameters,
        }),
      );
    }
  }

  private sessionOf(uuid: string): Session | undefined {
    for (const s of this.sessions.values()) if (s.uuid === uuid) return s;
    return undefined;
  }

  private sendTo(uuid: string, message: string): boolean {
    const session = this.sessionOf(uuid);
    if (!session) {
      this.record(undefined, 'out', message, uuid);
      return false;
    }
    this.sendMessage(session, message);
    return true;
  }

  private sendMessage(session: Session, message: string): void {
    this.sendFrame(session, serverFrame.message(message, session.sockJs), message);
  }

  private sendFrame(session: Session, frame: string, recorded: string): void {
    if (session.ws.readyState !== WebSocket.OPEN || this.stalled) return;
    if (recorded !== 'h') this.record(session, 'out', recorded);
    this.cork(session);
    session.ws.send(frame);
  }

  /**
   * Holds the session's writes until the end of this event-loop turn, so the answers to a batch of events leave in
   * one write instead of one syscall per answer. Every message is still its own websocket frame, as from the MSB.
   */
  private cork(session: Session): void {
    if (session.corked) return;
    session.corked = true;
    session.socket.cork();
    this.corked.add(session);
    this.uncorkTimer ??= setImmediate(() => this.uncorkAll());
  }

  private uncorkAll(): void {
    if (this.uncorkTimer) clearImmediate(this.uncorkTimer);
    this.uncorkTimer = undefined;
    for (const session of this.corked) {
      session.corked = false;
      session.socket.uncork();
    }
    this.corked.clear();
  }

  private record(session: Session | undefined, direction: 'in' | 'out', message: string, uuid?: string): void {
    if (!this.recording) return;
    const record: TrafficRecord = {
      time: Date.now(),
      direction,
      session: session?.id ?? '(none: not connected)',
      uuid: session?.uuid ?? uuid,
      message,
    };
    this.traffic.push(record);
    if (this.traffic.length > this.trafficLimit) this.traffic.splice(0, this.traffic.length - this.trafficLimit);
    this.emit('traffic', record);
  }
}

/** Why a registration body is not a usable self-description (undefined when it is). */
export function registrationProblem(body: unknown): string | undefined {
  if (!isRecord(body)) return 'not a JSON object';
  if (typeof body.uuid !== 'string' || body.uuid === '') return 'uuid missing';
  if (typeof body.name !== 'string' || body.name === '') return 'name missing';
  if (!['SmartObject', 'Application', 'Gateway'].includes(body['@class'] as string))
    return '@class must be SmartObject, Application or Gateway';
  const events = body.events ?? [];
  const functions = body.functions ?? [];
  if (!Array.isArray(events) || !Array.isArray(functions)) return 'events and functions must be arrays';
  const ids = new Set<unknown>();
  for (const e of events) {
    if (!isRecord(e) || typeof e.eventId !== 'string' || !Number.isInteger(e['@id']))
      return 'every event needs eventId and an integer @id';
    ids.add(e['@id']);
  }
  for (const f of functions) {
    if (!isRecord(f) || typeof f.functionId !== 'string') return 'every function needs a functionId';
    const responses = f.responseEvents ?? [];
    if (!Array.isArray(responses) || !responses.every((r) => ids.has(r)))
      return `function ${f.functionId}: responseEvents must be @ids of declared events`;
  }
  return undefined;
}

function getPointer(root: unknown, pointer: string): unknown {
  let node: unknown = root;
  for (const part of pointer.split('/').slice(1)) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isRecord(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function setPointer(root: Record<string, unknown>, pointer: string, value: unknown): void {
  const parts = pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (parts.length === 0 || (parts.length === 1 && parts[0] === '')) {
    if (isRecord(value)) Object.assign(root, value);
    return;
  }
  let node = root;
  for (const part of parts.slice(0, -1)) {
    if (!isRecord(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  const last = parts[parts.length - 1];
  if (last !== undefined) node[last] = value;
}
