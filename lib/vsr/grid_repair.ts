// Grid repair (issue #13 item 2, internals.md §12 and §14): a grid block that a cluster replica
// reads back corrupt (bit rot, a latent sector error, a lost or misdirected write) is fetched
// from a peer by (address, checksum) and written back, and the read that needed it waits for it
// instead of failing. Today the grid is read only while the checkpoint is restored at startup
// (the ledger lives in memory between checkpoints), so the waiter is the Checkpointer.
//
// Every replica writes the same grid, block for block and address for address, for the same
// committed ops (lib/ledger/checkpoint.ts): a peer at the same checkpoint, or one checkpoint
// ahead (copy-on-write keeps the previous checkpoint's blocks until the next one is durable),
// holds the very block. The asker knows the checksum its parent reference stores, so it needs to
// trust nobody: a peer answers with the block it holds at that address only when its header
// checksum is the one asked for and both checksums verify, else it says nothing and the asker
// asks the next peer. A block is accepted only while it is wanted and its header checksum
// equals the wanted one (the validator has checked both checksums, so the body is the
// original too).
//
// Bounded: at most `wanted_max` blocks wanted at once (one per waiting buffer of the waiter);
// one round of request_blocks (block_requests_max blocks each) to one peer per firing of the
// repair timeout, the next round to the next peer, and the timeout backs off while blocks stay
// missing. At most serve_reads_max reads to answer peers at once; a request beyond them is
// dropped (the asker retries). No allocation after construction.
import assert from 'node:assert/strict';

import { block_request_size, block_requests_max, header_size } from './constants';
import { HeaderView, header_init, seal } from './header';
import { Command, frame, offsets } from './header_layout';
import type { MessagePool } from './message_pool';
import {
    body_checksum_valid, header_checksum_valid, u64_read, u64_write,
} from './prepare_header';
import type { ReplyRepairHost } from './reply_repair';
import { Timeout } from './timeout';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { Zone, sector_ceil } from '../storage/zones';

/** Ticks before the first round of requests, and the base of the backoff. */
export const grid_repair_ticks = 10;
/** The period backs off to grid_repair_ticks × 2^4 (1.6 s plus jitter) while blocks are missing. */
const backoff_exponent_max = 4;
/** Rounds to every peer without a wanted block before the repair counts as stalled. */
const stall_rounds = 4;
/** Blocks wanted at once at most: the Checkpointer's restore buffers (asserted there). */
export const grid_repair_wanted_max = 8;
/** Reads of our grid in flight to answer peers' request_blocks (storage operations). */
export const grid_repair_serve_reads_max = 2;

/** BlockRequest: checksum u128, address u64, reserved 8 bytes (header_layout.ts). */
const request_checksum = 0;
const request_address = 16;
const request_reserved = 24;
assert.equal(request_reserved + 8, block_request_size);

/** Whoever waits for a block: told once, with the block in `bytes[offset]`, to copy out now. */
export interface GridRepairWaiter {
    grid_block_repaired(tag: number, bytes: Uint8Array, offset: number): void;
}

/** What a waiter sees of the repair (the Checkpointer, lib/ledger/checkpoint.ts). */
export interface GridRepairQueue {
    attach(waiter: GridRepairWaiter): void;
    /** The block at `address` with header checksum checksum[offset..] is wanted for `tag`. */
    want(tag: number, address: number, checksum: Uint8Array, checksum_offset: number): void;
    /** The waiter gave up on `tag` (its restore failed for another reason). */
    cancel(tag: number): void;
}

/** The repair's needs of its replica: those of reply repair (frame, send, log) and its grid. */
export type GridRepairHost = Pick<ReplyRepairHost, 'pool' | 'random' | 'replica' |
    'replica_count' | 'release' | 'reply_repair_frame' | 'reply_repair_send' |
    'reply_repair_log'>;

export class GridRepair implements GridRepairQueue, StorageCompletionTarget {
    private readonly host: GridRepairHost;
    private readonly pool: MessagePool;
    private readonly storage: Storage;
    private readonly target: number;
    private readonly block_size: number;
    private readonly block_count: number;
    readonly timeout: Timeout;
    private waiter: GridRepairWaiter | null = null;

    /** Per wanted entry: the waiter's tag (-1: free), the address and the header checksum. */
    private readonly wanted_tag: Int32Array;
    private readonly wanted_address: Float64Array;
    private readonly wanted_checksum: Uint8Array;
    wanted_count = 0;
    private rounds = 0;
    /** Rounds since a wanted block last arrived (stalled: no peer seems to hold them). */
    private rounds_unanswered = 0;

    /** Per serve read: its message (-1: free), the asker, the address and the checksum. */
    private readonly serve_message = new Int32Array(grid_repair_serve_reads_max).fill(-1);
    private readonly serve_replica = new Uint8Array(grid_repair_serve_reads_max);
    private readonly serve_checksum = new Uint8Array(16 * grid_repair_serve_reads_max);

    /** Blocks asked for (one per block per round), and wanted blocks that arrived. */
    blocks_requested = 0;
    blocks_repaired = 0;
    /** Blocks sent to peers; asked for but not held intact here; dropped while reads were busy. */
    blocks_served = 0;
    blocks_not_held = 0;
    blocks_serve_busy = 0;
    /** Block requests refused as malformed, and blocks received that nobody wanted. */
    requests_refused = 0;
    blocks_unwanted = 0;

    private readonly build_view = new HeaderView();
    private readonly check_view = new HeaderView();

    /** Built by the replica's constructor (startup: registers a storage target). */
    constructor(host: GridRepairHost, storage: Storage) {
        assert(host.replica_count >= 1 && host.replica >= 0 &&
            host.replica < host.replica_count);
        const config = storage.layout.config;
        this.host = host;
        this.pool = host.pool;
        this.storage = storage;
        this.block_size = config.block_size;
        this.block_count = config.grid_block_count;
        assert(this.block_size % 512 === 0 && this.block_size >= header_size);
        assert(this.block_size <= this.pool.message_size_max,
            'grid repair: a block must fit in a message');
        this.timeout = new Timeout('grid_repair', grid_repair_ticks, host.random,
            backoff_exponent_max);
        this.wanted_tag = new Int32Array(grid_repair_wanted_max).fill(-1);
        this.wanted_address = new Float64Array(grid_repair_wanted_max);
        this.wanted_checksum = new Uint8Array(16 * grid_repair_wanted_max);
        this.target = storage.target_register(this);
    }

    attach(waiter: GridRepairWaiter): void {
        assert(this.waiter === null, 'grid repair: one waiter');
        this.waiter = waiter;
    }

    want(tag: number, address: number, checksum: Uint8Array, checksum_offset: number): void {
        assert(this.host.replica_count > 1, 'a single replica has no peer to fetch a block from');
        assert(this.waiter !== null && tag >= 0);
        assert(address >= 1 && address <= this.block_count);
        assert.equal(this.entry_of_tag(tag), -1, 'grid repair: a tag wanted twice');
        const entry = this.entry_of_tag(-1);
        assert(entry !== -1, 'grid repair: more blocks wanted than waiters');
        this.wanted_tag[entry] = tag;
        this.wanted_address[entry] = address;
        this.wanted_checksum.set(checksum.subarray(checksum_offset, checksum_offset + 16),
            entry * 16);
        this.wanted_count += 1;
        assert(this.wanted_count <= this.wanted_tag.length);
        if (!this.timeout.ticking) this.timeout.start();
        this.host.reply_repair_log(`replica ${this.host.replica}: grid block address ${address} ` +
            'corrupt or unreadable: fetching it from a peer (request_blocks)');
    }

    cancel(tag: number): void {
        const entry = this.entry_of_tag(tag);
        if (entry === -1) return;
        this.entry_free(entry);
    }

    /** The wanted block of `tag` still missing (tests). */
    is_wanted(tag: number): boolean {
        return this.entry_of_tag(tag) !== -1;
    }

    /** Addresses and checksums still wanted (the simulator checks that a peer holds them). */
    wanted_entry(entry: number): { address: number; checksum: Uint8Array } | null {
        assert(entry >= 0 && entry < this.wanted_tag.length);
        if (this.wanted_tag[entry] === -1) return null;
        return {
            address: this.wanted_address[entry]!,
            checksum: this.wanted_checksum.subarray(entry * 16, entry * 16 + 16),
        };
    }

    get wanted_max(): number { return this.wanted_tag.length; }

    /**
     * Every peer was asked several rounds in a row and none sent a wanted block: they may no
     * longer hold it (freed when their next checkpoint became durable). State sync takes over.
     */
    get stalled(): boolean {
        return this.wanted_count > 0 && this.rounds_unanswered >= stall_rounds;
    }

    private entry_of_tag(tag: number): number {
        for (let entry = 0; entry < this.wanted_tag.length; entry++) {
            if (this.wanted_tag[entry] === tag) return entry;
        }
        return -1;
    }

    private entry_free(entry: number): void {
        assert(this.wanted_tag[entry] !== -1);
        this.wanted_tag[entry] = -1;
        this.wanted_count -= 1;
        assert(this.wanted_count >= 0);
        if (this.wanted_count === 0) this.timeout.stop();
    }

    /**
     * Every tick of a cluster replica (startup included): a round when the timeout fires. A
     * round asks every peer, each starting at another wanted block: a peer serves only
     * grid_repair_serve_reads_max reads at once (it drops the rest), so a restore that lacks
     * many blocks (a state sync lacks most) fetches from all peers in parallel. Duplicates are
     * harmless: a block is taken only while wanted.
     */
    tick(): void {
        if (this.wanted_count === 0) return;
        this.timeout.tick();
        if (!this.timeout.fired) return;
        this.timeout.backoff();
        this.rounds += 1;
        this.rounds_unanswered += 1;
        const peers = this.host.replica_count - 1;
        for (let index = 0; index < peers; index++) {
            const peer = (this.host.replica + 1 + (this.rounds + index) % peers) %
                this.host.replica_count;
            assert(peer !== this.host.replica);
            if (!this.round_send(peer, index * grid_repair_serve_reads_max)) return;
        }
    }

    /** Asks `peer` for every wanted block, from entry `first` on (wrapping). */
    private round_send(peer: number, first: number): boolean {
        const entries = this.wanted_tag.length;
        let message = -1;
        let count = 0;
        for (let step = 0; step < entries; step++) {
            const entry = (first + step) % entries;
            if (this.wanted_tag[entry] === -1) continue;
            if (message === -1) {
                message = this.pool.acquire();
                if (message === -1) return false; // No free message: the next round retries.
                count = 0;
            }
            const at = this.pool.offset(message) + header_size + count * block_request_size;
            const bytes = this.pool.bytes;
            bytes.fill(0, at, at + block_request_size);
            bytes.set(this.wanted_checksum.subarray(entry * 16, entry * 16 + 16),
                at + request_checksum);
            u64_write(bytes, at + request_address, this.wanted_address[entry]!);
            count += 1;
            this.blocks_requested += 1;
            if (count === block_requests_max) {
                this.request_send(message, count, peer);
                message = -1;
            }
        }
        if (message !== -1) this.request_send(message, count, peer);
        return true;
    }

    private request_send(message: number, count: number, peer: number): void {
        assert(count >= 1 && count <= block_requests_max);
        const header = header_init(this.build_view, this.pool.bytes, this.pool.offset(message),
            Command.request_blocks, header_size + count * block_request_size, this.host.release);
        this.host.reply_repair_frame(header);
        seal(header);
        this.host.reply_repair_send(peer, message);
        this.pool.unref(message);
    }

    /**
     * A peer's request_blocks (validated: 1..block_requests_max whole BlockRequests). Each
     * request's fields are checked here; a malformed one is refused with a reason (logged), the
     * others are answered from our grid when a read is free.
     */
    on_request_blocks(request: HeaderView): void {
        assert.equal(request.command, Command.request_blocks);
        const count = (request.size - header_size) / block_request_size;
        assert(Number.isInteger(count) && count >= 1 && count <= block_requests_max);
        const bytes = request.bytes;
        for (let index = 0; index < count; index++) {
            const at = request.offset + header_size + index * block_request_size;
            const reason = this.request_reason(bytes, at);
            if (reason !== null) {
                this.requests_refused += 1;
                this.host.reply_repair_log(`replica ${this.host.replica}: request_blocks from ` +
                    `replica ${request.replica} refused: ${reason}`);
                continue;
            }
            this.serve(request.replica, bytes, at);
        }
    }

    /** Why a BlockRequest is malformed, or null. */
    private request_reason(bytes: Uint8Array, at: number): string | null {
        for (let index = 0; index < 8; index++) {
            if (bytes[at + request_reserved + index] !== 0) return 'reserved bytes are not zero';
        }
        const address = u64_read(bytes, at + request_address);
        if (address === 0) return 'block address 0';
        // u64_read gives -1 past the safe integers: beyond any grid too.
        if (address < 0 || address > this.block_count) {
            return `block address ${address} beyond the grid (${this.block_count} blocks)`;
        }
        return null;
    }

    private serve(replica: number, bytes: Uint8Array, at: number): void {
        assert(replica < this.host.replica_count && replica !== this.host.replica);
        const slot = this.serve_message.indexOf(-1);
        const message = slot === -1 ? -1 : this.pool.acquire();
        if (message === -1) {
            this.blocks_serve_busy += 1;
            return;
        }
        this.serve_message[slot] = message;
        this.serve_replica[slot] = replica;
        this.serve_checksum.set(bytes.subarray(at + request_checksum, at + request_checksum + 16),
            slot * 16);
        const address = u64_read(bytes, at + request_address);
        this.storage.read(this.target, slot, Zone.grid, (address - 1) * this.block_size,
            this.pool.offset(message), sector_ceil(this.block_size));
    }

    /** A serve read completed: the block goes out only if it is exactly the one asked for. */
    storage_complete(tag: number, result: number): void {
        assert(tag >= 0 && tag < grid_repair_serve_reads_max);
        const message = this.serve_message[tag]!;
        assert(message !== -1, 'grid repair: a read completion with none in flight');
        this.serve_message[tag] = -1;
        if (result >= 0 && this.block_intact(message, tag)) {
            this.blocks_served += 1;
            this.host.reply_repair_send(this.serve_replica[tag]!, message);
        } else {
            this.blocks_not_held += 1;
        }
        this.pool.unref(message);
    }

    /** Whether the block read into `message` is whole and has the checksum asked for. */
    private block_intact(message: number, slot: number): boolean {
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        const header = this.check_view.attach(bytes, offset);
        if (!header.equal16(frame.checksum, this.serve_checksum, slot * 16)) return false;
        if (!header_checksum_valid(bytes, offset)) return false;
        // The checksum covers the rest: these hold for every block we write, and the asker's
        // validator checks them again.
        if (header.command !== Command.block || header.release === 0) return false;
        if (header.size < header_size || header.size > this.block_size) return false;
        return body_checksum_valid(bytes, offset);
    }

    /**
     * A block from a peer (validated: both checksums, a nonzero address). Taken only while
     * wanted with exactly its header checksum; anything else (late, duplicated, forged, of
     * another checkpoint) changes nothing.
     */
    on_block(message: number): void {
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        const block = this.check_view.attach(bytes, offset);
        assert.equal(block.command, Command.block);
        const address = block.u64(offsets.block.address);
        let entry = -1;
        for (let index = 0; index < this.wanted_tag.length; index++) {
            if (this.wanted_tag[index] === -1 || this.wanted_address[index] !== address) continue;
            if (block.equal16(frame.checksum, this.wanted_checksum, index * 16)) entry = index;
        }
        if (entry === -1 || block.size > this.block_size) {
            this.blocks_unwanted += 1;
            return;
        }
        const tag = this.wanted_tag[entry]!;
        this.entry_free(entry);
        this.blocks_repaired += 1;
        this.rounds_unanswered = 0;
        // Progress: the next round need not wait out a backoff grown while peers were silent.
        if (this.wanted_count > 0) this.timeout.start();
        this.waiter!.grid_block_repaired(tag, bytes, offset);
    }
}
