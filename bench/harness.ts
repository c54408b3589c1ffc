// Benchmark helpers. Every figure is measured beside a reference in the same process, round by
// round, so the ratio between them survives a slow or noisy machine even when the absolute
// numbers do not.
import { performance } from 'node:perf_hooks';

/** Which way a ratio should go: `higher` for throughput, `lower` for memory. */
export type Better = 'higher' | 'lower';

/** One figure, measured beside its reference. */
export interface Result {
  name: string;
  value: number;
  unit: string;
  reference: string;
  referenceValue: number;
  /** `value / referenceValue`. */
  ratio: number;
  /** Which direction of `ratio` is better. */
  better: Better;
  /** The ratio the figure must reach (`better: 'higher'`) or stay under (`'lower'`), if any. */
  budget?: number;
}

/** A benchmark body: performs `ops` operations (its own loop, so its call sites stay monomorphic). */
export type SyncBody = (ops: number) => void;
export type AsyncBody = (ops: number) => Promise<void>;

/** One side of a comparison. */
export interface Subject {
  name: string;
  sync?: SyncBody;
  async?: AsyncBody;
}

export interface MeasureOptions {
  /** Rounds per subject; the median is reported. Default 7. */
  rounds?: number;
  /** Time budget of one round, in ms. Default 250. */
  roundMs?: number;
  /** Warm-up time per subject before the first round, in ms. Default 400. */
  warmupMs?: number;
  /** Operations per body call; the clock is read between calls. Default 1,000. */
  batch?: number;
}

/** Progress goes to stderr so `--json` output on stdout stays a single object. */
export function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** Runs a full collection when the process was started with `--expose-gc`; a no-op otherwise. */
export function collectGarbage(): void {
  if (globalThis.gc === undefined) return;
  globalThis.gc();
  globalThis.gc();
}

/** Runs `subject` for about `ms` milliseconds; resolves its operations per second. */
async function runFor(subject: Subject, ms: number, batch: number): Promise<number> {
  let ops = 0;
  const start = performance.now();
  const end = start + ms;
  let now = start;
  if (subject.sync !== undefined) {
    const body = subject.sync;
    do {
      body(batch);
      ops += batch;
      now = performance.now();
    } while (now < end);
  } else if (subject.async !== undefined) {
    const body = subject.async;
    do {
      await body(batch);
      ops += batch;
      now = performance.now();
    } while (now < end);
  } else {
    throw new Error(`subject "${subject.name}" has neither a sync nor an async body`);
  }
  return (ops * 1000) / (now - start);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const upper = sorted[mid] as number;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] as number) + upper) / 2;
}

/**
 * Measures `candidate` and `reference` in operations per second: a warm-up of each, then
 * `rounds` rounds of each, interleaved with the order alternating (A B, B A, A B, ...) so drift
 * and garbage left by one side hit both equally. The heap is collected before every round when
 * `--expose-gc` is on. Reports the median ops/s of each side; ratio = candidate / reference.
 */
export async function compareThroughput(
  name: string,
  candidate: Subject,
  reference: Subject,
  options: MeasureOptions & { budget?: number } = {},
): Promise<Result> {
  const { rounds = 7, roundMs = 250, warmupMs = 400, batch = 1_000, budget } = options;
  progress(`${name}: warm-up`);
  await runFor(candidate, warmupMs, batch);
  await runFor(reference, warmupMs, batch);
  const a: number[] = [];
  const b: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? [candidate, reference] : [reference, candidate];
    for (const subject of order) {
      collectGarbage();
      const opsPerSecond = await runFor(subject, roundMs, batch);
      (subject === candidate ? a : b).push(opsPerSecond);
    }
  }
  const value = median(a);
  const referenceValue = median(b);
  progress(
    `${name}: ${formatNumber(value)} vs ${formatNumber(referenceValue)} ops/s (rounds: ${a.map(formatNumber).join(' ')} | ${b.map(formatNumber).join(' ')})`,
  );
  return {
    name: `${name}: ${candidate.name}`,
    value: Math.round(value),
    unit: 'ops/s',
    reference: reference.name,
    referenceValue: Math.round(referenceValue),
    ratio: round3(value / referenceValue),
    better: 'higher',
    ...(budget === undefined ? {} : { budget }),
  };
}

/**
 * A latency body: performs `count` operations, timing each one alone with `performance.now()`
 * and writing its duration in ms to `out[from + n]`. Its own loop, as for throughput bodies.
 */
export type TimedSyncBody = (out: Float64Array, from: number, count: number) => void;
export type TimedAsyncBody = (out: Float64Array, from: number, count: number) => Promise<void>;

/** One side of a latency comparison. */
export interface TimedSubject {
  name: string;
  sync?: TimedSyncBody;
  async?: TimedAsyncBody;
}

export interface LatencyOptions {
  /** Rounds per subject; the median of the rounds' quantiles is reported. Default 5. */
  rounds?: number;
  /** Time budget of one round, in ms. Default 250. */
  roundMs?: number;
  /** Warm-up time per subject before the first round, in ms. Default 300. */
  warmupMs?: number;
  /** Operations per body call. Default 1,000. */
  batch?: number;
  /** Most samples one round keeps (a round ends early when full). Default 4,000,000. */
  maxSamples?: number;
  /** The quantile reported. Default 0.99. */
  quantile?: number;
}

/** The `q` quantile (nearest rank) of the first `count` samples, sorted in place. */
function quantileOf(samples: Float64Array, count: number, q: number): number {
  const sorted = samples.subarray(0, count).sort();
  return sorted[Math.min(count - 1, Math.max(0, Math.ceil(q * count) - 1))] as number;
}

/** Runs `subject` for about `ms` milliseconds; resolves how many samples it wrote to `out`. */
async function sampleFor(
  subject: TimedSubject,
  out: Float64Array,
  ms: number,
  batch: number,
): Promise<number> {
  const capacity = out.length - (out.length % batch);
  let count = 0;
  const end = performance.now() + ms;
  if (subject.sync !== undefined) {
    const body = subject.sync;
    do {
      body(out, count, batch);
      count += batch;
    } while (count < capacity && performance.now() < end);
  } else if (subject.async !== undefined) {
    const body = subject.async;
    do {
      await body(out, count, batch);
      count += batch;
    } while (count < capacity && performance.now() < end);
  } else {
    throw new Error(`subject "${subject.name}" has neither a sync nor an async body`);
  }
  return count;
}

/**
 * Measures the tail latency of one operation of `candidate` and `reference`, in ns: every
 * operation is timed alone (the clock reads, a few tens of ns, are inside both sides' figures),
 * with a warm-up and interleaved rounds as in `compareThroughput`. Reports the median over rounds
 * of each side's `quantile` (p99 by default); ratio = candidate / reference, lower is better.
 */
export async function compareLatency(
  name: string,
  candidate: TimedSubject,
  reference: TimedSubject,
  options: LatencyOptions & { budget?: number } = {},
): Promise<Result> {
  const {
    rounds = 5,
    roundMs = 250,
    warmupMs = 300,
    batch = 1_000,
    maxSamples = 4_000_000,
    quantile = 0.99,
    budget,
  } = options;
  const samples = new Float64Array(maxSamples);
  progress(`${name}: warm-up`);
  await sampleFor(candidate, samples, warmupMs, batch);
  await sampleFor(reference, samples, warmupMs, batch);
  const a: number[] = [];
  const b: number[] = [];
  const tails: Record<'a' | 'b', { p999: number[]; max: number[] }> = {
    a: { p999: [], max: [] },
    b: { p999: [], max: [] },
  };
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? [candidate, reference] : [reference, candidate];
    for (const subject of order) {
      collectGarbage();
      const count = await sampleFor(subject, samples, roundMs, batch);
      const side = subject === candidate ? 'a' : 'b';
      (side === 'a' ? a : b).push(quantileOf(samples, count, quantile) * 1e6);
      // Sorted by quantileOf: the rarer tail, for the progress line only.
      tails[side].p999.push(quantileOf(samples, count, 0.999) * 1e6);
      tails[side].max.push((samples[count - 1] as number) * 1e6);
    }
  }
  const value = median(a);
  const referenceValue = median(b);
  const label = `p${(quantile * 100).toFixed(quantile * 100 === Math.round(quantile * 100) ? 0 : 1)}`;
  const ns = (values: readonly number[]) => values.map((v) => v.toFixed(0)).join(' ');
  progress(
    `${name}: ${label} ${value.toFixed(0)} vs ${referenceValue.toFixed(0)} ns (rounds: ${ns(a)} | ${ns(b)}); p99.9 ${median(tails.a.p999).toFixed(0)} vs ${median(tails.b.p999).toFixed(0)} ns; max per round ${ns(tails.a.max)} | ${ns(tails.b.max)} ns`,
  );
  return {
    name: `${name}: ${candidate.name}`,
    value: round3(value),
    unit: 'ns',
    reference: reference.name,
    referenceValue: round3(referenceValue),
    ratio: round3(value / referenceValue),
    better: 'lower',
    ...(budget === undefined ? {} : { budget }),
  };
}

/** Heap growth, in MB, of what `build` allocates and returns (kept alive until measured). */
export async function heapGrowthMB(build: () => Promise<unknown> | unknown): Promise<number> {
  if (globalThis.gc === undefined) {
    throw new Error('heap figures need a full GC: run node with --expose-gc (npm run bench does)');
  }
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  const held = await build();
  collectGarbage();
  const after = process.memoryUsage().heapUsed;
  keepAlive(held);
  return (after - before) / (1024 * 1024);
}

let _sink: unknown;
/** Keeps `value` reachable up to this call, so a measurement cannot see it collected early. */
export function keepAlive(value: unknown): void {
  _sink = value;
  _sink = undefined;
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

export function formatNumber(value: number): string {
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(2)}M`;
  if (Math.abs(value) >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return value.toFixed(2);
}

/** True when the result meets its budget; `undefined` when it has none. */
export function meetsBudget(result: Result): boolean | undefined {
  if (result.budget === undefined) return undefined;
  return result.better === 'higher' ? result.ratio >= result.budget : result.ratio <= result.budget;
}
