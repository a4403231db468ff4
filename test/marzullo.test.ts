// Marzullo's algorithm (lib/vsr/marzullo.ts): exact intervals and source counts for agreement,
// partial agreement, none, ties (touching intervals, equally supported ones), one source and
// none, and that the outcome does not depend on the order the sources come in.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Marzullo, MarzulloInterval } from '../lib/vsr/marzullo';

function run(intervals: Array<[number, number]>): [number, number, number, number] {
    const marzullo = new Marzullo(Math.max(1, intervals.length));
    const bounds = new Float64Array(intervals.flat());
    const out = new MarzulloInterval();
    marzullo.smallest_interval(bounds, intervals.length, out);
    return [out.lower_ns, out.upper_ns, out.sources_true, out.sources_false];
}

test('marzullo: all sources agree: their intersection', () => {
    assert.deepEqual(run([[8, 12], [11, 13], [10, 12]]), [11, 12, 3, 0]);
});

test('marzullo: the majority wins and the outlier is counted false', () => {
    assert.deepEqual(run([[8, 12], [11, 13], [14, 15]]), [11, 12, 2, 1]);
    assert.deepEqual(run([[-100, -90], [0, 10], [5, 20], [6, 7]]), [6, 7, 3, 1]);
});

test('marzullo: no agreement: each source alone, the narrowest then the lowest', () => {
    assert.deepEqual(run([[0, 10], [20, 25], [30, 40]]), [20, 25, 1, 2]);
    assert.deepEqual(run([[0, 5], [20, 25]]), [0, 5, 1, 1]);
});

test('marzullo: closed intervals that touch agree on the point', () => {
    assert.deepEqual(run([[0, 10], [10, 20]]), [10, 10, 2, 0]);
    assert.deepEqual(run([[0, 10], [10, 20], [10, 10]]), [10, 10, 3, 0]);
});

test('marzullo: equally supported intervals: the narrowest wins, then the lowest', () => {
    // Two pairs agree: [5, 10] (width 5) and [20, 22] (width 2).
    assert.deepEqual(run([[0, 10], [5, 15], [20, 30], [16, 22]]), [20, 22, 2, 2]);
    // Two pairs of equal width: the lower.
    assert.deepEqual(run([[0, 10], [8, 20], [30, 40], [38, 50]]), [8, 10, 2, 2]);
});

test('marzullo: one source is its own interval; none gives nothing', () => {
    assert.deepEqual(run([[-3, 7]]), [-3, 7, 1, 0]);
    assert.deepEqual(run([[4, 4]]), [4, 4, 1, 0]);
    assert.deepEqual(run([]), [0, 0, 0, 0]);
});

test('marzullo: identical sources', () => {
    assert.deepEqual(run([[1, 2], [1, 2], [1, 2]]), [1, 2, 3, 0]);
});

test('marzullo: the outcome does not depend on the sources\' order', () => {
    const intervals: Array<[number, number]> = [[8, 12], [11, 13], [10, 12], [14, 15], [0, 30]];
    const expected = run(intervals);
    assert.deepEqual(expected, [11, 12, 4, 1]);
    // Every rotation and the reversal.
    for (let shift = 0; shift < intervals.length; shift++) {
        const rotated = [...intervals.slice(shift), ...intervals.slice(0, shift)];
        assert.deepEqual(run(rotated), expected);
        assert.deepEqual(run(rotated.reverse()), expected);
    }
});

test('marzullo: an instance is reused across runs and refuses bad input', () => {
    const marzullo = new Marzullo(3);
    const out = new MarzulloInterval();
    marzullo.smallest_interval(new Float64Array([0, 10, 5, 15, 30, 40]), 3, out);
    assert.deepEqual([out.lower_ns, out.upper_ns, out.sources_true], [5, 10, 2]);
    marzullo.smallest_interval(new Float64Array([1, 2]), 1, out);
    assert.deepEqual([out.lower_ns, out.upper_ns, out.sources_true], [1, 2, 1]);
    assert.throws(() => marzullo.smallest_interval(new Float64Array([2, 1]), 1, out));
    assert.throws(() => marzullo.smallest_interval(new Float64Array(8), 4, out));
    assert.throws(() => new Marzullo(0));
});
