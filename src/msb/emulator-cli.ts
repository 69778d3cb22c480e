#!/usr/bin/env node
// `busbar-msb-emulator`: runs the MSB websocket-interface emulator standalone and logs its traffic.
import fs from 'fs';
import readline from 'readline';
import { IntegrationFlow, MsbEmulator } from './emulator';
import { demoFlows } from './demo';
import { messageOf } from '../common/guards';

const USAGE = `Usage: busbar-msb-emulator [--port 8085] [--host 127.0.0.1] [--flows flows.json] [--demo] [--heartbeat 25000] [--quiet]

  --port N        TCP port (default 8085, the MSB's plain websocket port; 0 = any free port)
  --host H        address to bind (default 127.0.0.1; use 0.0.0.0 to accept other machines)
  --flows FILE    JSON array of integration flows:
                  [{"source":{"uuid":"…","eventId":"…"},"target":{"uuid":"…","functionId":"…"},
                    "mapping":[{"from":"/dataObject","to":"/dataObject"}]}]
  --demo          also load the flows the examples in examples/msb need
  --heartbeat MS  SockJS heartbeat period (default 25000, 0 = off)
  --quiet         do not log traffic

Commands typed into the terminal while it runs:
  K <uuid> {"param": value}          push a configuration change
  ping <uuid>                        send an application-level ping
  status <uuid> <KEYWORD>            send a status message, e.g. NIO_EVENT_FORWARDING_ERROR
  call <uuid> <functionId> {params}  call a function directly
  drop <uuid>                        kill the service's connection (it should reconnect)
  services                           list registered services
`;

interface CliOptions {
  port: number;
  host: string;
  flows: IntegrationFlow[];
  heartbeat: number;
  quiet: boolean;
}

export function parseArgs(argv: string[]): CliOptions {
  const opts: CliOptions = { port: 8085, host: '127.0.0.1', flows: [], heartbeat: 25000, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--port') opts.port = toPort(value());
    else if (arg === '--host') opts.host = value();
    else if (arg === '--flows') opts.flows.push(...readFlows(value()));
    else if (arg === '--demo') opts.flows.push(...demoFlows);
    else if (arg === '--heartbeat') opts.heartbeat = Number(value());
    else if (arg === '--quiet') opts.quiet = true;
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${arg}`);
  }
  return opts;
}

function toPort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port: ${text} is not a port number`);
  return port;
}

function readFlows(file: string): IntegrationFlow[] {
  const body = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
  const list = Array.isArray(body) ? body : (body as { flows?: unknown }).flows;
  if (!Array.isArray(list)) throw new Error(`${file}: expected a JSON array of integration flows`);
  return list as IntegrationFlow[];
}

/** One terminal command against the running emulator; returns what to print. */
export function runCommand(emulator: MsbEmulator, line: string): string {
  const [cmd, uuid = '', ...rest] = line.trim().split(/\s+/);
  const json = (text: string): Record<string, unknown> => {
    const v = JSON.parse(text || '{}') as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  };
  const sent = (ok: boolean): string => (ok ? 'sent' : `service ${uuid} is not connected`);
  try {
    switch (cmd) {
      case undefined:
      case '':
        return '';
      case 'K':
        return sent(emulator.sendConfiguration(uuid, json(rest.join(' '))));
      case 'ping':
        return sent(emulator.ping(uuid));
      case 'status':
        return sent(emulator.sendStatus(uuid, rest[0] ?? 'IO'));
      case 'call':
        return sent(emulator.callFunction(uuid, rest[0] ?? '', json(rest.slice(1).join(' '))));
      case 'drop':
        return emulator.dropConnection(uuid) ? 'dropped' : `service ${uuid} is not connected`;
      case 'services':
        return (
          [...emulator.services()].map(([id, sd]) => `${id} ${String(sd.name)}`).join('\n') || 'no service registered'
        );
      default:
        return `unknown command ${cmd}; try K, ping, status, call, drop, services`;
    }
  } catch (err) {
    return `error: ${(err as Error).message}`;
  }
}

async function main(): Promise<void> {
  let opts: CliOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const emulator = new MsbEmulator({ flows: opts.flows, heartbeatInterval: opts.heartbeat });
  if (!opts.quiet) {
    emulator.on('traffic', (r) =>
      process.stdout.write(
        `${new Date(r.time).toISOString()} ${r.direction === 'in' ? '<-' : '->'} ${r.uuid ?? r.session.slice(0, 8)} ${r.message}\n`,
      ),
    );
  }
  const { url } = await emulator.start({ host: opts.host, port: opts.port });
  process.stdout.write(
    `MSB emulator listening on ${url} (SockJS ${url}/websocket/data/<server>/<session>/websocket, raw ${url}/websocket/data/websocket), ${opts.flows.length} integration flow(s)\n`,
  );
  if (process.stdin.isTTY) {
    const rl = readline.createInterface({ input: process.stdin });
    rl.on('line', (line) => process.stdout.write(`${runCommand(emulator, line)}\n`));
  }
  const stop = (): void => {
    emulator.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${messageOf(err)}\n`);
    process.exit(1);
  });
}
