// u128 arithmetic on four u32 limbs (least significant first) inside Uint32Arrays, and u64
// timestamp order on (hi, lo) pairs. No BigInt. The helpers are called per event, so they do
// not assert; known answers are checked once at load, at the bottom of this file.
import assert from 'node:assert/strict';

import { two_32 } from '../constants';

export function u128_is_zero(a: Uint32Array, i: number): boolean {
    return (a[i] | a[i + 1] | a[i + 2] | a[i + 3]) === 0;
}

export function u128_is_max(a: Uint32Array, i: number): boolean {
    return (a[i] & a[i + 1] & a[i + 2] & a[i + 3]) === -1 ||
        (a[i] === 0xffffffff && a[i + 1] === 0xffffffff && a[i + 2] === 0xffffffff &&
            a[i + 3] === 0xffffffff);
}

export function u128_equal(a: Uint32Array, i: number, b: Uint32Array, j: number): boolean {
    return a[i] === b[j] && a[i + 1] === b[j + 1] && a[i + 2] === b[j + 2] &&
        a[i + 3] === b[j + 3];
}

/** Returns -1, 0 or 1 as a <, =, > b. */
export function u128_compare(a: Uint32Array, i: number, b: Uint32Array, j: number): number {
    for (let limb = 3; limb >= 0; limb--) {
        const x = a[i + limb], y = b[j + limb];
        if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
}

/** Writes a + b into out (which may alias a or b); returns true on overflow (out is mod 2^128). */
export function u128_add(
    out: Uint32Array, o: number, a: Uint32Array, i: number, b: Uint32Array, j: number,
): boolean {
    let carry = 0;
    for (let limb = 0; limb < 4; limb++) {
        const sum = a[i + limb] + b[j + limb] + carry;
        if (sum >= two_32) {
            out[o + limb] = sum - two_32;
            carry = 1;
        } else {
            out[o + limb] = sum;
            carry = 0;
        }
    }
    return carry === 1;
}

/**
 * a += b in place; returns true on overflow (a is then mod 2^128). Unrolled, and it lets the
 * Uint32Array store wrap each limb (ToUint32), for the per-transfer balance updates.
 */
export function u128_add_to(a: Uint32Array, i: number, b: Uint32Array, j: number): boolean {
    let sum = a[i] + b[j];
    a[i] = sum;
    sum = a[i + 1] + b[j + 1] + (sum > 0xffffffff ? 1 : 0);
    a[i + 1] = sum;
    sum = a[i + 2] + b[j + 2] + (sum > 0xffffffff ? 1 : 0);
    a[i + 2] = sum;
    sum = a[i + 3] + b[j + 3] + (sum > 0xffffffff ? 1 : 0);
    a[i + 3] = sum;
    return sum > 0xffffffff;
}

/**
 * a += (b0, b1, b2), an amount below 2^96 already in locals, for a caller that knows the sum
 * fits (a's top limb below 2^31 - 1): the limbs are read once for both sides of a transfer.
 */
export function u128_add_small(a: Uint32Array, i: number, b0: number, b1: number,
    b2: number): void {
    let sum = a[i] + b0;
    a[i] = sum;
    sum = a[i + 1] + b1 + (sum > 0xffffffff ? 1 : 0);
    a[i + 1] = sum;
    sum = a[i + 2] + b2 + (sum > 0xffffffff ? 1 : 0);
    a[i + 2] = sum;
    if (sum > 0xffffffff) a[i + 3] = a[i + 3] + 1;
}

/** Writes a - b into out; returns true on borrow (a < b). */
export function u128_sub(
    out: Uint32Array, o: number, a: Uint32Array, i: number, b: Uint32Array, j: number,
): boolean {
    let borrow = 0;
    for (let limb = 0; limb < 4; limb++) {
        const difference = a[i + limb] - b[j + limb] - borrow;
        if (difference < 0) {
            out[o + limb] = difference + two_32;
            borrow = 1;
        } else {
            out[o + limb] = difference;
            borrow = 0;
        }
    }
    return borrow === 1;
}

/** Saturating subtraction: out = max(a - b, 0). */
export function u128_sub_saturating(
    out: Uint32Array, o: number, a: Uint32Array, i: number, b: Uint32Array, j: number,
): void {
    if (u128_sub(out, o, a, i, b, j)) {
        out[o] = 0; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 0;
    }
}

/**
 * Whether the u64 timestamp (a_hi, a_lo) is after (b_hi, b_lo), each given as its high and low
 * u32 halves: how the ledger compares timestamps without BigInt.
 */
export function timestamp_after(a_hi: number, a_lo: number, b_hi: number, b_lo: number): boolean {
    return a_hi > b_hi || (a_hi === b_hi && a_lo > b_lo);
}

export function u128_copy(out: Uint32Array, o: number, a: Uint32Array, i: number): void {
    out[o] = a[i]; out[o + 1] = a[i + 1]; out[o + 2] = a[i + 2]; out[o + 3] = a[i + 3];
}

export function u128_to_bigint(a: Uint32Array, i: number): bigint {
    return (BigInt(a[i + 3]) << 96n) | (BigInt(a[i + 2]) << 64n) | (BigInt(a[i + 1]) << 32n) |
        BigInt(a[i]);
}

export function u128_from_bigint(out: Uint32Array, o: number, value: bigint): void {
    assert(value >= 0n && value < (1n << 128n), `u128: ${value} is out of range`);
    assert(o >= 0 && o + 4 <= out.length);
    for (let limb = 0; limb < 4; limb++) {
        out[o + limb] = Number((value >> BigInt(32 * limb)) & 0xffffffffn);
    }
}

// Known answers, once at load, through the carry and borrow paths the per-event callers rely on
// (u128_add_to and u128_add_small let each Uint32Array store wrap its limb).
{
    const words = new Uint32Array(12);
    const max = (1n << 128n) - 1n;
    u128_from_bigint(words, 0, (1n << 96n) - 1n);
    u128_from_bigint(words, 4, 1n);
    assert(!u128_add_to(words, 0, words, 4));
    assert.equal(u128_to_bigint(words, 0), 1n << 96n);
    u128_from_bigint(words, 0, max);
    assert(u128_add_to(words, 0, words, 4) && u128_is_zero(words, 0), 'u128: add_to wraps');
    u128_from_bigint(words, 0, (1n << 64n) - 1n);
    u128_add_small(words, 0, 1, 0, 0);
    assert.equal(u128_to_bigint(words, 0), 1n << 64n);
    u128_from_bigint(words, 0, 0n);
    assert(u128_sub(words, 8, words, 0, words, 4), 'u128: 0 - 1 borrows');
    assert(u128_is_max(words, 8) && u128_compare(words, 8, words, 4) === 1);
    u128_sub_saturating(words, 8, words, 0, words, 4);
    assert(u128_is_zero(words, 8), 'u128: saturating subtraction stops at zero');
    assert(timestamp_after(1, 0, 0, 0xffffffff) && !timestamp_after(0, 1, 0, 1));
    u128_from_bigint(words, 0, max);
    assert(u128_add(words, 8, words, 0, words, 4) && u128_is_zero(words, 8), 'u128: add wraps');
    assert(u128_compare(words, 4, words, 4) === 0 && u128_equal(words, 0, words, 0));
}
