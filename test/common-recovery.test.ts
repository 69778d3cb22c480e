// The shared recovery policy and warning helpers: backoff bounds and growth, burst counting, warn on change.
import assert from 'assert';
import { Backoff, RetryTimer } from '../src/common/backoff';
import { until } from './support/until';
import { BurstCounter, ChangeWarner } from '../src/common/warn';

describe('Backoff', () => {
  it('grows by the factor within [base/2, base] and stops at the cap', () => {
    const low = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0 });
    const high = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.999999 });
    assert.deepStrictEqual(
      Array.from({ length: 6 }, () => low.next()),
      [50, 100, 200, 400, 500, 500],
    );
    assert.deepStrictEqual(
      Array.from({ length: 6 }, () => high.next()),
      [100, 200, 400, 800, 1000, 1000],
    );
  });

  it('starts again from the first delay after a reset', () => {
    const backoff = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 0.5 });
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.strictEqual(backoff.attempt, 0);
    assert.strictEqual(backoff.next(), 75);
  });

  it('rejects bounds that make no sense', () => {
    assert.throws(() => new Backoff({ initialMs: 0, maxMs: 10 }), RangeError);
    assert.throws(() => new Backoff({ initialMs: 10, maxMs: 5 }), RangeError);
  });

  it('RetryTimer runs the retry once after the delay, and a new schedule replaces the pending one', async () => {
    const timer = new RetryTimer({ initialMs: 5, maxMs: 5 });
    let runs = 0;
    timer.schedule(() => runs++);
    timer.schedule(() => runs++);
    assert.ok(timer.pending);
    await until(() => runs > 0, 'the retry', 5000, 5);
    // A later marker: a fresh timer of the same delay has fired, so the replaced schedule would have run by now too.
    let later = false;
    new RetryTimer({ initialMs: 5, maxMs: 5 }).schedule(() => (later = true));
    await until(() => later, 'a later timer of the same delay', 5000, 5);
    assert.strictEqual(runs, 1);
    assert.ok(!timer.pending);
    timer.schedule(() => runs++);
    timer.cancel();
    assert.ok(!timer.pending);
  });
});

describe('BurstCounter', () => {
  it('reports the first event at once and the rest of a burst as one counted line', async () => {
    const lines: Array<[string, number]> = [];
    const counter = new BurstCounter((reason, count) => lines.push([reason, count]), 20);
    for (let i = 0; i < 1000; i++) counter.note('overflow');
    counter.note('bad frame');
    assert.deepStrictEqual(lines, [
      ['overflow', 1],
      ['bad frame', 1],
    ]);
    await until(() => lines.length > 2, 'the counted line of the burst', 5000, 5);
    assert.deepStrictEqual(lines.slice(2), [['overflow', 999]]);
    assert.strictEqual(counter.total('overflow'), 1000);
    counter.note('overflow', 5);
    counter.close();
    assert.deepStrictEqual(lines.slice(3), [['overflow', 5]]);
  });

  it('close() reports what the open window still holds', () => {
    const lines: Array<[string, number]> = [];
    const counter = new BurstCounter((reason, count) => lines.push([reason, count]), 60_000);
    counter.note('x');
    counter.note('x', 41);
    counter.close();
    assert.deepStrictEqual(lines, [
      ['x', 1],
      ['x', 41],
    ]);
  });
});

describe('ChangeWarner', () => {
  it('warns once per reason until the reason changes or is cleared', () => {
    const said: string[] = [];
    const warner = new ChangeWarner((r) => said.push(r));
    assert.ok(warner.report('refused'));
    assert.ok(!warner.report('refused'));
    warner.report('unreachable');
    warner.report('unreachable');
    warner.clear();
    warner.report('unreachable');
    assert.deepStrictEqual(said, ['refused', 'unreachable', 'unreachable']);
  });
});
