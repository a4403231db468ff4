// The checksum of every header, body, WAL entry and grid block: AEGIS-128L as a MAC with a zero key
// and zero nonce, computed by the addon (native/aegis.cc), identical to TigerBeetle 0.17.9's
// `vsr.checksum`. A checksum is 16 bytes in wire order; as a number it is a little-endian u128.
//
// Offsets and lengths are in bytes. The hot path is one native call per checksum with nothing
// allocated: callers pass the message buffer (usually an arena view) and where to put the tag.
import assert from 'node:assert/strict';

import { binding } from '../io/binding';
import type { ChecksumImplementationName } from '../io/binding';

export type ChecksumImplementation = ChecksumImplementationName;

export const checksum_size = 16;


// Looked up once so that each call below is a single native call, not a property lookup chain.
const native = binding();
const native_checksum_into = native.checksum_into;
const native_checksum_equal = native.checksum_equal;
assert.equal(typeof native_checksum_into, 'function', 'addon lacks checksum_into');
assert.equal(typeof native_checksum_equal, 'function', 'addon lacks checksum_equal');

/**
 * Writes the checksum of source[offset, offset + length) to target[target_offset, +16).
 * Throws RangeError when either range lies outside its array, TypeError on wrong argument types.
 */
export function checksum(
    source: Uint8Array, offset: number, length: number,
    target: Uint8Array, target_offset: number,
): void {
    native_checksum_into(source, offset, length, target, target_offset);
}

/**
 * Whether the checksum of source[offset, offset + length) equals expected[expected_offset, +16).
 */
export function checksum_equal(
    source: Uint8Array, offset: number, length: number,
    expected: Uint8Array, expected_offset: number,
): boolean {
    return native_checksum_equal(source, offset, length, expected, expected_offset);
}

/** Which implementation is active: AES-NI when the CPU has it, unless forced otherwise. */
export function checksum_implementation(): ChecksumImplementation {
    return native.checksum_implementation();
}

export function checksum_aes_ni_supported(): boolean {
    return native.checksum_aes_ni_supported();
}

/**
 * Forces an implementation for the whole process (tests and benchmarks only; the environment
 * variable RINGLEDGER_CHECKSUM=portable does the same at load). Throws when it is unavailable.
 */
export function checksum_select(name: ChecksumImplementation | 'auto'): ChecksumImplementation {
    const selected = native.checksum_select(name);
    assert.ok(name === 'auto' || selected === name);
    return selected;
}

/** The checksum as a little-endian u128. Allocates: for tests and startup only. */
export function checksum_bigint(bytes: Uint8Array): bigint {
    const tag = new Uint8Array(checksum_size);
    native_checksum_into(bytes, 0, bytes.length, tag, 0);
    const view = new DataView(tag.buffer);
    const value = view.getBigUint64(0, true) | (view.getBigUint64(8, true) << 64n);
    assert.ok(value < 1n << 128n);
    return value;
}
