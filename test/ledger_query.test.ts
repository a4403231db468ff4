import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../lib/ledger/ledger';
import { AccountFlags as AF, Operation, TransferFlags as TF } from '../lib/ledger/constants';
import {
    Driver, decode_accounts, decode_transfers, encode_account_filter, encode_query_filter,
    AccountFilterInput, QueryFilterInput,
} from '../lib/ledger/codec';

/** Accounts 1 (history), 2, 3 (ledger 2, code 7); transfers 1..10 alternate direction 1<->2. */
function setup(): Driver {
    const driver = new Driver(new Ledger({ accounts_max: 16, transfers_max: 64 }));
    driver.accounts([{ id: 1n, flags: AF.history, user_data_64: 5n }, { id: 2n },
        { id: 3n, ledger: 2, code: 7 }, { id: 4n, ledger: 2, code: 7 }]);
    for (let i = 1; i <= 10; i++) {
        const forward = i % 2 === 1;
        driver.transfers([{ id: BigInt(i), debit_account_id: forward ? 1n : 2n,
            credit_account_id: forward ? 2n : 1n, amount: BigInt(i),
            user_data_32: i % 3, code: i <= 5 ? 1 : 2 }]);
    }
    return driver;
}

function account_transfers(driver: Driver, filter: AccountFilterInput): bigint[] {
    const reply = driver.run(Operation.get_account_transfers, encode_account_filter(filter));
    return decode_transfers(reply).map((t) => t.id);
}

function query_transfers(driver: Driver, filter: QueryFilterInput): bigint[] {
    return decode_transfers(driver.run(Operation.query_transfers, encode_query_filter(filter)))
        .map((t) => t.id);
}

test('get_account_transfers: debits/credits/reversed/limit/filters', () => {
    const driver = setup();
    assert.deepEqual(account_transfers(driver, { account_id: 1n }),
        [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]);
    assert.deepEqual(account_transfers(driver, { account_id: 1n, flags: 1 }), [1n, 3n, 5n, 7n, 9n]);
    assert.deepEqual(account_transfers(driver, { account_id: 1n, flags: 2 }), [2n, 4n, 6n, 8n,
        10n]);
    assert.deepEqual(account_transfers(driver, { account_id: 1n, flags: 3 | 4, limit: 3 }),
        [10n, 9n, 8n]);
    assert.deepEqual(account_transfers(driver, { account_id: 2n, code: 2, user_data_32: 1 }),
        [7n, 10n]);
    const [t3, t6] = driver.lookup_transfers([3n, 6n]);
    assert.deepEqual(account_transfers(driver, { account_id: 1n, timestamp_min: t3.timestamp,
        timestamp_max: t6.timestamp }), [3n, 4n, 5n, 6n]);
    assert.deepEqual(account_transfers(driver, { account_id: 1n, timestamp_min: t3.timestamp,
        timestamp_max: t6.timestamp, flags: 7 }), [6n, 5n, 4n, 3n]);
    // Invalid filters reply with nothing.
    const invalid: AccountFilterInput[] = [
        { account_id: 0n }, { account_id: 1n, flags: 0 }, { account_id: 1n, flags: 8 | 3 },
        { account_id: 1n, limit: 0 }, { account_id: 1n, reserved: 1 },
        { account_id: 1n, timestamp_min: 5n, timestamp_max: 4n },
        { account_id: 1n, timestamp_min: (1n << 64n) - 1n }, { account_id: 99n },
    ];
    for (const filter of invalid) assert.deepEqual(account_transfers(driver, filter), []);
});

test('get_account_balances: needs history, aligned with transfers', () => {
    const driver = setup();
    const reply = driver.run(Operation.get_account_balances,
        encode_account_filter({ account_id: 1n, limit: 4 }));
    assert.equal(reply.length, 4 * 128);
    const view = new DataView(reply.buffer, reply.byteOffset);
    const transfers = driver.lookup_transfers([1n, 2n, 3n, 4n]);
    let debits = 0n, credits = 0n;
    for (let i = 0; i < 4; i++) {
        if (i % 2 === 0) debits += BigInt(i + 1); else credits += BigInt(i + 1);
        assert.equal(view.getBigUint64(i * 128 + 16, true), debits);
        assert.equal(view.getBigUint64(i * 128 + 48, true), credits);
        assert.equal(view.getBigUint64(i * 128 + 64, true), transfers[i].timestamp);
    }
    assert.equal(driver.run(Operation.get_account_balances,
        encode_account_filter({ account_id: 2n })).length, 0);
});

test('query_transfers and query_accounts: AND of fields, range, reversed, limit', () => {
    const driver = setup();
    assert.deepEqual(query_transfers(driver, { code: 2 }), [6n, 7n, 8n, 9n, 10n]);
    assert.deepEqual(query_transfers(driver, { code: 2, user_data_32: 0 }),
        [6n, 7n, 8n, 9n, 10n]);
    assert.deepEqual(query_transfers(driver, { code: 1, user_data_32: 2 }), [2n, 5n]);
    assert.deepEqual(query_transfers(driver, { ledger: 1, flags: 1, limit: 2 }), [10n, 9n]);
    assert.deepEqual(query_transfers(driver, { ledger: 2 }), []);
    const [t4, t7] = driver.lookup_transfers([4n, 7n]);
    assert.deepEqual(query_transfers(driver, { timestamp_min: t4.timestamp,
        timestamp_max: t7.timestamp }), [4n, 5n, 6n, 7n]);
    assert.deepEqual(query_transfers(driver, { timestamp_min: t7.timestamp }),
        [7n, 8n, 9n, 10n]);
    const invalid: QueryFilterInput[] = [{ limit: 0 }, { flags: 2 }, { reserved: 1 },
        { timestamp_max: (1n << 64n) - 1n }, { timestamp_min: 9n, timestamp_max: 8n }];
    for (const filter of invalid) assert.deepEqual(query_transfers(driver, filter), []);
    const accounts = decode_accounts(driver.run(Operation.query_accounts,
        encode_query_filter({ ledger: 2, code: 7, flags: 1 })));
    assert.deepEqual(accounts.map((a) => a.id), [4n, 3n]);
    const by_user_data = decode_accounts(driver.run(Operation.query_accounts,
        encode_query_filter({ user_data_64: 5n })));
    assert.deepEqual(by_user_data.map((a) => a.id), [1n]);
});

test('lookups return found records only, in request order', () => {
    const driver = setup();
    assert.deepEqual(driver.lookup_accounts([3n, 99n, 1n]).map((a) => a.id), [3n, 1n]);
    assert.deepEqual(driver.lookup_transfers([10n, 0n, 2n]).map((t) => t.id), [10n, 2n]);
    const posted = driver.lookup_accounts([1n])[0];
    assert.equal(posted.debits_posted, 1n + 3n + 5n + 7n + 9n);
    assert.equal(posted.credits_posted, 2n + 4n + 6n + 8n + 10n);
    // A failed id (transient) is not a transfer.
    driver.transfers([{ id: 50n, debit_account_id: 1n, credit_account_id: 99n, amount: 1n,
        flags: TF.pending }]);
    assert.deepEqual(driver.lookup_transfers([50n]), []);
});

test('get_account_balances: rows only for transfers; an expiry shows in the next row', () => {
    const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 64 }));
    driver.accounts([{ id: 1n, flags: AF.history }, { id: 2n }]);
    driver.transfers([{ id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 10n,
        flags: TF.pending, timeout: 1 }]);
    driver.pulse(2_000_000_000n);
    driver.transfers([{ id: 2n, debit_account_id: 2n, credit_account_id: 1n, amount: 3n }]);
    const rows = (filter: Partial<AccountFilterInput>) => {
        const reply = driver.run(Operation.get_account_balances,
            encode_account_filter({ account_id: 1n, ...filter }));
        const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
        const out: bigint[][] = [];
        for (let o = 0; o < reply.length; o += 128) {
            assert.ok(reply.subarray(o + 72, o + 128).every((b) => b === 0), 'reserved');
            out.push([0, 16, 32, 48, 64].map((f) => view.getBigUint64(o + f, true)));
        }
        return out;
    };
    const [t1, t2] = driver.lookup_transfers([1n, 2n]);
    // TigerBeetle scans the account's transfers and reads the balances kept at each transfer's
    // timestamp, so the expiry has no row of its own; its effect shows in the next row.
    assert.deepEqual(rows({}), [[10n, 0n, 0n, 0n, t1.timestamp], [0n, 0n, 0n, 3n, t2.timestamp]]);
    assert.deepEqual(rows({ flags: 1 }), [[10n, 0n, 0n, 0n, t1.timestamp]]);
    assert.deepEqual(rows({ flags: 2 | 4 }), [[0n, 0n, 0n, 3n, t2.timestamp]]);
    assert.deepEqual(rows({ flags: 3 | 4, limit: 1 }), [[0n, 0n, 0n, 3n, t2.timestamp]]);
    assert.deepEqual(rows({ timestamp_max: t1.timestamp }), [[10n, 0n, 0n, 0n, t1.timestamp]]);
    assert.deepEqual(rows({ timestamp_min: t1.timestamp + 1n }),
        [[0n, 0n, 0n, 3n, t2.timestamp]]);
    assert.deepEqual(rows({ code: 9 }), []);
    assert.deepEqual(rows({ limit: 0 }), []);
});

test('query_accounts: range, reversed and limit over timestamps', () => {
    const driver = setup();
    const all = decode_accounts(driver.run(Operation.query_accounts,
        encode_query_filter({})));
    assert.deepEqual(all.map((a) => a.id), [1n, 2n, 3n, 4n]);
    const query = (filter: QueryFilterInput) => decode_accounts(driver.run(
        Operation.query_accounts, encode_query_filter(filter))).map((a) => a.id);
    assert.deepEqual(query({ timestamp_min: all[1].timestamp, timestamp_max: all[2].timestamp }),
        [2n, 3n]);
    assert.deepEqual(query({ timestamp_min: all[1].timestamp, flags: 1, limit: 2 }), [4n, 3n]);
    assert.deepEqual(query({ timestamp_max: all[0].timestamp, flags: 1 }), [1n]);
    assert.deepEqual(query({ ledger: 1, code: 7 }), []);
    assert.deepEqual(query({ timestamp_min: all[3].timestamp + 1n }), []);
});
