// The ledger benches' inputs: accounts 1..n, and batches of simple transfers between random
// distinct pairs of them (bench/ledger.ts, bench/groove.ts).
import { Operation } from '../lib/ledger/constants';
import type { Ledger } from '../lib/ledger/ledger';
import { account_at, transfer_at } from '../lib/ledger/record_layout';
import type { Prng } from '../lib/prng';

export const batch = 8189;

export function make_accounts(ledger: Ledger, accounts: number, output: Uint8Array,
    clock: bigint): bigint {
    const input = new Uint8Array(batch * 128);
    const view = new DataView(input.buffer);
    for (let start = 0; start < accounts; start += batch) {
        const count = Math.min(batch, accounts - start);
        input.fill(0);
        for (let i = 0; i < count; i++) {
            view.setUint32(i * 128, start + i + 1, true);
            view.setUint32(i * 128 + account_at.ledger, 1, true);
            view.setUint16(i * 128 + account_at.code, 1, true);
        }
        clock += BigInt(count);
        ledger.execute(Operation.create_accounts, clock, input, 0, count * 128, output, 0);
    }
    return clock;
}

/** Fills one batch of simple transfers between random distinct pairs. */
export function fill_transfers(input: Uint8Array, first_id: number, accounts: number, prng: Prng) {
    const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
    input.fill(0);
    for (let i = 0; i < batch; i++) {
        const debit = prng.int(accounts) + 1;
        let credit = prng.int(accounts - 1) + 1;
        if (credit >= debit) credit++;
        const o = i * 128;
        view.setUint32(o, first_id + i, true);
        view.setUint32(o + transfer_at.debit_account_id, debit, true);
        view.setUint32(o + transfer_at.credit_account_id, credit, true);
        view.setUint32(o + transfer_at.amount, 1 + (i & 7), true);
        view.setUint32(o + transfer_at.ledger, 1, true);
        view.setUint16(o + transfer_at.code, 1, true);
    }
}
