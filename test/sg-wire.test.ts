// Byte-level known answer: the CONNECT packet of an sg-resource and an sg-app with MQTT 3.1 equals what
// sgframework 0.2.3 / paho 1.6.1 sends (spec §3.1, captured through a TCP proxy), apart from the pid in the client id.
import assert from 'assert';
import net from 'net';
import helper from 'node-red-node-test-helper';
import { load, sgNodes } from './lib/nodes';

helper.init(require.resolve('node-red'));

/** A TCP listener that keeps the first bytes each client sends and never answers. */
async function captureServer(): Promise<{ port: number; first: Promise<Buffer>; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let resolveFirst: (b: Buffer) => void = () => undefined;
  const first = new Promise<Buffer>((resolve) => (resolveFirst = resolve));
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let data = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      // fixed header: type byte + one-byte remaining length (the packets here are < 128 bytes)
      if (data.length >= 2 && data.length >= 2 + (data[1] as number))
        resolveFirst(data.subarray(0, 2 + (data[1] as number)));
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    first,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** CONNECT as spec §3.1 lays it out byte by byte. */
function sgframeworkConnect(
  clientId: string,
  will?: { topic: string; payload: string },
  clean = true,
  willQos = 1,
): Buffer {
  // will retain 0x20 | will QoS << 3 | will 0x04 | clean session 0x02
  const flags = (will ? 0x20 | (willQos << 3) | 0x04 : 0) | (clean ? 0x02 : 0);
  const body = Buffer.concat([
    str('MQIsdp'),
    Buffer.from([0x03, flags, 0x00, 0x0a]),
    str(clientId),
    ...(will ? [str(will.topic), str(will.payload)] : []),
  ]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

describe('sg CONNECT packets on the wire', () => {
  before(() => helper.startServer());
  after(() => helper.stopServer());
  afterEach(() => helper.unload());

  it('sg-resource taxisignservice: MQIsdp, level 3, flags 0x2e, keepalive 10, will presence False', async () => {
    const capture = await captureServer();
    try {
      await load(sgNodes, [
        {
          id: 'b',
          type: 'sg-broker',
          mode: 'external',
          host: '127.0.0.1',
          port: capture.port,
          protocol: '3.1',
          keepalive: 10,
          qos: 1,
          clean: true,
        },
        {
          id: 'r',
          type: 'sg-resource',
          broker: 'b',
          resource: 'taxisignservice',
          commands: [{ signal: 'state', echo: true, echoRetained: true, defaultValue: 'False' }],
          wires: [[]],
        },
      ]);
      const expected = sgframeworkConnect(`taxisignservice-${process.pid}`, {
        topic: 'resourceavailable/taxisignservice/presence',
        payload: 'False',
      });
      assert.strictEqual((await capture.first).toString('hex'), expected.toString('hex'));
    } finally {
      await capture.close();
    }
  });

  it('without clean session the client id is the plain name (flags 0x2c); QoS 0 gives a QoS 0 will (0x26)', async () => {
    for (const [clean, qos, name] of [
      [false, 1, 'edgeres'],
      [true, 0, 'qos0res'],
    ] as const) {
      const capture = await captureServer();
      try {
        await load(sgNodes, [
          {
            id: 'b',
            type: 'sg-broker',
            mode: 'external',
            host: '127.0.0.1',
            port: capture.port,
            protocol: '3.1',
            keepalive: 10,
            qos,
            clean,
          },
          { id: 'r', type: 'sg-resource', broker: 'b', resource: name, commands: [], data: [], wires: [[]] },
        ]);
        const expected = sgframeworkConnect(
          clean ? `${name}-${process.pid}` : name,
          { topic: `resourceavailable/${name}/presence`, payload: 'False' },
          clean,
          qos,
        );
        assert.strictEqual((await capture.first).toString('hex'), expected.toString('hex'));
      } finally {
        await helper.unload();
        await capture.close();
      }
    }
  });

  it('sg-app taxiapp: same CONNECT without a will (flags 0x02)', async () => {
    const capture = await captureServer();
    try {
      await load(sgNodes, [
        {
          id: 'b',
          type: 'sg-broker',
          mode: 'external',
          host: '127.0.0.1',
          port: capture.port,
          protocol: '3.1',
          keepalive: 10,
          qos: 1,
          clean: true,
        },
        {
          id: 'a',
          type: 'sg-app',
          broker: 'b',
          app: 'taxiapp',
          subscriptions: [{ type: 'data', service: 'taxisignservice', signal: 'state' }],
          wires: [[]],
        },
      ]);
      assert.strictEqual(
        (await capture.first).toString('hex'),
        sgframeworkConnect(`taxiapp-${process.pid}`).toString('hex'),
      );
    } finally {
      await capture.close();
    }
  });
});
