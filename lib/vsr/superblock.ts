// The superblock: the replica's local root, the one state that cannot be repaired from peers. Four
// copies, each one sector of fields plus a reserved sector for view headers, with a checksum, a
// sequence number and the checksum of the previous version (a hash chain across versions). It is
// written only at format, checkpoint and view change; never per request.
//
// An update writes the copies one after another (never in parallel, so one fault burst is less
// likely to hit several), reads them all back and requires a verify quorum of 3 before the new
// version counts. Open reads all copies, groups the valid ones by checksum, and takes the newest
// version held by an open quorum of 2 distinct copies (a quorum, not "highest sequence wins",
// because a misdirected write can plant a lone copy of anything). Stale, torn or misdirected
// copies are then rewritten in place with the same sequence.
import assert from 'node:assert/strict';

import { checksum, checksum_equal } from './checksum';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import { u128_equal, u32_read, u32_write, u64_read, u64_write } from './prepare_header';
import { Zone, sector_size, superblock_copies, superblock_copy_size } from '../storage/zones';
import type { StorageConfig } from '../storage/zones';

const quorum_open = 2;
const quorum_verify = 3;
/**
 * The data file's format version. A file of another version is refused by name at open (never
 * misread): bump it with every change to a zone's layout or to what the superblock records.
 * Version 2 records every format-time setting (the data file knows its shape).
 */
export const superblock_version = 3;

// Field offsets inside one copy. The checksum covers [18, copy size): everything but itself and
// the copy index, so all copies are byte-identical apart from `copy`.
const o_checksum = 0;
const o_copy = 16;
const checksum_from = 18;
const o_version = 32;
const o_cluster = 40;
const o_sequence = 56;
const o_parent = 64;
const o_replica = 80;
const o_replica_count = 81;
const o_checkpoint_id = 96;
const o_checkpoint_op = 112;
const o_commit_max = 120;
const o_view = 128;
const o_log_view = 132;
const o_storage_size = 136;
/** The grid address of the checkpoint's root block (0: no root, the empty state at op 0). */
const o_checkpoint_root_address = 144;
// The format-time settings, recorded at format and never changed: the zones' shape (StorageConfig)
// and the ledger's capacity. `start` takes them from here.
const o_slot_count = 152;
const o_message_size_max = 156;
const o_clients_max = 160;
const o_block_size = 164;
const o_grid_block_count = 168;
const o_accounts_max = 176;
const o_transfers_max = 180;
/** The head op of the view's log when log_view began (see VsrState.log_view_op). */
const o_log_view_op = 184;
/**
 * A state sync (docs/vsr.md §16): the checkpoint was adopted from a peer at op sync_op_max (the
 * checkpoint op then), when our own log ended at sync_op_min. Our WAL headers in between are not
 * the cluster's log; both are zero again from the next checkpoint on.
 */
const o_sync_op_min = 192;
const o_sync_op_max = 200;
/**
 * The lowest view this replica may vote in (start_view_change, do_view_change): 0, except for a
 * data file rebuilt by `ringledger recover`, which records the cluster's view + 2. Written at
 * format only; every update copies it.
 */
const o_view_vote_min = 248;
// The fields live in the copy's first sector (the second is reserved for view headers).
assert(o_log_view_op + 8 <= o_sync_op_min && o_sync_op_max + 8 <= o_view_vote_min);
assert(o_view_vote_min + 4 <= sector_size && 2 * sector_size === superblock_copy_size);
// Any open quorum intersects any verify quorum: a verified version is always seen at open.
assert(quorum_open + quorum_verify > superblock_copies);

/** The ledger capacity a data file is formatted for (0 where a test formats storage only). */
export interface FormatCapacity {
    accounts_max: number;
    transfers_max: number;
}

/** The StorageConfig fields, in the order they are recorded (checked against the layout). */
const config_fields = [
    ['slot_count', o_slot_count],
    ['message_size_max', o_message_size_max],
    ['clients_max', o_clients_max],
    ['block_size', o_block_size],
    ['grid_block_count', o_grid_block_count],
] as const;

/** The VSR state held by the superblock (one instance, reused; never allocated per update). */
export class VsrState {
    /** The checkpoint root block's header checksum (all zero with no root). */
    readonly checkpoint_id: Uint8Array = new Uint8Array(16);
    checkpoint_op = 0;
    checkpoint_root_address = 0;
    commit_max = 0;
    view = 0;
    log_view = 0;
    /**
     * The head of our log when log_view became our view: every op above it in our log was
     * prepared in log_view itself. A restart trusts an op above it only with that view, so a
     * slot a start_view cut (and that no write replaced yet) is never taken back.
     */
    log_view_op = 0;
    /** See o_view_vote_min: views below it saw us before a data-file loss we cannot recall. */
    view_vote_min = 0;
    /** A state sync adopted this checkpoint (sync_op_max = checkpoint_op, else both zero). */
    sync_op_min = 0;
    sync_op_max = 0;
}

/**
 * A data file rebuilt by `ringledger recover` after the original was lost: `view` is the
 * cluster's view once the recovery's requests committed (the replica starts there, waiting for a
 * start_view), and the replica votes only in views from view + 2 on (TigerBeetle's rule: the lost
 * replica may have voted in view + 1 and cannot remember what it promised there).
 */
export interface FormatRecovery {
    view: number;
}

export interface SuperBlockListener {
    /** Called once when format, open or update finishes; `error` null means success. */
    superblock_done(error: StorageRefusal | null): void;
}

const enum Phase { idle, write, verify, open_read, repair }

export class SuperBlock implements StorageCompletionTarget {
    private readonly storage: Storage;
    private readonly listener: SuperBlockListener;
    /** Who the running update reports to (a checkpoint's caller or a view change's). */
    private update_listener: SuperBlockListener;
    private readonly target: number;
    private readonly staging_offset: number;
    private readonly reading_offset: number;
    /** Views made once at startup, so no view object is created per I/O. */
    private readonly staging_view: Uint8Array;
    private readonly reading_views: Uint8Array[] = [];
    /** The last durable version, outside the arena (only this module reads it). */
    private readonly working: Uint8Array = new Uint8Array(superblock_copy_size);
    private readonly copy_ok: Uint8Array = new Uint8Array(superblock_copies);
    private phase = Phase.idle;
    private copy = 0;
    private opened = false;
    /** Copies rewritten by the last open (tests and logs). */
    repaired_count = 0;

    constructor(storage: Storage, listener: SuperBlockListener) {
        this.storage = storage;
        this.listener = listener;
        this.update_listener = listener;
        this.target = storage.target_register(this);
        this.staging_offset = storage.arena.allocate(superblock_copy_size);
        this.reading_offset = storage.arena.allocate(superblock_copies * superblock_copy_size);
        const bytes = storage.arena.bytes;
        this.staging_view = bytes.subarray(this.staging_offset,
            this.staging_offset + superblock_copy_size);
        for (let copy = 0; copy < superblock_copies; copy++) {
            const offset = this.reading_offset + copy * superblock_copy_size;
            this.reading_views.push(bytes.subarray(offset, offset + superblock_copy_size));
        }
        // Copies are read and written with O_DIRECT straight from the arena.
        assert(this.staging_offset % sector_size === 0 && this.reading_offset % sector_size === 0);
        assert.equal(this.reading_views.length, superblock_copies);
    }

    get is_open(): boolean { return this.opened; }
    get busy(): boolean { return this.phase !== Phase.idle; }
    get sequence(): number { return u64_read(this.working, o_sequence); }
    get replica(): number { return this.working[o_replica]!; }
    get replica_count(): number { return this.working[o_replica_count]!; }
    get storage_size(): number { return u64_read(this.working, o_storage_size); }
    get accounts_max(): number { return u32_read(this.working, o_accounts_max); }
    get transfers_max(): number { return u32_read(this.working, o_transfers_max); }
    cluster_bytes(): Uint8Array { return this.working.subarray(o_cluster, o_cluster + 16); }

    /** The storage shape recorded at format. */
    storage_config(): StorageConfig {
        assert(this.opened);
        const bytes = this.working;
        return {
            slot_count: u32_read(bytes, o_slot_count),
            message_size_max: u32_read(bytes, o_message_size_max),
            clients_max: u32_read(bytes, o_clients_max),
            block_size: u32_read(bytes, o_block_size),
            grid_block_count: u64_read(bytes, o_grid_block_count),
        };
    }

    /** A refusal when the file's recorded shape is not the layout we were built with. */
    layout_refusal(): StorageRefusal | null {
        const mismatch = this.layout_mismatch();
        if (mismatch === null && this.storage_size === this.storage.layout.total_size_bytes) {
            return null;
        }
        return new StorageRefusal('superblock', -1, -1, `the data file's shape differs from ` +
            `the one this open was sized for (${mismatch ?? `${this.storage_size} bytes of ` +
            `zones in the file, ${this.storage.layout.total_size_bytes} here`}); nothing was ` +
            'changed');
    }

    /**
     * How the storage layout we were built with differs from the file's recorded shape, setting
     * by setting with both values, or null when they agree.
     */
    layout_mismatch(): string | null {
        const recorded = this.storage_config();
        const ours = this.storage.layout.config;
        const differences: string[] = [];
        for (const [name] of config_fields) {
            if (recorded[name] !== ours[name]) {
                differences.push(`${name} ${recorded[name]} in the file, ${ours[name]} here`);
            }
        }
        return differences.length === 0 ? null : differences.join('; ');
    }
    checksum_bytes(): Uint8Array { return this.working.subarray(o_checksum, o_checksum + 16); }

    /** Copies the durable VSR state into `state`. */
    vsr_state_read(state: VsrState): void {
        assert(this.opened);
        state.checkpoint_id.set(this.working.subarray(o_checkpoint_id, o_checkpoint_id + 16));
        state.checkpoint_op = u64_read(this.working, o_checkpoint_op);
        state.checkpoint_root_address = u64_read(this.working, o_checkpoint_root_address);
        state.commit_max = u64_read(this.working, o_commit_max);
        state.view = u32_read(this.working, o_view);
        state.log_view = u32_read(this.working, o_log_view);
        state.log_view_op = u64_read(this.working, o_log_view_op);
        state.view_vote_min = u32_read(this.working, o_view_vote_min);
        state.sync_op_min = u64_read(this.working, o_sync_op_min);
        state.sync_op_max = u64_read(this.working, o_sync_op_max);
        // What open's state_check and update's asserts guarantee of the durable version.
        assert(state.checkpoint_op <= state.commit_max && state.log_view <= state.view);
        assert((state.checkpoint_root_address === 0) === (state.checkpoint_op === 0));
        assert(state.sync_op_max === 0 || (state.sync_op_max === state.checkpoint_op &&
            state.sync_op_min < state.sync_op_max));
    }

    /** Sequence 1: the only version without a parent. Records every format-time setting. */
    format(cluster: Uint8Array, replica: number, replica_count: number,
        capacity: FormatCapacity, recovery: FormatRecovery | null = null): void {
        assert(this.phase === Phase.idle && !this.opened);
        assert(cluster.length === 16);
        assert(replica_count >= 1 && replica_count <= 6 && replica >= 0 && replica < replica_count);
        // Only a cluster that commits without this replica can vouch for what it lost.
        assert(recovery === null || replica_count >= 3);
        const staging = this.staging();
        staging.fill(0);
        u32_write(staging, o_version, superblock_version);
        staging.set(cluster, o_cluster);
        u64_write(staging, o_sequence, 1);
        staging[o_replica] = replica;
        staging[o_replica_count] = replica_count;
        u64_write(staging, o_storage_size, this.storage.layout.total_size_bytes);
        const config = this.storage.layout.config;
        for (const [name, offset] of config_fields) {
            if (name === 'grid_block_count') u64_write(staging, offset, config[name]);
            else u32_write(staging, offset, config[name]);
        }
        assert(Number.isInteger(capacity.accounts_max) && capacity.accounts_max >= 0);
        assert(Number.isInteger(capacity.transfers_max) && capacity.transfers_max >= 0);
        u32_write(staging, o_accounts_max, capacity.accounts_max);
        u32_write(staging, o_transfers_max, capacity.transfers_max);
        if (recovery !== null) {
            assert(Number.isInteger(recovery.view) && recovery.view >= 0);
            assert(recovery.view + 2 <= 0xffffffff);
            u32_write(staging, o_view, recovery.view);
            u32_write(staging, o_view_vote_min, recovery.view + 2);
        }
        this.start_write();
    }

    /**
     * A checkpoint (must advance checkpoint_op) or a view change (must not move it). The
     * invariants of docs/data-file.md §4.1 are asserted: a caller breaking them is a bug.
     */
    update(state: VsrState, checkpoint: boolean,
        listener: SuperBlockListener = this.listener): void {
        assert(this.phase === Phase.idle && this.opened);
        this.update_listener = listener;
        const old_checkpoint_op = u64_read(this.working, o_checkpoint_op);
        assert(state.checkpoint_op <= state.commit_max, 'checkpoint op beyond commit_max');
        assert(state.log_view <= state.view, 'log_view beyond view');
        assert(state.view >= u32_read(this.working, o_view), 'view went backwards');
        assert(state.log_view >= u32_read(this.working, o_log_view), 'log_view went backwards');
        assert.equal(state.view_vote_min, u32_read(this.working, o_view_vote_min),
            'view_vote_min is set at format only');
        assert(state.commit_max >= u64_read(this.working, o_commit_max), 'commit_max backwards');
        if (checkpoint) assert(state.checkpoint_op > old_checkpoint_op, 'checkpoint must advance');
        if (!checkpoint) assert.equal(state.checkpoint_op, old_checkpoint_op);
        assert((state.checkpoint_root_address === 0) === (state.checkpoint_op === 0),
            'a checkpoint beyond op 0 names its root block');
        assert(state.checkpoint_root_address <= this.storage.layout.config.grid_block_count,
            'the checkpoint root is a grid block');
        assert(this.sequence >= 1, 'an open superblock holds a version');
        const staging = this.staging();
        staging.set(this.working);
        u64_write(staging, o_sequence, this.sequence + 1);
        staging.set(this.working.subarray(o_checksum, o_checksum + 16), o_parent);
        staging.set(state.checkpoint_id, o_checkpoint_id);
        u64_write(staging, o_checkpoint_op, state.checkpoint_op);
        u64_write(staging, o_checkpoint_root_address, state.checkpoint_root_address);
        u64_write(staging, o_commit_max, state.commit_max);
        u32_write(staging, o_view, state.view);
        u32_write(staging, o_log_view, state.log_view);
        u64_write(staging, o_log_view_op, state.log_view_op);
        // A sync names the checkpoint it adopted; the next checkpoint (or a sync) replaces it.
        const synced = state.sync_op_max !== 0 && state.sync_op_max === state.checkpoint_op;
        assert(!synced || state.sync_op_min < state.sync_op_max, 'a sync moves forward');
        u64_write(staging, o_sync_op_min, synced ? state.sync_op_min : 0);
        u64_write(staging, o_sync_op_max, synced ? state.sync_op_max : 0);
        this.start_write();
    }

    /** Quorum read of all copies, then in-place repair of the copies that are not the best. */
    open(): void {
        assert(this.phase === Phase.idle && !this.opened);
        this.phase = Phase.open_read;
        this.repaired_count = 0;
        this.copy = 0;
        this.read_copy(0);
    }

    storage_complete(tag: number, result: number): void {
        assert.equal(tag, this.copy);
        assert(this.phase !== Phase.idle, 'superblock: completion while idle');
        // A whole copy or -errno: a short transfer is reported as an I/O error.
        assert(result === superblock_copy_size || result < 0);
        const phase = this.phase;
        if (phase === Phase.write || phase === Phase.repair) {
            // A failed write leaves that copy stale; the read-back or the next open sees it.
            this.after_write();
        } else {
            this.copy_ok[this.copy] = result === superblock_copy_size ? 1 : 0;
            this.after_read();
        }
    }

    private staging(): Uint8Array {
        return this.staging_view;
    }

    private reading(copy: number): Uint8Array {
        assert(copy >= 0 && copy < superblock_copies);
        return this.reading_views[copy]!;
    }

    private start_write(): void {
        assert.equal(this.phase, Phase.idle);
        const staging = this.staging();
        assert.equal(u32_read(staging, o_version), superblock_version);
        assert(u64_read(staging, o_sequence) >= 1);
        checksum(staging, checksum_from, superblock_copy_size - checksum_from, staging, o_checksum);
        this.phase = Phase.write;
        this.copy = 0;
        this.write_copy(0);
    }

    private write_copy(copy: number): void {
        assert(copy >= 0 && copy < superblock_copies);
        assert(this.phase === Phase.write || this.phase === Phase.repair);
        const staging = this.staging();
        staging[o_copy] = copy;
        staging[o_copy + 1] = 0;
        this.storage.write(this.target, copy, Zone.superblock, copy * superblock_copy_size,
            this.staging_offset, superblock_copy_size);
    }

    private read_copy(copy: number): void {
        assert(copy >= 0 && copy < superblock_copies);
        assert(this.phase === Phase.verify || this.phase === Phase.open_read);
        this.storage.read(this.target, copy, Zone.superblock, copy * superblock_copy_size,
            this.reading_offset + copy * superblock_copy_size, superblock_copy_size);
    }

    private after_write(): void {
        assert(this.phase === Phase.write || this.phase === Phase.repair);
        if (this.phase === Phase.repair) {
            this.repaired_count += 1;
            this.repair_next();
            return;
        }
        if (this.copy + 1 < superblock_copies) {
            this.copy += 1;
            this.write_copy(this.copy);
            return;
        }
        this.phase = Phase.verify;
        this.copy = 0;
        this.read_copy(0);
    }

    private after_read(): void {
        assert(this.phase === Phase.verify || this.phase === Phase.open_read);
        if (this.copy + 1 < superblock_copies) {
            this.copy += 1;
            this.read_copy(this.copy);
            return;
        }
        if (this.phase === Phase.verify) this.verify_finish();
        else this.open_finish();
    }

    /** After an update: at least `quorum_verify` copies must read back as exactly the staging. */
    private verify_finish(): void {
        assert.equal(this.phase, Phase.verify);
        const staging = this.staging();
        // Distinct copy indices count, as at open: a misdirected copy still holds the version.
        let matching = 0;
        for (let copy = 0; copy < superblock_copies && matching === 0; copy++) {
            if (this.copy_valid(copy) && u128_equal(this.reading(copy), o_checksum, staging,
                o_checksum)) matching = group_count(this, copy);
        }
        if (matching < quorum_verify) {
            this.finish(new StorageRefusal('superblock', -1, -1,
                `failed verification after writing: ${matching} of ${superblock_copies} ` +
                `copies read back intact, ${quorum_verify} needed`));
            return;
        }
        assert(matching <= superblock_copies);
        // Versions chain: format writes sequence 1, each update the next, naming its parent.
        assert.equal(u64_read(staging, o_sequence), this.opened ? this.sequence + 1 : 1);
        assert(!this.opened || u128_equal(staging, o_parent, this.working, o_checksum));
        this.working.set(staging);
        this.opened = true;
        this.finish(null);
    }

    private copy_valid(copy: number): boolean {
        return this.copy_intact(copy) &&
            u32_read(this.reading(copy), o_version) === superblock_version;
    }

    private copy_intact(copy: number): boolean {
        const bytes = this.reading(copy);
        return this.copy_ok[copy] === 1 &&
            checksum_equal(bytes, checksum_from, superblock_copy_size - checksum_from,
                bytes, o_checksum);
    }

    /** The version of an intact copy written by another format version, or 0 if none. */
    private version_other(): number {
        for (let copy = 0; copy < superblock_copies; copy++) {
            if (!this.copy_intact(copy)) continue;
            const version = u32_read(this.reading(copy), o_version);
            if (version !== superblock_version) return version;
        }
        return 0;
    }

    private finish(error: StorageRefusal | null): void {
        assert(this.phase !== Phase.idle);
        this.phase = Phase.idle;
        const listener = this.update_listener;
        this.update_listener = this.listener;
        listener.superblock_done(error);
    }

    private open_finish(): void {
        assert.equal(this.phase, Phase.open_read);
        assert(!this.opened);
        const best = quorum_best(this);
        assert(best < superblock_copies);
        const version = this.version_other();
        if (best < 0 && version !== 0) {
            this.finish(new StorageRefusal('superblock', -1, -1, `the data file has format ` +
                `version ${version}, and this release reads version ${superblock_version} only: ` +
                'open it with the release that wrote it (a newer file), or format a new file ' +
                'and load the data into it (an older file); nothing was changed'));
            return;
        }
        if (best < 0) {
            const reason = best === -1 ? 'no valid copy found (not formatted, or all corrupt)'
                : 'quorum lost: no version is held by 2 intact copies';
            this.finish(new StorageRefusal('superblock', -1, -1, reason));
            return;
        }
        const refusal = state_check(this.reading(best)) ?? this.quorum_check_others(best);
        if (refusal !== null) {
            this.finish(refusal);
            return;
        }
        assert(this.copy_valid(best));
        this.working.set(this.reading(best));
        this.opened = true;
        assert(this.sequence >= 1);
        this.staging().set(this.working);
        this.phase = Phase.repair;
        this.repair_next();
    }

    /** Fork and skipped-parent checks against each other valid version (docs/data-file.md §4.4). */
    private quorum_check_others(best: number): StorageRefusal | null {
        assert(this.copy_valid(best));
        const winner = this.reading(best);
        const sequence = u64_read(winner, o_sequence);
        for (let copy = 0; copy < superblock_copies; copy++) {
            if (!this.copy_valid(copy)) continue;
            const other = this.reading(copy);
            if (u128_equal(other, o_checksum, winner, o_checksum)) continue;
            if (!u128_equal(other, o_cluster, winner, o_cluster) ||
                other[o_replica] !== winner[o_replica]) continue;
            const other_sequence = u64_read(other, o_sequence);
            let reason = '';
            if (other_sequence === sequence) reason = 'fork: two versions with one sequence';
            if (other_sequence > sequence + 1) reason = 'a parent version was skipped';
            if (other_sequence + 1 === sequence &&
                !u128_equal(winner, o_parent, other, o_checksum)) {
                reason = 'the newest version does not chain to its parent';
            }
            if (other_sequence + 1 === sequence && !vsr_monotonic(other, winner)) {
                reason = 'VSR state went backwards between versions';
            }
            if (reason !== '') return new StorageRefusal('superblock', -1, copy, reason);
        }
        return null;
    }

    /**
     * Rewrites, one at a time, each copy that does not hold the working version in its own slot.
     * Empty or stale slots go first and misdirected duplicates last, so that a torn repair write
     * never removes the last good copy of the working version.
     */
    private repair_next(): void {
        assert(this.phase === Phase.repair && this.opened);
        for (let pass = 0; pass < 2; pass++) {
            for (let copy = 0; copy < superblock_copies; copy++) {
                if (this.copy_repair_pass(copy) !== pass) continue;
                this.copy_ok[copy] = 1;
                this.reading(copy).set(this.working);
                this.reading(copy)[o_copy] = copy;
                this.copy = copy;
                this.write_copy(copy);
                return;
            }
        }
        this.finish(null);
    }

    /** -1: holds the working version already; 0: empty or stale; 1: a misdirected duplicate. */
    private copy_repair_pass(copy: number): number {
        if (!this.copy_valid(copy)) return 0;
        const bytes = this.reading(copy);
        if (!u128_equal(bytes, o_checksum, this.working, o_checksum)) return 0;
        return bytes[o_copy] === copy ? -1 : 1;
    }

    /** Test and quorum helper: the copy index recorded in a read copy, normalised. */
    copy_index_of(copy: number): number {
        assert(copy >= 0 && copy < superblock_copies);
        const recorded = this.reading(copy)[o_copy]!;
        return recorded < superblock_copies ? recorded : copy;
    }

    copy_is_valid(copy: number): boolean { return this.copy_valid(copy); }
    copy_bytes(copy: number): Uint8Array { return this.reading(copy); }
}

/** The docs/data-file.md §4.1 invariants of one version read from disk: a refusal, not a crash. */
function state_check(bytes: Uint8Array): StorageRefusal | null {
    let reason = '';
    const replica_count = bytes[o_replica_count]!;
    if (replica_count < 1 || replica_count > 6 || bytes[o_replica]! >= replica_count) {
        reason = 'replica index or count out of range';
    }
    if (u64_read(bytes, o_checkpoint_op) > u64_read(bytes, o_commit_max)) {
        reason = 'checkpoint op beyond commit_max';
    }
    if (u32_read(bytes, o_log_view) > u32_read(bytes, o_view)) reason = 'log_view beyond view';
    const root = u64_read(bytes, o_checkpoint_root_address);
    if (root < 0 || (root === 0) !== (u64_read(bytes, o_checkpoint_op) === 0)) {
        reason = 'checkpoint root address inconsistent with the checkpoint op';
    }
    const sync_op_max = u64_read(bytes, o_sync_op_max);
    if (sync_op_max !== 0 && (sync_op_max !== u64_read(bytes, o_checkpoint_op) ||
        u64_read(bytes, o_sync_op_min) >= sync_op_max)) {
        reason = 'state sync range inconsistent with the checkpoint op';
    }
    if (sync_op_max === 0 && u64_read(bytes, o_sync_op_min) !== 0) {
        reason = 'state sync range inconsistent with the checkpoint op';
    }
    if (u64_read(bytes, o_sequence) < 1) reason = 'sequence 0';
    return reason === '' ? null : new StorageRefusal('superblock', -1, -1, reason);
}

function vsr_monotonic(old: Uint8Array, next: Uint8Array): boolean {
    return u32_read(next, o_view) >= u32_read(old, o_view) &&
        u32_read(next, o_log_view) >= u32_read(old, o_log_view) &&
        u64_read(next, o_commit_max) >= u64_read(old, o_commit_max) &&
        u64_read(next, o_checkpoint_op) >= u64_read(old, o_checkpoint_op) &&
        next[o_replica_count] === old[o_replica_count];
}

/**
 * The representative copy of the best version: valid groups (>= 2 distinct copy indices) first,
 * then the highest sequence, then more copies, then the lower checksum (deterministic). Returns -1
 * when no copy is valid, -2 when the best version lacks an open quorum.
 */
function quorum_best(superblock: SuperBlock): number {
    let best = -1;
    let best_count = 0;
    for (let copy = 0; copy < superblock_copies; copy++) {
        if (!superblock.copy_is_valid(copy)) continue;
        const count = group_count(superblock, copy);
        if (best < 0 || group_better(superblock, copy, count, best, best_count)) {
            best = copy;
            best_count = count;
        }
    }
    if (best < 0) return -1;
    assert(best_count >= 1 && best_count <= superblock_copies);
    return best_count >= quorum_open ? best : -2;
}

function group_count(superblock: SuperBlock, copy: number): number {
    assert(superblock.copy_is_valid(copy));
    let members = 0;
    const bytes = superblock.copy_bytes(copy);
    for (let other = 0; other < superblock_copies; other++) {
        if (!superblock.copy_is_valid(other)) continue;
        if (!u128_equal(superblock.copy_bytes(other), o_checksum, bytes, o_checksum)) continue;
        members |= 1 << superblock.copy_index_of(other);
    }
    let count = 0;
    for (let bit = 0; bit < superblock_copies; bit++) count += (members >>> bit) & 1;
    // A valid copy is a member of its own group.
    assert(count >= 1 && count <= superblock_copies);
    return count;
}

function group_better(superblock: SuperBlock, copy: number, count: number, best: number,
    best_count: number): boolean {
    assert(copy !== best && count >= 1 && best_count >= 1);
    const a = superblock.copy_bytes(copy);
    const b = superblock.copy_bytes(best);
    const a_valid = count >= quorum_open;
    const b_valid = best_count >= quorum_open;
    if (a_valid !== b_valid) return a_valid;
    const a_sequence = u64_read(a, o_sequence);
    const b_sequence = u64_read(b, o_sequence);
    if (a_sequence !== b_sequence) return a_sequence > b_sequence;
    if (count !== best_count) return count > best_count;
    for (let index = 15; index >= 0; index--) {
        if (a[index] !== b[index]) return a[index]! < b[index]!;
    }
    return false;
}
