// One timeout abstraction for the replica (docs/vsr.md §4): a count of ticks, never wall time, so
// that the simulator runs a cluster on simulated time. A timeout is started, ticked, and reports
// `fired` once per period; `backoff` grows the next period exponentially with jitter drawn from
// the injected PRNG (retransmissions to a peer that does not answer spread out instead of
// synchronising across replicas). Fixed fields, no allocation: one instance per timeout.
import assert from 'node:assert/strict';

export interface TimeoutRandom {
    u32(): number;
}

/** Backoff doubles the period per attempt up to this many doublings, unless told fewer. */
const backoff_exponent_max_default = 6;

export class Timeout {
    readonly name: string;
    readonly after_ticks: number;
    private readonly random: TimeoutRandom;
    ticking = false;
    /** Ticks since (re)start. */
    ticks = 0;
    /** The current period: after_ticks, or more after backoff. */
    period_ticks: number;
    attempts = 0;
    fired = false;

    /** The period grows to at most after_ticks × 2^backoff_exponent_max (plus jitter). */
    readonly backoff_exponent_max: number;

    constructor(name: string, after_ticks: number, random: TimeoutRandom,
        backoff_exponent_max = backoff_exponent_max_default) {
        assert(Number.isInteger(after_ticks) && after_ticks >= 1);
        assert(Number.isInteger(backoff_exponent_max) && backoff_exponent_max >= 0);
        assert(name.length > 0);
        this.backoff_exponent_max = backoff_exponent_max;
        this.name = name;
        this.after_ticks = after_ticks;
        this.period_ticks = after_ticks;
        this.random = random;
    }

    start(): void {
        this.ticking = true;
        this.ticks = 0;
        this.attempts = 0;
        this.period_ticks = this.after_ticks;
        this.fired = false;
    }

    stop(): void {
        this.ticking = false;
        this.ticks = 0;
        this.attempts = 0;
        this.fired = false;
    }

    /** Restarts the period without forgetting attempts (progress seen: wait a whole period). */
    reset(): void {
        assert(this.ticking, `${this.name}: reset while stopped`);
        this.ticks = 0;
        this.fired = false;
    }

    /** The next period is longer: after_ticks × 2^attempts plus jitter up to one period. */
    backoff(): void {
        assert(this.ticking, `${this.name}: backoff while stopped`);
        this.attempts += 1;
        const exponent = Math.min(this.attempts, this.backoff_exponent_max);
        const base = this.after_ticks * 2 ** exponent;
        this.period_ticks = base + (this.random.u32() % (this.after_ticks + 1));
        this.ticks = 0;
        this.fired = false;
        assert(this.period_ticks >= this.after_ticks);
        // Bounded: at most after_ticks × 2^backoff_exponent_max, plus one period of jitter.
        assert(this.period_ticks <= this.after_ticks * (2 ** this.backoff_exponent_max + 1));
    }

    /** Advances one tick; `fired` is true on the tick the period ends (the caller resets). */
    tick(): void {
        assert(this.period_ticks >= this.after_ticks);
        this.fired = false;
        if (!this.ticking) {
            assert.equal(this.ticks, 0, `${this.name}: ticks counted while stopped`);
            return;
        }
        this.ticks += 1;
        if (this.ticks >= this.period_ticks) this.fired = true;
        assert(this.ticks <= this.period_ticks || this.fired);
    }
}
