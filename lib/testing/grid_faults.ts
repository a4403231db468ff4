// Grid rot in the cluster simulator: blocks of a replica's grid go bad while its process is down
// (a flipped bit in the header or the body, or a sector that became unreadable), so that its
// restore must fetch them from peers (grid repair, lib/vsr/grid_repair.ts).
//
// Within the recoverable budget: each grid address is open to rot on exactly
// quorum_replication - 1 replicas, chosen from the seed (as the WAL areas in fault_atlas.ts), so
// at least one replica never loses its copy of what lives at an address; and a block rots only
// while another replica's disk holds the very same block intact (the grid is the same function
// of the committed ops on every replica), so there is a copy to fetch when it rots. A single
// replica has nothing to repair from and gets no rot.
//
// The draws come from PRNG streams of their own (simulator.ts: 8 for the rate, 9 for the atlas
// and the rot itself), so a seed whose rate is 0 runs exactly as it did before grid rot existed.
import assert from 'node:assert/strict';

import { Prng } from '../prng';
import type { SimulatorStorage } from '../storage/simulator_storage';
import { Zone, header_size, sector_size } from '../storage/zones';
import { frame } from '../vsr/header_layout';
import {
    body_checksum_valid, header_checksum_valid, u128_equal, u32_read,
} from '../vsr/prepare_header';
import { quorum_replication } from '../vsr/quorums';
import { choose_faulty } from './fault_atlas';

export class GridRot {
    readonly replica_count: number;
    readonly block_count: number;
    readonly block_size: number;
    /** Blocks that rot at each restart at most (fewer when fewer qualify). */
    readonly blocks_per_restart_max: number;
    /** Per address, per replica (address * replica_count + replica): 1 when it may rot. */
    private readonly open: Uint8Array;
    private readonly prng: Prng;
    /** Blocks rotted so far, and of those the sectors made unreadable. */
    rotted = 0;
    unreadable = 0;

    constructor(seed: number, replica_count: number, block_count: number, block_size: number,
        blocks_per_restart_max: number) {
        assert(replica_count >= 1 && replica_count <= 6);
        assert(Number.isInteger(block_count) && block_count >= 1);
        assert(block_size % sector_size === 0 && block_size >= header_size);
        assert(Number.isInteger(blocks_per_restart_max) && blocks_per_restart_max >= 0);
        this.replica_count = replica_count;
        this.block_count = block_count;
        this.block_size = block_size;
        this.blocks_per_restart_max = replica_count === 1 ? 0 : blocks_per_restart_max;
        this.prng = new Prng(seed);
        this.open = new Uint8Array((block_count + 1) * replica_count);
        const faulty_per_address = quorum_replication(replica_count) - 1;
        for (let address = 1; address <= block_count; address++) {
            choose_faulty(this.prng, this.open, address, replica_count, faulty_per_address);
        }
    }

    /** Whether `replica`'s copy of the block at `address` may rot. */
    is_open(replica: number, address: number): boolean {
        assert(replica >= 0 && replica < this.replica_count);
        assert(address >= 1 && address <= this.block_count);
        return this.open[address * this.replica_count + replica] === 1;
    }

    /**
     * Replica `replica` is about to restart: rots up to blocks_per_restart_max of its blocks
     * that the atlas opens and that another disk of `storages` holds intact and identical,
     * found by one pass over the grid from a random address that takes each qualifying block
     * with chance 1/4. Those of the checkpoint it restores must be repaired; the others (freed,
     * or pre-written for a checkpoint the crash left unnamed) are free at restore and rewritten
     * before they are read. Returns how many rotted.
     */
    rot(replica: number, storages: readonly SimulatorStorage[]): number {
        assert.equal(storages.length, this.replica_count);
        const storage = storages[replica]!;
        let rotted = 0;
        const start = this.prng.int(this.block_count);
        for (let scanned = 0; scanned < this.block_count; scanned++) {
            if (rotted === this.blocks_per_restart_max) break;
            const address = 1 + (start + scanned) % this.block_count;
            if (!this.is_open(replica, address) || !this.prng.chance(1, 4)) continue;
            const size = grid_block_intact_size(storage, address, this.block_size);
            if (size === 0 || !this.copy_elsewhere(replica, address, storages)) continue;
            const at = (address - 1) * this.block_size;
            if (this.prng.chance(1, 4)) {
                storage.latent_error_set(Zone.grid, at + this.prng.int(size));
                this.unreadable += 1;
            } else {
                storage.flip_bit(Zone.grid, at + this.prng.int(size), this.prng.int(8));
            }
            rotted += 1;
        }
        this.rotted += rotted;
        return rotted;
    }

    private copy_elsewhere(replica: number, address: number,
        storages: readonly SimulatorStorage[]): boolean {
        const checksum = storages[replica]!.peek(Zone.grid, (address - 1) * this.block_size, 16);
        return grid_block_held_elsewhere(replica, address, checksum, storages, this.block_size);
    }
}

/** The size of the intact block at `address` on a disk, or 0 (none, or already bad). */
export function grid_block_intact_size(storage: SimulatorStorage, address: number,
    block_size: number): number {
    assert(address >= 1);
    const at = (address - 1) * block_size;
    if (!storage.readable(Zone.grid, at, header_size)) return 0;
    const header = storage.peek(Zone.grid, at, header_size);
    if (!header_checksum_valid(header, 0)) return 0;
    const size = u32_read(header, frame.size);
    if (size < header_size || size > block_size) return 0;
    if (!storage.readable(Zone.grid, at, size)) return 0;
    return body_checksum_valid(storage.peek(Zone.grid, at, size), 0) ? size : 0;
}

/** Whether a disk other than `replica`'s holds the block (address, checksum) intact. */
export function grid_block_held_elsewhere(replica: number, address: number,
    checksum: Uint8Array, storages: readonly SimulatorStorage[], block_size: number): boolean {
    const at = (address - 1) * block_size;
    for (let other = 0; other < storages.length; other++) {
        if (other === replica) continue;
        if (grid_block_intact_size(storages[other]!, address, block_size) === 0) continue;
        if (u128_equal(storages[other]!.peek(Zone.grid, at, 16), 0, checksum, 0)) return true;
    }
    return false;
}
