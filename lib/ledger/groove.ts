// A disk-resident record store: TigerBeetle's groove shape over the LSM forest (lib/lsm). Two
// trees of one forest hold a kind of record (accounts or transfers): the object tree, keyed by
// timestamp (u64, the record's words 30..31) with the 128-byte record as its value, and the id
// tree, keyed by the u128 id (words 0..3) with the timestamp and the record's ordinal as its value.
// Timestamps only increase, so the object tree's order is creation order and a timestamp range is
// a key range. The ordinal is the record's creation index (0 for the first record, `count` for
// the next): the slot MemoryRecordStore gives the same record, so the ledger's side arrays
// indexed by slot (transfer_status, history rows, per-account lists, the expiry heap) can be
// indexed by `ordinal(pinned slot)` over this store. It is permanent: a record is never removed
// once its batch ended (a rolled-back append is never put). An id burnt by a transient failure
// (an orphan: the ledger answers id_already_failed to its retries) is in the id tree too, with
// timestamp zero (no record has it) and its orphan index as the ordinal; `find` answers
// -2 - orphan for it, as MemoryRecordStore does for its id table's secondary entries.
//
// Memory is fixed at construction: `words` holds `pinned_max` pinned slots, then a
// set-associative record cache of `cache_records` records (16 ways, CLOCK eviction within a set,
// as the block cache does for blocks). The block cache of the forest sits under both trees.
//
// A batch goes through four steps (the prefetch contract of record_store.ts):
// 1. `prefetch(id)` for every id the batch can touch pins it: a record in the record cache is
//    copied into its pinned slot at once; any other id waits for step 2.
// 2. `prefetch_start`, then `prefetch_advance` until it answers true (the caller ticks the
//    device meanwhile): one `lookups_start` on the id tree for every missed id, then one on the
//    object tree for every timestamp found; the reads of each go to the device together.
// 3. Execute, synchronous: `find` answers the pinned slot (or -1 for an id known absent), and the
//    record is read and written in place through `words`; `append`, `update`, `remove_last` act
//    on pinned slots only. A find of an id that was not prefetched is a caller bug (asserted):
//    this store cannot wait. Likewise `find_timestamp` answers only a timestamp probed by
//    `prefetch_timestamp` in step 1 (an imported timestamp must not be another kind's): those
//    probes are object-tree lookups issued in step 2 beside the id tree's.
// 4. `batch_end`: every pinned record that changed is put into the trees' mutable tables (the
//    object tree always, the id tree for a new record), then copied into the record cache, and
//    the pins are dropped. Puts happen at the end of the batch, not as changes happen, because
//    an account that takes a thousand transfers in one batch is then put once (the mutable
//    table's entries per op are bounded by distinct records, `pinned_max`), and a record
//    appended then rolled back by a failed linked chain is never put (no tombstones).
// The owner runs the forest's compaction beat after each batch and checkpoints the forest at a
// bar's end; `count` and the last timestamp are carried by the owner's checkpoint (`restore`).
//
// Determinism: what is put, and in which order (pin order, then within the trees' own order),
// depends only on the batches, never on what the record cache or the block cache held, so stores
// with different cache sizes write byte-identical grids.
//
// What this store does not cover yet (the ledger keeps them in memory, lib/ledger/ledger.ts):
// * Ledger itself still runs over MemoryRecordStore only. Slot numbers here are pinned slots,
//   valid for one batch; the ledger indexes its per-record side arrays (transfer_status,
//   transfer_history_row, the per-account transfer lists, the expiry heap, change-event rows) by
//   `ordinal(slot)`, and finds a post/void's or an expiry's accounts by the ids the pending
//   transfer holds (pinned by the second prefetch stage). Its lookups go through RecordAccess
//   (find, find_pairs, find_timestamp, timestamp_last_*, ordinal), which this store implements.
//   Still slot-bound, each reading a record it knows by ordinal at the memory store's slot
//   (MemoryRecordStore.slot_of_ordinal, which this store has not): the expiry heap's liveness
//   check and pulse_expiring's ids (expiry.ts), the pulse's pending transfers, the walk of an
//   account's transfer list (queries.ts account_filter), and change events' replies
//   (change_events.ts emit). And by nature: its checkpoint saves the record arrays whole (here:
//   the forest's) with side arrays beside them (state_image.ts, ordinal === slot asserted), its
//   state checks walk every slot, query_* scan slots (lower_bound), and its capacity limits are
//   the arrays'.
// * `lower_bound` (RecordStore's): range scans go through `scan_start` instead, forward only.
//   query_accounts/query_transfers run over it (groove_query.ts, every filter field); a
//   reversed one scans its whole range (no reverse iterator yet).
// * Secondary indexes: a transfers groove may have the debit and credit account indexes, and
//   get_account_transfers runs over them (groove_account_query.ts); get_account_balances needs
//   the history rows, not in the grid; the query_* field filters are applied to a timestamp
//   scan, not looked up in indexes of their own (user_data, ledger, code); and the expiry order
//   of pending transfers has no index yet.
// * Ledger.prefetch names a create_transfers event's own ids only: a post or void that leaves its
//   accounts zero takes the pending transfer's, known once the pending transfer is pinned, so a
//   ledger over this store needs a second prefetch stage (groove_prefetch.ts has both, and the
//   imported timestamps' probes), and up to 6 pins per event (transfer, pending, 2 + 2
//   accounts), past prefetch_ids_max (4). test/ledger_groove.test.ts checks that every id and
//   timestamp the ledger looks up while it executes was pinned or probed, and that every
//   account a batch changed was pinned.
// * A pulse's expiries change accounts no event names: the prefetch pins the transfers that
//   Ledger.pulse_expiring names, then their accounts, but that order is the ledger's in-memory
//   expiry heap; on disk it needs an expiry index (expires_at, timestamp).
// The way there (TigerBeetle's grooves are the model): with each record's permanent ordinal
// (`ordinal`, above) the in-memory side arrays keep working while they move, one by one, into
// trees of this forest: pending status (a tree keyed by the pending transfer's timestamp), the
// expiry order (an index keyed by expires_at then timestamp), the per-account lists (the account
// indexes here), and history rows (an account events tree keyed by timestamp).
import assert from 'node:assert/strict';

import type { Forest } from '../lsm/forest';
import { cache_ways } from '../lsm/block_cache';
import { lookup_absent, lookup_found } from '../lsm/tree';
import type { BlockRefusal, Tree, TreeOptions } from '../lsm/tree';
import { batch_events_max, record_size, record_words } from './constants';
import { IdTable, id_hash } from './id_table';
import { account_at, transfer_at } from './record_layout';
import { copy_record } from './record_store';
import type { RecordAccess } from './record_store';
import { timestamp_after } from './u128';

const w_timestamp_lo = 30, w_timestamp_hi = 31;
const id_words = 4, timestamp_words = 2;
/** The id tree's value: the timestamp (lo, hi), then the ordinal. */
const id_value_words = 3, id_value_ordinal = 2;
/** A pin with no record (absent, or not read yet) has no ordinal. */
const ordinal_none = 0xffffffff;
/** An index key: the timestamp in words 0..1, the account id in words 2..5 (most significant). */
export const index_key_words = timestamp_words + id_words;
const w_debit_account = transfer_at.debit_account_id / 4;
const w_credit_account = transfer_at.credit_account_id / 4;
assert(w_timestamp_lo === transfer_at.timestamp / 4 && w_timestamp_lo === account_at.timestamp / 4);

// A pinned slot's state.
const pin_free = 0;
/** Its id waits for the id tree (then maybe the object tree). */
const pin_missing = 1;
/** Its timestamp was found: the record waits for the object tree. */
const pin_loading = 2;
const pin_found = 3;
/** No record has this id: the slot holds the id only, ready for an append. */
const pin_absent = 4;
/** Appended in this batch. */
const pin_appended = 5;
/** An id burnt by a transient failure (its ordinal is the orphan index). */
const pin_orphan = 6;

// The timestamp probes of a batch: none asked, asked (the reads not started or running), read.
const probe_none = 0;
const probe_asked = 1;
const probe_read = 2;

const phase_idle = 0;
const phase_ids = 1;
const phase_objects = 2;
/** Only timestamp probes are read (every pinned id was in the record cache). */
const phase_probes = 3;

const clock_count_max = 3;

export interface GrooveOptions {
    /** Distinct records one batch may pin: every id the batch can touch. */
    pinned_max: number;
    /** Records the record cache keeps across batches (rounded down to whole sets of 16). */
    cache_records: number;
    /** The trees' indices in the forest. */
    object_tree: number;
    id_tree: number;
    /**
     * Transfers only: the indexes by debit and by credit account (keys: the account id, then
     * the timestamp; no value), which get_account_transfers scans (groove_account_query.ts).
     */
    debit_index_tree?: number;
    credit_index_tree?: number;
}

/** What a groove's trees share with the rest of the forest (the compaction schedule). */
export type GrooveTreeBase = Pick<TreeOptions, 'bar_beat_count' | 'level_count' |
    'growth_factor' | 'cluster' | 'scan_count_max'>;

/** The two trees of a groove, sized for `pinned_max` records per op. */
export function groove_tree_options(tree_id_base: number, pinned_max: number,
    base: GrooveTreeBase): TreeOptions[] {
    assert(Number.isInteger(pinned_max) && pinned_max >= 1);
    assert(tree_id_base >= 1 && tree_id_base + 1 <= 0xffff);
    const common = { ...base, bar_entry_count_max: pinned_max * base.bar_beat_count,
        cache_size_bytes: 0, lookup_count_max: pinned_max };
    return [
        { ...common, tree_id: tree_id_base, key_words: timestamp_words,
            value_words: record_words },
        { ...common, tree_id: tree_id_base + 1, key_words: id_words,
            value_words: id_value_words },
    ];
}

/** An index tree of a transfers groove: (account id, timestamp) keys, no values. */
export function groove_index_options(tree_id: number, pinned_max: number,
    base: GrooveTreeBase): TreeOptions {
    assert(Number.isInteger(pinned_max) && pinned_max >= 1);
    assert(tree_id >= 1 && tree_id <= 0xffff);
    return { ...base, tree_id, key_words: index_key_words, value_words: 0,
        bar_entry_count_max: pinned_max * base.bar_beat_count, cache_size_bytes: 0,
        lookup_count_max: 1 };
}

export class GrooveRecordStore implements RecordAccess {
    readonly max: number;
    count = 0;
    /** Ids burnt by transient failures (orphan_insert). */
    orphans = 0;
    readonly words: Uint32Array;
    readonly bytes: Uint8Array;
    readonly pinned_max: number;
    readonly cache_records: number;
    readonly forest: Forest;
    readonly objects: Tree;
    readonly ids: Tree;
    readonly debit_index: Tree | null;
    readonly credit_index: Tree | null;
    private readonly index_key = new Uint32Array(index_key_words);
    private readonly id_value = new Uint32Array(id_value_words);
    /** Why the last prefetch failed (a block refused), or null. */
    refusal: BlockRefusal | null = null;
    /** Statistics: records found in the record cache, and read through the trees. */
    cache_hits = 0;
    cache_misses = 0;
    private readonly pins: IdTable;
    private readonly pin_states: Uint8Array;
    private readonly pin_dirty: Uint8Array;
    /** Per pinned slot: the record's ordinal, or ordinal_none. */
    private readonly pin_ordinals: Uint32Array;
    private pin_count = 0;
    // Timestamp probes (prefetch_timestamp): keys (lo, hi) in probe order, an id table over
    // them (a probe's timestamp as the first two of its four words), and what each found.
    private readonly probe_keys: Uint32Array;
    private readonly probes: IdTable;
    private readonly probe_found: Uint8Array;
    private probe_count = 0;
    private probe_state = probe_none;
    private readonly probe_key = new Uint32Array(id_words);
    private readonly probe_lookup_keys: Uint32Array;
    /** Pinned slots of the missed ids, in pin order, then those whose timestamp was found. */
    private readonly missing_slots: Int32Array;
    private missing_count = 0;
    private readonly loading_slots: Int32Array;
    private loading_count = 0;
    private readonly lookup_keys: Uint32Array;
    private phase = phase_idle;
    // Appends of this batch, newest last (remove_last undoes them in reverse).
    private readonly appended_slots: Int32Array;
    private appended_count = 0;
    /** The newest record's timestamp, as of the last append (and at the batch's start). */
    private timestamp_hi = 0;
    private timestamp_lo = 0;
    private batch_timestamp_hi = 0;
    private batch_timestamp_lo = 0;
    // The staging area (stage / append_staged): a batch's records copied once.
    private readonly staging: Uint32Array;
    private staged_base = -1;
    private staged_end = -1;
    // The record cache: per way a pair (its id's hash, its state: 0 empty, else 1 + its CLOCK
    // count), so that a set's tags are two adjacent CPU cache lines and a lookup touches a
    // record only when its hash matches (at 1M cached accounts, each separate array cost a
    // memory miss per lookup); per way the record's ordinal; per set a hand.
    private readonly cache_tags: Int32Array;
    private readonly cache_ordinals: Uint32Array;
    private readonly cache_hands: Uint8Array;
    private readonly cache_set_mask: number;
    private readonly cache_base: number;

    constructor(forest: Forest, options: GrooveOptions, max: number) {
        assert(Number.isSafeInteger(max) && max >= 1);
        assert(Number.isInteger(options.pinned_max) && options.pinned_max >= 1);
        this.forest = forest;
        this.objects = forest.trees[options.object_tree]!;
        this.ids = forest.trees[options.id_tree]!;
        assert(this.objects !== undefined && this.ids !== undefined);
        assert.equal(this.objects.options.key_words, timestamp_words);
        assert.equal(this.objects.options.value_words, record_words);
        assert.equal(this.ids.options.key_words, id_words);
        assert.equal(this.ids.options.value_words, id_value_words);
        this.debit_index = index_tree(forest, options.debit_index_tree);
        this.credit_index = index_tree(forest, options.credit_index_tree);
        assert((this.debit_index === null) === (this.credit_index === null));
        assert(this.objects.options.lookup_count_max >= options.pinned_max);
        assert(this.ids.options.lookup_count_max >= options.pinned_max);
        this.max = max;
        this.pinned_max = options.pinned_max;
        const sets = Math.floor(options.cache_records / cache_ways);
        assert(sets >= 1, 'groove: the record cache holds at least one set of 16 records');
        const set_count = 2 ** Math.floor(Math.log2(sets));
        this.cache_records = set_count * cache_ways;
        this.cache_set_mask = set_count - 1;
        this.cache_base = this.pinned_max * record_words;
        this.bytes = new Uint8Array((this.pinned_max + this.cache_records) * record_size);
        this.words = new Uint32Array(this.bytes.buffer);
        this.pins = new IdTable(this.words.subarray(0, this.cache_base), record_words,
            this.pinned_max);
        this.pin_states = new Uint8Array(this.pinned_max);
        this.pin_dirty = new Uint8Array(this.pinned_max);
        this.pin_ordinals = new Uint32Array(this.pinned_max).fill(ordinal_none);
        this.probe_keys = new Uint32Array(batch_events_max * id_words);
        this.probes = new IdTable(this.probe_keys, id_words, batch_events_max);
        this.probe_found = new Uint8Array(batch_events_max);
        this.probe_lookup_keys = new Uint32Array(batch_events_max * timestamp_words);
        this.missing_slots = new Int32Array(this.pinned_max);
        this.loading_slots = new Int32Array(this.pinned_max);
        this.appended_slots = new Int32Array(this.pinned_max);
        this.lookup_keys = new Uint32Array(this.pinned_max * id_words);
        this.staging = new Uint32Array(batch_events_max * record_words);
        this.cache_tags = new Int32Array(this.cache_records * 2);
        this.cache_ordinals = new Uint32Array(this.cache_records);
        this.cache_hands = new Uint8Array(set_count);
    }

    /** Records pinned by this batch so far. */
    get pinned(): number {
        return this.pin_count;
    }

    // ---- Step 1: pins.

    prefetch(key: Uint32Array, offset: number): number {
        if (this.phase !== phase_idle) assert.fail('groove: a prefetch while one is running');
        const pinned = this.pins.find(key, offset);
        if (pinned >= 0) return pinned;
        const slot = this.pin_count;
        if (slot >= this.pinned_max) assert.fail('groove: a batch pins more than pinned_max');
        const base = slot * record_words;
        const words = this.words;
        const cached = this.cache_find(key, offset);
        if (cached >= 0) {
            copy_record(words, base, words, this.cache_base + cached * record_words);
            this.pin_states[slot] = pin_found;
            this.pin_ordinals[slot] = this.cache_ordinals[cached]!;
            this.cache_hits += 1;
        } else {
            words.fill(0, base, base + record_words);
            words[base] = key[offset]!; words[base + 1] = key[offset + 1]!;
            words[base + 2] = key[offset + 2]!; words[base + 3] = key[offset + 3]!;
            this.pin_states[slot] = pin_missing;
            this.pin_ordinals[slot] = ordinal_none;
            this.missing_slots[this.missing_count] = slot;
            this.missing_count += 1;
            this.cache_misses += 1;
        }
        this.pin_dirty[slot] = 0;
        this.pin_count = slot + 1;
        this.pins.insert(slot);
        return slot;
    }

    /**
     * Asks whether a record has exactly this timestamp (answered by `find_timestamp` in step 3,
     * as of the batch's start): an imported timestamp must not be another kind's.
     */
    prefetch_timestamp(hi: number, lo: number): void {
        if (this.phase !== phase_idle) assert.fail('groove: a prefetch while one is running');
        assert((hi | lo) !== 0, 'groove: no record has timestamp zero');
        assert(this.probe_state !== probe_read, 'groove: a probe after the prefetch ran');
        const key = this.probe_key;
        key[0] = lo; key[1] = hi; key[2] = 0; key[3] = 0;
        if (this.probes.find(key, 0) >= 0) return;
        const probe = this.probe_count;
        if (probe >= batch_events_max || probe >= this.objects.options.lookup_count_max) {
            assert.fail('groove: a batch probes more timestamps than a lookup holds');
        }
        this.probe_keys.set(key, probe * id_words);
        this.probes.insert(probe);
        this.probe_found[probe] = 0;
        this.probe_count = probe + 1;
        this.probe_state = probe_asked;
    }

    // ---- Step 2: the reads, issued together per tree.

    /** Starts the reads of every pinned id the record cache did not hold. */
    prefetch_start(): void {
        // The other groove of the forest may be prefetching: only these two trees must be idle.
        assert(this.phase === phase_idle && this.ids.idle && this.objects.idle);
        this.refusal = null;
        if (this.probe_state === probe_asked) this.probes_start();
        if (this.missing_count === 0) {
            if (this.probe_state === probe_asked) this.phase = phase_probes;
            return;
        }
        const keys = this.lookup_keys;
        for (let index = 0; index < this.missing_count; index++) {
            const base = this.missing_slots[index]! * record_words;
            assert.equal(this.pin_states[this.missing_slots[index]!], pin_missing);
            keys[index * 4] = this.words[base]!; keys[index * 4 + 1] = this.words[base + 1]!;
            keys[index * 4 + 2] = this.words[base + 2]!;
            keys[index * 4 + 3] = this.words[base + 3]!;
        }
        this.phase = phase_ids;
        this.ids.lookups_start(keys, 0, this.missing_count);
    }

    /** Moves the prefetch on once its reads have landed: true when execute may run. */
    prefetch_advance(): boolean {
        if (this.phase === phase_idle) return true;
        if (!this.ids.idle || !this.objects.idle) return false;
        if (this.probe_state === probe_asked) {
            if (this.objects.refusal !== null) return this.prefetch_refused(this.objects.refusal);
            this.probes_landed();
            if (this.phase === phase_probes) {
                this.phase = phase_idle;
                return true;
            }
        }
        if (this.phase === phase_ids) {
            if (this.ids.refusal !== null) return this.prefetch_refused(this.ids.refusal);
            this.ids_landed();
            if (this.loading_count === 0) {
                this.phase = phase_idle;
                return true;
            }
            this.phase = phase_objects;
            this.objects.lookups_start(this.lookup_keys, 0, this.loading_count);
            return false;
        }
        assert(this.phase === phase_objects);
        if (this.objects.refusal !== null) return this.prefetch_refused(this.objects.refusal);
        this.objects_landed();
        this.phase = phase_idle;
        return true;
    }

    /** A refused block ends the prefetch: the batch cannot run (the owner repairs). */
    private prefetch_refused(refusal: BlockRefusal): boolean {
        assert(this.phase !== phase_idle);
        this.refusal = refusal;
        this.phase = phase_idle;
        return true;
    }

    private ids_landed(): void {
        const ids = this.ids;
        this.loading_count = 0;
        for (let index = 0; index < this.missing_count; index++) {
            const slot = this.missing_slots[index]!;
            const status = ids.lookup_status[index]!;
            assert(status === lookup_found || status === lookup_absent);
            if (status === lookup_absent) {
                this.pin_states[slot] = pin_absent;
                continue;
            }
            const base = slot * record_words, value = index * id_value_words;
            const timestamp_lo = ids.lookup_values[value]!;
            const timestamp_hi = ids.lookup_values[value + 1]!;
            const ordinal = ids.lookup_values[value + id_value_ordinal]!;
            if ((timestamp_lo | timestamp_hi) === 0) {
                assert(ordinal < this.orphans, 'groove: an orphan beyond the orphans');
                this.pin_states[slot] = pin_orphan;
                this.pin_ordinals[slot] = ordinal;
                continue;
            }
            // Ordinals are creation indexes below `count`: a larger one is a corrupt value.
            assert(ordinal < this.count, 'groove: an id names an ordinal beyond the count');
            this.words[base + w_timestamp_lo] = timestamp_lo;
            this.words[base + w_timestamp_hi] = timestamp_hi;
            this.pin_states[slot] = pin_loading;
            this.pin_ordinals[slot] = ordinal;
            const key = this.loading_count * timestamp_words;
            this.lookup_keys[key] = timestamp_lo;
            this.lookup_keys[key + 1] = timestamp_hi;
            this.loading_slots[this.loading_count] = slot;
            this.loading_count += 1;
        }
        this.missing_count = 0;
    }

    private objects_landed(): void {
        const objects = this.objects;
        const words = this.words, values = objects.lookup_values;
        for (let index = 0; index < this.loading_count; index++) {
            const slot = this.loading_slots[index]!;
            // The id tree names only records the object tree holds: both are put together.
            assert.equal(objects.lookup_status[index], lookup_found,
                'groove: an id names a timestamp with no record');
            const base = slot * record_words;
            const id_0 = words[base], id_1 = words[base + 1], id_2 = words[base + 2];
            const id_3 = words[base + 3];
            copy_record(words, base, values, index * record_words);
            assert(words[base] === id_0 && words[base + 1] === id_1 &&
                words[base + 2] === id_2 && words[base + 3] === id_3,
            'groove: the record under a timestamp has another id');
            this.pin_states[slot] = pin_found;
        }
        this.loading_count = 0;
    }

    /** The probes' object-tree lookups, beside the id tree's (step 2's first reads). */
    private probes_start(): void {
        assert(this.probe_count >= 1 && this.objects.idle);
        const keys = this.probe_lookup_keys;
        for (let probe = 0; probe < this.probe_count; probe++) {
            keys[probe * timestamp_words] = this.probe_keys[probe * id_words]!;
            keys[probe * timestamp_words + 1] = this.probe_keys[probe * id_words + 1]!;
        }
        this.objects.lookups_start(keys, 0, this.probe_count);
    }

    private probes_landed(): void {
        const objects = this.objects;
        for (let probe = 0; probe < this.probe_count; probe++) {
            const status = objects.lookup_status[probe];
            assert(status === lookup_found || status === lookup_absent);
            this.probe_found[probe] = status === lookup_found ? 1 : 0;
        }
        this.probe_state = probe_read;
    }

    private probes_clear(): void {
        if (this.probe_count === 0) return;
        this.probes.clear();
        this.probe_found.fill(0, 0, this.probe_count);
        this.probe_keys.fill(0, 0, this.probe_count * id_words);
        this.probe_count = 0;
        this.probe_state = probe_none;
    }

    // ---- Step 3: execute, in place in the pinned slots.

    /** The record's permanent ordinal (its creation index) from its pinned slot. */
    ordinal(slot: number): number {
        if (!(slot >= 0 && slot < this.pin_count)) assert.fail('groove: ordinal of no pin');
        const state = this.pin_states[slot];
        if (state !== pin_found && state !== pin_appended) {
            assert.fail('groove: ordinal of a record that is not there');
        }
        const ordinal = this.pin_ordinals[slot]!;
        if (ordinal >= this.count) assert.fail('groove: an ordinal beyond the count');
        return ordinal;
    }

    /**
     * Get by timestamp, for a timestamp probed in step 1 only: a non-negative number when a
     * record has exactly this timestamp, else -1. It answers as of the batch's start: the
     * ledger asks the other kind's store, which the batch does not append to (asserted).
     */
    find_timestamp(hi: number, lo: number): number {
        if (this.probe_state !== probe_read) assert.fail('groove: find_timestamp unprobed');
        if (this.appended_count !== 0) assert.fail('groove: find_timestamp after an append');
        const key = this.probe_key;
        key[0] = lo; key[1] = hi; key[2] = 0; key[3] = 0;
        const probe = this.probes.find(key, 0);
        if (probe < 0) assert.fail('groove: find_timestamp of a timestamp not probed');
        return this.probe_found[probe] === 1 ? probe : -1;
    }

    /** Whether this batch pinned the id (a find of it may run). */
    is_pinned(key: Uint32Array, offset: number): boolean {
        return this.pins.find(key, offset) >= 0;
    }

    find(key: Uint32Array, offset: number): number {
        const slot = this.pins.find(key, offset);
        if (slot < 0) assert.fail('groove: a find of an id that was not prefetched');
        const state = this.pin_states[slot];
        if (state === pin_absent) return -1;
        if (state === pin_orphan) return -2 - this.pin_ordinals[slot]!;
        if (state !== pin_found && state !== pin_appended) {
            assert.fail('groove: a find before the prefetch ended');
        }
        return slot;
    }

    find_pairs(key: Uint32Array, offset: number, stride_words: number, second_words: number,
        count: number, out: Int32Array): void {
        assert(count >= 0 && count * 2 <= out.length);
        assert(count === 0 ||
            offset + (count - 1) * stride_words + second_words + id_words <= key.length);
        for (let record = 0; record < count; record++) {
            const first = offset + record * stride_words;
            out[record * 2] = this.find(key, first);
            out[record * 2 + 1] = this.find(key, first + second_words);
        }
    }

    warm(key: Uint32Array, offset: number, stride_words: number, count: number): number {
        // The pins are a few pages: nothing worth touching ahead.
        assert(count >= 0 && stride_words >= id_words);
        return key[offset] & 0;
    }

    append(source: Uint32Array, offset: number): number {
        if (this.staged_end !== -1) assert.fail('groove: append while staged');
        return this.append_from(source, offset);
    }

    private append_from(source: Uint32Array, offset: number): number {
        if (this.count >= this.max) assert.fail('groove: append beyond max');
        // The ledger looks an id up before it creates it: its slot is pinned, and absent.
        const slot = this.pins.find(source, offset);
        if (slot < 0 || this.pin_states[slot] !== pin_absent) {
            assert.fail('groove: an append of an id not found absent by a prefetch');
        }
        const hi = source[offset + w_timestamp_hi]!, lo = source[offset + w_timestamp_lo]!;
        if (!timestamp_after(hi, lo, this.timestamp_hi, this.timestamp_lo)) {
            assert.fail('groove: timestamps must increase');
        }
        copy_record(this.words, slot * record_words, source, offset);
        this.pin_states[slot] = pin_appended;
        this.pin_ordinals[slot] = this.count;
        this.pin_dirty[slot] = 1;
        this.appended_slots[this.appended_count] = slot;
        this.appended_count += 1;
        this.timestamp_hi = hi;
        this.timestamp_lo = lo;
        this.count += 1;
        return slot;
    }

    stage(source: Uint32Array, offset: number, records: number): void {
        assert(this.staged_end === -1, 'groove: staging twice');
        assert(records >= 0 && records <= batch_events_max && this.count + records <= this.max);
        assert(offset >= 0 && offset + records * record_words <= source.length);
        this.staging.set(source.subarray(offset, offset + records * record_words), 0);
        this.staged_base = this.count;
        this.staged_end = this.count + records;
    }

    append_staged(staged_slot: number): number {
        if (!(this.count <= staged_slot && staged_slot < this.staged_end)) {
            assert.fail('groove: append_staged outside the staging area');
        }
        return this.append_from(this.staging, (staged_slot - this.staged_base) * record_words);
    }

    unstage(): void {
        assert(this.staged_end === -1 || this.count <= this.staged_end);
        this.staged_base = -1;
        this.staged_end = -1;
    }

    remove_last(): void {
        assert(this.appended_count > 0, 'groove: remove_last of a record of an earlier batch');
        this.appended_count -= 1;
        const slot = this.appended_slots[this.appended_count]!;
        assert.equal(this.pin_states[slot], pin_appended);
        const base = slot * record_words;
        // Back to an absent id: the id stays (the pin is found by it), the rest is zero.
        this.words.fill(0, base + id_words, base + record_words);
        this.pin_states[slot] = pin_absent;
        this.pin_dirty[slot] = 0;
        this.count -= 1;
        assert.equal(this.pin_ordinals[slot], this.count, 'groove: remove_last out of order');
        this.pin_ordinals[slot] = ordinal_none;
        if (this.appended_count === 0) {
            this.timestamp_hi = this.batch_timestamp_hi;
            this.timestamp_lo = this.batch_timestamp_lo;
        } else {
            const last = this.appended_slots[this.appended_count - 1]! * record_words;
            this.timestamp_hi = this.words[last + w_timestamp_hi]!;
            this.timestamp_lo = this.words[last + w_timestamp_lo]!;
        }
    }

    /**
     * Burns the id key[offset..offset+4], found absent by the prefetch: a transient failure's
     * (never inside a linked chain, so never rolled back). Returns its orphan index.
     */
    orphan_insert(key: Uint32Array, offset: number): number {
        const slot = this.pins.find(key, offset);
        if (slot < 0 || this.pin_states[slot] !== pin_absent) {
            assert.fail('groove: an orphan of an id not found absent by a prefetch');
        }
        if (this.orphans >= 0xffffffff) assert.fail('groove: orphans beyond a u32');
        const orphan = this.orphans;
        this.pin_states[slot] = pin_orphan;
        this.pin_ordinals[slot] = orphan;
        this.pin_dirty[slot] = 1;
        this.orphans = orphan + 1;
        assert.equal(this.find(key, offset), -2 - orphan);
        return orphan;
    }

    update(slot: number): void {
        if (!(slot >= 0 && slot < this.pin_count)) assert.fail('groove: update of no pin');
        const state = this.pin_states[slot];
        if (state !== pin_found && state !== pin_appended) {
            assert.fail('groove: update of a record that is not there');
        }
        this.pin_dirty[slot] = 1;
    }

    // ---- Step 4: the batch's changes into the trees' mutable tables and the record cache.

    batch_end(): void {
        assert(this.phase === phase_idle && this.staged_end === -1);
        assert(this.forest.idle);
        let puts = 0;
        for (let slot = 0; slot < this.pin_count; slot++) puts += this.pin_dirty[slot]!;
        assert(puts <= this.objects.bar_entries_free && puts <= this.ids.bar_entries_free,
            'groove: a bar takes more puts than its mutable table holds');
        assert(this.debit_index === null || (puts <= this.debit_index.bar_entries_free &&
            puts <= this.credit_index!.bar_entries_free));
        const words = this.words;
        for (let slot = 0; slot < this.pin_count; slot++) {
            const state = this.pin_states[slot]!;
            const base = slot * record_words;
            if (state === pin_orphan) {
                if (this.pin_dirty[slot] === 1) this.orphan_put(slot);
                this.pin_states[slot] = pin_free;
                this.pin_dirty[slot] = 0;
                this.pin_ordinals[slot] = ordinal_none;
                continue;
            }
            if (this.pin_dirty[slot] === 1) {
                this.objects.put(words, base + w_timestamp_lo, words, base);
                if (state === pin_appended) {
                    const value = this.id_value;
                    value[0] = words[base + w_timestamp_lo]!;
                    value[1] = words[base + w_timestamp_hi]!;
                    value[id_value_ordinal] = this.pin_ordinals[slot]!;
                    this.ids.put(words, base, value, 0);
                    if (this.debit_index !== null) this.index_put(base);
                }
            }
            if (state === pin_found || state === pin_appended) {
                this.cache_insert(base, this.pin_dirty[slot] === 1, this.pin_ordinals[slot]!);
            }
            else assert(state === pin_absent, 'groove: a pin left unread at the batch end');
            this.pin_states[slot] = pin_free;
            this.pin_dirty[slot] = 0;
            this.pin_ordinals[slot] = ordinal_none;
        }
        this.pins.clear();
        this.pin_count = 0;
        this.probes_clear();
        this.batch_timestamp_hi = this.timestamp_hi;
        this.batch_timestamp_lo = this.timestamp_lo;
        this.appended_count = 0;
        this.missing_count = 0;
    }

    /**
     * After a refused prefetch: drops the batch's pins (nothing was executed), so that the batch
     * can be prefetched again once the block is repaired.
     */
    batch_abandon(): void {
        assert(this.phase === phase_idle && this.refusal !== null);
        assert(this.appended_count === 0 && this.staged_end === -1);
        for (let slot = 0; slot < this.pin_count; slot++) {
            assert.equal(this.pin_dirty[slot], 0, 'groove: a refused batch was executed');
            this.pin_states[slot] = pin_free;
            this.pin_ordinals[slot] = ordinal_none;
        }
        this.pins.clear();
        this.pin_count = 0;
        this.probes_clear();
        this.missing_count = 0;
        this.loading_count = 0;
        this.refusal = null;
    }

    /** An orphan into the id tree: timestamp zero, then the orphan index. */
    private orphan_put(slot: number): void {
        assert(this.pin_states[slot] === pin_orphan && this.pin_ordinals[slot]! < this.orphans);
        const value = this.id_value;
        value[0] = 0;
        value[1] = 0;
        value[id_value_ordinal] = this.pin_ordinals[slot]!;
        this.ids.put(this.words, slot * record_words, value, 0);
    }

    /** A new transfer into both account indexes: (account id, timestamp) → nothing. */
    private index_put(base: number): void {
        this.index_put_side(this.debit_index!, base, base + w_debit_account);
        this.index_put_side(this.credit_index!, base, base + w_credit_account);
    }

    private index_put_side(tree: Tree, base: number, account: number): void {
        const words = this.words, key = this.index_key;
        key[0] = words[base + w_timestamp_lo]!;
        key[1] = words[base + w_timestamp_hi]!;
        key[2] = words[account]!; key[3] = words[account + 1]!;
        key[4] = words[account + 2]!; key[5] = words[account + 3]!;
        tree.put(key, 0, key, 0);
    }

    // ---- Timestamp-range scans (between batches), through the object tree's iterators.

    /**
     * Scans the records with timestamps in [min, max], at most `limit` of them, in timestamp
     * order into `scan_records` (`scan_count` of them) once the forest is idle.
     */
    scan_start(min_hi: number, min_lo: number, max_hi: number, max_lo: number,
        limit: number): void {
        assert(this.pin_count === 0, 'groove: a scan between batches only');
        assert(limit >= 1 && limit <= this.objects.options.scan_count_max);
        const bounds = this.lookup_keys;
        bounds[0] = min_lo; bounds[1] = min_hi; bounds[2] = max_lo; bounds[3] = max_hi;
        this.objects.scan_start(bounds, 0, bounds, 2, limit);
    }

    get scan_records(): Uint32Array {
        return this.objects.scan_values;
    }

    get scan_count(): number {
        assert(this.objects.idle);
        return this.objects.scan_count;
    }

    // ---- Checkpoints: the forest's are the owner's; these two numbers ride along with them.

    /** The newest record's timestamp (hi, lo) for the owner's checkpoint. */
    get timestamp_last_hi(): number {
        return this.timestamp_hi;
    }

    get timestamp_last_lo(): number {
        return this.timestamp_lo;
    }

    /** After the forest opened from a checkpoint: the count and newest timestamp it carried. */
    restore(count: number, timestamp_hi: number, timestamp_lo: number, orphans = 0): void {
        assert(this.count === 0 && this.orphans === 0 && this.pin_count === 0 &&
            this.forest.idle);
        assert(Number.isSafeInteger(count) && count >= 0 && count <= this.max);
        assert(Number.isInteger(orphans) && orphans >= 0 && orphans < 0xffffffff);
        this.orphans = orphans;
        assert(count === 0 || (timestamp_hi | timestamp_lo) !== 0);
        this.count = count;
        this.timestamp_hi = timestamp_hi;
        this.timestamp_lo = timestamp_lo;
        this.batch_timestamp_hi = timestamp_hi;
        this.batch_timestamp_lo = timestamp_lo;
    }

    // ---- The record cache: set-associative by id, CLOCK within a set.

    private cache_hash(key: Uint32Array, offset: number): number {
        return id_hash(key[offset]!, key[offset + 1]!, key[offset + 2]!, key[offset + 3]!, 0);
    }

    private cache_set(hash: number): number {
        return ((hash >>> 4) & this.cache_set_mask) * cache_ways;
    }

    /** The cache way holding this id, or -1. */
    private cache_find(key: Uint32Array, offset: number): number {
        return this.cache_find_hashed(key, offset, this.cache_hash(key, offset));
    }

    private cache_find_hashed(key: Uint32Array, offset: number, hash: number): number {
        const first = this.cache_set(hash);
        const words = this.words, tags = this.cache_tags;
        for (let way = first; way < first + cache_ways; way++) {
            if (tags[way * 2] !== hash || tags[way * 2 + 1] === 0) continue;
            const base = this.cache_base + way * record_words;
            if (words[base] === key[offset] && words[base + 1] === key[offset + 1] &&
                words[base + 2] === key[offset + 2] && words[base + 3] === key[offset + 3]) {
                if (tags[way * 2 + 1]! <= clock_count_max) tags[way * 2 + 1]! += 1;
                return way;
            }
        }
        return -1;
    }

    /**
     * Copies the record at words[base..] (a pinned slot) into the cache, evicting if need be; a
     * clean record the cache still holds is there already.
     */
    private cache_insert(base: number, dirty: boolean, ordinal: number): void {
        assert(base < this.cache_base);
        assert(ordinal < this.count, 'groove: a cached record without an ordinal');
        const words = this.words;
        const hash = this.cache_hash(words, base);
        let way = this.cache_find_hashed(words, base, hash);
        if (way !== -1 && !dirty) {
            assert.equal(this.cache_ordinals[way], ordinal, 'groove: a record changed ordinal');
            return;
        }
        if (way === -1) way = this.cache_victim(this.cache_set(hash));
        copy_record(words, this.cache_base + way * record_words, words, base);
        this.cache_tags[way * 2] = hash;
        if (this.cache_tags[way * 2 + 1] === 0) this.cache_tags[way * 2 + 1] = 1;
        this.cache_ordinals[way] = ordinal;
        if (this.cache_set(hash) !== way - (way % cache_ways)) assert.fail('groove: wrong set');
    }

    private cache_victim(first: number): number {
        const set = first / cache_ways;
        // The hand lowers every count it passes: within (count_max + 1) rounds one reaches 0.
        for (let step = 0; step < cache_ways * (clock_count_max + 1); step++) {
            const way = first + this.cache_hands[set]!;
            this.cache_hands[set] = (this.cache_hands[set]! + 1) % cache_ways;
            const state = this.cache_tags[way * 2 + 1]!;
            if (state > clock_count_max + 1) assert.fail('groove: a cache count out of range');
            if (state <= 1) {
                // Empty, or a count of 0: the way is taken with a count of 0.
                this.cache_tags[way * 2 + 1] = 0;
                return way;
            }
            this.cache_tags[way * 2 + 1] = state - 1;
        }
        assert.fail('groove: the record cache found no victim');
    }
}

function index_tree(forest: Forest, index: number | undefined): Tree | null {
    if (index === undefined) return null;
    const tree = forest.trees[index];
    assert(tree !== undefined, 'groove: no such index tree');
    assert.equal(tree.options.key_words, index_key_words);
    assert.equal(tree.options.value_words, 0);
    return tree;
}
