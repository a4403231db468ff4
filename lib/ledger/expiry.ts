// The expiry heap: the pending transfers that have a timeout, in the order the pulse expires
// them. A binary min-heap keyed by (expires_at, transfer ordinal), in five parallel u32 arrays:
// expires_at as (hi, lo), the transfer's ordinal (RecordAccess.ordinal, which indexes
// transfer_status), and the transfer's timestamp as (hi, lo).
//
// Entries are dropped lazily: an entry is live while its transfer is still pending and still
// has the timestamp the entry recorded. A transfer that was posted or voided is no longer
// pending; one created by a linked chain that rolled back is gone, and a later transfer may hold
// its ordinal with another timestamp. The heap holds at most one entry per transfer ordinal ever
// pushed, and compacts itself when full, so it never refuses a push.
// Slot-bound (listed in groove.ts): the liveness check and peek_due read the transfer record of
// an entry's ordinal in the memory store (slot_of_ordinal); on disk this order needs an index.
import assert from 'node:assert/strict';

import { two_32 } from '../constants';
import {
    PendingStatus, batch_events_max, record_words as record_words_imported,
} from './constants';
import { transfer_at } from './record_layout';
import { MemoryRecordStore } from './record_store';
import { timestamp_after } from './u128';

const record_words = 32;
assert.equal(record_words, record_words_imported);
const w_timestamp_lo = transfer_at.timestamp / 4;
const w_timestamp_hi = transfer_at.timestamp / 4 + 1;
const pending_pending = PendingStatus.pending;
const timestamp_max_hi = 0x7fffffff; // Timestamps are at most 2^63 - 1.
const nanoseconds_per_second = 1e9;

export class ExpiryHeap {
    readonly entry_expires_hi: Uint32Array;
    readonly entry_expires_lo: Uint32Array;
    readonly entry_ordinal: Uint32Array;
    readonly entry_timestamp_hi: Uint32Array;
    readonly entry_timestamp_lo: Uint32Array;
    count = 0;
    /** The expires_at computed by the last `expires_at_compute`, as (hi, lo). */
    expires_hi = 0;
    expires_lo = 0;
    // The expires_at of each entry the last take_due took (peek_due pushes them back), and
    // peek_due's ordinals.
    private readonly taken_expires_hi = new Uint32Array(batch_events_max);
    private readonly taken_expires_lo = new Uint32Array(batch_events_max);
    private readonly peek_ordinals = new Uint32Array(batch_events_max);

    /** `transfers` and `transfer_status` are the ledger's: they tell which entries are live. */
    constructor(
        readonly capacity: number,
        private readonly transfers: MemoryRecordStore,
        private readonly transfer_status: Uint8Array,
    ) {
        assert(Number.isInteger(capacity) && capacity > 0);
        assert(capacity === transfers.max && transfer_status.length === transfers.max);
        this.entry_expires_hi = new Uint32Array(capacity);
        this.entry_expires_lo = new Uint32Array(capacity);
        this.entry_ordinal = new Uint32Array(capacity);
        this.entry_timestamp_hi = new Uint32Array(capacity);
        this.entry_timestamp_lo = new Uint32Array(capacity);
    }

    /**
     * Computes expires_at = (timestamp_hi, timestamp_lo) + timeout_seconds s into expires_hi/lo;
     * returns true when it exceeds 2^63 - 1 (then the transfer overflows its timeout).
     */
    expires_at_compute(timestamp_hi: number, timestamp_lo: number,
        timeout_seconds: number): boolean {
        assert(timeout_seconds > 0 && timeout_seconds <= 0xffffffff);
        assert(timestamp_hi <= timestamp_max_hi && timestamp_lo < two_32);
        // timeout_seconds * 1e9 is up to 2^62: split it so that every step is exact in a double.
        const low_product = (timeout_seconds & 0xffff) * nanoseconds_per_second;
        const high_product = Math.floor(timeout_seconds / 65536) * nanoseconds_per_second;
        const high_low = high_product % 65536;
        const high_high = Math.floor(high_product / 65536);
        const sum = low_product + high_low * 65536 + timestamp_lo;
        assert(sum < Number.MAX_SAFE_INTEGER);
        this.expires_lo = sum % two_32;
        this.expires_hi = timestamp_hi + high_high + Math.floor(sum / two_32);
        assert(this.expires_lo >= 0 && this.expires_lo < two_32);
        // expires_at is after the timestamp: the timeout is at least a second.
        assert(timestamp_after(this.expires_hi, this.expires_lo, timestamp_hi, timestamp_lo));
        return this.expires_hi > timestamp_max_hi;
    }

    /**
     * Pushes the pending transfer at `slot` (its record at hand), to expire at the last
     * `expires_at_compute`.
     */
    push(slot: number): void {
        const ordinal = this.transfers.ordinal(slot);
        // Per pending transfer: `if (!x) assert.fail` costs no call while x holds (V8 does not
        // inline node's assert).
        if (this.transfer_status[ordinal] !== pending_pending) {
            assert.fail('expiry: push of a transfer that is not pending');
        }
        if (this.expires_hi > timestamp_max_hi) assert.fail('expiry: push of an overflow');
        if (this.count === this.capacity) this.compact();
        if (this.count >= this.capacity) assert.fail('expiry: full after compaction');
        const transfer_words = this.transfers.words;
        let index = this.count++;
        this.entry_expires_hi[index] = this.expires_hi;
        this.entry_expires_lo[index] = this.expires_lo;
        this.entry_ordinal[index] = ordinal;
        this.entry_timestamp_hi[index] = transfer_words[slot * record_words + w_timestamp_hi];
        this.entry_timestamp_lo[index] = transfer_words[slot * record_words + w_timestamp_lo];
        while (index > 0) {
            const parent = (index - 1) >>> 1;
            if (!this.less(index, parent)) break;
            this.swap(index, parent);
            index = parent;
        }
        // Heap order where the entry came to rest: not before its parent, not after a child.
        if (index > 0 && this.less(index, (index - 1) >>> 1)) assert.fail('expiry: sift up');
        if (this.child_less(index)) assert.fail('expiry: heap order broken by a push');
    }

    /** Removes the first entry. */
    pop(): void {
        if (this.count <= 0) assert.fail('expiry: pop of an empty heap');
        this.count--;
        if (this.count === 0) return;
        this.swap(0, this.count);
        this.sift_down(0);
        if (this.child_less(0)) assert.fail('expiry: heap order broken by a pop');
    }

    /** Whether entry `index` is still a pending transfer's (see the top of this file). */
    live(index: number): boolean {
        if (index >= this.count) assert.fail('expiry: live of a free entry');
        const ordinal = this.entry_ordinal[index];
        if (ordinal >= this.transfers.count || this.transfer_status[ordinal] !== pending_pending) {
            return false;
        }
        const transfer = this.transfers.slot_of_ordinal(ordinal) * record_words;
        const transfer_words = this.transfers.words;
        return transfer_words[transfer + w_timestamp_lo] === this.entry_timestamp_lo[index] &&
            transfer_words[transfer + w_timestamp_hi] === this.entry_timestamp_hi[index];
    }

    /** Pops stale entries until the first is live or the heap is empty. */
    drop_stale(): void {
        while (this.count > 0 && !this.live(0)) this.pop();
        assert(this.count === 0 || this.live(0));
    }

    /**
     * Pops up to `max` live entries that expire at or before (hi, lo), writing their transfer
     * ordinals to `out` in expiry order; returns how many.
     */
    take_due(hi: number, lo: number, out: Uint32Array, max: number): number {
        assert(max <= out.length && max <= batch_events_max);
        let taken = 0;
        while (taken < max && this.count > 0) {
            if (!this.live(0)) {
                this.pop();
                continue;
            }
            if (timestamp_after(this.entry_expires_hi[0], this.entry_expires_lo[0], hi, lo)) break;
            this.taken_expires_hi[taken] = this.entry_expires_hi[0];
            this.taken_expires_lo[taken] = this.entry_expires_lo[0];
            out[taken++] = this.entry_ordinal[0];
            this.pop();
        }
        assert(taken <= max);
        // Expiry order: a transfer expires at most once, so the ordinals taken are distinct.
        assert(taken < 2 || out[taken - 1] !== out[taken - 2]);
        return taken;
    }

    /**
     * The ids (4 words each, into `out`) of the transfers `take_due` would take with max
     * batch_events_max, without taking them: the entries are popped, then pushed again (keys
     * are unique, so every later take is the same; stale entries popped on the way stay
     * dropped). A disk-resident store prefetches a pulse's transfers from it.
     */
    peek_due(hi: number, lo: number, out: Uint32Array): number {
        assert(out.length >= batch_events_max * 4);
        const count_before = this.count, ordinals = this.peek_ordinals;
        const taken = this.take_due(hi, lo, ordinals, batch_events_max);
        const words = this.transfers.words;
        for (let index = 0; index < taken; index++) {
            this.expires_hi = this.taken_expires_hi[index];
            this.expires_lo = this.taken_expires_lo[index];
            const slot = this.transfers.slot_of_ordinal(ordinals[index]);
            this.push(slot);
            const id = slot * record_words;
            out[index * 4] = words[id]; out[index * 4 + 1] = words[id + 1];
            out[index * 4 + 2] = words[id + 2]; out[index * 4 + 3] = words[id + 3];
        }
        assert(this.count <= count_before);
        return taken;
    }

    /** Whether a live first entry expires at or before (hi, lo): call after `drop_stale`. */
    first_due(hi: number, lo: number): boolean {
        if (this.count === 0) return false;
        assert(this.live(0), 'expiry: first_due before drop_stale');
        return !timestamp_after(this.entry_expires_hi[0], this.entry_expires_lo[0], hi, lo);
    }

    reset(): void {
        this.count = 0;
        this.expires_hi = 0;
        this.expires_lo = 0;
        assert(this.capacity === this.entry_ordinal.length);
    }

    /** Verifies heap order over every entry (O(count): compaction, startup and tests). */
    check(): void {
        assert(this.count <= this.capacity);
        for (let index = 1; index < this.count; index++) {
            assert(!this.less(index, (index - 1) >>> 1), 'expiry: heap order');
            assert(this.entry_expires_hi[index] <= timestamp_max_hi);
            assert(this.entry_ordinal[index] < this.capacity,
                'expiry: an entry beyond the transfers');
        }
    }

    /** Drops stale entries and re-heapifies (amortised: only when the heap is full). */
    private compact(): void {
        let kept = 0;
        for (let index = 0; index < this.count; index++) {
            if (!this.live(index)) continue;
            this.entry_expires_hi[kept] = this.entry_expires_hi[index];
            this.entry_expires_lo[kept] = this.entry_expires_lo[index];
            this.entry_ordinal[kept] = this.entry_ordinal[index];
            this.entry_timestamp_hi[kept] = this.entry_timestamp_hi[index];
            this.entry_timestamp_lo[kept] = this.entry_timestamp_lo[index];
            kept++;
        }
        // Live entries are distinct pending transfers, so at most one per ordinal: fewer than the
        // capacity whenever a pending transfer is being pushed.
        assert(kept < this.capacity, 'expiry: more live entries than transfers');
        this.count = kept;
        for (let index = (kept >>> 1) - 1; index >= 0; index--) this.sift_down(index);
        this.check();
    }

    private less(left: number, right: number): boolean {
        const left_hi = this.entry_expires_hi[left], right_hi = this.entry_expires_hi[right];
        if (left_hi !== right_hi) return left_hi < right_hi;
        const left_lo = this.entry_expires_lo[left], right_lo = this.entry_expires_lo[right];
        if (left_lo !== right_lo) return left_lo < right_lo;
        return this.entry_ordinal[left] < this.entry_ordinal[right];
    }

    /** Whether either child of `index` orders before it. */
    private child_less(index: number): boolean {
        const left = index * 2 + 1, right = left + 1;
        return (left < this.count && this.less(left, index)) ||
            (right < this.count && this.less(right, index));
    }

    private swap(left: number, right: number): void {
        swap_entries(this.entry_expires_hi, left, right);
        swap_entries(this.entry_expires_lo, left, right);
        swap_entries(this.entry_ordinal, left, right);
        swap_entries(this.entry_timestamp_hi, left, right);
        swap_entries(this.entry_timestamp_lo, left, right);
    }

    private sift_down(start: number): void {
        let index = start;
        for (;;) {
            const left = index * 2 + 1, right = left + 1;
            let least = index;
            if (left < this.count && this.less(left, least)) least = left;
            if (right < this.count && this.less(right, least)) least = right;
            if (least === index) return;
            this.swap(index, least);
            index = least;
        }
    }
}

function swap_entries(array: Uint32Array, left: number, right: number): void {
    const swapped = array[left];
    array[left] = array[right];
    array[right] = swapped;
}
