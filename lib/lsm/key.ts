// Fixed-size keys as u32 limbs. A key of `key_words` words is an unsigned integer stored
// little-endian by word (word 0 least significant), exactly as a u64 or u128 is laid out in
// little-endian bytes, so a key written into a block buffer is compared in place through a
// Uint32Array view of that buffer: no BigInt and no object per entry on the hot path. A composite
// key (an index: a u128 account id then a u64 timestamp) puts its most significant part in the
// highest words.
import assert from 'node:assert/strict';
import os from 'node:os';

// Block bytes are read as u32 words through a typed array, which uses the platform's order.
assert.equal(os.endianness(), 'LE', 'lsm: keys are read in place as little-endian words');

/** The most words a key may have: a u128 id, a u64 timestamp and a u64 of room. */
export const key_words_max = 8;

/** -1, 0 or 1 as the key at a[a_word] is less than, equal to or greater than the one at b. */
export function key_compare(a: Uint32Array, a_word: number, b: Uint32Array, b_word: number,
    key_words: number): number {
    for (let word = key_words - 1; word >= 0; word--) {
        const left = a[a_word + word]!;
        const right = b[b_word + word]!;
        if (left !== right) return left < right ? -1 : 1;
    }
    return 0;
}

/**
 * The first index in [0, count) whose key (keys at keys_word + index * key_words) is >= the key
 * at key[key_word], or `count` when there is none. Iterative: the depth is log2(count).
 */
export function keys_lower_bound(keys: Uint32Array, keys_word: number, count: number,
    key_words: number, key: Uint32Array, key_word: number): number {
    let low = 0;
    let high = count;
    // Each pass halves [low, high): 32 passes cover every count a u32 can hold.
    for (let pass = 0; pass < 33 && low < high; pass++) {
        const middle = (low + high) >>> 1;
        if (key_compare(keys, keys_word + middle * key_words, key, key_word, key_words) < 0) {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if (low !== high) assert.fail('lsm: lower bound did not converge');
    return low;
}

export function key_copy(target: Uint32Array, target_word: number, source: Uint32Array,
    source_word: number, key_words: number): void {
    if (target_word + key_words > target.length) assert.fail('lsm: key copy past the end');
    for (let word = 0; word < key_words; word++) {
        target[target_word + word] = source[source_word + word]!;
    }
}

/** Writes a key from a BigInt (tests and startup only: allocates nothing but is not hot). */
export function key_from_bigint(target: Uint32Array, target_word: number, value: bigint,
    key_words: number): void {
    assert(value >= 0n && value < 1n << BigInt(32 * key_words), 'lsm: key out of range');
    assert(target_word + key_words <= target.length);
    let rest = value;
    for (let word = 0; word < key_words; word++) {
        target[target_word + word] = Number(rest & 0xffffffffn);
        rest >>= 32n;
    }
    assert.equal(rest, 0n);
}

/** Reads `key_words` words as a BigInt (tests and reports; values too, so any width). */
export function key_to_bigint(source: Uint32Array, source_word: number, key_words: number): bigint {
    assert(key_words >= 1 && Number.isInteger(key_words));
    assert(source_word + key_words <= source.length);
    let value = 0n;
    for (let word = key_words - 1; word >= 0; word--) {
        value = (value << 32n) | BigInt(source[source_word + word]!);
    }
    return value;
}
