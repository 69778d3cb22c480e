// Interop with the official VFK Node.js MSB client (@vfk_research/msb-client-websocket-nodejs 1.0.x): it registers
// with the emulator, its event reaches a Busbar client's function through an integration flow, the Busbar response
// event comes back to its function with the same correlationId, and it answers ping and applies K.
// Runs when MSB_OFFICIAL_CLIENT points at an installed copy of that package (it is not a dependency of this one):
//   npm install --prefix /tmp/msb-interop @vfk_research/msb-client-websocket-nodejs@1.0.14
//   MSB_OFFICIAL_CLIENT=/tmp/msb-interop/node_modules/@vfk_research/msb-client-websocket-nodejs npm test
import assert from 'assert';
import { compileSelfDescription, MsbClient, MsbEmulator } from '../src/msb';
import { poller } from './support/until';
import { skipBecause } from './support/skip';

const A = '8f0c1a2e-1111-4222-8333-444455556666';
const B = '8f0c1a2e-1111-4222-8333-777788889999';

interface OfficialClient {
  addEvent(id: string, name: string, description: string, type: string, priority: string, isArray: boolean): void;
  addFunction(
    id: string,
    name: string,
    description: string,
    type: string,
    fn: (params: Record<string, unknown>) => void,
    isArray: boolean,
    responseEvents: string[],
  ): void;
  addConfigParameter(key: string, value: unknown, format: string): void;
  getConfigParameter(key: string): unknown;
  connect(url: string): void;
  register(): void;
  isRegistered(): boolean;
  publish(
    eventId: string,
    value: unknown,
    priority: string,
    cached: boolean,
    postDate: undefined,
    correlationId: string,
  ): void;
  disableAutoReconnect(disabled: boolean): void;
  enableDebug(enabled: boolean): void;
  disconnect(): void;
}

const until = poller(8000, 20);

describe('msb interop with the official VFK Node.js client', function () {
  const location = process.env.MSB_OFFICIAL_CLIENT;
  before(function () {
    if (!location)
      skipBecause(
        this,
        'MSB_OFFICIAL_CLIENT is not set (the path of @vfk_research/msb-client-websocket-nodejs; .ci/run installs it)',
        { requiredInCi: true },
      );
  });

  it('registers, publishes, receives a response event with the same correlationId, answers ping and applies K', async () => {
    // The client reads require.main.filename at load; under mocha's ESM entry there is no main module.
    const proc = process as unknown as { mainModule?: NodeModule };
    proc.mainModule ??= module;

    const Official = require(location as string) as new (
      type: string,
      uuid: string,
      name: string,
      description: string,
      token: string,
    ) => OfficialClient;
    const emulator = new MsbEmulator({ heartbeatInterval: 200 });
    const { url } = await emulator.start({ port: 0 });
    emulator.addFlow({ source: { uuid: A, eventId: 'REQ' }, target: { uuid: B, functionId: 'HANDLE' } });
    emulator.addFlow({ source: { uuid: B, eventId: 'RESP' }, target: { uuid: A, functionId: 'RESULT' } });
    const results: Array<Record<string, unknown>> = [];
    const official = new Official('SmartObject', A, 'official', 'official VFK client', 'tok');
    official.enableDebug(false);
    official.disableAutoReconnect(true);
    official.addEvent('REQ', 'request', 'a request', 'string', 'LOW', false);
    official.addFunction('RESULT', 'result', 'a result', 'string', (params) => results.push(params), false, []);
    official.addConfigParameter('limit', 5, 'INT32');
    const ours = new MsbClient({ url });
    ours.setSelfDescription(
      compileSelfDescription(
        { uuid: B, name: 'busbar', serviceClass: 'SmartObject' },
        [{ eventId: 'RESP', dataFormat: { kind: 'simple', type: 'string' } }],
        [{ functionId: 'HANDLE', dataFormat: { kind: 'simple', type: 'string' }, responseEvents: ['RESP'] }],
      ),
    );
    ours.on('call', (call) =>
      ours.publish({
        eventId: 'RESP',
        dataObject: `answer to ${String(call.functionParameters.dataObject)}`,
        correlationId: call.correlationId,
      }),
    );
    try {
      official.connect(url);
      official.register();
      ours.connect();
      await until(() => official.isRegistered() && ours.registered, 'both registered');
      // Plain text: the official client's string-slicing frame parser breaks on escaped quotes in nested JSON.
      official.publish('REQ', 'hello world', 'HIGH', false, undefined, 'corr-interop-1');
      await until(() => results.length === 1, 'the response event at the official client');
      assert.deepStrictEqual(results[0], { dataObject: 'answer to hello world', correlationId: 'corr-interop-1' });
      emulator.ping(A);
      emulator.sendConfiguration(A, { limit: 9 });
      await until(() => official.getConfigParameter('limit') === 9, 'K applied');
      assert.ok(emulator.traffic.some((r) => r.direction === 'in' && r.message === 'pong' && r.uuid === A));
    } finally {
      official.disconnect();
      await ours.close();
      await emulator.close();
    }
  });
});
