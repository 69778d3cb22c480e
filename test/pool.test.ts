// ConnectionPool: connect on first user, one re-plan per burst, status fan-out, disconnect on last removal.
import assert from 'assert';
import { ConnectionPool, PoolUser } from '../src/common/pool';
import { NodeStatus, Status } from '../nodes/lib/status';

class User implements PoolUser {
  seen: NodeStatus[] = [];
  constructor(readonly id: string) {}
  status(s: NodeStatus): void {
    this.seen.push(s);
  }
}

function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('ConnectionPool', () => {
  let events: string[];
  let pool: ConnectionPool<User>;
  beforeEach(() => {
    events = [];
    pool = new ConnectionPool<User>({
      connect: () => {
        events.push('connect');
      },
      disconnect: async () => {
        events.push('disconnect');
      },
      usersChanged: (users) => {
        events.push(`plan:${users.map((u) => u.id).join(',')}`);
      },
    });
  });

  it('connects once and re-plans once for a burst of registrations', async () => {
    pool.register(new User('a'));
    pool.register(new User('b'));
    pool.register(new User('c'));
    await tick();
    assert.deepStrictEqual(events, ['connect', 'plan:a,b,c']);
  });

  it('fans status out to every user and replays the last one to late users', async () => {
    const a = new User('a');
    pool.register(a);
    pool.setStatus(Status.connected());
    const b = new User('b');
    pool.register(b);
    assert.deepStrictEqual(a.seen.at(-1), Status.connected());
    assert.deepStrictEqual(b.seen, [Status.connected()]);
  });

  it('keeps the connection for a restarted user and drops it when the last user is removed', async () => {
    const a = new User('a');
    pool.register(a);
    await pool.deregister(a, false);
    pool.register(a);
    await tick();
    assert.deepStrictEqual(events, ['connect', 'plan:a']);
    await pool.deregister(a, true);
    assert.deepStrictEqual(events, ['connect', 'plan:a', 'disconnect']);
    pool.register(a);
    assert.strictEqual(events.at(-1), 'connect');
  });

  it('close disconnects whatever users remain and ignores later registrations', async () => {
    pool.register(new User('a'));
    await pool.close();
    pool.register(new User('b'));
    await tick();
    assert.deepStrictEqual(events, ['connect', 'disconnect']);
    assert.strictEqual(pool.size, 0);
  });
});
