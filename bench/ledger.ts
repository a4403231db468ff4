// Ledger throughput: create_transfers in 8189-event batches between random account pairs,
// lookups, and queries; heap growth per batch after warm-up.
// Run: node --expose-gc dist/bench/ledger.js [accounts=10000] [batches=200]
import { Ledger } from '../lib/ledger/ledger';
import { Operation } from '../lib/ledger/constants';
import { encode_account_filter, encode_query_filter } from '../lib/ledger/codec';

const batch = 8189;

function make_accounts(ledger: Ledger, accounts: number, output: Uint8Array,
    clock: bigint): bigint {
    const input = new Uint8Array(batch * 128);
    const view = new DataView(input.buffer);
    for (let start = 0; start < accounts; start += batch) {
        const count = Math.min(batch, accounts - start);
        input.fill(0);
        for (let i = 0; i < count; i++) {
            view.setUint32(i * 128, start + i + 1, true);
            view.setUint32(i * 128 + 112, 1, true);
            view.setUint16(i * 128 + 116, 1, true);
        }
        clock += BigInt(count);
        ledger.execute(Operation.create_accounts, clock, input, 0, count * 128, output, 0);
    }
    return clock;
}

/** Fills `input` with transfers between random pairs (deterministic xorshift). */
function fill_transfers(input: Uint8Array, view: DataView, first_id: number, accounts: number,
    seed: { value: number }): void {
    input.fill(0);
    for (let i = 0; i < batch; i++) {
        let x = seed.value;
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5; seed.value = x >>> 0;
        const debit = (seed.value % accounts) + 1;
        let credit = ((seed.value >>> 7) % accounts) + 1;
        if (credit === debit) credit = (debit % accounts) + 1;
        const o = i * 128;
        view.setUint32(o, first_id + i, true);
        view.setUint32(o + 16, debit, true);
        view.setUint32(o + 32, credit, true);
        view.setUint32(o + 48, 1 + (i & 7), true);
        view.setUint32(o + 112, 1, true);
        view.setUint16(o + 116, 1, true);
    }
}

function main(): void {
    const accounts = Number(process.argv[2] ?? 10000);
    const batches = Number(process.argv[3] ?? 200);
    const ledger = new Ledger({ accounts_max: accounts, transfers_max: batch * batches });
    const output = new Uint8Array(2 * 1024 * 1024);
    let clock = make_accounts(ledger, accounts, output, 1_700_000_000_000_000_000n);
    const inputs = [0, 1].map(() => new Uint8Array(batch * 128));
    const views = inputs.map((b) => new DataView(b.buffer));
    const seed = { value: 0x12345678 };
    let elapsed_ns = 0n, heap_after_warmup = 0;
    for (let b = 0; b < batches; b++) {
        const input = inputs[b & 1];
        fill_transfers(input, views[b & 1], b * batch + 1, accounts, seed);
        clock += BigInt(batch);
        const start = process.hrtime.bigint();
        const length = ledger.execute(Operation.create_transfers, clock, input, 0, input.length,
            output, 0);
        elapsed_ns += process.hrtime.bigint() - start;
        if (length !== batch * 16) throw new Error('bad reply length');
        if (b === 9) {
            if (global.gc) global.gc();
            heap_after_warmup = process.memoryUsage().heapUsed;
        }
    }
    if (global.gc) global.gc();
    const heap_growth = (process.memoryUsage().heapUsed - heap_after_warmup) / (batches - 10);
    const transfers_per_second = (batch * batches) / (Number(elapsed_ns) / 1e9);
    console.log(`accounts=${accounts} transfers=${batch * batches} ` +
        `create_transfers=${Math.round(transfers_per_second)}/s ` +
        `heap_growth_per_batch=${Math.round(heap_growth)}B`);
    bench_lookups(ledger, accounts, output, clock);
}

function bench_lookups(ledger: Ledger, accounts: number, output: Uint8Array, clock: bigint): void {
    const ids = new Uint8Array(batch * 16);
    const view = new DataView(ids.buffer);
    for (let i = 0; i < batch; i++) view.setUint32(i * 16, ((i * 7919) % accounts) + 1, true);
    const rounds = 50;
    let start = process.hrtime.bigint();
    for (let r = 0; r < rounds; r++) {
        ledger.execute(Operation.lookup_accounts, clock, ids, 0, ids.length, output, 0);
        ledger.execute(Operation.lookup_transfers, clock, ids, 0, ids.length, output, 0);
    }
    let seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(`lookups=${Math.round((2 * rounds * batch) / seconds)}/s`);
    const filter = encode_account_filter({ account_id: 1n, limit: 100, flags: 3 });
    const query = encode_query_filter({ ledger: 1, limit: 100, flags: 1 });
    start = process.hrtime.bigint();
    const queries = 2000;
    for (let q = 0; q < queries; q++) {
        new DataView(filter.buffer).setUint32(0, (q % accounts) + 1, true);
        ledger.execute(Operation.get_account_transfers, clock, filter, 0, 128, output, 0);
        ledger.execute(Operation.query_transfers, clock, query, 0, 64, output, 0);
    }
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(`queries(limit 100)=${Math.round((2 * queries) / seconds)}/s`);
}

main();
