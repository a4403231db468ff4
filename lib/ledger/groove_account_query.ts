// get_account_transfers over a transfers groove (groove.ts) with its two account indexes: the
// account's debits and its credits are key ranges of the debit and credit index trees, (account
// id, timestamp min) to (account id, timestamp max). Each side is scanned `scan_count_max` keys
// at a time; the two sides are merged by timestamp (a transfer never debits and credits one
// account, so no timestamp is on both sides), and the transfers are read by timestamp through one
// `lookups_start` of the object tree per batch of up to `lookup_count_max`, then filtered as
// queries.ts filters a list walk (one parse and one match for both).
//
// Forward queries stop at `limit` matches; a reversed one (newest first) reads the whole range,
// keeping the last `limit` matches in a ring, as groove_query.ts does. get_account_balances is
// not covered: the balances after each transfer (history rows) are not in the grid yet. Whether
// the account exists comes from the caller (the account is pinned by the batch's prefetch).
//
// Started, then advanced until it answers true while the caller ticks the device; between
// batches; it allocates nothing.
import assert from 'node:assert/strict';

import { record_words } from './constants';
import type { GrooveRecordStore } from './groove';
import { index_key_words } from './groove';
import { TimestampRange, account_filter_match, account_filter_parse } from './queries';
import { AccountFilterFlags } from './constants';
import { QueryResults } from './groove_query';
import { timestamp_after } from './u128';
import { lookup_found } from '../lsm/tree';
import type { BlockRefusal, Tree } from '../lsm/tree';

const filter_words = 32;
const w_filter_account = 0, w_filter_flags = 31;
const side_debit = 0, side_credit = 1;
const w_timestamp_lo = 30, w_timestamp_hi = 31;

export class GrooveAccountQuery {
    /** The reply: `length` bytes from results.output_bytes. */
    readonly results = new QueryResults();
    length = 0;
    /** Why the query ended early (a block refused), or null. */
    refusal: BlockRefusal | null = null;
    private readonly transfers: GrooveRecordStore;
    private readonly sides: readonly [Tree, Tree];
    private readonly filter = new Uint32Array(filter_words);
    private readonly range = new TimestampRange();
    private running = false;
    // Per side: in use, nothing left to scan, a scan in flight; the last scan's timestamps
    // (hi, lo pairs), how many and how far merged; the next scan's lower bound (hi, lo).
    private readonly side_enabled = new Uint8Array(2);
    private readonly side_exhausted = new Uint8Array(2);
    private readonly side_scanning = new Uint8Array(2);
    private readonly side_timestamps: readonly [Uint32Array, Uint32Array];
    private readonly side_count = new Int32Array(2);
    private readonly side_position = new Int32Array(2);
    private readonly side_cursor = new Uint32Array(4);
    private readonly bounds = new Uint32Array(2 * index_key_words);
    // The object-tree lookups of merged timestamps: their keys and sides.
    private readonly batch_keys: Uint32Array;
    private readonly batch_debit: Uint8Array;
    private batch_count = 0;
    private looking = false;
    /** The last timestamp merged (0: none yet), for the order check. */
    private merged_hi = 0;
    private merged_lo = 0;

    constructor(transfers: GrooveRecordStore) {
        assert(transfers.debit_index !== null && transfers.credit_index !== null,
            'groove_account_query: the transfers groove has no account indexes');
        this.transfers = transfers;
        this.sides = [transfers.debit_index, transfers.credit_index];
        const scan_max = transfers.debit_index.options.scan_count_max;
        assert.equal(transfers.credit_index.options.scan_count_max, scan_max);
        this.side_timestamps = [new Uint32Array(scan_max * 2), new Uint32Array(scan_max * 2)];
        const lookups = transfers.objects.options.lookup_count_max;
        this.batch_keys = new Uint32Array(lookups * 2);
        this.batch_debit = new Uint8Array(lookups);
    }

    /** Starts get_account_transfers for the AccountFilter at input[offset..offset + 32). */
    start(input: Uint32Array, offset: number, account_exists: boolean): void {
        assert(!this.running, 'groove_account_query: one query at a time');
        assert(offset >= 0 && offset + filter_words <= input.length);
        for (let word = 0; word < filter_words; word++) this.filter[word] = input[offset + word]!;
        this.length = 0;
        this.refusal = null;
        this.batch_count = 0;
        this.merged_hi = 0;
        this.merged_lo = 0;
        const limit = account_filter_parse(this.filter, this.range);
        const flags = this.filter[w_filter_flags]!;
        this.results.reset(limit, (flags & AccountFilterFlags.reversed) !== 0);
        if (limit === 0 || !account_exists) return;
        this.side_enabled[side_debit] = (flags & AccountFilterFlags.debits) !== 0 ? 1 : 0;
        this.side_enabled[side_credit] = (flags & AccountFilterFlags.credits) !== 0 ? 1 : 0;
        assert(this.side_enabled[side_debit]! + this.side_enabled[side_credit]! >= 1);
        for (let side = 0; side < 2; side++) {
            this.side_exhausted[side] = this.side_enabled[side] === 1 ? 0 : 1;
            this.side_count[side] = 0;
            this.side_position[side] = 0;
            this.side_cursor[side * 2] = this.range.min_hi;
            this.side_cursor[side * 2 + 1] = this.range.min_lo;
        }
        this.running = true;
    }

    /** Moves the query on once its reads have landed: true when `length` is the reply. */
    advance(): boolean {
        if (!this.running) return true;
        if (!this.sides[0].idle || !this.sides[1].idle || !this.transfers.objects.idle) {
            return false;
        }
        if (this.looking) {
            this.looking = false;
            if (this.transfers.objects.refusal !== null) {
                return this.end(this.transfers.objects.refusal);
            }
            if (this.lookups_landed()) return this.end(null);
        }
        for (let side = 0; side < 2; side++) {
            if (this.side_scanning[side] === 0) continue;
            this.side_scanning[side] = 0;
            const refusal = this.sides[side]!.refusal;
            if (refusal !== null) return this.end(refusal);
            this.scan_landed(side);
        }
        return this.merge();
    }

    /** Merges both sides' timestamps into the lookup batch, scanning a side when it runs dry. */
    private merge(): boolean {
        const lookups_max = this.batch_debit.length;
        for (let step = 0; step <= lookups_max; step++) {
            if (this.batch_count === lookups_max) break;
            let scanning = false;
            for (let side = 0; side < 2; side++) {
                if (this.side_position[side] < this.side_count[side]!) continue;
                if (this.side_exhausted[side] === 1) continue;
                this.scan_start(side);
                scanning = true;
            }
            if (scanning) return false;
            const side = this.merge_side();
            if (side === -1) break;
            const timestamps = this.side_timestamps[side]!, position = this.side_position[side]!;
            const hi = timestamps[position * 2]!, lo = timestamps[position * 2 + 1]!;
            // The merge answers in timestamp order, each timestamp once.
            assert(this.merged_before(hi, lo), 'groove_account_query: merge out of order');
            this.merged_hi = hi;
            this.merged_lo = lo;
            this.batch_keys[this.batch_count * 2] = lo;
            this.batch_keys[this.batch_count * 2 + 1] = hi;
            this.batch_debit[this.batch_count] = side === side_debit ? 1 : 0;
            this.batch_count += 1;
            this.side_position[side] = position + 1;
        }
        if (this.batch_count === 0) return this.end(null);
        this.looking = true;
        this.transfers.objects.lookups_start(this.batch_keys, 0, this.batch_count);
        return false;
    }

    /** Whether (hi, lo) comes after the last timestamp merged (any, at the start). */
    private merged_before(hi: number, lo: number): boolean {
        if ((this.merged_hi | this.merged_lo) === 0) return true;
        return timestamp_after(hi, lo, this.merged_hi, this.merged_lo);
    }

    /** The side whose next timestamp is the smaller, or -1 when both are done. */
    private merge_side(): number {
        const debit = this.side_position[side_debit]! < this.side_count[side_debit]!;
        const credit = this.side_position[side_credit]! < this.side_count[side_credit]!;
        if (!debit || !credit) return debit ? side_debit : credit ? side_credit : -1;
        const d = this.side_timestamps[side_debit], c = this.side_timestamps[side_credit];
        const dp = this.side_position[side_debit]! * 2, cp = this.side_position[side_credit]! * 2;
        const d_hi = d[dp]!, d_lo = d[dp + 1]!, c_hi = c[cp]!, c_lo = c[cp + 1]!;
        assert(d_hi !== c_hi || d_lo !== c_lo, 'groove_account_query: a timestamp on both sides');
        return timestamp_after(c_hi, c_lo, d_hi, d_lo) ? side_debit : side_credit;
    }

    private scan_start(side: number): void {
        const bounds = this.bounds, filter = this.filter;
        assert(this.side_scanning[side] === 0 && this.side_exhausted[side] === 0);
        bounds[0] = this.side_cursor[side * 2 + 1]!;
        bounds[1] = this.side_cursor[side * 2]!;
        bounds[index_key_words] = this.range.max_lo;
        bounds[index_key_words + 1] = this.range.max_hi;
        for (let word = 0; word < 4; word++) {
            bounds[2 + word] = filter[w_filter_account + word]!;
            bounds[index_key_words + 2 + word] = filter[w_filter_account + word]!;
        }
        this.side_scanning[side] = 1;
        const tree = this.sides[side]!;
        tree.scan_start(bounds, 0, bounds, index_key_words, tree.options.scan_count_max);
    }

    private scan_landed(side: number): void {
        const tree = this.sides[side]!;
        const count = tree.scan_count, keys = tree.scan_keys;
        const timestamps = this.side_timestamps[side]!;
        for (let index = 0; index < count; index++) {
            const key = index * index_key_words;
            // The scan's range holds this account only.
            assert(keys[key + 2] === this.filter[w_filter_account] &&
                keys[key + 5] === this.filter[w_filter_account + 3]);
            timestamps[index * 2] = keys[key + 1]!;
            timestamps[index * 2 + 1] = keys[key]!;
            assert(this.range.contains(keys[key + 1]!, keys[key]!));
        }
        this.side_count[side] = count;
        this.side_position[side] = 0;
        if (count < tree.options.scan_count_max) {
            this.side_exhausted[side] = 1;
            return;
        }
        const hi = timestamps[(count - 1) * 2]!, lo = timestamps[(count - 1) * 2 + 1]!;
        if (hi === this.range.max_hi && lo === this.range.max_lo) {
            this.side_exhausted[side] = 1;
            return;
        }
        this.side_cursor[side * 2] = lo === 0xffffffff ? hi + 1 : hi;
        this.side_cursor[side * 2 + 1] = (lo + 1) >>> 0;
    }

    /** Filters the transfers read: true when a forward query has its `limit`. */
    private lookups_landed(): boolean {
        const objects = this.transfers.objects;
        const values = objects.lookup_values;
        for (let index = 0; index < this.batch_count; index++) {
            // An index names only transfers the object tree holds: all three are put together.
            assert.equal(objects.lookup_status[index], lookup_found,
                'groove_account_query: an index names a timestamp with no transfer');
            const record = index * record_words;
            assert(values[record + w_timestamp_lo] === this.batch_keys[index * 2] &&
                values[record + w_timestamp_hi] === this.batch_keys[index * 2 + 1],
            'groove_account_query: a transfer under another timestamp');
            if (!account_filter_match(this.filter, values, record, this.batch_debit[index] === 1,
                this.range)) continue;
            if (this.results.add(values, record)) return true;
        }
        this.batch_count = 0;
        return false;
    }

    private end(refusal: BlockRefusal | null): boolean {
        assert(this.running);
        this.refusal = refusal;
        const length = this.results.finish();
        this.length = refusal === null ? length : 0;
        this.running = false;
        this.side_scanning.fill(0);
        this.batch_count = 0;
        return true;
    }
}
