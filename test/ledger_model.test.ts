// The reference model on its own (hand-checked cases), then the model and the real ledger fed the
// same random batches: every reply must be byte-identical and the double-entry invariants must
// hold on both after every batch.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Ledger } from '../lib/ledger/ledger';
import { u128_to_bigint } from '../lib/ledger/u128';
import {
    AF, Account, AccountStatus as AS, LedgerModel, Op, TF, Transfer, TransferStatus as TS,
    account_decode, account_encode, check_ledger_invariants, transfer_decode, transfer_encode,
    u128_max,
} from '../lib/testing/ledger_model';
import { LedgerWorkload } from '../lib/testing/ledger_workload';

const t0 = 1_700_000_000_000_000_000n;

function account(id: bigint, fields: Partial<Account> = {}): Account {
    return {
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n, ...fields,
    };
}

function transfer(id: bigint, fields: Partial<Transfer> = {}): Transfer {
    return {
        id, debit_account_id: 1n, credit_account_id: 2n, amount: 10n, pending_id: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n, ...fields,
    };
}

function statuses(reply: Uint8Array): number[] {
    const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    const result: number[] = [];
    for (let offset = 0; offset < reply.length; offset += 16) {
        result.push(view.getUint32(offset + 8, true));
    }
    return result;
}

function create_accounts(model: LedgerModel, timestamp: bigint, accounts: Account[]): number[] {
    const input = new Uint8Array(accounts.length * 128);
    accounts.forEach((a, i) => account_encode(a, input, i * 128));
    return statuses(model.execute(Op.create_accounts, timestamp, input));
}

function create_transfers(model: LedgerModel, timestamp: bigint, transfers: Transfer[]): number[] {
    const input = new Uint8Array(transfers.length * 128);
    transfers.forEach((t, i) => transfer_encode(t, input, i * 128));
    return statuses(model.execute(Op.create_transfers, timestamp, input));
}

function model_with_accounts(flags: number[] = [0, 0, 0]): LedgerModel {
    const model = new LedgerModel();
    const result = create_accounts(model, t0, flags.map((f, i) => account(BigInt(i + 1),
        { flags: f })));
    assert.deepEqual(result, flags.map(() => AS.created));
    return model;
}

test('model: account validation follows the documented precedence', () => {
    const model = model_with_accounts();
    const result = create_accounts(model, t0 + 100n, [
        account(1n),                                              // exists
        account(1n, { code: 2 }),                                 // exists_with_different_code
        account(0n, { reserved: 1 }),                             // reserved_field before id
        account(9n, { timestamp: 5n }),                           // timestamp_must_be_zero
        account(9n, { flags: AF.debits_must_not_exceed_credits |
            AF.credits_must_not_exceed_debits }),
        account(9n, { ledger: 0, code: 0 }),                      // ledger before code
        account(u128_max),
        account(9n, { flags: AF.linked }),                        // chain open at batch end
    ]);
    assert.deepEqual(result, [AS.exists, AS.exists_with_different_code, AS.reserved_field,
        AS.timestamp_must_be_zero, AS.flags_are_mutually_exclusive, AS.ledger_must_not_be_zero,
        AS.id_must_not_be_int_max, AS.linked_event_chain_open]);
});

test('model: a failed linked chain rolls back and burns transient ids', () => {
    const model = model_with_accounts([0, AF.debits_must_not_exceed_credits, 0]);
    const result = create_transfers(model, t0 + 100n, [
        transfer(10n, { flags: TF.linked }),
        transfer(11n, { debit_account_id: 2n, credit_account_id: 3n, amount: 20n }),
        transfer(12n),
    ]);
    // The chain's first event succeeded but is rolled back; 11 failed transiently; 12 stands.
    assert.deepEqual(result, [TS.linked_event_failed, TS.exceeds_credits, TS.created]);
    assert.equal(model.transfers.has(10n), false);
    assert.equal(model.accounts.get(1n)!.debits_posted, 10n);
    // Retrying a transient failure, even once it would succeed, gets id_already_failed.
    const retry = create_transfers(model, t0 + 200n, [
        transfer(11n, { debit_account_id: 2n, credit_account_id: 3n, amount: 1n }),
        transfer(10n),
    ]);
    assert.deepEqual(retry, [TS.id_already_failed, TS.created]);
});

test('model: two-phase transfers post partially, void, and expire on pulse', () => {
    const model = model_with_accounts();
    const second = 1_000_000_000n;
    assert.deepEqual(create_transfers(model, t0 + 10n, [
        transfer(20n, { flags: TF.pending, amount: 100n }),
        transfer(21n, { flags: TF.pending, amount: 50n, timeout: 1 }),
        transfer(22n, { flags: TF.pending, amount: 7n, timeout: 1 }),
    ]), [TS.created, TS.created, TS.created]);
    assert.deepEqual(create_transfers(model, t0 + 20n, [
        transfer(30n, { flags: TF.post_pending_transfer, pending_id: 20n, amount: 101n,
            debit_account_id: 0n, credit_account_id: 0n }),
        transfer(31n, { flags: TF.post_pending_transfer, pending_id: 20n, amount: 60n,
            debit_account_id: 0n, credit_account_id: 0n, ledger: 0, code: 0 }),
        transfer(32n, { flags: TF.void_pending_transfer, pending_id: 20n, amount: 0n }),
        transfer(33n, { flags: TF.void_pending_transfer, pending_id: 21n, amount: 10n }),
    ]), [TS.exceeds_pending_transfer_amount, TS.created, TS.pending_transfer_already_posted,
        TS.pending_transfer_has_different_amount]);
    assert.equal(model.accounts.get(1n)!.debits_posted, 60n);
    assert.equal(model.accounts.get(1n)!.debits_pending, 57n);
    model.execute(Op.pulse, t0 + 10n + second, new Uint8Array(0));
    assert.equal(model.accounts.get(1n)!.debits_pending, 0n);
    assert.equal(model.check_invariants(), null);
    assert.deepEqual(create_transfers(model, t0 + 2n * second, [
        transfer(34n, { flags: TF.void_pending_transfer, pending_id: 22n, amount: 0n }),
    ]), [TS.pending_transfer_expired]);
});

test('model: balancing and closing transfers', () => {
    const model = model_with_accounts();
    assert.deepEqual(create_transfers(model, t0 + 10n, [
        transfer(40n, { debit_account_id: 3n, credit_account_id: 1n, amount: 30n }),
        transfer(41n, { flags: TF.balancing_debit, amount: 1000n }),
        transfer(42n, { flags: TF.closing_credit }),
        transfer(43n, { flags: TF.closing_credit | TF.pending, amount: 0n }),
        transfer(44n, { debit_account_id: 3n, credit_account_id: 2n }),
    ]), [TS.created, TS.created, TS.closing_transfer_must_be_pending, TS.created,
        TS.credit_account_already_closed]);
    assert.equal(model.transfers.get(41n)!.amount, 30n);
    assert.equal((model.accounts.get(2n)!.flags & AF.closed) !== 0, true);
    // Voiding the closing transfer reopens the account.
    assert.deepEqual(create_transfers(model, t0 + 20n, [
        transfer(45n, { flags: TF.void_pending_transfer, pending_id: 43n, amount: 0n }),
        transfer(46n, { debit_account_id: 3n, credit_account_id: 2n }),
    ]), [TS.created, TS.created]);
});

test('model: imported events and u128 overflow', () => {
    const model = model_with_accounts();
    assert.deepEqual(create_accounts(model, t0 + 50n, [account(4n)]), [AS.created]);
    assert.deepEqual(create_transfers(model, t0 + 100n, [
        transfer(54n, { flags: TF.imported, timestamp: t0 + 20n, credit_account_id: 4n }),
        transfer(50n, { flags: TF.imported, timestamp: t0 + 60n }),
        transfer(51n, { flags: TF.imported, timestamp: t0 + 60n }),
        transfer(52n, { flags: TF.imported, timestamp: t0 + 100n }),
        transfer(53n),
    ]), [TS.imported_event_timestamp_must_postdate_credit_account, TS.created,
        TS.imported_event_timestamp_must_not_regress,
        TS.imported_event_timestamp_must_not_advance, TS.imported_event_expected]);
    assert.equal(model.transfers.get(50n)!.timestamp, t0 + 60n);
    assert.deepEqual(create_transfers(model, t0 + 200n, [
        transfer(55n, { amount: u128_max }),
        transfer(56n, { amount: u128_max - 10n }),
    ]), [TS.overflows_debits_posted, TS.created]);
});

// ------------------------------------------------------------------ model versus ledger

const output = new Uint8Array(1 << 21);

function hex(bytes: Uint8Array): string {
    return Buffer.from(bytes).toString('hex');
}

function lookup_all<T>(ledger: Ledger, operation: number, ids: bigint[],
    decode: (b: Uint8Array, o: number) => T): T[] {
    const objects: T[] = [];
    for (let start = 0; start < ids.length; start += 8189) {
        const chunk = ids.slice(start, start + 8189);
        const input = new Uint8Array(chunk.length * 16);
        const view = new DataView(input.buffer);
        chunk.forEach((id, i) => {
            view.setBigUint64(i * 16, id & 0xffffffffffffffffn, true);
            view.setBigUint64(i * 16 + 8, id >> 64n, true);
        });
        const length = ledger.execute(operation, 1n, input, 0, input.length, output, 0);
        for (let offset = 0; offset < length; offset += 128) objects.push(decode(output, offset));
    }
    return objects;
}

/** The invariants on the real ledger, seen only through its lookups. */
function ledger_invariants(ledger: Ledger, workload: LedgerWorkload, pulse_last: bigint,
    with_pending: boolean): string | null {
    const accounts = lookup_all(ledger, Op.lookup_accounts, [...new Set(workload.account_ids)],
        account_decode);
    if (!with_pending) {
        return check_ledger_invariants(accounts.map((a) => ({ ...a,
            debits_pending: 0n, credits_pending: 0n })), []) ??
            check_pending_sums_only(accounts);
    }
    const transfers = lookup_all(ledger, Op.lookup_transfers,
        [...new Set(workload.transfer_ids)], transfer_decode);
    const resolved = new Set(transfers.filter((t) => (t.flags & (TF.post_pending_transfer |
        TF.void_pending_transfer)) !== 0).map((t) => t.pending_id));
    const pending = transfers.filter((t) => (t.flags & TF.pending) !== 0 &&
        !resolved.has(t.id) &&
        !(t.timeout > 0 && t.timestamp + BigInt(t.timeout) * 1_000_000_000n <= pulse_last));
    return check_ledger_invariants(accounts, pending);
}

/**
 * Every account's pending amounts equal the sums over its transfers that are still pending,
 * read from the ledger's own per-transfer status (exact, and cheap enough for every batch).
 */
function ledger_pending_check(ledger: Ledger): string | null {
    const debits = new Map<number, bigint>(), credits = new Map<number, bigint>();
    const words = ledger.transfer_words;
    for (let slot = 0; slot < ledger.transfers_count; slot++) {
        if (ledger.transfer_status[slot] !== 1) continue;
        const amount = u128_to_bigint(words, slot * 32 + 12);
        const debit = ledger.transfer_debit_account_slot(slot);
        const credit = ledger.transfer_credit_account_slot(slot);
        debits.set(debit, (debits.get(debit) ?? 0n) + amount);
        credits.set(credit, (credits.get(credit) ?? 0n) + amount);
    }
    const accounts = ledger.account_words;
    for (let slot = 0; slot < ledger.accounts_count; slot++) {
        if (u128_to_bigint(accounts, slot * 32 + 4) !== (debits.get(slot) ?? 0n)) {
            return `account slot ${slot}: debits_pending != its pending transfers`;
        }
        if (u128_to_bigint(accounts, slot * 32 + 12) !== (credits.get(slot) ?? 0n)) {
            return `account slot ${slot}: credits_pending != its pending transfers`;
        }
    }
    return null;
}

function check_pending_sums_only(accounts: Account[]): string | null {
    const sums = new Map<number, bigint>();
    for (const a of accounts) {
        sums.set(a.ledger, (sums.get(a.ledger) ?? 0n) + a.debits_pending - a.credits_pending);
    }
    for (const [ledger, sum] of sums) {
        if (sum !== 0n) return `ledger ${ledger}: debits_pending != credits_pending`;
    }
    return null;
}

const result_size: Record<number, number> = {
    [Op.create_accounts]: 16, [Op.create_transfers]: 16,
};

function compare_run(seed: number, batches: number): void {
    const model = new LedgerModel();
    const ledger = new Ledger({ accounts_max: 8192, transfers_max: 1 << 16 });
    const workload = new LedgerWorkload(seed);
    let pulse_last = 0n;
    for (let index = 0; index < batches; index++) {
        const batch = workload.next();
        const expected = model.execute(batch.operation, batch.timestamp, batch.input);
        const length = ledger.execute(batch.operation, batch.timestamp, batch.input, 0,
            batch.input.length, output, 0);
        const actual = output.subarray(0, length);
        workload.observe(batch, expected);
        if (batch.operation === Op.pulse) pulse_last = batch.timestamp;
        if (hex(actual) !== hex(expected)) {
            const size = result_size[batch.operation] ?? 128;
            let element = 0;
            while (element * size < Math.min(actual.length, expected.length) &&
                hex(actual.subarray(element * size, element * size + size)) ===
                hex(expected.subarray(element * size, element * size + size))) element++;
            const event_size = batch.operation >= Op.create_accounts ? 128 :
                batch.operation <= Op.lookup_transfers ? 16 : batch.input.length;
            assert.fail(`seed=${seed} batch=${index} operation=${batch.operation} ` +
                `timestamp=${batch.timestamp} result/event index=${element}\n` +
                `event:  ${hex(batch.input.subarray(element * event_size,
                    (element + 1) * event_size))}\n` +
                `model:  ${hex(expected.subarray(element * size, element * size + size))} ` +
                `(length ${expected.length})\n` +
                `ledger: ${hex(actual.subarray(element * size, element * size + size))} ` +
                `(length ${actual.length})`);
        }
        const model_error = model.check_invariants();
        assert.equal(model_error, null, `seed=${seed} batch=${index}: model: ${model_error}`);
        const ledger_error = ledger_invariants(ledger, workload, pulse_last,
            index % 50 === 49 || index === batches - 1);
        assert.equal(ledger_error, null, `seed=${seed} batch=${index}: ledger: ${ledger_error}`);
        const pending_error = ledger_pending_check(ledger);
        assert.equal(pending_error, null, `seed=${seed} batch=${index}: ledger: ${pending_error}`);
    }
}

const long = process.env.RINGLEDGER_TEST_LONG === '1';

test('model and ledger give byte-identical replies on random batches', () => {
    const seeds = long ? 40 : 6;
    const batches = long ? 5000 : 600;
    for (let seed = 1; seed <= seeds; seed++) compare_run(seed, batches);
});
