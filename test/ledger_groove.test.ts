// The disk-resident record store (lib/ledger/groove.ts) against the ledger and its reference model.
// A Ledger (over its in-memory stores) and the model execute the same random batches as in
// ledger_model.test.ts, byte-identical; two grooves (accounts, transfers) over one forest on the
// in-memory block device, with a record cache of one set and a block cache of one set so that most
// reads go to the device, follow every batch through the store's batch interface: the batch's ids
// are prefetched (the ids Ledger.prefetch names), the pinned records must equal the ledger's before
// it executes, the ledger's creates are appended and its changes written in place, and lookup
// replies rebuilt from the pins must equal the ledger's (the model's) bytes. Full timestamp scans
// compare every record at intervals. Then: pinning beyond the caches, the pinned_max bound,
// checkpoint and open, and determinism across cache sizes.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
    GrooveRecordStore, groove_index_options, groove_tree_options,
} from '../lib/ledger/groove';
import { GrooveAccountQuery } from '../lib/ledger/groove_account_query';
import { GroovePrefetch } from '../lib/ledger/groove_prefetch';
import { GrooveQuery } from '../lib/ledger/groove_query';
import { PendingStatus } from '../lib/ledger/constants';
import { Ledger } from '../lib/ledger/ledger';
import { StorageBlockDevice } from '../lib/lsm/block_device';
import type { BlockDevice, MemoryBlockDevice } from '../lib/lsm/block_device';
import { Arena } from '../lib/io/arena';
import { CrashMode, SimulatorStorage } from '../lib/storage/simulator_storage';
import { config_test, ZoneLayout } from '../lib/storage/zones';
import { Forest, forest_buffer_count } from '../lib/lsm/forest';
import type { ForestOptions } from '../lib/lsm/forest';
import { Prng } from '../lib/prng';
import { reference_address } from '../lib/vsr/grid';
import { LedgerModel, Op } from '../lib/testing/ledger_model';
import { LedgerWorkload } from '../lib/testing/ledger_workload';
import type { Batch } from '../lib/testing/ledger_workload';
import {
    cluster, forest_checkpoint, forest_make, forest_run_until_idle,
} from './lsm_harness';

const block_size_bytes = 4096;
const block_count = 8192;
const pinned_max = 256;

interface GrooveSetup {
    cache_records: number;
    block_cache_bytes: number;
    seed: number;
    /** The forest over another device (default: the in-memory one of the lsm harness). */
    make?: (options: ForestOptions) => { forest: Forest; device: BlockDevice };
}

class Grooves {
    readonly forest: Forest;
    readonly device: BlockDevice;
    readonly accounts: GrooveRecordStore;
    readonly transfers: GrooveRecordStore;
    readonly account_query: GrooveAccountQuery;
    readonly prefetch: GroovePrefetch;
    readonly options: ForestOptions;

    constructor(setup: GrooveSetup, disk: Uint8Array | null = null) {
        const base = { bar_beat_count: 8, level_count: 4, growth_factor: 4, cluster,
            scan_count_max: 512 };
        this.options = {
            trees: [...groove_tree_options(1, pinned_max, base),
                ...groove_tree_options(3, pinned_max, base),
                groove_index_options(5, pinned_max, base),
                groove_index_options(6, pinned_max, base)],
            cache_size_bytes: setup.block_cache_bytes,
            checkpoint: { manifest_events_max: 1024, manifest_log_blocks_max: 2048 },
        };
        if (setup.make !== undefined) {
            assert(disk === null);
            ({ forest: this.forest, device: this.device } = setup.make(this.options));
        } else {
            const made = forest_make(this.options, block_count, setup.seed, block_size_bytes);
            // The forest reads nothing at construction: a disk given is what `open` will read.
            if (disk !== null) made.device.disk.set(disk);
            this.forest = made.forest;
            this.device = made.device;
        }
        this.accounts = new GrooveRecordStore(this.forest, { pinned_max,
            cache_records: setup.cache_records, object_tree: 0, id_tree: 1 }, 8192);
        this.transfers = new GrooveRecordStore(this.forest, { pinned_max,
            cache_records: setup.cache_records, object_tree: 2, id_tree: 3, debit_index_tree: 4,
            credit_index_tree: 5 }, 1 << 16);
        this.account_query = new GrooveAccountQuery(this.transfers);
        this.prefetch = new GroovePrefetch(this.accounts, this.transfers);
    }

    /** Step 2 for both grooves: their reads go out together; ticks until both may execute. */
    prefetch_run(): void {
        this.accounts.prefetch_start();
        this.transfers.prefetch_start();
        for (let tick = 0; tick < 100_000; tick++) {
            const accounts = this.accounts.prefetch_advance();
            const transfers = this.transfers.prefetch_advance();
            if (accounts && transfers) break;
            this.device.tick();
        }
        assert(this.forest.idle, 'groove test: the prefetch did not end');
        assert.equal(this.accounts.refusal, null);
        assert.equal(this.transfers.refusal, null);
    }

    /**
     * Steps 1 and 2 for a batch, both stages (groove_prefetch.ts); a pulse's expiring transfers
     * are named by the ledger (`expiring`, `expiring_count` of them).
     */
    batch_prefetch(batch: Batch, words: Uint32Array, expiring: Uint32Array,
        expiring_count: number): void {
        if (batch.operation === Op.pulse) this.prefetch.start_pulse(expiring, expiring_count);
        else this.prefetch.start(batch.operation, words, 0, batch.input.length);
        for (let tick = 0; tick < 100_000 && !this.prefetch.advance(); tick++) {
            this.device.tick();
        }
        assert(this.forest.idle && this.prefetch.refusal === null);
    }

    /** Step 4 and the op's compaction beat; a checkpoint at each bar's end. */
    batch_end(): void {
        this.accounts.batch_end();
        this.transfers.batch_end();
        this.forest.compact_beat();
        forest_run_until_idle(this.forest);
        if (this.forest.beat % this.forest.bar_beat_count === 0) forest_checkpoint(this.forest);
    }
}

function words_of(bytes: Uint8Array): Uint32Array {
    return new Uint32Array(bytes.slice().buffer, 0, bytes.length >>> 2);
}

/** The (store, id offset) pairs of the ids a batch names (checked against the ledger). */
function batch_ids(grooves: Grooves, batch: Batch, words: Uint32Array):
    Array<[GrooveRecordStore, number]> {
    const ids: Array<[GrooveRecordStore, number]> = [];
    const events = batch.input.length >>> 7;
    if (batch.operation === Op.create_transfers) {
        for (let event = 0; event < events * 32; event += 32) {
            ids.push([grooves.transfers, event], [grooves.accounts, event + 4],
                [grooves.accounts, event + 8]);
            if ((words[event + 16]! | words[event + 17]! | words[event + 18]! |
                words[event + 19]!) !== 0) ids.push([grooves.transfers, event + 16]);
        }
    } else if (batch.operation === Op.create_accounts) {
        for (let event = 0; event < events * 32; event += 32) ids.push([grooves.accounts, event]);
    } else if (batch.operation === Op.lookup_accounts || batch.operation === Op.lookup_transfers) {
        const store = batch.operation === Op.lookup_accounts ? grooves.accounts :
            grooves.transfers;
        for (let id = 0; id < (batch.input.length >>> 4) * 4; id += 4) ids.push([store, id]);
    } else if ((batch.operation === Op.get_account_transfers ||
        batch.operation === Op.get_account_balances) && batch.input.length === 128) {
        ids.push([grooves.accounts, 0]);
    }
    return ids;
}

function ledger_store(ledger: Ledger, grooves: Grooves, store: GrooveRecordStore) {
    return store === grooves.accounts ? ledger.accounts : ledger.transfers;
}

/** Pins of burnt ids that pin_check saw (the ledger and the groove both answered -2 - orphan). */
let pin_orphans_found = 0;

/** A pinned record equals the ledger's record with that id (both absent, or the same bytes). */
function pin_check(ledger: Ledger, grooves: Grooves, store: GrooveRecordStore,
    key: Uint32Array, offset: number, context: string): void {
    const memory = ledger_store(ledger, grooves, store);
    const expected = memory.find(key, offset);
    const actual = store.find(key, offset);
    if (expected < 0) {
        // -1, or -2 - orphan for an id burnt by a transient failure, in both.
        assert.equal(actual, expected, `${context}: the groove has a record the ledger has not`);
        if (expected < -1) pin_orphans_found += 1;
        return;
    }
    assert(actual >= 0, `${context}: the groove lacks a record`);
    assert.deepEqual(store.words.subarray(actual * 32, actual * 32 + 32),
        memory.words.subarray(expected * 32, expected * 32 + 32), `${context}: record differs`);
    // The ledger's slot is the record's creation index: the groove's permanent ordinal.
    assert.equal(store.ordinal(actual), memory.ordinal(expected),
        `${context}: ordinal differs`);
}

/**
 * Every imported event's timestamp, probed in the other kind's groove by the prefetch, is found
 * there exactly when the ledger's store of that kind has it. Returns how many were probed.
 */
function probe_check(ledger: Ledger, grooves: Grooves, batch: Batch, words: Uint32Array,
    context: string): number {
    const transfers = batch.operation === Op.create_transfers;
    if (!transfers && batch.operation !== Op.create_accounts) return 0;
    const store = transfers ? grooves.accounts : grooves.transfers;
    const memory = transfers ? ledger.accounts : ledger.transfers;
    const imported = transfers ? 1 << 8 : 1 << 4;
    let probed = 0;
    for (let event = 0; event < (batch.input.length >>> 7) * 32; event += 32) {
        const hi = words[event + 31]!, lo = words[event + 30]!;
        if (((words[event + 29]! >>> 16) & imported) === 0 || (hi | lo) === 0) continue;
        const expected = memory.find_timestamp(hi, lo) !== -1;
        assert.equal(store.find_timestamp(hi, lo) >= 0, expected,
            `${context}: find_timestamp(${hi}, ${lo}) differs`);
        probed += 1;
    }
    return probed;
}

/** What the watch of the ledger's lookups saw: finds and timestamp lookups, while armed. */
interface Watch {
    armed: boolean;
    finds: number;
    timestamps: number;
}

/**
 * The prefetch contract against the ledger's own rules: while the ledger executes, every id it
 * looks up (find, and the accounts' chunked find_pairs) must be pinned in the groove, and every
 * timestamp it looks up must have been probed there: the groove could answer each of them.
 */
function lookups_watch(ledger: Ledger, grooves_of: () => Grooves): Watch {
    const watch: Watch = { armed: false, finds: 0, timestamps: 0 };
    for (const [memory, kind] of [[ledger.accounts, 'accounts'],
        [ledger.transfers, 'transfers']] as const) {
        const find = memory.find.bind(memory);
        memory.find = (key, offset) => {
            if (watch.armed) {
                assert(grooves_of()[kind].is_pinned(key, offset),
                    'groove test: the ledger found an unpinned id');
                watch.finds += 1;
            }
            return find(key, offset);
        };
        const find_timestamp = memory.find_timestamp.bind(memory);
        memory.find_timestamp = (hi, lo) => {
            // Throws unless the timestamp was probed (and its reads landed).
            if (watch.armed) {
                grooves_of()[kind].find_timestamp(hi, lo);
                watch.timestamps += 1;
            }
            return find_timestamp(hi, lo);
        };
    }
    const memory = ledger.accounts;
    const find_pairs = memory.find_pairs.bind(memory);
    memory.find_pairs = (key, key_offset, stride_words, second_words, count, out) => {
        find_pairs(key, key_offset, stride_words, second_words, count, out);
        if (!watch.armed) return;
        // Accounts are not created by the transfers batches that look them up in pairs: the
        // groove (which throws on an unpinned id) answers as the memory store does.
        const accounts = grooves_of().accounts;
        const pairs = new Int32Array(count * 2);
        accounts.find_pairs(key, key_offset, stride_words, second_words, count, pairs);
        for (let index = 0; index < count * 2; index++) {
            const slot = pairs[index]!;
            assert.equal(slot < 0 ? slot : accounts.ordinal(slot), out[index],
                'groove test: find_pairs differs');
        }
        watch.finds += count * 2;
    };
    return watch;
}

/** The lookup reply rebuilt from the pins: the found records in input order. */
function lookup_reply(store: GrooveRecordStore, words: Uint32Array, count: number): Uint8Array {
    const reply: number[] = [];
    for (let id = 0; id < count * 4; id += 4) {
        const slot = store.find(words, id);
        if (slot >= 0) reply.push(...store.bytes.subarray(slot * 128, slot * 128 + 128));
    }
    return Uint8Array.from(reply);
}

/** Step 3 after the ledger executed: its creates appended, its changes written in place. */
function changes_apply(ledger: Ledger, grooves: Grooves, accounts_before: Uint32Array,
    counts: readonly number[], prng: Prng, batch: Batch): void {
    for (const [store, memory, before] of [
        [grooves.accounts, ledger.accounts, counts[0]!],
        [grooves.transfers, ledger.transfers, counts[1]!],
    ] as const) {
        for (let slot = before; slot < memory.count; slot++) {
            store.append(memory.words, slot * 32);
        }
        assert.equal(store.count, memory.count);
    }
    // The ids the batch burnt (transient failures), in the ledger's order.
    for (let orphan = counts[2]!; orphan < ledger.orphans_count; orphan++) {
        assert.equal(grooves.transfers.orphan_insert(ledger.orphan_words, orphan * 4), orphan);
    }
    assert.equal(grooves.transfers.orphans, ledger.orphans_count);
    for (const [store, memory] of [[grooves.accounts, ledger.accounts],
        [grooves.transfers, ledger.transfers]] as const) {
        assert.equal(store.timestamp_last_hi, memory.timestamp_last_hi);
        assert.equal(store.timestamp_last_lo, memory.timestamp_last_lo);
    }
    // Accounts the batch changed: each was pinned (a pulse's, by the transfers it expired).
    const changed: number[] = [];
    const words = ledger.accounts.words;
    for (let slot = 0; slot < counts[0]!; slot++) {
        for (let word = 0; word < 32; word++) {
            if (words[slot * 32 + word] !== accounts_before[slot * 32 + word]) {
                changed.push(slot);
                break;
            }
        }
    }
    for (const slot of changed) {
        assert(grooves.accounts.is_pinned(words, slot * 32),
            `batch ${batch.operation}: a change to an unpinned account`);
        const pin = grooves.accounts.find(words, slot * 32);
        assert(pin >= 0);
        grooves.accounts.words.set(words.subarray(slot * 32, slot * 32 + 32), pin * 32);
        grooves.accounts.update(pin);
    }
    rollback_exercise(grooves.transfers, prng, batch);
}

const rollback_ids = new Uint32Array(32);

/** Sometimes a record appended then removed again (a failed linked chain), leaving no trace. */
function rollback_exercise(store: GrooveRecordStore, prng: Prng, batch: Batch): void {
    if (!prng.chance(1, 4)) return;
    const id = 0x7000_0000 + prng.int(1 << 20);
    rollback_ids.fill(0);
    rollback_ids[3] = id;
    const count = store.count;
    // A fresh id (high words unlike any workload id) pinned absent, then appended and removed.
    store.prefetch(rollback_ids, 0);
    store.prefetch_start();
    for (let tick = 0; tick < 100_000 && !store.prefetch_advance(); tick++) {
        store.forest.device.tick();
    }
    assert.equal(store.find(rollback_ids, 0), -1);
    const timestamp = batch.timestamp + 1n;
    rollback_ids[30] = Number(timestamp & 0xffffffffn);
    rollback_ids[31] = Number(timestamp >> 32n);
    store.append(rollback_ids, 0);
    assert.equal(store.count, count + 1);
    store.remove_last();
    assert.equal(store.count, count);
    assert.equal(store.find(rollback_ids, 0), -1);
}

/** Every record of the ledger's store, in timestamp order, read back by scans of the groove. */
function scan_verify(grooves: Grooves, store: GrooveRecordStore, memory_words: Uint32Array,
    count: number, context: string): void {
    assert.equal(store.count, count, `${context}: count`);
    let slot = 0;
    let min_hi = 0, min_lo = 1;
    for (let pass = 0; pass < count + 1; pass++) {
        store.scan_start(min_hi, min_lo, 0xffffffff, 0xffffffff, 512);
        forest_run_until_idle(grooves.forest);
        const found = store.scan_count;
        const records = store.scan_records;
        for (let index = 0; index < found; index++, slot++) {
            assert(slot < count, `${context}: the groove scans more records than the ledger has`);
            assert.deepEqual(records.subarray(index * 32, index * 32 + 32),
                memory_words.subarray(slot * 32, slot * 32 + 32), `${context}: slot ${slot}`);
        }
        if (found < 512) break;
        const last = (found - 1) * 32;
        min_hi = records[last + 31]!;
        min_lo = records[last + 30]! + 1;
        if (min_lo === 2 ** 32) { min_lo = 0; min_hi += 1; }
    }
    assert.equal(slot, count, `${context}: the groove scans fewer records than the ledger has`);
}

const output = new Uint8Array(1 << 20);

function hex(bytes: Uint8Array): string {
    return Buffer.from(bytes).toString('hex');
}

/** Restarts a groove pair from its own last checkpoint (its disk and root; counts carried). */
function grooves_reopen(grooves: Grooves, setup: GrooveSetup): Grooves {
    assert.equal(grooves.forest.beat % grooves.forest.bar_beat_count, 0);
    const reopened = new Grooves({ ...setup, seed: setup.seed + 100 },
        (grooves.device as MemoryBlockDevice).disk);
    reopened.forest.open(grooves.forest.root_reference, 0);
    forest_run_until_idle(reopened.forest);
    assert.equal(reopened.forest.open_refusal, null);
    for (const [from, to] of [[grooves.accounts, reopened.accounts],
        [grooves.transfers, reopened.transfers]] as const) {
        to.restore(from.count, from.timestamp_last_hi, from.timestamp_last_lo, from.orphans);
    }
    return reopened;
}

/** The pulse expired exactly the transfers pulse_expiring named (all the due ones). */
function pulse_check(ledger: Ledger, batch: { operation: number; timestamp: bigint },
    expiring: Uint32Array, expiring_count: number, context: string): void {
    for (let index = 0; index < expiring_count; index++) {
        const slot = ledger.transfers.find(expiring, index * 4);
        assert.equal(ledger.transfer_status[slot], PendingStatus.expired, context);
    }
    if (batch.operation === Op.pulse && expiring_count < 8189) {
        assert.equal(ledger.pulse_expiring(batch.timestamp, expiring), 0, context);
    }
}

const reply_other = 0, reply_account_query = 1, reply_query = 2;

/** A read's reply from the grooves equals the ledger's; which kind of read it was. */
function replies_check(grooves: Grooves, batch: Parameters<typeof query_run>[1],
    words: Uint32Array, expected: Uint8Array, context: string): number {
    if (batch.operation === Op.lookup_accounts || batch.operation === Op.lookup_transfers) {
        const store = batch.operation === Op.lookup_accounts ? grooves.accounts :
            grooves.transfers;
        assert.equal(hex(lookup_reply(store, words, batch.input.length >>> 4)),
            hex(expected), `${context}: the groove's lookup reply`);
    }
    if (batch.operation === Op.get_account_transfers && batch.input.length === 128) {
        assert.equal(hex(account_query_run(grooves, words)), hex(expected),
            `${context}: the groove's get_account_transfers reply`);
        return reply_account_query;
    }
    if (batch.operation === Op.query_accounts || batch.operation === Op.query_transfers) {
        assert.equal(hex(query_run(grooves, batch, words)), hex(expected),
            `${context}: the groove's query reply`);
        return reply_query;
    }
    return reply_other;
}

/**
 * The model, the ledger and the grooves through `batches` random batches; after batch
 * `reopen_after` (at a bar's end) the last groove pair is restarted from its checkpoint.
 */
function mirror_run(seed: number, batches: number, setups: readonly GrooveSetup[],
    reopen_after = -1): { ledger: Ledger; groove_list: Grooves[] } {
    const model = new LedgerModel();
    const ledger = new Ledger({ accounts_max: 8192, transfers_max: 1 << 16 });
    const workload = new LedgerWorkload(seed);
    const groove_list = setups.map((setup) => new Grooves(setup));
    const watch = lookups_watch(ledger, () => groove_list[0]!);
    const prngs = setups.map(() => new Prng(seed));
    let queries = 0, account_queries = 0, probes = 0, expiries = 0;
    const expiring = new Uint32Array(8189 * 4);
    for (let index = 0; index < batches; index++) {
        const batch = workload.next();
        const context = `seed=${seed} batch=${index} operation=${batch.operation}`;
        const words = words_of(batch.input);
        const expiring_count = batch.operation === Op.pulse ?
            ledger.pulse_expiring(batch.timestamp, expiring) : 0;
        expiries += expiring_count;
        for (const grooves of groove_list) {
            grooves.batch_prefetch(batch, words, expiring, expiring_count);
            for (const [store, offset] of batch_ids(grooves, batch, words)) {
                pin_check(ledger, grooves, store, words, offset, context);
            }
            probes += probe_check(ledger, grooves, batch, words, context);
        }
        const accounts_before = ledger.accounts.words.slice(0, ledger.accounts.count * 32);
        const counts = [ledger.accounts.count, ledger.transfers.count, ledger.orphans_count];
        const expected = model.execute(batch.operation, batch.timestamp, batch.input);
        watch.armed = true;
        const length = ledger.execute(batch.operation, batch.timestamp, batch.input, 0,
            batch.input.length, output, 0);
        watch.armed = false;
        assert.equal(hex(output.subarray(0, length)), hex(expected), `${context}: ledger`);
        pulse_check(ledger, batch, expiring, expiring_count, context);
        workload.observe(batch, expected);
        groove_list.forEach((grooves, groove_index) => {
            const replied = replies_check(grooves, batch, words, expected, context);
            if (replied === reply_account_query) account_queries += 1;
            if (replied === reply_query) queries += 1;
            changes_apply(ledger, grooves, accounts_before, counts, prngs[groove_index]!, batch);
            grooves.batch_end();
            if (index % 100 === 99 || index === batches - 1) {
                scan_verify(grooves, grooves.accounts, ledger.accounts.words,
                    ledger.accounts.count, `${context} accounts`);
                scan_verify(grooves, grooves.transfers, ledger.transfers.words,
                    ledger.transfers.count, `${context} transfers`);
            }
        });
        if (index === reopen_after) {
            const last = groove_list.length - 1;
            groove_list[last] = grooves_reopen(groove_list[last]!, setups[last]!);
        }
    }
    assert(queries > 0 && account_queries > 0, 'groove test: the workload made no query');
    assert(batches < 200 || probes > 0, 'groove test: the workload imported nothing');
    assert(batches < 200 || expiries > 0, 'groove test: no pulse expired a transfer');
    assert(batches < 200 || (watch.finds > 0 && watch.timestamps > 0),
        'groove test: the ledger looked nothing up');
    return { ledger, groove_list };
}

const query = new GrooveQuery();

/** get_account_transfers through the transfers groove's account indexes. */
function account_query_run(grooves: Grooves, words: Uint32Array): Uint8Array {
    const account_query = grooves.account_query;
    account_query.start(words, 0, grooves.accounts.find(words, 0) >= 0);
    for (let tick = 0; tick < 1_000_000 && !account_query.advance(); tick++) {
        grooves.device.tick();
    }
    assert(grooves.forest.idle && account_query.refusal === null);
    return account_query.results.output_bytes.subarray(0, account_query.length);
}

/** A query_accounts / query_transfers batch through the grooves' object trees. */
function query_run(grooves: Grooves, batch: Batch, words: Uint32Array): Uint8Array {
    const store = batch.operation === Op.query_accounts ? grooves.accounts : grooves.transfers;
    query.start(store, words, 0);
    for (let tick = 0; tick < 1_000_000 && !query.advance(); tick++) grooves.device.tick();
    assert(grooves.forest.idle && query.refusal === null);
    return query.results.output_bytes.subarray(0, query.length);
}

const small: GrooveSetup = { cache_records: 16, block_cache_bytes: 16 * block_size_bytes,
    seed: 1 };

const long = process.env.RINGLEDGER_TEST_LONG === '1';

test('groove: follows the ledger and the model on random batches, most reads from the device',
    () => {
        for (let seed = 1; seed <= (long ? 24 : 3); seed++) {
            const [grooves] = mirror_run(seed, long ? 3000 : 400, [small]).groove_list;
            const { accounts, transfers, forest } = grooves!;
            // The caches are far smaller than the data: most pins were read through the trees.
            assert(accounts.cache_misses > accounts.cache_hits, `seed=${seed}: accounts cached`);
            assert(transfers.cache_misses > transfers.cache_hits, `seed=${seed}: transfers`);
            assert(forest.cache.misses > 0 && forest.trees[0]!.statistics.blocks_read > 0);
            // Some ids were burnt (transient failures) and looked up again through the trees.
            assert(transfers.orphans > 0, `seed=${seed}: no orphan`);
        }
        assert(pin_orphans_found > 0, 'groove test: no burnt id was looked up again');
    });

/** A synthetic account record: id `index + 1`, timestamp `index + 1`, a counter in word 20. */
function record_make(words: Uint32Array, offset: number, index: number): void {
    words.fill(0, offset, offset + 32);
    words[offset] = index + 1;
    words[offset + 30] = index + 1;
}

/** Pins ids 1..count (as records of record_make) and runs the reads. */
function pin_ids(grooves: Grooves, keys: Uint32Array, first: number, count: number): void {
    for (let index = first; index < first + count; index++) {
        record_make(keys, index * 32, index);
        grooves.accounts.prefetch(keys, index * 32);
    }
    grooves.prefetch_run();
}

test('groove: seed 1 through batch 1493, where lookups of two trees filled the shared cache set',
    () => {
        // Regression (found by the long run): the accounts' id-tree lookups found every way of
        // the one block-cache set reading for the transfers' trees, issued nothing, and took
        // themselves for done. They now wait for the forest's retry (tree.ts lookups_blocked).
        const [grooves] = mirror_run(1, 1500, [small]).groove_list;
        assert(grooves!.forest.cache.misses > 0);
    });

test('groove: a batch pins more records than both caches hold, up to pinned_max', () => {
    const grooves = new Grooves(small);
    const accounts = grooves.accounts;
    const keys = new Uint32Array(2000 * 32);
    // 2000 records in batches of 200: each id pinned absent, then appended.
    for (let first = 0; first < 2000; first += 200) {
        pin_ids(grooves, keys, first, 200);
        for (let index = first; index < first + 200; index++) {
            assert.equal(accounts.find(keys, index * 32), -1);
            accounts.append(keys, index * 32);
        }
        grooves.batch_end();
    }
    for (let beat = 0; beat < 16; beat++) grooves.batch_end();
    // One batch touches 250 records scattered over all of them (16 fit in the record cache).
    const prng = new Prng(5);
    const touched = new Set<number>();
    while (touched.size < pinned_max - 6) touched.add(prng.int(2000));
    const hits = accounts.cache_hits;
    for (const index of touched) accounts.prefetch(keys, index * 32);
    grooves.prefetch_run();
    assert(accounts.cache_hits - hits <= 16, 'groove test: more hits than the cache holds');
    assert.equal(accounts.pinned, touched.size);
    for (const index of touched) {
        const slot = accounts.find(keys, index * 32);
        assert(slot >= 0);
        assert.equal(accounts.words[slot * 32]!, index + 1);
        assert.equal(accounts.words[slot * 32 + 30]!, index + 1);
        accounts.words[slot * 32 + 20] = 1000 + index;
        accounts.update(slot);
    }
    grooves.batch_end();
    for (let first = 0; first < 2000; first += 200) {
        pin_ids(grooves, keys, first, 200);
        for (let index = first; index < first + 200; index++) {
            const slot = accounts.find(keys, index * 32);
            assert.equal(accounts.words[slot * 32 + 20], touched.has(index) ? 1000 + index : 0);
        }
        grooves.batch_end();
    }
    // Queries over the 2000 (scans of 512 at a time): forward from 701 with a limit of 1500,
    // and reversed with a limit of 300 (the newest 300, newest first).
    const filter = new Uint32Array(16);
    for (const [reversed, limit, first, expected] of [[0, 1500, 700, 1300], [1, 300, 0, 300]]) {
        filter.fill(0);
        filter[10] = first! + 1; // timestamp_min: record `index` has timestamp index + 1.
        filter[14] = limit!;
        filter[15] = reversed!;
        query.start(accounts, filter, 0);
        for (let tick = 0; tick < 100_000 && !query.advance(); tick++) grooves.device.tick();
        assert.equal(query.length, expected! * 128);
        for (let index = 0; index < expected!; index++) {
            const id = reversed === 1 ? 2000 - index : first! + 1 + index;
            assert.equal(query.results.output_words[index * 32], id, `query result ${index}`);
        }
    }
    // The bound: one pin past pinned_max is refused before anything is read.
    const many = new Uint32Array((pinned_max + 1) * 32);
    for (let index = 0; index < pinned_max; index++) {
        record_make(many, index * 32, index);
        accounts.prefetch(many, index * 32);
    }
    record_make(many, pinned_max * 32, pinned_max);
    assert.throws(() => accounts.prefetch(many, pinned_max * 32), /pins more than pinned_max/);
    assert.throws(() => accounts.find(new Uint32Array(32).fill(9), 0), /not prefetched/);
});

test('groove: a checkpoint of the forest opens to the same records', () => {
    const { ledger, groove_list } = mirror_run(7, 400, [small]);
    const grooves = groove_list[0]!;
    assert.equal(grooves.forest.beat % grooves.forest.bar_beat_count, 0);
    const root = grooves.forest.root_reference.slice();
    const reopened = new Grooves({ ...small, seed: 9 },
        (grooves.device as MemoryBlockDevice).disk);
    reopened.forest.open(root, 0);
    forest_run_until_idle(reopened.forest);
    assert.equal(reopened.forest.open_refusal, null);
    assert.equal(reopened.forest.beat, grooves.forest.beat);
    for (const [from, to] of [[grooves.accounts, reopened.accounts],
        [grooves.transfers, reopened.transfers]] as const) {
        to.restore(from.count, from.timestamp_last_hi, from.timestamp_last_lo, from.orphans);
    }
    scan_verify(reopened, reopened.accounts, ledger.accounts.words, ledger.accounts.count,
        'reopened accounts');
    scan_verify(reopened, reopened.transfers, ledger.transfers.words, ledger.transfers.count,
        'reopened transfers');
    // Every id by lookup, pinned_max at a time.
    for (const [store, memory] of [[reopened.accounts, ledger.accounts],
        [reopened.transfers, ledger.transfers]] as const) {
        for (let first = 0; first < memory.count; first += pinned_max) {
            const last = Math.min(memory.count, first + pinned_max);
            for (let slot = first; slot < last; slot++) store.prefetch(memory.words, slot * 32);
            reopened.prefetch_run();
            for (let slot = first; slot < last; slot++) {
                pin_check(ledger, reopened, store, memory.words, slot * 32, `slot ${slot}`);
            }
            reopened.batch_end();
        }
    }
});

/** Probes `timestamps` in `store`, then compares find_timestamp with the ledger's store. */
function probes_verify(grooves: Grooves, store: GrooveRecordStore, timestamps: bigint[],
    memory: Ledger['accounts']): number {
    for (const timestamp of timestamps) {
        store.prefetch_timestamp(Number(timestamp >> 32n), Number(timestamp & 0xffffffffn));
    }
    grooves.prefetch_run();
    let found = 0;
    for (const timestamp of timestamps) {
        const hi = Number(timestamp >> 32n), lo = Number(timestamp & 0xffffffffn);
        const expected = memory.find_timestamp(hi, lo) !== -1;
        assert.equal(store.find_timestamp(hi, lo) >= 0, expected, `timestamp ${timestamp}`);
        if (expected) found += 1;
    }
    return found;
}

test('groove: timestamps probed by a prefetch are found as the ledger finds them', () => {
    const { ledger, groove_list } = mirror_run(7, 400, [small]);
    const grooves = groove_list[0]!;
    const { accounts, transfers } = grooves;
    const memory = ledger.transfers;
    const timestamps: bigint[] = [];
    for (let slot = 0; slot < memory.count && timestamps.length < 200; slot += 13) {
        const timestamp = BigInt(memory.words[slot * 32 + 31]!) * (1n << 32n) +
            BigInt(memory.words[slot * 32 + 30]!);
        // The record's own timestamp, one past it, and one before it (a repeat is one probe).
        timestamps.push(timestamp, timestamp + 1n, timestamp - 1n, timestamp);
    }
    // Probes alone (no pin): only the object tree reads.
    // Neighbours are often transfers of the same batch (consecutive timestamps); some are not.
    const found = probes_verify(grooves, transfers, timestamps, memory);
    assert(found >= timestamps.length / 2 && found < timestamps.length, `found ${found}`);
    assert.throws(() => transfers.prefetch_timestamp(0, 5), /probe after the prefetch ran/);
    assert.throws(() => transfers.find_timestamp(0, 5), /not probed/);
    grooves.batch_end();
    assert.throws(() => transfers.find_timestamp(0, 5), /unprobed/);
    // Probes beside pins of the same groove (the id tree's reads run at the same time).
    for (let slot = 0; slot < 64; slot++) transfers.prefetch(memory.words, slot * 32);
    probes_verify(grooves, transfers, timestamps.slice(0, 40), memory);
    for (let slot = 0; slot < 64; slot++) {
        pin_check(ledger, grooves, transfers, memory.words, slot * 32, `slot ${slot}`);
    }
    grooves.batch_end();
    // No account has a transfer's timestamp: probed in the accounts groove, none is found.
    assert.equal(probes_verify(grooves, accounts, timestamps.slice(0, 40), ledger.accounts), 0);
    grooves.batch_end();
});

test('groove: stores with different cache sizes, one restarted, write byte-identical grids',
    () => {
        const large: GrooveSetup = { cache_records: 4096,
            block_cache_bytes: 256 * block_size_bytes, seed: 2 };
        // The large one restarts from its checkpoint at batch 160 and goes on byte for byte.
        const { groove_list } = mirror_run(11, 320, [small, large], 159);
        const [a, b] = groove_list as [Grooves, Grooves];
        // The caches answered differently: the large one (since its restart) more often.
        assert(b.accounts.cache_hits > a.accounts.cache_hits);
        assert(b.forest.cache.hits + b.forest.cache.misses > 0);
        assert.deepEqual(a.forest.root_reference, b.forest.root_reference);
        assert(Buffer.from((a.device as MemoryBlockDevice).disk).equals(
            Buffer.from((b.device as MemoryBlockDevice).disk)),
            'groove test: the grids differ');
    });

test('groove: a corrupt block under a prefetch is refused with its address, not answered', () => {
    const grooves = new Grooves(small);
    const accounts = grooves.accounts;
    const keys = new Uint32Array(2000 * 32);
    for (let first = 0; first < 2000; first += 200) {
        pin_ids(grooves, keys, first, 200);
        for (let index = first; index < first + 200; index++) accounts.append(keys, index * 32);
        grooves.batch_end();
    }
    for (let beat = 0; beat < 16; beat++) grooves.batch_end();
    // Every index block of the id tree's tables gets one byte flipped on the device.
    const manifest = accounts.ids.manifest;
    const addresses: number[] = [];
    for (let level = 0; level < manifest.level_count; level++) {
        for (let table = 0; table < manifest.counts[level]!; table++) {
            addresses.push(reference_address(manifest.references[level]!, table * 32));
        }
    }
    assert(addresses.length > 0 && addresses.every((address) => address >= 1));
    for (const address of addresses) {
        (grooves.device as MemoryBlockDevice).disk[(address - 1) * block_size_bytes + 200]! ^= 1;
    }
    // Ids the record cache does not hold (it keeps 16 of the 2000).
    for (let index = 0; index < 100; index++) accounts.prefetch(keys, index * 32);
    accounts.prefetch_start();
    let done = false;
    for (let tick = 0; tick < 100_000 && !done; tick++) {
        done = accounts.prefetch_advance();
        if (!done) grooves.device.tick();
    }
    assert(done && accounts.refusal !== null);
    assert(addresses.includes(accounts.refusal.address), accounts.refusal.message);
    assert.equal(accounts.refusal.tree_id, 2);
    // Repaired (the bytes put back), the same batch prefetches again and finds every record.
    accounts.batch_abandon();
    for (const address of addresses) {
        (grooves.device as MemoryBlockDevice).disk[(address - 1) * block_size_bytes + 200]! ^= 1;
    }
    pin_ids(grooves, keys, 0, 100);
    for (let index = 0; index < 100; index++) {
        assert.equal(accounts.words[accounts.find(keys, index * 32) * 32]!, index + 1);
    }
    grooves.batch_end();
});

test('groove: get_account_transfers merges both account indexes over many scans', () => {
    const grooves = new Grooves(small);
    const transfers = grooves.transfers;
    const count = 1800;
    const records = new Uint32Array(count * 32);
    // Transfer i (id 1_000_000 + i, timestamp i + 1) between accounts 1, 2 and 3 in turn, so
    // account 1 is debited by a third, credited by a third, and absent from the rest.
    const pairs = [[1, 2], [3, 1], [2, 3]];
    for (let first = 0; first < count; first += 200) {
        for (let index = first; index < first + 200; index++) {
            const base = index * 32;
            records[base] = 1_000_000 + index;
            records[base + 4] = pairs[index % 3]![0]!;
            records[base + 8] = pairs[index % 3]![1]!;
            records[base + 26] = index % 5; // user_data_32
            records[base + 30] = index + 1;
            transfers.prefetch(records, base);
        }
        grooves.prefetch_run();
        for (let index = first; index < first + 200; index++) {
            assert.equal(transfers.find(records, index * 32), -1);
            transfers.append(records, index * 32);
        }
        grooves.batch_end();
    }
    for (let beat = 0; beat < 8; beat++) grooves.batch_end();
    const filter = new Uint32Array(32);
    const account_query = grooves.account_query;
    // flags: debits 1, credits 2, reversed 4.
    for (const [flags, limit, timestamp_min, user_data_32] of
        [[3, 8189, 0, 0], [3, 700, 100, 0], [1, 8189, 0, 0], [6, 250, 0, 0], [7, 8189, 0, 2]]) {
        filter.fill(0);
        filter[0] = 1;
        filter[10] = user_data_32!;
        filter[26] = timestamp_min!;
        filter[30] = limit!;
        filter[31] = flags!;
        const expected: number[] = [];
        for (let index = 0; index < count; index++) {
            const debit = pairs[index % 3]![0] === 1, credit = pairs[index % 3]![1] === 1;
            if (!((debit && (flags! & 1) !== 0) || (credit && (flags! & 2) !== 0))) continue;
            if (index + 1 < timestamp_min!) continue;
            if (user_data_32 !== 0 && index % 5 !== user_data_32) continue;
            expected.push(1_000_000 + index);
        }
        if ((flags! & 4) !== 0) expected.reverse();
        expected.splice(limit!);
        account_query.start(filter, 0, true);
        for (let tick = 0; tick < 100_000 && !account_query.advance(); tick++) {
            grooves.device.tick();
        }
        const found = Array.from({ length: account_query.length / 128 },
            (_, index) => account_query.results.output_words[index * 32]!);
        assert.deepEqual(found, expected, `flags=${flags} limit=${limit}`);
    }
    // An account that does not exist answers nothing, whatever its index holds.
    filter[31] = 3;
    account_query.start(filter, 0, false);
    assert(account_query.advance() && account_query.length === 0);
});

test('groove: over Storage with latencies, a crash reopens the last durable checkpoint', () => {
    const layout = new ZoneLayout({ ...config_test, block_size: block_size_bytes,
        grid_block_count: 4096 });
    let made: { forest: Forest; device: BlockDevice } | null = null;
    let storage: SimulatorStorage | null = null;
    let arena: Arena | null = null;
    const offsets: number[] = [];
    const make = (options: ForestOptions): { forest: Forest; device: BlockDevice } => {
        const size = forest_buffer_count(options, block_size_bytes, 4096) * block_size_bytes;
        if (arena === null) {
            arena = new Arena(2 * size + block_size_bytes);
            offsets.push(arena.allocate(size, block_size_bytes),
                arena.allocate(size, block_size_bytes));
            storage = new SimulatorStorage(arena, layout, { seed: 21, latency_ticks_min: 0,
                latency_ticks_max: 4, operations_max: 4096, dsync: true });
        }
        const device = new StorageBlockDevice(storage!, 2048);
        made = { forest: new Forest(options, device, offsets[made === null ? 0 : 1]!), device };
        return made;
    };
    const { ledger, groove_list } = mirror_run(5, 320, [{ ...small, make }]);
    const grooves = groove_list[0]!;
    // The run ends at a bar's end, its checkpoint durable. Then accounts no ledger has, five
    // ops of them with their compaction, and a crash in the middle of the next beat.
    assert.equal(grooves.forest.beat % grooves.forest.bar_beat_count, 0);
    const root = grooves.forest.root_reference.slice();
    // What the owner's checkpoint carries with the root.
    const carried = [grooves.accounts, grooves.transfers].map((store) =>
        [store.count, store.timestamp_last_hi, store.timestamp_last_lo, store.orphans] as const);
    const accounts = grooves.accounts;
    const extra = new Uint32Array(40 * 32);
    const extra_hi = accounts.timestamp_last_hi + 1;
    for (let op = 0; op < 5; op++) {
        for (let index = 0; index < 40; index++) {
            extra.fill(0, index * 32, index * 32 + 32);
            extra[index * 32 + 3] = 0x6000_0000 + op * 40 + index;
            extra[index * 32 + 30] = op * 40 + index + 1;
            extra[index * 32 + 31] = extra_hi;
            accounts.prefetch(extra, index * 32);
        }
        grooves.prefetch_run();
        for (let index = 0; index < 40; index++) accounts.append(extra, index * 32);
        grooves.batch_end();
    }
    grooves.forest.compact_beat();
    for (let tick = 0; tick < 2; tick++) storage!.tick();
    assert(storage!.in_flight > 0 && !grooves.forest.idle, 'the crash interrupts a beat');
    storage!.crash(CrashMode.random);
    const reopened = new Grooves({ ...small, make });
    reopened.forest.open(root, 0);
    forest_run_until_idle(reopened.forest);
    assert.equal(reopened.forest.open_refusal, null);
    reopened.accounts.restore(...carried[0]!);
    reopened.transfers.restore(...carried[1]!);
    scan_verify(reopened, reopened.accounts, ledger.accounts.words, ledger.accounts.count,
        'reopened accounts');
    scan_verify(reopened, reopened.transfers, ledger.transfers.words, ledger.transfers.count,
        'reopened transfers');
});
