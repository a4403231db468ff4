// u128 arithmetic on four u32 limbs (least significant first) inside Uint32Arrays. No BigInt.

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

export function u128_copy(out: Uint32Array, o: number, a: Uint32Array, i: number): void {
    out[o] = a[i]; out[o + 1] = a[i + 1]; out[o + 2] = a[i + 2]; out[o + 3] = a[i + 3];
}

export function u128_to_bigint(a: Uint32Array, i: number): bigint {
    return (BigInt(a[i + 3]) << 96n) | (BigInt(a[i + 2]) << 64n) | (BigInt(a[i + 1]) << 32n) |
        BigInt(a[i]);
}

export function u128_from_bigint(out: Uint32Array, o: number, value: bigint): void {
    for (let limb = 0; limb < 4; limb++) {
        out[o + limb] = Number((value >> BigInt(32 * limb)) & 0xffffffffn);
    }
}
