// The WAL: two rings with one slot per op (slot = op % slot_count). A prepare is written to its
// slot in the prepares ring, then its header is written again, as part of a whole sector, to the
// headers ring. The redundant header is what lets recovery tell a crash (the prepare never landed:
// safe to truncate) from corruption (the prepare landed and was lost: must be repaired, never
// treated as absent), following Protocol-Aware Recovery.
//
// Up to `journal_writes_max` prepares are written at once (the primary's pipeline), each in its
// own write slot, so that disk latency overlaps. What recovery relies on still holds per op:
// - a header is copied into the redundant ring only once its own prepare is durable;
// - a header sector has at most one write in flight, and its arena copy is changed only while
//   no write of it is in flight: a write never lands a stale copy over a newer one, and never
//   reads a sector that is being changed. Headers that become ready while their sector is being
//   written go out together in the sector's next write (coalesced);
// - an op is reported written only once its prepare and its header sector are both durable.
// Completions may arrive in any order; the caller acknowledges ops in op order (op_written).
//
// Recovery reads both rings, validates every header and prepare (checksums, cluster, slot), and
// classifies each slot (docs/data-file.md §6.3: a decision table, cases @A..@M). A replica in a
// cluster marks unrecoverable slots faulty for repair from peers (the seam for the replication
// layer); a single replica has no peers and refuses to open, naming the zone, slot and op.
import assert from 'node:assert/strict';

import { journal_writes_max } from '../constants';

import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import {
    body_checksum_valid, command_prepare, header_checksum_valid, header_empty_write, header_op,
    header_operation, header_size_field, header_view, offset_checksum, offset_cluster,
    offset_command, offset_parent, operation_reserved, operation_root, u128_equal,
} from './prepare_header';
import { Zone, header_size, headers_per_sector, sector_ceil, sector_size } from '../storage/zones';

export const enum Decision { none = 0, eql = 1, nil = 2, fix = 3, vsr = 4, cut_torn = 5 }
export const decision_names = ['none', 'eql', 'nil', 'fix', 'vsr', 'cut_torn'];

/** How a header or prepare read back: the classification the decision table works from. */
export const enum ReadState { ok = 0, corrupt = 1, misdirected = 2, unreadable = 3 }
export const read_state_names = ['ok', 'corrupt', 'misdirected', 'unreadable'];

export interface JournalListener {
    /** Format or recovery finished; null means success. */
    journal_done(error: StorageRefusal | null): void;
    /** The prepare and its redundant header are durable (result 0) or failed (-errno). */
    journal_prepare_written(op: number, result: number): void;
}

const enum Phase {
    idle, format_headers, format_prepares, read_headers, read_prepares, write_fixes,
    write_erases,
}

/** Prepare writes in flight at most: the primary's pipeline (lib/constants.ts). */
export { journal_writes_max };
/**
 * Storage operations the journal has in flight at most: each prepare write, then at most one
 * header-sector write per prepare (a sector write carries at least one prepare's header, and a
 * prepare's header is in one sector write at a time). Format and recovery go one at a time.
 */
export const journal_operations_max = 2 * journal_writes_max;

/** A write slot: writing its prepare, then waiting for or writing its header sector. */
const enum WriteState { free = 0, prepare = 1, header_wait = 2, header = 3 }

/**
 * Debug level: re-checksum every prepare body before writing it. The replica checksums a body
 * once, when the request arrives, and writes it from the same buffer; a second pass over up to
 * 1 MiB per prepare on the hot path would only catch a bug that scribbled over a pool buffer.
 * RINGLEDGER_DEBUG=1 turns it on (tests do, through `verify_bodies`).
 */
const verify_bodies_default = process.env.RINGLEDGER_DEBUG === '1';

export class Journal implements StorageCompletionTarget {
    private readonly storage: Storage;
    private readonly listener: JournalListener;
    private readonly target: number;
    readonly slot_count: number;
    readonly message_size_max: number;
    private readonly cluster: Uint8Array;
    private readonly solo: boolean;
    /** The headers ring as on disk: header sectors are written straight from here. */
    private readonly redundant_offset: number;
    /** One message: recovery reads each prepare here; format builds its sectors here. */
    private readonly buffer_offset: number;
    /** A view of the redundant headers, made once (no view is created per write). */
    private readonly redundant_view: Uint8Array;
    /** What each slot should hold: the journal's view of the log, outside the arena. */
    readonly headers: Uint8Array;
    /** Recovery only: the header embedded in each slot's prepare. */
    private readonly prepare_headers: Uint8Array;
    readonly header_state: Uint8Array;
    readonly prepare_state: Uint8Array;
    readonly decisions: Uint8Array;
    readonly cases: Uint8Array;
    /** Slots that must be repaired from peers; `faulty_op` is the op, or -1 when unknown. */
    readonly faulty: Uint8Array;
    readonly faulty_op: Float64Array;
    /** Where the last failed write went (for the operator's message). */
    failed_zone: 'wal_prepares' | 'wal_headers' = 'wal_prepares';
    failed_offset = 0;
    private readonly sector_dirty: Uint8Array;
    private phase = Phase.idle;
    private cursor = 0;
    readonly writes_max = journal_writes_max;
    /** Per write slot: its state and op (-1 when free). */
    private readonly write_state: Uint8Array;
    private readonly write_op: Float64Array;
    private writes_count = 0;
    /** Per WAL slot: the write slot writing it, or -1. */
    private readonly slot_write: Int8Array;
    /** Per header sector: 1 while a write of it is in flight. */
    private readonly sector_writing: Uint8Array;
    /** Ops whose header sector write completed, reported after the journal's state is updated. */
    private readonly report_op: Float64Array;
    private readonly report_result: Int32Array;
    private reporting_ = false;
    /** Re-checksum each prepare body before writing it (see verify_bodies_default). */
    verify_bodies = verify_bodies_default;
    /** The highest op in the log after recovery (the head), or -1 before. */
    op_max = -1;
    /** Header-sector writes in flight (write phase). */
    private sector_writes_in_flight = 0;

    constructor(storage: Storage, listener: JournalListener, cluster: Uint8Array,
        replica_count: number) {
        const config = storage.layout.config;
        assert(cluster.length === 16);
        this.storage = storage;
        this.listener = listener;
        this.target = storage.target_register(this);
        this.slot_count = config.slot_count;
        this.message_size_max = config.message_size_max;
        this.cluster = Uint8Array.from(cluster);
        this.solo = replica_count === 1;
        this.redundant_offset = storage.arena.allocate(this.slot_count * header_size);
        this.buffer_offset = storage.arena.allocate(this.message_size_max);
        this.redundant_view = storage.arena.bytes.subarray(this.redundant_offset,
            this.redundant_offset + this.slot_count * header_size);
        this.headers = new Uint8Array(this.slot_count * header_size);
        this.prepare_headers = new Uint8Array(this.slot_count * header_size);
        this.header_state = new Uint8Array(this.slot_count);
        this.prepare_state = new Uint8Array(this.slot_count);
        this.decisions = new Uint8Array(this.slot_count);
        this.cases = new Uint8Array(this.slot_count);
        this.faulty = new Uint8Array(this.slot_count);
        this.faulty_op = new Float64Array(this.slot_count).fill(-1);
        this.sector_dirty = new Uint8Array(this.slot_count / headers_per_sector);
        this.write_state = new Uint8Array(this.writes_max);
        this.write_op = new Float64Array(this.writes_max).fill(-1);
        this.slot_write = new Int8Array(this.slot_count).fill(-1);
        this.sector_writing = new Uint8Array(this.slot_count / headers_per_sector);
        this.report_op = new Float64Array(this.writes_max);
        this.report_result = new Int32Array(this.writes_max);
        // Concurrent writes must never tear every header sector at once (docs/data-file.md §2).
        assert(this.slot_count / headers_per_sector > 1);
        assert.equal(this.slot_count % headers_per_sector, 0, 'journal: whole header sectors');
        assert(replica_count >= 1 && replica_count <= 6);
        assert(this.message_size_max >= sector_size && this.message_size_max % sector_size === 0);
        // Header sectors are written straight from the arena, and prepares are read into it.
        assert(this.redundant_offset % sector_size === 0 && this.buffer_offset % sector_size === 0);
        // slot_write holds write-slot indexes in an Int8Array; each write has its own WAL slot.
        assert(this.writes_max >= 1 && this.writes_max <= 127);
        assert(this.writes_max < this.slot_count);
    }

    /** Format or recovery is running, or a prepare write is in flight. */
    get busy(): boolean { return this.phase !== Phase.idle || this.writes_count > 0; }

    /** Prepare writes that may be started now. */
    get writes_available(): number {
        return this.phase === Phase.idle ? this.writes_max - this.writes_count : 0;
    }

    /** Completed writes are being reported (their slots already free). */
    get reporting(): boolean { return this.reporting_; }

    /** Prepare writes in flight. */
    get writes_in_flight(): number { return this.writes_count; }

    /** Whether recovery found the slot faulty (a cluster repairs it from a peer). */
    slot_faulty(slot: number): boolean {
        assert(slot >= 0 && slot < this.slot_count);
        return this.faulty[slot] === 1;
    }

    /**
     * A read of the slot's prepare failed its checksum or errored (a latent error, or a write
     * that was lost or went astray): it is not served, nor offered in a view change, until
     * rewritten. In memory only: on disk the damage speaks for itself at the next recovery.
     */
    slot_damaged(slot: number, op: number): void {
        assert(slot >= 0 && slot < this.slot_count && op >= 1);
        assert.equal(op % this.slot_count, slot);
        this.faulty[slot] = 1;
        this.faulty_op[slot] = op;
    }

    /** The arena view of the redundant headers (what the headers ring holds on disk). */
    redundant(): Uint8Array {
        return this.redundant_view;
    }

    /**
     * After recovery, one word per slot for logs and tests: intact (eql), reserved (nil),
     * repaired (fixed locally from the intact copy), torn (a crashed head write, truncated), or,
     * for a slot that needs repair, what was wrong with its prepare: corrupt, misdirected,
     * unreadable, or lost (intact but stale, or missing from a contiguous solo log).
     */
    slot_status(slot: number): string {
        assert(slot >= 0 && slot < this.slot_count);
        const decision = this.decisions[slot];
        if (decision === Decision.eql) return 'intact';
        if (decision === Decision.nil) return 'reserved';
        if (decision === Decision.fix) return 'repaired';
        if (decision === Decision.cut_torn) return 'torn';
        assert.equal(decision, Decision.vsr);
        const prepare = this.prepare_state[slot]!;
        if (prepare !== ReadState.ok) return read_state_names[prepare]!;
        return 'lost';
    }

    /** Writes a fresh WAL: the root prepare in slot 0, reserved headers elsewhere. */
    format(): void {
        assert(this.phase === Phase.idle && this.writes_count === 0);
        const redundant = this.redundant();
        for (let slot = 0; slot < this.slot_count; slot++) {
            header_empty_write(redundant, slot * header_size, this.cluster, slot,
                slot === 0 ? operation_root : operation_reserved);
        }
        this.headers.set(redundant);
        // Slot 0 holds the root prepare (op 0), every other slot a reserved header naming it.
        assert.equal(header_operation(this.headers, 0), operation_root);
        this.phase = Phase.format_headers;
        this.cursor = 0;
        this.format_step();
    }

    /** Reads both rings and classifies every slot (docs/data-file.md §6.3). */
    recover(): void {
        assert(this.phase === Phase.idle && this.writes_count === 0);
        this.phase = Phase.read_headers;
        this.cursor = 0;
        this.faulty.fill(0);
        this.faulty_op.fill(-1);
        this.sector_dirty.fill(0);
        this.op_max = -1;
        this.read_step();
    }

    /**
     * Writes the prepare message at `arena_offset` (header first, `size` bytes, zero-padded here
     * to the sector) to its slot, then its redundant header sector; reports the op through
     * `journal_prepare_written`. Up to `writes_max` at once, in any op order, one per WAL slot;
     * the message must stay untouched until reported. A crash with several in flight leaves
     * some of them written and others torn or absent: recovery cuts them back to a prefix
     * (head_cut), which holds every op reported written in order before the crash.
     */
    write_prepare(arena_offset: number): void {
        assert(this.phase === Phase.idle);
        assert(this.writes_count < this.writes_max, 'journal: every write slot is busy');
        assert(arena_offset % sector_size === 0);
        const bytes = this.storage.arena.bytes;
        const size = header_size_field(bytes, arena_offset);
        assert(size >= header_size && size <= this.message_size_max);
        // The header checksum covers 256 bytes: cheap, and it is what recovery trusts first.
        assert(header_checksum_valid(bytes, arena_offset), 'prepare header checksum');
        if (this.verify_bodies) {
            assert(body_checksum_valid(bytes, arena_offset), 'prepare body checksum');
        }
        assert(bytes[arena_offset + offset_command] === command_prepare);
        assert(u128_equal(bytes, arena_offset + offset_cluster, this.cluster, 0));
        const op = header_op(bytes, arena_offset);
        assert(this.op_max >= 0, 'journal: write before format or recovery');
        assert(op > 0 && header_operation(bytes, arena_offset) !== operation_reserved);
        assert(op > this.op_max - this.slot_count, 'journal: op older than the whole ring');
        this.chain_assert(bytes, arena_offset, op);
        bytes.fill(0, arena_offset + size, arena_offset + sector_ceil(size));
        const slot = op % this.slot_count;
        assert.equal(this.slot_write[slot], -1, `journal: slot of op ${op} is being written`);
        // In memory first: the journal now expects this op in the slot.
        header_copy(this.headers, slot * header_size, bytes, arena_offset);
        const write = this.write_state.indexOf(WriteState.free);
        assert(write >= 0);
        assert.equal(this.write_op[write], -1, 'journal: a free write slot names an op');
        this.write_state[write] = WriteState.prepare;
        this.write_op[write] = op;
        this.slot_write[slot] = write;
        this.writes_count += 1;
        assert(this.writes_count <= this.writes_max);
        // The zero-padded prepare stays inside its WAL slot.
        assert(sector_ceil(size) <= this.message_size_max);
        this.storage.write(this.target, write, Zone.wal_prepares, slot * this.message_size_max,
            arena_offset, sector_ceil(size));
    }

    storage_complete(tag: number, result: number): void {
        switch (this.phase) {
            case Phase.idle:
                // Tags: a write slot for a prepare write, writes_max + sector for a header write.
                assert(tag >= 0 && tag < this.writes_max + this.sector_writing.length);
                if (tag < this.writes_max) return this.prepare_written(tag, result);
                return this.header_written(tag - this.writes_max, result);
            case Phase.format_headers:
            case Phase.format_prepares:
            case Phase.write_fixes:
            case Phase.write_erases:
                // Format and recovery write one sector at a time, tagged with the cursor.
                assert.equal(tag, this.cursor);
                if (result < 0) return this.fail_write(tag, result);
                assert.equal(result, sector_size, 'journal: short write reported as success');
                this.cursor += 1;
                if (this.phase === Phase.write_fixes) return this.fixes_step();
                if (this.phase === Phase.write_erases) return this.erases_step();
                return this.format_step();
            case Phase.read_headers:
                assert.equal(tag, this.cursor);
                this.header_sector_read(tag, result);
                this.cursor += 1;
                return this.read_step();
            case Phase.read_prepares:
                assert.equal(tag, this.cursor);
                this.prepare_read(tag, result);
                this.cursor += 1;
                return this.read_step();
            default:
                assert.fail(`journal: completion in phase ${this.phase}`);
        }
    }

    /** Within one view the primary chains every prepare to its predecessor: assert it. */
    private chain_assert(bytes: Uint8Array, offset: number, op: number): void {
        assert(op >= 1);
        const previous = ((op - 1) % this.slot_count) * header_size;
        if (header_op(this.headers, previous) !== op - 1) return;
        if (header_view(this.headers, previous) !== header_view(bytes, offset)) return;
        assert(u128_equal(bytes, offset + offset_parent, this.headers, previous + offset_checksum),
            `journal: op ${op} does not chain to op ${op - 1} in the same view`);
    }

    private format_step(): void {
        const sectors = this.slot_count / headers_per_sector;
        if (this.phase === Phase.format_headers && this.cursor === sectors) {
            this.phase = Phase.format_prepares;
            this.cursor = 0;
        }
        if (this.phase === Phase.format_prepares && this.cursor === this.slot_count) {
            this.phase = Phase.idle;
            this.op_max = 0;
            this.listener.journal_done(null);
            return;
        }
        if (this.phase === Phase.format_headers) {
            assert(this.cursor < sectors);
            this.storage.write(this.target, this.cursor, Zone.wal_headers,
                this.cursor * sector_size, this.redundant_offset + this.cursor * sector_size,
                sector_size);
            return;
        }
        // Only the first sector of each prepare slot: the rest is zero from preallocation.
        assert(this.phase === Phase.format_prepares && this.cursor < this.slot_count);
        this.prepare_sector_write_from_header(this.cursor);
    }

    /**
     * Writes slot `slot`'s first prepare sector as its in-memory header followed by zeros (the
     * rest of the slot is zero from preallocation): how format and a cut both reserve a slot.
     */
    private prepare_sector_write_from_header(slot: number): void {
        assert(slot >= 0 && slot < this.slot_count);
        // Format's and a cut's reserved header (the root in slot 0): op = slot, no body.
        assert.equal(header_op(this.headers, slot * header_size), slot);
        assert.equal(header_size_field(this.headers, slot * header_size), header_size);
        const buffer = this.storage.arena.bytes;
        buffer.fill(0, this.buffer_offset, this.buffer_offset + sector_size);
        buffer.set(this.headers.subarray(slot * header_size, (slot + 1) * header_size),
            this.buffer_offset);
        this.storage.write(this.target, slot, Zone.wal_prepares, slot * this.message_size_max,
            this.buffer_offset, sector_size);
    }

    private fail_write(slot: number, result: number): void {
        assert(result < 0 && this.phase !== Phase.idle);
        this.phase = Phase.idle;
        this.listener.journal_done(new StorageRefusal('wal', -1, slot,
            `write failed with errno ${-result}`));
    }

    private read_step(): void {
        const sectors = this.slot_count / headers_per_sector;
        if (this.phase === Phase.read_headers && this.cursor === sectors) {
            this.phase = Phase.read_prepares;
            this.cursor = 0;
        }
        if (this.phase === Phase.read_prepares && this.cursor === this.slot_count) {
            this.phase = Phase.idle;
            this.classify_all();
            return;
        }
        if (this.phase === Phase.read_headers) {
            assert(this.cursor < sectors);
            this.storage.read(this.target, this.cursor, Zone.wal_headers,
                this.cursor * sector_size, this.redundant_offset + this.cursor * sector_size,
                sector_size);
            return;
        }
        // The size is unknown until the header is checked, so the whole slot is read.
        assert(this.phase === Phase.read_prepares && this.cursor < this.slot_count);
        this.storage.read(this.target, this.cursor, Zone.wal_prepares,
            this.cursor * this.message_size_max, this.buffer_offset, this.message_size_max);
    }

    private header_sector_read(sector: number, result: number): void {
        assert(sector >= 0 && sector < this.sector_writing.length);
        // Storage reports a whole sector or -errno (a short read is an I/O error).
        assert(result === sector_size || result < 0);
        const redundant = this.redundant();
        for (let index = 0; index < headers_per_sector; index++) {
            const slot = sector * headers_per_sector + index;
            if (result !== sector_size) {
                // Unreadable: zeroed so that nothing stale in memory can pass for a header.
                redundant.fill(0, slot * header_size, (slot + 1) * header_size);
                this.header_state[slot] = ReadState.unreadable;
            } else {
                this.header_state[slot] = this.header_check(redundant, slot * header_size, slot);
            }
        }
    }

    private prepare_read(slot: number, result: number): void {
        assert(slot >= 0 && slot < this.slot_count);
        assert(result === this.message_size_max || result < 0);
        const bytes = this.storage.arena.bytes;
        const offset = this.buffer_offset;
        let state: ReadState = ReadState.unreadable;
        if (result === this.message_size_max) {
            state = this.header_check(bytes, offset, slot);
            if (state === ReadState.ok && !this.body_check(bytes, offset)) {
                state = ReadState.corrupt;
            }
        }
        this.prepare_state[slot] = state;
        if (state === ReadState.ok) {
            this.prepare_headers.set(bytes.subarray(offset, offset + header_size),
                slot * header_size);
        } else {
            this.prepare_headers.fill(0, slot * header_size, (slot + 1) * header_size);
        }
    }

    /** A header is ok when its checksum holds and it belongs to this cluster and this slot. */
    private header_check(bytes: Uint8Array, offset: number, slot: number): ReadState {
        if (!header_checksum_valid(bytes, offset)) return ReadState.corrupt;
        if (bytes[offset + offset_command] !== command_prepare) return ReadState.misdirected;
        if (!u128_equal(bytes, offset + offset_cluster, this.cluster, 0)) {
            return ReadState.misdirected;
        }
        const op = header_op(bytes, offset);
        if (op < 0) return ReadState.misdirected;
        const reserved = header_operation(bytes, offset) === operation_reserved;
        if (reserved ? op !== slot : op % this.slot_count !== slot) return ReadState.misdirected;
        const size = header_size_field(bytes, offset);
        if (size < header_size || size > this.message_size_max) return ReadState.corrupt;
        if (reserved && size !== header_size) return ReadState.corrupt;
        return ReadState.ok;
    }

    private body_check(bytes: Uint8Array, offset: number): boolean {
        const size = header_size_field(bytes, offset);
        // Only after header_check accepted the header, which bounds the size.
        assert(size >= header_size && size <= this.message_size_max);
        if (!body_checksum_valid(bytes, offset)) return false;
        // Padding up to the sector must be zero: a torn write can leave a stale tail there.
        for (let index = offset + size; index < offset + sector_ceil(size); index++) {
            if (bytes[index] !== 0) return false;
        }
        return true;
    }

    /** Decides every slot, then writes the header sectors that recovery fixed locally. */
    private classify_all(): void {
        const prepare_op_max = this.prepare_op_max();
        for (let slot = 0; slot < this.slot_count; slot++) {
            const label = this.classify(slot, prepare_op_max);
            this.cases[slot] = label;
            this.decisions[slot] = case_decision(label, this.solo);
        }
        this.op_max = this.log_op_max();
        assert(this.op_max >= 0);
        this.head_cut();
        if (this.solo) this.gaps_find();
        for (let slot = 0; slot < this.slot_count; slot++) {
            const refusal = this.apply(slot);
            if (refusal !== null) {
                this.listener.journal_done(refusal);
                return;
            }
        }
        this.phase = Phase.write_fixes;
        this.cursor = 0;
        this.fixes_step();
    }

    private prepare_op_max(): number {
        let op_max = -1;
        for (let slot = 0; slot < this.slot_count; slot++) {
            if (this.prepare_state[slot] !== ReadState.ok) continue;
            if (header_operation(this.prepare_headers, slot * header_size) ===
                operation_reserved) continue;
            op_max = Math.max(op_max, header_op(this.prepare_headers, slot * header_size));
        }
        return op_max;
    }

    /** The case label (1 = @A … 13 = @M) from the nine booleans of the decision table. */
    private classify(slot: number, prepare_op_max: number): number {
        const at = slot * header_size;
        const h = this.redundant();
        const p = this.prepare_headers;
        const h_ok = this.header_state[slot] === ReadState.ok;
        const p_ok = this.prepare_state[slot] === ReadState.ok;
        const h_nil = h_ok && header_operation(h, at) === operation_reserved;
        const p_nil = p_ok && header_operation(p, at) === operation_reserved;
        if (!h_ok && !p_ok) return 1;
        if (h_ok && !p_ok) return h_nil ? 2 : 3;
        if (!h_ok) {
            if (p_nil) return 4;
            return header_op(p, at) === prepare_op_max ? 6 : 5;
        }
        if (h_nil) return p_nil ? 9 : 7;
        if (p_nil) return 8;
        if (u128_equal(h, at + offset_checksum, p, at + offset_checksum)) return 13;
        const h_op = header_op(h, at);
        const p_op = header_op(p, at);
        // header_check let through only headers that belong in this slot.
        assert(h_op % this.slot_count === slot && p_op % this.slot_count === slot);
        if (h_op === p_op) return 12;
        return h_op < p_op ? 10 : 11;
    }

    /** The head: the highest op named by any intact header or prepare. */
    private log_op_max(): number {
        let op_max = 0;
        const h = this.redundant();
        for (let slot = 0; slot < this.slot_count; slot++) {
            const decision = this.decisions[slot];
            if (decision === Decision.eql || decision === Decision.fix) {
                op_max = Math.max(op_max, header_op(this.prepare_headers, slot * header_size));
            }
            if (this.header_state[slot] === ReadState.ok &&
                header_operation(h, slot * header_size) !== operation_reserved) {
                op_max = Math.max(op_max, header_op(h, slot * header_size));
            }
        }
        return op_max;
    }

    /**
     * A crash with writes in flight leaves each of the ops just above the last one reported
     * written (up to writes_max of them) whole, prepare-only, torn or absent, in any mix, since
     * their writes complete in any order. None of them was acknowledged: ops are acknowledged in
     * op order, each once its prepare and its redundant header are durable. So:
     * - above the head, a slot the crash tore (head_torn) is truncated, not repaired;
     * - a single replica, whose log must be contiguous, also cuts from the lowest op within
     *   writes_max of the head that was never written (head_unwritten) up to the head: the ops
     *   above such a gap were never acknowledged either.
     * An op whose redundant header names it was written whole once: it is never taken for the
     * gap, so a lost or corrupt acknowledged prepare is still refused or repaired, never taken
     * as absent (only ops above a true gap, unacknowledged whatever their state, are cut).
     */
    private head_cut(): void {
        const op_max = this.op_max;
        const head = this.decisions[op_max % this.slot_count];
        if (head !== Decision.eql && head !== Decision.fix) return;
        let cut_first = op_max + 1;
        // Every replica writes and acknowledges in op order (a cluster's backups append op + 1
        // only, docs/vsr.md §5), so ops above a never-written one were never acknowledged.
        for (let op = Math.max(1, op_max - this.writes_max + 1); op < op_max; op++) {
            if (this.head_unwritten(op % this.slot_count, op)) {
                cut_first = op;
                break;
            }
        }
        // In flight at the crash were at most writes_max ops above the last written one. A slot
        // the crash left untouched keeps its older op; one holding (part of) the op is cut.
        for (let op = cut_first; op < cut_first + this.writes_max; op++) {
            const slot = op % this.slot_count;
            const whole = op <= op_max && this.prepare_state[slot] === ReadState.ok &&
                header_operation(this.prepare_headers, slot * header_size) !==
                operation_reserved && header_op(this.prepare_headers, slot * header_size) === op;
            if (whole || this.head_torn(slot, op)) this.decisions[slot] = Decision.cut_torn;
        }
        // At most the ops in flight at the crash are cut, never the root.
        assert(cut_first >= 1 && cut_first <= op_max + 1);
        this.op_max = cut_first - 1;
        assert(this.op_max >= op_max - this.writes_max);
    }

    /**
     * The slot shows no sign of `op` written whole: its header is older, its prepare damaged
     * or older. The intact older header is the evidence: `op` would have been acknowledged only
     * after its header was durable, so whatever damaged the prepare, `op` was never acknowledged.
     */
    private head_unwritten(slot: number, op: number): boolean {
        if (this.head_torn(slot, op)) return true;
        return this.header_older(this.redundant(), slot, op) &&
            this.header_older(this.prepare_headers, slot, op);
    }

    /** A torn write of `op` (or a damaged older prepare): the header is older, the prepare bad. */
    private head_torn(slot: number, op: number): boolean {
        return this.header_older(this.redundant(), slot, op) &&
            this.prepare_state[slot] !== ReadState.ok;
    }

    /** Recovery read an intact header from the slot, and it holds nothing or an op below `op`. */
    private header_older(headers: Uint8Array, slot: number, op: number): boolean {
        const state = headers === this.prepare_headers ? this.prepare_state[slot]
            : this.header_state[slot];
        if (state !== ReadState.ok) return false;
        const at = slot * header_size;
        return header_operation(headers, at) === operation_reserved || header_op(headers, at) < op;
    }

    /**
     * A single replica writes op N only after op N-1, so its ring holds exactly the ops
     * (op_max - slot_count, op_max]. A slot holding an older op (or nothing) where a newer one
     * belongs lost a write, even when the table alone would accept it: e.g. a lost prepare write
     * whose newer redundant header later became unreadable (@E) looks like an intact old op.
     */
    private gaps_find(): void {
        assert(this.solo, 'journal: only a single replica knows its log is contiguous');
        const op_max = this.op_max;
        for (let slot = 0; slot < this.slot_count; slot++) {
            const decision = this.decisions[slot];
            const expected = op_max - ((op_max - slot) % this.slot_count + this.slot_count) %
                this.slot_count;
            if (expected <= 0 || decision === Decision.cut_torn) continue;
            // Emptied by an earlier recovery's cut: the op that overwrote `expected` was in
            // flight at a crash (within writes_max of the head) and was never acknowledged.
            if (decision === Decision.nil && expected + this.slot_count <= op_max +
                this.writes_max) continue;
            assert(expected % this.slot_count === slot && expected <= op_max);
            const held = decision === Decision.eql || decision === Decision.fix
                ? header_op(this.prepare_headers, slot * header_size) : -1;
            if (held === expected || decision === Decision.vsr) continue;
            this.decisions[slot] = Decision.vsr;
            this.cases[slot] = case_gap;
            this.faulty_op[slot] = expected;
        }
    }

    private apply(slot: number): StorageRefusal | null {
        const at = slot * header_size;
        const decision = this.decisions[slot];
        assert(decision !== Decision.none, 'journal: slot applied before it was classified');
        if (decision === Decision.eql || decision === Decision.fix) {
            this.headers.set(this.prepare_headers.subarray(at, at + header_size), at);
        }
        if (decision === Decision.fix) {
            this.redundant().set(this.prepare_headers.subarray(at, at + header_size), at);
            this.sector_dirty[Math.floor(slot / headers_per_sector)] = 1;
        }
        if (decision === Decision.nil || decision === Decision.cut_torn) {
            header_empty_write(this.headers, at, this.cluster, slot, operation_reserved);
        }
        if (decision === Decision.cut_torn) {
            header_empty_write(this.redundant(), at, this.cluster, slot, operation_reserved);
            this.sector_dirty[Math.floor(slot / headers_per_sector)] = 1;
        }
        if (decision !== Decision.vsr) return null;
        const op = this.faulty_op[slot]! >= 0 ? this.faulty_op[slot]! : this.slot_op_named(slot);
        if (op === 0 || (op === -1 && slot === 0 && this.op_max < this.slot_count)) {
            return this.root_restore();
        }
        if (this.solo) {
            // Every case refused here lacks an intact prepare for the op the slot should hold.
            const label = this.cases[slot] === case_gap ? 'gap'
                : String.fromCharCode(64 + this.cases[slot]!);
            return new StorageRefusal('wal_prepares', op, slot, `case @${label} (header ` +
                `${read_state_names[this.header_state[slot]!]}, prepare ` +
                `${read_state_names[this.prepare_state[slot]!]}${this.prepare_stale(slot)}); ` +
                'a single replica has no peer to repair from');
        }
        // An intact redundant header naming the op says what the slot should hold: kept in
        // memory (the replica checks it against the hash chain and fetches the prepare, a hole
        // like one found while running). Else a placeholder, never the suspect header. Neither is
        // persisted as clean (docs/data-file.md §6.3).
        if (this.header_state[slot] === ReadState.ok && header_op(this.redundant(), at) === op &&
            header_operation(this.redundant(), at) !== operation_reserved) {
            this.headers.set(this.redundant().subarray(at, at + header_size), at);
        } else {
            header_empty_write(this.headers, at, this.cluster, slot, operation_reserved);
        }
        // On disk the slot must stay faulty even when a neighbour's write rewrites its sector.
        this.redundant().fill(0, at + offset_checksum, at + offset_checksum + 16);
        this.faulty[slot] = 1;
        this.faulty_op[slot] = op;
        return null;
    }

    /**
     * Slot 0 holds op 0, the root prepare, until the ring wraps. Format writes the same root on
     * every replica of the cluster, so what a damaged slot 0 held is known: it is written back,
     * never left a placeholder (a placeholder breaks op 1's hash chain on every peer that
     * receives our log; seed 1907746486) nor repaired from a peer.
     */
    private root_restore(): null {
        header_empty_write(this.headers, 0, this.cluster, 0, operation_root);
        this.redundant().set(this.headers.subarray(0, header_size), 0);
        this.sector_dirty[0] = 1;
        this.decisions[0] = Decision.fix; // Repaired locally, as slot_status reports it.
        assert.equal(header_operation(this.headers, 0), operation_root);
        assert.equal(header_op(this.headers, 0), 0);
        return null;
    }

    private prepare_stale(slot: number): string {
        const label = this.cases[slot]!;
        return label === 8 || label === 11 || label === 12 ? ' but stale or lost' : '';
    }

    /** The op an intact copy says belongs in the slot: the higher of header and prepare. */
    private slot_op_named(slot: number): number {
        const at = slot * header_size;
        let op = -1;
        if (this.header_state[slot] === ReadState.ok &&
            header_operation(this.redundant(), at) !== operation_reserved) {
            op = header_op(this.redundant(), at);
        }
        if (this.prepare_state[slot] === ReadState.ok &&
            header_operation(this.prepare_headers, at) !== operation_reserved) {
            op = Math.max(op, header_op(this.prepare_headers, at));
        }
        return op;
    }

    private fixes_step(): void {
        assert.equal(this.phase, Phase.write_fixes);
        const sectors = this.slot_count / headers_per_sector;
        while (this.cursor < sectors && this.sector_dirty[this.cursor] === 0) this.cursor += 1;
        if (this.cursor === sectors) {
            this.phase = Phase.write_erases;
            this.cursor = 0;
            this.erases_step();
            return;
        }
        this.sector_dirty[this.cursor] = 0;
        this.storage.write(this.target, this.cursor, Zone.wal_headers, this.cursor * sector_size,
            this.redundant_offset + this.cursor * sector_size, sector_size);
    }

    /**
     * After the headers: each cut slot's prepare is overwritten with a reserved one (as format
     * writes), so that a cut op whose prepare was whole cannot come back at the next recovery
     * (as @G) once the log has moved on past it. A crash before this only repeats the cut.
     */
    private erases_step(): void {
        assert.equal(this.phase, Phase.write_erases);
        while (this.cursor < this.slot_count &&
            this.decisions[this.cursor] !== Decision.cut_torn) this.cursor += 1;
        if (this.cursor === this.slot_count) {
            this.phase = Phase.idle;
            this.listener.journal_done(null);
            return;
        }
        this.prepare_sector_write_from_header(this.cursor);
    }

    private prepare_written(write: number, result: number): void {
        assert(write >= 0 && write < this.writes_max);
        assert.equal(this.write_state[write], WriteState.prepare);
        const op = this.write_op[write]!;
        assert(op > 0);
        const slot = op % this.slot_count;
        assert.equal(this.slot_write[slot], write);
        if (result < 0) {
            // The slot's content is unknown now: it stays faulty until rewritten or repaired.
            this.failed_zone = 'wal_prepares';
            this.failed_offset = slot * this.message_size_max;
            this.faulty[slot] = 1;
            this.faulty_op[slot] = op;
            this.write_release(write);
            this.listener.journal_prepare_written(op, result);
            return;
        }
        this.write_state[write] = WriteState.header_wait;
        this.sector_flush(Math.floor(slot / headers_per_sector));
    }

    /**
     * Writes a header sector with every header of it whose prepare is durable and not yet in
     * the redundant ring, unless a write of that sector is in flight: its completion calls here
     * again. The arena copy changes only here, so it never changes under a write in flight.
     */
    private sector_flush(sector: number): void {
        assert(sector >= 0 && sector < this.sector_writing.length);
        if (this.sector_writing[sector] === 1) return;
        let headers = 0;
        for (let write = 0; write < this.writes_max; write++) {
            if (this.write_state[write] !== WriteState.header_wait) continue;
            const op = this.write_op[write]!;
            const slot = op % this.slot_count;
            if (Math.floor(slot / headers_per_sector) !== sector) continue;
            assert.equal(header_op(this.headers, slot * header_size), op);
            header_copy(this.redundant_view, slot * header_size, this.headers, slot * header_size);
            this.write_state[write] = WriteState.header;
            headers += 1;
        }
        if (headers === 0) return;
        // One write per WAL slot: a sector write carries at most a sector's headers.
        assert(headers <= headers_per_sector);
        this.sector_writing[sector] = 1;
        this.sector_writes_in_flight += 1;
        // Each sector write in flight carries a distinct prepare's header: the journal's
        // storage operations stay within journal_operations_max.
        assert(this.sector_writes_in_flight <= this.writes_count);
        assert(this.writes_count + this.sector_writes_in_flight <= journal_operations_max);
        this.storage.write(this.target, this.writes_max + sector, Zone.wal_headers,
            sector * sector_size, this.redundant_offset + sector * sector_size, sector_size);
    }

    private header_written(sector: number, result: number): void {
        assert(sector >= 0 && sector < this.sector_writing.length);
        assert.equal(this.sector_writing[sector], 1);
        assert(!this.reporting_, 'journal: header completion while reporting');
        this.sector_writing[sector] = 0;
        this.sector_writes_in_flight -= 1;
        assert(this.sector_writes_in_flight >= 0);
        let reports = 0;
        for (let write = 0; write < this.writes_max; write++) {
            if (this.write_state[write] !== WriteState.header) continue;
            const op = this.write_op[write]!;
            const slot = op % this.slot_count;
            if (Math.floor(slot / headers_per_sector) !== sector) continue;
            if (result < 0) {
                this.failed_zone = 'wal_headers';
                this.failed_offset = sector * sector_size;
                this.faulty[slot] = 1;
                this.faulty_op[slot] = op;
            } else {
                this.faulty[slot] = 0;
                this.op_max = Math.max(this.op_max, op);
            }
            this.report_op[reports] = op;
            this.report_result[reports] = result < 0 ? result : 0;
            reports += 1;
            this.write_release(write);
        }
        assert(reports > 0 && reports <= headers_per_sector);
        // Headers that became ready during this write go out now, before anyone is told.
        this.sector_flush(sector);
        this.reporting_ = true;
        for (let index = 0; index < reports; index++) {
            this.listener.journal_prepare_written(this.report_op[index]!,
                this.report_result[index]!);
        }
        this.reporting_ = false;
    }

    private write_release(write: number): void {
        assert(write >= 0 && write < this.writes_max);
        assert(this.write_state[write] !== WriteState.free);
        const slot = this.write_op[write]! % this.slot_count;
        assert.equal(this.slot_write[slot], write);
        this.slot_write[slot] = -1;
        this.write_state[write] = WriteState.free;
        this.write_op[write] = -1;
        this.writes_count -= 1;
        assert(this.writes_count >= 0);
    }
}

/** Copies one header without creating a view (the write path allocates nothing). */
function header_copy(target: Uint8Array, target_offset: number, source: Uint8Array,
    source_offset: number): void {
    assert(target_offset + header_size <= target.length);
    assert(source_offset + header_size <= source.length);
    for (let index = 0; index < header_size; index++) {
        target[target_offset + index] = source[source_offset + index]!;
    }
}

/** Not a table case: an intact-looking slot that holds an older op than the log requires. */
const case_gap = 14;

/** Decisions by case label (index 1 = @A): [replica_count > 1, replica_count = 1]. */
const case_decisions: readonly number[] = [
    0, 0,
    Decision.vsr, Decision.vsr, // @A both invalid
    Decision.vsr, Decision.vsr, // @B header reserved, prepare invalid
    Decision.vsr, Decision.vsr, // @C header names an op, prepare invalid
    Decision.vsr, Decision.fix, // @D header invalid, prepare reserved
    Decision.vsr, Decision.fix, // @E header invalid, prepare not the highest op
    Decision.fix, Decision.fix, // @F header invalid, prepare is the highest op
    Decision.fix, Decision.fix, // @G header reserved, prepare names an op (crash before header)
    Decision.vsr, Decision.vsr, // @H header names an op, prepare reserved (lost prepare)
    Decision.nil, Decision.nil, // @I both reserved
    Decision.fix, Decision.fix, // @J header from the previous wrap (lost header write)
    Decision.vsr, Decision.vsr, // @K header newer than the prepare (lost prepare write)
    Decision.vsr, Decision.vsr, // @L same op, different checksums
    Decision.eql, Decision.eql, // @M header and prepare agree
];

function case_decision(label: number, solo: boolean): number {
    assert(label >= 1 && label <= 13);
    return case_decisions[label * 2 + (solo ? 1 : 0)]!;
}
