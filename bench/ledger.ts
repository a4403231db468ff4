// Ledger throughput, the ledger alone on one core: create_transfers in 8189-event batches between
// random pairs of accounts, lookups, and queries; heap growth per batch after warm-up.
//
// Run: node --expose-gc dist/bench/ledger.js [--accounts=10000,1000000] [--batches=100]
//      [--only=create] [--prefetch=0] [--warmup=10] [--execute=0]
// Each account count gets a fresh ledger. Batch inputs are generated before the timed loop, so
// only `prefetch` + `execute` are timed. `--execute=0` does everything but execute the transfer
// batches: under an instruction counter (callgrind) the difference between a run with and one
// without execution is the ledger's own cost, independent of machine load. Compiling on the
// main thread keeps the count repeatable (under valgrind, when V8's background compiler gets
// to run varies from run to run, and with it how long the ledger runs unoptimised code):
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null node \
//     --no-concurrent-recompilation dist/bench/ledger.js --accounts=10000 --batches=14 \
//     --warmup=4 --only=create [--execute=0]
// and the same with --batches=34: the difference over 20 * 8189 transfers is per transfer.
import assert from 'node:assert/strict';

import { Ledger } from '../lib/ledger/ledger';
import { Operation } from '../lib/ledger/constants';
import { encode_account_filter, encode_query_filter } from '../lib/ledger/codec';
import { Prng } from '../lib/prng';
import { batch, fill_transfers, make_accounts } from './ledger_inputs';

function option(name: string, fallback: string): string {
    const prefix = `--${name}=`;
    const found = process.argv.find((argument) => argument.startsWith(prefix));
    return found === undefined ? fallback : found.slice(prefix.length);
}

interface CreateOptions { batches: number; warmup_batches: number; prefetch: boolean;
    execute: boolean }

function bench_create(ledger: Ledger, accounts: number, output: Uint8Array, clock: bigint,
    options: CreateOptions): bigint {
    const { batches, warmup_batches, prefetch } = options;
    // All inputs up front (100 batches are 100 MiB), so generation is not timed.
    const inputs = new Uint8Array(batches * batch * 128);
    const prng = new Prng(accounts);
    for (let b = 0; b < batches; b++) {
        fill_transfers(inputs.subarray(b * batch * 128, (b + 1) * batch * 128), b * batch + 1,
            accounts, prng);
    }
    // Wall time, and CPU time (user + system) which other processes on the machine disturb less.
    let elapsed_ns = 0n, cpu_us = 0, heap_after_warmup = 0;
    for (let b = 0; b < batches; b++) {
        clock += BigInt(batch);
        const offset = b * batch * 128;
        const cpu_start = process.cpuUsage();
        const start = process.hrtime.bigint();
        if (!options.execute) continue;
        if (prefetch) ledger.prefetch(Operation.create_transfers, inputs, offset, batch * 128);
        const length = ledger.execute(Operation.create_transfers, clock, inputs, offset,
            batch * 128, output, 0);
        if (b >= warmup_batches) {
            elapsed_ns += process.hrtime.bigint() - start;
            const cpu = process.cpuUsage(cpu_start);
            cpu_us += cpu.user + cpu.system;
        }
        assert.equal(length, batch * 16);
        if (b === warmup_batches - 1) {
            if (global.gc) global.gc();
            heap_after_warmup = process.memoryUsage().heapUsed;
        }
    }
    if (!options.execute) {
        console.log(`accounts=${accounts} create_transfers: not executed (--execute=0)`);
        return clock;
    }
    if (global.gc) global.gc();
    const measured = batches - warmup_batches;
    const heap_growth = (process.memoryUsage().heapUsed - heap_after_warmup) / measured;
    const per_second = (batch * measured) / (Number(elapsed_ns) / 1e9);
    const view = new DataView(output.buffer);
    assert.equal(view.getUint32(8, true), 0xffffffff, 'the last batch was created');
    const per_cpu_second = (batch * measured) / (cpu_us / 1e6);
    console.log(`accounts=${accounts} create_transfers: ${Math.round(per_second)}/s wall, ` +
        `${Math.round(per_cpu_second)}/s of CPU time ` +
        `(${measured} timed batches of ${batch} after ${warmup_batches} warm-up) ` +
        `heap_growth_per_batch=${Math.round(heap_growth)}B prefetch=${prefetch} ` +
        `gc=${global.gc ? 'exposed' : 'not exposed (run with --expose-gc)'}`);
    return clock;
}

function bench_lookups(ledger: Ledger, accounts: number, output: Uint8Array, clock: bigint) {
    const ids = new Uint8Array(batch * 16);
    const view = new DataView(ids.buffer);
    const transfers = ledger.transfers_count;
    const rounds = 40;
    for (const [operation, name, count] of [[Operation.lookup_accounts, 'lookup_accounts',
        accounts], [Operation.lookup_transfers, 'lookup_transfers', transfers]] as const) {
        for (let i = 0; i < batch; i++) view.setUint32(i * 16, ((i * 7919) % count) + 1, true);
        const start = process.hrtime.bigint();
        for (let r = 0; r < rounds; r++) {
            ledger.prefetch(operation, ids, 0, ids.length);
            const length = ledger.execute(operation, clock, ids, 0, ids.length, output, 0);
            assert.equal(length, batch * 128);
        }
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        console.log(`accounts=${accounts} ${name}: ${Math.round((rounds * batch) / seconds)}` +
            ' ids/s');
    }
}

function bench_queries(ledger: Ledger, accounts: number, output: Uint8Array, clock: bigint) {
    const filter = encode_account_filter({ account_id: 1n, limit: 100, flags: 3 });
    const filter_view = new DataView(filter.buffer);
    const query = encode_query_filter({ ledger: 1, code: 1, limit: 100, flags: 1 });
    const queries = 2000;
    const cases = [
        [Operation.get_account_transfers, 'get_account_transfers(limit 100)', filter],
        [Operation.query_transfers, 'query_transfers(ledger+code, reversed, limit 100)', query],
    ] as const;
    for (const [operation, name, input] of cases) {
        let results = 0;
        const start = process.hrtime.bigint();
        for (let q = 0; q < queries; q++) {
            filter_view.setUint32(0, (q * 7919 % accounts) + 1, true);
            ledger.prefetch(operation, input, 0, input.length);
            results += ledger.execute(operation, clock, input, 0, input.length, output, 0) / 128;
        }
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        console.log(`accounts=${accounts} ${name}: ${Math.round(queries / seconds)} queries/s ` +
            `(${Math.round(results / queries)} results each)`);
    }
}

function main(): void {
    const account_counts = option('accounts', '10000,1000000').split(',').map(Number);
    const batches = Number(option('batches', '100'));
    const only = option('only', 'all');
    const prefetch = option('prefetch', '1') === '1';
    const execute = option('execute', '1') === '1';
    const warmup_batches = Number(option('warmup', '10'));
    assert(Number.isInteger(warmup_batches) && warmup_batches >= 1);
    assert(batches > warmup_batches);
    const output = new Uint8Array(2 * 1024 * 1024);
    for (const accounts of account_counts) {
        assert(Number.isInteger(accounts) && accounts >= 2);
        const ledger = new Ledger({ accounts_max: accounts, transfers_max: batch * batches });
        let clock = make_accounts(ledger, accounts, output, 1_700_000_000_000_000_000n);
        clock = bench_create(ledger, accounts, output, clock,
            { batches, warmup_batches, prefetch, execute });
        if (only === 'create' || !execute) continue;
        bench_lookups(ledger, accounts, output, clock);
        bench_queries(ledger, accounts, output, clock);
    }
}

main();
