// The double-entry ledger state machine with TigerBeetle 0.17.9 semantics.
//
// Accounts and transfers are 128-byte records in preallocated typed arrays, read and written in
// place. Slots are assigned in timestamp order (timestamps only ever increase, imported ones
// included), so slot order is timestamp order and the arrays double as the timestamp index.
// Ids map to slots through open-addressing tables over the same memory. A linked chain that
// fails is rolled back through an undo log in preallocated memory.
//
// Contract for `execute` (shared with lib/testing/ledger_model.ts):
// * create_*: `timestamp` is the batch timestamp, i.e. the timestamp of the LAST event of the
//   batch; event i of n gets `timestamp - n + i + 1` (wire-protocol.md §6.6). The reply is one
//   16-byte {timestamp u64, status u32, reserved u32} per event: `created` and `exists` carry
//   the object's timestamp (an imported object's own), every other status the event's assigned
//   one, even when the status was decided after an imported timestamp was read.
// * `prefetch` (optional, same arguments) may run first: the storage step of the object-store
//   contract in record_store.ts. `execute` itself never waits and never depends on it.
// * pulse (128): `timestamp` is the prepare timestamp; up to 8189 pending transfers with
//   expires_at <= timestamp expire, in (expires_at, timestamp) order, expiry i of n at
//   `timestamp - n + i + 1`. The reply is empty.
// * Capacity: a create batch that could exceed accounts_max/transfers_max/orphans_max/
//   history_max (counting every event as if it succeeded) is refused before any effect: execute
//   logs one line naming the limit (config.log) and throws LedgerCapacityError. Nothing already
//   acknowledged is touched, and batches that fit keep working, so lookups, queries and the
//   pulse (which needs no capacity) go on. The replica should call `capacity_error` at prepare
//   time and reject the request there, so a refused batch is never committed.
import assert from 'node:assert/strict';

import { StateMachineCapacityError } from '../vsr/state_machine';

import { change_events_reply_max, two_32 } from '../constants';
import {
    AccountFilterFlags, AccountFlags, CreateAccountStatus as AS, CreateTransferStatus as TS,
    Limit, Operation, limit_name, PendingStatus, QueryFilterFlags, TransferFlags, batch_events_max,
    record_size as record_size_imported, record_words as record_words_imported,
    transfer_status_transient,
} from './constants';
import { IdTable } from './id_table';
import { account_at, transfer_at } from './record_layout';
import { MemoryRecordStore, RecordStore, prefetch_ids_max } from './record_store';
import {
    u128_add, u128_add_small, u128_add_to, u128_compare, u128_copy, u128_equal, u128_is_max,
    u128_is_zero, u128_sub,
    u128_sub_saturating,
} from './u128';

export interface LedgerConfig {
    accounts_max: number;
    transfers_max: number;
    /** Ids burnt by transient failures (default transfers_max). */
    orphans_max?: number;
    /** Balance snapshots for transfers touching a `history` account (default transfers_max). */
    history_max?: number;
    /**
     * Change events kept for get_change_events. 0 (the default) turns the feature off: the
     * operation replies with no events. Otherwise it must be at least 2 * transfers_max: every
     * transfer appends one event and every expiry one more (a transfer expires at most once), so
     * the log can never fill: it never refuses a batch and never holds back an expiry. Off by
     * default because it costs 160 bytes per event and neither the official client's tests
     * (wire-protocol.md §10.2) nor the Node client's API use it.
     */
    change_events_max?: number;
    /** Where the ledger writes its rare log lines (capacity refusals); default console.error. */
    log?: (line: string) => void;
}

/** The replica catches it by its base class (vsr/state_machine.ts). */
export class LedgerCapacityError extends StateMachineCapacityError {}

/** The persistent state segments (see Ledger.state_segments): name, bytes per element, and what
 * tracks their changes between checkpoints: a record store's dirty chunks, or appends only. */
export const state_segment_layout: readonly (readonly [string, number, string])[] = [
    ['accounts', 128, 'accounts'], ['transfers', 128, 'transfers'],
    ['transfer_status', 1, 'transfers'], ['transfer_history_row', 4, 'transfers'],
    ['orphans', 16, 'append'], ['history', 128, 'append'], ['change_events', 160, 'append'],
];

// Module constants, not imported objects: V8 folds a module constant into optimised code, but
// loads an imported object's property (two loads for a nested one) on every use, per event.
const record_words = 32, record_size = 128;
assert(record_words === record_words_imported && record_size === record_size_imported);
const { balancing_credit: transfer_flag_balancing_credit,
    balancing_debit: transfer_flag_balancing_debit, closing_credit: transfer_flag_closing_credit,
    closing_debit: transfer_flag_closing_debit, imported: transfer_flag_imported,
    padding: transfer_flag_padding, pending: transfer_flag_pending,
    post_pending_transfer: transfer_flag_post_pending_transfer,
    void_pending_transfer: transfer_flag_void_pending_transfer } = TransferFlags;
const { closed: account_flag_closed,
    credits_must_not_exceed_debits: account_flag_credits_must_not_exceed_debits,
    debits_must_not_exceed_credits: account_flag_debits_must_not_exceed_credits,
    history: account_flag_history, imported: account_flag_imported, padding: account_flag_padding
} = AccountFlags;
const { expired: pending_expired, none: pending_none, pending: pending_pending,
    posted: pending_posted, voided: pending_voided } = PendingStatus;
const none = 0xffffffff;
// Word offsets inside a 32-word record, from the record layout table.
const w_debits_pending = account_at.debits_pending / 4;
const w_debits_posted = account_at.debits_posted / 4;
const w_credits_pending = account_at.credits_pending / 4;
const w_credits_posted = account_at.credits_posted / 4;
const w_debit_account = transfer_at.debit_account_id / 4;
const w_credit_account = transfer_at.credit_account_id / 4;
const w_amount = transfer_at.amount / 4;
const w_pending_id = transfer_at.pending_id / 4;
const w_user_data_128 = transfer_at.user_data_128 / 4;
const w_user_data_64 = transfer_at.user_data_64 / 4;
const w_user_data_32 = transfer_at.user_data_32 / 4;
/** The account's `reserved` word, the transfer's `timeout`: the same word of each record. */
const w_reserved_or_timeout = transfer_at.timeout / 4;
const w_ledger = transfer_at.ledger / 4;
/** code (u16) and flags (u16) share one word. */
const w_code_flags = transfer_at.code / 4;
const w_timestamp_lo = transfer_at.timestamp / 4;
const w_timestamp_hi = transfer_at.timestamp / 4 + 1;
// Accounts and transfers share the tail of their layout, so one set of word indexes serves both.
assert.equal(account_at.user_data_128, transfer_at.user_data_128);
assert.equal(account_at.reserved, transfer_at.timeout);
assert.equal(account_at.ledger, transfer_at.ledger);
assert.equal(account_at.code, transfer_at.code);
assert.equal(account_at.flags, transfer_at.code + 2);
assert.equal(account_at.timestamp, transfer_at.timestamp);
// transfer_links and account_lists (see the fields).
const links_stride = 8, l_debit = 0, l_credit = 1, l_next_debit = 2, l_next_credit = 3;
const l_prev_debit = 4, l_prev_credit = 5;
const lists_stride = 4, a_head = 0, a_tail = 1, a_tail_credit = 2;
const undo_account = 1, undo_account_insert = 2, undo_transfer_insert = 3, undo_status = 4;
const undo_change_event = 5;
// A change event row: type, transfer slot, debit slot, credit slot, timestamp lo/hi, debit and
// credit account flags, then both accounts' four balances (after the event).
const change_event_words = 40;
const ChangeEventType = { single_phase: 0, pending: 1, posted: 2, voided: 3, expired: 4 } as const;
const undo_entries_max = batch_events_max * 4;
const chunk_events = 64; // A power of two.

const timestamp_max_hi = 0x7fffffff; // TimestampRange max = 2^63 - 1.
// The `created` status inside the create loop: -1 is a small integer, which V8 never boxes
// (0xffffffff is a double, and returning one from a call allocates); a Uint32Array store of -1
// writes 0xffffffff, the wire value of both AS.created and TS.created.
const created = -1;
assert(AS.created === 0xffffffff && TS.created === 0xffffffff);

export class Ledger {
    readonly accounts_max: number;
    readonly transfers_max: number;
    readonly orphans_max: number;
    readonly history_max: number;
    readonly change_events_max: number;
    private readonly log: (line: string) => void;
    readonly change_event_words: Uint32Array;
    change_events_count = 0;

    // The object stores; the aliases below are their record memory and id indexes.
    readonly accounts: MemoryRecordStore;
    readonly transfers: MemoryRecordStore;
    readonly account_bytes: Uint8Array;
    readonly account_words: Uint32Array;
    readonly transfer_bytes: Uint8Array;
    readonly transfer_words: Uint32Array;
    readonly orphan_words: Uint32Array;
    readonly accounts_index: IdTable;
    readonly transfers_index: IdTable;
    orphans_count = 0;
    history_count = 0;

    // Per transfer: pending status and history row (persistent state segments).
    readonly transfer_status: Uint8Array;
    readonly transfer_history_row: Uint32Array;
    // Per transfer, interleaved (`links_stride` words each) so that one cache line serves an
    // append: its two account slots and its links in both accounts' doubly linked lists (ordered
    // by timestamp), which serve get_account_transfers/get_account_balances.
    readonly transfer_links: Uint32Array;
    // Per account (`lists_stride` words): the head and tail of its list, and whether the
    // account is the credit side of its tail transfer (meaningful only when the tail is not
    // `none`): appending then writes the tail's next link without first reading the tail's
    // debit slot.
    readonly account_lists: Uint32Array;
    // History rows: debit account balances (16 words) then credit account balances (16 words).
    readonly history_words: Uint32Array;

    // Min-heap of pending transfers with a timeout, keyed by (expires_at, transfer slot).
    // Entries of transfers no longer pending (or rolled back) are dropped lazily.
    readonly expiry_hi: Uint32Array;
    readonly expiry_lo: Uint32Array;
    readonly expiry_slot: Uint32Array;
    // The transfer's timestamp, to detect slots reused after a rolled-back chain.
    readonly expiry_stamp: Uint32Array;
    readonly expiry_stamp_hi: Uint32Array;
    expiry_count = 0;

    // Undo log for linked chains.
    private readonly undo_kind = new Uint8Array(undo_entries_max);
    private readonly undo_argument = new Uint32Array(undo_entries_max);
    private readonly undo_words = new Uint32Array(undo_entries_max * record_words);
    private undo_count = 0;
    private chain_open = false;

    // The input being executed: create batches are read in place through a u32 view of the
    // caller's buffer when they are 4-byte aligned (the view is made once per buffer, and the
    // replica passes slices of one arena); anything else is first copied into the scratch.
    // Execution never writes to the input.
    private input_words: Uint32Array<ArrayBufferLike>;
    private readonly input_bytes = new Uint8Array(batch_events_max * record_size);
    private readonly input_scratch_words = new Uint32Array(this.input_bytes.buffer);
    private view_buffer: ArrayBufferLike | null = null;
    private view_words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
    // Scratch for the output.
    private readonly output_bytes = new Uint8Array((batch_events_max + 1) * record_size);
    private readonly output_words = new Uint32Array(this.output_bytes.buffer);
    private readonly scratch = new Uint32Array(16);

    // The timestamp of the current event and of the batch, as (hi, lo) u32 pairs.
    /** Folds the loads of the warm-up passes; read by nobody, it only keeps them alive. */
    warm_sink = 0;
    private event_hi = 0;
    private event_lo = 0;
    private batch_hi = 0;
    private batch_lo = 0;
    // The timestamp reported with the current result (object's for created/exists).
    private result_hi = 0;
    private result_lo = 0;

    constructor(config: LedgerConfig) {
        assert(Number.isInteger(config.accounts_max) && config.accounts_max > 0);
        assert(Number.isInteger(config.transfers_max) && config.transfers_max > 0);
        this.accounts_max = config.accounts_max;
        this.transfers_max = config.transfers_max;
        this.orphans_max = config.orphans_max ?? config.transfers_max;
        this.history_max = config.history_max ?? config.transfers_max;
        this.change_events_max = config.change_events_max ?? 0;
        assert(this.change_events_max === 0 || this.change_events_max >= 2 * this.transfers_max,
            'ledger: change_events_max must be 0 or at least 2 * transfers_max');
        this.log = config.log ?? console.error;
        this.input_words = this.input_scratch_words;
        this.change_event_words = new Uint32Array(this.change_events_max * change_event_words);
        this.orphan_words = new Uint32Array(this.orphans_max * 4);
        // Transfers look accounts up at random: their id table is not grouped (id_table.ts).
        this.accounts = new MemoryRecordStore(this.accounts_max, this.accounts_max, undefined,
            undefined, false);
        // Burnt ids share the transfers table, so one probe tells created, burnt, or new.
        this.transfers = new MemoryRecordStore(this.transfers_max,
            this.transfers_max + this.orphans_max, this.orphan_words, 4);
        this.account_bytes = this.accounts.bytes;
        this.account_words = this.accounts.words;
        this.accounts_index = this.accounts.index;
        this.transfer_bytes = this.transfers.bytes;
        this.transfer_words = this.transfers.words;
        this.transfers_index = this.transfers.index;
        const t = this.transfers_max;
        this.transfer_status = new Uint8Array(t);
        this.transfer_history_row = new Uint32Array(t);
        this.transfer_links = new Uint32Array(t * links_stride);
        this.account_lists = new Uint32Array(this.accounts_max * lists_stride).fill(none);
        this.history_words = new Uint32Array(this.history_max * 32);
        this.expiry_hi = new Uint32Array(t);
        this.expiry_lo = new Uint32Array(t);
        this.expiry_slot = new Uint32Array(t);
        this.expiry_stamp = new Uint32Array(t);
        this.expiry_stamp_hi = new Uint32Array(t);
        // Touch every page now, so that page faults happen at startup, not in the first batches.
        this.prefault();
    }

    private prefault(): void {
        const arrays = [this.account_words, this.transfer_words, this.transfers_index.table,
            this.accounts_index.table, this.history_words, this.transfer_links,
            this.transfer_history_row];
        for (const array of arrays) {
            for (let i = 0; i < array.length; i += 1024) array[i] = 0;
        }
    }

    get accounts_count(): number {
        return this.accounts.count;
    }

    get transfers_count(): number {
        return this.transfers.count;
    }

    /** The account slots of transfer `slot` (for invariant checks in tests). */
    transfer_debit_account_slot(slot: number): number {
        assert(slot >= 0 && slot < this.transfers_count);
        return this.transfer_links[slot * links_stride + l_debit];
    }

    transfer_credit_account_slot(slot: number): number {
        assert(slot >= 0 && slot < this.transfers_count);
        return this.transfer_links[slot * links_stride + l_credit];
    }

    /**
     * The first limit a create batch of `input_length` bytes would exceed (counting every event
     * as if it succeeded), or Limit.none when it fits.
     */
    capacity_limit(operation: number, input_length: number): number {
        const events = Math.floor(input_length / record_size);
        if (operation === Operation.create_accounts) {
            return this.accounts_count + events > this.accounts_max ? Limit.accounts_max
                : Limit.none;
        }
        if (operation !== Operation.create_transfers) return Limit.none;
        if (this.transfers_count + events > this.transfers_max) return Limit.transfers_max;
        if (this.orphans_count + events > this.orphans_max) return Limit.orphans_max;
        if (this.history_count + events > this.history_max) return Limit.history_max;
        return Limit.none;
    }

    /** The configured value of a limit, and how much of it is used. */
    limit_value(limit: number): number {
        switch (limit) {
            case Limit.accounts_max: return this.accounts_max;
            case Limit.transfers_max: return this.transfers_max;
            case Limit.orphans_max: return this.orphans_max;
            case Limit.history_max: return this.history_max;
            default: assert.fail(`ledger: no limit ${limit}`);
        }
    }

    limit_used(limit: number): number {
        switch (limit) {
            case Limit.accounts_max: return this.accounts_count;
            case Limit.transfers_max: return this.transfers_count;
            case Limit.orphans_max: return this.orphans_count;
            case Limit.history_max: return this.history_count;
            default: assert.fail(`ledger: no limit ${limit}`);
        }
    }

    /** Returns why a batch cannot be executed for lack of capacity, or null if it can. */
    capacity_error(operation: number, input_length: number): string | null {
        const limit = this.capacity_limit(operation, input_length);
        if (limit === Limit.none) return null;
        const events = Math.floor(input_length / record_size);
        return `${limit_name(limit)}=${this.limit_value(limit)} would be exceeded ` +
            `(${this.limit_used(limit)} used, ${events} in the batch)`;
    }

    /**
     * The prefetch step: asks the object stores to make ready every record the batch can touch
     * (see the contract in record_store.ts). It may run before `execute` at the same state; it
     * changes no logical state, and `execute` is correct without it.
     */
    prefetch(operation: number, input: Uint8Array, input_offset: number, input_length: number) {
        assert(input_length >= 0 && input_length <= this.input_bytes.length);
        assert(input_offset >= 0 && input_offset + input_length <= input.length);
        assert(operation >= Operation.pulse);
        // Every record is in memory: nothing to read (see the contract in record_store.ts).
        if (this.accounts.resident && this.transfers.resident) return;
        const base = this.input_use(operation, input, input_offset, input_length);
        const words = this.input_words;
        let sink = 0, ids = 0;
        if (operation === Operation.create_transfers) {
            const events = input_length >>> 7;
            for (let e = base; e < base + events * record_words; e += record_words) {
                sink ^= this.transfers.prefetch(words, e) ^
                    this.accounts.prefetch(words, e + w_debit_account) ^
                    this.accounts.prefetch(words, e + w_credit_account);
                ids += 3;
                if (!u128_is_zero(words, e + w_pending_id)) {
                    sink ^= this.transfers.prefetch(words, e + w_pending_id);
                    ids++;
                }
            }
        } else if (operation === Operation.create_accounts) {
            const events = input_length >>> 7;
            for (let e = base; e < base + events * record_words; e += record_words, ids++) {
                sink ^= this.accounts.prefetch(words, e);
            }
        } else if (operation === Operation.lookup_accounts ||
            operation === Operation.lookup_transfers) {
            const store = operation === Operation.lookup_accounts ? this.accounts : this.transfers;
            for (let e = 0; e < (input_length >>> 4) * 4; e += 4, ids++) {
                sink ^= store.prefetch(words, e);
            }
        } else if (operation === Operation.get_account_transfers ||
            operation === Operation.get_account_balances) {
            if (input_length === 128) sink ^= this.accounts.prefetch(words, 0);
        }
        // Queries, change events and the pulse scan in-memory indexes: nothing to fetch yet.
        assert(ids <= prefetch_ids_max);
        this.warm_sink ^= sink;
    }

    execute(
        operation: number, timestamp: bigint, input: Uint8Array, input_offset: number,
        input_length: number, output: Uint8Array, output_offset: number,
    ): number {
        assert(input_length >= 0 && input_length <= this.input_bytes.length);
        assert(input_offset >= 0 && input_offset + input_length <= input.length);
        assert(timestamp > 0n && timestamp < (1n << 63n));
        // The replica validates batches (wire-protocol.md §6.3) before they get here.
        if (operation === Operation.create_accounts || operation === Operation.create_transfers) {
            assert(input_length % record_size === 0, 'ledger: partial event in batch');
        }
        const capacity = this.capacity_error(operation, input_length);
        if (capacity !== null) {
            const line = `ledger: batch of ${input_length >>> 7} events refused: ${capacity}`;
            this.log(line);
            throw new LedgerCapacityError(line);
        }
        const base = this.input_use(operation, input, input_offset, input_length);
        this.batch_hi = Number(timestamp >> 32n);
        this.batch_lo = Number(timestamp & 0xffffffffn);
        let length = 0;
        switch (operation) {
            case Operation.create_accounts:
                length = this.execute_create(false, input_length >>> 7, base);
                break;
            case Operation.create_transfers:
                length = this.execute_create(true, input_length >>> 7, base);
                break;
            case Operation.lookup_accounts:
                length = this.execute_lookup(this.accounts, input_length >>> 4);
                break;
            case Operation.lookup_transfers:
                length = this.execute_lookup(this.transfers, input_length >>> 4);
                break;
            case Operation.get_account_transfers:
            case Operation.get_account_balances:
                length = input_length === 128 ? this.execute_account_filter(operation) : 0;
                break;
            case Operation.query_accounts:
            case Operation.query_transfers:
                length = input_length === 64 ? this.execute_query(operation) : 0;
                break;
            case Operation.pulse:
                this.execute_pulse();
                length = 0;
                break;
            case Operation.get_change_events:
                length = input_length === 64 ? this.execute_change_events() : 0;
                break;
            default:
                throw new Error(`ledger: unknown operation ${operation}`);
        }
        assert(length <= this.output_bytes.length);
        assert(output_offset + length <= output.length, 'ledger: output buffer too small');
        output.set(this.output_bytes.subarray(0, length), output_offset);
        return length;
    }

    /**
     * Points `input_words` at the input and returns the word offset of its first byte there:
     * the caller's memory for an aligned create batch, else the scratch copy (offset 0).
     */
    private input_use(operation: number, input: Uint8Array, input_offset: number,
        input_length: number): number {
        const start = input.byteOffset + input_offset;
        const create = operation === Operation.create_accounts ||
            operation === Operation.create_transfers;
        if (create && (start & 3) === 0) {
            if (input.buffer !== this.view_buffer) {
                this.view_buffer = input.buffer;
                this.view_words = new Uint32Array(input.buffer, 0, input.buffer.byteLength >>> 2);
            }
            this.input_words = this.view_words;
            return start >>> 2;
        }
        this.input_bytes.set(input.subarray(input_offset, input_offset + input_length));
        this.input_words = this.input_scratch_words;
        return 0;
    }

    // ---------------------------------------------------------------- create_* (batch loop)

    private set_event_timestamp(events: number, index: number): void {
        // event = batch - events + index + 1, in (hi, lo) arithmetic.
        let lo = this.batch_lo - events + index + 1;
        let hi = this.batch_hi;
        while (lo < 0) { lo += two_32; hi -= 1; }
        while (lo >= two_32) { lo -= two_32; hi += 1; }
        this.event_hi = hi;
        this.event_lo = lo;
    }

    private execute_create(transfers: boolean, events: number, base: number): number {
        const input = this.input_words;
        const out = this.output_words;
        const imported_flag = transfers ? transfer_flag_imported : account_flag_imported;
        const exists = transfers ? TS.exists : AS.exists;
        const batch_imported = events > 0 &&
            ((input[base + w_code_flags] >>> 16) & imported_flag) !== 0;
        let chain_start = -1;
        let chain_broken = false;
        if (transfers) {
            // Every event's record is copied into the free transfer slots in one memcpy; an
            // event that gets created then finds its record there (moved down by one copy
            // only when an earlier event of the batch failed).
            this.staged_first = this.transfers.count;
            this.input_base = base;
            this.transfers.stage(input, base, events);
        }
        for (let index = 0; index < events; index++) {
            const e = base + index * record_words;
            if (transfers && (index & (chunk_events - 1)) === 0) {
                this.chunk_resolve(e, Math.min(chunk_events, events - index));
            }
            this.chunk_index = index & (chunk_events - 1);
            // Event `index` is at batch - events + index + 1: one more than the previous one.
            if (index === 0) {
                this.set_event_timestamp(events, 0);
            } else if (this.event_lo === 0xffffffff) {
                this.event_lo = 0;
                this.event_hi++;
            } else {
                this.event_lo++;
            }
            this.result_hi = this.event_hi;
            this.result_lo = this.event_lo;
            if (transfers && chain_start === -1 && !batch_imported &&
                this.create_transfer_simple(e) === created) {
                out[index * 4] = this.result_lo;
                out[index * 4 + 1] = this.result_hi;
                out[index * 4 + 2] = created;
                out[index * 4 + 3] = 0;
                continue;
            }
            const flags = input[e + w_code_flags] >>> 16;
            let status: number;
            const linked = (flags & 1) !== 0;
            if (linked && chain_start === -1) {
                chain_start = index;
                this.chain_begin();
            }
            if (linked && index === events - 1) {
                status = AS.linked_event_chain_open; // Same value for transfers.
            } else if (chain_broken) {
                status = AS.linked_event_failed;
            } else {
                status = this.create_common(transfers, e, flags & imported_flag, batch_imported);
                if (status === 0) {
                    status = transfers ? this.create_transfer(e) : this.create_account(e);
                }
            }
            if (status !== created && status !== exists) {
                // Only created/exists report the object's timestamp; every failure reports the
                // event's assigned one, even when an imported timestamp was already read
                // (TigerBeetle 0.17.9 state_machine.zig, `execute_create`).
                this.result_hi = this.event_hi;
                this.result_lo = this.event_lo;
            }
            if (status !== created) {
                if (chain_start !== -1 && !chain_broken) {
                    chain_broken = true;
                    this.chain_rollback();
                    for (let prior = chain_start; prior < index; prior++) {
                        out[prior * 4 + 2] = AS.linked_event_failed;
                    }
                }
                if (transfers && transient(status)) this.orphan_insert(e);
            }
            out[index * 4] = this.result_lo;
            out[index * 4 + 1] = this.result_hi;
            out[index * 4 + 2] = status;
            out[index * 4 + 3] = 0;
            if (chain_start !== -1 && (!linked || status === AS.linked_event_chain_open)) {
                if (!chain_broken) this.chain_commit();
                chain_start = -1;
                chain_broken = false;
            }
        }
        assert(!this.chain_open);
        if (transfers) this.transfers.unstage();
        return events * 16;
    }
    /** The transfer slot where event 0 of the running batch is staged, and its input word. */
    private staged_first = 0;
    private input_base = 0;

    /**
     * Looks up the debit and credit account slots of the next `count` transfer events in one
     * pass (a transfers batch never adds or removes accounts, so the slots stay valid while the
     * chunk runs), and touches each event's bucket in the transfers table. The lookups of
     * different events are independent, so the CPU overlaps their cache misses instead of
     * paying them one by one inside the dependent checks. Chunks are small so that what they
     * touch is still cached when their events run.
     */
    private chunk_resolve(e: number, count: number): void {
        const input = this.input_words, accounts = this.accounts_index;
        const slots = this.chunk_slots;
        accounts.find_pairs(input, e + w_debit_account, record_words,
            w_credit_account - w_debit_account, count, slots);
        this.warm_sink ^= this.transfers_index.warm(input, e, record_words, count);
    }
    // Per event of the current chunk: debit and credit account slots (-1 if absent).
    private readonly chunk_slots = new Int32Array(chunk_events * 2);
    private chunk_index = 0;

    /** The checks shared by accounts and transfers that precede the type-specific ones. */
    private create_common(
        transfers: boolean, e: number, imported: number, batch_imported: boolean,
    ): number {
        const input = this.input_words;
        if (batch_imported !== (imported !== 0)) {
            if (imported !== 0) {
                return transfers ? TS.imported_event_not_expected : AS.imported_event_not_expected;
            }
            return transfers ? TS.imported_event_expected : AS.imported_event_expected;
        }
        const lo = input[e + w_timestamp_lo], hi = input[e + w_timestamp_hi];
        if (imported !== 0) {
            if ((lo === 0 && hi === 0) || hi > timestamp_max_hi) {
                return transfers ? TS.imported_event_timestamp_out_of_range :
                    AS.imported_event_timestamp_out_of_range;
            }
            if (hi > this.batch_hi || (hi === this.batch_hi && lo >= this.batch_lo)) {
                return transfers ? TS.imported_event_timestamp_must_not_advance :
                    AS.imported_event_timestamp_must_not_advance;
            }
        } else if (lo !== 0 || hi !== 0) {
            return AS.timestamp_must_be_zero; // Same value for transfers.
        }
        return 0;
    }

    // ---------------------------------------------------------------- accounts

    private create_account(e: number): number {
        const input = this.input_words;
        const flags = input[e + w_code_flags] >>> 16;
        if (input[e + w_reserved_or_timeout] !== 0) return AS.reserved_field;
        if ((flags & account_flag_padding) !== 0) return AS.reserved_flag;
        if (u128_is_zero(input, e)) return AS.id_must_not_be_zero;
        if (u128_is_max(input, e)) return AS.id_must_not_be_int_max;
        const existing = this.accounts.find(input, e);
        if (existing !== -1) return this.create_account_exists(e, existing * record_words);
        if ((flags & account_flag_debits_must_not_exceed_credits) !== 0 &&
            (flags & account_flag_credits_must_not_exceed_debits) !== 0) {
            return AS.flags_are_mutually_exclusive;
        }
        if (!u128_is_zero(input, e + w_debits_pending)) return AS.debits_pending_must_be_zero;
        if (!u128_is_zero(input, e + w_debits_posted)) return AS.debits_posted_must_be_zero;
        if (!u128_is_zero(input, e + w_credits_pending)) return AS.credits_pending_must_be_zero;
        if (!u128_is_zero(input, e + w_credits_posted)) return AS.credits_posted_must_be_zero;
        if (input[e + w_ledger] === 0) return AS.ledger_must_not_be_zero;
        if ((input[e + w_code_flags] & 0xffff) === 0) return AS.code_must_not_be_zero;
        if ((flags & account_flag_imported) !== 0) {
            const hi = input[e + w_timestamp_hi], lo = input[e + w_timestamp_lo];
            if (this.imported_regresses(hi, lo, true)) {
                return AS.imported_event_timestamp_must_not_regress;
            }
            this.result_hi = hi;
            this.result_lo = lo;
        }
        // Slot order is timestamp order: the timestamp is set right after the append, before
        // anything else can look at the new record.
        const slot = this.accounts.append(input, e);
        this.account_words[slot * record_words + w_timestamp_lo] = this.result_lo;
        this.account_words[slot * record_words + w_timestamp_hi] = this.result_hi;
        this.account_lists[slot * lists_stride + a_head] = none;
        this.account_lists[slot * lists_stride + a_tail] = none;
        this.undo_push(undo_account_insert, slot);
        return created;
    }

    private create_account_exists(e: number, a: number): number {
        const input = this.input_words, accounts = this.account_words;
        if ((input[e + w_code_flags] >>> 16) !== (accounts[a + w_code_flags] >>> 16)) {
            return AS.exists_with_different_flags;
        }
        if (!u128_equal(input, e + w_user_data_128, accounts, a + w_user_data_128)) {
            return AS.exists_with_different_user_data_128;
        }
        if (input[e + w_user_data_64] !== accounts[a + w_user_data_64] ||
            input[e + w_user_data_64 + 1] !== accounts[a + w_user_data_64 + 1]) {
            return AS.exists_with_different_user_data_64;
        }
        if (input[e + w_user_data_32] !== accounts[a + w_user_data_32]) {
            return AS.exists_with_different_user_data_32;
        }
        if (input[e + w_ledger] !== accounts[a + w_ledger]) return AS.exists_with_different_ledger;
        if ((input[e + w_code_flags] & 0xffff) !== (accounts[a + w_code_flags] & 0xffff)) {
            return AS.exists_with_different_code;
        }
        this.result_hi = accounts[a + w_timestamp_hi];
        this.result_lo = accounts[a + w_timestamp_lo];
        return AS.exists;
    }

    /**
     * An imported timestamp must exceed every timestamp of its own kind (the last slot holds the
     * greatest) and must not collide with an object of the other kind.
     */
    private imported_regresses(hi: number, lo: number, account: boolean): boolean {
        const own_words = account ? this.account_words : this.transfer_words;
        const own_count = account ? this.accounts_count : this.transfers_count;
        if (own_count > 0) {
            const last = (own_count - 1) * record_words;
            const last_hi = own_words[last + w_timestamp_hi];
            const last_lo = own_words[last + w_timestamp_lo];
            if (hi < last_hi || (hi === last_hi && lo <= last_lo)) return true;
        }
        return (account ? this.transfers : this.accounts).find_timestamp(hi, lo) !== -1;
    }

    // ---------------------------------------------------------------- transfers

    private create_transfer(e: number): number {
        const input = this.input_words;
        const flags = input[e + w_code_flags] >>> 16;
        if ((flags & transfer_flag_padding) !== 0) return TS.reserved_flag;
        if (u128_is_zero(input, e)) return TS.id_must_not_be_zero;
        if (u128_is_max(input, e)) return TS.id_must_not_be_int_max;
        const existing = this.transfers.find(input, e);
        if (existing >= 0) return this.create_transfer_exists(e, existing * record_words);
        if (existing !== -1) return TS.id_already_failed;
        if ((flags & (transfer_flag_post_pending_transfer | transfer_flag_void_pending_transfer))
            !== 0) {
            return this.post_or_void(e, flags);
        }
        if (u128_is_zero(input, e + w_debit_account)) return TS.debit_account_id_must_not_be_zero;
        if (u128_is_max(input, e + w_debit_account)) return TS.debit_account_id_must_not_be_int_max;
        if (u128_is_zero(input, e + w_credit_account)) {
            return TS.credit_account_id_must_not_be_zero;
        }
        if (u128_is_max(input, e + w_credit_account)) {
            return TS.credit_account_id_must_not_be_int_max;
        }
        if (u128_equal(input, e + w_debit_account, input, e + w_credit_account)) {
            return TS.accounts_must_be_different;
        }
        if (!u128_is_zero(input, e + w_pending_id)) return TS.pending_id_must_be_zero;
        if ((flags & transfer_flag_pending) === 0) {
            if (input[e + w_reserved_or_timeout] !== 0) {
                return TS.timeout_reserved_for_pending_transfer;
            }
            if ((flags & (transfer_flag_closing_debit | transfer_flag_closing_credit)) !== 0) {
                return TS.closing_transfer_must_be_pending;
            }
        }
        if (input[e + w_ledger] === 0) return TS.ledger_must_not_be_zero;
        if ((input[e + w_code_flags] & 0xffff) === 0) return TS.code_must_not_be_zero;
        // Looked up by chunk_resolve; equal to this.accounts.find of each id.
        const debit_slot = this.chunk_slots[this.chunk_index * 2];
        if (debit_slot === -1) return TS.debit_account_not_found;
        const credit_slot = this.chunk_slots[this.chunk_index * 2 + 1];
        if (credit_slot === -1) return TS.credit_account_not_found;
        return this.create_transfer_accounts(e, flags, debit_slot, credit_slot);
    }

    /**
     * The common case in one function: a transfer with no flags, timestamp, pending id or
     * timeout, outside a linked chain, between two existing open accounts of its ledger that
     * have no balance limits, with amounts far from overflow. Such a transfer passes every check
     * of create_transfer, so this creates it and returns `created`; anything else returns 0
     * without any effect, and the general path decides (with every status in its order).
     */
    private create_transfer_simple(e: number): number {
        const input = this.input_words;
        const code_flags = input[e + w_code_flags];
        const ledger = input[e + w_ledger];
        if ((code_flags >>> 16) !== 0 || (code_flags & 0xffff) === 0 || ledger === 0) return 0;
        if ((input[e + w_reserved_or_timeout] | input[e + w_timestamp_lo] |
            input[e + w_timestamp_hi]) !== 0) {
            return 0;
        }
        if ((input[e + w_pending_id] | input[e + w_pending_id + 1] | input[e + w_pending_id + 2] |
            input[e + w_pending_id + 3]) !== 0) {
            return 0;
        }
        // Slots found mean valid account ids (an account id is never zero or int max); distinct
        // slots mean distinct ids.
        const debit_slot = this.chunk_slots[this.chunk_index * 2];
        const credit_slot = this.chunk_slots[this.chunk_index * 2 + 1];
        if (debit_slot < 0 || credit_slot < 0 || debit_slot === credit_slot) return 0;
        const accounts = this.account_words;
        const dr = debit_slot * record_words, cr = credit_slot * record_words;
        if (accounts[dr + w_ledger] !== ledger || accounts[cr + w_ledger] !== ledger) return 0;
        const special = (account_flag_closed | account_flag_debits_must_not_exceed_credits |
            account_flag_credits_must_not_exceed_debits) << 16;
        if (((accounts[dr + w_code_flags] | accounts[cr + w_code_flags]) & special) !== 0) {
            return 0;
        }
        // As in transfer_overflows: an amount below 2^96 cannot overflow these balances.
        if (input[e + w_amount + 3] !== 0 || accounts[dr + w_debits_pending + 3] >= 0x7fffffff ||
            accounts[dr + w_debits_posted + 3] >= 0x7fffffff ||
            accounts[cr + w_credits_pending + 3] >= 0x7fffffff ||
            accounts[cr + w_credits_posted + 3] >= 0x7fffffff) {
            return 0;
        }
        const id_or = input[e] | input[e + 1] | input[e + 2] | input[e + 3];
        const id_and = input[e] & input[e + 1] & input[e + 2] & input[e + 3];
        if (id_or === 0 || id_and === -1) return 0; // Zero or int max.
        // Not created and not burnt; the miss is what transfer_insert's append reuses.
        if (this.transfers.find(input, e) !== -1) return 0;
        this.accounts.update(debit_slot);
        this.accounts.update(credit_slot);
        const slot = this.transfer_insert(e, debit_slot, credit_slot);
        // The staged record already holds the amount (no balancing here), below 2^96.
        const amount_0 = input[e + w_amount], amount_1 = input[e + w_amount + 1];
        const amount_2 = input[e + w_amount + 2];
        u128_add_small(accounts, dr + w_debits_posted, amount_0, amount_1, amount_2);
        u128_add_small(accounts, cr + w_credits_posted, amount_0, amount_1, amount_2);
        if (((accounts[dr + w_code_flags] | accounts[cr + w_code_flags]) &
            (account_flag_history << 16)) !== 0) {
            this.history_record(slot);
        }
        if (this.change_events_max !== 0) {
            this.change_event_record(ChangeEventType.single_phase, slot, debit_slot, credit_slot,
                this.result_hi, this.result_lo);
        }
        return created;
    }

    private create_transfer_accounts(
        e: number, flags: number, debit_slot: number, credit_slot: number,
    ): number {
        const input = this.input_words, accounts = this.account_words;
        const dr = debit_slot * record_words, cr = credit_slot * record_words;
        if (accounts[dr + w_ledger] !== accounts[cr + w_ledger]) {
            return TS.accounts_must_have_the_same_ledger;
        }
        if (input[e + w_ledger] !== accounts[dr + w_ledger]) {
            return TS.transfer_must_have_the_same_ledger_as_accounts;
        }
        if ((flags & transfer_flag_imported) !== 0) {
            const status = this.imported_transfer_checks(e, dr, cr);
            if (status !== 0) return status;
        }
        if (((accounts[dr + w_code_flags] >>> 16) & account_flag_closed) !== 0) {
            return TS.debit_account_already_closed;
        }
        if (((accounts[cr + w_code_flags] >>> 16) & account_flag_closed) !== 0) {
            return TS.credit_account_already_closed;
        }
        const amount = this.scratch; // amount at 0, sums at 4 and 8.
        u128_copy(amount, 0, input, e + w_amount);
        if ((flags & transfer_flag_balancing_debit) !== 0) {
            u128_add(amount, 4, accounts, dr + w_debits_posted, accounts, dr + w_debits_pending);
            u128_sub_saturating(amount, 8, accounts, dr + w_credits_posted, amount, 4);
            if (u128_compare(amount, 8, amount, 0) < 0) u128_copy(amount, 0, amount, 8);
        }
        if ((flags & transfer_flag_balancing_credit) !== 0) {
            u128_add(amount, 4, accounts, cr + w_credits_posted, accounts, cr + w_credits_pending);
            u128_sub_saturating(amount, 8, accounts, cr + w_debits_posted, amount, 4);
            if (u128_compare(amount, 8, amount, 0) < 0) u128_copy(amount, 0, amount, 8);
        }
        const status = this.transfer_overflows(e, flags, dr, cr);
        if (status !== 0) return status;
        this.transfer_apply(e, flags, debit_slot, credit_slot);
        return created;
    }

    private imported_transfer_checks(e: number, dr: number, cr: number): number {
        const input = this.input_words, accounts = this.account_words;
        const hi = input[e + w_timestamp_hi], lo = input[e + w_timestamp_lo];
        if (this.imported_regresses(hi, lo, false)) {
            return TS.imported_event_timestamp_must_not_regress;
        }
        if (!timestamp_after(hi, lo, accounts[dr + w_timestamp_hi],
            accounts[dr + w_timestamp_lo])) {
            return TS.imported_event_timestamp_must_postdate_debit_account;
        }
        if (!timestamp_after(hi, lo, accounts[cr + w_timestamp_hi],
            accounts[cr + w_timestamp_lo])) {
            return TS.imported_event_timestamp_must_postdate_credit_account;
        }
        if (input[e + w_reserved_or_timeout] !== 0) return TS.imported_event_timeout_must_be_zero;
        this.result_hi = hi;
        this.result_lo = lo;
        return 0;
    }

    /** Overflow and limit checks on the actual amount (scratch[0..4]). */
    private transfer_overflows(e: number, flags: number, dr: number, cr: number): number {
        const accounts = this.account_words, s = this.scratch;
        // Fast path: an amount below 2^96 cannot overflow balances whose top limbs are below
        // 2^31 (even summed in pairs), which is every realistic balance.
        const small = s[3] === 0 && accounts[dr + w_debits_pending + 3] < 0x7fffffff &&
            accounts[dr + w_debits_posted + 3] < 0x7fffffff &&
            accounts[cr + w_credits_pending + 3] < 0x7fffffff &&
            accounts[cr + w_credits_posted + 3] < 0x7fffffff;
        if (!small) {
            const status = this.transfer_overflows_slow(flags, dr, cr);
            if (status !== 0) return status;
        }
        if (this.input_words[e + w_reserved_or_timeout] !== 0 &&
            this.timeout_overflows(this.input_words[e + w_reserved_or_timeout])) {
            return TS.overflows_timeout;
        }
        const dr_flags = accounts[dr + w_code_flags] >>> 16;
        if ((dr_flags & account_flag_debits_must_not_exceed_credits) !== 0) {
            u128_add(s, 8, accounts, dr + w_debits_pending, accounts, dr + w_debits_posted);
            u128_add(s, 8, s, 8, s, 0);
            if (u128_compare(s, 8, accounts, dr + w_credits_posted) > 0) return TS.exceeds_credits;
        }
        const cr_flags = accounts[cr + w_code_flags] >>> 16;
        if ((cr_flags & account_flag_credits_must_not_exceed_debits) !== 0) {
            u128_add(s, 12, accounts, cr + w_credits_pending, accounts, cr + w_credits_posted);
            u128_add(s, 12, s, 12, s, 0);
            if (u128_compare(s, 12, accounts, cr + w_debits_posted) > 0) return TS.exceeds_debits;
        }
        return 0;
    }

    private transfer_overflows_slow(flags: number, dr: number, cr: number): number {
        const accounts = this.account_words, s = this.scratch;
        if ((flags & transfer_flag_pending) !== 0) {
            if (u128_add(s, 4, s, 0, accounts, dr + w_debits_pending)) {
                return TS.overflows_debits_pending;
            }
            if (u128_add(s, 4, s, 0, accounts, cr + w_credits_pending)) {
                return TS.overflows_credits_pending;
            }
        }
        if (u128_add(s, 4, s, 0, accounts, dr + w_debits_posted)) return TS.overflows_debits_posted;
        if (u128_add(s, 4, s, 0, accounts, cr + w_credits_posted)) {
            return TS.overflows_credits_posted;
        }
        // The sum of pending and posted never overflows (an invariant), so only add the amount.
        u128_add(s, 8, accounts, dr + w_debits_pending, accounts, dr + w_debits_posted);
        if (u128_add(s, 8, s, 8, s, 0)) return TS.overflows_debits;
        u128_add(s, 12, accounts, cr + w_credits_pending, accounts, cr + w_credits_posted);
        if (u128_add(s, 12, s, 12, s, 0)) return TS.overflows_credits;
        return 0;
    }

    /** Computes expires_at = result timestamp + timeout s into expires_hi/lo; true if > 2^63-1. */
    private timeout_overflows(timeout_seconds: number): boolean {
        const low_product = (timeout_seconds & 0xffff) * 1e9;
        const high_product = Math.floor(timeout_seconds / 65536) * 1e9;
        const high_low = high_product % 65536;
        const high_high = Math.floor(high_product / 65536);
        const sum = low_product + high_low * 65536 + this.result_lo;
        this.expires_lo = sum % two_32;
        this.expires_hi = this.result_hi + high_high + Math.floor(sum / two_32);
        return this.expires_hi > timestamp_max_hi;
    }
    private expires_hi = 0;
    private expires_lo = 0;

    /** Inserts the transfer (amount in scratch[0..4]) and moves the balances. */
    private transfer_apply(e: number, flags: number, debit_slot: number, credit_slot: number) {
        const accounts = this.account_words;
        const dr = debit_slot * record_words, cr = credit_slot * record_words;
        this.undo_account_save(debit_slot);
        this.undo_account_save(credit_slot);
        const slot = this.transfer_insert(e, debit_slot, credit_slot);
        const t = slot * record_words;
        u128_copy(this.transfer_words, t + w_amount, this.scratch, 0);
        const pending = (flags & transfer_flag_pending) !== 0;
        if (pending) {
            u128_add_to(accounts, dr + w_debits_pending, this.scratch, 0);
            u128_add_to(accounts, cr + w_credits_pending, this.scratch, 0);
            this.status_set(slot, pending_pending);
            if (this.input_words[e + w_reserved_or_timeout] !== 0) this.expiry_push(slot);
        } else {
            u128_add_to(accounts, dr + w_debits_posted, this.scratch, 0);
            u128_add_to(accounts, cr + w_credits_posted, this.scratch, 0);
        }
        if ((flags & transfer_flag_closing_debit) !== 0) accounts[dr + w_code_flags] |= 0x200000;
        if ((flags & transfer_flag_closing_credit) !== 0) accounts[cr + w_code_flags] |= 0x200000;
        if (((accounts[dr + w_code_flags] | accounts[cr + w_code_flags]) &
            (account_flag_history << 16)) !== 0) {
            this.history_record(slot);
        }
        if (this.change_events_max === 0) return;
        this.change_event_record(pending ? ChangeEventType.pending : ChangeEventType.single_phase,
            slot, debit_slot, credit_slot, this.result_hi, this.result_lo);
    }

    /**
     * Appends the input event (staged by execute_create) as a transfer record and links it to
     * both accounts. One function, with the links written through one local view: every
     * typed-array field costs V8 loads and checks on each use.
     */
    private transfer_insert(e: number, debit_slot: number, credit_slot: number): number {
        const slot = this.transfers.append_staged(this.staged_first +
            ((e - this.input_base) >>> 5));
        const t = slot * record_words;
        const transfer_words = this.transfer_words;
        transfer_words[t + w_timestamp_lo] = this.result_lo;
        transfer_words[t + w_timestamp_hi] = this.result_hi;
        this.transfer_status[slot] = pending_none;
        this.transfer_history_row[slot] = none;
        const links = this.transfer_links, lists = this.account_lists;
        const l = slot * links_stride;
        links[l + l_debit] = debit_slot;
        links[l + l_credit] = credit_slot;
        links[l + l_next_debit] = none;
        links[l + l_next_credit] = none;
        // Append to the debit account's list, then to the credit account's.
        let a = debit_slot * lists_stride;
        let tail = lists[a + a_tail];
        if (tail === none) lists[a + a_head] = slot;
        else links[tail * links_stride + l_next_debit + lists[a + a_tail_credit]] = slot;
        lists[a + a_tail] = slot;
        lists[a + a_tail_credit] = 0;
        links[l + l_prev_debit] = tail;
        a = credit_slot * lists_stride;
        tail = lists[a + a_tail];
        if (tail === none) lists[a + a_head] = slot;
        else links[tail * links_stride + l_next_debit + lists[a + a_tail_credit]] = slot;
        lists[a + a_tail] = slot;
        lists[a + a_tail_credit] = 1;
        links[l + l_prev_credit] = tail;
        if (this.chain_open) this.undo_push(undo_transfer_insert, slot);
        return slot;
    }

    /** Appends `slot` to the account's list (checkpoint restore); returns the previous tail. */
    private link_append(account_slot: number, slot: number, credit: number): number {
        const lists = this.account_lists, a = account_slot * lists_stride;
        const tail = lists[a + a_tail];
        if (tail === none) {
            lists[a + a_head] = slot;
        } else {
            this.transfer_links[tail * links_stride + l_next_debit + lists[a + a_tail_credit]] =
                slot;
        }
        lists[a + a_tail] = slot;
        lists[a + a_tail_credit] = credit;
        return tail;
    }

    private link_remove_last(account_slot: number, prev: number): void {
        const lists = this.account_lists, links = this.transfer_links;
        const a = account_slot * lists_stride;
        lists[a + a_tail] = prev;
        if (prev === none) {
            lists[a + a_head] = none;
        } else if (links[prev * links_stride + l_debit] === account_slot) {
            lists[a + a_tail_credit] = 0;
            links[prev * links_stride + l_next_debit] = none;
        } else {
            lists[a + a_tail_credit] = 1;
            links[prev * links_stride + l_next_credit] = none;
        }
    }

    /** Keeps the balances after the transfer when either account has the history flag. */
    private history_record(slot: number): void {
        const accounts = this.account_words;
        const dr = this.transfer_links[slot * links_stride + l_debit] * record_words;
        const cr = this.transfer_links[slot * links_stride + l_credit] * record_words;
        const history = account_flag_history << 16;
        if ((accounts[dr + w_code_flags] & history) === 0 &&
            (accounts[cr + w_code_flags] & history) === 0) {
            return;
        }
        assert(this.history_count < this.history_max);
        const row = this.history_count++;
        this.transfer_history_row[slot] = row;
        copy_words(this.history_words, row * 32, accounts, dr + 4, 16);
        copy_words(this.history_words, row * 32 + 16, accounts, cr + 4, 16);
    }

    private create_transfer_exists(e: number, x: number): number {
        const input = this.input_words, transfers = this.transfer_words;
        const flags = input[e + w_code_flags] >>> 16;
        if (flags !== (transfers[x + w_code_flags] >>> 16)) return TS.exists_with_different_flags;
        if (!u128_equal(input, e + w_pending_id, transfers, x + w_pending_id)) {
            return TS.exists_with_different_pending_id;
        }
        if (input[e + w_reserved_or_timeout] !== transfers[x + w_reserved_or_timeout]) {
            return TS.exists_with_different_timeout;
        }
        const post_or_void = transfer_flag_post_pending_transfer |
            transfer_flag_void_pending_transfer;
        if ((flags & post_or_void) !== 0) return this.post_or_void_exists(e, x, flags);
        if (!u128_equal(input, e + w_debit_account, transfers, x + w_debit_account)) {
            return TS.exists_with_different_debit_account_id;
        }
        if (!u128_equal(input, e + w_credit_account, transfers, x + w_credit_account)) {
            return TS.exists_with_different_credit_account_id;
        }
        const balancing = transfer_flag_balancing_debit | transfer_flag_balancing_credit;
        if ((flags & balancing) !== 0) {
            if (u128_compare(input, e + w_amount, transfers, x + w_amount) < 0) {
                return TS.exists_with_different_amount;
            }
        } else if (!u128_equal(input, e + w_amount, transfers, x + w_amount)) {
            return TS.exists_with_different_amount;
        }
        return this.exists_user_data(e, x, -1);
    }

    /**
     * The user_data/ledger/code part of the idempotency check. With a pending transfer
     * (p >= 0), zero fields of the event stand for the pending transfer's values.
     */
    private exists_user_data(e: number, x: number, p: number): number {
        const input = this.input_words, transfers = this.transfer_words;
        const post = p >= 0;
        let source = post && u128_is_zero(input, e + w_user_data_128) ? p : -1;
        if (!u128_equal(source >= 0 ? transfers : input, source >= 0 ? source + w_user_data_128 :
            e + w_user_data_128, transfers, x + w_user_data_128)) {
            return TS.exists_with_different_user_data_128;
        }
        const u64_zero = (input[e + w_user_data_64] | input[e + w_user_data_64 + 1]) === 0;
        source = post && u64_zero ? p + w_user_data_64 : -1;
        const u64_lo = source >= 0 ? transfers[source] : input[e + w_user_data_64];
        const u64_hi = source >= 0 ? transfers[source + 1] : input[e + w_user_data_64 + 1];
        if (u64_lo !== transfers[x + w_user_data_64] ||
            u64_hi !== transfers[x + w_user_data_64 + 1]) {
            return TS.exists_with_different_user_data_64;
        }
        const u32 = post && input[e + w_user_data_32] === 0 ? transfers[p + w_user_data_32] :
            input[e + w_user_data_32];
        if (u32 !== transfers[x + w_user_data_32]) return TS.exists_with_different_user_data_32;
        const ledger = input[e + w_ledger];
        if ((ledger !== 0 || !post) && ledger !== transfers[x + w_ledger]) {
            return TS.exists_with_different_ledger;
        }
        const code = input[e + w_code_flags] & 0xffff;
        if ((code !== 0 || !post) && code !== (transfers[x + w_code_flags] & 0xffff)) {
            return TS.exists_with_different_code;
        }
        this.result_hi = transfers[x + w_timestamp_hi];
        this.result_lo = transfers[x + w_timestamp_lo];
        return TS.exists;
    }

    private post_or_void_exists(e: number, x: number, flags: number): number {
        const input = this.input_words, transfers = this.transfer_words;
        const p_slot = this.transfers.find(input, e + w_pending_id);
        assert(p_slot >= 0);
        const p = p_slot * record_words;
        if (!u128_is_zero(input, e + w_debit_account) &&
            !u128_equal(input, e + w_debit_account, transfers, x + w_debit_account)) {
            return TS.exists_with_different_debit_account_id;
        }
        if (!u128_is_zero(input, e + w_credit_account) &&
            !u128_equal(input, e + w_credit_account, transfers, x + w_credit_account)) {
            return TS.exists_with_different_credit_account_id;
        }
        const defaulted = (flags & transfer_flag_void_pending_transfer) !== 0 ?
            u128_is_zero(input, e + w_amount) : u128_is_max(input, e + w_amount);
        const expected = defaulted ? transfers : input;
        const expected_offset = defaulted ? p + w_amount : e + w_amount;
        if (!u128_equal(expected, expected_offset, transfers, x + w_amount)) {
            return TS.exists_with_different_amount;
        }
        return this.exists_user_data(e, x, p);
    }

    private post_or_void(e: number, flags: number): number {
        const input = this.input_words, transfers = this.transfer_words;
        const voiding = (flags & transfer_flag_void_pending_transfer) !== 0;
        const exclusive = transfer_flag_pending | transfer_flag_balancing_debit |
            transfer_flag_balancing_credit | transfer_flag_closing_debit |
            transfer_flag_closing_credit;
        if ((flags & transfer_flag_post_pending_transfer) !== 0 && voiding) {
            return TS.flags_are_mutually_exclusive;
        }
        if ((flags & exclusive) !== 0) return TS.flags_are_mutually_exclusive;
        if (u128_is_zero(input, e + w_pending_id)) return TS.pending_id_must_not_be_zero;
        if (u128_is_max(input, e + w_pending_id)) return TS.pending_id_must_not_be_int_max;
        if (u128_equal(input, e + w_pending_id, input, e)) return TS.pending_id_must_be_different;
        if (input[e + w_reserved_or_timeout] !== 0) return TS.timeout_reserved_for_pending_transfer;
        const p_slot = this.transfers.find(input, e + w_pending_id);
        if (p_slot < 0) return TS.pending_transfer_not_found;
        const p = p_slot * record_words;
        if (((transfers[p + w_code_flags] >>> 16) & transfer_flag_pending) === 0) {
            return TS.pending_transfer_not_pending;
        }
        if (!u128_is_zero(input, e + w_debit_account) &&
            !u128_equal(input, e + w_debit_account, transfers, p + w_debit_account)) {
            return TS.pending_transfer_has_different_debit_account_id;
        }
        if (!u128_is_zero(input, e + w_credit_account) &&
            !u128_equal(input, e + w_credit_account, transfers, p + w_credit_account)) {
            return TS.pending_transfer_has_different_credit_account_id;
        }
        if (input[e + w_ledger] !== 0 && input[e + w_ledger] !== transfers[p + w_ledger]) {
            return TS.pending_transfer_has_different_ledger;
        }
        const code = input[e + w_code_flags] & 0xffff;
        if (code !== 0 && code !== (transfers[p + w_code_flags] & 0xffff)) {
            return TS.pending_transfer_has_different_code;
        }
        return this.post_or_void_amount(e, flags, p_slot);
    }

    private post_or_void_amount(e: number, flags: number, p_slot: number): number {
        const input = this.input_words, transfers = this.transfer_words, s = this.scratch;
        const p = p_slot * record_words;
        const voiding = (flags & transfer_flag_void_pending_transfer) !== 0;
        const defaulted = voiding ? u128_is_zero(input, e + w_amount) :
            u128_is_max(input, e + w_amount);
        u128_copy(s, 0, defaulted ? transfers : input, defaulted ? p + w_amount : e + w_amount);
        const order = u128_compare(s, 0, transfers, p + w_amount);
        if (order > 0) return TS.exceeds_pending_transfer_amount;
        if (voiding && order < 0) return TS.pending_transfer_has_different_amount;
        const status = this.transfer_status[p_slot];
        if (status === pending_posted) return TS.pending_transfer_already_posted;
        if (status === pending_voided) return TS.pending_transfer_already_voided;
        if (status === pending_expired) return TS.pending_transfer_expired;
        assert(status === pending_pending);
        const timeout = transfers[p + w_reserved_or_timeout];
        if (timeout !== 0) {
            const saved_hi = this.result_hi, saved_lo = this.result_lo;
            this.result_hi = transfers[p + w_timestamp_hi];
            this.result_lo = transfers[p + w_timestamp_lo];
            this.timeout_overflows(timeout);
            this.result_hi = saved_hi;
            this.result_lo = saved_lo;
            if (!timestamp_after(this.expires_hi, this.expires_lo, this.event_hi, this.event_lo)) {
                return TS.pending_transfer_expired;
            }
        }
        if ((flags & transfer_flag_imported) !== 0) {
            const hi = input[e + w_timestamp_hi], lo = input[e + w_timestamp_lo];
            if (this.imported_regresses(hi, lo, false)) {
                return TS.imported_event_timestamp_must_not_regress;
            }
            this.result_hi = hi;
            this.result_lo = lo;
        }
        const debit_slot = this.transfer_links[p_slot * links_stride + l_debit];
        const credit_slot = this.transfer_links[p_slot * links_stride + l_credit];
        const accounts = this.account_words;
        const closed = account_flag_closed << 16;
        if (!voiding && (accounts[debit_slot * record_words + w_code_flags] & closed) !== 0) {
            return TS.debit_account_already_closed;
        }
        if (!voiding && (accounts[credit_slot * record_words + w_code_flags] & closed) !== 0) {
            return TS.credit_account_already_closed;
        }
        this.post_or_void_apply(e, flags, p_slot, debit_slot, credit_slot);
        return created;
    }

    private post_or_void_apply(
        e: number, flags: number, p_slot: number, debit_slot: number, credit_slot: number,
    ): void {
        const input = this.input_words, transfers = this.transfer_words;
        const accounts = this.account_words, s = this.scratch;
        const p = p_slot * record_words;
        const dr = debit_slot * record_words, cr = credit_slot * record_words;
        this.undo_account_save(debit_slot);
        this.undo_account_save(credit_slot);
        const slot = this.transfer_insert(e, debit_slot, credit_slot);
        const t = slot * record_words;
        u128_copy(transfers, t + w_debit_account, transfers, p + w_debit_account);
        u128_copy(transfers, t + w_credit_account, transfers, p + w_credit_account);
        u128_copy(transfers, t + w_amount, s, 0);
        if (u128_is_zero(input, e + w_user_data_128)) {
            u128_copy(transfers, t + w_user_data_128, transfers, p + w_user_data_128);
        }
        if ((input[e + w_user_data_64] | input[e + w_user_data_64 + 1]) === 0) {
            transfers[t + w_user_data_64] = transfers[p + w_user_data_64];
            transfers[t + w_user_data_64 + 1] = transfers[p + w_user_data_64 + 1];
        }
        if (input[e + w_user_data_32] === 0) {
            transfers[t + w_user_data_32] = transfers[p + w_user_data_32];
        }
        transfers[t + w_ledger] = transfers[p + w_ledger];
        transfers[t + w_code_flags] = (flags << 16) | (transfers[p + w_code_flags] & 0xffff);
        const voiding = (flags & transfer_flag_void_pending_transfer) !== 0;
        this.status_set(p_slot, voiding ? pending_voided : pending_posted);
        u128_sub(accounts, dr + w_debits_pending, accounts, dr + w_debits_pending,
            transfers, p + w_amount);
        u128_sub(accounts, cr + w_credits_pending, accounts, cr + w_credits_pending,
            transfers, p + w_amount);
        if (!voiding) {
            u128_add(accounts, dr + w_debits_posted, accounts, dr + w_debits_posted, s, 0);
            u128_add(accounts, cr + w_credits_posted, accounts, cr + w_credits_posted, s, 0);
        } else {
            this.reopen_closed(p_slot);
        }
        this.history_record(slot);
        this.change_event_record(voiding ? ChangeEventType.voided : ChangeEventType.posted, slot,
            debit_slot, credit_slot, this.result_hi, this.result_lo);
    }

    /** Voiding or expiring a closing transfer reopens the account(s) it closed. */
    private reopen_closed(p_slot: number): void {
        const p_flags = this.transfer_words[p_slot * record_words + w_code_flags] >>> 16;
        const accounts = this.account_words;
        if ((p_flags & transfer_flag_closing_debit) !== 0) {
            const debit_slot = this.transfer_links[p_slot * links_stride + l_debit];
            accounts[debit_slot * record_words + w_code_flags] &= ~0x200000;
        }
        if ((p_flags & transfer_flag_closing_credit) !== 0) {
            const credit_slot = this.transfer_links[p_slot * links_stride + l_credit];
            accounts[credit_slot * record_words + w_code_flags] &= ~0x200000;
        }
    }

    private status_set(slot: number, status: number): void {
        if (this.chain_open) {
            this.undo_push(undo_status, slot);
            this.undo_words[(this.undo_count - 1) * record_words] = this.transfer_status[slot];
        }
        this.transfers.update(slot);
        this.transfer_status[slot] = status;
    }

    private orphan_insert(e: number): void {
        const input = this.input_words;
        if (this.transfers.find(input, e) !== -1) return;
        assert(this.orphans_count < this.orphans_max);
        u128_copy(this.orphan_words, this.orphans_count * 4, input, e);
        this.transfers_index.insert_secondary(this.orphans_count);
        this.orphans_count++;
    }

    // ---------------------------------------------------------------- undo log

    private chain_begin(): void {
        assert(!this.chain_open);
        this.chain_open = true;
        this.undo_count = 0;
    }

    private chain_commit(): void {
        assert(this.chain_open);
        this.chain_open = false;
        this.undo_count = 0;
    }

    private undo_push(kind: number, argument: number): void {
        if (!this.chain_open) return;
        assert(this.undo_count < undo_entries_max);
        this.undo_kind[this.undo_count] = kind;
        this.undo_argument[this.undo_count] = argument;
        this.undo_count++;
    }

    /** Called before every in-place account change: marks it dirty for the next checkpoint. */
    private undo_account_save(slot: number): void {
        this.accounts.update(slot);
        if (!this.chain_open) return;
        this.undo_push(undo_account, slot);
        const a = slot * record_words;
        copy_words(this.undo_words, (this.undo_count - 1) * record_words, this.account_words, a,
            record_words);
    }

    private chain_rollback(): void {
        assert(this.chain_open);
        for (let index = this.undo_count - 1; index >= 0; index--) {
            const argument = this.undo_argument[index];
            const saved = index * record_words;
            switch (this.undo_kind[index]) {
                case undo_account:
                    copy_words(this.account_words, argument * record_words, this.undo_words,
                        saved, record_words);
                    break;
                case undo_account_insert:
                    assert(argument === this.accounts_count - 1);
                    this.accounts.remove_last();
                    break;
                case undo_transfer_insert:
                    this.transfer_remove_last(argument);
                    break;
                case undo_status:
                    this.transfer_status[argument] = this.undo_words[saved];
                    break;
                case undo_change_event:
                    assert(argument === this.change_events_count - 1);
                    this.change_events_count--;
                    this.change_event_words.fill(0, argument * change_event_words,
                        (argument + 1) * change_event_words);
                    break;
                default:
                    assert.fail('ledger: bad undo entry');
            }
        }
        this.chain_open = false;
        this.undo_count = 0;
    }

    private transfer_remove_last(slot: number): void {
        assert(slot === this.transfers_count - 1);
        const l = slot * links_stride, links = this.transfer_links;
        this.link_remove_last(links[l + l_debit], links[l + l_prev_debit]);
        this.link_remove_last(links[l + l_credit], links[l + l_prev_credit]);
        if (this.transfer_history_row[slot] !== none) {
            assert(this.transfer_history_row[slot] === this.history_count - 1);
            this.history_count--;
            this.history_words.fill(0, this.history_count * 32, this.history_count * 32 + 32);
        }
        this.transfer_status[slot] = pending_none;
        this.transfers.remove_last();
        // A heap entry for this slot, if any, goes stale: its timestamp no longer matches.
    }

    // ---------------------------------------------------------------- expiry

    private expiry_less(i: number, j: number): boolean {
        const a = this.expiry_hi[i], b = this.expiry_hi[j];
        if (a !== b) return a < b;
        const c = this.expiry_lo[i], d = this.expiry_lo[j];
        if (c !== d) return c < d;
        return this.expiry_slot[i] < this.expiry_slot[j];
    }

    private expiry_swap(i: number, j: number): void {
        let x = this.expiry_hi[i]; this.expiry_hi[i] = this.expiry_hi[j]; this.expiry_hi[j] = x;
        x = this.expiry_lo[i]; this.expiry_lo[i] = this.expiry_lo[j]; this.expiry_lo[j] = x;
        x = this.expiry_slot[i]; this.expiry_slot[i] = this.expiry_slot[j]; this.expiry_slot[j] = x;
        x = this.expiry_stamp[i]; this.expiry_stamp[i] = this.expiry_stamp[j];
        this.expiry_stamp[j] = x;
        x = this.expiry_stamp_hi[i]; this.expiry_stamp_hi[i] = this.expiry_stamp_hi[j];
        this.expiry_stamp_hi[j] = x;
    }

    private expiry_live(index: number): boolean {
        const slot = this.expiry_slot[index];
        const t = slot * record_words;
        return slot < this.transfers_count &&
            this.transfer_status[slot] === pending_pending &&
            this.transfer_words[t + w_timestamp_lo] === this.expiry_stamp[index] &&
            this.transfer_words[t + w_timestamp_hi] === this.expiry_stamp_hi[index];
    }

    /** Pushes the just-inserted pending transfer; expires_hi/lo were set by timeout_overflows. */
    private expiry_push(slot: number): void {
        if (this.expiry_count === this.transfers_max) this.expiry_compact();
        assert(this.expiry_count < this.transfers_max);
        let index = this.expiry_count++;
        this.expiry_hi[index] = this.expires_hi;
        this.expiry_lo[index] = this.expires_lo;
        this.expiry_slot[index] = slot;
        this.expiry_stamp[index] = this.transfer_words[slot * record_words + w_timestamp_lo];
        this.expiry_stamp_hi[index] = this.transfer_words[slot * record_words + w_timestamp_hi];
        while (index > 0) {
            const parent = (index - 1) >>> 1;
            if (!this.expiry_less(index, parent)) break;
            this.expiry_swap(index, parent);
            index = parent;
        }
    }

    private expiry_pop(): void {
        assert(this.expiry_count > 0);
        this.expiry_count--;
        if (this.expiry_count === 0) return;
        this.expiry_swap(0, this.expiry_count);
        this.expiry_sift_down(0);
    }

    private expiry_sift_down(start: number): void {
        let index = start;
        for (;;) {
            const left = index * 2 + 1, right = left + 1;
            let least = index;
            if (left < this.expiry_count && this.expiry_less(left, least)) least = left;
            if (right < this.expiry_count && this.expiry_less(right, least)) least = right;
            if (least === index) return;
            this.expiry_swap(index, least);
            index = least;
        }
    }

    /** Drops stale entries and re-heapifies (amortised: only when the heap is full). */
    private expiry_compact(): void {
        let kept = 0;
        for (let index = 0; index < this.expiry_count; index++) {
            if (!this.expiry_live(index)) continue;
            this.expiry_hi[kept] = this.expiry_hi[index];
            this.expiry_lo[kept] = this.expiry_lo[index];
            this.expiry_slot[kept] = this.expiry_slot[index];
            this.expiry_stamp[kept] = this.expiry_stamp[index];
            this.expiry_stamp_hi[kept] = this.expiry_stamp_hi[index];
            kept++;
        }
        this.expiry_count = kept;
        for (let index = (kept >>> 1) - 1; index >= 0; index--) this.expiry_sift_down(index);
    }

    /** Whether a pulse at `timestamp` would expire at least one pending transfer. */
    pulse_needed(timestamp: bigint): boolean {
        const hi = Number(timestamp >> 32n), lo = Number(timestamp & 0xffffffffn);
        while (this.expiry_count > 0 && !this.expiry_live(0)) this.expiry_pop();
        if (this.expiry_count === 0) return false;
        return !timestamp_after(this.expiry_hi[0], this.expiry_lo[0], hi, lo);
    }

    private readonly pulse_slots = new Uint32Array(batch_events_max);

    private execute_pulse(): void {
        let count = 0;
        while (count < batch_events_max && this.expiry_count > 0) {
            if (!this.expiry_live(0)) { this.expiry_pop(); continue; }
            if (timestamp_after(this.expiry_hi[0], this.expiry_lo[0], this.batch_hi,
                this.batch_lo)) {
                break;
            }
            this.pulse_slots[count++] = this.expiry_slot[0];
            this.expiry_pop();
        }
        const accounts = this.account_words, transfers = this.transfer_words;
        for (let index = 0; index < count; index++) {
            const p_slot = this.pulse_slots[index];
            const p = p_slot * record_words;
            const debit_slot = this.transfer_links[p_slot * links_stride + l_debit];
            const credit_slot = this.transfer_links[p_slot * links_stride + l_credit];
            const dr = debit_slot * record_words, cr = credit_slot * record_words;
            assert(this.transfer_status[p_slot] === pending_pending);
            this.accounts.update(debit_slot);
            this.accounts.update(credit_slot);
            u128_sub(accounts, dr + w_debits_pending, accounts, dr + w_debits_pending,
                transfers, p + w_amount);
            u128_sub(accounts, cr + w_credits_pending, accounts, cr + w_credits_pending,
                transfers, p + w_amount);
            this.reopen_closed(p_slot);
            this.transfers.update(p_slot);
            this.transfer_status[p_slot] = pending_expired;
            this.set_event_timestamp(count, index);
            this.change_event_record(ChangeEventType.expired, p_slot,
                debit_slot, credit_slot,
                this.event_hi, this.event_lo);
        }
    }

    // ---------------------------------------------------------------- change events

    private change_event_record(
        type: number, transfer_slot: number, debit_slot: number, credit_slot: number,
        timestamp_hi: number, timestamp_lo: number,
    ): void {
        if (this.change_events_max === 0) return;
        assert(this.change_events_count < this.change_events_max);
        const row = this.change_events_count++;
        const r = row * change_event_words;
        const events = this.change_event_words, accounts = this.account_words;
        const dr = debit_slot * record_words, cr = credit_slot * record_words;
        events[r] = type;
        events[r + 1] = transfer_slot;
        events[r + 2] = debit_slot;
        events[r + 3] = credit_slot;
        events[r + 4] = timestamp_lo;
        events[r + 5] = timestamp_hi;
        events[r + 6] = accounts[dr + w_code_flags] >>> 16;
        events[r + 7] = accounts[cr + w_code_flags] >>> 16;
        copy_words(events, r + 8, accounts, dr + 4, 16);
        copy_words(events, r + 24, accounts, cr + 4, 16);
        this.undo_push(undo_change_event, row);
    }

    private execute_change_events(): number {
        const input = this.input_words;
        const limit_requested = input[4];
        if (limit_requested === 0 || this.change_events_max === 0) return 0;
        for (let w = 5; w < 16; w++) if (input[w] !== 0) return 0;
        if (!this.filter_range(0)) return 0;
        const limit = Math.min(limit_requested, change_events_reply_max);
        const events = this.change_event_words;
        // Rows are in timestamp order: binary search for the first row >= timestamp_min.
        let low = 0, high = this.change_events_count;
        while (low < high) {
            const middle = (low + high) >>> 1;
            const r = middle * change_event_words;
            if (timestamp_after(this.range_min_hi, this.range_min_lo, events[r + 5],
                events[r + 4])) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        let length = 0;
        for (let row = low; row < this.change_events_count && length < limit * 384; row++) {
            const r = row * change_event_words;
            if (timestamp_after(events[r + 5], events[r + 4], this.range_max_hi,
                this.range_max_lo)) {
                break;
            }
            this.change_event_emit(r, length >>> 2);
            length += 384;
        }
        return length;
    }

    private change_event_emit(r: number, o: number): void {
        const events = this.change_event_words, out = this.output_words;
        const transfers = this.transfer_words, accounts = this.account_words;
        const t = events[r + 1] * record_words;
        out.fill(0, o, o + 96);
        copy_words(out, o, transfers, t, 4); // transfer_id
        copy_words(out, o + 4, transfers, t + w_amount, 4);
        copy_words(out, o + 8, transfers, t + w_pending_id, 4);
        copy_words(out, o + 12, transfers, t + w_user_data_128, 4);
        copy_words(out, o + 16, transfers, t + w_user_data_64, 4); // ud64, ud32, timeout
        out[o + 20] = transfers[t + w_code_flags];
        out[o + 21] = transfers[t + w_ledger];
        out[o + 22] = events[r];
        for (let side = 0; side < 2; side++) {
            const a = events[r + 2 + side] * record_words;
            const b = o + 32 + side * 28;
            copy_words(out, b, accounts, a, 4);
            copy_words(out, b + 4, events, r + 8 + side * 16, 16);
            copy_words(out, b + 20, accounts, a + w_user_data_128, 7); // ud128, ud64, ud32
            out[b + 27] = (accounts[a + w_code_flags] & 0xffff) | (events[r + 6 + side] << 16);
        }
        out[o + 88] = events[r + 4];
        out[o + 89] = events[r + 5];
        out[o + 90] = transfers[t + w_timestamp_lo];
        out[o + 91] = transfers[t + w_timestamp_hi];
        const dr = events[r + 2] * record_words, cr = events[r + 3] * record_words;
        out[o + 92] = accounts[dr + w_timestamp_lo];
        out[o + 93] = accounts[dr + w_timestamp_hi];
        out[o + 94] = accounts[cr + w_timestamp_lo];
        out[o + 95] = accounts[cr + w_timestamp_hi];
    }

    // ---------------------------------------------------------------- lookups and queries

    private execute_lookup(store: RecordStore, ids: number): number {
        let length = 0;
        const words = store.words;
        for (let i = 0; i < ids; i++) {
            const slot = store.find(this.input_words, i * 4);
            if (slot < 0) continue;
            copy_words(this.output_words, length >>> 2, words, slot * record_words, record_words);
            length += record_size;
        }
        return length;
    }

    /** Reads the (timestamp_min,
        timestamp_max) filter range at word w into range_*; false if bad. */
    private filter_range(w: number): boolean {
        const input = this.input_words;
        const min_lo = input[w], min_hi = input[w + 1], max_lo = input[w + 2];
        const max_hi = input[w + 3];
        if (min_hi > timestamp_max_hi || max_hi > timestamp_max_hi) return false;
        const max_zero = (max_lo | max_hi) === 0;
        if (!max_zero && timestamp_after(min_hi, min_lo, max_hi, max_lo)) return false;
        this.range_min_hi = min_hi;
        this.range_min_lo = min_lo;
        this.range_max_hi = max_zero ? timestamp_max_hi : max_hi;
        this.range_max_lo = max_zero ? 0xffffffff : max_lo;
        return true;
    }
    private range_min_hi = 0;
    private range_min_lo = 0;
    private range_max_hi = 0;
    private range_max_lo = 0;

    private in_range(words: Uint32Array, r: number): boolean {
        const hi = words[r + w_timestamp_hi], lo = words[r + w_timestamp_lo];
        return !timestamp_after(this.range_min_hi, this.range_min_lo, hi, lo) &&
            !timestamp_after(hi, lo, this.range_max_hi, this.range_max_lo);
    }

    private execute_account_filter(operation: number): number {
        const input = this.input_words;
        const flags = input[31], limit_requested = input[30];
        if (u128_is_zero(input, 0) || u128_is_max(input, 0)) return 0;
        if (limit_requested === 0 || (flags & AccountFilterFlags.padding) !== 0) return 0;
        if ((flags & (AccountFilterFlags.debits | AccountFilterFlags.credits)) === 0) return 0;
        if ((input[11] >>> 16) !== 0) return 0; // reserved bytes 46..47
        for (let w = 12; w < 26; w++) if (input[w] !== 0) return 0;
        if (!this.filter_range(26)) return 0;
        const account_slot = this.accounts.find(input, 0);
        if (account_slot === -1) return 0;
        const balances = operation === Operation.get_account_balances;
        const a = account_slot * record_words;
        const account_flags = this.account_words[a + w_code_flags] >>> 16;
        if (balances && (account_flags & account_flag_history) === 0) {
            return 0;
        }
        const limit = Math.min(limit_requested, batch_events_max);
        const reversed = (flags & AccountFilterFlags.reversed) !== 0;
        const links = this.transfer_links;
        let slot = this.account_lists[account_slot * lists_stride + (reversed ? a_tail : a_head)];
        let length = 0, found = 0;
        while (slot !== none && found < limit) {
            const l = slot * links_stride;
            const as_debit = links[l + l_debit] === account_slot;
            const next = as_debit ?
                links[l + (reversed ? l_prev_debit : l_next_debit)] :
                links[l + (reversed ? l_prev_credit : l_next_credit)];
            if (this.account_filter_match(slot, as_debit, flags)) {
                length = this.account_filter_emit(slot, as_debit, balances, length);
                found++;
            }
            slot = next;
        }
        return length;
    }

    private account_filter_match(slot: number, as_debit: boolean, flags: number): boolean {
        const input = this.input_words, transfers = this.transfer_words;
        const t = slot * record_words;
        if (as_debit && (flags & AccountFilterFlags.debits) === 0) return false;
        if (!as_debit && (flags & AccountFilterFlags.credits) === 0) return false;
        if (!this.in_range(transfers, t)) return false;
        if (!u128_is_zero(input, 4) && !u128_equal(input, 4, transfers, t + w_user_data_128)) {
            return false;
        }
        if ((input[8] | input[9]) !== 0 && (input[8] !== transfers[t + w_user_data_64] ||
            input[9] !== transfers[t + w_user_data_64 + 1])) {
            return false;
        }
        if (input[10] !== 0 && input[10] !== transfers[t + w_user_data_32]) return false;
        const code = input[11] & 0xffff;
        return code === 0 || code === (transfers[t + w_code_flags] & 0xffff);
    }

    private account_filter_emit(
        slot: number, as_debit: boolean, balances: boolean, length: number,
    ): number {
        if (!balances) {
            copy_words(this.output_words, length >>> 2, this.transfer_words, slot * record_words,
                record_words);
            return length + record_size;
        }
        const row = this.transfer_history_row[slot];
        assert(row !== none);
        const o = length >>> 2;
        const source = row * 32 + (as_debit ? 0 : 16);
        copy_words(this.output_words, o, this.history_words, source, 16);
        this.output_words[o + 16] = this.transfer_words[slot * record_words + w_timestamp_lo];
        this.output_words[o + 17] = this.transfer_words[slot * record_words + w_timestamp_hi];
        this.output_words.fill(0, o + 18, o + 32);
        return length + record_size;
    }

    private execute_query(operation: number): number {
        const input = this.input_words;
        const limit_requested = input[14], flags = input[15];
        if (limit_requested === 0 || (flags & QueryFilterFlags.padding) !== 0) return 0;
        if ((input[8] >>> 16) !== 0 || input[9] !== 0) return 0; // reserved bytes 34..39
        if (!this.filter_range(10)) return 0;
        const accounts = operation === Operation.query_accounts;
        const words = accounts ? this.account_words : this.transfer_words;
        const count = accounts ? this.accounts_count : this.transfers_count;
        const limit = Math.min(limit_requested, batch_events_max);
        const reversed = (flags & QueryFilterFlags.reversed) !== 0;
        // Slots are in timestamp order, so the range bounds come from binary searches.
        const store = accounts ? this.accounts : this.transfers;
        const first = store.lower_bound(this.range_min_hi, this.range_min_lo);
        let end = store.lower_bound(this.range_max_hi, this.range_max_lo);
        if (end < count && this.in_range(words, end * record_words)) end++;
        let length = 0, found = 0;
        for (let step = 0; step < end - first && found < limit; step++) {
            const slot = reversed ? end - 1 - step : first + step;
            if (!this.query_match(words, slot * record_words)) continue;
            copy_words(this.output_words, length >>> 2, words, slot * record_words, record_words);
            length += record_size;
            found++;
        }
        return length;
    }

    private query_match(words: Uint32Array, r: number): boolean {
        const input = this.input_words;
        if (!u128_is_zero(input, 0) && !u128_equal(input, 0, words, r + w_user_data_128)) {
            return false;
        }
        if ((input[4] | input[5]) !== 0 && (input[4] !== words[r + w_user_data_64] ||
            input[5] !== words[r + w_user_data_64 + 1])) {
            return false;
        }
        if (input[6] !== 0 && input[6] !== words[r + w_user_data_32]) return false;
        if (input[7] !== 0 && input[7] !== words[r + w_ledger]) return false;
        const code = input[8] & 0xffff;
        return code === 0 || code === (words[r + w_code_flags] & 0xffff);
    }

    // ---------------------------------------------------------------- digest and snapshots

    /** A deterministic 64-bit digest of the whole logical state. */
    checksum_state(): bigint {
        let a = 0x811c9dc5 | 0, b = 0x01000193 | 0;
        const mix = (words: Uint32Array, count: number) => {
            for (let i = 0; i < count; i++) {
                a = Math.imul(a ^ words[i], 0x01000193);
                b = Math.imul(b ^ words[i] ^ (a >>> 13), 0x5bd1e995);
            }
        };
        mix(this.account_words, this.accounts_count * record_words);
        mix(this.transfer_words, this.transfers_count * record_words);
        mix(this.orphan_words, this.orphans_count * 4);
        mix(this.history_words, this.history_count * 32);
        mix(this.change_event_words, this.change_events_count * change_event_words);
        for (let i = 0; i < this.transfers_count; i++) a = Math.imul(a ^ this.transfer_status[i],
            31);
        a = Math.imul(a ^ this.accounts_count, 0x9e3779b1);
        b = Math.imul(b ^ this.transfers_count, 0x85ebca77);
        return (BigInt(b >>> 0) << 32n) | BigInt(a >>> 0);
    }

    /** Serialises the whole state (derived indexes are rebuilt by restore). */
    snapshot(): Uint8Array {
        const a = this.accounts_count, t = this.transfers_count;
        const o = this.orphans_count, h = this.history_count;
        const c = this.change_events_count, c_bytes = c * change_event_words * 4;
        const size = 20 + a * 128 + t * 128 + t + t * 4 + o * 16 + h * 128 + c_bytes;
        const bytes = new Uint8Array(size);
        const view = new DataView(bytes.buffer);
        view.setUint32(0, a, true); view.setUint32(4, t, true);
        view.setUint32(8, o, true); view.setUint32(12, h, true);
        view.setUint32(16, c, true);
        let at = 20;
        bytes.set(this.account_bytes.subarray(0, a * 128), at); at += a * 128;
        bytes.set(this.transfer_bytes.subarray(0, t * 128), at); at += t * 128;
        bytes.set(this.transfer_status.subarray(0, t), at); at += t;
        const rows = new Uint8Array(this.transfer_history_row.buffer, 0, t * 4);
        bytes.set(rows, at); at += t * 4;
        bytes.set(new Uint8Array(this.orphan_words.buffer, 0, o * 16), at); at += o * 16;
        bytes.set(new Uint8Array(this.history_words.buffer, 0, h * 128), at); at += h * 128;
        bytes.set(new Uint8Array(this.change_event_words.buffer, 0, c_bytes), at); at += c_bytes;
        assert(at === size);
        return bytes;
    }

    restore(bytes: Uint8Array): void {
        assert(!this.chain_open);
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const a = view.getUint32(0, true), t = view.getUint32(4, true);
        const o = view.getUint32(8, true), h = view.getUint32(12, true);
        assert(a <= this.accounts_max && t <= this.transfers_max);
        const c = view.getUint32(16, true), c_bytes = c * change_event_words * 4;
        assert(o <= this.orphans_max && h <= this.history_max);
        assert(c <= this.change_events_max);
        assert(bytes.length === 20 + a * 128 + t * 128 + t + t * 4 + o * 16 + h * 128 + c_bytes);
        this.reset();
        let at = 20;
        const accounts = new Uint32Array(bytes.slice(at, at + a * 128).buffer); at += a * 128;
        const transfers = new Uint32Array(bytes.slice(at, at + t * 128).buffer); at += t * 128;
        const status = bytes.subarray(at, at + t); at += t;
        const rows = new Uint32Array(bytes.slice(at, at + t * 4).buffer); at += t * 4;
        new Uint8Array(this.orphan_words.buffer).set(bytes.subarray(at, at + o * 16)); at += o * 16;
        new Uint8Array(this.history_words.buffer).set(bytes.subarray(at, at + h * 128));
        at += h * 128;
        new Uint8Array(this.change_event_words.buffer).set(bytes.subarray(at, at + c_bytes));
        this.change_events_count = c;
        for (let slot = 0; slot < a; slot++) this.accounts.append(accounts, slot * record_words);
        this.orphans_count = o;
        for (let slot = 0; slot < o; slot++) this.transfers_index.insert_secondary(slot);
        this.history_count = h;
        for (let slot = 0; slot < t; slot++) {
            this.transfers.append(transfers, slot * record_words);
            this.restore_transfer(slot, status[slot], rows[slot]);
        }
    }

    /**
     * The persistent state as byte views over the whole capacity, in `state_segment_layout`
     * order: what a checkpoint stores (lib/storage/checkpoint.ts). Everything else is derived and
     * rebuilt by `state_load_finish`. Startup only: allocates the views.
     */
    state_segments(): Uint8Array[] {
        const bytes = (array: Uint32Array) => new Uint8Array(array.buffer, array.byteOffset,
            array.byteLength);
        return [this.account_bytes, this.transfer_bytes, this.transfer_status,
            bytes(this.transfer_history_row), bytes(this.orphan_words), bytes(this.history_words),
            bytes(this.change_event_words)];
    }

    /** Writes the used bytes of each state segment into `out` (in layout order). */
    state_used_bytes(out: Float64Array): void {
        const t = this.transfers_count;
        out[0] = this.accounts_count * 128;
        out[1] = t * 128;
        out[2] = t;
        out[3] = t * 4;
        out[4] = this.orphans_count * 16;
        out[5] = this.history_count * 128;
        out[6] = this.change_events_count * change_event_words * 4;
    }

    /**
     * After a checkpoint restore loaded every segment in place (zero beyond `used`): sets the
     * counts and rebuilds the id indexes, the per-account transfer lists and the expiry heap.
     */
    state_load_finish(used: Float64Array): void {
        assert(!this.chain_open);
        const a = used[0] / 128, t = used[1] / 128;
        assert(used[2] === t && used[3] === t * 4);
        assert(a <= this.accounts_max && t <= this.transfers_max);
        this.orphans_count = used[4] / 16;
        this.history_count = used[5] / 128;
        this.change_events_count = used[6] / (change_event_words * 4);
        assert(Number.isInteger(a) && Number.isInteger(this.orphans_count));
        assert(this.orphans_count <= this.orphans_max && this.history_count <= this.history_max);
        assert(this.change_events_count <= this.change_events_max);
        this.accounts.rebuild(a);
        this.transfers.rebuild(0);
        this.account_lists.fill(none);
        this.expiry_count = 0;
        for (let slot = 0; slot < this.orphans_count; slot++) {
            this.transfers_index.insert_secondary(slot);
        }
        const status = this.transfer_status, rows = this.transfer_history_row;
        for (let slot = 0; slot < t; slot++) {
            this.transfers.append(this.transfer_words, slot * record_words);
            this.restore_transfer(slot, status[slot], rows[slot]);
        }
    }

    private restore_transfer(slot: number, status: number, row: number): void {
        const t = slot * record_words;
        const debit_slot = this.accounts_index.find(this.transfer_words, t + w_debit_account);
        const credit_slot = this.accounts_index.find(this.transfer_words, t + w_credit_account);
        assert(debit_slot !== -1 && credit_slot !== -1);
        this.transfer_status[slot] = status;
        this.transfer_history_row[slot] = row;
        const l = slot * links_stride, links = this.transfer_links;
        links[l + l_debit] = debit_slot;
        links[l + l_credit] = credit_slot;
        links[l + l_prev_debit] = this.link_append(debit_slot, slot, 0);
        links[l + l_next_debit] = none;
        links[l + l_prev_credit] = this.link_append(credit_slot, slot, 1);
        links[l + l_next_credit] = none;
        const timeout = this.transfer_words[t + w_reserved_or_timeout];
        if (status === pending_pending && timeout !== 0) {
            this.result_hi = this.transfer_words[t + w_timestamp_hi];
            this.result_lo = this.transfer_words[t + w_timestamp_lo];
            this.timeout_overflows(timeout);
            this.expiry_push(slot);
        }
    }

    private reset(): void {
        this.accounts.reset();
        this.transfers.reset();
        this.account_lists.fill(none);
        this.orphan_words.fill(0);
        this.history_words.fill(0);
        this.orphans_count = 0;
        this.history_count = 0;
        this.expiry_count = 0;
        this.change_event_words.fill(0);
        this.change_events_count = 0;
    }
}

function transient(status: number): boolean {
    return transfer_status_transient(status);
}

function copy_words(
    target: Uint32Array, target_offset: number, source: Uint32Array, source_offset: number,
    count: number,
): void {
    for (let i = 0; i < count; i++) target[target_offset + i] = source[source_offset + i];
}

/** Whether (a_hi, a_lo) > (b_hi, b_lo). */
export function timestamp_after(a_hi: number, a_lo: number, b_hi: number, b_lo: number): boolean {
    return a_hi > b_hi || (a_hi === b_hi && a_lo > b_lo);
}
