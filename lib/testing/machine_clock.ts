// A simulated replica machine's clocks (tests and `ringledger simulate` only): the replica reads
// time only through ReplicaTime, so each replica of a simulated cluster gets its own, drawn from
// the seed. Against the true time (SimTime, the clients' and the checkers' clock):
//
// - the oscillator drifts by drift_ppm, which both clocks follow (one crystal);
// - the monotonic clock starts at an origin of its own (no two machines' monotonic clocks are
//   comparable: a replica that mixed them up would be caught);
// - the wall clock starts off by an offset and occasionally jumps (an operator, NTP stepping),
//   forwards or backwards, but stays within ±offset_us_max of the drifting clock, so that honest
//   clocks stay within cluster time's tolerance of each other (lib/vsr/clock.ts);
// - a rogue clock (on some seeds, one replica of three or more) is a minute or more off: the
//   others must outvote it, and no prepare may carry its time.
//
// The clock survives the replica's crashes (it is the machine's). Jumps are drawn in tick(), which
// the cluster calls every tick for every machine, up or not, so draws follow the tick count only.
import assert from 'node:assert/strict';

import { Prng } from '../prng';
import type { ReplicaTime } from '../vsr/replica';
import type { SimTime } from './sim_client';

export interface ClockFaults {
    /** The wall clock stays within this of the drifting true time (honest clocks). */
    offset_us_max: number;
    /** Oscillator drift, parts per million either way. */
    drift_ppm_max: number;
    /** Chance per tick, parts per million, that the wall clock jumps. */
    jump_per_million: number;
    /** A replica whose wall clock is this far off (−1: none). */
    rogue_replica: number;
    rogue_offset_us: number;
}

/** Ideal clocks: what the single-replica runs and the targeted tests use. */
export const clock_faults_none: ClockFaults = {
    offset_us_max: 0, drift_ppm_max: 0, jump_per_million: 0, rogue_replica: -1,
    rogue_offset_us: 0,
};

/**
 * How far ahead of the true time cluster time can be while at most the rogue is out of bounds:
 * an honest clock's offset, plus the tolerance agreement may need (10 s), plus a one-way delay
 * (at most half a second), plus the drift of the monotonic clock over an epoch; with room left.
 */
export const timestamp_ahead_max_ns = 20_000_000_000n;

export class MachineClock implements ReplicaTime {
    private readonly base: SimTime;
    private readonly prng: Prng;
    private readonly faults: ClockFaults;
    readonly drift_ppm: number;
    private readonly monotonic_origin_ns: number;
    /** The wall clock's offset from the drifting clock now (within offset_us_max)... */
    offset_us: number;
    /** ...plus the rogue's, on its machine. */
    readonly rogue_us: number;
    jumps = 0;

    constructor(base: SimTime, prng: Prng, faults: ClockFaults, index: number) {
        assert(faults.offset_us_max >= 0 && faults.offset_us_max <= 5_000_000);
        assert(faults.drift_ppm_max >= 0 && faults.drift_ppm_max <= 1000);
        assert(faults.jump_per_million >= 0 && faults.jump_per_million <= 1_000_000);
        this.base = base;
        this.prng = prng;
        this.faults = faults;
        this.drift_ppm = this.signed(faults.drift_ppm_max);
        this.monotonic_origin_ns = faults.offset_us_max === 0 ? 0 : this.prng.int(1_000_000) * 1e6;
        this.offset_us = this.signed(faults.offset_us_max);
        this.rogue_us = index === faults.rogue_replica ? faults.rogue_offset_us : 0;
    }

    /** The machine's share of a tick: maybe a jump of the wall clock. */
    tick(): void {
        if (this.faults.jump_per_million === 0) return;
        if (this.prng.int(1_000_000) >= this.faults.jump_per_million) return;
        this.offset_us = this.signed(this.faults.offset_us_max);
        this.jumps += 1;
    }

    monotonic_ns(): number {
        const ticks = this.base.ticks;
        // tick_ms × (1 + ppm / 10^6) in ns is 10^7 + 10 × ppm per tick: exact integers.
        const ns = this.monotonic_origin_ns + ticks * 10_000_000 + ticks * 10 * this.drift_ppm;
        assert(Number.isSafeInteger(ns) && ns >= 0);
        return ns;
    }

    realtime_us(): number {
        const drift_us = Math.floor(this.base.ticks * this.drift_ppm / 100);
        const us = this.base.realtime_us() + drift_us + this.offset_us + this.rogue_us;
        assert(Number.isSafeInteger(us) && us > 0);
        return us;
    }

    /** Uniform in [−max, max]. */
    private signed(max: number): number {
        assert(Number.isInteger(max) && max >= 0);
        return max === 0 ? 0 : this.prng.int(2 * max + 1) - max;
    }
}
