// Change events, the get_change_events feed: one row per transfer created and per pending
// transfer expired, appended in execution order with both accounts' flags and balances as the
// event left them. A row is 40 u32 words (160 bytes, a persistent state segment); the reply
// expands it into TigerBeetle's 384-byte ChangeEvent from the transfer and account records.
// Appends only: a row is removed only as the newest, by a linked chain's rollback.
// A row names its transfer and accounts by their permanent ordinals (RecordAccess.ordinal), not
// slots; the reply reads those records at their memory-store slots (slot_of_ordinal), which is
// slot-bound (listed in groove.ts).
import assert from 'node:assert/strict';

import { change_event_size, change_events_reply_max } from '../constants';
import { Operation, record_words as record_words_imported } from './constants';
import { operation_limit_offset } from './operations';
import { TimestampRange } from './queries';
import { account_at, transfer_at } from './record_layout';
import { copy_words } from './record_store';
import type { MemoryRecordStore } from './record_store';
import { timestamp_after } from './u128';

export const ChangeEventType = {
    single_phase: 0, pending: 1, posted: 2, voided: 3, expired: 4,
} as const;

/** Words per stored row. */
export const change_event_words = 40;
const record_words = 32;
assert.equal(record_words, record_words_imported);
// A row: type, transfer ordinal, debit and credit account ordinals, the event's timestamp (lo, hi),
// the debit and credit accounts' flags, then each account's four balances (16 words).
const row_type = 0, row_transfer_ordinal = 1, row_debit_ordinal = 2, row_credit_ordinal = 3;
const row_timestamp_lo = 4, row_timestamp_hi = 5, row_debit_flags = 6, row_credit_flags = 7;
const row_debit_balances = 8, balance_words = 16, row_credit_balances = 24;
assert.equal(row_credit_balances + balance_words, change_event_words);
// Word offsets in an account or transfer record.
const w_balances = account_at.debits_pending / 4;
const w_account_user_data = account_at.user_data_128 / 4; // ud128, ud64, ud32: 7 words.
const w_amount = transfer_at.amount / 4;
const w_pending_id = transfer_at.pending_id / 4;
const w_user_data_128 = transfer_at.user_data_128 / 4;
const w_transfer_user_data_64 = transfer_at.user_data_64 / 4; // ud64, ud32, timeout: 4 words.
const w_ledger = transfer_at.ledger / 4;
const w_code_flags = transfer_at.code / 4;
const w_timestamp_lo = transfer_at.timestamp / 4;
const w_timestamp_hi = transfer_at.timestamp / 4 + 1;
assert.equal(account_at.credits_posted + 16 - account_at.debits_pending, balance_words * 4);
assert.equal(account_at.reserved - account_at.user_data_128, 7 * 4);
assert.equal(transfer_at.ledger - transfer_at.user_data_64, 4 * 4);
// The reply's ChangeEvent (96 words): the transfer's id, amount, pending id, user data and
// timeout, code and flags, ledger, the type; then per account (debit, credit; 28 words each) its
// id, balances, user data, code and flags; then the event's, the transfer's and both accounts'
// timestamps.
const event_words = change_event_size / 4;
/** Words per reply event. */
export const change_event_reply_words = event_words;
const event_transfer_id = 0, event_transfer_amount = 4, event_transfer_pending_id = 8;
const event_transfer_user_data_128 = 12, event_transfer_user_data_64 = 16;
const event_transfer_code_flags = 20, event_ledger = 21, event_type = 22;
const event_debit_account = 32, event_account_words = 28;
const event_account_balances = 4, event_account_user_data = 20, event_account_code_flags = 27;
const event_timestamp = 88, event_transfer_timestamp = 90;
const event_debit_account_timestamp = 92, event_credit_account_timestamp = 94;
assert.equal(event_debit_account + 2 * event_account_words, event_timestamp);
assert.equal(event_credit_account_timestamp + 2, event_words);
// The filter (64 bytes): timestamp_min, timestamp_max, limit, then reserved words.
const filter_timestamp_min = 0, filter_limit = 4, filter_words = 16;
assert.equal(operation_limit_offset[Operation.get_change_events], filter_limit * 4);

export class ChangeEvents {
    readonly words: Uint32Array;
    count = 0;

    private readonly account_words: Uint32Array;
    private readonly transfer_words: Uint32Array;

    constructor(
        readonly max: number,
        private readonly accounts: MemoryRecordStore,
        private readonly transfers: MemoryRecordStore,
        private readonly range: TimestampRange,
    ) {
        assert(Number.isInteger(max) && max >= 0);
        this.account_words = accounts.words;
        this.transfer_words = transfers.words;
        assert(this.account_words.length % record_words === 0);
        assert(this.transfer_words.length % record_words === 0);
        this.words = new Uint32Array(max * change_event_words);
    }

    /**
     * Appends the event of a transfer (or an expiry) after it moved the balances, the records at
     * these slots; returns its row.
     */
    record(
        type: number, transfer_slot: number, debit_slot: number, credit_slot: number,
        timestamp_hi: number, timestamp_lo: number,
    ): number {
        // max is at least twice transfers_max, and each transfer makes at most two events.
        if (this.count >= this.max) assert.fail('change_events: full');
        if (type > ChangeEventType.expired) assert.fail('change_events: bad type');
        if (debit_slot === credit_slot) assert.fail('change_events: one account on both sides');
        const row = this.count++;
        const at = row * change_event_words;
        const words = this.words, accounts = this.account_words;
        const debit = debit_slot * record_words, credit = credit_slot * record_words;
        words[at + row_type] = type;
        words[at + row_transfer_ordinal] = this.transfers.ordinal(transfer_slot);
        words[at + row_debit_ordinal] = this.accounts.ordinal(debit_slot);
        words[at + row_credit_ordinal] = this.accounts.ordinal(credit_slot);
        words[at + row_timestamp_lo] = timestamp_lo;
        words[at + row_timestamp_hi] = timestamp_hi;
        words[at + row_debit_flags] = accounts[debit + w_code_flags] >>> 16;
        words[at + row_credit_flags] = accounts[credit + w_code_flags] >>> 16;
        copy_words(words, at + row_debit_balances, accounts, debit + w_balances, balance_words);
        copy_words(words, at + row_credit_balances, accounts, credit + w_balances, balance_words);
        return row;
    }

    /** Removes the newest row (linked-chain rollback). */
    remove_last(row: number): void {
        assert.equal(row, this.count - 1, 'change_events: removing a row that is not the last');
        this.count--;
        this.words.fill(0, row * change_event_words, (row + 1) * change_event_words);
    }

    reset(): void {
        this.words.fill(0);
        this.count = 0;
    }

    /** get_change_events: the rows in the filter's timestamp range, up to its limit. */
    execute(input: Uint32Array, output: Uint32Array): number {
        assert(this.count <= this.max);
        const limit_requested = input[filter_limit];
        if (limit_requested === 0 || this.max === 0) return 0;
        for (let word = filter_limit + 1; word < filter_words; word++) {
            if (input[word] !== 0) return 0;
        }
        const range = this.range;
        if (!range.parse(input, filter_timestamp_min)) return 0;
        const limit = Math.min(limit_requested, change_events_reply_max);
        assert(output.length >= limit * event_words);
        const words = this.words;
        // Rows are in timestamp order: binary search for the first row >= timestamp_min.
        let low = 0, high = this.count;
        while (low < high) {
            const middle = (low + high) >>> 1;
            const at = middle * change_event_words;
            if (timestamp_after(range.min_hi, range.min_lo, words[at + row_timestamp_hi],
                words[at + row_timestamp_lo])) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        assert(low <= this.count);
        assert(low === 0 || timestamp_after(range.min_hi, range.min_lo,
            words[(low - 1) * change_event_words + row_timestamp_hi],
            words[(low - 1) * change_event_words + row_timestamp_lo]));
        let length = 0;
        for (let row = low; row < this.count && length < limit * change_event_size; row++) {
            const at = row * change_event_words;
            if (timestamp_after(words[at + row_timestamp_hi], words[at + row_timestamp_lo],
                range.max_hi, range.max_lo)) {
                break;
            }
            assert(range.contains(words[at + row_timestamp_hi], words[at + row_timestamp_lo]));
            this.emit(at, output, length >>> 2);
            length += change_event_size;
        }
        assert(length <= limit * change_event_size);
        return length;
    }

    /** Expands the row at words[at..] into a ChangeEvent at output[out..out + 96). */
    private emit(at: number, output: Uint32Array, out: number): void {
        const words = this.words;
        const transfers = this.transfer_words, accounts = this.account_words;
        const transfer_store = this.transfers, account_store = this.accounts;
        const transfer =
            transfer_store.slot_of_ordinal(words[at + row_transfer_ordinal]) * record_words;
        assert(transfer + record_words <= transfers.length);
        assert(out + event_words <= output.length);
        output.fill(0, out, out + event_words);
        copy_words(output, out + event_transfer_id, transfers, transfer, 4);
        copy_words(output, out + event_transfer_amount, transfers, transfer + w_amount, 4);
        copy_words(output, out + event_transfer_pending_id, transfers, transfer + w_pending_id,
            4);
        copy_words(output, out + event_transfer_user_data_128, transfers,
            transfer + w_user_data_128, 4);
        copy_words(output, out + event_transfer_user_data_64, transfers,
            transfer + w_transfer_user_data_64, 4);
        output[out + event_transfer_code_flags] = transfers[transfer + w_code_flags];
        output[out + event_ledger] = transfers[transfer + w_ledger];
        output[out + event_type] = words[at + row_type];
        for (let side = 0; side < 2; side++) {
            const account =
                account_store.slot_of_ordinal(words[at + row_debit_ordinal + side]) * record_words;
            const target = out + event_debit_account + side * event_account_words;
            copy_words(output, target, accounts, account, 4);
            copy_words(output, target + event_account_balances, words,
                at + row_debit_balances + side * balance_words, balance_words);
            copy_words(output, target + event_account_user_data, accounts,
                account + w_account_user_data, 7);
            output[target + event_account_code_flags] =
                (accounts[account + w_code_flags] & 0xffff) |
                (words[at + row_debit_flags + side] << 16);
        }
        output[out + event_timestamp] = words[at + row_timestamp_lo];
        output[out + event_timestamp + 1] = words[at + row_timestamp_hi];
        output[out + event_transfer_timestamp] = transfers[transfer + w_timestamp_lo];
        output[out + event_transfer_timestamp + 1] = transfers[transfer + w_timestamp_hi];
        const debit = account_store.slot_of_ordinal(words[at + row_debit_ordinal]) * record_words;
        const credit =
            account_store.slot_of_ordinal(words[at + row_credit_ordinal]) * record_words;
        output[out + event_debit_account_timestamp] = accounts[debit + w_timestamp_lo];
        output[out + event_debit_account_timestamp + 1] = accounts[debit + w_timestamp_hi];
        output[out + event_credit_account_timestamp] = accounts[credit + w_timestamp_lo];
        output[out + event_credit_account_timestamp + 1] = accounts[credit + w_timestamp_hi];
    }
}
