// The few prepare-header fields the journal needs, behind one small adapter. The offsets come from
// lib/vsr/header_layout.ts (the one description of the 256-byte frame and the prepare's
// command-specific part); this file adds allocation-free readers and the WAL's empty headers.
//
// All functions take (bytes, offset) so that headers are read in place from arena views, without
// allocating. Ops are JS numbers: 2^53 ops is centuries of traffic, asserted at the boundary.
import assert from 'node:assert/strict';

import { Command, frame, offsets } from './header_layout';
import { checksum, checksum_equal } from './checksum';
import { header_size } from '../storage/zones';

export const offset_checksum = frame.checksum;
export const offset_checksum_body = frame.checksum_body;
export const offset_cluster = frame.cluster;
export const offset_size = frame.size;
export const offset_view = frame.view;
export const offset_command = frame.command;
export const offset_replica = frame.replica;
export const offset_parent = offsets.prepare.parent;
export const offset_op = offsets.prepare.op;
export const offset_commit = offsets.prepare.commit;
export const offset_timestamp = offsets.prepare.timestamp;
export const offset_operation = offsets.prepare.operation;

export const command_prepare = Command.prepare;
export const operation_reserved = 0;
export const operation_root = 1;

export function u32_read(bytes: Uint8Array, offset: number): number {
    return (bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16)) +
        bytes[offset + 3]! * 0x1000000;
}

export function u32_write(bytes: Uint8Array, offset: number, value: number): void {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffffffff);
    bytes[offset] = value & 0xff;
    bytes[offset + 1] = (value >>> 8) & 0xff;
    bytes[offset + 2] = (value >>> 16) & 0xff;
    bytes[offset + 3] = (value >>> 24) & 0xff;
}

/** A u64 as a number; values at or above 2^53 read as -1, which no valid op or view is. */
export function u64_read(bytes: Uint8Array, offset: number): number {
    const high = u32_read(bytes, offset + 4);
    if (high >= 0x200000) return -1;
    return high * 0x100000000 + u32_read(bytes, offset);
}

export function u64_write(bytes: Uint8Array, offset: number, value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0);
    u32_write(bytes, offset, value % 0x100000000);
    u32_write(bytes, offset + 4, Math.floor(value / 0x100000000));
}

export function header_op(bytes: Uint8Array, offset: number): number {
    return u64_read(bytes, offset + offset_op);
}

export function header_view(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + offset_view);
}

export function header_size_field(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + offset_size);
}

export function header_operation(bytes: Uint8Array, offset: number): number {
    return bytes[offset + offset_operation]!;
}

/** The header checksum covers bytes 16..255: the checksum_body and the parent with them. */
export function header_checksum_valid(bytes: Uint8Array, offset: number): boolean {
    return checksum_equal(bytes, offset + 16, header_size - 16, bytes, offset + offset_checksum);
}

export function header_checksum_set(bytes: Uint8Array, offset: number): void {
    checksum(bytes, offset + 16, header_size - 16, bytes, offset + offset_checksum);
}

/** The body checksum covers bytes [256, size) of the message. */
export function body_checksum_valid(bytes: Uint8Array, offset: number): boolean {
    const size = header_size_field(bytes, offset);
    // Callers check the size (or a checksum covering it) first.
    assert(size >= header_size);
    return checksum_equal(bytes, offset + header_size, size - header_size,
        bytes, offset + offset_checksum_body);
}

export function body_checksum_set(bytes: Uint8Array, offset: number): void {
    const size = header_size_field(bytes, offset);
    assert(size >= header_size);
    checksum(bytes, offset + header_size, size - header_size, bytes, offset + offset_checksum_body);
}

/** Whether two 16-byte fields (checksums, clusters) are equal. */
export function u128_equal(a: Uint8Array, a_offset: number, b: Uint8Array,
    b_offset: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (a[a_offset + index] !== b[b_offset + index]) return false;
    }
    return true;
}

/**
 * Writes a header with no body: the reserved header of an empty slot (op = slot index, so that a
 * misdirected read of another slot's placeholder is detected) or the root prepare (op 0).
 */
export function header_empty_write(bytes: Uint8Array, offset: number, cluster: Uint8Array,
    op: number, operation: number): void {
    assert(operation === operation_reserved || operation === operation_root);
    assert(operation === operation_reserved || op === 0);
    assert(cluster.length === 16 && offset + header_size <= bytes.length);
    bytes.fill(0, offset, offset + header_size);
    bytes.set(cluster, offset + offset_cluster);
    u32_write(bytes, offset + offset_size, header_size);
    bytes[offset + offset_command] = command_prepare;
    u64_write(bytes, offset + offset_op, op);
    bytes[offset + offset_operation] = operation;
    body_checksum_set(bytes, offset);
    header_checksum_set(bytes, offset);
    assert(header_size_field(bytes, offset) === header_size && header_op(bytes, offset) === op);
}

/** The cluster id as 16 little-endian bytes (startup only: allocates). */
export function cluster_bytes(cluster: bigint): Uint8Array {
    assert(cluster >= 0n && cluster < 1n << 128n);
    const bytes = new Uint8Array(16);
    for (let index = 0; index < 16; index++) {
        bytes[index] = Number((cluster >> BigInt(index * 8)) & 0xffn);
    }
    return bytes;
}
