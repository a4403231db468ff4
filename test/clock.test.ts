// Cluster time (lib/vsr/clock.ts) over a hand-driven clock: pongs with chosen round trips and
// peer clocks, then exact outcomes: when a window may synchronise, the interval the tolerance
// halving ends at, cluster time clamped into it while our own clock jumps, samples refused,
// the best sample per peer kept, no agreement, a quorum of one, and the epoch's expiry.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Clock, clock_ticks } from '../lib/vsr/clock';

const origin_us = 1_700_000_000_000_000;
const two_32 = 2 ** 32;

class FakeTime {
    mono_ns = 1_000_000_000;
    real_us = origin_us;
    monotonic_ns(): number { return this.mono_ns; }
    realtime_us(): number { return this.real_us; }
    /** Both clocks move on together by `us`. */
    advance(us: number): void {
        this.mono_ns += us * 1000;
        this.real_us += us;
    }
}

/** A wall time in microseconds as the pong's u64 nanosecond limbs [hi, lo]. */
function limbs(us: number): [number, number] {
    const ns = BigInt(us) * 1000n;
    return [Number(ns >> 32n), Number(ns & 0xffff_ffffn)];
}

/** Cluster time as nanoseconds after origin_us (BigInt: the limbs exceed a double). */
function cluster_ns(clock: Clock): number {
    assert(clock.realtime_synchronized());
    const ns = (BigInt(clock.now_hi) * BigInt(two_32)) + BigInt(clock.now_lo);
    return Number(ns - BigInt(origin_us) * 1000n);
}

function learn(clock: Clock, source: number, stamp: number, wall_us: number): void {
    const [hi, lo] = limbs(wall_us);
    clock.learn(source, stamp, hi, lo);
}

function ticks(clock: Clock, count: number): void {
    for (let tick = 0; tick < count; tick++) clock.tick();
}

/** Replica 0 of 3 (quorum 2) hears replica 1, 5 ms ahead, over a 2 ms round trip. */
function synced_pair(): { clock: Clock; time: FakeTime } {
    const time = new FakeTime();
    const clock = new Clock({ replica: 0, replica_count: 3, quorum: 2, time });
    const stamp = clock.ping_timestamp();
    assert.equal(stamp, time.mono_ns + 1);
    time.advance(2000);
    // The peer answered halfway, when its clock read true time + 5 ms.
    learn(clock, 1, stamp, origin_us + 1000 + 5000);
    return { clock, time };
}

test('clock: a quorum agrees once the window is window_min ticks old', () => {
    const { clock } = synced_pair();
    assert.equal(clock.stats.samples_learned, 1);
    ticks(clock, clock_ticks.window_min - 1);
    assert.equal(clock.synchronized, false);
    assert.equal(clock.realtime_synchronized(), false);
    clock.tick();
    assert.equal(clock.synchronized, true);
    assert.equal(clock.stats.synchronizations, 1);
    // Offset 5 ms ± 1 ms against ours at 0: the tolerance halves from 10 s down to 2441406 ns,
    // the last at which both agree, on [4 ms − 2441406, 2441406] = [1558594, 2441406] ns. Our
    // clock (at 2 ms) is clamped up to 2 ms + 1558594 ns.
    assert.equal(cluster_ns(clock), 2_000_000 + 1_558_594);
});

test('clock: cluster time stays in the interval while our own clock jumps', () => {
    const { clock, time } = synced_pair();
    ticks(clock, clock_ticks.window_min);
    time.real_us += 3600 * 1_000_000; // An hour ahead: the upper bound.
    assert.equal(cluster_ns(clock), 2_000_000 + 2_441_406);
    time.real_us -= 2 * 3600 * 1_000_000; // An hour behind: the lower bound.
    assert.equal(cluster_ns(clock), 2_000_000 + 1_558_594);
    time.real_us += 3600 * 1_000_000 + 2000; // Inside the interval: our own clock as it is.
    assert.equal(cluster_ns(clock), 2_000_000 + 2_000_000);
    // The interval moves with the monotonic clock, not with the wall clock.
    time.mono_ns += 1_000_000_000;
    assert.equal(cluster_ns(clock), 1_002_000_000 + 1_558_594);
});

test('clock: of two samples from one peer the smaller one-way delay counts', () => {
    const time = new FakeTime();
    const clock = new Clock({ replica: 0, replica_count: 3, quorum: 2, time });
    const slow = clock.ping_timestamp();
    time.advance(19_000);
    const fast = clock.ping_timestamp();
    time.advance(1000);
    // A 20 ms round trip claiming 40 ms ahead, then a 2 ms one claiming 5 ms.
    learn(clock, 1, slow, origin_us + 50_000);
    time.advance(1000);
    learn(clock, 1, fast, origin_us + 20_000 + 5000);
    assert.equal(clock.stats.samples_learned, 2);
    ticks(clock, clock_ticks.window_min);
    assert.equal(cluster_ns(clock), 21_000_000 + 1_558_594);
});

test('clock: pongs too slow, from the future or of an earlier window are refused', () => {
    const time = new FakeTime();
    const clock = new Clock({ replica: 1, replica_count: 2, quorum: 2, time });
    const early = clock.ping_timestamp() - 1; // Before the window opened.
    const stamp = clock.ping_timestamp();
    time.advance(clock_ticks.round_trip_max * 10_000 + 1);
    learn(clock, 0, stamp, origin_us);
    learn(clock, 0, time.mono_ns + 10, origin_us);
    learn(clock, 0, early, origin_us);
    assert.equal(clock.stats.samples_rejected, 3);
    assert.equal(clock.stats.samples_learned, 0);
    ticks(clock, clock_ticks.window_max - 1);
    assert.equal(clock.synchronized, false);
    clock.tick();
    assert.equal(clock.stats.windows_discarded, 1);
    // A round trip of exactly round_trip_max is still a sample.
    const edge = clock.ping_timestamp();
    time.advance(clock_ticks.round_trip_max * 10_000);
    learn(clock, 0, edge, time.real_us);
    assert.equal(clock.stats.samples_learned, 1);
    assert.throws(() => learn(clock, 1, edge, origin_us), /own clock/);
});

test('clock: no two clocks within the tolerance: no agreement, the window is discarded', () => {
    const time = new FakeTime();
    const clock = new Clock({ replica: 0, replica_count: 3, quorum: 2, time });
    const stamp = clock.ping_timestamp();
    time.advance(2000);
    learn(clock, 1, stamp, origin_us + 1000 + 30_000_000);
    learn(clock, 2, stamp, origin_us + 1000 - 30_000_000);
    ticks(clock, clock_ticks.window_max);
    assert.equal(clock.synchronized, false);
    assert.equal(clock.realtime_synchronized(), false);
    assert.equal(clock.stats.synchronizations, 0);
    assert.equal(clock.stats.windows_discarded, 1);
});

test('clock: the two outliers agree with each other but not with us: their interval wins', () => {
    const time = new FakeTime();
    const clock = new Clock({ replica: 0, replica_count: 3, quorum: 2, time });
    const stamp = clock.ping_timestamp();
    time.advance(2000);
    // Both peers 30 s ahead (beyond any tolerance of ours): cluster time is theirs, and our
    // clock is pulled up to it.
    learn(clock, 1, stamp, origin_us + 1000 + 30_000_000);
    learn(clock, 2, stamp, origin_us + 1000 + 30_000_000);
    ticks(clock, clock_ticks.window_min);
    assert.equal(clock.synchronized, true);
    // Both claim 30 s ± 1 ms; the tolerance halves to 0: [30 s − 1 ms, 30 s + 1 ms].
    assert.equal(cluster_ns(clock), 2_000_000 + 29_999_000_000);
});

test('clock: a quorum of one agrees with itself: our clock as of the window', () => {
    const time = new FakeTime();
    const clock = new Clock({ replica: 0, replica_count: 1, quorum: 1, time });
    ticks(clock, clock_ticks.window_min);
    assert.equal(clock.synchronized, true);
    // The interval is the point [0, 0], carried on by the monotonic clock: a later jump of our
    // wall clock is clamped away.
    time.advance(123);
    assert.equal(cluster_ns(clock), 123_000);
    time.real_us += 77;
    assert.equal(cluster_ns(clock), 123_000);
});

test('clock: an agreement expires epoch_max ticks after its window opened', () => {
    const { clock } = synced_pair();
    ticks(clock, clock_ticks.epoch_max - 1);
    assert.equal(clock.synchronized, true);
    // Windows without samples came and went meanwhile.
    assert.equal(clock.stats.windows_discarded,
        Math.floor((clock_ticks.epoch_max - 1 - clock_ticks.window_min) / clock_ticks.window_max));
    clock.tick();
    assert.equal(clock.synchronized, false);
    assert.equal(clock.stats.epochs_expired, 1);
    assert.equal(clock.realtime_synchronized(), false);
});

test('clock: options are checked', () => {
    const time = new FakeTime();
    assert.throws(() => new Clock({ replica: 3, replica_count: 3, quorum: 2, time }));
    assert.throws(() => new Clock({ replica: 0, replica_count: 3, quorum: 4, time }));
    assert.throws(() => new Clock({ replica: 0, replica_count: 3, quorum: 0, time }));
});
