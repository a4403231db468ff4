// Storage benchmark (issue 5): what a superblock write costs and how often it happens, the WAL's
// append rate next to raw O_DIRECT writes of the same sizes on the same file, what a checkpoint
// costs against what changed, and startup recovery reading the headers ring versus every
// prepare slot at several header-to-prepare size ratios. Everything goes through the io_uring
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
import {
    CheckpointSchedule, checkpoint_interval_ops, storage_config_for,
} from '../lib/storage/checkpoint';
import { close, format, open } from '../lib/storage/data_file';
import type { OpenedDataFile } from '../lib/storage/data_file';
import { PrepareBuilder } from '../lib/storage/simulator_fixture';
import type { Storage, StorageCompletionTarget } from '../lib/storage/storage';
import { storage_run_until } from '../lib/storage/storage';
import { VsrState } from '../lib/storage/superblock';
import { Zone, header_size, sector_size } from '../lib/storage/zones';
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

async function data_file(engine: Engine, name: string, config: StorageConfig):
    Promise<{ opened: OpenedDataFile; file: string }> {
    const file = path.join(data_dir, name);
    fs.rmSync(file, { force: true });
    // The cluster PrepareBuilder stamps (7 in every byte).
    await format(file, { cluster: 0x0707070707070707_0707070707070707n, replica: 0,
        replica_count: 1 }, engine, config);
    return { opened: await open(file, engine, config), file };
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

/** (b) WAL appends (prepare + header sector, one at a time) against raw writes of the size. */
async function bench_wal(opened: OpenedDataFile, builder: PrepareBuilder, op_first: number):
    Promise<number> {
    const { storage, journal, waiter } = opened;
    let op = op_first;
    const raw = new Done();
    const raw_target = storage.target_register(raw);
    for (const size of [4096, 64 * 1024, 1024 * 1024]) {
        const count = (quick ? 1 : 5) * (size === 4096 ? 200 : size === 64 * 1024 ? 100 : 20);
        let wal_ms = 0;
        for (let index = 0; index < count; index++) {
            op += 1;
            builder.build(op, 0, size - header_size);
            const start = now_ms();
            journal.write_prepare(builder.offset);
            await storage_run_until(storage, () => waiter.done);
            wal_ms += now_ms() - start;
            assert.equal(waiter.written_result, 0);
            waiter.done = false;
        }
        const raw_start = now_ms();
        for (let index = 0; index < count; index++) {
            raw.done = false;
            const slot = (op + 1 + index) % journal.slot_count;
            storage.write(raw_target, 0, Zone.wal_prepares, slot * journal.message_size_max,
                builder.offset, size);
            await storage_run_until(storage, () => raw.done);
            assert.equal(raw.result, size);
        }
        const raw_ms = now_ms() - raw_start;
        const label = size >= mib ? `${size / mib} MiB` : `${size / 1024} KiB`;
        row(`WAL append, ${label} prepares`, `${(count / wal_ms * 1000).toFixed(0)} prepares/s, ` +
            `${(count * size / mib / wal_ms * 1000).toFixed(1)} MiB/s`,
            `raw O_DIRECT ${label} writes, same file, depth 1: ` +
            `${(count / raw_ms * 1000).toFixed(0)} /s, ` +
            `${(count * size / mib / raw_ms * 1000).toFixed(1)} MiB/s (${count} each)`);
    }
    // The raw writes clobbered slots ahead of the head; rewrite nothing: the bench file is
    // discarded, and the WAL is not reopened.
    return op;
}

/** Steady load: prepare, commit a batch, checkpoint at each trigger; counts superblock writes. */
async function bench_steady(engine: Engine, ledger_config: LedgerConfig): Promise<void> {
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
    const batch = quick ? 50 : 200;
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
        if (schedule.op_is_trigger(op, node.checkpointer.op_checkpoint)) {
            const checkpoint_start = now_ms();
            await checkpoint_run(node, op);
            checkpoint_ms.push(now_ms() - checkpoint_start);
            checkpoint_bytes.push(node.checkpointer.last_bytes_written);
        }
    }
    const elapsed_ms = now_ms() - start;
    const superblock_writes = opened.superblock.sequence - sequence_first;
    row('superblock writes per 1,000 committed requests', (superblock_writes * 1000 / ops)
        .toFixed(2), `measured: ${superblock_writes} writes in ${ops} ops (${batch} transfers ` +
        `each, ${(ops / elapsed_ms * 1000).toFixed(0)} ops/s); checkpoint-only, ` +
        `1000 / interval ${schedule.interval_ops} = ${(1000 / schedule.interval_ops).toFixed(2)}`);
    row('steady-load checkpoint (every interval)', `${mean(checkpoint_ms).toFixed(1)} ms`,
        `${(mean(checkpoint_bytes) / mib).toFixed(1)} MiB written per checkpoint ` +
        `(~${schedule.interval_ops * batch} new transfers + touched accounts)`);
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
        const buffer = recovery_buffer(storage, config);
        await prepares_fill(storage, config, target, reader, buffer);
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

let recovery_buffer_offset = -1;
function recovery_buffer(storage: Storage, config: StorageConfig): number {
    if (recovery_buffer_offset < 0) recovery_buffer_offset = storage.arena.allocate(mib);
    assert(config.message_size_max <= mib);
    return recovery_buffer_offset;
}

/**
 * Writes every prepare slot past its first sector (which format wrote; it keeps the slot's
 * reserved header valid), so that recovery reads real extents rather than unwritten ones, which
 * the filesystem answers with zeros without touching the disk.
 */
async function prepares_fill(storage: Storage, config: StorageConfig, target: number,
    done: Done, buffer: number): Promise<void> {
    const length = config.message_size_max - sector_size;
    if (length === 0) return;
    storage.arena.bytes.fill(0x5c, buffer, buffer + length);
    for (let slot = 0; slot < config.slot_count; slot++) {
        done.done = false;
        storage.write(target, 0, Zone.wal_prepares, slot * config.message_size_max + sector_size,
            buffer, length);
        await storage_run_until(storage, () => done.done);
        assert.equal(done.result, length);
    }
}

async function main(): Promise<void> {
    fs.mkdirSync(data_dir, { recursive: true });
    const arena = new Arena(64 * mib);
    const engine = create_engine('io_uring', { arena, entries: 64 });
    rows.push('| measurement | result | detail |', '|---|---|---|');
    const config = base_config(1024 * 1024);
    const { opened, file } = await data_file(engine, 'bench_storage_wal', config);
    await bench_superblock(opened);
    const builder = new PrepareBuilder(arena, config.message_size_max,
        opened.journal.headers.subarray(0, 16));
    await bench_wal(opened, builder, 0);
    await close(opened, file);
    fs.rmSync(file, { force: true });
    row('checkpoint interval', `${checkpoint_interval_ops(1024, pipeline_max)} ops`,
        `slot_count 1024 - 2 * pipeline ${pipeline_max}`);
    await bench_steady(engine, { accounts_max: 10_000, transfers_max: 1_000_000,
        orphans_max: 16_384, history_max: 16_384 });
    await bench_checkpoint(engine);
    await bench_recovery(engine);
    engine.destroy();
    console.log(rows.join('\n'));
}

main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
});
