// A small seeded PRNG (splitmix32 seeding xoshiro128**), so that every random test is replayable
// from its seed alone.
import assert from 'node:assert/strict';

export class Prng {
    private s0 = 0;
    private s1 = 0;
    private s2 = 0;
    private s3 = 0;

    constructor(seed: number) {
        assert(Number.isInteger(seed) && seed >= 0);
        let x = seed >>> 0;
        const next_splitmix = (): number => {
            x = (x + 0x9e3779b9) >>> 0;
            let z = x;
            z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
            z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
            return (z ^ (z >>> 16)) >>> 0;
        };
        this.s0 = next_splitmix();
        this.s1 = next_splitmix();
        this.s2 = next_splitmix();
        this.s3 = next_splitmix() | 1; // The state must never be all zero.
    }

    /** A uniformly distributed u32. */
    u32(): number {
        const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
        const t = (this.s1 << 9) >>> 0;
        this.s2 ^= this.s0;
        this.s3 ^= this.s1;
        this.s1 ^= this.s2;
        this.s0 ^= this.s3;
        this.s2 ^= t;
        this.s3 = rotl(this.s3, 11);
        return result;
    }

    /** An integer in [0, bound). */
    int(bound: number): number {
        assert(Number.isInteger(bound) && bound > 0 && bound <= 2 ** 32);
        return Math.floor((this.u32() / 2 ** 32) * bound);
    }

    /** True with probability numerator/denominator. */
    chance(numerator: number, denominator: number): boolean {
        return this.int(denominator) < numerator;
    }

    pick<T>(items: readonly T[]): T {
        assert(items.length > 0);
        return items[this.int(items.length)];
    }

    u128(): bigint {
        return (BigInt(this.u32()) << 96n) | (BigInt(this.u32()) << 64n) |
            (BigInt(this.u32()) << 32n) | BigInt(this.u32());
    }
}

function rotl(x: number, k: number): number {
    return ((x << k) | (x >>> (32 - k))) >>> 0;
}
