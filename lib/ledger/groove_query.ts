// query_accounts / query_transfers over a groove store (groove.ts): the QueryFilter's timestamp
// range is a key range of the object tree, read by scans of up to `scan_count_max` records at a
// time, each filtered as queries.ts filters slots (one parse and one match for both stores).
//
// Forward queries stop at `limit` matches. The object tree scans forward only, so a reversed
// query (newest first) scans its whole range, keeping the last `limit` matches in a ring, and
// answers them newest first: correct, at the cost of reading the range (a reverse iterator over
// the tree's levels is the fix, not built).
//
// Like the store's prefetch, a query is started, then advanced until it answers true while the
// caller ticks the device; it runs between batches (no pins), and allocates nothing.
import assert from 'node:assert/strict';

import { batch_events_max, record_size, record_words } from './constants';
import type { GrooveRecordStore } from './groove';
import { TimestampRange, query_filter_parse, query_filter_reversed, query_match } from './queries';
import { copy_record } from './record_store';
import { timestamp_after } from './u128';
import type { BlockRefusal } from '../lsm/tree';

const w_timestamp_lo = 30, w_timestamp_hi = 31;
const filter_words = 16;

/**
 * The results of a query read oldest first: a forward query keeps the first `limit` matches, a
 * reversed one the last `limit` of them in a ring, answered newest first. Shared by both groove
 * queries (this file and groove_account_query.ts).
 */
export class QueryResults {
    readonly output_bytes = new Uint8Array(batch_events_max * record_size);
    readonly output_words = new Uint32Array(this.output_bytes.buffer);
    private readonly ring = new Uint32Array(batch_events_max * record_words);
    private limit = 0;
    private reversed = false;
    private matches = 0;

    reset(limit: number, reversed: boolean): void {
        assert(limit >= 0 && limit <= batch_events_max);
        this.limit = limit;
        this.reversed = reversed;
        this.matches = 0;
    }

    /** Takes a match: true when a forward query has its `limit` (it may stop reading). */
    add(source: Uint32Array, record: number): boolean {
        assert(this.limit >= 1 && (this.reversed || this.matches < this.limit));
        const position = this.reversed ? this.matches % this.limit : this.matches;
        copy_record(this.reversed ? this.ring : this.output_words, position * record_words,
            source, record);
        this.matches += 1;
        return !this.reversed && this.matches === this.limit;
    }

    /** Puts the reply in `output` (a reversed one newest first); returns its length in bytes. */
    finish(): number {
        const found = Math.min(this.matches, this.limit);
        assert(found <= batch_events_max && (this.reversed || this.matches <= this.limit));
        if (this.reversed) {
            // The ring holds the last `found` matches, the oldest at matches % limit.
            for (let index = 0; index < found; index++) {
                const position = (this.matches - 1 - index) % this.limit;
                copy_record(this.output_words, index * record_words, this.ring,
                    position * record_words);
            }
        }
        return found * record_size;
    }
}

export class GrooveQuery {
    /** The reply: `length` bytes from results.output_bytes. */
    readonly results = new QueryResults();
    length = 0;
    /** Why the query ended early (a block refused), or null. */
    refusal: BlockRefusal | null = null;
    private readonly filter = new Uint32Array(filter_words);
    private readonly range = new TimestampRange();
    private store: GrooveRecordStore | null = null;
    private scanning = false;
    /** Scans so far: each reads at least one record, so the count of records bounds them. */
    private scans = 0;

    /** Starts the query of the 64-byte QueryFilter at input[offset..offset + 16). */
    start(store: GrooveRecordStore, input: Uint32Array, offset: number): void {
        assert(this.store === null, 'groove_query: one query at a time');
        assert(offset >= 0 && offset + filter_words <= input.length);
        for (let word = 0; word < filter_words; word++) this.filter[word] = input[offset + word]!;
        this.length = 0;
        this.scans = 0;
        this.refusal = null;
        const limit = query_filter_parse(this.filter, this.range);
        this.results.reset(limit, query_filter_reversed(this.filter));
        if (limit === 0) return;
        this.store = store;
        this.scan_from(this.range.min_hi, this.range.min_lo);
    }

    private scan_from(hi: number, lo: number): void {
        const store = this.store!;
        assert(!this.scanning && this.scans <= store.count);
        this.scans += 1;
        this.scanning = true;
        store.scan_start(hi, lo, this.range.max_hi, this.range.max_lo,
            store.objects.options.scan_count_max);
    }

    /** Moves the query on once its scan has landed: true when `length` is the reply. */
    advance(): boolean {
        const store = this.store;
        if (store === null) return true;
        if (!store.objects.idle) return false;
        assert(this.scanning);
        this.scanning = false;
        if (store.objects.refusal !== null) {
            this.refusal = store.objects.refusal;
            return this.end();
        }
        const count = store.scan_count, records = store.scan_records;
        assert(count <= store.objects.options.scan_count_max);
        for (let index = 0; index < count; index++) {
            const record = index * record_words;
            assert(this.range.contains_record(records, record), 'groove_query: out of range');
            // A scan answers in timestamp order.
            assert(index === 0 || timestamp_after(records[record + w_timestamp_hi]!,
                records[record + w_timestamp_lo]!, records[record - record_words +
                w_timestamp_hi]!, records[record - record_words + w_timestamp_lo]!));
            if (!query_match(this.filter, records, record)) continue;
            if (this.results.add(records, record)) return this.end();
        }
        if (count < store.objects.options.scan_count_max) return this.end();
        // The next scan starts just after the last record read (timestamps are distinct).
        const last = (count - 1) * record_words;
        const hi = records[last + w_timestamp_hi]!, lo = records[last + w_timestamp_lo]!;
        if (hi === this.range.max_hi && lo === this.range.max_lo) return this.end();
        this.scan_from(lo === 0xffffffff ? hi + 1 : hi, (lo + 1) >>> 0);
        return false;
    }

    private end(): boolean {
        const length = this.results.finish();
        this.length = this.refusal === null ? length : 0;
        this.store = null;
        return true;
    }
}
