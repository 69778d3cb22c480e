// apigear-service restarted, disabled and deleted while a peer parses every message as ApiGear's generated adapters do
// (JSON.parse on every payload): by default nothing unparsable is published; clearing retained values is an opt-in.
import assert from 'assert';
import helper from 'node-red-node-test-helper';
import type { TestNodeInitializer } from 'node-red-node-test-helper';
import { helloYaml } from './support/hello';
import { green } from './support/node-calls';
import { uniqueModule } from './lib/mqtt-peer';
import { StrictJsonPeer } from './support/strict-json-peer';
import type { SgBrokerNode } from '../nodes/sg/sg-broker-api';
import { clearRetained } from './lib/mqtt-peer';

helper.init(require.resolve('node-red'));

const nodes = [require('../nodes/sg/sg-broker'), require('../nodes/apigear/apigear-service')] as TestNodeInitializer[];

function brokerDef(): Record<string, unknown> {
  if (process.env.MQTT_URL) {
    const u = new URL(process.env.MQTT_URL);
    return {
      id: 'b1',
      type: 'sg-broker',
      mode: 'external',
      host: u.hostname,
      port: Number(u.port || 1883),
      protocol: '5',
    };
  }
  return { id: 'b1', type: 'sg-broker', mode: 'embedded', embeddedPort: 0 };
}

describe(
  'apigear-service with a strict JSON peer (as generated clients parse)' +
    (process.env.MQTT_URL ? ` (${process.env.MQTT_URL})` : ''),
  () => {
    let peer: StrictJsonPeer | undefined;
    before(() => helper.startServer());
    after(() => helper.stopServer());
    afterEach(async () => {
      // On a shared broker (MQTT_URL), leave no retained value behind; the test's own clean-up, not the node's.
      if (process.env.MQTT_URL && P) await clearRetained(url, [`${P}/prop/last`]);
      await peer?.end();
      peer = undefined;
      await helper.unload();
    });

    /** Deploys the service, sets a property, restarts, disables and deletes it; returns what the strict peer saw. */
    let P = '';
    let url = '';

    async function lifecycle(extra: Record<string, unknown>): Promise<StrictJsonPeer> {
      const moduleName = uniqueModule();
      P = `${moduleName}/Hello`;
      // A second service keeps the broker node in use (the embedded broker stops with its last user).
      const tab = [
        { id: 'f1', type: 'tab', label: 'apigear' },
        {
          id: 'keeper',
          z: 'f1',
          type: 'apigear-service',
          broker: 'b1',
          moduleYaml: helloYaml(uniqueModule()),
          interface: 'Hello',
          wires: [[], []],
        },
      ];
      const service = (more: object = {}): object => ({
        id: 'svc',
        z: 'f1',
        type: 'apigear-service',
        broker: 'b1',
        moduleYaml: helloYaml(moduleName),
        interface: 'Hello',
        wires: [[], []],
        ...extra,
        ...more,
      });
      await helper.load(nodes as never, [...tab, brokerDef(), service()] as never);
      await green('svc');
      const broker = helper.getNode('b1') as unknown as SgBrokerNode;
      const probe = { id: 'probe', status: () => undefined };
      url = (await broker.endpoint(probe)).url;
      await broker.release(probe, false);
      const watcher = await StrictJsonPeer.watch(url, P);
      peer = watcher;
      (helper.getNode('svc') as unknown as { receive(m: object): void }).receive({
        topic: 'prop/last',
        payload: { content: 'before' },
      });
      await watcher.seen(`${P}/prop/last`, (v) => (v as { content?: string }).content === 'before');
      // "Modified nodes" deploys keep the broker node up: restart (close with removed=false), disable, delete.
      await helper.setFlows([...tab, brokerDef(), service({ name: 'restarted' })] as never, 'nodes');
      await green('svc');
      await helper.setFlows([...tab, brokerDef(), service({ name: 'disabled', d: true })] as never, 'nodes');
      await helper.setFlows([...tab, brokerDef(), service({ name: 'back' })] as never, 'nodes');
      await green('svc');
      await helper.setFlows([...tab, brokerDef()] as never, 'nodes');
      // A positive end marker: the peer's own message comes back after everything the broker routed to it before.
      const client = (
        watcher as unknown as { client: { publishAsync(t: string, p: string, o: object): Promise<unknown> } }
      ).client;
      await client.publishAsync(`${P}/sig/busbarMarker`, '["end"]', { qos: 1 });
      await watcher.seen(`${P}/sig/busbarMarker`);
      return watcher;
    }

    it('restart, disable, delete: the peer sees only JSON, and the retained value stays', async () => {
      const watcher = await lifecycle({});
      assert.deepStrictEqual(watcher.unparsable, [], 'nothing a generated client cannot parse');
      // A client that connects later still gets the last value: retained values are the service's, not the node's.
      const late = await StrictJsonPeer.watch(url, P);
      try {
        await late.seen(`${P}/prop/last`, (v) => (v as { content?: string }).content === 'before');
      } finally {
        await late.end();
      }
    });

    it('with "clear retained values" on, deleting it publishes empty retained messages (the peer sees them)', async () => {
      const watcher = await lifecycle({ clearRetained: true });
      // Disable and delete both close with removed=true: each clears the one property.
      assert.ok(watcher.unparsable.length >= 1, 'the opt-in clear was published');
      assert.ok(
        watcher.unparsable.every((u) => u.topic.endsWith('/Hello/prop/last') && u.hex === ''),
        JSON.stringify(watcher.unparsable),
      );
    });
  },
);
