// `ringledger benchmark`: the workload of `tigerbeetle benchmark` through our client. It creates
// the accounts in full batches, then the transfers in batches of 8189 (random debit and credit
// accounts, random amounts, codes and user data), one batch in flight at a time, then runs
// get_account_transfers queries; it prints the same lines: batches and seconds, load accepted
// (tx/s), batch latency percentiles, query latency percentiles, plus both processes' RSS.
//
// By default it formats a temporary data file and starts its own replica as a child process
// (`ringledger format` + `ringledger start`); `--addresses` points it at a running cluster.
// `replica_spawn` is shared with `ringledger demo` and the tests.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

import { createClient } from '../client/index';
import type { Account, AccountFilter, Client, Transfer } from '../client/index';
import { AccountFilterFlags, CreateAccountStatus, CreateTransferStatus } from '../client/index';
import { Prng } from '../prng';
import { args_parse, flag_integer } from './args';
import type { CliCommand } from './command';
import { UsageError } from './command';
import { error_text } from './format_text';

const main_path = path.join(__dirname, 'main.js');
import { batch_events_max } from '../ledger/constants';

export interface ReplicaChild {
    readonly address: string;
    readonly pid: number;
    readonly directory: string;
    /** The replica's resident set size and its peak, from /proc (0 when unavailable). */
    rss_bytes(): { current: number, peak: number };
    /** SIGTERM, wait for the exit, remove the data directory. Idempotent. */
    stop(): Promise<void>;
}

export interface ReplicaSpawnOptions {
    io?: string;
    accounts_max?: number;
    transfers_max?: number;
    /** Where the temporary data directory goes (default: the OS temp directory). */
    parent_directory?: string;
    /** Every line the replica prints, for logs. */
    on_line?: (line: string) => void;
    startup_timeout_ms?: number;
}

/** Formats a fresh data file in a temporary directory and starts a one-replica cluster on it. */
export async function replica_spawn(options: ReplicaSpawnOptions = {}): Promise<ReplicaChild> {
    const parent = options.parent_directory ?? os.tmpdir();
    fs.mkdirSync(parent, { recursive: true });
    const directory = fs.mkdtempSync(path.join(parent, 'ringledger-'));
    const data_path = path.join(directory, '0_0.ringledger');
    const io = options.io === undefined ? [] : [`--io=${options.io}`];
    // The capacity flags size the data file at format; start reads them from it.
    const limits = [];
    if (options.accounts_max !== undefined) limits.push(`--accounts-max=${options.accounts_max}`);
    if (options.transfers_max !== undefined) {
        limits.push(`--transfers-max=${options.transfers_max}`);
    }
    try {
        await run_to_end(['format', '--cluster=0', '--replica=0', '--replica-count=1', ...io,
            ...limits, data_path]);
        return await start_child(['start', '--addresses=127.0.0.1:0', ...io, data_path],
            directory, options);
    } catch (error) {
        fs.rmSync(directory, { recursive: true, force: true });
        throw error;
    }
}

function run_to_end(args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
        const child = child_process.spawn(process.execPath, [main_path, ...args],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
        child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
        child.on('error', reject);
        child.on('close', (code) => {
            if (code === 0) resolve();
            else reject(new Error(`ringledger ${args[0]} exited with ${code}:\n${output}`));
        });
    });
}

function start_child(
    args: string[], directory: string, options: ReplicaSpawnOptions,
): Promise<ReplicaChild> {
    const child = child_process.spawn(process.execPath, [main_path, ...args],
        { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    let exited = false;
    const exit = new Promise<void>((resolve) => child.on('close', () => {
        exited = true;
        resolve();
    }));
    const stop = async (): Promise<void> => {
        if (!exited) {
            child.kill('SIGTERM');
            const kill_timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            await exit;
            clearTimeout(kill_timer);
        }
        // Asynchronous: unlinking a data file of a gigabyte takes seconds on some disks.
        await fs.promises.rm(directory, { recursive: true, force: true });
    };
    return new Promise((resolve, reject) => {
        const timeout = setTimeout(() => {
            void stop().then(() => reject(new Error(
                `the replica did not start listening in time:\n${lines.join('\n')}`)));
        }, options.startup_timeout_ms ?? 120_000);
        const on_line = (line: string): void => {
            lines.push(line);
            options.on_line?.(line);
            const listening = /listening on (\S+)$/.exec(line);
            if (listening === null) return;
            clearTimeout(timeout);
            resolve({
                address: listening[1]!, pid: child.pid!, directory,
                rss_bytes: () => process_rss_bytes(child.pid!), stop,
            });
        };
        line_reader(child.stdout, on_line);
        line_reader(child.stderr, on_line);
        child.on('close', (code) => {
            clearTimeout(timeout);
            void fs.promises.rm(directory, { recursive: true, force: true });
            reject(new Error(`the replica exited (${code}) before listening:\n` +
                lines.join('\n')));
        });
    });
}

function line_reader(stream: NodeJS.ReadableStream, on_line: (line: string) => void): void {
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
        pending += chunk.toString();
        let newline = pending.indexOf('\n');
        while (newline !== -1) {
            on_line(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
            newline = pending.indexOf('\n');
        }
    });
}

/** VmRSS and VmHWM of a process, in bytes (Linux /proc; 0 elsewhere). */
export function process_rss_bytes(pid: number): { current: number, peak: number } {
    try {
        const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
        const field = (name: string): number => {
            const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
            return match === null ? 0 : Number(match[1]) * 1024;
        };
        return { current: field('VmRSS'), peak: field('VmHWM') };
    } catch {
        return { current: 0, peak: 0 };
    }
}

/** Latencies in whole milliseconds, one bucket per ms (as TigerBeetle's histogram). */
export class LatencyHistogram {
    private readonly buckets: Uint32Array;
    count = 0;

    constructor(readonly bucket_count = 10_001) {
        this.buckets = new Uint32Array(bucket_count);
    }

    record(duration_ms: number): void {
        const bucket = Math.min(Math.floor(duration_ms), this.bucket_count - 1);
        this.buckets[bucket]! += 1;
        this.count += 1;
    }

    /** The smallest bucket at which `percent`% of the samples are accounted for. */
    percentile_ms(percent: number): number {
        assert.ok(percent >= 0 && percent <= 100);
        const target = Math.floor((this.count * percent) / 100);
        let sum = 0;
        for (let bucket = 0; bucket < this.bucket_count; bucket++) {
            sum += this.buckets[bucket]!;
            if (sum >= target) return bucket;
        }
        return this.bucket_count;
    }

    lines(label: string, percents: readonly number[]): string[] {
        return percents.map((percent) => {
            const value = this.percentile_ms(percent);
            const more = value >= this.bucket_count - 1 ? '+ (exceeds histogram resolution)' : '';
            return `${label} latency p${percent} = ${value} ms${more}`;
        });
    }
}

export const percentiles_all: readonly number[] = [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95,
    99, 100];

export interface BenchmarkOptions {
    account_count: number;
    transfer_count: number;
    transfer_batch_size: number;
    query_count: number;
    seed: number;
}

export interface BenchmarkResult {
    batch_count: number;
    transfer_seconds: number;
    transfers_per_second: number;
    batch_latency: LatencyHistogram;
    query_count: number;
    query_seconds: number;
    query_latency: LatencyHistogram;
}

/** Progress of the transfer phase, reported about once per second (benchmark_run). */
export interface BenchmarkProgress {
    seconds: number;
    transfers_created: number;
    transfer_count: number;
}

/** How often the transfer phase reports progress: often enough to show it is alive. */
const progress_interval_ms = 1000;

/**
 * The workload itself, against a registered client; prints the results through `print`, and
 * reports progress through `progress` (off the measured path: between batches, once a second
 * unless tests ask for `interval_ms` 0, every batch).
 */
export async function benchmark_run(
    client: Client, options: BenchmarkOptions, print: (line: string) => void,
    progress: (now: BenchmarkProgress) => void = () => undefined,
    interval_ms = progress_interval_ms,
): Promise<BenchmarkResult> {
    assert(interval_ms >= 0);
    const prng = new Prng(options.seed);
    await create_accounts(client, options, prng);
    const batch_latency = new LatencyHistogram();
    // Two batches: the next is generated while the current one is in flight (the call copies
    // its batch when it is made), so that the load generator stays off the measured path, as
    // it does in TigerBeetle's benchmark, where generating a batch costs next to nothing.
    const batch_size = Math.min(options.transfer_batch_size, options.transfer_count);
    const batches = [transfers_reusable(batch_size), transfers_reusable(batch_size)];
    const started_ms = performance.now();
    let created = 0;
    let batch_count = 0;
    let filled = batch_fill(batches[0]!, 0, options, prng);
    let progress_ms = started_ms;
    while (created < options.transfer_count) {
        const batch = batches[batch_count % 2]!;
        const sent_ms = performance.now();
        const pending = client.createTransfers(batch);
        const next = created + filled;
        const next_filled = next < options.transfer_count ?
            batch_fill(batches[(batch_count + 1) % 2]!, next, options, prng) : 0;
        const results = await pending;
        batch_latency.record(performance.now() - sent_ms);
        results_check(results, 'create_transfers', CreateTransferStatus.created);
        created += filled;
        filled = next_filled;
        batch_count += 1;
        const now_ms = performance.now();
        if (now_ms - progress_ms >= interval_ms) {
            progress_ms = now_ms;
            progress({ seconds: (now_ms - started_ms) / 1000, transfers_created: created,
                transfer_count: options.transfer_count });
        }
    }
    const transfer_seconds = (performance.now() - started_ms) / 1000;
    const transfers_per_second = Math.floor(options.transfer_count / transfer_seconds);
    print(`${batch_count} batches in ${transfer_seconds.toFixed(2)} s`);
    print(`transfer batch size = ${options.transfer_batch_size} txs`);
    print('transfer batch delay = 0 us');
    print(`load accepted = ${transfers_per_second} tx/s`);
    for (const line of batch_latency.lines('batch', percentiles_all)) print(line);
    const { query_seconds, query_latency } = await queries_run(client, options, prng, print);
    return { batch_count, transfer_seconds, transfers_per_second, batch_latency,
        query_count: options.query_count, query_seconds, query_latency };
}

/** The query phase: get_account_transfers of random accounts, one at a time, timed. */
async function queries_run(client: Client, options: BenchmarkOptions, prng: Prng,
    print: (line: string) => void): Promise<{ query_seconds: number;
    query_latency: LatencyHistogram; }> {
    const query_latency = new LatencyHistogram();
    const query_started_ms = performance.now();
    for (let query = 0; query < options.query_count; query++) {
        const filter: AccountFilter = {
            account_id: BigInt(prng.int(options.account_count) + 1), user_data_128: 0n,
            user_data_64: 0n, user_data_32: 0, code: 0, timestamp_min: 0n, timestamp_max: 0n,
            limit: batch_events_max,
            flags: AccountFilterFlags.debits | AccountFilterFlags.credits,
        };
        const sent_ms = performance.now();
        const transfers = await client.getAccountTransfers(filter);
        query_latency.record(performance.now() - sent_ms);
        for (const transfer of transfers) {
            assert.ok((transfer.debit_account_id === filter.account_id) !==
                (transfer.credit_account_id === filter.account_id));
        }
    }
    const query_seconds = (performance.now() - query_started_ms) / 1000;
    if (options.query_count > 0) {
        print('');
        print(`${options.query_count} queries in ${query_seconds.toFixed(1)} s`);
        for (const line of query_latency.lines('query', percentiles_all)) print(line);
    }
    return { query_seconds, query_latency };
}

async function create_accounts(client: Client, options: BenchmarkOptions, prng: Prng) {
    for (let first = 0; first < options.account_count; first += batch_events_max) {
        const count = Math.min(batch_events_max, options.account_count - first);
        const accounts: Account[] = [];
        for (let index = 0; index < count; index++) {
            accounts.push({
                id: BigInt(first + index + 1), debits_pending: 0n, debits_posted: 0n,
                credits_pending: 0n, credits_posted: 0n, user_data_128: prng.u128(),
                user_data_64: BigInt(prng.u32()), user_data_32: prng.u32(), reserved: 0,
                ledger: 2, code: 1, flags: 0, timestamp: 0n,
            });
        }
        results_check(await client.createAccounts(accounts), 'create_accounts',
            CreateAccountStatus.created);
    }
}

/** One batch of transfer objects, refilled in place for every batch (the call copies them). */
function transfers_reusable(count: number): Transfer[] {
    const batch: Transfer[] = [];
    for (let index = 0; index < count; index++) {
        batch.push({
            id: 0n, debit_account_id: 0n, credit_account_id: 0n, amount: 0n, pending_id: 0n,
            user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 2,
            code: 1, flags: 0, timestamp: 0n,
        });
    }
    return batch;
}

/** Fills `batch` with the transfers from `first` on (fewer at the end); returns how many. */
function batch_fill(batch: Transfer[], first: number, options: BenchmarkOptions,
    prng: Prng): number {
    const count = Math.min(options.transfer_batch_size, options.transfer_count - first);
    assert.ok(count > 0 && count <= batch.length);
    if (batch.length > count) batch.length = count;
    transfers_fill(batch, first, options.account_count, prng);
    return count;
}

function transfers_fill(batch: Transfer[], first: number, account_count: number, prng: Prng) {
    for (let index = 0; index < batch.length; index++) {
        const transfer = batch[index]!;
        const debit = prng.int(account_count);
        let credit = prng.int(account_count);
        if (credit === debit) credit = (credit + 1) % account_count;
        transfer.id = BigInt(first + index + 1);
        transfer.debit_account_id = BigInt(debit + 1);
        transfer.credit_account_id = BigInt(credit + 1);
        // Exponentially distributed amounts around 10,000, at least 1.
        transfer.amount = BigInt(1 + Math.floor(-Math.log(1 - prng.u32() / 2 ** 32) * 10_000));
        transfer.user_data_128 = BigInt(prng.u32());
        transfer.user_data_64 = BigInt(prng.u32());
        transfer.user_data_32 = prng.u32();
        transfer.code = 1 + prng.int(0xFFFF);
    }
}

function results_check(results: { status: number }[], what: string, created: number): void {
    for (let index = 0; index < results.length; index++) {
        if (results[index]!.status !== created) {
            throw new Error(`${what}: event ${index} failed with status ` +
                `${results[index]!.status} (the benchmark only sends valid events)`);
        }
    }
}

export function bytes_mib(bytes: number): string {
    return `${(bytes / (1024 * 1024)).toFixed(0)} MiB`;
}

/** TigerBeetle's benchmark default: it crosses a checkpoint (op 1,008) at 8,189 per batch. */
const transfer_count_default = 10_000_000;

const usage = 'ringledger benchmark [--addresses=<port | host:port>[,...]] [--cluster=<id>] ' +
    '[--account-count=<n>] [--transfer-count=<n>] [--transfer-batch-size=<n>] ' +
    '[--query-count=<n>] [--seed=<n>] [--io=io_uring|libuv]';

export function progress_text(now: BenchmarkProgress): string {
    const percent = Math.floor(100 * now.transfers_created / now.transfer_count);
    const rate = Math.floor(now.transfers_created / now.seconds);
    return `  ${now.seconds.toFixed(0)} s: ${now.transfers_created} of ${now.transfer_count} ` +
        `transfers (${percent}%), ${rate} tx/s so far`;
}

/**
 * On a terminal the progress line is rewritten in place, and the next printed line starts below
 * it; elsewhere (a log, a pipe) each report is a line of its own.
 */
function printers(): { print: (line: string) => void; progress: (now: BenchmarkProgress) => void } {
    const tty = process.stdout.isTTY === true;
    let line_open = false;
    const print = (line: string): void => {
        process.stdout.write(`${line_open ? '\n' : ''}${line}\n`);
        line_open = false;
    };
    const progress = (now: BenchmarkProgress): void => {
        if (!tty) return print(progress_text(now));
        process.stdout.write(`\r${progress_text(now)}   `);
        line_open = true;
    };
    return { print, progress };
}

/** Starts the benchmark's own replica, or says why it did not start and returns null. */
async function replica_own(io: string | undefined, options: BenchmarkOptions):
    Promise<ReplicaChild | null> {
    try {
        return await replica_spawn({
            io,
            accounts_max: Math.max(100_000, options.account_count),
            transfers_max: Math.max(1_000_000, options.transfer_count),
        });
    } catch (error) {
        // The replica's own output (io_uring unavailable, say) is the message.
        process.stderr.write(`ringledger benchmark: ${error_text(error)}\n`);
        return null;
    }
}

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['addresses', 'cluster', 'account-count', 'transfer-count',
        'transfer-batch-size', 'query-count', 'seed', 'io']);
    if (parsed.positional.length > 0) throw new UsageError('no positional arguments expected');
    const options: BenchmarkOptions = {
        account_count: flag_integer(parsed, 'account-count', 10_000, 2, 100_000_000),
        transfer_count: flag_integer(parsed, 'transfer-count', transfer_count_default, 1, 2 ** 31),
        transfer_batch_size: flag_integer(parsed, 'transfer-batch-size', batch_events_max, 1,
            batch_events_max),
        query_count: flag_integer(parsed, 'query-count', 100, 0, 1_000_000),
        seed: flag_integer(parsed, 'seed', 42, 0, 2 ** 32 - 1),
    };
    const addresses = parsed.flags.get('addresses');
    const cluster_text = parsed.flags.get('cluster') ?? '0';
    let cluster: bigint;
    try {
        cluster = BigInt(cluster_text);
    } catch {
        throw new UsageError(`--cluster must be an integer, not "${cluster_text}"`);
    }
    if (addresses !== undefined && parsed.flags.has('io')) {
        throw new UsageError('--io applies to the replica the benchmark starts, not --addresses');
    }
    const { print, progress } = printers();
    let replica: ReplicaChild | null = null;
    if (addresses === undefined) {
        print('starting a replica on a temporary data file ...');
        replica = await replica_own(parsed.flags.get('io'), options);
        if (replica === null) return 1;
    }
    const address_list = addresses === undefined ? [replica!.address] : addresses.split(',');
    const client = createClient({ cluster_id: cluster, replica_addresses: address_list });
    // Ctrl-C ends the run (outstanding calls fail) so that `finally` still stops the replica
    // and removes the temporary data file.
    let interrupted = false;
    const interrupt = (): void => {
        interrupted = true;
        client.destroy();
    };
    process.once('SIGINT', interrupt);
    try {
        print(`benchmark running against ${address_list.join(',')}: ${options.account_count} ` +
            `accounts, ${options.transfer_count} transfers, seed ${options.seed}`);
        print(`creating ${options.account_count} accounts, then sending the transfers ` +
            '(progress once a second) ...');
        await benchmark_run(client, options, print, progress);
        print('');
        const client_rss = process_rss_bytes(process.pid);
        print(`client rss = ${bytes_mib(client_rss.current)} (peak ${bytes_mib(client_rss.peak)})`);
        if (replica !== null) {
            const server_rss = replica.rss_bytes();
            print(`replica rss = ${bytes_mib(server_rss.current)} ` +
                `(peak ${bytes_mib(server_rss.peak)})`);
        }
    } catch (error) {
        const message = interrupted ? 'interrupted' : (error as Error).message;
        process.stderr.write(`ringledger benchmark: ${message}\n`);
        return 1;
    } finally {
        process.off('SIGINT', interrupt);
        client.destroy();
        if (replica !== null) await replica.stop();
    }
    return 0;
}

export const command_benchmark: CliCommand = {
    summary: 'measure throughput and latency with the tigerbeetle benchmark workload',
    usage,
    run,
};
