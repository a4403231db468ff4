// Table-driven: every CreateTransferStatus and CreateAccountStatus the ledger can return, each
// reached from a fresh fixture, including pairs of broken rules where the earlier rule in
// TigerBeetle's precedence order must win. A final check proves the tables cover every status.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../lib/ledger/ledger';
import { AccountFlags as AF, CreateAccountStatus as AS, CreateTransferStatus as TS,
    TransferFlags as TF } from '../lib/ledger/constants';
import { AccountInput, Driver, TransferInput } from '../lib/ledger/codec';

const max = (1n << 128n) - 1n;
const closing = TF.closing_debit | TF.closing_credit | TF.pending;

interface Fixture {
    driver: Driver; last_transfer: bigint; after_transfers: bigint; late_account: bigint;
}

/**
 * Accounts 1, 2 (ledger 1), 3 (ledger 2), 4 (debits_must_not_exceed_credits),
 * 5 (credits_must_not_exceed_debits), 8 and 9 (closed by pending closing transfer 900),
 * 11..17 (balances near u128 max), and 20, created after every transfer.
 * Transfers: 100 pending, 101 pending with a 1 s timeout, 102 pending then posted by 103,
 * 104 pending then voided by 105, 106 single-phase, 107 burnt by exceeds_credits.
 */
function fixture(): Fixture {
    const driver = new Driver(new Ledger({ accounts_max: 64, transfers_max: 256 }));
    const accounts: AccountInput[] = [{ id: 1n }, { id: 2n }, { id: 3n, ledger: 2 },
        { id: 4n, flags: AF.debits_must_not_exceed_credits },
        { id: 5n, flags: AF.credits_must_not_exceed_debits }, { id: 8n }, { id: 9n }];
    for (let id = 11n; id <= 17n; id++) accounts.push({ id });
    assert.ok(driver.statuses_accounts(accounts).every((s) => s === AS.created));
    const p = { debit_account_id: 1n, credit_account_id: 2n, amount: 10n, flags: TF.pending };
    const transfers: TransferInput[] = [
        { ...p, id: 100n }, { ...p, id: 101n, timeout: 1 }, { ...p, id: 102n },
        { id: 103n, pending_id: 102n, amount: max, flags: TF.post_pending_transfer },
        { ...p, id: 104n }, { id: 105n, pending_id: 104n, flags: TF.void_pending_transfer },
        { id: 106n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n },
        { id: 900n, debit_account_id: 8n, credit_account_id: 9n, flags: closing },
        { id: 200n, debit_account_id: 11n, credit_account_id: 12n, amount: max - 1n },
        { id: 201n, debit_account_id: 14n, credit_account_id: 15n, amount: max - 1n,
            flags: TF.pending },
    ];
    const statuses = driver.statuses_transfers(transfers);
    assert.ok(statuses.every((s) => s === TS.created), String(statuses));
    assert.deepEqual(driver.statuses_transfers([{ id: 107n, debit_account_id: 4n,
        credit_account_id: 1n, amount: 1n }]), [TS.exceeds_credits]);
    const after_transfers = driver.clock;
    const last_transfer = driver.lookup_transfers([201n])[0].timestamp;
    driver.statuses_accounts([{ id: 20n }]);
    return { driver, last_transfer, after_transfers, late_account: driver.clock };
}

type Case = [string, (f: Fixture) => TransferInput[], number[], ((f: Fixture) => void)?];

const t = (fields: TransferInput): TransferInput => ({ debit_account_id: 1n,
    credit_account_id: 2n, amount: 1n, ...fields });
const post = (fields: Partial<TransferInput>): TransferInput => ({ id: 50n, pending_id: 100n,
    flags: TF.post_pending_transfer, ...fields });
const imported = (timestamp: bigint, fields: Partial<TransferInput> = {}): TransferInput =>
    t({ id: 60n, flags: TF.imported, timestamp, ...fields });

const transfer_cases: Case[] = [
    ['created', () => [t({ id: 50n })], [TS.created]],
    ['linked_event_failed', () => [t({ id: 50n, flags: TF.linked }), t({ id: 0n })],
        [TS.linked_event_failed, TS.id_must_not_be_zero]],
    ['chain_open beats every other rule', () => [t({ id: 0n, flags: TF.linked, ledger: 0 })],
        [TS.linked_event_chain_open]],
    ['imported_event_expected beats timestamp_must_be_zero', (f) => [
        imported(f.after_transfers + 1n), t({ id: 51n, timestamp: 5n })],
    [TS.created, TS.imported_event_expected]],
    ['imported_event_not_expected', (f) => [t({ id: 50n }),
        imported(f.after_transfers + 1n)], [TS.created, TS.imported_event_not_expected]],
    ['timestamp_must_be_zero beats reserved_flag', () => [t({ id: 50n, timestamp: 1n,
        flags: 1 << 12 })], [TS.timestamp_must_be_zero]],
    ['imported_event_timestamp_out_of_range', () => [imported(0n)],
        [TS.imported_event_timestamp_out_of_range]],
    ['imported_event_timestamp_must_not_advance', () => [imported(1n << 62n)],
        [TS.imported_event_timestamp_must_not_advance]],
    ['reserved_flag beats id_must_not_be_zero', () => [t({ id: 0n, flags: 1 << 15 })],
        [TS.reserved_flag]],
    ['id_must_not_be_zero', () => [t({ id: 0n })], [TS.id_must_not_be_zero]],
    ['id_must_not_be_int_max', () => [t({ id: max })], [TS.id_must_not_be_int_max]],
    ['exists_with_different_flags beats flags_are_mutually_exclusive', () => [t({ id: 106n,
        flags: TF.post_pending_transfer | TF.void_pending_transfer })],
    [TS.exists_with_different_flags]],
    ['exists_with_different_pending_id', () => [t({ id: 106n, pending_id: 5n })],
        [TS.exists_with_different_pending_id]],
    ['exists_with_different_timeout', () => [t({ id: 106n, timeout: 5 })],
        [TS.exists_with_different_timeout]],
    ['exists_with_different_debit_account_id', () => [t({ id: 106n, debit_account_id: 4n })],
        [TS.exists_with_different_debit_account_id]],
    ['exists_with_different_credit_account_id', () => [t({ id: 106n, credit_account_id: 4n })],
        [TS.exists_with_different_credit_account_id]],
    ['exists_with_different_amount', () => [t({ id: 106n, amount: 2n })],
        [TS.exists_with_different_amount]],
    ['exists_with_different_user_data_128', () => [t({ id: 106n, user_data_128: 1n })],
        [TS.exists_with_different_user_data_128]],
    ['exists_with_different_user_data_64', () => [t({ id: 106n, user_data_64: 1n })],
        [TS.exists_with_different_user_data_64]],
    ['exists_with_different_user_data_32', () => [t({ id: 106n, user_data_32: 1 })],
        [TS.exists_with_different_user_data_32]],
    ['exists_with_different_ledger', () => [t({ id: 106n, ledger: 2 })],
        [TS.exists_with_different_ledger]],
    ['exists_with_different_code', () => [t({ id: 106n, code: 2 })],
        [TS.exists_with_different_code]],
    ['exists', () => [t({ id: 106n })], [TS.exists]],
    ['id_already_failed beats validation', () => [t({ id: 107n, ledger: 0 })],
        [TS.id_already_failed]],
    ['flags_are_mutually_exclusive', () => [post({ flags: TF.post_pending_transfer |
        TF.balancing_debit })], [TS.flags_are_mutually_exclusive]],
    ['debit_account_id_must_not_be_zero', () => [t({ id: 50n, debit_account_id: 0n })],
        [TS.debit_account_id_must_not_be_zero]],
    ['debit_account_id_must_not_be_int_max', () => [t({ id: 50n, debit_account_id: max })],
        [TS.debit_account_id_must_not_be_int_max]],
    ['credit_account_id_must_not_be_zero', () => [t({ id: 50n, credit_account_id: 0n })],
        [TS.credit_account_id_must_not_be_zero]],
    ['credit_account_id_must_not_be_int_max', () => [t({ id: 50n, credit_account_id: max })],
        [TS.credit_account_id_must_not_be_int_max]],
    ['accounts_must_be_different', () => [t({ id: 50n, credit_account_id: 1n })],
        [TS.accounts_must_be_different]],
    ['pending_id_must_be_zero', () => [t({ id: 50n, pending_id: 100n })],
        [TS.pending_id_must_be_zero]],
    ['pending_id_must_not_be_zero', () => [post({ pending_id: 0n })],
        [TS.pending_id_must_not_be_zero]],
    ['pending_id_must_not_be_int_max', () => [post({ pending_id: max })],
        [TS.pending_id_must_not_be_int_max]],
    ['pending_id_must_be_different', () => [post({ id: 100n + 1000n, pending_id: 1100n })],
        [TS.pending_id_must_be_different]],
    ['timeout_reserved_for_pending_transfer', () => [t({ id: 50n, timeout: 1 })],
        [TS.timeout_reserved_for_pending_transfer]],
    ['closing_transfer_must_be_pending beats ledger', () => [t({ id: 50n,
        flags: TF.closing_debit, ledger: 0 })], [TS.closing_transfer_must_be_pending]],
    ['ledger_must_not_be_zero', () => [t({ id: 50n, ledger: 0 })],
        [TS.ledger_must_not_be_zero]],
    ['code_must_not_be_zero beats not found', () => [t({ id: 50n, code: 0,
        debit_account_id: 99n })], [TS.code_must_not_be_zero]],
    ['debit_account_not_found', () => [t({ id: 50n, debit_account_id: 99n })],
        [TS.debit_account_not_found]],
    ['credit_account_not_found', () => [t({ id: 50n, credit_account_id: 99n })],
        [TS.credit_account_not_found]],
    ['accounts_must_have_the_same_ledger', () => [t({ id: 50n, credit_account_id: 3n })],
        [TS.accounts_must_have_the_same_ledger]],
    ['same ledger as accounts beats imported postdate', (f) => [imported(f.late_account - 1n,
        { debit_account_id: 20n, ledger: 2 })],
    [TS.transfer_must_have_the_same_ledger_as_accounts]],
    ['pending_transfer_not_found', () => [post({ pending_id: 999n })],
        [TS.pending_transfer_not_found]],
    ['pending_transfer_not_pending', () => [post({ pending_id: 106n })],
        [TS.pending_transfer_not_pending]],
    ['pending_transfer_has_different_debit_account_id', () => [post({ debit_account_id: 3n })],
        [TS.pending_transfer_has_different_debit_account_id]],
    ['pending_transfer_has_different_credit_account_id', () => [post({
        credit_account_id: 3n })], [TS.pending_transfer_has_different_credit_account_id]],
    ['pending_transfer_has_different_ledger', () => [post({ ledger: 2 })],
        [TS.pending_transfer_has_different_ledger]],
    ['pending_transfer_has_different_code', () => [post({ code: 2 })],
        [TS.pending_transfer_has_different_code]],
    ['exceeds_pending_transfer_amount beats already_posted', () => [post({ pending_id: 102n,
        amount: 11n })], [TS.exceeds_pending_transfer_amount]],
    ['pending_transfer_has_different_amount', () => [post({ amount: 5n,
        flags: TF.void_pending_transfer })], [TS.pending_transfer_has_different_amount]],
    ['pending_transfer_already_posted', () => [post({ pending_id: 102n })],
        [TS.pending_transfer_already_posted]],
    ['pending_transfer_already_voided', () => [post({ pending_id: 104n })],
        [TS.pending_transfer_already_voided]],
    ['pending_transfer_expired (deadline passed, not yet pulsed)', () => [post({
        pending_id: 101n })], [TS.pending_transfer_expired],
    (f) => { f.driver.clock += 2_000_000_000n; }],
    ['imported_event_timestamp_must_not_regress', (f) => [imported(f.last_transfer)],
        [TS.imported_event_timestamp_must_not_regress]],
    ['imported_event_timestamp_must_postdate_debit_account', (f) => [imported(
        f.late_account - 1n, { debit_account_id: 20n })],
    [TS.imported_event_timestamp_must_postdate_debit_account]],
    ['imported_event_timestamp_must_postdate_credit_account', (f) => [imported(
        f.late_account - 1n, { credit_account_id: 20n })],
    [TS.imported_event_timestamp_must_postdate_credit_account]],
    ['imported_event_timeout_must_be_zero', (f) => [imported(f.late_account + 1n,
        { flags: TF.imported | TF.pending, timeout: 1 })],
    [TS.imported_event_timeout_must_be_zero]],
    ['debit_account_already_closed beats exceeds_debits', () => [t({ id: 50n,
        debit_account_id: 8n, credit_account_id: 5n })], [TS.debit_account_already_closed]],
    ['credit_account_already_closed', () => [t({ id: 50n, credit_account_id: 9n })],
        [TS.credit_account_already_closed]],
    ['overflows_debits_pending', () => [t({ id: 50n, debit_account_id: 14n,
        credit_account_id: 16n, amount: 2n, flags: TF.pending })], [TS.overflows_debits_pending]],
    ['overflows_credits_pending', () => [t({ id: 50n, debit_account_id: 17n,
        credit_account_id: 15n, amount: 2n, flags: TF.pending })], [TS.overflows_credits_pending]],
    ['overflows_debits_posted', () => [t({ id: 50n, debit_account_id: 11n,
        credit_account_id: 13n, amount: 2n })], [TS.overflows_debits_posted]],
    ['overflows_credits_posted', () => [t({ id: 50n, debit_account_id: 13n,
        credit_account_id: 12n, amount: 2n })], [TS.overflows_credits_posted]],
    ['overflows_debits', () => [t({ id: 50n, debit_account_id: 14n, credit_account_id: 16n,
        amount: 2n })], [TS.overflows_debits]],
    ['overflows_credits', () => [t({ id: 50n, debit_account_id: 17n, credit_account_id: 15n,
        amount: 2n })], [TS.overflows_credits]],
    ['overflows_timeout', () => [t({ id: 50n, flags: TF.pending, timeout: 0xffffffff })],
        [TS.overflows_timeout], (f) => { f.driver.clock = (1n << 63n) - 1_000_000_000_000n; }],
    ['exceeds_credits beats exceeds_debits', () => [t({ id: 50n, debit_account_id: 4n,
        credit_account_id: 5n })], [TS.exceeds_credits]],
    ['exceeds_debits', () => [t({ id: 50n, credit_account_id: 5n })], [TS.exceeds_debits]],
];

test('create_transfers: every status from a fresh fixture, with precedence pairs', () => {
    for (const [name, events, expected, before] of transfer_cases) {
        const f = fixture();
        if (before !== undefined) before(f);
        assert.deepEqual(f.driver.statuses_transfers(events(f)), expected, name);
    }
});

const account_cases: [string, AccountInput[], number[], ((d: Driver) => void)?][] = [
    ['linked_event_failed', [{ id: 30n, flags: AF.linked }, { id: 0n }],
        [AS.linked_event_failed, AS.id_must_not_be_zero]],
    ['linked_event_chain_open', [{ id: 30n, flags: AF.linked }],
        [AS.linked_event_chain_open]],
    ['imported_event_expected', [{ id: 30n, flags: AF.imported, timestamp: 1_000_000_004n },
        { id: 31n }], [AS.created, AS.imported_event_expected]],
    ['imported_event_not_expected', [{ id: 30n }, { id: 31n, flags: AF.imported,
        timestamp: 5n }], [AS.created, AS.imported_event_not_expected]],
    ['timestamp_must_be_zero beats reserved_field', [{ id: 30n, timestamp: 1n, reserved: 1 }],
        [AS.timestamp_must_be_zero]],
    ['imported_event_timestamp_out_of_range', [{ id: 30n, flags: AF.imported,
        timestamp: 1n << 63n }], [AS.imported_event_timestamp_out_of_range]],
    ['imported_event_timestamp_must_not_advance', [{ id: 30n, flags: AF.imported,
        timestamp: 1n << 62n }], [AS.imported_event_timestamp_must_not_advance]],
    ['reserved_field beats reserved_flag', [{ id: 30n, reserved: 1, flags: 1 << 10 }],
        [AS.reserved_field]],
    ['reserved_flag', [{ id: 30n, flags: 1 << 10 }], [AS.reserved_flag]],
    ['id_must_not_be_zero', [{ id: 0n }], [AS.id_must_not_be_zero]],
    ['id_must_not_be_int_max', [{ id: max }], [AS.id_must_not_be_int_max]],
    ['exists_with_different_flags beats balances', [{ id: 1n, flags: AF.history,
        credits_posted: 1n }], [AS.exists_with_different_flags]],
    ['exists_with_different_user_data_128', [{ id: 1n, user_data_128: 1n }],
        [AS.exists_with_different_user_data_128]],
    ['exists_with_different_user_data_64', [{ id: 1n, user_data_64: 1n }],
        [AS.exists_with_different_user_data_64]],
    ['exists_with_different_user_data_32', [{ id: 1n, user_data_32: 1 }],
        [AS.exists_with_different_user_data_32]],
    ['exists_with_different_ledger', [{ id: 1n, ledger: 2 }], [AS.exists_with_different_ledger]],
    ['exists_with_different_code', [{ id: 1n, code: 2 }], [AS.exists_with_different_code]],
    ['exists', [{ id: 1n }], [AS.exists]],
    ['flags_are_mutually_exclusive beats balances', [{ id: 30n, debits_pending: 1n,
        flags: AF.debits_must_not_exceed_credits | AF.credits_must_not_exceed_debits }],
    [AS.flags_are_mutually_exclusive]],
    ['debits_pending_must_be_zero', [{ id: 30n, debits_pending: 1n }],
        [AS.debits_pending_must_be_zero]],
    ['debits_posted_must_be_zero', [{ id: 30n, debits_posted: 1n }],
        [AS.debits_posted_must_be_zero]],
    ['credits_pending_must_be_zero', [{ id: 30n, credits_pending: 1n }],
        [AS.credits_pending_must_be_zero]],
    ['credits_posted_must_be_zero beats ledger', [{ id: 30n, credits_posted: 1n, ledger: 0 }],
        [AS.credits_posted_must_be_zero]],
    ['ledger_must_not_be_zero', [{ id: 30n, ledger: 0 }], [AS.ledger_must_not_be_zero]],
    ['code_must_not_be_zero', [{ id: 30n, code: 0 }], [AS.code_must_not_be_zero]],
    ['imported_event_timestamp_must_not_regress', [{ id: 30n, flags: AF.imported,
        timestamp: 1_000_000_001n }], [AS.imported_event_timestamp_must_not_regress]],
    ['created', [{ id: 30n }], [AS.created]],
];

test('create_accounts: every status from a fresh fixture, with precedence pairs', () => {
    for (const [name, accounts, expected] of account_cases) {
        const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 8 }));
        assert.deepEqual(driver.statuses_accounts([{ id: 1n }, { id: 2n }]), [AS.created,
            AS.created]);
        assert.deepEqual(driver.statuses_accounts(accounts), expected, name);
    }
});

test('the status tables reach every status code', () => {
    const unreached = (all: Record<string, number>, cases: { 2: number[] }[]) => {
        const seen = new Set(cases.flatMap((c) => c[2]));
        return Object.entries(all).filter(([, value]) => !seen.has(value)).map(([n]) => n);
    };
    assert.deepEqual(unreached(TS, transfer_cases), []);
    assert.deepEqual(unreached(AS, account_cases), []);
});
