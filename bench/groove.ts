// create_transfers throughput over the disk-resident record store (lib/ledger/groove.ts) against
// the Ledger over its in-memory stores, in the same run, on the same 8189-transfer batches.
//
// The groove side is the store's whole batch cycle with a minimal double-entry step, not the
// Ledger's rules (the Ledger does not run over the groove yet, see groove.ts): pin the transfer
// id and both account ids, the reads through the trees (id tree, then object tree) on the
// in-memory block device, then per transfer find both accounts and the transfer id, add the
// amount to debits_posted / credits_posted in place, append the transfer; then the batch's puts,
// the op's compaction beat and a checkpoint at each bar's end. "hit": a record cache that holds
// every account; "cold": a record cache of 16 records, so that every account read walks the
// trees (id tree, then object tree) through the block cache (--block-cache-mib, default 64). The
// device copies from memory: no disk latency. Then 10 batches of lookup_accounts of random
// existing ids on each side (ids/s and the batch p99): pins, reads, and a copy of each record.
//
// Run: node dist/bench/groove.js [--accounts=100000,1000000] [--batches=30] [--warmup=5]
//      [--modes=hit,cold] [--block-cache-mib=64]
//
// Growth: `--growth=TRANSFERS` instead runs that many transfers (over the first of --accounts,
// record cache holding every account) while the data grows, batch by batch on both sides, and
// reports each tenth of the run: transfers/s, batch p50/p99/max (wall ms, each batch's whole
// cycle: prefetch, execute, puts, beat, checkpoint at a bar's end), the ratio to the Ledger on the
// same batches, and the write amplification so far (grid bytes written, compaction and
// checkpoints, over the bytes of the records put: keys and values of every tree's puts).
import assert from 'node:assert/strict';

import { Operation } from '../lib/ledger/constants';
import { GrooveRecordStore, groove_tree_options } from '../lib/ledger/groove';
import { Ledger } from '../lib/ledger/ledger';
import { account_at, transfer_at } from '../lib/ledger/record_layout';
import { MemoryBlockDevice } from '../lib/lsm/block_device';
import { Forest, forest_buffer_count } from '../lib/lsm/forest';
import type { ForestOptions } from '../lib/lsm/forest';
import { Prng } from '../lib/prng';
import { batch, fill_transfers, make_accounts } from './ledger_inputs';

const block_size_bytes = 64 * 1024;
const bar_beat_count = 8;
const w_debit = transfer_at.debit_account_id / 4, w_credit = transfer_at.credit_account_id / 4;
const w_amount = transfer_at.amount / 4;
const w_debits_posted = account_at.debits_posted / 4;
const w_credits_posted = account_at.credits_posted / 4;

function option(name: string, fallback: string): string {
    const prefix = `--${name}=`;
    const found = process.argv.find((argument) => argument.startsWith(prefix));
    return found === undefined ? fallback : found.slice(prefix.length);
}

class GrooveBench {
    readonly forest: Forest;
    readonly device: MemoryBlockDevice;
    readonly accounts: GrooveRecordStore;
    readonly transfers: GrooveRecordStore;
    private timestamp = 1;
    /** Wall time per phase (ns): prefetch, execute, puts, compaction beat, checkpoint. */
    readonly phase_ns = [0, 0, 0, 0, 0];
    private phase_start = 0n;

    private phase_end(phase: number): void {
        const now = process.hrtime.bigint();
        this.phase_ns[phase]! += Number(now - this.phase_start);
        this.phase_start = now;
    }

    constructor(accounts_max: number, transfers_max: number, cache_records: number,
        block_cache_bytes: number) {
        const base = { bar_beat_count, level_count: 7, growth_factor: 8,
            cluster: new Uint8Array(16), scan_count_max: 1024 };
        const options: ForestOptions = {
            trees: [...groove_tree_options(1, 2 * batch, base),
                ...groove_tree_options(3, batch, base)],
            cache_size_bytes: block_cache_bytes,
            checkpoint: { manifest_events_max: 8192, manifest_log_blocks_max: 8192 },
        };
        // Each record is in the grid about three times at once (levels being compacted).
        const block_count = Math.ceil((accounts_max + transfers_max) * 160 * 3 /
            block_size_bytes) + 2048;
        const memory = new Uint8Array(forest_buffer_count(options, block_size_bytes,
            block_count) * block_size_bytes);
        let operations_max = 0;
        for (const tree of options.trees) operations_max += tree.lookup_count_max + 64;
        this.device = new MemoryBlockDevice(memory, block_count, block_size_bytes,
            operations_max, 1);
        this.forest = new Forest(options, this.device, 0);
        this.accounts = new GrooveRecordStore(this.forest, { pinned_max: 2 * batch,
            cache_records, object_tree: 0, id_tree: 1 }, accounts_max);
        this.transfers = new GrooveRecordStore(this.forest, { pinned_max: batch,
            cache_records: 16, object_tree: 2, id_tree: 3 }, transfers_max);
    }

    private run_until_idle(): void {
        for (let tick = 0; tick < 10_000_000 && !this.forest.idle; tick++) this.device.tick();
        assert(this.forest.idle);
    }

    private prefetch_run(): void {
        this.accounts.prefetch_start();
        this.transfers.prefetch_start();
        for (let tick = 0; tick < 10_000_000; tick++) {
            const accounts = this.accounts.prefetch_advance();
            if (this.transfers.prefetch_advance() && accounts) break;
            this.device.tick();
        }
        assert(this.forest.idle && this.accounts.refusal === null);
    }

    /** Compaction input entries per beat, over every tree: the busiest beat and the sum. */
    beat_entries_max = 0;
    beat_entries_total = 0;
    beat_count = 0;

    private batch_end(): void {
        this.accounts.batch_end();
        this.transfers.batch_end();
        this.phase_end(2);
        this.forest.compact_beat();
        this.run_until_idle();
        this.phase_end(3);
        let entries = 0;
        for (const tree of this.forest.trees) entries += tree.statistics.beat_entries_last;
        this.beat_entries_max = Math.max(this.beat_entries_max, entries);
        this.beat_entries_total += entries;
        this.beat_count += 1;
        if (this.forest.beat % bar_beat_count !== 0) return;
        this.forest.checkpoint_start();
        this.run_until_idle();
        this.forest.checkpoint_durable();
        this.phase_end(4);
    }

    /** Accounts 1..count, `batch` per op (as make_accounts makes them for the Ledger). */
    load_accounts(count: number): void {
        const records = new Uint32Array(batch * 32);
        for (let start = 0; start < count; start += batch) {
            const events = Math.min(batch, count - start);
            records.fill(0);
            for (let event = 0; event < events; event++) {
                const base = event * 32;
                records[base] = start + event + 1;
                records[base + account_at.ledger / 4] = 1;
                records[base + account_at.code / 4] = 1;
                records[base + 30] = this.timestamp++;
                this.accounts.prefetch(records, base);
            }
            this.prefetch_run();
            for (let event = 0; event < events; event++) {
                assert.equal(this.accounts.find(records, event * 32), -1);
                this.accounts.append(records, event * 32);
            }
            this.batch_end();
        }
    }

    /** lookup_accounts of `batch` ids from ids[offset..]: pins, reads, copies; ms taken. */
    lookups_batch(ids: Uint32Array, offset: number, output: Uint32Array): number {
        const start = performance.now();
        const accounts = this.accounts;
        for (let id = offset; id < offset + batch * 4; id += 4) accounts.prefetch(ids, id);
        this.prefetch_run();
        let length = 0;
        for (let id = offset; id < offset + batch * 4; id += 4) {
            const slot = accounts.find(ids, id);
            if (slot < 0) assert.fail('bench: an account is missing');
            output.set(accounts.words.subarray(slot * 32, slot * 32 + 32), length);
            length += 32;
        }
        // Nothing changed: no puts; the op's beat is the same as a create's and not timed here.
        this.accounts.batch_end();
        this.transfers.batch_end();
        return performance.now() - start;
    }

    /** One batch of create_transfers (ids, accounts exist, amounts small: no carries). */
    transfers_batch(input: Uint32Array, offset: number): void {
        const accounts = this.accounts, transfers = this.transfers;
        const end = offset + batch * 32;
        this.phase_start = process.hrtime.bigint();
        for (let event = offset; event < end; event += 32) {
            transfers.prefetch(input, event);
            accounts.prefetch(input, event + w_debit);
            accounts.prefetch(input, event + w_credit);
        }
        this.prefetch_run();
        this.phase_end(0);
        const words = accounts.words;
        for (let event = offset; event < end; event += 32) {
            if (transfers.find(input, event) !== -1) assert.fail('bench: the transfer exists');
            const debit = accounts.find(input, event + w_debit);
            const credit = accounts.find(input, event + w_credit);
            if (debit < 0 || credit < 0) assert.fail('bench: an account is missing');
            const amount = input[event + w_amount]!;
            words[debit * 32 + w_debits_posted] += amount;
            words[credit * 32 + w_credits_posted] += amount;
            accounts.update(debit);
            accounts.update(credit);
            input[event + 30] = this.timestamp++;
            transfers.append(input, event);
        }
        this.phase_end(1);
        this.batch_end();
    }
}

interface Timing {
    per_second: number;
    per_cpu_second: number;
}

/** Times `run(b)` for batches warmup..batches-1. */
function timed(batches: number, warmup: number, run: (b: number) => void): Timing {
    let elapsed_ns = 0n, cpu_us = 0;
    for (let b = 0; b < batches; b++) {
        const cpu_start = process.cpuUsage();
        const start = process.hrtime.bigint();
        run(b);
        if (b < warmup) continue;
        elapsed_ns += process.hrtime.bigint() - start;
        const cpu = process.cpuUsage(cpu_start);
        cpu_us += cpu.user + cpu.system;
    }
    const transfers = (batches - warmup) * batch;
    return { per_second: transfers / (Number(elapsed_ns) / 1e9),
        per_cpu_second: transfers / (cpu_us / 1e6) };
}

function bench_memory(accounts: number, inputs: Uint8Array, batches: number,
    warmup: number): { timing: Timing; lookups: number[] } {
    const ledger = new Ledger({ accounts_max: accounts, transfers_max: batch * batches });
    const output = new Uint8Array(2 * 1024 * 1024);
    let clock = make_accounts(ledger, accounts, output, 1_700_000_000_000_000_000n);
    const timing = timed(batches, warmup, (b) => {
        clock += BigInt(batch);
        const offset = b * batch * 128;
        ledger.prefetch(Operation.create_transfers, inputs, offset, batch * 128);
        const length = ledger.execute(Operation.create_transfers, clock, inputs, offset,
            batch * 128, output, 0);
        assert.equal(length, batch * 16);
    });
    return { timing, lookups: memory_lookups(ledger, lookup_ids(accounts), output) };
}

function bench_groove(accounts: number, inputs: Uint8Array, batches: number, warmup: number,
    cold: boolean, block_cache_bytes: number):
    { timing: Timing; groove: GrooveBench; lookups: number[] } {
    const cache_records = cold ? 16 : 2 ** Math.ceil(Math.log2(accounts * 2));
    const groove = new GrooveBench(accounts, batch * batches, cache_records,
        block_cache_bytes);
    groove.load_accounts(accounts);
    // What the transfer batches do, not the load (whose pins are all new ids).
    groove.phase_ns.fill(0);
    groove.accounts.cache_hits = 0;
    groove.accounts.cache_misses = 0;
    groove.forest.cache.hits = 0;
    groove.forest.cache.misses = 0;
    for (const tree of groove.forest.trees) tree.statistics.blocks_read = 0;
    // Its own copy: the bench writes each transfer's timestamp into its input.
    const words = new Uint32Array(inputs.slice().buffer);
    const timing = timed(batches, warmup, (b) => groove.transfers_batch(words, b * batch * 32));
    const ids = lookup_ids(accounts), output = new Uint32Array(batch * 32);
    const lookups: number[] = [];
    for (let b = 0; b < lookup_batches; b++) {
        lookups.push(groove.lookups_batch(ids, b * batch * 4, output));
    }
    return { timing, groove, lookups };
}

const phase_names = ['prefetch', 'execute', 'puts', 'beat', 'checkpoint'];

const lookup_batches = 10;

/** Random ids of existing accounts, `batch` per lookup batch, 4 words each. */
function lookup_ids(accounts: number): Uint32Array {
    const prng = new Prng(accounts + 1);
    const ids = new Uint32Array(lookup_batches * batch * 4);
    for (let index = 0; index < lookup_batches * batch; index++) {
        ids[index * 4] = prng.int(accounts) + 1;
    }
    return ids;
}

function percentile(samples: readonly number[], fraction: number): number {
    const sorted = [...samples].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/** lookup_accounts over the memory store, the same ids: ids/s and the slowest batch's ms. */
function memory_lookups(ledger: Ledger, ids: Uint32Array, output: Uint8Array): number[] {
    const bytes = new Uint8Array(ids.buffer);
    const samples: number[] = [];
    for (let b = 0; b < lookup_batches; b++) {
        const start = performance.now();
        ledger.prefetch(Operation.lookup_accounts, bytes, b * batch * 16, batch * 16);
        const length = ledger.execute(Operation.lookup_accounts, 1n << 62n, bytes,
            b * batch * 16, batch * 16, output, 0);
        assert.equal(length, batch * 128);
        samples.push(performance.now() - start);
    }
    return samples;
}

function lookups_line(name: string, samples: readonly number[]): string {
    const seconds = samples.reduce((sum, ms) => sum + ms, 0) / 1000;
    return `${name} ${Math.round(lookup_batches * batch / seconds)} ids/s, batch p99 ` +
        `${percentile(samples, 0.99).toFixed(1)} ms`;
}

/** Batch `b` of the growth run: its own PRNG, so neither side stores the whole run. */
function growth_batch(input: Uint8Array, b: number, accounts: number): void {
    fill_transfers(input, b * batch + 1, accounts, new Prng(accounts * 1000 + b));
}

function growth_memory(accounts: number, batches: number): Float64Array {
    const ledger = new Ledger({ accounts_max: accounts, transfers_max: batch * batches });
    const output = new Uint8Array(2 * 1024 * 1024);
    const input = new Uint8Array(batch * 128);
    let clock = make_accounts(ledger, accounts, output, 1_700_000_000_000_000_000n);
    const samples = new Float64Array(batches);
    for (let b = 0; b < batches; b++) {
        growth_batch(input, b, accounts);
        clock += BigInt(batch);
        const start = performance.now();
        ledger.prefetch(Operation.create_transfers, input, 0, batch * 128);
        const length = ledger.execute(Operation.create_transfers, clock, input, 0, batch * 128,
            output, 0);
        samples[b] = performance.now() - start;
        assert.equal(length, batch * 16);
    }
    return samples;
}

/** The grid bytes written so far over the bytes of the records put (keys and values). */
function write_amplification(groove: GrooveBench): number {
    let put_bytes = 0;
    for (const tree of groove.forest.trees) {
        put_bytes += tree.statistics.entries_put *
            (tree.options.key_words + tree.options.value_words) * 4;
    }
    assert(put_bytes > 0);
    return groove.device.writes * block_size_bytes / put_bytes;
}

function bench_growth(accounts: number, transfers: number, block_cache_bytes: number): void {
    const batches = Math.ceil(transfers / batch);
    assert(batches >= 10, 'bench: a growth run of at least 10 batches');
    const memory = growth_memory(accounts, batches);
    const cache_records = 2 ** Math.ceil(Math.log2(accounts * 2));
    const groove = new GrooveBench(accounts, batch * batches, cache_records, block_cache_bytes);
    groove.load_accounts(accounts);
    const input = new Uint8Array(batch * 128);
    const words = new Uint32Array(input.buffer);
    const samples = new Float64Array(batches);
    const writes_start = groove.device.writes;
    groove.beat_entries_max = 0;
    groove.beat_entries_total = 0;
    groove.beat_count = 0;
    for (let b = 0; b < batches; b++) {
        growth_batch(input, b, accounts);
        const start = performance.now();
        groove.transfers_batch(words, 0);
        samples[b] = performance.now() - start;
        const tenth = Math.floor(b * 10 / batches);
        if (Math.floor((b + 1) * 10 / batches) === tenth && b + 1 < batches) continue;
        const first = Math.ceil(tenth * batches / 10);
        const part = Array.from(samples.subarray(first, b + 1));
        const part_memory = Array.from(memory.subarray(first, b + 1));
        const seconds = part.reduce((sum, ms) => sum + ms, 0) / 1000;
        const seconds_memory = part_memory.reduce((sum, ms) => sum + ms, 0) / 1000;
        console.log(`growth accounts=${accounts} tenth ${tenth + 1} (transfers ` +
            `${first * batch}..${(b + 1) * batch}): groove ${Math.round(part.length * batch /
                seconds)}/s, batch p50 ${percentile(part, 0.5).toFixed(1)} p99 ` +
            `${percentile(part, 0.99).toFixed(1)} max ${Math.max(...part).toFixed(1)} ms; ` +
            `memory ${Math.round(part.length * batch / seconds_memory)}/s; ` +
            `${(seconds_memory / seconds).toFixed(3)}x the memory store; write amplification ` +
            `${write_amplification(groove).toFixed(2)} (${groove.device.writes - writes_start} ` +
            'blocks written); compaction entries per beat: mean ' +
            `${Math.round(groove.beat_entries_total / groove.beat_count)}, max ` +
            `${groove.beat_entries_max} (so far)`);
    }
    // Whether a bar's ends spike: the mean batch by its beat within the bar (the checkpoint runs
    // after the last beat, the mutable tables become immutable at the first).
    const by_beat = new Float64Array(bar_beat_count), counts = new Float64Array(bar_beat_count);
    for (let b = 0; b < batches; b++) {
        // The load's batches ran beats too: the beat of batch b is the forest's, not b's.
        const beat = (groove.forest.beat - batches + b) % bar_beat_count;
        by_beat[beat]! += samples[b]!;
        counts[beat]! += 1;
    }
    console.log(`growth accounts=${accounts}: mean batch ms by beat of the bar (0: the mutable ` +
        `tables become immutable; ${bar_beat_count - 1}: then the checkpoint): ` +
        Array.from(by_beat, (sum, beat) => (sum / counts[beat]!).toFixed(1)).join(', '));
}

function main(): void {
    const growth = Number(option('growth', '0'));
    if (growth > 0) {
        const accounts = Number(option('accounts', '100000').split(',')[0]);
        bench_growth(accounts, growth, Number(option('block-cache-mib', '64')) * 1024 * 1024);
        return;
    }
    const account_counts = option('accounts', '100000,1000000').split(',').map(Number);
    const batches = Number(option('batches', '30'));
    const warmup = Number(option('warmup', '5'));
    assert(Number.isInteger(warmup) && warmup >= 1 && batches > warmup);
    const modes = option('modes', 'hit,cold').split(',');
    const block_cache_mib = Number(option('block-cache-mib', '64'));
    for (const accounts of account_counts) {
        assert(Number.isInteger(accounts) && accounts >= 2);
        const inputs = new Uint8Array(batches * batch * 128);
        const prng = new Prng(accounts);
        for (let b = 0; b < batches; b++) {
            fill_transfers(inputs.subarray(b * batch * 128, (b + 1) * batch * 128),
                b * batch + 1, accounts, prng);
        }
        const { timing: memory, lookups } = bench_memory(accounts, inputs, batches, warmup);
        console.log(`accounts=${accounts} memory store (Ledger.execute): ` +
            `${Math.round(memory.per_second)}/s wall, ${Math.round(memory.per_cpu_second)}/s ` +
            `CPU; ${lookups_line('lookup_accounts (random ids)', lookups)}`);
        for (const mode of modes) {
            const cold = mode === 'cold';
            assert(cold || mode === 'hit', `bench: no mode ${mode}`);
            const { timing, groove, lookups: groove_lookups } = bench_groove(accounts, inputs,
                batches, warmup, cold, block_cache_mib * 1024 * 1024);
            const store = groove.accounts;
            const reads = groove.forest.trees.reduce((sum, tree) =>
                sum + tree.statistics.blocks_read, 0);
            console.log(`accounts=${accounts} groove ${cold ? 'cold' : 'hit '}: ` +
                `${Math.round(timing.per_second)}/s wall, ` +
                `${Math.round(timing.per_cpu_second)}/s CPU, ` +
                `${(timing.per_cpu_second / memory.per_cpu_second).toFixed(3)}x the memory ` +
                `store (CPU); account pins from the record cache ${store.cache_hits}, through ` +
                `the trees ${store.cache_misses}; blocks read ${reads}, block cache hits ` +
                `${groove.forest.cache.hits} misses ${groove.forest.cache.misses}; ms per batch ` +
                `(all batches): ${phase_names.map((name, index) => `${name} ` +
                    (groove.phase_ns[index]! / 1e6 / batches).toFixed(1)).join(', ')}; ` +
                lookups_line('lookup_accounts (random ids, after the transfers)',
                    groove_lookups));
        }
    }
}

main();
