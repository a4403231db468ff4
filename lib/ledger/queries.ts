// Lookups and queries: lookup_accounts/lookup_transfers, query_accounts/query_transfers and
// get_account_transfers/get_account_balances, with the indexes they read.
//
// * Timestamp order needs no index of its own: slots are assigned in timestamp order, so a
//   query's timestamp range is two binary searches over the slots (RecordStore.lower_bound).
// * `TransferLists` is the per-account index: every transfer is linked into a doubly linked list
//   of its debit account and one of its credit account, in ordinal (so timestamp) order. It is
//   indexed by the records' permanent ordinals (RecordAccess.ordinal), never by their slots. The
//   ledger appends to it as it creates transfers and removes the last transfer on a chain
//   rollback.
//
// Queries read the filter from `input` (the ledger's scratch copy of the request) and write
// results into the ledger's output scratch. A filter that is invalid yields no results.
import assert from 'node:assert/strict';

import {
    AccountFilterFlags, AccountFlags, Operation, QueryFilterFlags, batch_events_max,
    record_size as record_size_imported, record_words as record_words_imported,
} from './constants';
import { account_filter_at, query_filter_at, transfer_at } from './record_layout';
import { MemoryRecordStore, RecordStore, copy_record, copy_words } from './record_store';
import { timestamp_after, u128_equal, u128_is_max, u128_is_zero } from './u128';

// Module constants (V8 folds them into optimised code; an imported object costs a load a use).
const record_words = 32, record_size = 128;
assert(record_words === record_words_imported && record_size === record_size_imported);
const none = 0xffffffff;
const account_flag_history = AccountFlags.history;
const timestamp_max_hi = 0x7fffffff; // TimestampRange max = 2^63 - 1.
// Word offsets in a record (accounts and transfers share these, see ledger.ts).
const w_user_data_128 = transfer_at.user_data_128 / 4;
const w_user_data_64 = transfer_at.user_data_64 / 4;
const w_user_data_32 = transfer_at.user_data_32 / 4;
const w_ledger = transfer_at.ledger / 4;
const w_code_flags = transfer_at.code / 4;
const w_timestamp_lo = transfer_at.timestamp / 4;
const w_timestamp_hi = transfer_at.timestamp / 4 + 1;
// Word offsets in an AccountFilter (128 bytes). Its code is the low half of a word whose high
// half is reserved, as are the words up to timestamp_min.
const w_account_filter_account_id = account_filter_at.account_id / 4;
const w_account_filter_user_data_128 = account_filter_at.user_data_128 / 4;
const w_account_filter_user_data_64 = account_filter_at.user_data_64 / 4;
const w_account_filter_user_data_32 = account_filter_at.user_data_32 / 4;
const w_account_filter_code = account_filter_at.code / 4;
const w_account_filter_reserved_first = (account_filter_at.reserved + 2) / 4;
const w_account_filter_timestamp_min = account_filter_at.timestamp_min / 4;
const w_account_filter_limit = account_filter_at.limit / 4;
const w_account_filter_flags = account_filter_at.flags / 4;
assert.equal(account_filter_at.code % 4, 0);
assert.equal(account_filter_at.reserved, account_filter_at.code + 2);
assert.equal(account_filter_at.timestamp_min % 4, 0);
// Word offsets in a QueryFilter (64 bytes): code and reserved as in an AccountFilter, and one
// more reserved word before timestamp_min.
const w_query_filter_user_data_128 = query_filter_at.user_data_128 / 4;
const w_query_filter_user_data_64 = query_filter_at.user_data_64 / 4;
const w_query_filter_user_data_32 = query_filter_at.user_data_32 / 4;
const w_query_filter_ledger = query_filter_at.ledger / 4;
const w_query_filter_code = query_filter_at.code / 4;
const w_query_filter_reserved_last = w_query_filter_code + 1;
const w_query_filter_timestamp_min = query_filter_at.timestamp_min / 4;
const w_query_filter_limit = query_filter_at.limit / 4;
const w_query_filter_flags = query_filter_at.flags / 4;
assert.equal(query_filter_at.reserved, query_filter_at.code + 2);
assert.equal(query_filter_at.timestamp_min, (w_query_filter_reserved_last + 1) * 4);
// An AccountBalance (128 bytes): the account's four balances after the transfer, the
// transfer's timestamp, then reserved zeros.
const balance_words = 16, w_balance_timestamp = 16;
// A history row: the debit account's balances (16 words) then the credit account's.
export const history_row_words = 32;

// TransferLists: per transfer ordinal (`links_stride` words each, interleaved so that one cache
// line serves an append) its two account ordinals and its links (transfer ordinals) in both
// accounts' lists; per account ordinal (`lists_stride` words) the head and tail of its list, and
// whether the account is the credit side of its tail transfer (meaningful only when the tail is
// not `none`), so that appending writes the tail's next link without first reading the tail's
// debit account.
const links_stride = 8, link_debit = 0, link_credit = 1, link_next_debit = 2;
const link_next_credit = 3, link_previous_debit = 4, link_previous_credit = 5;
const lists_stride = 4, list_head = 0, list_tail = 1, list_tail_credit = 2;
assert.equal(link_next_credit, link_next_debit + 1); // Selected by adding list_tail_credit.
/** The layout, for the ledger's inlined append (Ledger.transfer_insert). */
export const transfer_lists_layout = Object.freeze({
    links_stride, link_debit, link_credit, link_next_debit, link_next_credit,
    link_previous_debit, link_previous_credit, lists_stride, list_head, list_tail,
    list_tail_credit,
});

/**
 * The (timestamp_min, timestamp_max) range of a filter as (hi, lo) u32 pairs; a zero maximum
 * means no maximum.
 */
export class TimestampRange {
    min_hi = 0;
    min_lo = 0;
    max_hi = 0;
    max_lo = 0;

    /** Reads the range at input[word..word + 4]; false (range unchanged) if it is invalid. */
    parse(input: Uint32Array, word: number): boolean {
        assert(word >= 0 && word + 4 <= input.length);
        const min_lo = input[word], min_hi = input[word + 1];
        const max_lo = input[word + 2], max_hi = input[word + 3];
        if (min_hi > timestamp_max_hi || max_hi > timestamp_max_hi) return false;
        const max_zero = (max_lo | max_hi) === 0;
        if (!max_zero && timestamp_after(min_hi, min_lo, max_hi, max_lo)) return false;
        this.min_hi = min_hi;
        this.min_lo = min_lo;
        this.max_hi = max_zero ? timestamp_max_hi : max_hi;
        this.max_lo = max_zero ? 0xffffffff : max_lo;
        assert(!timestamp_after(this.min_hi, this.min_lo, this.max_hi, this.max_lo));
        return true;
    }

    /** Whether the timestamp (hi, lo) lies in the range, bounds included. */
    contains(hi: number, lo: number): boolean {
        return !timestamp_after(this.min_hi, this.min_lo, hi, lo) &&
            !timestamp_after(hi, lo, this.max_hi, this.max_lo);
    }

    /** Whether the timestamp of the record at words[record..] lies in the range. */
    contains_record(words: Uint32Array, record: number): boolean {
        return this.contains(words[record + w_timestamp_hi], words[record + w_timestamp_lo]);
    }
}

/** The per-account transfer lists (see the layout above). */
export class TransferLists {
    readonly links: Uint32Array;
    readonly lists: Uint32Array;

    constructor(readonly transfers_max: number, readonly accounts_max: number) {
        assert(Number.isInteger(transfers_max) && transfers_max > 0);
        assert(Number.isInteger(accounts_max) && accounts_max > 0);
        this.links = new Uint32Array(transfers_max * links_stride);
        this.lists = new Uint32Array(accounts_max * lists_stride).fill(none);
    }

    /** The debit account's ordinal of transfer `ordinal`. */
    debit_ordinal(ordinal: number): number {
        if (!(ordinal >= 0 && ordinal < this.transfers_max)) {
            assert.fail('transfer_lists: bad ordinal');
        }
        return this.links[ordinal * links_stride + link_debit];
    }

    credit_ordinal(ordinal: number): number {
        if (!(ordinal >= 0 && ordinal < this.transfers_max)) {
            assert.fail('transfer_lists: bad ordinal');
        }
        return this.links[ordinal * links_stride + link_credit];
    }

    /** Whether the account's list is empty (a new account's is). */
    empty(account_ordinal: number): boolean {
        assert(account_ordinal >= 0 && account_ordinal < this.accounts_max);
        const list = account_ordinal * lists_stride;
        return this.lists[list + list_head] === none && this.lists[list + list_tail] === none;
    }

    /**
     * Links transfer `ordinal`, the newest, at the tail of both accounts' lists (all three are
     * ordinals), with the links
     * written through one local view: every typed-array field costs V8 loads and checks on
     * each use (Ledger.transfer_insert calls it; an inlined copy measured no faster); `check`
     * verifies what it built (on load and in tests).
     */
    append(ordinal: number, debit_ordinal: number, credit_ordinal: number): void {
        const links = this.links, lists = this.lists;
        const link = ordinal * links_stride;
        links[link + link_debit] = debit_ordinal;
        links[link + link_credit] = credit_ordinal;
        links[link + link_next_debit] = none;
        links[link + link_next_credit] = none;
        // Append to the debit account's list, then to the credit account's.
        let list = debit_ordinal * lists_stride;
        let tail = lists[list + list_tail];
        if (tail === none) lists[list + list_head] = ordinal;
        else {
            links[tail * links_stride + link_next_debit + lists[list + list_tail_credit]] =
                ordinal;
        }
        lists[list + list_tail] = ordinal;
        lists[list + list_tail_credit] = 0;
        links[link + link_previous_debit] = tail;
        list = credit_ordinal * lists_stride;
        tail = lists[list + list_tail];
        if (tail === none) lists[list + list_head] = ordinal;
        else {
            links[tail * links_stride + link_next_debit + lists[list + list_tail_credit]] =
                ordinal;
        }
        lists[list + list_tail] = ordinal;
        lists[list + list_tail_credit] = 1;
        links[link + link_previous_credit] = tail;
    }

    /** Unlinks transfer `ordinal`, the newest, from both lists (linked-chain rollback). */
    remove_last(ordinal: number): void {
        assert(ordinal >= 0 && ordinal < this.transfers_max);
        const link = ordinal * links_stride, links = this.links;
        this.unlink_tail(links[link + link_debit], links[link + link_previous_debit], ordinal);
        this.unlink_tail(links[link + link_credit], links[link + link_previous_credit], ordinal);
    }

    private unlink_tail(account_ordinal: number, previous: number, ordinal: number): void {
        const lists = this.lists, links = this.links;
        const list = account_ordinal * lists_stride;
        assert.equal(lists[list + list_tail], ordinal, 'transfer_lists: removing a non-tail');
        assert(previous === none || previous < ordinal, 'transfer_lists: out of order');
        lists[list + list_tail] = previous;
        if (previous === none) {
            lists[list + list_head] = none;
        } else if (links[previous * links_stride + link_debit] === account_ordinal) {
            lists[list + list_tail_credit] = 0;
            links[previous * links_stride + link_next_debit] = none;
        } else {
            assert.equal(links[previous * links_stride + link_credit], account_ordinal);
            lists[list + list_tail_credit] = 1;
            links[previous * links_stride + link_next_credit] = none;
        }
    }

    reset(): void {
        this.lists.fill(none);
    }

    /**
     * Verifies every list against the transfers (O(accounts + transfers); startup and tests):
     * each is in increasing ordinal order, its links agree both ways, it holds exactly the
     * transfers of its account, and every transfer is on both of its accounts' lists.
     */
    check(accounts_count: number, transfers_count: number): void {
        assert(accounts_count <= this.accounts_max && transfers_count <= this.transfers_max);
        const lists = this.lists, links = this.links;
        let linked = 0;
        for (let account_ordinal = 0; account_ordinal < this.accounts_max; account_ordinal++) {
            const list = account_ordinal * lists_stride;
            let transfer = lists[list + list_head], previous = none;
            if (account_ordinal >= accounts_count) {
                assert(transfer === none && lists[list + list_tail] === none,
                    'transfer_lists: a free account ordinal has transfers');
                continue;
            }
            while (transfer !== none) {
                assert(transfer < transfers_count, 'transfer_lists: link beyond the transfers');
                assert(previous === none || previous < transfer, 'transfer_lists: out of order');
                const link = transfer * links_stride;
                const as_debit = links[link + link_debit] === account_ordinal;
                assert(as_debit || links[link + link_credit] === account_ordinal,
                    'transfer_lists: a transfer on another account\'s list');
                assert.equal(links[link + (as_debit ? link_previous_debit :
                    link_previous_credit)], previous, 'transfer_lists: previous link');
                previous = transfer;
                transfer = links[link + (as_debit ? link_next_debit : link_next_credit)];
                linked++;
            }
            assert.equal(lists[list + list_tail], previous, 'transfer_lists: tail');
            if (previous !== none) {
                const tail_credit =
                    links[previous * links_stride + link_credit] === account_ordinal;
                assert.equal(lists[list + list_tail_credit], tail_credit ? 1 : 0);
            }
        }
        assert.equal(linked, transfers_count * 2, 'transfer_lists: transfers missing');
    }
}

/** Executes lookups and queries over the ledger's stores and indexes (arrays it owns). */
export class Queries {
    constructor(
        private readonly accounts: MemoryRecordStore,
        private readonly transfers: MemoryRecordStore,
        private readonly lists: TransferLists,
        private readonly history_words: Uint32Array,
        private readonly transfer_history_row: Uint32Array,
        private readonly output_words: Uint32Array,
        private readonly range: TimestampRange,
    ) {
        assert(output_words.length >= batch_events_max * record_words);
        assert.equal(transfer_history_row.length, transfers.max);
        assert.equal(history_words.length % history_row_words, 0);
    }

    /** lookup_accounts/lookup_transfers: the records of the ids that exist, in input order. */
    lookup(store: RecordStore, input: Uint32Array, ids: number): number {
        assert(ids >= 0 && ids <= batch_events_max && ids * 4 <= input.length);
        assert(store === this.accounts || store === this.transfers);
        const words = store.words, output = this.output_words;
        let length = 0;
        for (let id = 0; id < ids; id++) {
            const slot = store.find(input, id * 4);
            if (slot < 0) continue;
            assert(slot < store.count);
            copy_record(output, length >>> 2, words, slot * record_words);
            length += record_size;
        }
        assert(length <= ids * record_size);
        return length;
    }

    /**
     * get_account_transfers/get_account_balances: walks the account's list (by ordinals; each
     * transfer it reaches is read at its memory-store slot, see slot_of_ordinal).
     */
    account_filter(operation: number, input: Uint32Array): number {
        assert(operation === Operation.get_account_transfers ||
            operation === Operation.get_account_balances);
        const limit = account_filter_parse(input, this.range);
        if (limit === 0) return 0;
        const flags = input[w_account_filter_flags];
        const account_slot = this.accounts.find(input, w_account_filter_account_id);
        if (account_slot === -1) return 0;
        assert(account_slot >= 0 && account_slot < this.accounts.count);
        const account_ordinal = this.accounts.ordinal(account_slot);
        assert(account_ordinal < this.lists.accounts_max);
        const balances = operation === Operation.get_account_balances;
        const account_flags =
            this.accounts.words[account_slot * record_words + w_code_flags] >>> 16;
        // Only a history account has its balances kept.
        if (balances && (account_flags & account_flag_history) === 0) return 0;
        const reversed = (flags & AccountFilterFlags.reversed) !== 0;
        const links = this.lists.links, transfers = this.transfers;
        let ordinal = this.lists.lists[account_ordinal * lists_stride +
            (reversed ? list_tail : list_head)];
        let length = 0, found = 0, previous = none;
        while (ordinal !== none && found < limit) {
            // The list is in ordinal (timestamp) order, each way.
            assert(previous === none ||
                (reversed ? ordinal < previous : ordinal > previous));
            const link = ordinal * links_stride;
            const as_debit = links[link + link_debit] === account_ordinal;
            const next = as_debit ?
                links[link + (reversed ? link_previous_debit : link_next_debit)] :
                links[link + (reversed ? link_previous_credit : link_next_credit)];
            const slot = transfers.slot_of_ordinal(ordinal);
            if (account_filter_match(input, transfers.words, slot * record_words, as_debit,
                this.range)) {
                length = this.account_filter_emit(slot, ordinal, as_debit, balances, length);
                found++;
            }
            previous = ordinal;
            ordinal = next;
        }
        assert(found <= limit && length === found * record_size);
        return length;
    }

    private account_filter_emit(
        slot: number, ordinal: number, as_debit: boolean, balances: boolean, length: number,
    ): number {
        const output = this.output_words, transfers = this.transfers.words;
        const out = length >>> 2;
        if (!balances) {
            copy_record(output, out, transfers, slot * record_words);
            return length + record_size;
        }
        const row = this.transfer_history_row[ordinal];
        // A transfer of a history account always has a history row.
        assert(row !== none && (row + 1) * history_row_words <= this.history_words.length);
        const source = row * history_row_words + (as_debit ? 0 : balance_words);
        copy_words(output, out, this.history_words, source, balance_words);
        output[out + w_balance_timestamp] = transfers[slot * record_words + w_timestamp_lo];
        output[out + w_balance_timestamp + 1] = transfers[slot * record_words + w_timestamp_hi];
        output.fill(0, out + w_balance_timestamp + 2, out + record_words);
        return length + record_size;
    }

    /** query_accounts/query_transfers: a scan of the slots in the timestamp range. */
    query(operation: number, input: Uint32Array): number {
        assert(operation === Operation.query_accounts || operation === Operation.query_transfers);
        const limit = query_filter_parse(input, this.range);
        if (limit === 0) return 0;
        const store = operation === Operation.query_accounts ? this.accounts : this.transfers;
        const words = store.words, count = store.count, range = this.range;
        const reversed = query_filter_reversed(input);
        // Slots are in timestamp order, so the range bounds come from binary searches.
        const first = store.lower_bound(range.min_hi, range.min_lo);
        let end = store.lower_bound(range.max_hi, range.max_lo);
        if (end < count && range.contains_record(words, end * record_words)) end++;
        assert(first <= end && end <= count);
        let length = 0, found = 0;
        for (let step = 0; step < end - first && found < limit; step++) {
            const slot = reversed ? end - 1 - step : first + step;
            const record = slot * record_words;
            // Inside the range by the binary searches (slot order is timestamp order).
            assert(range.contains_record(words, record), 'queries: a slot outside the range');
            if (!query_match(input, words, record)) continue;
            copy_record(this.output_words, length >>> 2, words, record);
            length += record_size;
            found++;
        }
        assert(found <= limit && length === found * record_size);
        return length;
    }
}

/**
 * Reads a QueryFilter at input[0..16): its range into `range`, and the most results it may
 * answer; 0 when it answers nothing (a zero limit, or an invalid filter).
 */
export function query_filter_parse(input: Uint32Array, range: TimestampRange): number {
    const limit_requested = input[w_query_filter_limit];
    const flags = input[w_query_filter_flags];
    if (limit_requested === 0 || (flags & QueryFilterFlags.padding) !== 0) return 0;
    if ((input[w_query_filter_code] >>> 16) !== 0) return 0;
    if (input[w_query_filter_reserved_last] !== 0) return 0;
    if (!range.parse(input, w_query_filter_timestamp_min)) return 0;
    const limit = Math.min(limit_requested, batch_events_max);
    assert(limit >= 1 && limit <= batch_events_max);
    return limit;
}

/** Whether a QueryFilter asks for the newest records first. */
export function query_filter_reversed(input: Uint32Array): boolean {
    return (input[w_query_filter_flags] & QueryFilterFlags.reversed) !== 0;
}

/** Whether the record at words[record..] matches the QueryFilter's fields (not its range). */
export function query_match(input: Uint32Array, words: Uint32Array, record: number): boolean {
    if (!u128_is_zero(input, w_query_filter_user_data_128) &&
        !u128_equal(input, w_query_filter_user_data_128, words, record + w_user_data_128)) {
        return false;
    }
    const user_data_64_lo = input[w_query_filter_user_data_64];
    const user_data_64_hi = input[w_query_filter_user_data_64 + 1];
    if ((user_data_64_lo | user_data_64_hi) !== 0 &&
        (user_data_64_lo !== words[record + w_user_data_64] ||
            user_data_64_hi !== words[record + w_user_data_64 + 1])) {
        return false;
    }
    const user_data_32 = input[w_query_filter_user_data_32];
    if (user_data_32 !== 0 && user_data_32 !== words[record + w_user_data_32]) return false;
    const ledger = input[w_query_filter_ledger];
    if (ledger !== 0 && ledger !== words[record + w_ledger]) return false;
    const code = input[w_query_filter_code] & 0xffff;
    return code === 0 || code === (words[record + w_code_flags] & 0xffff);
}

/**
 * Reads an AccountFilter at input[0..32): its range into `range`, and the most results it may
 * answer; 0 when it answers nothing (a zero or all-ones account id, a zero limit, no side, or an
 * invalid filter). Whether the account exists is the caller's to check.
 */
export function account_filter_parse(input: Uint32Array, range: TimestampRange): number {
    const flags = input[w_account_filter_flags];
    const limit_requested = input[w_account_filter_limit];
    if (u128_is_zero(input, w_account_filter_account_id)) return 0;
    if (u128_is_max(input, w_account_filter_account_id)) return 0;
    if (limit_requested === 0 || (flags & AccountFilterFlags.padding) !== 0) return 0;
    if ((flags & (AccountFilterFlags.debits | AccountFilterFlags.credits)) === 0) return 0;
    if ((input[w_account_filter_code] >>> 16) !== 0) return 0;
    for (let word = w_account_filter_reserved_first; word < w_account_filter_timestamp_min;
        word++) {
        if (input[word] !== 0) return 0;
    }
    if (!range.parse(input, w_account_filter_timestamp_min)) return 0;
    const limit = Math.min(limit_requested, batch_events_max);
    assert(limit >= 1 && limit <= batch_events_max);
    return limit;
}

/**
 * Whether the transfer at transfers[transfer..] matches the AccountFilter: its side (the
 * transfer debits the account, or credits it), its range and its fields.
 */
export function account_filter_match(input: Uint32Array, transfers: Uint32Array,
    transfer: number, as_debit: boolean, range: TimestampRange): boolean {
    const flags = input[w_account_filter_flags];
    if (as_debit && (flags & AccountFilterFlags.debits) === 0) return false;
    if (!as_debit && (flags & AccountFilterFlags.credits) === 0) return false;
    if (!range.contains_record(transfers, transfer)) return false;
    if (!u128_is_zero(input, w_account_filter_user_data_128) &&
        !u128_equal(input, w_account_filter_user_data_128, transfers,
            transfer + w_user_data_128)) {
        return false;
    }
    const user_data_64_lo = input[w_account_filter_user_data_64];
    const user_data_64_hi = input[w_account_filter_user_data_64 + 1];
    if ((user_data_64_lo | user_data_64_hi) !== 0 &&
        (user_data_64_lo !== transfers[transfer + w_user_data_64] ||
            user_data_64_hi !== transfers[transfer + w_user_data_64 + 1])) {
        return false;
    }
    const user_data_32 = input[w_account_filter_user_data_32];
    if (user_data_32 !== 0 && user_data_32 !== transfers[transfer + w_user_data_32]) {
        return false;
    }
    const code = input[w_account_filter_code] & 0xffff;
    return code === 0 || code === (transfers[transfer + w_code_flags] & 0xffff);
}
