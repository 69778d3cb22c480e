// msb-config, msb-event-out and msb-function-in in a real Node-RED runtime (node-red-node-test-helper) against
// the MSB emulator on loopback.
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import helper from 'node-red-node-test-helper';
import { MsbEmulator, SelfDescription, TrafficRecord } from '../src/msb';
import { poller } from './support/until';

const msbConfig = require('../nodes/msb/msb-config');
const msbEventOut = require('../nodes/msb/msb-event-out');
const msbFunctionIn = require('../nodes/msb/msb-function-in');
const changeNode = require('@node-red/nodes/core/function/15-change.js');
const nodes = [msbConfig, msbEventOut, msbFunctionIn];

helper.init(require.resolve('node-red'));

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';

type Flow = Array<{ id: string; type: string; [key: string]: unknown }>;
type HelperNode = {
  on(event: string, fn: (msg: Record<string, unknown>) => void): void;
  receive(msg: Record<string, unknown>): void;
  status: { getCalls(): Array<{ thisValue: unknown; args: unknown[] }> };
};

const until = poller(8000, 10);

function node(id: string): HelperNode {
  const n = helper.getNode(id) as unknown as HelperNode | null;
  if (!n) throw new Error(`no node ${id}`);
  return n;
}

/** The node's own last status (the helper's spy on Node.prototype.status records the calls of every node). */
function lastStatus(id: string): { fill?: string; shape?: string; text?: string } | undefined {
  const n = node(id);
  const own = n.status.getCalls().filter((call) => call.thisValue === n);
  return own.at(-1)?.args[0] as { fill?: string; shape?: string; text?: string } | undefined;
}

function messages(emulator: MsbEmulator, prefix: string, uuid?: string): TrafficRecord[] {
  return emulator.traffic.filter(
    (r) =>
      r.direction === 'in' && r.message.startsWith(prefix) && (!uuid || r.uuid === uuid || r.message.includes(uuid)),
  );
}

function body(r: TrafficRecord): Record<string, unknown> {
  return JSON.parse(r.message.slice(2)) as Record<string, unknown>;
}

describe('msb nodes in Node-RED', function () {
  let emulator: MsbEmulator;
  let url: string;

  // Durable event caches go to this user directory, as they would to ~/.node-red.
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-msb-nodes-'));
  before(() => {
    helper.settings({ userDir });
    return helper.startServer();
  });
  after(() => {
    helper.settings({});
    fs.rmSync(userDir, { recursive: true, force: true });
    return helper.stopServer();
  });
  beforeEach(async () => {
    emulator = new MsbEmulator({ heartbeatInterval: 0 });
    ({ url } = await emulator.start({ port: 0 }));
  });
  afterEach(async () => {
    await helper.unload();
    await emulator.close();
  });

  const service = (id: string, uuid: string, extra: Record<string, unknown> = {}): Flow[number] => ({
    id,
    type: 'msb-config',
    name: `service ${id}`,
    uuid,
    description: 'test service',
    serviceClass: 'SmartObject',
    url,
    sockJs: true,
    autoReconnect: true,
    reconnectInterval: 3,
    eventCacheSize: 1000,
    parameters: [],
    ...extra,
  });

  it('two msb-config nodes register two independent services, each compiled from its users once', async () => {
    const flow: Flow = [
      service('cfgA', A, { parameters: [{ name: 'limit', type: 'int32', value: '10' }] }),
      service('cfgB', B, { sockJs: false }),
      {
        id: 'evA1',
        type: 'msb-event-out',
        service: 'cfgA',
        eventId: 'TEMP',
        name: 'Temperature',
        dataType: 'double',
        isArray: false,
        priority: 'LOW',
        cached: false,
      },
      {
        id: 'evA2',
        type: 'msb-event-out',
        service: 'cfgA',
        eventId: 'ALARM',
        dataType: 'none',
        priority: 'HIGH',
        cached: false,
      },
      {
        id: 'fnA',
        type: 'msb-function-in',
        service: 'cfgA',
        functionId: 'RESET',
        dataType: 'boolean',
        isArray: false,
        responseEvents: ['ALARM', 'TEMP'],
        wires: [[]],
      },
      {
        id: 'evB',
        type: 'msb-event-out',
        service: 'cfgB',
        eventId: 'LIST',
        dataType: 'string',
        isArray: true,
        priority: 'LOW',
        cached: false,
      },
    ];
    await helper.load(nodes, flow, { cfgA: { token: 'secret-a' } });
    await until(() => emulator.services().size === 2, 'two registrations');
    const a = emulator.services().get(A) as unknown as SelfDescription;
    const b = emulator.services().get(B) as unknown as SelfDescription;
    assert.strictEqual(a.token, 'secret-a');
    assert.deepStrictEqual(
      a.events.map((e) => [e['@id'], e.eventId]),
      [
        [1, 'ALARM'],
        [2, 'TEMP'],
      ],
    );
    assert.deepStrictEqual(a.functions, [
      {
        functionId: 'RESET',
        name: 'RESET',
        description: '',
        responseEvents: [1, 2],
        dataFormat: { dataObject: { type: 'boolean' } },
      },
    ]);
    assert.deepStrictEqual(a.configuration.parameters, { limit: { value: 10, type: 'INTEGER', format: 'INT32' } });
    assert.deepStrictEqual(b.events[0].dataFormat, { dataObject: { type: 'array', items: { type: 'string' } } });
    assert.strictEqual(messages(emulator, 'R ', A).length, 1, 'one registration for three users');
    await until(() => lastStatus('evA1')?.text === 'msb.status.registered', 'registered status');
    assert.deepStrictEqual(lastStatus('fnA'), { fill: 'green', shape: 'dot', text: 'msb.status.registered' });
  });

  it('publishes msg.payload with per-message priority, postDate and correlationId', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'TEMP',
        dataType: 'double',
        priority: 'MEDIUM',
        cached: false,
      },
    ];
    await helper.load(nodes, flow);
    await until(() => emulator.services().has(A), 'registration');
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered');
    node('ev').receive({ payload: 21.5 });
    node('ev').receive({
      payload: 22,
      priority: 'high',
      postDate: new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 6)),
      correlationId: 'corr-1',
    });
    await until(() => messages(emulator, 'E ').length === 2, 'two events');
    const [first, second] = messages(emulator, 'E ').map(body);
    assert.strictEqual(first.dataObject, 21.5);
    assert.strictEqual(first.priority, 1);
    assert.strictEqual(first.correlationId, undefined);
    assert.match(String(first.postDate), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepStrictEqual(second, {
      uuid: A,
      eventId: 'TEMP',
      priority: 2,
      postDate: '2024-01-02T03:04:05.006Z',
      dataObject: 22,
      correlationId: 'corr-1',
    });
  });

  it('invalid payloads and unregistered uncached events reach a Catch node and send nothing', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'READING',
        dataType: 'complex',
        isArray: false,
        priority: 'LOW',
        cached: false,
        schema: JSON.stringify({
          type: 'object',
          required: ['value'],
          properties: { value: { type: 'number' }, unit: { type: 'string', enum: ['C', 'F'] } },
        }),
      },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['out']] },
      { id: 'out', type: 'helper' },
    ];
    emulator.holdRegistrations(true);
    await helper.load(nodes, flow);
    const errors: string[] = [];
    node('out').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    // Before registration: not cached -> an error, not a silent drop.
    node('ev').receive({ payload: { value: 1 } });
    await until(() => errors.length === 1, 'not-registered error');
    assert.match(errors[0], /event "READING" not sent: not registered/);
    emulator.holdRegistrations(false);
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered');
    node('ev').receive({ payload: { value: 'hot', unit: 'C' } });
    node('ev').receive({ payload: { value: 1, unit: 'K' } });
    node('ev').receive({ payload: { value: 1 }, priority: 'URGENT' });
    await until(() => errors.length === 4, 'validation errors');
    assert.match(errors[1], /READING: invalid payload at payload\.value: type: must be number/);
    assert.match(errors[2], /invalid payload at payload\.unit: enum/);
    assert.match(errors[3], /priority/);
    node('ev').receive({ payload: { value: 3, unit: 'F' } });
    await until(() => messages(emulator, 'E ').length === 1, 'the valid event');
    assert.deepStrictEqual(body(messages(emulator, 'E ')[0]).dataObject, { value: 3, unit: 'F' });
  });

  it('caches flagged events while not registered and sends them in order after IO_REGISTERED', async () => {
    const flow: Flow = [
      service('cfg', A, { eventCacheSize: 2, eventCacheDurable: false }),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'N',
        dataType: 'int32',
        priority: 'LOW',
        cached: false,
      },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
      { id: 'errors', type: 'helper' },
    ];
    emulator.holdRegistrations(true);
    await helper.load(nodes, flow);
    const errors: string[] = [];
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    // The node's default is "not cached"; msg.cached overrides it per message.
    for (let i = 1; i <= 3; i++) node('ev').receive({ payload: i, cached: true });
    node('ev').receive({ payload: 4 });
    node('ev').receive({ payload: 5, cached: 'yes' });
    await until(() => errors.length === 2, 'errors for the uncached and the bad flag');
    // The flag check fails at once, the publish once the client answered: compare without order.
    errors.sort();
    assert.match(errors[0], /msb-event-out\.error\.cached/);
    assert.match(errors[1], /not registered/);
    await until(() => messages(emulator, 'R ').length === 1, 'registration sent');
    emulator.holdRegistrations(false);
    await until(() => messages(emulator, 'E ').length === 2, 'flush');
    assert.deepStrictEqual(
      messages(emulator, 'E ').map((r) => body(r).dataObject),
      [2, 3],
    );
  });

  it('msb-function-in emits calls with payload, topic, correlationId and msbCall, and validates when asked', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'fn',
        type: 'msb-function-in',
        service: 'cfg',
        functionId: 'SET_SPEED',
        dataType: 'int32',
        isArray: false,
        validateCalls: true,
        responseEvents: [],
        wires: [['out']],
      },
      { id: 'out', type: 'helper' },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
      { id: 'errors', type: 'helper' },
    ];
    await helper.load(nodes, flow);
    await until(() => emulator.services().has(A), 'registration');
    const got: Array<Record<string, unknown>> = [];
    const errors: string[] = [];
    node('out').on('input', (msg) => got.push(msg));
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    emulator.callFunction(A, 'SET_SPEED', { dataObject: 1200 }, 'corr-7');
    emulator.callFunction(A, '/SET_SPEED', { speed: 5 });
    emulator.callFunction(A, 'SET_SPEED', { dataObject: 'fast' });
    await until(() => got.length === 2 && errors.length === 1, 'calls');
    assert.strictEqual(got[0].payload, 1200);
    assert.strictEqual(got[0].topic, 'SET_SPEED');
    assert.strictEqual(got[0].correlationId, 'corr-7');
    assert.deepStrictEqual(got[0].msbCall, {
      uuid: A,
      correlationId: 'corr-7',
      functionId: 'SET_SPEED',
      functionParameters: { dataObject: 1200 },
    });
    assert.deepStrictEqual(got[1].payload, { speed: 5 }, 'no dataObject: every function parameter');
    assert.match(errors[0], /SET_SPEED: invalid payload at payload: type: must be integer/);
  });

  it('K updates the parameters, re-registers, and reaches the flow and the global context', async () => {
    const flow: Flow = [
      service('cfg', A, {
        contextKey: 'ovenConfig',
        parameters: [
          { name: 'limit', type: 'double', value: '1.5' },
          { name: 'mode', type: 'string', value: 'eco' },
        ],
      }),
      { id: 'conf', type: 'msb-function-in', service: 'cfg', mode: 'configuration', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ];
    await helper.load(nodes, flow);
    const got: Array<Record<string, unknown>> = [];
    node('out').on('input', (msg) => got.push(msg));
    await until(() => emulator.services().has(A), 'registration');
    await until(() => got.length === 1, 'initial values');
    assert.deepStrictEqual(got[0].payload, { limit: 1.5, mode: 'eco' });
    emulator.sendConfiguration(A, { limit: 7.25 });
    await until(() => got.length === 2, 'change');
    assert.deepStrictEqual(got[1], {
      ...got[1],
      topic: 'configuration',
      payload: { limit: 7.25, mode: 'eco' },
      changed: { limit: 7.25 },
    });
    await until(() => messages(emulator, 'R ').length === 2, 're-registration');
    assert.strictEqual(
      (emulator.services().get(A) as unknown as SelfDescription).configuration.parameters.limit.value,
      7.25,
    );
    const cfg = helper.getNode('cfg') as unknown as {
      context(): { global: { get(k: string): unknown } };
      parameters: Record<string, unknown>;
    };
    assert.deepStrictEqual(cfg.context().global.get('ovenConfig'), { limit: 7.25, mode: 'eco' });
    assert.deepStrictEqual(cfg.parameters, { limit: 7.25, mode: 'eco' });
  });

  it('values set by K outlive a full redeploy, until the parameter is edited in the editor', async () => {
    const flow = (limit: string): Flow => [
      service('cfgK', A, { parameters: [{ name: 'limit', type: 'double', value: limit }] }),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfgK',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
    ];
    const registeredLimit = (): unknown =>
      (emulator.services().get(A) as unknown as SelfDescription | undefined)?.configuration.parameters.limit.value;
    await helper.load(nodes, flow('1.5'));
    await until(() => registeredLimit() === 1.5, 'declared value');
    emulator.sendConfiguration(A, { limit: 7 });
    await until(() => registeredLimit() === 7, 'value set by K');
    await helper.setFlows(flow('1.5'), 'full');
    await until(
      () => messages(emulator, 'R ').length >= 3 && emulator.services().has(A),
      'registration after the full deploy',
    );
    assert.strictEqual(registeredLimit(), 7, 'the MSB value survives the redeploy');
    await helper.setFlows(flow('2.5'), 'full');
    await until(() => registeredLimit() === 2.5, 'the edited editor value wins');
  });

  it('shows the NIO error in words on every user and recovers on the next IO_PUBLISHED', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
    ];
    await helper.load(nodes, flow);
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered');
    emulator.sendStatus(A, 'NIO_EVENT_FORWARDING_ERROR');
    await until(() => lastStatus('ev')?.text === 'msb.status.NIO_EVENT_FORWARDING_ERROR', 'nio status');
    assert.strictEqual(lastStatus('ev')?.fill, 'red');
    node('ev').receive({ payload: 'ok' });
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'recovered');
  });

  it('a copied msb-config with the same uuid keeps showing "uuid already connected"', async () => {
    const flow: Flow = [
      service('cfg', A),
      service('copy', A),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
      {
        id: 'ev2',
        type: 'msb-event-out',
        service: 'copy',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
    ];
    emulator.holdRegistrations(true);
    await helper.load(nodes, flow);
    await until(() => messages(emulator, 'R ').length === 2, 'both registrations arrive');
    emulator.holdRegistrations(false);
    await until(
      () => ['ev', 'ev2'].some((id) => lastStatus(id)?.text === 'msb.status.NIO_ALREADY_CONNECTED'),
      'the refusal',
    );
    const refused = lastStatus('ev')?.text === 'msb.status.NIO_ALREADY_CONNECTED' ? 'ev' : 'ev2';
    const accepted = refused === 'ev' ? 'ev2' : 'ev';
    await until(() => emulator.sessionCount === 1, 'the refused session closed');
    // A later positive marker: an event of the accepted service gets through; the refusal is still shown after it.
    node(accepted).receive({ payload: 'after the refusal' });
    await until(
      () => messages(emulator, 'E ').some((m) => body(m).dataObject === 'after the refusal'),
      'an event of the accepted service',
    );
    assert.deepStrictEqual(lastStatus(refused), {
      fill: 'red',
      shape: 'ring',
      text: 'msb.status.NIO_ALREADY_CONNECTED',
    });
    assert.strictEqual(lastStatus(accepted)?.text, 'msb.status.registered');
  });

  it('reconnects after the MSB side kills the connection and registers again', async function () {
    this.timeout(15000);
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: true,
      },
    ];
    await helper.load(nodes, flow);
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered');
    emulator.dropConnection(A);
    await until(() => lastStatus('ev')?.text === 'msb.status.disconnected', 'disconnected status');
    node('ev').receive({ payload: 'while down' });
    await until(() => messages(emulator, 'R ').length === 2, 're-registration', 12000);
    await until(() => lastStatus('ev')?.text === 'msb.status.registered', 'registered again');
    await until(() => messages(emulator, 'E ').length === 1, 'cached event after reconnect');
    assert.strictEqual(body(messages(emulator, 'E ')[0]).dataObject, 'while down');
  });

  it('a redeploy of one changed user re-registers once', async () => {
    const ev = (eventId: string): Flow[number] => ({
      id: 'ev',
      type: 'msb-event-out',
      service: 'cfg',
      eventId,
      dataType: 'string',
      priority: 'LOW',
      cached: false,
    });
    const fixed = [
      service('cfg', A),
      ev('FIRST'),
      {
        id: 'fn',
        type: 'msb-function-in',
        service: 'cfg',
        functionId: 'F',
        dataType: 'none',
        responseEvents: [],
        wires: [[]],
      },
    ];
    await helper.load(nodes, fixed);
    await until(() => emulator.services().has(A), 'registration');
    await helper.setFlows([fixed[0], ev('SECOND'), fixed[2]], 'nodes');
    await until(() => messages(emulator, 'R ').length === 2, 'second registration');
    // A later positive marker on the same connection: an event sent after the redeploy arrives, still after two R.
    node('ev').receive({ payload: 'after the redeploy' });
    await until(
      () => messages(emulator, 'E ').some((m) => body(m).dataObject === 'after the redeploy'),
      'an event after the redeploy',
    );
    assert.strictEqual(messages(emulator, 'R ').length, 2);
    assert.deepStrictEqual(
      (emulator.services().get(A) as unknown as SelfDescription).events.map((e) => e.eventId),
      ['SECOND'],
    );
  });

  it('an invalid declaration is reported, not registered', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'fn',
        type: 'msb-function-in',
        service: 'cfg',
        functionId: 'F',
        dataType: 'none',
        responseEvents: ['MISSING'],
        wires: [[]],
      },
    ];
    await helper.load(nodes, flow);
    await until(() => lastStatus('fn')?.text === 'msb.status.invalid', 'invalid status');
    const cfg = helper.getNode('cfg') as unknown as {
      error: { getCalls(): Array<{ thisValue: unknown; args: unknown[] }> };
    };
    const own = cfg.error.getCalls().filter((call) => call.thisValue === cfg);
    assert.match(String(own.at(-1)?.args[0]), /msb-config\.error\.definition/);
    assert.strictEqual(messages(emulator, 'R ').length, 0);
  });

  it('a node with a bad data format or no msb-config fails its messages with a clear error', async () => {
    const flow: Flow = [
      service('cfg', A),
      {
        id: 'bad',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'B',
        dataType: 'complex',
        schema: '{"type":"object","properties":{"x":{"$ref":"#/definitions/Nope"}}}',
        priority: 'LOW',
        cached: false,
      },
      {
        id: 'orphan',
        type: 'msb-event-out',
        service: '',
        eventId: 'O',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
      {
        id: 'good',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'G',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
      { id: 'catcher', type: 'catch', scope: null, uncaught: false, wires: [['errors']] },
      { id: 'errors', type: 'helper' },
    ];
    await helper.load(nodes, flow);
    const errors: string[] = [];
    node('errors').on('input', (msg) => errors.push(String((msg.error as { message: string }).message)));
    assert.deepStrictEqual(lastStatus('bad'), { fill: 'red', shape: 'ring', text: 'msb.status.invalid' });
    assert.deepStrictEqual(lastStatus('orphan'), { fill: 'red', shape: 'ring', text: 'msb.status.noService' });
    node('bad').receive({ payload: {} });
    node('orphan').receive({ payload: 'x' });
    await until(() => errors.length === 2, 'two errors');
    assert.match(
      errors[0],
      /events\[B\]\.dataFormat\.dataObject\.properties\.x\.\$ref: refers to "#\/definitions\/Nope"/,
    );
    assert.match(errors[1], /msb-event-out\.error\.noService/);
    // The bad node is left out; the service registers with the good one.
    await until(() => emulator.services().has(A), 'registration');
    assert.deepStrictEqual(
      (emulator.services().get(A) as unknown as SelfDescription).events.map((e) => e.eventId),
      ['G'],
    );
  });

  it('close leaves no socket or timer behind', async () => {
    const handles = (): number => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
    const baseline = handles();
    const flow: Flow = [
      service('cfg', A),
      service('cfg2', B, { url: 'ws://127.0.0.1:1' }),
      {
        id: 'ev',
        type: 'msb-event-out',
        service: 'cfg',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
      {
        id: 'ev2',
        type: 'msb-event-out',
        service: 'cfg2',
        eventId: 'X',
        dataType: 'string',
        priority: 'LOW',
        cached: false,
      },
    ];
    await helper.load(nodes, flow);
    await until(() => emulator.services().has(A), 'registration');
    await until(() => lastStatus('ev2')?.text === 'msb.status.unreachable', 'refused connection waiting to retry');
    let disconnected = 0;
    emulator.on('disconnect', () => disconnected++);
    await helper.unload();
    await until(() => disconnected === 1 && emulator.sessionCount === 0, 'emulator sees the socket close');
    await until(() => handles() <= baseline, `active handles back to ${baseline}`);
  });

  it('the editor preview endpoint compiles the dialog declarations with the runtime compiler', async () => {
    await helper.load(nodes, [service('cfg', A)]);
    const ok = await helper
      .request()
      .post('/msb-config/self-description')
      .send({
        service: { uuid: A, name: 'Oven', serviceClass: 'Application' },
        hasToken: true,
        events: [{ eventId: 'E', dataType: 'int64', isArray: true }],
        functions: [{ functionId: 'F', dataType: 'none', responseEvents: ['E'] }],
      })
      .expect(200);
    assert.deepStrictEqual(ok.body.selfDescription.events, [
      {
        '@id': 1,
        eventId: 'E',
        name: 'E',
        description: '',
        dataFormat: { dataObject: { type: 'array', items: { type: 'integer', format: 'int64' } } },
      },
    ]);
    assert.strictEqual(ok.body.selfDescription.token, '********');
    const bad = await helper
      .request()
      .post('/msb-config/self-description')
      .send({ service: { uuid: 'nope', name: 'x' } })
      .expect(400);
    assert.match(bad.body.error, /uuid: "nope" is not a UUID/);
    const state = await helper.request().get('/msb-config/cfg/state').expect(200);
    assert.deepStrictEqual(
      state.body,
      {
        state: 'disconnected',
        cachedEvents: 0,
        counts: { cached: 0, dropped: 0, unacknowledged: 0, rejected: 0 },
        durableCache: true,
        parameters: {},
      },
      'no users: no connection',
    );
    await helper.request().get('/msb-config/nope/state').expect(404);
  });

  it('end to end: inject -> event-out on one service, function-in -> change -> event-out on another, correlationId round trip', async () => {
    emulator.addFlow({
      source: { uuid: A, eventId: 'REQUEST' },
      target: { uuid: B, functionId: 'HANDLE' },
      mapping: [{ from: '/dataObject', to: '/dataObject' }],
    });
    emulator.addFlow({ source: { uuid: B, eventId: 'RESPONSE' }, target: { uuid: A, functionId: 'RESULT' } });
    const flow: Flow = [
      service('cfgA', A),
      service('cfgB', B),
      {
        id: 'req',
        type: 'msb-event-out',
        service: 'cfgA',
        eventId: 'REQUEST',
        dataType: 'int32',
        priority: 'LOW',
        cached: true,
      },
      {
        id: 'result',
        type: 'msb-function-in',
        service: 'cfgA',
        functionId: 'RESULT',
        dataType: 'int32',
        responseEvents: [],
        wires: [['out']],
      },
      {
        id: 'handle',
        type: 'msb-function-in',
        service: 'cfgB',
        functionId: 'HANDLE',
        dataType: 'int32',
        responseEvents: ['RESPONSE'],
        wires: [['double']],
      },
      {
        id: 'double',
        type: 'change',
        rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'payload * 2', tot: 'jsonata' }],
        action: '',
        property: '',
        from: '',
        to: '',
        reg: false,
        wires: [['resp']],
      },
      {
        id: 'resp',
        type: 'msb-event-out',
        service: 'cfgB',
        eventId: 'RESPONSE',
        dataType: 'int32',
        priority: 'LOW',
        cached: false,
      },
      { id: 'out', type: 'helper' },
    ];
    await helper.load([...nodes, changeNode], flow);
    await until(() => emulator.services().size === 2, 'both services registered');
    const results: Array<Record<string, unknown>> = [];
    node('out').on('input', (msg) => results.push(msg));
    node('req').receive({ payload: 21, correlationId: 'order-4711' });
    await until(() => results.length === 1, 'round trip');
    assert.strictEqual(results[0].payload, 42);
    assert.strictEqual(results[0].correlationId, 'order-4711');
    const response = messages(emulator, 'E ', B)
      .map(body)
      .find((e) => e.eventId === 'RESPONSE');
    assert.strictEqual(response?.correlationId, 'order-4711');
    const b = emulator.services().get(B) as unknown as SelfDescription;
    assert.deepStrictEqual(b.functions[0].responseEvents, [b.events.find((e) => e.eventId === 'RESPONSE')?.['@id']]);
  });
});
