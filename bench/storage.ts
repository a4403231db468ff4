// Storage benchmark (issue 5): what a superblock write costs and how often it happens, the WAL's
// append rate at 1 and 8 prepares in flight next to raw O_DIRECT writes of the same sizes on the
// same file at the same depth, what a checkpoint costs against what changed, and startup
// recovery reading the headers ring versus every prepare slot at several header-to-prepare size
// ratios. Everything goes through the io_uring
// engine to a real data file (O_DIRECT|O_DSYNC) under .test-data/, removed afterwards.
//
//   node dist/bench/storage.js           full run
//   node dist/bench/storage.js --quick   fewer operations, smaller ledger
//
// Prints markdown tables. Figures are noisy on a shared machine: run it alone when it matters.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Arena } from '../lib/io/arena';
import type { Engine } from '../lib/io/engine';
import { create_engine } from '../lib/io/index';
import type { LedgerConfig } from '../lib/ledger/ledger';
import { storage_config_for } from '../lib/ledger/checkpoint';
import { CheckpointSchedule, checkpoint_interval_ops } from '../lib/vsr/checkpoint_schedule';
import { close, format, open, storage_open } from '../lib/vsr/data_file';
import type { OpenedDataFile } from '../lib/vsr/data_file';
import { FileStorage, lock_acquire } from '../lib/storage/file_storage';
import { Journal, journal_writes_max } from '../lib/vsr/journal';
import type { JournalListener } from '../lib/vsr/journal';
import {
    header_checksum_set, offset_checksum, offset_op, offset_parent, u64_write,
} from '../lib/vsr/prepare_header';
import { PrepareBuilder } from '../lib/testing/simulator_fixture';
import type { Storage, StorageCompletionTarget, StorageRefusal } from '../lib/storage/storage';
import { storage_run_until } from '../lib/storage/storage';
import { VsrState } from '../lib/vsr/superblock';
import { Zone, ZoneLayout, header_size, sector_size } from '../lib/storage/zones';
import type { StorageConfig } from '../lib/storage/zones';
import {
    LedgerFiller, checkpoint_node_boot, checkpoint_run,
} from '../lib/testing/checkpoint_fixture';

const quick = process.argv.includes('--quick');
const root = path.resolve(__dirname, '..', '..');
const data_dir = path.join(root, '.test-data');
const pipeline_max = 8;
const rows: string[] = [];

function now_ms(): number {
    return Number(process.hrtime.bigint()) / 1e6;
}

function row(...cells: (string | number)[]): void {
    rows.push(`| ${cells.join(' | ')} |`);
}

function percentile(values: number[], p: number): number {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const mib = 1024 * 1024;

class Done implements StorageCompletionTarget {
    done = false;
    result = 0;
    storage_complete(_tag: number, result: number): void {
        this.done = true;
        this.result = result;
    }
}

/**
 * Formats and opens a bench data file. `operations_max` above open()'s 8 (its own FileStorage,
 * as the server builds one) leaves room for a pipeline of prepare and header-sector writes.
 */
async function data_file(engine: Engine, name: string, config: StorageConfig,
    operations_max: number = 8): Promise<{ opened: OpenedDataFile; file: string }> {
    const file = path.join(data_dir, name);
    fs.rmSync(file, { force: true });
    // The cluster PrepareBuilder stamps (7 in every byte).
    await format(file, { cluster: 0x0707070707070707_0707070707070707n, replica: 0,
        replica_count: 1 }, engine, config);
    if (operations_max === 8) return { opened: await open(file, engine, config), file };
    lock_acquire(file);
    const fd = engine.file_open(file, { direct: true, dsync: true, create: false });
    const storage = new FileStorage(engine, new ZoneLayout(config), fd, operations_max);
    return { opened: await storage_open(storage), file };
}

function base_config(message_size_max: number): StorageConfig {
    return { slot_count: 1024, message_size_max, clients_max: 64, block_size: 64 * 1024,
        grid_block_count: 16 };
}

/** (a) superblock update latency: view changes, each 4 writes + 4 read-backs of 8 KiB. */
async function bench_superblock(opened: OpenedDataFile): Promise<void> {
    const state = new VsrState();
    const samples: number[] = [];
    const count = quick ? 20 : 100;
    for (let index = 0; index < count; index++) {
        opened.superblock.vsr_state_read(state);
        state.view += 1;
        state.log_view = state.view;
        const start = now_ms();
        opened.superblock.update(state, false);
        await opened.waiter.wait(opened.storage);
        samples.push(now_ms() - start);
    }
    row('superblock update (view change), p50', `${percentile(samples, 0.5).toFixed(3)} ms`,
        `${count} updates, each 4 sequential 8 KiB O_DSYNC writes + 4 reads`);
    row('superblock update, p99', `${percentile(samples, 0.99).toFixed(3)} ms`, '');
}

/**
 * Drives a journal of its own (the opened one reports to the startup waiter, which keeps only the
 * last op) at up to `journal_writes_max` prepares in flight, from one message buffer per write.
 * Each size's prepare is built once (PrepareBuilder: random body, body checksum) and copied to
 * every buffer; an append only restamps op, parent and header checksum, so the timed loop holds
 * the WAL's work and not the message's construction (a replica checksums a body once, on receipt).
 */
class WalDriver implements JournalListener {
    readonly journal: Journal;
    readonly buffers: number[] = [];
    reported = 0;
    recovered = false;
    private readonly bytes: Uint8Array;
    private readonly buffers_free: Int32Array;
    private buffers_free_count = 0;
    /** The buffer each slot's write in flight is using, or -1. */
    private readonly slot_buffer: Int32Array;
    /** The header checksum of the last op appended: the next op's parent. */
    private readonly parent = new Uint8Array(16);

    constructor(opened: OpenedDataFile) {
        this.journal = new Journal(opened.storage, this, opened.superblock.cluster_bytes(),
            opened.superblock.replica_count);
        this.bytes = opened.storage.arena.bytes;
        this.buffers_free = new Int32Array(journal_writes_max);
        for (let index = 0; index < journal_writes_max; index++) {
            this.buffers.push(opened.storage.arena.allocate(this.journal.message_size_max));
            this.buffers_free[this.buffers_free_count++] = index;
        }
        this.slot_buffer = new Int32Array(this.journal.slot_count).fill(-1);
    }

    journal_done(error: StorageRefusal | null): void {
        assert.equal(error, null);
        this.recovered = true;
        // Chain the first append to the newest op recovery found (the root, on a fresh file).
        const slot = this.journal.op_max % this.journal.slot_count;
        this.parent.set(this.journal.headers.subarray(slot * header_size,
            slot * header_size + 16));
    }

    journal_prepare_written(op: number, result: number): void {
        assert.equal(result, 0, `WAL write of op ${op} failed`);
        const slot = op % this.journal.slot_count;
        const index = this.slot_buffer[slot]!;
        assert(index >= 0);
        this.slot_buffer[slot] = -1;
        this.buffers_free[this.buffers_free_count++] = index;
        this.reported += 1;
    }

    /** Copies the prepare at `offset` (op 0 is never written) into every message buffer. */
    message_set(offset: number, size: number): void {
        for (const buffer of this.buffers) this.bytes.copyWithin(buffer, offset, offset + size);
    }

    append(op: number): void {
        assert(this.buffers_free_count > 0);
        const index = this.buffers_free[--this.buffers_free_count]!;
        const at = this.buffers[index]!;
        u64_write(this.bytes, at + offset_op, op);
        this.bytes.set(this.parent, at + offset_parent);
        header_checksum_set(this.bytes, at);
        for (let byte = 0; byte < 16; byte++) {
            this.parent[byte] = this.bytes[at + offset_checksum + byte]!;
        }
        this.slot_buffer[op % this.journal.slot_count] = index;
        this.journal.write_prepare(at);
    }
}

/** Counts completions of operations that must each move `length` bytes. */
class Completions implements StorageCompletionTarget {
    completed = 0;
    length = 0;
    storage_complete(_tag: number, result: number): void {
        assert.equal(result, this.length);
        this.completed += 1;
    }
}

function size_label(size: number): string {
    return size >= mib ? `${size / mib} MiB` : `${size / 1024} KiB`;
}

function rate(count: number, size: number, ms: number): string {
    return `${(count / ms * 1000).toFixed(0)} /s, ${(count * size / mib / ms * 1000).toFixed(1)} ` +
        'MiB/s';
}

/**
 * (b) WAL appends (prepare, then its header sector once the prepare is durable) at 1 and at
 * `journal_writes_max` in flight, each against raw O_DIRECT writes of the same size to the same
 * slots, ascending, at the same depth. The slots were written once before (prepares_fill): the
 * zone is fallocated, and a first write to an unwritten extent also commits a metadata change,
 * which a wrapped ring never pays again.
 */
async function bench_wal(opened: OpenedDataFile, driver: WalDriver, builder: PrepareBuilder):
    Promise<void> {
    const storage = opened.storage;
    const journal = driver.journal;
    const raw = new Completions();
    const raw_target = storage.target_register(raw);
    let op = journal.op_max;
    for (const size of [4096, 64 * 1024, 1024 * 1024]) {
        const count = (quick ? 1 : 5) * (size === 4096 ? 200 : size === 64 * 1024 ? 100 : 20);
        assert(count <= journal.slot_count);
        builder.build(op + 1, 0, size - header_size);
        driver.message_set(builder.offset, size);
        for (const depth of [1, journal_writes_max]) {
            const op_first = op + 1;
            const reported_first = driver.reported;
            const wal_start = now_ms();
            await storage_run_until(storage, () => {
                while (op + 1 - op_first < count && journal.writes_in_flight < depth) {
                    op += 1;
                    driver.append(op);
                }
                return driver.reported - reported_first === count;
            });
            const wal_ms = now_ms() - wal_start;
            raw.completed = 0;
            raw.length = size;
            let submitted = 0;
            const raw_start = now_ms();
            await storage_run_until(storage, () => {
                while (submitted < count && submitted - raw.completed < depth) {
                    const slot = (op_first + submitted) % journal.slot_count;
                    storage.write(raw_target, 0, Zone.wal_prepares,
                        slot * journal.message_size_max, driver.buffers[submitted % depth]!,
                        size);
                    submitted += 1;
                }
                return raw.completed === count;
            });
            const raw_ms = now_ms() - raw_start;
            const label = size_label(size);
            row(`WAL append, ${label} prepares, depth ${depth}`,
                `${(count / wal_ms * 1000).toFixed(0)} prepares/s, ` +
                `${(count * size / mib / wal_ms * 1000).toFixed(1)} MiB/s`,
                `raw O_DIRECT ${label} writes, same slots, depth ${depth}: ` +
                `${rate(count, size, raw_ms)}; WAL/raw ${(raw_ms / wal_ms).toFixed(2)} ` +
                `(${count} each)`);
        }
    }
    // The raw writes clobbered the prepares the journal wrote: the bench file is discarded, and
    // the WAL is not reopened.
}

/**
 * Steady load: prepare, commit a batch, checkpoint at each trigger; counts superblock writes.
 * `trickle`: the checkpointer pre-writes sealed chunks after each op (trickle_op, as the replica
 * does), so the pause at the checkpoint covers only what is still dirty.
 */
async function bench_steady(engine: Engine, ledger_config: LedgerConfig, trickle: boolean,
    batch: number): Promise<void> {
    const config = storage_config_for(base_config(64 * 1024), ledger_config, 0);
    const { opened, file } = await data_file(engine, 'bench_storage_steady', config);
    const node = await checkpoint_node_boot(opened.storage, ledger_config, 0,
        null, undefined, opened.superblock);
    const schedule = new CheckpointSchedule(config.slot_count, pipeline_max);
    const builder = new PrepareBuilder(opened.storage.arena, config.message_size_max,
        opened.journal.headers.subarray(0, 16));
    const filler = new LedgerFiller(5);
    filler.create_accounts(node.ledger, 10_000);
    const ops = quick ? schedule.interval_ops * 2 + 10 : schedule.interval_ops * 3 + 10;
    const sequence_first = opened.superblock.sequence;
    const checkpoint_ms: number[] = [];
    const checkpoint_bytes: number[] = [];
    const start = now_ms();
    for (let op = 1; op <= ops; op++) {
        assert(op <= schedule.op_prepare_max(node.checkpointer.op_checkpoint), 'would stall');
        builder.build(op, 0, 8192 - header_size);
        opened.journal.write_prepare(builder.offset);
        await storage_run_until(opened.storage, () => opened.waiter.done);
        opened.waiter.done = false;
        filler.create_transfers(node.ledger, batch);
        if (trickle) node.checkpointer.trickle_op(op);
        if (schedule.op_is_trigger(op, node.checkpointer.op_checkpoint)) {
            const checkpoint_start = now_ms();
            await checkpoint_run(node, op);
            checkpoint_ms.push(now_ms() - checkpoint_start);
            checkpoint_bytes.push(node.checkpointer.last_bytes_written);
        }
    }
    const elapsed_ms = now_ms() - start;
    const superblock_writes = opened.superblock.sequence - sequence_first;
    if (!trickle) {
        row('superblock writes per 1,000 committed requests', (superblock_writes * 1000 / ops)
            .toFixed(2), `measured: ${superblock_writes} writes in ${ops} ops; checkpoint-only, ` +
            `1000 / interval ${schedule.interval_ops} = ` +
            `${(1000 / schedule.interval_ops).toFixed(2)}`);
    }
    row(`steady-load checkpoint pause, ${batch} transfers per op, ` +
        `${trickle ? 'trickle_op per op' : 'no trickle'}`, `${mean(checkpoint_ms).toFixed(1)} ms`,
        `${(mean(checkpoint_bytes) / mib).toFixed(1)} MiB written in the pause ` +
        `(~${schedule.interval_ops * batch} new transfers + touched accounts); ` +
        `${(ops / elapsed_ms * 1000).toFixed(0)} ops/s over ${ops} ops, ` +
        `${node.checkpointer.trickle_chunks_written} chunks pre-written`);
    // Pre-writes of the ops after the last checkpoint may still be in flight.
    await storage_run_until(opened.storage, () => node.checkpointer.in_flight_count === 0);
    await close(opened, file);
    fs.rmSync(file, { force: true });
}

function mean(values: number[]): number {
    return values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length);
}

/** (c) Checkpoint duration and bytes written against the state that changed. */
async function bench_checkpoint(engine: Engine): Promise<void> {
    const ledger_config: LedgerConfig = {
        accounts_max: quick ? 20_000 : 100_000, transfers_max: quick ? 100_000 : 1_000_000,
        orphans_max: 16_384, history_max: 16_384,
    };
    const config = storage_config_for(base_config(64 * 1024), ledger_config, 0);
    const { opened, file } = await data_file(engine, 'bench_storage_checkpoint', config);
    const node = await checkpoint_node_boot(opened.storage, ledger_config, 0, null, undefined,
        opened.superblock);
    const filler = new LedgerFiller(6);
    filler.create_accounts(node.ledger, ledger_config.accounts_max);
    filler.create_transfers(node.ledger, Math.floor(ledger_config.transfers_max * 0.8));
    let op = 0;
    const step = async (label: string, changed: string): Promise<void> => {
        op += 1008;
        const start = now_ms();
        await checkpoint_run(node, op);
        const ms = now_ms() - start;
        const bytes = node.checkpointer.last_bytes_written;
        row(`checkpoint: ${label}`, `${ms.toFixed(1)} ms`, `${changed}; wrote ` +
            `${node.checkpointer.last_blocks_written} blocks, ${(bytes / mib).toFixed(2)} MiB ` +
            `(${(bytes / mib / ms * 1000).toFixed(0)} MiB/s)`);
    };
    const state_mib = (node.ledger.accounts_count * 128 + node.ledger.transfers_count * 133) /
        mib;
    await step('first (whole state)', `${node.ledger.accounts_count} accounts, ` +
        `${node.ledger.transfers_count} transfers = ${state_mib.toFixed(1)} MiB of records`);
    await step('nothing changed', '0 records');
    for (const transfers of quick ? [100, 10_000] : [100, 10_000, 100_000]) {
        filler.create_transfers(node.ledger, transfers);
        const touched = Math.min(ledger_config.accounts_max, 2 * transfers);
        await step(`${transfers} new transfers`, `${transfers} transfers + up to ${touched} ` +
            `accounts = ${((transfers * 133 + touched * 128) / mib).toFixed(2)} MiB changed`);
    }
    const restore_start = now_ms();
    await checkpoint_node_boot(opened.storage, ledger_config, 0, null, undefined,
        opened.superblock);
    row('checkpoint restore (read + verify + rebuild indexes)',
        `${(now_ms() - restore_start).toFixed(0)} ms`, `${state_mib.toFixed(1)} MiB of records`);
    await close(opened, file);
    fs.rmSync(file, { force: true });
}

/** (d) Startup WAL recovery: the headers ring alone versus every prepare slot as well. */
async function bench_recovery(engine: Engine): Promise<void> {
    for (const message_size_max of [4096, 64 * 1024, 1024 * 1024]) {
        const config = base_config(message_size_max);
        const { opened, file } = await data_file(engine, 'bench_storage_recovery', config);
        const storage: Storage = opened.storage;
        const reader = new Done();
        const target = storage.target_register(reader);
        const buffer = scratch_buffer(storage, config);
        await prepares_fill(storage, config, buffer);
        const headers_start = now_ms();
        // As recovery reads it: sector by sector.
        for (let sector = 0; sector < config.slot_count * header_size / sector_size; sector++) {
            reader.done = false;
            storage.read(target, 0, Zone.wal_headers, sector * sector_size,
                buffer + sector * sector_size, sector_size);
            await storage_run_until(storage, () => reader.done);
            assert.equal(reader.result, sector_size);
        }
        const headers_ms = now_ms() - headers_start;
        const full_start = now_ms();
        opened.journal.recover();
        await opened.waiter.wait(storage);
        const full_ms = now_ms() - full_start;
        const ratio = message_size_max / header_size;
        const label = message_size_max >= mib ? `${message_size_max / mib} MiB`
            : `${message_size_max / 1024} KiB`;
        row(`recovery, 1024 slots of ${label} (header:prepare 1:${ratio})`,
            `headers ring ${headers_ms.toFixed(1)} ms`,
            `every prepare slot too (journal.recover): ${full_ms.toFixed(1)} ms = ` +
            `${(full_ms / headers_ms).toFixed(0)}x; reads ${(config.slot_count *
                message_size_max / mib).toFixed(0)} MiB vs 0.25 MiB`);
        await close(opened, file);
        fs.rmSync(file, { force: true });
    }
}

let scratch_buffer_offset = -1;
function scratch_buffer(storage: Storage, config: StorageConfig): number {
    if (scratch_buffer_offset < 0) scratch_buffer_offset = storage.arena.allocate(mib);
    assert(config.message_size_max <= mib);
    return scratch_buffer_offset;
}

/**
 * Writes every prepare slot past its first sector (which format wrote; it keeps the slot's
 * reserved header valid), `journal_writes_max` at a time, so that later reads and writes meet
 * real extents rather than unwritten ones, which the filesystem answers with zeros without
 * touching the disk, and whose first write also commits a metadata change.
 */
async function prepares_fill(storage: Storage, config: StorageConfig, buffer: number):
    Promise<void> {
    const length = config.message_size_max - sector_size;
    if (length === 0) return;
    storage.arena.bytes.fill(0x5c, buffer, buffer + length);
    const writes = new Completions();
    writes.length = length;
    const target = storage.target_register(writes);
    let slot = 0;
    await storage_run_until(storage, () => {
        while (slot < config.slot_count && slot - writes.completed < journal_writes_max) {
            storage.write(target, 0, Zone.wal_prepares,
                slot * config.message_size_max + sector_size, buffer, length);
            slot += 1;
        }
        return writes.completed === config.slot_count;
    });
}

async function main(): Promise<void> {
    fs.mkdirSync(data_dir, { recursive: true });
    const arena = new Arena(64 * mib);
    const engine = create_engine('io_uring', { arena, entries: 64 });
    rows.push('| measurement | result | detail |', '|---|---|---|');
    const config = base_config(1024 * 1024);
    const { opened, file } = await data_file(engine, 'bench_storage_wal', config,
        2 * journal_writes_max);
    await bench_superblock(opened);
    // Recover the driver's journal before the fill: recovery reads every slot, quick while the
    // slots are still unwritten extents.
    const driver = new WalDriver(opened);
    driver.journal.recover();
    await storage_run_until(opened.storage, () => driver.recovered);
    await prepares_fill(opened.storage, config, scratch_buffer(opened.storage, config));
    const builder = new PrepareBuilder(arena, config.message_size_max,
        opened.journal.headers.subarray(0, 16));
    await bench_wal(opened, driver, builder);
    await close(opened, file);
    fs.rmSync(file, { force: true });
    row('checkpoint interval', `${checkpoint_interval_ops(1024, pipeline_max)} ops`,
        `slot_count 1024 - 2 * pipeline ${pipeline_max}`);
    const steady: LedgerConfig = { accounts_max: 10_000, transfers_max: 1_000_000,
        orphans_max: 16_384, history_max: 16_384 };
    for (const trickle of [false, true]) {
        await bench_steady(engine, steady, trickle, quick ? 50 : 200);
    }
    await bench_checkpoint(engine);
    await bench_recovery(engine);
    engine.destroy();
    console.log(rows.join('\n'));
}

main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
});
