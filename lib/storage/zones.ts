// The data file's zones, in order: superblock copies, WAL headers ring, WAL prepares ring, client
// replies, grid padding, grid. Every zone starts and ends on a sector boundary so that every I/O
// can be done with O_DIRECT, and the grid starts on a block boundary. Sizes come from a
// StorageConfig; `format` records it in the superblock and `start` builds the layout from that
// record, so a layout that disagrees with the file is refused at open rather than misread.
import assert from 'node:assert/strict';

import {
    clients_max_default, header_size, headers_per_sector, message_size_max, sector_size,
    slot_count_production,
} from '../constants';

export { header_size, headers_per_sector, sector_size };
/** Four copies tolerate one copy mid-overwrite plus one faulty copy (open quorum 2, verify 3). */
export const superblock_copies = 4;
/** One copy: the fields in the first sector, view headers (a seam for later) in the second. */
export const superblock_copy_size = 2 * sector_size;

export enum Zone {
    superblock = 0,
    wal_headers = 1,
    wal_prepares = 2,
    client_replies = 3,
    grid_padding = 4,
    grid = 5,
}
export const zone_count = 6;

export const zone_names: readonly string[] = [
    'superblock', 'wal_headers', 'wal_prepares', 'client_replies', 'grid_padding', 'grid',
];

export interface StorageConfig {
    /** WAL slots; op N lives in slot N % slot_count. */
    slot_count: number;
    message_size_max: number;
    clients_max: number;
    block_size: number;
    /** The grid's size in blocks (the grid is preallocated at format). */
    grid_block_count: number;
}

/**
 * The production shape. The grid is a placeholder here: `storage_config_for` (checkpoint.ts) sizes
 * it from the ledger's capacity. Blocks are 64 KiB, not TigerBeetle's 512 KiB: the grid holds the
 * ledger's arrays in chunks (no LSM), and a checkpoint rewrites every chunk holding a changed
 * record, so a smaller block bounds that amplification (one changed account rewrites 64 KiB)
 * while staying large for O_DIRECT throughput.
 */
export const config_production: StorageConfig = {
    slot_count: slot_count_production,
    message_size_max,
    clients_max: clients_max_default,
    block_size: 64 * 1024,
    grid_block_count: 16,
};

/** The smallest shape the journal allows: fast tests with many wraps. */
export const config_test: StorageConfig = {
    slot_count: 32,
    message_size_max: 2 * sector_size,
    clients_max: 4,
    block_size: sector_size,
    grid_block_count: 8,
};

export function sector_ceil(size_bytes: number): number {
    return Math.ceil(size_bytes / sector_size) * sector_size;
}

export class ZoneLayout {
    readonly config: StorageConfig;
    readonly starts: Float64Array = new Float64Array(zone_count);
    readonly sizes: Float64Array = new Float64Array(zone_count);
    readonly total_size_bytes: number;

    constructor(config: StorageConfig) {
        config_assert(config);
        this.config = config;
        const grid_padding_unaligned = superblock_copies * superblock_copy_size +
            config.slot_count * header_size +
            config.slot_count * config.message_size_max +
            config.clients_max * config.message_size_max;
        const grid_start = Math.ceil(grid_padding_unaligned / config.block_size) *
            config.block_size;
        this.sizes[Zone.superblock] = superblock_copies * superblock_copy_size;
        this.sizes[Zone.wal_headers] = config.slot_count * header_size;
        this.sizes[Zone.wal_prepares] = config.slot_count * config.message_size_max;
        this.sizes[Zone.client_replies] = config.clients_max * config.message_size_max;
        this.sizes[Zone.grid_padding] = grid_start - grid_padding_unaligned;
        this.sizes[Zone.grid] = config.grid_block_count * config.block_size;
        let start = 0;
        for (let zone = 0; zone < zone_count; zone++) {
            this.starts[zone] = start;
            start += this.sizes[zone]!;
            assert.equal(this.starts[zone]! % sector_size, 0);
            assert.equal(this.sizes[zone]! % sector_size, 0);
        }
        assert.equal(this.starts[Zone.grid]! % config.block_size, 0);
        this.total_size_bytes = start;
        assert(Number.isSafeInteger(this.total_size_bytes));
    }

    /**
     * The absolute file offset of an I/O, after checking that it is sector-aligned and stays
     * inside its zone (a misaligned or overflowing I/O is a programmer error, never a fault).
     */
    offset(zone: Zone, zone_offset: number, length: number): number {
        assert(zone >= 0 && zone < zone_count && zone !== Zone.grid_padding);
        assert(Number.isSafeInteger(zone_offset) && zone_offset >= 0);
        assert(Number.isSafeInteger(length) && length > 0);
        assert.equal(zone_offset % sector_size, 0, 'zone offset must be sector-aligned');
        assert.equal(length % sector_size, 0, 'length must be a multiple of the sector size');
        assert(zone_offset + length <= this.sizes[zone]!, 'I/O crosses the end of its zone');
        return this.starts[zone]! + zone_offset;
    }
}

export function config_assert(config: StorageConfig): void {
    assert(Number.isSafeInteger(config.slot_count));
    // A single torn sector write must never destroy every redundant header.
    assert(config.slot_count >= 2 * headers_per_sector, 'slot_count must be >= 32');
    assert.equal(config.slot_count % headers_per_sector, 0);
    assert(config.message_size_max >= sector_size);
    assert.equal(config.message_size_max % sector_size, 0);
    assert(config.clients_max >= 1);
    assert(config.block_size >= sector_size);
    assert.equal(config.block_size % sector_size, 0);
    assert(config.grid_block_count >= 1);
}
