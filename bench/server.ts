// The whole server, io_uring against libuv, in one run: `ringledger benchmark`'s workload against a
// replica started on each engine in turn, with the replica's syscalls counted while the workload
// runs (perf attached to the replica's pid from the first account batch to the last transfer
// batch, so format and startup do not count; the replica's idle 10 ms ticks during the run do).
//
//   node dist/bench/server.js                      1,000,000 transfers per engine
//   node dist/bench/server.js --transfer-count=200000
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { benchmark_run, replica_spawn } from '../lib/cli/benchmark';
import type { BenchmarkResult } from '../lib/cli/benchmark';
import { createClient } from '../lib/client/index';
import { batch_events_max } from '../lib/ledger/constants';
import { perf_available, syscall_count_parse } from './syscall_counter';

interface EngineRow {
    engine: string;
    result: BenchmarkResult;
    syscalls: number;
}

/** Starts perf counting `pid`'s syscalls; the returned function stops it and gives the count. */
function perf_attach(pid: number): () => Promise<number> {
    const count_file = path.join(os.tmpdir(), `ringledger-server-syscalls-${pid}.txt`);
    const perf = child_process.spawn('perf', ['stat', '-e', 'raw_syscalls:sys_enter', '-x,',
        '-o', count_file, '-p', String(pid)], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => perf.on('close', () => resolve()));
    return async () => {
        perf.kill('SIGINT');
        await exited;
        const count = syscall_count_parse(fs.readFileSync(count_file, 'utf8'));
        fs.rmSync(count_file, { force: true });
        return count;
    };
}

async function engine_run(engine: string, transfer_count: number): Promise<EngineRow> {
    const replica = await replica_spawn({ io: engine, accounts_max: 100_000,
        transfers_max: Math.max(1_000_000, transfer_count) });
    const client = createClient({ cluster_id: 0n, replica_addresses: [replica.address] });
    try {
        const perf_stop = perf_attach(replica.pid);
        // perf needs a moment to attach; without it the first batches go uncounted.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const result = await benchmark_run(client, {
            account_count: 10_000, transfer_count, transfer_batch_size: batch_events_max,
            query_count: 0, seed: 42,
        }, () => undefined);
        const syscalls = await perf_stop();
        return { engine, result, syscalls };
    } finally {
        client.destroy();
        await replica.stop();
    }
}

function flag_number(name: string, fallback: number): number {
    const flag = process.argv.find((argument) => argument.startsWith(`--${name}=`));
    if (flag === undefined) return fallback;
    const value = Number(flag.slice(name.length + 3));
    assert.ok(Number.isInteger(value) && value > 0, `--${name} must be a positive integer`);
    return value;
}

async function main(): Promise<void> {
    assert.ok(perf_available, 'bench/server needs perf (Debian: linux-perf) to count syscalls');
    const transfer_count = flag_number('transfer-count', 1_000_000);
    const rows: EngineRow[] = [];
    for (const engine of ['io_uring', 'libuv']) rows.push(await engine_run(engine, transfer_count));
    const account_batches = Math.ceil(10_000 / batch_events_max);
    console.log(`${transfer_count} transfers in batches of ${batch_events_max}, 10,000 accounts, ` +
        'one batch in flight; replica syscalls counted by perf raw_syscalls:sys_enter\n');
    console.log('| engine | tx/s | batch p50 | batch p99 | batch p100 | replica syscalls/batch |');
    console.log('|---|---|---|---|---|---|');
    for (const row of rows) {
        const batches = row.result.batch_count + account_batches;
        const latency = row.result.batch_latency;
        console.log(`| ${row.engine} | ${row.result.transfers_per_second} | ` +
            `${latency.percentile_ms(50)} ms | ${latency.percentile_ms(99)} ms | ` +
            `${latency.percentile_ms(100)} ms | ${(row.syscalls / batches).toFixed(1)} |`);
    }
    const uring = rows[0]!, libuv = rows[1]!;
    console.log(`\nio_uring against libuv: ` +
        `${(uring.result.transfers_per_second / libuv.result.transfers_per_second).toFixed(2)}× ` +
        `the throughput, ${(libuv.syscalls / uring.syscalls).toFixed(1)}× fewer syscalls`);
}

main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
});
