// The client replies zone: one slot of message_size_max per client-session slot, holding that
// session's latest reply (docs/data-file.md §9). The session table (in the checkpoint) keeps the
// reply's header; the reply itself lives here, so a request retried after a restart is answered
// with its original reply instead of being executed twice.
//
// Writes are asynchronous: a reply is sent to its client before its write completes. A checkpoint
// waits for every reply write in flight (`drain_notify`) before the superblock names it, so every
// reply the checkpoint's session table refers to is durable. A reply written after the checkpoint
// may be lost by a crash; WAL replay re-executes its op and writes it again.
//
// Operations in flight are bounded by `client_replies_iops_max`, not by the session count: a
// checkpoint writes every changed reply at once (up to clients_max of them), and the writes that
// find every operation busy wait in a FIFO of slots, submitted as operations complete. The FIFO
// needs no bound of its own: a slot waits at most once (one pending write per slot), so it never
// holds more than clients_max slots. Queueing rather than sizing the pool from clients_max keeps
// the storage's operation budget (and io_uring's queue) independent of clients_max, and spreads a
// checkpoint's reply writes instead of flooding the device with clients_max message-sized writes.
//
// A read is checked against the header the session table expects: header checksum equal to the
// expected one, both checksums valid. So a torn write, a stale reply (an older or newer one than
// the table names), a misdirected write or bit rot is never handed out as the reply.
import assert from 'node:assert/strict';

import { frame, offsets } from './header_layout';
import {
    body_checksum_valid, header_checksum_valid, header_size_field, u128_equal, u64_read,
} from './prepare_header';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import { Zone, header_size, sector_ceil, sector_size } from '../storage/zones';

export const ClientReplyResult = { ok: 0, unreadable: -1, corrupt: -2 } as const;

export interface ClientRepliesListener {
    /** 0, or -errno: the slot's content is then unknown (a later read will say so). */
    client_reply_written(tag: number, result: number): void;
    /** A ClientReplyResult. */
    client_reply_read(tag: number, result: number): void;
}

/** Told once when the last reply write in flight completes (the checkpoint waits for it). */
export interface ClientRepliesDrainTarget {
    client_replies_drained(): void;
}

/** Client-reply reads and writes in flight at once (part of the storage operation budget). */
export const client_replies_iops_max = 8;

const kind_free = 0;
const kind_read = 1;
const kind_write = 2;

export class ClientReplies implements StorageCompletionTarget {
    private readonly storage: Storage;
    private readonly listener: ClientRepliesListener;
    private readonly target: number;
    readonly slot_count: number;
    readonly message_size_max: number;
    private readonly op_kind: Uint8Array;
    private readonly op_tag: Float64Array;
    private readonly op_slot: Int32Array;
    private readonly op_arena_offset: Float64Array;
    /** Reads: the header checksum and size the session table expects. */
    private readonly op_expected: Uint8Array;
    private readonly op_size: Float64Array;
    private operations_free: number;
    /** Per slot: a write in flight, and at most one write queued behind it or waiting. */
    private readonly slot_writing: Uint8Array;
    private readonly slot_queued_offset: Float64Array;
    private readonly slot_queued_tag: Float64Array;
    /** Per slot: its queued write waits in `waiting` for a free operation (it is not writing). */
    private readonly slot_waiting: Uint8Array;
    /** FIFO ring of slots whose write waits for an operation; each slot is in it at most once. */
    private readonly waiting: Int32Array;
    private waiting_head = 0;
    private waiting_count = 0;
    private drain_target: ClientRepliesDrainTarget | null = null;
    writes_in_flight = 0;
    /** Writes that had to wait for a free operation (a checkpoint with many changed replies). */
    writes_waited = 0;

    constructor(storage: Storage, listener: ClientRepliesListener,
        operations_max: number = client_replies_iops_max) {
        assert(operations_max >= 1 && operations_max <= client_replies_iops_max);
        const config = storage.layout.config;
        this.storage = storage;
        this.listener = listener;
        this.target = storage.target_register(this);
        this.slot_count = config.clients_max;
        this.message_size_max = config.message_size_max;
        this.op_kind = new Uint8Array(operations_max);
        this.op_tag = new Float64Array(operations_max);
        this.op_slot = new Int32Array(operations_max);
        this.op_arena_offset = new Float64Array(operations_max);
        this.op_expected = new Uint8Array(operations_max * 16);
        this.op_size = new Float64Array(operations_max);
        this.operations_free = operations_max;
        this.slot_writing = new Uint8Array(this.slot_count);
        this.slot_queued_offset = new Float64Array(this.slot_count).fill(-1);
        this.slot_queued_tag = new Float64Array(this.slot_count);
        this.slot_waiting = new Uint8Array(this.slot_count);
        this.waiting = new Int32Array(this.slot_count);
    }

    write_in_flight(slot: number): boolean {
        return this.slot_writing[slot] === 1;
    }

    /**
     * Writes the reply message at `arena_offset` to `slot`. The buffer must stay untouched until
     * client_reply_written(tag); the bytes from its size up to the sector are zeroed here.
     */
    write(tag: number, slot: number, arena_offset: number): void {
        assert(slot >= 0 && slot < this.slot_count);
        // Written straight from the arena with O_DIRECT.
        assert(arena_offset % sector_size === 0);
        const bytes = this.storage.arena.bytes;
        const size = header_size_field(bytes, arena_offset);
        assert(size >= header_size && size <= this.message_size_max);
        assert(header_checksum_valid(bytes, arena_offset), 'client reply: header checksum');
        assert.equal(this.slot_queued_offset[slot], -1, 'client reply: two writes queued');
        this.writes_in_flight += 1;
        assert(this.writes_in_flight <= 2 * this.slot_count);
        if (this.slot_writing[slot] === 1) {
            // Two writes to one slot must not race: the newer one waits for the older.
            this.slot_queued_offset[slot] = arena_offset;
            this.slot_queued_tag[slot] = tag;
            return;
        }
        if (this.operations_free === 0) {
            this.slot_queued_offset[slot] = arena_offset;
            this.slot_queued_tag[slot] = tag;
            this.waiting_push(slot);
            this.writes_waited += 1;
            return;
        }
        this.write_submit(tag, slot, arena_offset);
    }

    /** Writes accepted but not submitted yet, waiting for an operation to free up. */
    get writes_waiting(): number {
        return this.waiting_count;
    }

    private waiting_push(slot: number): void {
        assert.equal(this.slot_waiting[slot], 0);
        assert(this.waiting_count < this.slot_count, 'client reply: a slot waits twice');
        this.waiting[(this.waiting_head + this.waiting_count) % this.slot_count] = slot;
        this.waiting_count += 1;
        this.slot_waiting[slot] = 1;
    }

    /** Submits the oldest waiting write, if any, into the operation that just freed up. */
    private waiting_submit(): void {
        assert(this.operations_free > 0);
        if (this.waiting_count === 0) return;
        const slot = this.waiting[this.waiting_head]!;
        this.waiting_head = (this.waiting_head + 1) % this.slot_count;
        this.waiting_count -= 1;
        assert.equal(this.slot_waiting[slot], 1);
        assert.equal(this.slot_writing[slot], 0);
        this.slot_waiting[slot] = 0;
        const offset = this.slot_queued_offset[slot]!;
        assert(offset >= 0);
        this.slot_queued_offset[slot] = -1;
        this.write_submit(this.slot_queued_tag[slot]!, slot, offset);
    }

    private write_submit(tag: number, slot: number, arena_offset: number): void {
        // One write in flight per slot: a newer one queues behind it.
        assert.equal(this.slot_writing[slot], 0);
        const bytes = this.storage.arena.bytes;
        const size = header_size_field(bytes, arena_offset);
        assert(size >= header_size && sector_ceil(size) <= this.message_size_max);
        bytes.fill(0, arena_offset + size, arena_offset + sector_ceil(size));
        const op = this.op_acquire(kind_write, tag, slot, arena_offset);
        this.slot_writing[slot] = 1;
        this.storage.write(this.target, op, Zone.client_replies, slot * this.message_size_max,
            arena_offset, sector_ceil(size));
    }

    /**
     * Reads the reply of `slot` whose header is expected_header[expected_offset, +256) into
     * `arena_offset` (room for sector_ceil(size) bytes). Not while a write to the slot is in
     * flight: the caller still holds that buffer and answers from it.
     */
    read(tag: number, slot: number, expected_header: Uint8Array, expected_offset: number,
        arena_offset: number): void {
        assert(slot >= 0 && slot < this.slot_count);
        assert(arena_offset % sector_size === 0);
        assert(this.slot_writing[slot] === 0, 'client reply: read while a write is in flight');
        assert.equal(this.slot_waiting[slot], 0, 'client reply: read while a write is waiting');
        // Reads happen at restore, one at a time, before any write: an operation is free.
        assert(this.operations_free > 0, 'client reply: a read with every operation busy');
        const size = header_size_field(expected_header, expected_offset);
        assert(size >= header_size && size <= this.message_size_max);
        const op = this.op_acquire(kind_read, tag, slot, arena_offset);
        for (let index = 0; index < 16; index++) {
            this.op_expected[op * 16 + index] =
                expected_header[expected_offset + frame.checksum + index]!;
        }
        this.op_size[op] = size;
        this.storage.read(this.target, op, Zone.client_replies, slot * this.message_size_max,
            arena_offset, sector_ceil(size));
    }

    /** The checkpoint calls this when writes are in flight; told once they have all landed. */
    drain_notify(target: ClientRepliesDrainTarget): void {
        assert(this.writes_in_flight > 0);
        assert(this.drain_target === null, 'client replies: one drain at a time');
        this.drain_target = target;
    }

    /** A single replica's answer to a reply it cannot produce: names zone, slot and op. */
    refusal(slot: number, expected_header: Uint8Array, expected_offset: number,
        result: number): StorageRefusal {
        const op = u64_read(expected_header, expected_offset + offsets.reply.op);
        const reason = result === ClientReplyResult.unreadable ? 'unreadable'
            : 'corrupt (torn, stale, misdirected or rotten)';
        return new StorageRefusal('client_replies', op, slot, `reply ${reason}; a single ` +
            'replica has no peer to repair it from');
    }

    storage_complete(op: number, result: number): void {
        assert(op >= 0 && op < this.op_kind.length);
        const kind = this.op_kind[op]!;
        const tag = this.op_tag[op]!;
        const slot = this.op_slot[op]!;
        assert(kind !== kind_free, 'client replies: completion of a free operation');
        assert(slot >= 0 && slot < this.slot_count);
        this.op_kind[op] = kind_free;
        this.operations_free += 1;
        assert(this.operations_free <= this.op_kind.length);
        if (kind === kind_read) {
            this.waiting_submit();
            this.listener.client_reply_read(tag, this.read_result(op, result));
            return;
        }
        assert.equal(kind, kind_write);
        this.slot_writing[slot] = 0;
        assert.equal(this.slot_waiting[slot], 0);
        const queued = this.slot_queued_offset[slot]!;
        if (queued >= 0) {
            // The newer write to this slot goes first: it was accepted before any waiting one
            // could be behind it for this slot, and it reuses the operation just freed.
            this.slot_queued_offset[slot] = -1;
            this.write_submit(this.slot_queued_tag[slot]!, slot, queued);
        } else {
            this.waiting_submit();
        }
        this.writes_in_flight -= 1;
        assert(this.writes_in_flight >= 0);
        this.listener.client_reply_written(tag, result < 0 ? result : 0);
        if (this.writes_in_flight === 0 && this.drain_target !== null) {
            const target = this.drain_target;
            this.drain_target = null;
            target.client_replies_drained();
        }
    }

    private read_result(op: number, result: number): number {
        if (result < 0) return ClientReplyResult.unreadable;
        const bytes = this.storage.arena.bytes;
        const at = this.op_arena_offset[op]!;
        const valid = u128_equal(bytes, at + frame.checksum, this.op_expected, op * 16) &&
            header_checksum_valid(bytes, at) &&
            header_size_field(bytes, at) === this.op_size[op] &&
            body_checksum_valid(bytes, at);
        return valid ? ClientReplyResult.ok : ClientReplyResult.corrupt;
    }

    private op_acquire(kind: number, tag: number, slot: number, arena_offset: number): number {
        assert(this.operations_free > 0);
        const op = this.op_kind.indexOf(kind_free);
        assert(op >= 0, 'client replies: more operations in flight than operations_max');
        this.operations_free -= 1;
        this.op_kind[op] = kind;
        this.op_tag[op] = tag;
        this.op_slot[op] = slot;
        this.op_arena_offset[op] = arena_offset;
        return op;
    }
}
