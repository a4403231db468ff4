import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger } from '../lib/ledger/ledger';
import { AccountFlags as AF, CreateAccountStatus as AS, CreateTransferStatus as TS, Operation,
    TransferFlags as TF } from '../lib/ledger/constants';
import { Driver, decode_results, encode_accounts, encode_transfers } from '../lib/ledger/codec';

const max = (1n << 128n) - 1n;

function fresh(): Driver {
    const driver = new Driver(new Ledger({ accounts_max: 64, transfers_max: 256 }));
    const statuses = driver.statuses_accounts([
        { id: 1n }, { id: 2n }, { id: 3n, ledger: 2 }, { id: 4n,
            flags: AF.debits_must_not_exceed_credits },
        { id: 5n, flags: AF.credits_must_not_exceed_debits }, { id: 6n, flags: AF.history },
    ]);
    assert.deepEqual(statuses, Array(6).fill(AS.created));
    return driver;
}

test('create_accounts: every status, in precedence order', () => {
    const cases: [string, object, number][] = [
        ['created', { id: 10n }, AS.created],
        ['timestamp before reserved', { id: 0n, reserved: 1, timestamp: 5n },
            AS.timestamp_must_be_zero],
        ['reserved before flag', { id: 0n, reserved: 1, flags: 1 << 9 }, AS.reserved_field],
        ['reserved_flag before id', { id: 0n, flags: 1 << 9 }, AS.reserved_flag],
        ['id zero', { id: 0n }, AS.id_must_not_be_zero],
        ['id max', { id: max }, AS.id_must_not_be_int_max],
        ['exists flags before balances', { id: 1n, flags: AF.history, debits_posted: 1n },
            AS.exists_with_different_flags],
        ['exists ud128', { id: 1n, user_data_128: 1n }, AS.exists_with_different_user_data_128],
        ['exists ud64', { id: 1n, user_data_64: 1n }, AS.exists_with_different_user_data_64],
        ['exists ud32', { id: 1n, user_data_32: 1 }, AS.exists_with_different_user_data_32],
        ['exists ledger', { id: 1n, ledger: 9 }, AS.exists_with_different_ledger],
        ['exists code', { id: 1n, code: 9 }, AS.exists_with_different_code],
        ['exists', { id: 1n }, AS.exists],
        ['mutually exclusive before balances', { id: 11n, debits_pending: 1n,
            flags: AF.debits_must_not_exceed_credits | AF.credits_must_not_exceed_debits },
        AS.flags_are_mutually_exclusive],
        ['debits_pending', { id: 11n, debits_pending: 1n, debits_posted: 1n },
            AS.debits_pending_must_be_zero],
        ['debits_posted', { id: 11n, debits_posted: 1n }, AS.debits_posted_must_be_zero],
        ['credits_pending', { id: 11n, credits_pending: 1n }, AS.credits_pending_must_be_zero],
        ['credits_posted', { id: 11n, credits_posted: 1n, ledger: 0 },
            AS.credits_posted_must_be_zero],
        ['ledger before code', { id: 11n, ledger: 0, code: 0 }, AS.ledger_must_not_be_zero],
        ['code', { id: 11n, code: 0 }, AS.code_must_not_be_zero],
    ];
    for (const [name, account, expected] of cases) {
        const driver = fresh();
        const [status] = driver.statuses_accounts([account as { id: bigint }]);
        assert.equal(status, expected, name);
    }
});

test('create_accounts: dense results carry timestamps; exists returns the original', () => {
    const driver = fresh();
    const first = driver.accounts([{ id: 20n }, { id: 0n }]);
    assert.equal(first[0].status, AS.created);
    assert.equal(first[1].timestamp, first[0].timestamp + 1n);
    assert.equal(first[1].status, AS.id_must_not_be_zero);
    const again = driver.accounts([{ id: 20n }]);
    assert.deepEqual(again[0], { timestamp: first[0].timestamp, status: AS.exists });
    assert.equal(driver.lookup_accounts([20n])[0].timestamp, first[0].timestamp);
});

test('create_accounts: imported rules', () => {
    const driver = fresh();
    const now = driver.clock;
    let statuses = driver.statuses_accounts([{ id: 30n, flags: AF.imported, timestamp: now + 1n },
        { id: 31n }]);
    assert.deepEqual(statuses, [AS.created, AS.imported_event_expected]);
    statuses = driver.statuses_accounts([{ id: 32n }, { id: 33n, flags: AF.imported,
        timestamp: 5n }]);
    assert.deepEqual(statuses, [AS.created, AS.imported_event_not_expected]);
    statuses = driver.statuses_accounts([{ id: 34n, flags: AF.imported, timestamp: 0n }]);
    assert.deepEqual(statuses, [AS.imported_event_timestamp_out_of_range]);
    statuses = driver.statuses_accounts([{ id: 34n, flags: AF.imported, timestamp: 1n << 62n }]);
    assert.deepEqual(statuses, [AS.imported_event_timestamp_must_not_advance]);
    // Regress: not after the last account.
    statuses = driver.statuses_accounts([{ id: 34n, flags: AF.imported, timestamp: now }]);
    assert.deepEqual(statuses, [AS.imported_event_timestamp_must_not_regress]);
    const result = driver.accounts([{ id: 35n, flags: AF.imported, timestamp: driver.clock }]);
    assert.deepEqual(result, [{ timestamp: driver.clock - 2n, status: AS.created }]);
});

test('create_transfers: validation statuses, in precedence order', () => {
    const base = { id: 100n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n };
    const cases: [string, object, number][] = [
        ['created', {}, TS.created],
        ['timestamp', { timestamp: 1n, flags: 1 << 12 }, TS.timestamp_must_be_zero],
        ['reserved_flag', { flags: 1 << 12, id: 0n }, TS.reserved_flag],
        ['id zero', { id: 0n }, TS.id_must_not_be_zero],
        ['id max', { id: max }, TS.id_must_not_be_int_max],
        ['post+void', { flags: TF.post_pending_transfer | TF.void_pending_transfer },
            TS.flags_are_mutually_exclusive],
        ['post+pending', { flags: TF.post_pending_transfer | TF.pending },
            TS.flags_are_mutually_exclusive],
        ['debit zero', { debit_account_id: 0n, credit_account_id: 0n },
            TS.debit_account_id_must_not_be_zero],
        ['debit max', { debit_account_id: max }, TS.debit_account_id_must_not_be_int_max],
        ['credit zero', { credit_account_id: 0n }, TS.credit_account_id_must_not_be_zero],
        ['credit max', { credit_account_id: max }, TS.credit_account_id_must_not_be_int_max],
        ['same accounts', { credit_account_id: 1n, pending_id: 1n }, TS.accounts_must_be_different],
        ['pending_id', { pending_id: 1n, timeout: 1 }, TS.pending_id_must_be_zero],
        ['timeout', { timeout: 1, flags: TF.closing_debit },
            TS.timeout_reserved_for_pending_transfer],
        ['closing', { flags: TF.closing_debit, ledger: 0 }, TS.closing_transfer_must_be_pending],
        ['ledger', { ledger: 0, code: 0 }, TS.ledger_must_not_be_zero],
        ['code', { code: 0, debit_account_id: 99n }, TS.code_must_not_be_zero],
        ['debit not found', { debit_account_id: 99n, credit_account_id: 98n },
            TS.debit_account_not_found],
        ['credit not found', { credit_account_id: 98n }, TS.credit_account_not_found],
        ['accounts ledger', { credit_account_id: 3n, ledger: 5 },
            TS.accounts_must_have_the_same_ledger],
        ['transfer ledger', { ledger: 2 }, TS.transfer_must_have_the_same_ledger_as_accounts],
        ['exceeds credits', { debit_account_id: 4n }, TS.exceeds_credits],
        ['exceeds debits', { credit_account_id: 5n }, TS.exceeds_debits],
        ['pending_id zero', { flags: TF.post_pending_transfer }, TS.pending_id_must_not_be_zero],
        ['pending_id max', { flags: TF.void_pending_transfer, pending_id: max },
            TS.pending_id_must_not_be_int_max],
        ['pending_id same', { flags: TF.void_pending_transfer, pending_id: 100n },
            TS.pending_id_must_be_different],
        ['pending timeout', { flags: TF.void_pending_transfer, pending_id: 7n, timeout: 1 },
            TS.timeout_reserved_for_pending_transfer],
        ['pending not found', { flags: TF.void_pending_transfer, pending_id: 7n },
            TS.pending_transfer_not_found],
    ];
    for (const [name, overrides, expected] of cases) {
        const driver = fresh();
        const [status] = driver.statuses_transfers([{ ...base, ...overrides }]);
        assert.equal(status, expected, name);
    }
});

test('create_transfers: exists_* precede validation, transient ids burn', () => {
    const driver = fresh();
    const t = { id: 200n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n,
        user_data_32: 3 };
    assert.deepEqual(driver.statuses_transfers([t]), [TS.created]);
    const cases: [object, number][] = [
        [{ flags: TF.pending, ledger: 0 }, TS.exists_with_different_flags],
        [{ pending_id: 4n }, TS.exists_with_different_pending_id],
        [{ timeout: 4 }, TS.exists_with_different_timeout],
        [{ debit_account_id: 3n }, TS.exists_with_different_debit_account_id],
        [{ credit_account_id: 3n }, TS.exists_with_different_credit_account_id],
        [{ amount: 6n }, TS.exists_with_different_amount],
        [{ user_data_128: 6n }, TS.exists_with_different_user_data_128],
        [{ user_data_64: 6n }, TS.exists_with_different_user_data_64],
        [{ user_data_32: 6 }, TS.exists_with_different_user_data_32],
        [{ ledger: 6 }, TS.exists_with_different_ledger],
        [{ code: 6 }, TS.exists_with_different_code],
        [{}, TS.exists],
    ];
    for (const [overrides, expected] of cases) {
        assert.equal(driver.statuses_transfers([{ ...t, ...overrides }])[0], expected);
    }
    // A transient failure burns the id; a non-transient one does not.
    assert.deepEqual(driver.statuses_transfers([{ id: 201n, debit_account_id: 4n,
        credit_account_id: 2n, amount: 1n }]), [TS.exceeds_credits]);
    assert.deepEqual(driver.statuses_transfers([{ id: 201n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }]), [TS.id_already_failed]);
    assert.deepEqual(driver.statuses_transfers([{ id: 202n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n, ledger: 0 }]), [TS.ledger_must_not_be_zero]);
    assert.deepEqual(driver.statuses_transfers([{ id: 202n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }]), [TS.created]);
});

test('create_transfers: balances and limits', () => {
    const driver = fresh();
    assert.deepEqual(driver.statuses_transfers([
        { id: 1n, debit_account_id: 2n, credit_account_id: 4n, amount: 10n },
        { id: 2n, debit_account_id: 4n, credit_account_id: 1n, amount: 10n },
        { id: 3n, debit_account_id: 4n, credit_account_id: 1n, amount: 1n },
        { id: 4n, debit_account_id: 5n, credit_account_id: 1n, amount: 0n },
    ]), [TS.created, TS.created, TS.exceeds_credits, TS.created]);
    const [a4] = driver.lookup_accounts([4n]);
    assert.equal(a4.debits_posted, 10n);
    assert.equal(a4.credits_posted, 10n);
});

test('create_transfers: simple transfers carry across every limb', () => {
    const driver = fresh();
    const two_32 = 1n << 32n;
    // Amounts below 2^96 take the simple path; each pair makes a carry out of one limb.
    const amounts = [two_32 - 1n, 1n, two_32 * two_32 - 1n, 1n, (1n << 96n) - 1n, 1n,
        (1n << 96n) - 1n, two_32 + 5n];
    const statuses = driver.statuses_transfers(amounts.map((amount, i) => ({
        id: BigInt(100 + i), debit_account_id: 1n, credit_account_id: 2n, amount })));
    assert.deepEqual(statuses, Array(amounts.length).fill(TS.created));
    const total = amounts.reduce((sum, amount) => sum + amount, 0n);
    assert(total >= 1n << 96n, 'the sum reaches the top limb');
    const [a1, a2] = driver.lookup_accounts([1n, 2n]);
    assert.equal(a1.debits_posted, total);
    assert.equal(a2.credits_posted, total);
    assert.equal(a1.credits_posted + a1.debits_pending + a2.debits_posted, 0n);
});

test('create_transfers: u128 overflow checks', () => {
    const driver = fresh();
    const big = (1n << 127n);
    assert.deepEqual(driver.statuses_transfers([
        { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: big },
        { id: 2n, debit_account_id: 1n, credit_account_id: 2n, amount: big },
        { id: 3n, debit_account_id: 1n, credit_account_id: 2n, amount: big - 1n,
            flags: TF.pending },
        { id: 4n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.pending },
        { id: 5n, debit_account_id: 6n, credit_account_id: 2n, amount: 1n },
        { id: 6n, debit_account_id: 2n, credit_account_id: 6n, amount: max, flags: TF.pending },
        { id: 7n, debit_account_id: 6n, credit_account_id: 1n, amount: 1n, flags: TF.pending },
        { id: 8n, debit_account_id: 1n, credit_account_id: 6n, amount: 1n, flags: TF.pending },
        { id: 10n, debit_account_id: 2n, credit_account_id: 1n, amount: 1n, flags: TF.pending },
        { id: 11n, debit_account_id: 5n, credit_account_id: 2n, amount: big },
    ]), [TS.created, TS.overflows_debits_posted, TS.created, TS.overflows_debits,
        TS.overflows_credits, TS.created, TS.created, TS.overflows_credits_pending,
        TS.overflows_debits_pending, TS.overflows_credits_posted]);
    assert.deepEqual(driver.statuses_transfers([{ id: 9n, debit_account_id: 5n,
        credit_account_id: 1n, amount: 1n, flags: TF.pending, timeout: 0xffffffff }]),
    [TS.created]);
    const overflow = new Driver(new Ledger({ accounts_max: 4, transfers_max: 4 }));
    overflow.clock = (1n << 63n) - 4_000_000_000_000_000_000n;
    overflow.accounts([{ id: 1n }, { id: 2n }]);
    assert.deepEqual(overflow.statuses_transfers([{ id: 9n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n, flags: TF.pending, timeout: 0xffffffff }]),
    [TS.overflows_timeout]);
});

test('linked chains: rollback, chain_open, precedence', () => {
    const driver = fresh();
    const results = driver.transfers([
        { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.linked },
        { id: 2n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.linked },
        { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: 0 },
        { id: 3n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n },
        { id: 4n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.linked },
    ]);
    assert.deepEqual(results.map((r) => r.status), [TS.linked_event_failed,
        TS.linked_event_failed, TS.exists_with_different_flags, TS.created,
        TS.linked_event_chain_open]);
    assert.ok(results.every((r, i) => i === 0 || r.timestamp === results[i - 1].timestamp + 1n));
    assert.deepEqual(driver.lookup_transfers([1n, 2n, 3n, 4n]).map((t) => t.id), [3n]);
    const [a1] = driver.lookup_accounts([1n]);
    assert.equal(a1.debits_posted, 1n);
    // A failing chain of accounts rolls back inserts; later chains still succeed.
    assert.deepEqual(driver.statuses_accounts([
        { id: 40n, flags: AF.linked }, { id: 41n, code: 0 }, { id: 40n },
    ]), [AS.linked_event_failed, AS.code_must_not_be_zero, AS.created]);
});

test('two-phase: post partial, void, already posted, different amount', () => {
    const driver = fresh();
    const p = { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 10n,
        flags: TF.pending };
    assert.deepEqual(driver.statuses_transfers([p, { ...p, id: 2n }]), [TS.created, TS.created]);
    let [a1] = driver.lookup_accounts([1n]);
    assert.equal(a1.debits_pending, 20n);
    assert.deepEqual(driver.statuses_transfers([
        { id: 3n, pending_id: 1n, amount: 11n, flags: TF.post_pending_transfer },
        { id: 3n, pending_id: 1n, amount: 4n, flags: TF.post_pending_transfer,
            debit_account_id: 2n },
        { id: 3n, pending_id: 1n, amount: 4n, flags: TF.post_pending_transfer, ledger: 2 },
        { id: 3n, pending_id: 1n, amount: 4n, flags: TF.post_pending_transfer, code: 2 },
        { id: 3n, pending_id: 1n, amount: 4n, flags: TF.post_pending_transfer },
        { id: 4n, pending_id: 1n, flags: TF.void_pending_transfer },
        { id: 5n, pending_id: 2n, amount: 3n, flags: TF.void_pending_transfer },
        { id: 5n, pending_id: 2n, flags: TF.void_pending_transfer },
        { id: 6n, pending_id: 2n, amount: max, flags: TF.post_pending_transfer },
        { id: 7n, pending_id: 3n, flags: TF.void_pending_transfer },
        { id: 3n, pending_id: 1n, amount: 4n, flags: TF.post_pending_transfer },
        { id: 3n, pending_id: 1n, amount: 5n, flags: TF.post_pending_transfer },
    ]), [TS.exceeds_pending_transfer_amount, TS.pending_transfer_has_different_debit_account_id,
        TS.pending_transfer_has_different_ledger, TS.pending_transfer_has_different_code,
        TS.created, TS.pending_transfer_already_posted, TS.pending_transfer_has_different_amount,
        TS.created, TS.pending_transfer_already_voided, TS.pending_transfer_not_pending,
        TS.exists, TS.exists_with_different_amount]);
    [a1] = driver.lookup_accounts([1n]);
    assert.equal(a1.debits_pending, 0n);
    assert.equal(a1.debits_posted, 4n);
    const [posted] = driver.lookup_transfers([3n]);
    assert.equal(posted.debit_account_id, 1n);
    assert.equal(posted.amount, 4n);
});

test('two-phase: expiry through pulse, then pending_transfer_expired', () => {
    const driver = fresh();
    assert.deepEqual(driver.statuses_transfers([{ id: 1n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 10n, flags: TF.pending, timeout: 1 }]), [TS.created]);
    assert.equal(driver.ledger.pulse_needed(driver.clock + 500_000_000n), false);
    assert.equal(driver.ledger.pulse_needed(driver.clock + 2_000_000_000n), true);
    driver.pulse(1_500_000_000n);
    assert.equal(driver.lookup_accounts([1n])[0].debits_pending, 0n);
    assert.equal(driver.ledger.pulse_needed(driver.clock + 1n), false);
    assert.deepEqual(driver.statuses_transfers([{ id: 2n, pending_id: 1n,
        flags: TF.void_pending_transfer }]), [TS.pending_transfer_expired]);
    // Expired but not yet pulsed: the check uses the event timestamp.
    driver.statuses_transfers([{ id: 3n, debit_account_id: 1n, credit_account_id: 2n,
        amount: 1n, flags: TF.pending, timeout: 1 }]);
    driver.clock += 2_000_000_000n;
    assert.deepEqual(driver.statuses_transfers([{ id: 4n, pending_id: 3n,
        flags: TF.post_pending_transfer }]), [TS.pending_transfer_expired]);
});

test('balancing and closing', () => {
    const driver = fresh();
    driver.statuses_transfers([{ id: 1n, debit_account_id: 1n, credit_account_id: 4n,
        amount: 7n }]);
    const results = driver.transfers([{ id: 2n, debit_account_id: 4n, credit_account_id: 2n,
        amount: 100n, flags: TF.balancing_debit }]);
    assert.equal(results[0].status, TS.created);
    assert.equal(driver.lookup_transfers([2n])[0].amount, 7n);
    assert.deepEqual(driver.statuses_transfers([{ id: 2n, debit_account_id: 4n,
        credit_account_id: 2n, amount: 6n, flags: TF.balancing_debit }]),
            [TS.exists_with_different_amount]);
    assert.deepEqual(driver.statuses_transfers([{ id: 2n, debit_account_id: 4n,
        credit_account_id: 2n, amount: 200n, flags: TF.balancing_debit }]), [TS.exists]);
    const closing = TF.closing_debit | TF.closing_credit | TF.pending;
    assert.deepEqual(driver.statuses_transfers([
        { id: 3n, debit_account_id: 1n, credit_account_id: 2n, flags: closing },
        { id: 4n, debit_account_id: 1n, credit_account_id: 6n, amount: 1n },
        { id: 5n, debit_account_id: 6n, credit_account_id: 2n, amount: 1n },
    ]), [TS.created, TS.debit_account_already_closed, TS.credit_account_already_closed]);
    assert.ok(driver.lookup_accounts([1n])[0].flags & AF.closed);
    assert.deepEqual(driver.statuses_transfers([{ id: 6n, pending_id: 3n,
        flags: TF.void_pending_transfer }]), [TS.created]);
    assert.equal(driver.lookup_accounts([1n])[0].flags & AF.closed, 0);
    assert.equal(driver.lookup_accounts([2n])[0].flags & AF.closed, 0);
});

test('imported transfers', () => {
    const driver = fresh();
    const t0 = driver.clock;
    const early = { debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.imported };
    assert.deepEqual(driver.statuses_transfers([{ ...early, id: 9n, timestamp: 1000n }]),
        [TS.imported_event_timestamp_must_postdate_debit_account]);
    const imported = { debit_account_id: 1n, credit_account_id: 2n, amount: 1n,
        flags: TF.imported };
    assert.deepEqual(driver.statuses_transfers([
        { ...imported, id: 1n, timestamp: t0 + 1n },
        { ...imported, id: 2n, timestamp: t0 + 1n },
        { ...imported, id: 3n, timestamp: t0 - 5n },
        { ...imported, id: 4n, timestamp: t0 + 2n, flags: TF.imported | TF.pending, timeout: 5 },
        { ...imported, id: 5n, timestamp: t0 + 3n },
    ]), [TS.created, TS.imported_event_timestamp_must_not_regress,
        TS.imported_event_timestamp_must_not_regress,
        TS.imported_event_timeout_must_be_zero, TS.created]);
    assert.equal(driver.lookup_transfers([1n])[0].timestamp, t0 + 1n);
});

test('imported: a failure reports the event timestamp, success the imported one', () => {
    const driver = fresh();
    const t0 = driver.clock;
    const results = driver.transfers([
        { id: 10n, debit_account_id: 4n, credit_account_id: 2n, amount: 5n,
            flags: TF.imported, timestamp: t0 + 1n },
        { id: 11n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n,
            flags: TF.imported | TF.linked, timestamp: t0 + 2n },
        { id: 12n, debit_account_id: 1n, credit_account_id: 98n, amount: 5n,
            flags: TF.imported, timestamp: t0 + 3n },
        { id: 13n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n,
            flags: TF.imported, timestamp: t0 + 4n },
    ]);
    const batch = driver.clock;
    // exceeds_credits is decided after the imported timestamp is read: still the event's.
    assert.deepEqual(results[0], { timestamp: batch - 3n, status: TS.exceeds_credits });
    // A rolled-back member keeps the timestamp it was given; only its status changes.
    assert.deepEqual(results[1], { timestamp: t0 + 2n, status: TS.linked_event_failed });
    assert.deepEqual(results[2], { timestamp: batch - 1n, status: TS.credit_account_not_found });
    assert.deepEqual(results[3], { timestamp: t0 + 4n, status: TS.created });
    assert.deepEqual(driver.transfers([{ id: 13n, debit_account_id: 1n, credit_account_id: 2n,
        amount: 5n, flags: TF.imported, timestamp: t0 + 4n }])[0],
    { timestamp: t0 + 4n, status: TS.exists });
});

test('event timestamps count up across a 2^32 boundary inside a batch', () => {
    const ledger = new Ledger({ accounts_max: 4, transfers_max: 16 });
    const output = new Uint8Array(4096);
    const accounts = encode_accounts([{ id: 1n }, { id: 2n }]);
    ledger.execute(Operation.create_accounts, (5n << 32n) - 100n, accounts, 0, accounts.length,
        output, 0);
    // Event i of 4 is at batch - 4 + i + 1: two before the boundary, two from it on; the
    // third fails (so failures and successes both report their event's timestamp).
    const transfers = encode_transfers([
        { id: 10n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n },
        { id: 11n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n },
        { id: 12n, debit_account_id: 1n, credit_account_id: 1n, amount: 1n },
        { id: 13n, debit_account_id: 2n, credit_account_id: 1n, amount: 1n },
    ]);
    const batch = (5n << 32n) + 1n;
    const length = ledger.execute(Operation.create_transfers, batch, transfers, 0,
        transfers.length, output, 0);
    const results = decode_results(output.subarray(0, length));
    assert.deepEqual(results.map((r) => r.timestamp), [batch - 3n, batch - 2n, batch - 1n, batch]);
    assert.deepEqual(results.map((r) => r.status),
        [TS.created, TS.created, TS.accounts_must_be_different, TS.created]);
});
