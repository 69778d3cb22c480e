// Alternating rounds: a baseline and a candidate measured in turns (the order swapped every round) so that load from
// other work on the machine hits both alike; every figure is reported as min / median / max over the rounds, and
// every ratio is taken per round (candidate / baseline of the same round) before its min / median / max.

/** Named figures one side measured in one round (e.g. { rate: 29000, echoP50: 0.2 }). */
export type Measures = Record<string, number>;

export interface Stats {
  min: number;
  median: number;
  max: number;
  n: number;
}

export interface Comparison {
  baseline: Stats;
  candidate: Stats;
  /** candidate / baseline, per round. */
  ratio: Stats;
  /** candidate - baseline, per round. */
  delta: Stats;
}

export function stats(xs: number[]): Stats {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { min: NaN, median: NaN, max: NaN, n: 0 };
  const mid = s.length >> 1;
  const median = s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  return { min: s[0] as number, median, max: s[s.length - 1] as number, n: s.length };
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

export class RoundResults {
  constructor(
    readonly baseline: Measures[],
    readonly candidate: Measures[],
  ) {}

  get rounds(): number {
    return Math.min(this.baseline.length, this.candidate.length);
  }

  /** The candidate's `key` against the baseline's `baselineKey` (the same key unless given). */
  compare(key: string, baselineKey = key): Comparison {
    const cand = this.candidate.map((m) => m[key] ?? NaN);
    const base = this.baseline.map((m) => m[baselineKey] ?? NaN);
    const paired = cand.slice(0, this.rounds);
    return {
      baseline: stats(base),
      candidate: stats(cand),
      ratio: stats(paired.map((c, i) => c / (base[i] as number))),
      delta: stats(paired.map((c, i) => c - (base[i] as number))),
    };
  }

  /** Sum of a count (e.g. lost replies) over all rounds of one side. */
  total(side: 'baseline' | 'candidate', key: string): number {
    return this[side].reduce((sum, m) => sum + (m[key] ?? 0), 0);
  }
}

export interface RoundOptions {
  rounds: number;
  /** Stop after the round in which this much time has passed (at least `minRounds` are always run). */
  budgetMs?: number;
  minRounds?: number;
  /** Called after each round, e.g. to print progress. */
  onRound?(round: number, baseline: Measures, candidate: Measures): void;
}

/**
 * Runs `baseline` and `candidate` alternately: round 0 baseline first, round 1 candidate first, and so on.
 * Each call measures one round of its side and returns its figures.
 */
export async function alternate(
  options: RoundOptions,
  baseline: (round: number) => Promise<Measures>,
  candidate: (round: number) => Promise<Measures>,
): Promise<RoundResults> {
  const start = Date.now();
  const base: Measures[] = [];
  const cand: Measures[] = [];
  for (let r = 0; r < options.rounds; r++) {
    if (r % 2 === 0) {
      base.push(await baseline(r));
      cand.push(await candidate(r));
    } else {
      cand.push(await candidate(r));
      base.push(await baseline(r));
    }
    options.onRound?.(r, base[r] as Measures, cand[r] as Measures);
    const spent = Date.now() - start;
    if (options.budgetMs !== undefined && r + 1 >= (options.minRounds ?? 3) && spent > options.budgetMs) break;
  }
  return new RoundResults(base, cand);
}

/** "min / median / max" with the median in bold, `digits` decimals. */
export function mmm(s: Stats, digits = 0): string {
  if (s.n === 0) return 'n/a';
  const f = (x: number): string => (digits === 0 ? Math.round(x).toLocaleString('en-US') : x.toFixed(digits));
  return `${f(s.min)} / **${f(s.median)}** / ${f(s.max)}`;
}

/** A progress line on stderr (stdout carries the Markdown). */
export function progress(line: string): void {
  process.stderr.write(`  ${line}\n`);
}
