// Cluster time (internals.md §11, docs/vsr.md §10): the wall clock a primary may stamp prepares
// with. Prepare timestamps only ever increase, so one replica whose clock runs far ahead would
// pin every later timestamp to its future; the primary therefore stamps its own clock clamped
// into the interval a replication quorum of clocks (itself counted) agrees on.
//
// Each ping carries our monotonic time m0; the pong echoes it with the peer's wall clock t1.
// At m2 the round trip is m2 − m0 and the one-way delay is taken as half of it, so the peer's
// clock was t1 + delay when ours read t2, and its offset from ours is t1 + delay − t2, wrong by
// at most the one-way delay. Per window (window_min_ticks .. window_max_ticks) we keep, per peer,
// the sample with the smallest delay, then run Marzullo over [offset ∓ (delay + tolerance)],
// halving the tolerance while a quorum still agrees. An agreement becomes the epoch: until it is
// epoch_max_ticks old, cluster time is our clock clamped to the interval carried forward by the
// monotonic clock. Our own wall clock may jump or drift: it enters only as t2 at the window's
// start (then the monotonic clock), and as the value being clamped.
//
// Wall times are u64 nanoseconds since the Unix epoch, beyond a double's 2^53; the clock keeps
// them as nanoseconds relative to its origin (our wall clock at construction), exact while
// clocks are within 104 days of each other, and gives the result back as (hi, lo) u32 limbs.
import assert from 'node:assert/strict';

import { tick_ms, two_32 } from '../constants';
import { Marzullo, MarzulloInterval } from './marzullo';

/** The clocks the replica is given (ReplicaTime is one). */
export interface ClockTime {
    /** Never goes backwards. */
    monotonic_ns(): number;
    /** May jump either way (an operator, NTP stepping). */
    realtime_us(): number;
}

/** Windows and the epoch in ticks of tick_ms (a ping goes out every 100). */
export const clock_ticks = {
    /** Samples are gathered at least this long: two pings from each peer. */
    window_min: 200,
    /** A window that found no agreement this long is discarded: its samples are stale. */
    window_max: 2000,
    /** An agreement older than this no longer bounds our clock (drift is unbounded). */
    epoch_max: 6000,
    /** A pong later than this tells little (its error is half the round trip): ignored. */
    round_trip_max: 100,
} as const;

/** The widest disagreement tried first; synchronisation then halves it while a quorum agrees. */
export const clock_offset_tolerance_max_ns = 10_000_000_000;
const tolerance_rounds_max = 64;
const ns_per_tick = tick_ms * 1_000_000;

export interface ClockOptions {
    replica: number;
    replica_count: number;
    /** Sources that must agree, ourselves included (the replication quorum). */
    quorum: number;
    time: ClockTime;
}

/** Counters for logs and tests. */
export class ClockStats {
    samples_learned = 0;
    /** Pongs refused: a round trip too long or negative, or a ping of an earlier window. */
    samples_rejected = 0;
    synchronizations = 0;
    /** Windows discarded without agreement. */
    windows_discarded = 0;
    /** Agreements that expired before a new one. */
    epochs_expired = 0;
}

export class Clock {
    readonly replica: number;
    readonly replica_count: number;
    readonly quorum: number;
    readonly time: ClockTime;
    readonly stats = new ClockStats();
    /** Cluster time from realtime_synchronized(), as (hi, lo) u32 limbs of nanoseconds. */
    now_hi = 0;
    now_lo = 0;
    /** Our wall clock at construction, microseconds and (hi, lo) nanosecond limbs. */
    private readonly origin_us: number;
    private readonly origin_hi: number;
    private readonly origin_lo: number;
    private ticks = 0;
    // The window gathering samples: when it opened, and per source the best sample so far.
    private window_ticks = 0;
    private window_monotonic_ns = 0;
    private window_realtime_ns = 0;
    private readonly window_offset_ns: Float64Array;
    private readonly window_delay_ns: Float64Array;
    private readonly window_sampled: Uint8Array;
    // The epoch: the last agreement, relative to its window's opening.
    private epoch_synchronized = false;
    private epoch_ticks = 0;
    private epoch_monotonic_ns = 0;
    private epoch_realtime_ns = 0;
    private epoch_lower_ns = 0;
    private epoch_upper_ns = 0;
    private readonly marzullo: Marzullo;
    private readonly bounds_ns: Float64Array;
    private readonly interval = new MarzulloInterval();

    constructor(options: ClockOptions) {
        const { replica, replica_count, quorum } = options;
        assert(Number.isInteger(replica_count) && replica_count >= 1 && replica_count <= 64);
        assert(Number.isInteger(replica) && replica >= 0 && replica < replica_count);
        assert(Number.isInteger(quorum) && quorum >= 1 && quorum <= replica_count);
        assert(clock_ticks.window_min < clock_ticks.window_max);
        assert(clock_ticks.window_max < clock_ticks.epoch_max);
        this.replica = replica;
        this.replica_count = replica_count;
        this.quorum = quorum;
        this.time = options.time;
        this.window_offset_ns = new Float64Array(replica_count);
        this.window_delay_ns = new Float64Array(replica_count);
        this.window_sampled = new Uint8Array(replica_count);
        this.marzullo = new Marzullo(replica_count);
        this.bounds_ns = new Float64Array(replica_count * 2);
        this.origin_us = this.time.realtime_us();
        assert(Number.isSafeInteger(this.origin_us) && this.origin_us > 0);
        const us_hi = Math.floor(this.origin_us / two_32);
        const product = (this.origin_us - us_hi * two_32) * 1000;
        const carry = Math.floor(product / two_32);
        this.origin_lo = product - carry * two_32;
        this.origin_hi = us_hi * 1000 + carry;
        this.window_open();
    }

    /** Whether an agreement bounds our clock now. */
    get synchronized(): boolean {
        return this.epoch_synchronized;
    }

    /** The ping's monotonic stamp: never zero (the validator's rule), so offset by one. */
    ping_timestamp(): number {
        const stamp = this.time.monotonic_ns() + 1;
        assert(Number.isSafeInteger(stamp) && stamp >= 1);
        return stamp;
    }

    /**
     * A pong from `source`: our ping's stamp echoed, and the peer's wall clock (u64 nanosecond
     * limbs) when it answered.
     */
    learn(source: number, ping_timestamp: number, wall_hi: number, wall_lo: number): void {
        assert(Number.isInteger(source) && source >= 0 && source < this.replica_count);
        assert(source !== this.replica, 'a replica does not sample its own clock');
        assert(Number.isSafeInteger(ping_timestamp) && ping_timestamp >= 1);
        assert(wall_lo >= 0 && wall_lo < two_32 && wall_hi >= 0 && wall_hi < two_32);
        const m0_ns = ping_timestamp - 1;
        const m2_ns = this.time.monotonic_ns();
        const round_trip_ns = m2_ns - m0_ns;
        // A ping from an earlier window measured against that window's reference; one from the
        // future (an earlier process's, or a corrupt echo) or too slow measures nothing.
        if (m0_ns < this.window_monotonic_ns || round_trip_ns < 0 ||
            round_trip_ns > clock_ticks.round_trip_max * ns_per_tick) {
            this.stats.samples_rejected += 1;
            return;
        }
        const delay_ns = Math.floor(round_trip_ns / 2);
        const t1_ns = (wall_hi - this.origin_hi) * two_32 + (wall_lo - this.origin_lo);
        const t2_ns = this.window_realtime_ns + (m2_ns - this.window_monotonic_ns);
        const offset_ns = t1_ns + delay_ns - t2_ns;
        assert(Number.isFinite(offset_ns) && delay_ns >= 0);
        this.stats.samples_learned += 1;
        // The sample with the smallest one-way delay has the smallest error.
        if (this.window_sampled[source] === 1 && this.window_delay_ns[source]! <= delay_ns) return;
        this.window_sampled[source] = 1;
        this.window_offset_ns[source] = offset_ns;
        this.window_delay_ns[source] = delay_ns;
    }

    /** Every tick: close the window once it may, discard it once stale, expire the epoch. */
    tick(): void {
        this.ticks += 1;
        const window_age_ticks = this.ticks - this.window_ticks;
        assert(window_age_ticks >= 1);
        if (window_age_ticks >= clock_ticks.window_min && this.window_sources() >= this.quorum) {
            this.synchronize();
        }
        if (this.ticks - this.window_ticks >= clock_ticks.window_max) {
            this.stats.windows_discarded += 1;
            this.window_open();
        }
        if (this.epoch_synchronized && this.ticks - this.epoch_ticks >= clock_ticks.epoch_max) {
            this.epoch_synchronized = false;
            this.stats.epochs_expired += 1;
        }
        assert(this.ticks - this.window_ticks < clock_ticks.window_max);
        if (this.epoch_synchronized) assert(this.ticks - this.epoch_ticks < clock_ticks.epoch_max);
    }

    /**
     * Cluster time into now_hi/now_lo: our wall clock clamped into the epoch's interval, carried
     * forward by the monotonic clock. False (nothing set) without an agreement.
     */
    realtime_synchronized(): boolean {
        if (!this.epoch_synchronized) return false;
        const elapsed_ns = this.time.monotonic_ns() - this.epoch_monotonic_ns;
        assert(elapsed_ns >= 0, 'the monotonic clock went backwards');
        const base_ns = this.epoch_realtime_ns + elapsed_ns;
        const lower_ns = base_ns + this.epoch_lower_ns;
        const upper_ns = base_ns + this.epoch_upper_ns;
        assert(lower_ns <= upper_ns);
        const own_ns = this.realtime_ns();
        const now_ns = own_ns < lower_ns ? lower_ns : own_ns > upper_ns ? upper_ns : own_ns;
        assert(now_ns >= lower_ns && now_ns <= upper_ns);
        this.limbs_set(now_ns);
        return true;
    }

    /** Sources with a sample in the window, ourselves included. */
    private window_sources(): number {
        let sources = 1;
        for (let source = 0; source < this.replica_count; source++) {
            if (source !== this.replica) sources += this.window_sampled[source]!;
        }
        assert(sources >= 1 && sources <= this.replica_count);
        return sources;
    }

    /** Marzullo with a tolerance halved while a quorum agrees; an agreement starts an epoch. */
    private synchronize(): void {
        let tolerance_ns = clock_offset_tolerance_max_ns;
        let agreed = false;
        let lower_ns = 0;
        let upper_ns = 0;
        for (let round = 0; round < tolerance_rounds_max; round++) {
            const sources = this.bounds_fill(tolerance_ns);
            this.marzullo.smallest_interval(this.bounds_ns, sources, this.interval);
            if (this.interval.sources_true < this.quorum) break;
            agreed = true;
            lower_ns = this.interval.lower_ns;
            upper_ns = this.interval.upper_ns;
            if (tolerance_ns === 0) break;
            tolerance_ns = Math.floor(tolerance_ns / 2);
        }
        if (!agreed) return;
        assert(lower_ns <= upper_ns);
        this.epoch_synchronized = true;
        this.epoch_ticks = this.window_ticks;
        this.epoch_monotonic_ns = this.window_monotonic_ns;
        this.epoch_realtime_ns = this.window_realtime_ns;
        this.epoch_lower_ns = lower_ns;
        this.epoch_upper_ns = upper_ns;
        this.stats.synchronizations += 1;
        this.window_open();
    }

    /** One interval per source in the window (ours: offset 0, delay 0); returns the count. */
    private bounds_fill(tolerance_ns: number): number {
        assert(tolerance_ns >= 0);
        let sources = 0;
        for (let source = 0; source < this.replica_count; source++) {
            let offset_ns = 0;
            let delay_ns = 0;
            if (source !== this.replica) {
                if (this.window_sampled[source] === 0) continue;
                offset_ns = this.window_offset_ns[source]!;
                delay_ns = this.window_delay_ns[source]!;
            }
            this.bounds_ns[sources * 2] = offset_ns - delay_ns - tolerance_ns;
            this.bounds_ns[sources * 2 + 1] = offset_ns + delay_ns + tolerance_ns;
            sources += 1;
        }
        assert(sources >= 1 && sources <= this.replica_count);
        return sources;
    }

    private window_open(): void {
        this.window_ticks = this.ticks;
        this.window_monotonic_ns = this.time.monotonic_ns();
        this.window_realtime_ns = this.realtime_ns();
        this.window_sampled.fill(0);
        assert(Number.isSafeInteger(this.window_monotonic_ns) && this.window_monotonic_ns >= 0);
    }

    /** Our wall clock, nanoseconds from the origin (exact: whole microseconds × 1000). */
    private realtime_ns(): number {
        const us = this.time.realtime_us();
        assert(Number.isSafeInteger(us) && us > 0);
        const ns = (us - this.origin_us) * 1000;
        assert(Number.isSafeInteger(ns));
        return ns;
    }

    /** now_hi/now_lo := origin + ns (ns may be negative: our clock may have jumped back). */
    private limbs_set(ns: number): void {
        assert(Number.isSafeInteger(ns));
        const ns_hi = Math.floor(ns / two_32);
        let lo = this.origin_lo + (ns - ns_hi * two_32);
        let hi = this.origin_hi + ns_hi;
        if (lo >= two_32) { lo -= two_32; hi += 1; }
        assert(lo >= 0 && lo < two_32);
        assert(hi >= 0 && hi < two_32, 'cluster time beyond the u64 range');
        this.now_hi = hi;
        this.now_lo = lo;
    }
}
