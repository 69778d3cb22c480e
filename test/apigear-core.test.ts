// ApiGear service and client cores on mqtt.js v5, each checked against an independent plain-mqtt.js peer.
import assert from 'assert';
import { MqttClient } from 'mqtt';
import {
  ApiGearClient,
  ApiGearService,
  ApiGearTimeoutError,
  Call,
  compilePlan,
  InterfacePlan,
  parseModule,
} from '../src/apigear';
import { helloYaml } from './support/hello';
import { connectManaged, connectV5, endClient, Inbox, once, publish, subscribe } from './support/mqtt-peer';
import type { ManagedMqttClient } from '../src/mqtt/managed-client';
import { KillableProxy } from './lib/mqtt-peer';
import { startTestBroker as startBroker, TestBroker, uniqueModule } from './lib/mqtt-peer';

describe(
  'apigear cores over MQTT v5' + (process.env.MQTT_URL ? ` (${process.env.MQTT_URL})` : ' (in-process aedes 2)'),
  () => {
    let broker: TestBroker;
    let plan: InterfacePlan;
    let P: string;
    let clients: Array<MqttClient | ManagedMqttClient> = [];
    const proxies: KillableProxy[] = [];

    /** A TCP proxy to the broker whose kill() cuts the link without a DISCONNECT; closed after the test. */
    async function viaProxy(): Promise<{ url: string; proxy: KillableProxy }> {
      const target = new URL(broker.url);
      const proxy = new KillableProxy({ host: target.hostname, port: Number(target.port || 1883) });
      await proxy.start();
      proxies.push(proxy);
      return { url: `mqtt://127.0.0.1:${proxy.port}`, proxy };
    }

    before(async () => {
      broker = await startBroker();
    });
    after(() => broker.close());
    beforeEach(() => {
      plan = compilePlan(parseModule(helloYaml(uniqueModule())), 'Hello');
      P = plan.prefix;
    });
    afterEach(async () => {
      const cleaner = await connectV5(broker.url, `cleanup-${process.pid}`);
      await publish(cleaner, `${P}/prop/last`, '', { retain: true }); // never leave retained values behind on a real broker
      await Promise.all([...clients, cleaner].map(endClient));
      clients = [];
      await Promise.all(proxies.splice(0).map((p) => p.close()));
    });

    async function peer(id: string): Promise<{ client: MqttClient; inbox: Inbox }> {
      const client = await connectV5(broker.url, `${id}-${process.pid}`);
      clients.push(client);
      return { client, inbox: new Inbox(client) };
    }

    describe('service', () => {
      async function service(opts = {}, url = broker.url): Promise<{ svc: ApiGearService; conn: ManagedMqttClient }> {
        const conn = await connectManaged(url, `svc-${process.pid}`);
        clients.push(conn);
        const svc = new ApiGearService(plan, conn, opts);
        const ready = once(svc, 'ready');
        svc.start();
        await ready;
        return { svc, conn };
      }

      it('publishes properties retained as JSON and signals as a JSON array', async () => {
        const { svc } = await service();
        assert.strictEqual(await svc.setProperty('last', { content: 'hello' }), true);
        assert.strictEqual(
          await svc.setProperty('last', { content: 'hello' }),
          false,
          'unchanged values are not republished',
        );
        const { client, inbox } = await peer('raw');
        await subscribe(client, [`${P}/prop/+`, `${P}/sig/+`]);
        const prop = await inbox.next(`${P}/prop/last`);
        assert.strictEqual(prop.packet.retain, true);
        assert.deepStrictEqual(JSON.parse(prop.payload.toString()), { content: 'hello' });
        await svc.emitSignal('justSaid', [{ content: 'hi' }]);
        const sig = await inbox.next(`${P}/sig/justSaid`);
        assert.strictEqual(sig.packet.retain, false);
        assert.strictEqual(sig.payload.toString(), '[{"content":"hi"}]');
      });

      it('answers calls on the ResponseTopic, echoing one-byte (Python) and decimal-string (C++) CorrelationData', async () => {
        const { svc } = await service();
        svc.on('call', (call: Call) => {
          const [msg, when] = call.args as [{ content: string }, number];
          void svc.reply(call, msg.content.length * 10 + when);
        });
        const { client, inbox } = await peer('raw');
        // Python builds the reply topic from Paho's bytes client id; a service must use it as is.
        const pyTopic = `${P}/rpc/say/b'py-client'/result`;
        const cppTopic = `${P}/rpc/say/cpp-client/result`;
        await subscribe(client, [pyTopic, cppTopic]);
        await publish(client, `${P}/rpc/say`, JSON.stringify([{ content: 'abc' }, 1]), {
          properties: { responseTopic: pyTopic, correlationData: Buffer.from([7]) },
        });
        const py = await inbox.next(pyTopic);
        assert.deepStrictEqual([...py.packet.properties!.correlationData!], [7]);
        assert.strictEqual(py.payload.toString(), '31');
        assert.strictEqual(py.packet.retain, false);
        await publish(client, `${P}/rpc/say`, JSON.stringify([{ content: 'four' }, 2]), {
          properties: { responseTopic: cppTopic, correlationData: Buffer.from('4711', 'ascii') },
        });
        const cpp = await inbox.next(cppTopic);
        assert.strictEqual(cpp.packet.properties!.correlationData!.toString('ascii'), '4711');
        assert.strictEqual(cpp.payload.toString(), '42');
      });

      it('reports set requests, applies them when asked, and drops values that break the IDL', async () => {
        const { svc } = await service({ applySet: true });
        const warnings: string[] = [];
        svc.on('warning', (w) => warnings.push(w));
        const { client, inbox } = await peer('raw');
        await subscribe(client, `${P}/prop/+`);
        const bad = once<string>(svc, 'warning');
        await publish(client, `${P}/set/last`, JSON.stringify({ content: 3 }));
        assert.match(
          await bad,
          /1 inbound message dropped \(breaks the IDL\); last: set\/last: Hello\.last\.content: must be of type string/,
        );
        const set = once<{ property: string; value: unknown }>(svc, 'set');
        await publish(client, `${P}/set/last`, JSON.stringify({ content: 'via set' }));
        assert.deepStrictEqual(await set, { property: 'last', value: { content: 'via set' } });
        const prop = await inbox.next(`${P}/prop/last`);
        assert.deepStrictEqual(JSON.parse(prop.payload.toString()), { content: 'via set' });
        assert.strictEqual(inbox.all.length, 0, 'the bad set published nothing');
      });

      it('rejects bad values and arguments before publishing anything', async () => {
        const { svc } = await service();
        const { client, inbox } = await peer('raw');
        await subscribe(client, [`${P}/prop/+`, `${P}/sig/+`]);
        await assert.rejects(svc.setProperty('last', { content: 1 }), /Hello\.last\.content: must be of type string/);
        await assert.rejects(
          svc.emitSignal('justSaid', [{ text: 'x' }]),
          /Hello\.justSaid\(msg\): must have field content/,
        );
        await assert.rejects(svc.emitSignal('nope', []), /Hello has no signal nope/);
        await assert.rejects(
          svc.reply({ operation: 'say', args: [], responseTopic: `${P}/x`, correlationData: Buffer.from([1]) }, 'many'),
          /Hello\.say return value: must be an integer/,
        );
        await svc.emitSignal('justSaid', [{ content: 'fence' }]);
        const first = await inbox.next(() => true);
        assert.strictEqual(first.payload.toString(), '[{"content":"fence"}]', 'nothing went out before the fence');
      });

      it('re-subscribes and republishes its properties after a reconnect', async () => {
        const { url, proxy } = await viaProxy();
        const { svc, conn } = await service({}, url);
        await svc.setProperty('last', { content: 'kept' });
        const { client, inbox } = await peer('raw');
        // Clear the retained value while the service is away; the service must restore it when it is back.
        const down = once(conn, 'close');
        proxy.kill();
        await down;
        await publish(client, `${P}/prop/last`, '', { retain: true });
        await once(svc, 'ready');
        await subscribe(client, `${P}/prop/+`);
        const prop = await inbox.next(`${P}/prop/last`);
        assert.strictEqual(prop.packet.retain, true);
        assert.deepStrictEqual(JSON.parse(prop.payload.toString()), { content: 'kept' });
        const set = once<{ property: string }>(svc, 'set');
        await publish(client, `${P}/set/last`, JSON.stringify({ content: 'after' }));
        assert.strictEqual((await set).property, 'last');
      });
    });

    describe('client', () => {
      async function client(timeoutMs = 5000): Promise<{ cli: ApiGearClient; conn: ManagedMqttClient; id: string }> {
        const id = `nr-cli-${process.pid}`;
        const conn = await connectManaged(broker.url, id);
        clients.push(conn);
        const cli = new ApiGearClient(plan, conn, { clientId: id, timeoutMs });
        const ready = once(cli, 'ready');
        cli.start();
        await ready;
        return { cli, conn, id };
      }

      it('gets retained values on connect, suppresses unchanged ones, and reports signals', async () => {
        const { client: raw } = await peer('raw-svc');
        await publish(raw, `${P}/prop/last`, JSON.stringify({ content: 'one' }), { retain: true });
        const id = `nr-cli-${process.pid}`;
        const conn = await connectManaged(broker.url, id);
        clients.push(conn);
        const cli = new ApiGearClient(plan, conn, { clientId: id });
        const seen: unknown[] = [];
        cli.on('property', (p) => seen.push(p.value));
        const first = once(cli, 'property');
        cli.start();
        await first;
        await publish(raw, `${P}/prop/last`, JSON.stringify({ content: 'one' }), { retain: true });
        await publish(raw, `${P}/prop/last`, JSON.stringify({ content: 'two' }), { retain: true });
        const sig = once<{ signal: string; args: unknown[] }>(cli, 'signal');
        await publish(raw, `${P}/sig/justSaid`, JSON.stringify([{ content: 'said' }]));
        assert.deepStrictEqual(await sig, { signal: 'justSaid', args: [{ content: 'said' }] });
        assert.deepStrictEqual(seen, [{ content: 'one' }, { content: 'two' }]);
        assert.deepStrictEqual(cli.value('last'), { content: 'two' });
      });

      it('invokes with ResponseTopic and fresh CorrelationData, matches the echo by bytes and drops duplicates', async () => {
        const { cli, id } = await client();
        const { client: raw, inbox } = await peer('raw-svc');
        await subscribe(raw, `${P}/rpc/+`);
        const call = cli.invoke('say', [{ content: 'hi' }, 0]);
        const req = await inbox.next(`${P}/rpc/say`);
        assert.strictEqual(req.payload.toString(), '[{"content":"hi"},0]');
        assert.strictEqual(req.packet.retain, false);
        assert.strictEqual(req.packet.properties!.responseTopic, `${P}/rpc/say/${id}/result`);
        const corr = req.packet.properties!.correlationData!;
        assert.ok(corr.length > 0);
        // A reply whose bytes merely start like ours is someone else's.
        await publish(raw, req.packet.properties!.responseTopic!, '1', {
          properties: { correlationData: Buffer.concat([corr, Buffer.from([0])]) },
        });
        await publish(raw, req.packet.properties!.responseTopic!, '42', { properties: { correlationData: corr } });
        await publish(raw, req.packet.properties!.responseTopic!, '43', { properties: { correlationData: corr } });
        assert.strictEqual(await call, 42);
        const second = cli.invoke('say', [{ content: 'again' }, 2]);
        const req2 = await inbox.next(`${P}/rpc/say`);
        assert.notDeepStrictEqual(
          req2.packet.properties!.correlationData,
          corr,
          'every call gets fresh CorrelationData',
        );
        await publish(raw, req2.packet.properties!.responseTopic!, '7', {
          properties: { correlationData: req2.packet.properties!.correlationData },
        });
        assert.strictEqual(await second, 7);
        assert.strictEqual(cli.dropped, 2, 'the foreign and the duplicate reply were dropped');
      });

      it('times out calls nobody answers, and fails replies that break the return type', async () => {
        const { cli } = await client();
        await assert.rejects(
          cli.invoke('say', [{ content: 'void' }, 0], 150),
          (err: Error) => err instanceof ApiGearTimeoutError && /Hello\.say: no reply within 150 ms/.test(err.message),
        );
        const { client: raw, inbox } = await peer('raw-svc');
        await subscribe(raw, `${P}/rpc/+`);
        const call = cli.invoke('say', [{ content: 'x' }, 0]).then(
          () => undefined,
          (err: Error) => err,
        );
        const req = await inbox.next(`${P}/rpc/say`);
        await publish(raw, req.packet.properties!.responseTopic!, '"not an int"', {
          properties: { correlationData: req.packet.properties!.correlationData },
        });
        assert.match(String(await call), /Hello\.say return value: must be an integer/);
      });

      it('publishes set requests unretained, and nothing for values or arguments that break the IDL', async () => {
        const { cli } = await client();
        const { client: raw, inbox } = await peer('raw-svc');
        await subscribe(raw, [`${P}/set/+`, `${P}/rpc/+`]);
        await assert.rejects(cli.setProperty('last', 'plain'), /Hello\.last: must be of type object/);
        await assert.rejects(cli.invoke('say', [{ content: 'x' }, 9]), /Hello\.say\(when\): must be a When value/);
        await assert.rejects(cli.invoke('say', [{ content: 'x' }]), /Hello\.say: expects 2 arguments/);
        await cli.setProperty('last', { content: 'wanted' });
        const set = await inbox.next(() => true);
        assert.strictEqual(set.topic, `${P}/set/last`);
        assert.strictEqual(set.packet.retain, false);
        assert.strictEqual(set.payload.toString(), '{"content":"wanted"}');
      });

      it('re-subscribes after a reconnect', async () => {
        const { url, proxy } = await viaProxy();
        const id = `cli-${process.pid}`;
        const conn = await connectManaged(url, id);
        clients.push(conn);
        const cli = new ApiGearClient(plan, conn, { clientId: id, timeoutMs: 5000 });
        cli.start();
        await once(cli, 'ready');
        const down = once(conn, 'close');
        proxy.kill(); // the link drops without a DISCONNECT
        await down;
        await once(cli, 'ready');
        const { client: raw } = await peer('raw-svc');
        const sig = once<{ signal: string }>(cli, 'signal');
        await publish(raw, `${P}/sig/justSaid`, JSON.stringify([{ content: 'back' }]));
        assert.strictEqual((await sig).signal, 'justSaid');
        cli.stop();
      });
    });

    it('void operations: the service answers (null), the client completes on the ack even when no reply comes (C++)', async () => {
      const voidPlan = compilePlan(
        parseModule(`schema: apigear.module/1.0
name: ${plan.module}
interfaces:
  - name: Void
    operations:
      - name: funcVoid
    signals:
      - name: sigVoid
`),
        'Void',
      );
      const V = voidPlan.prefix;
      const svcConn = await connectManaged(broker.url, `svc-${process.pid}`);
      clients.push(svcConn);
      const svc = new ApiGearService(voidPlan, svcConn);
      svc.on('call', (call) => void svc.reply(call, undefined));
      const ready = once(svc, 'ready');
      svc.start();
      await ready;
      const { client: raw, inbox } = await peer('raw');
      const rt = `${V}/rpc/funcVoid/raw/result`;
      await subscribe(raw, [rt, `${V}/sig/+`]);
      await publish(raw, `${V}/rpc/funcVoid`, '[]', {
        properties: { responseTopic: rt, correlationData: Buffer.from([200]) },
      });
      const reply = await inbox.next(rt);
      assert.strictEqual(reply.payload.toString(), 'null');
      assert.deepStrictEqual([...reply.packet.properties!.correlationData!], [200]);
      await svc.emitSignal('sigVoid', []);
      assert.strictEqual((await inbox.next(`${V}/sig/sigVoid`)).payload.toString(), '[]');
      svc.stop();

      // No service at all answers now, as with the C++ service for void operations: the call still completes.
      const id = `nr-cli-${process.pid}`;
      const cliConn = await connectManaged(broker.url, id);
      clients.push(cliConn);
      const cli = new ApiGearClient(voidPlan, cliConn, { clientId: id, timeoutMs: 5000 });
      const cliReady = once(cli, 'ready');
      cli.start();
      await cliReady;
      assert.strictEqual(await cli.invoke('funcVoid', []), null);
      cli.stop();
    });

    it('service and client cores round-trip a property, a signal and say', async () => {
      const svcConn = await connectManaged(broker.url, `svc-${process.pid}`);
      const cliConn = await connectManaged(broker.url, `cli-${process.pid}`);
      clients.push(svcConn, cliConn);
      const svc = new ApiGearService(plan, svcConn, { applySet: true });
      const cli = new ApiGearClient(plan, cliConn, { clientId: `cli-${process.pid}` });
      svc.on('call', (call) => void svc.reply(call, (call.args[0] as { content: string }).content.length));
      const ready = Promise.all([once(svc, 'ready'), once(cli, 'ready')]);
      svc.start();
      cli.start();
      await ready;
      const prop = once<{ value: unknown }>(cli, 'property');
      await cli.setProperty('last', { content: 'round' });
      assert.deepStrictEqual((await prop).value, { content: 'round' });
      const sig = once<{ args: unknown[] }>(cli, 'signal');
      await svc.emitSignal('justSaid', [{ content: 'trip' }]);
      assert.deepStrictEqual((await sig).args, [{ content: 'trip' }]);
      assert.strictEqual(await cli.invoke('say', [{ content: 'hello' }, 1]), 5);
      cli.stop();
      svc.stop();
    });
  },
);
