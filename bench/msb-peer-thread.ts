// The MSB emulator on a thread of its own, for the MSB bench: like a real MSB on another machine, its work is not
// on the event loop being measured. Counts (IO_PUBLISHED per service, registered or not) reach the bench through
// shared memory, refreshed every millisecond; nothing else crosses the thread boundary while a round runs.
import { isMainThread, parentPort, Worker, workerData } from 'worker_threads';
import { MsbEmulator } from '../src/msb';

/** What the bench needs from the MSB it measures against, wherever it runs. */
export interface BenchPeer {
  readonly url: string;
  /** IO_PUBLISHED answers sent to the service so far. */
  publishedCount(uuid: string): number;
  registered(uuid: string): boolean;
  close(): Promise<void>;
}

interface Setup {
  shared: SharedArrayBuffer;
  uuids: string[];
}

/** Starts the emulator on its own thread; `uuids` are the services whose counts are shared. */
export async function startPeerThread(uuids: string[]): Promise<BenchPeer> {
  const shared = new SharedArrayBuffer(uuids.length * 2 * 4);
  const counts = new Int32Array(shared);
  const worker = new Worker(__filename, { workerData: { shared, uuids } satisfies Setup });
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('message', (m: { url: string }) => resolve(m.url));
    worker.once('error', reject);
  });
  const index = (uuid: string): number => {
    const i = uuids.indexOf(uuid);
    if (i < 0) throw new Error(`bench peer: ${uuid} is not a shared service`);
    return i;
  };
  return {
    url,
    publishedCount: (uuid) => Atomics.load(counts, 2 * index(uuid)),
    registered: (uuid) => Atomics.load(counts, 2 * index(uuid) + 1) === 1,
    close: async () => {
      worker.postMessage('close');
      await new Promise((resolve) => worker.once('exit', resolve));
    },
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const { shared, uuids } = workerData as Setup;
  const counts = new Int32Array(shared);
  const emulator = new MsbEmulator({ heartbeatInterval: 0, recordTraffic: false });
  const refresh = setInterval(() => {
    const services = emulator.services();
    uuids.forEach((uuid, i) => {
      Atomics.store(counts, 2 * i, emulator.publishedCount(uuid));
      Atomics.store(counts, 2 * i + 1, services.has(uuid) ? 1 : 0);
    });
  }, 1);
  port.on('message', (m: unknown) => {
    if (m !== 'close') return;
    clearInterval(refresh);
    void emulator.close().then(() => port.close());
  });
  void emulator.start({ port: 0 }).then(({ url }) => port.postMessage({ url }));
}
