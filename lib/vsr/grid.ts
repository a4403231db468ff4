// The grid: the data file's last zone, an array of fixed-size blocks addressed from 1 (address 0
// means "no block", so zeroed memory is never a valid reference). Blocks are copy-on-write:
// a block is never overwritten while a durable checkpoint references it, so the previous
// checkpoint stays intact until the superblock names the next one.
//
// A block is a message: the 256-byte header frame (command `block`) with the block's address,
// the checkpoint op that wrote it and its type, then the body. The header checksum covers the
// body checksum, and the referrer (a parent block, or the superblock for the root) stores the
// header checksum: a block is trusted only when it matches what its parent expects, which also
// catches misdirected writes and stale blocks that are otherwise valid.
//
// A reference is 32 bytes: checksum u128, address u64, size u32, reserved u32, so that a reader
// reads exactly the sectors the block occupies.
import assert from 'node:assert/strict';

import { Command, frame, offsets } from './header_layout';
import { checksum_equal } from './checksum';
import {
    body_checksum_set, body_checksum_valid, header_checksum_set, header_checksum_valid,
    u128_equal, u32_read, u32_write, u64_read, u64_write,
} from './prepare_header';
import { header_size } from '../storage/zones';
import { release_server } from '../constants';

// The LSM layer's blocks (lib/lsm): a table's index block and its data blocks; a forest's
// checkpoint: its manifest log, its free set and its root.
export const BlockType = {
    root: 1, manifest: 2, chunk: 3, lsm_index: 4, lsm_data: 5, lsm_manifest_log: 6,
    lsm_free_set: 7, lsm_root: 8,
} as const;
export const block_type_names = ['', 'root', 'manifest', 'chunk', 'lsm_index', 'lsm_data',
    'lsm_manifest_log', 'lsm_free_set', 'lsm_root'];
export const block_type_max = BlockType.lsm_root;

export const reference_size = 32;
const r_checksum = 0;
const r_address = 16;
const r_size = 24;

const o_address = offsets.block.address;
const o_snapshot = offsets.block.snapshot;
const o_block_type = offsets.block.block_type;
/** Chunk blocks name their place in the state image in the metadata: segment u32, chunk u32. */
const o_segment = offsets.block.metadata;
const o_chunk = offsets.block.metadata + 4;

export function block_payload_size(block_size: number): number {
    return block_size - header_size;
}

/**
 * Fills the header of the block at bytes[offset] whose body is already in place, then sets both
 * checksums. `size` counts the header; the bytes up to the sector are zeroed by the caller.
 */
export function block_seal(bytes: Uint8Array, offset: number, cluster: Uint8Array,
    address: number, op: number, type: number, size: number, segment: number,
    chunk: number): void {
    assert(address >= 1 && size >= header_size);
    assert(cluster.length === 16 && op >= 0);
    assert(type >= BlockType.root && type <= block_type_max, 'grid: unknown block type');
    assert(offset + size <= bytes.length, 'grid: the block body lies outside its buffer');
    bytes.fill(0, offset, offset + header_size);
    bytes.set(cluster, offset + frame.cluster);
    u32_write(bytes, offset + frame.size, size);
    // A block is also a message (grid repair sends it as it is): it names a release, as every
    // message must. Blocks sealed before grid repair existed carry 0 and are never sent.
    u32_write(bytes, offset + frame.release, release_server);
    bytes[offset + frame.command] = Command.block;
    u64_write(bytes, offset + o_address, address);
    u64_write(bytes, offset + o_snapshot, op);
    bytes[offset + o_block_type] = type;
    u32_write(bytes, offset + o_segment, segment);
    u32_write(bytes, offset + o_chunk, chunk);
    body_checksum_set(bytes, offset);
    header_checksum_set(bytes, offset);
}

/**
 * Whether the block read at bytes[offset] is exactly the one `reference` (at ref_bytes[ref_offset])
 * names: its header checksum equals the stored one and verifies, its body verifies, and its
 * address, type and size are the expected ones. Anything else (torn, rotten, misdirected, stale,
 * never written) is corrupt: the caller never uses it.
 */
export function block_verify(bytes: Uint8Array, offset: number, ref_bytes: Uint8Array,
    ref_offset: number, type: number): boolean {
    assert(type >= BlockType.root && type <= block_type_max);
    if (!u128_equal(bytes, offset + frame.checksum, ref_bytes, ref_offset + r_checksum)) {
        return false;
    }
    if (!header_checksum_valid(bytes, offset)) return false;
    const size = u32_read(bytes, offset + frame.size);
    if (size !== reference_size_read(ref_bytes, ref_offset)) return false;
    if (bytes[offset + frame.command] !== Command.block) return false;
    if (bytes[offset + o_block_type] !== type) return false;
    if (u64_read(bytes, offset + o_address) !== reference_address(ref_bytes, ref_offset)) {
        return false;
    }
    return body_checksum_valid(bytes, offset);
}

/** Whether the body of a block equals `source` without reading the block (tests, audits). */
export function block_body_matches(source: Uint8Array, source_offset: number, length: number,
    checksum_body: Uint8Array, checksum_offset: number): boolean {
    return checksum_equal(source, source_offset, length, checksum_body, checksum_offset);
}

export function block_segment(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + o_segment);
}

export function block_chunk(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + o_chunk);
}

export function block_op(bytes: Uint8Array, offset: number): number {
    return u64_read(bytes, offset + o_snapshot);
}

/** Writes a reference to the sealed block at bytes[block_offset]. */
export function reference_write(target: Uint8Array, target_offset: number, block: Uint8Array,
    block_offset: number): void {
    // Only a sealed block is referenced: it has an address and at least a header.
    assert(u64_read(block, block_offset + o_address) >= 1);
    assert(u32_read(block, block_offset + frame.size) >= header_size);
    assert(target_offset >= 0 && target_offset + reference_size <= target.length);
    for (let index = 0; index < 16; index++) {
        target[target_offset + r_checksum + index] = block[block_offset + frame.checksum + index]!;
    }
    u64_write(target, target_offset + r_address, u64_read(block, block_offset + o_address));
    u32_write(target, target_offset + r_size, u32_read(block, block_offset + frame.size));
    u32_write(target, target_offset + r_size + 4, 0);
}

export function reference_clear(target: Uint8Array, target_offset: number): void {
    target.fill(0, target_offset, target_offset + reference_size);
}

export function reference_copy(target: Uint8Array, target_offset: number, source: Uint8Array,
    source_offset: number): void {
    assert(target_offset + reference_size <= target.length);
    assert(source_offset + reference_size <= source.length);
    for (let index = 0; index < reference_size; index++) {
        target[target_offset + index] = source[source_offset + index]!;
    }
}

export function reference_address(bytes: Uint8Array, offset: number): number {
    return u64_read(bytes, offset + r_address);
}

export function reference_size_read(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + r_size);
}

/**
 * Which blocks are in use. Not persisted: at restore it is derived by reachability from the
 * checkpoint root (every block the durable checkpoint references is acquired, nothing else is),
 * so a crash can never leak or double-allocate a block. Allocation takes the lowest free address
 * at or after a cursor, so it is deterministic.
 */
export class FreeSet {
    readonly block_count: number;
    /** Indexed by address (index 0 unused). */
    private readonly acquired: Uint8Array;
    private cursor = 1;
    acquired_count = 0;

    constructor(block_count: number) {
        assert(Number.isSafeInteger(block_count) && block_count >= 1);
        assert(block_count < 0x100000000, 'grid addresses must fit in a u32');
        this.block_count = block_count;
        this.acquired = new Uint8Array(block_count + 1);
    }

    /** Returns the lowest free address at or after the cursor, or 0 when the grid is full. */
    acquire(): number {
        assert(this.cursor >= 1 && this.cursor <= this.block_count);
        for (let scanned = 0; scanned < this.block_count; scanned++) {
            const address = this.cursor;
            this.cursor = address === this.block_count ? 1 : address + 1;
            if (this.acquired[address] === 0) {
                this.acquired[address] = 1;
                this.acquired_count += 1;
                assert(this.acquired_count <= this.block_count);
                return address;
            }
        }
        // A whole pass found no free block: every block is acquired.
        assert.equal(this.acquired_count, this.block_count);
        return 0;
    }

    /** Marks a block reachable from the checkpoint being restored (twice is corruption). */
    mark(address: number): boolean {
        assert(address >= 1 && address <= this.block_count);
        if (this.acquired[address] === 1) return false;
        this.acquired[address] = 1;
        this.acquired_count += 1;
        assert(this.acquired_count <= this.block_count);
        return true;
    }

    release(address: number): void {
        assert(address >= 1 && address <= this.block_count);
        assert.equal(this.acquired[address], 1, 'free set: releasing a free block');
        this.acquired[address] = 0;
        this.acquired_count -= 1;
        assert(this.acquired_count >= 0);
    }

    is_acquired(address: number): boolean {
        assert(address >= 1 && address <= this.block_count);
        return this.acquired[address] === 1;
    }

    /** Restarts allocation from the lowest address (at each checkpoint: deterministic layout). */
    cursor_reset(): void {
        this.cursor = 1;
    }

    clear(): void {
        this.acquired.fill(0);
        this.acquired_count = 0;
        this.cursor = 1;
    }
}
