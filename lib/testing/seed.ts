// The one seed variable of the seeded tests. Each seeded test has its own fixed seed (so CI runs
// the same cases on any machine); RINGLEDGER_SEED=<n> replaces it, to replay a failure or to
// explore, and RINGLEDGER_TEST_LONG=1 turns on the long versions of the fault runs. A test that
// fails prints the seed it ran with.
import assert from 'node:assert/strict';

/** The seed for a test whose own seed is `default_seed` (RINGLEDGER_SEED overrides it). */
export function test_seed(default_seed: number): number {
    const text = process.env.RINGLEDGER_SEED;
    if (text === undefined || text === '') return default_seed;
    const seed = Number(text);
    assert(Number.isSafeInteger(seed) && seed >= 0, `RINGLEDGER_SEED=${text}: not a seed`);
    return seed;
}

/** A test's list of seeds: just RINGLEDGER_SEED when it is set, else the test's own list. */
export function test_seeds(default_seeds: readonly number[]): number[] {
    const text = process.env.RINGLEDGER_SEED;
    if (text === undefined || text === '') return [...default_seeds];
    return [test_seed(0)];
}

/** Whether the long versions of the fault runs are asked for. */
export const test_long = process.env.RINGLEDGER_TEST_LONG === '1';
