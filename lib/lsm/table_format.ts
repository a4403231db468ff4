// The immutable table format. A table is one index block and up to `data_block_count_max` data
// blocks, each a grid block (256-byte header frame + body, lib/vsr/grid.ts). Every size is fixed
// by the tree's key and value sizes and the block size, so a field's place in a block is a
// constant and entries are read in place, by word, from the block's bytes.
//
// Header metadata (the frame's 96 bytes that belong to the block type):
//   tree_id u32 | count u32 (data: entries; index: data blocks) | key_size_bytes u32 |
//   value_size_bytes u32 | table_entry_count u32 (index only) | zero
// Data block body, at the header's end:
//   keys [entry_count_max × key_size] | values [entry_count_max × value_size] |
//   tombstones [ceil(entry_count_max / 32) u32 words, bit i set: entry i is a removal] | zero
// Index block body:
//   key_min [data_block_count_max × key_size] | key_max [same] |
//   references [data_block_count_max × 32 bytes: checksum u128, address u64, size u32, zero u32]
// Unused entries and padding are zero, so the same entries always make the same bytes.
import assert from 'node:assert/strict';

import { frame, offsets, Command } from '../vsr/header_layout';
import { BlockType, reference_size } from '../vsr/grid';
import {
    body_checksum_set, header_checksum_set, u32_read, u32_write, u64_write,
} from '../vsr/prepare_header';
import { header_size } from '../storage/zones';
import { key_words_max } from './key';

export const block_type_index = BlockType.lsm_index;
export const block_type_data = BlockType.lsm_data;

const metadata = offsets.block.metadata;
const m_tree_id = metadata;
const m_count = metadata + 4;
const m_key_size = metadata + 8;
const m_value_size = metadata + 12;
const m_table_entry_count = metadata + 16;

/** The geometry of one tree's tables, computed once at construction. All offsets in bytes. */
export class TableLayout {
    readonly key_words: number;
    readonly value_words: number;
    readonly key_size_bytes: number;
    readonly value_size_bytes: number;
    readonly block_size_bytes: number;
    readonly data_entry_count_max: number;
    readonly data_values_offset: number;
    readonly data_tombstones_offset: number;
    readonly data_block_count_max: number;
    readonly index_key_max_offset: number;
    readonly index_references_offset: number;
    /** The most entries one table holds: every data block full. */
    readonly table_entry_count_max: number;

    constructor(key_words: number, value_words: number, block_size_bytes: number,
        table_entry_count_min: number) {
        assert(key_words >= 1 && key_words <= key_words_max);
        assert(value_words >= 0 && Number.isInteger(value_words));
        assert(block_size_bytes % 512 === 0 && block_size_bytes > header_size);
        assert(Number.isInteger(table_entry_count_min) && table_entry_count_min >= 1);
        this.key_words = key_words;
        this.value_words = value_words;
        this.key_size_bytes = key_words * 4;
        this.value_size_bytes = value_words * 4;
        this.block_size_bytes = block_size_bytes;
        const body = block_size_bytes - header_size;
        const entry = this.key_size_bytes + this.value_size_bytes;
        // Each entry costs its key, its value and one tombstone bit (rounded up to whole words).
        let count = Math.floor((body * 8) / (entry * 8 + 1));
        for (let step = 0; step < 64 && count * entry + Math.ceil(count / 32) * 4 > body; step++) {
            count -= 1;
        }
        assert(count >= 2, 'lsm: a data block must hold at least two entries');
        this.data_entry_count_max = count;
        this.data_values_offset = header_size + count * this.key_size_bytes;
        this.data_tombstones_offset = this.data_values_offset + count * this.value_size_bytes;
        assert(this.data_tombstones_offset + Math.ceil(count / 32) * 4 <= block_size_bytes);
        // A table holds at least `table_entry_count_min` (the immutable table) in full blocks.
        this.data_block_count_max = Math.ceil(table_entry_count_min / count);
        this.table_entry_count_max = this.data_block_count_max * count;
        const per_data_block = 2 * this.key_size_bytes + reference_size;
        this.index_key_max_offset = header_size + this.data_block_count_max * this.key_size_bytes;
        this.index_references_offset = this.index_key_max_offset +
            this.data_block_count_max * this.key_size_bytes;
        assert(header_size + this.data_block_count_max * per_data_block <= block_size_bytes,
            'lsm: the index block cannot name every data block of a table');
        assert(this.data_tombstones_offset % 4 === 0 && this.index_references_offset % 4 === 0);
    }

    /** The byte offset of data block entry `index`'s key inside its block. */
    data_key_offset(index: number): number {
        if (!(index >= 0)) assert.fail('lsm: a negative entry index');
        return header_size + index * this.key_size_bytes;
    }

    data_value_offset(index: number): number {
        return this.data_values_offset + index * this.value_size_bytes;
    }

    index_reference_offset(index: number): number {
        return this.index_references_offset + index * reference_size;
    }
}

/**
 * Fills the header of an LSM block whose body is in place (the rest of the block zero), then sets
 * both checksums. The block is always whole (`block_size_bytes`), so every block of a tree reads
 * with the same size and its fixed offsets hold.
 */
export function lsm_block_seal(bytes: Uint8Array, offset: number, layout: TableLayout,
    cluster: Uint8Array, address: number, snapshot: number, type: number, tree_id: number,
    count: number, table_entry_count: number): void {
    assert(type === block_type_index || type === block_type_data);
    assert(address >= 1 && cluster.length === 16);
    assert(count >= 1 && tree_id >= 1 && tree_id <= 0xffff);
    assert(offset % 4 === 0 && offset + layout.block_size_bytes <= bytes.length);
    bytes.fill(0, offset, offset + header_size);
    bytes.set(cluster, offset + frame.cluster);
    u32_write(bytes, offset + frame.size, layout.block_size_bytes);
    bytes[offset + frame.command] = Command.block;
    u64_write(bytes, offset + offsets.block.address, address);
    u64_write(bytes, offset + offsets.block.snapshot, snapshot);
    bytes[offset + offsets.block.block_type] = type;
    u32_write(bytes, offset + m_tree_id, tree_id);
    u32_write(bytes, offset + m_count, count);
    u32_write(bytes, offset + m_key_size, layout.key_size_bytes);
    u32_write(bytes, offset + m_value_size, layout.value_size_bytes);
    u32_write(bytes, offset + m_table_entry_count, table_entry_count);
    body_checksum_set(bytes, offset);
    header_checksum_set(bytes, offset);
}

/** Entries of a data block, or data blocks of an index block. */
export function block_count(bytes: Uint8Array, offset: number): number {
    if (!(offset >= 0 && offset % 4 === 0)) assert.fail('lsm: a block off its alignment');
    return u32_read(bytes, offset + m_count);
}

export function block_table_entry_count(bytes: Uint8Array, offset: number): number {
    return u32_read(bytes, offset + m_table_entry_count);
}

/**
 * Whether a block that verified against its reference also belongs to this tree and layout: a
 * checksum proves the bytes are the ones written, this proves they were written for this reader.
 */
export function lsm_block_matches(bytes: Uint8Array, offset: number, layout: TableLayout,
    tree_id: number, type: number): boolean {
    assert(type === block_type_index || type === block_type_data);
    if (u32_read(bytes, offset + m_tree_id) !== tree_id) return false;
    if (u32_read(bytes, offset + m_key_size) !== layout.key_size_bytes) return false;
    if (u32_read(bytes, offset + m_value_size) !== layout.value_size_bytes) return false;
    const count = block_count(bytes, offset);
    const count_max = type === block_type_data ? layout.data_entry_count_max :
        layout.data_block_count_max;
    return count >= 1 && count <= count_max;
}
