import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger, LedgerCapacityError } from '../lib/ledger/ledger';
import { CreateTransferStatus as TS, Operation,
    TransferFlags as TF } from '../lib/ledger/constants';
import { Driver, TransferInput, encode_transfers } from '../lib/ledger/codec';

/** A deterministic workload mixing every kind of transfer, linked chains and failures. */
function workload(driver: Driver, seed: number, batches: number): void {
    let x = seed;
    const next = (n: number) => {
        x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
        return x % n;
    };
    driver.accounts(Array.from({ length: 20 }, (_, i) => ({ id: BigInt(i + 1),
        flags: i % 5 === 0 ? 2 : i % 7 === 0 ? 8 : 0 })));
    let id = 1;
    for (let b = 0; b < batches; b++) {
        const events: TransferInput[] = [];
        for (let e = 0; e < 40; e++) {
            const kind = next(10);
            const flags = (next(6) === 0 ? TF.linked : 0) |
                (kind < 3 ? TF.pending : kind === 3 ? TF.post_pending_transfer :
                    kind === 4 ? TF.void_pending_transfer : 0);
            events.push({ id: BigInt(next(4) === 0 ? 1 + next(id) : id++),
                debit_account_id: BigInt(1 + next(21)), credit_account_id: BigInt(1 + next(21)),
                amount: BigInt(next(100)), pending_id: kind === 3 || kind === 4 ?
                    BigInt(1 + next(id)) : 0n, timeout: kind === 1 ? 1 : 0, flags });
            if (kind >= 3 && kind <= 4) {
                events[events.length - 1].debit_account_id = 0n;
                events[events.length - 1].credit_account_id = 0n;
            }
        }
        events[events.length - 1].flags! &= ~TF.linked;
        driver.transfers(events);
        if (b % 5 === 4) driver.pulse(700_000_000n);
    }
}

test('determinism: the same batches give the same checksum_state', () => {
    const a = new Driver(new Ledger({ accounts_max: 32, transfers_max: 4096 }));
    const b = new Driver(new Ledger({ accounts_max: 32, transfers_max: 4096 }));
    workload(a, 7, 30);
    workload(b, 7, 30);
    assert.equal(a.ledger.checksum_state(), b.ledger.checksum_state());
    assert.ok(a.ledger.transfers_count > 100);
    const c = new Driver(new Ledger({ accounts_max: 32, transfers_max: 4096 }));
    workload(c, 8, 30);
    assert.notEqual(a.ledger.checksum_state(), c.ledger.checksum_state());
});

test('snapshot -> restore gives the same state and the same future', () => {
    const a = new Driver(new Ledger({ accounts_max: 64, transfers_max: 8192,
        change_events_max: 16384 }));
    workload(a, 11, 20);
    const snapshot = a.ledger.snapshot();
    const b = new Driver(new Ledger({ accounts_max: 64, transfers_max: 8192,
        change_events_max: 16384 }));
    b.ledger.restore(snapshot);
    b.clock = a.clock;
    assert.equal(b.ledger.checksum_state(), a.ledger.checksum_state());
    workload(a, 12, 20);
    workload(b, 12, 20);
    assert.equal(b.ledger.checksum_state(), a.ledger.checksum_state());
    assert.deepEqual(b.ledger.snapshot(), a.ledger.snapshot());
});

test('linked rollback leaves the state exactly as before', () => {
    const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 64 }));
    driver.accounts([{ id: 1n }, { id: 2n }, { id: 3n, flags: 8 }]);
    driver.transfers([{ id: 1n, debit_account_id: 1n, credit_account_id: 3n, amount: 5n,
        flags: TF.pending, timeout: 10 }]);
    const before = driver.ledger.checksum_state();
    const results = driver.transfers([
        { id: 2n, debit_account_id: 1n, credit_account_id: 3n, amount: 1n, flags: TF.linked },
        { id: 3n, pending_id: 1n, flags: TF.post_pending_transfer | TF.linked },
        { id: 4n, debit_account_id: 1n, credit_account_id: 3n, amount: 1n,
            flags: TF.closing_debit | TF.pending | TF.linked },
        { id: 5n, debit_account_id: 1n, credit_account_id: 9n, amount: 1n },
    ]);
    assert.deepEqual(results.map((r) => r.status), [TS.linked_event_failed,
        TS.linked_event_failed, TS.linked_event_failed, TS.credit_account_not_found]);
    driver.ledger.orphans_count -= 1; // Exclude the burnt id from the comparison...
    assert.equal(driver.ledger.checksum_state(), before);
    driver.ledger.orphans_count += 1; // ...and put it back.
    // The pending transfer is still pending and still expires.
    assert.deepEqual(driver.statuses_transfers([{ id: 6n, pending_id: 1n,
        flags: TF.post_pending_transfer }]), [TS.created]);
    assert.deepEqual(driver.statuses_transfers([{ id: 5n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }]), [TS.id_already_failed]);
});

test('capacity: a batch that may not fit is refused before any effect, with a log line', () => {
    const lines: string[] = [];
    const driver = new Driver(new Ledger({ accounts_max: 3, transfers_max: 2, orphans_max: 1,
        log: (line) => lines.push(line) }));
    driver.accounts([{ id: 1n }, { id: 2n }]);
    assert.throws(() => driver.accounts([{ id: 3n }, { id: 4n }]), LedgerCapacityError);
    assert.deepEqual(lines, ['ledger: batch of 2 events refused: accounts_max=3 would be ' +
        'exceeded (2 used, 2 in the batch)']);
    assert.equal(driver.ledger.accounts_count, 2);
    assert.equal(driver.ledger.capacity_error(Operation.create_accounts, 128), null);
    driver.accounts([{ id: 3n }]);
    const before = driver.ledger.checksum_state();
    const three = encode_transfers([1n, 2n, 3n].map((id) => ({ id, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n })));
    assert.match(driver.ledger.capacity_error(Operation.create_transfers, three.length) ?? '',
        /transfers_max=2 would be exceeded/);
    assert.throws(() => driver.run(Operation.create_transfers, three), LedgerCapacityError);
    // Two events fit transfers_max but not orphans_max (each might fail transiently).
    assert.throws(() => driver.transfers([{ id: 1n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }, { id: 2n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }]), /orphans_max=1 would be exceeded/);
    assert.equal(lines.length, 3);
    assert.equal(driver.ledger.checksum_state(), before);
    assert.deepEqual(driver.statuses_transfers([{ id: 1n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 7n, flags: TF.pending, timeout: 1 }]), [TS.created]);
    // At capacity: acknowledged objects stay readable, the pulse still expires (it needs no
    // capacity), and a batch that fits still runs.
    driver.ledger.prefetch(Operation.create_transfers, three, 0, 128);
    driver.pulse(2_000_000_000n);
    assert.equal(driver.lookup_accounts([1n])[0].debits_pending, 0n);
    assert.deepEqual(driver.lookup_transfers([1n]).map((t) => t.amount), [7n]);
    assert.deepEqual(driver.statuses_transfers([{ id: 2n, debit_account_id: 1n,
        credit_account_id: 2n, amount: 1n }]), [TS.created]);
    assert.equal(driver.ledger.capacity_error(Operation.create_transfers, 128),
        'transfers_max=2 would be exceeded (2 used, 1 in the batch)');
    assert.equal(driver.ledger.capacity_error(Operation.lookup_transfers, 16 * 8189), null);
    assert.equal(lines.length, 3);
});

test('change events: 0 turns them off; otherwise at least 2 * transfers_max', () => {
    assert.throws(() => new Ledger({ accounts_max: 8, transfers_max: 64,
        change_events_max: 127 }), /change_events_max/);
    const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 64 }));
    driver.accounts([{ id: 1n }, { id: 2n }]);
    driver.transfers([{ id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n }]);
    const filter = new Uint8Array(64);
    new DataView(filter.buffer).setUint32(16, 100, true);
    assert.equal(driver.run(Operation.get_change_events, filter).length, 0);
});

test('prefetch changes nothing: the same replies and state with and without it', () => {
    const with_prefetch = new Driver(new Ledger({ accounts_max: 32, transfers_max: 4096 }));
    const without = new Driver(new Ledger({ accounts_max: 32, transfers_max: 4096 }));
    without.ledger.prefetch = () => undefined;
    workload(with_prefetch, 5, 30);
    workload(without, 5, 30);
    assert.equal(with_prefetch.ledger.checksum_state(), without.ledger.checksum_state());
    const ids = Array.from({ length: 40 }, (_, i) => BigInt(i + 1));
    assert.deepEqual(with_prefetch.lookup_transfers(ids), without.lookup_transfers(ids));
    // Prefetching a batch that is then not executed leaves the state as it was.
    const before = with_prefetch.ledger.checksum_state();
    const batch = encode_transfers([{ id: 9999n, debit_account_id: 1n, credit_account_id: 2n,
        amount: 1n, pending_id: 3n }]);
    with_prefetch.ledger.prefetch(Operation.create_transfers, batch, 0, batch.length);
    assert.equal(with_prefetch.ledger.checksum_state(), before);
});

test('pulse expires in (expires_at, timestamp) order and only due transfers', () => {
    const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 64 }));
    driver.accounts([{ id: 1n }, { id: 2n }]);
    driver.transfers([
        { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.pending,
            timeout: 3 },
        { id: 2n, debit_account_id: 1n, credit_account_id: 2n, amount: 2n, flags: TF.pending,
            timeout: 1 },
        { id: 3n, debit_account_id: 1n, credit_account_id: 2n, amount: 4n, flags: TF.pending },
    ]);
    driver.pulse(1_500_000_000n);
    assert.equal(driver.lookup_accounts([1n])[0].debits_pending, 5n);
    driver.pulse(2_000_000_000n);
    assert.equal(driver.lookup_accounts([1n])[0].debits_pending, 4n);
    assert.equal(driver.ledger.pulse_needed(driver.clock + 10n ** 12n), false);
});

test('get_change_events: one event per transfer and expiry, in timestamp order', () => {
    const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 64,
        change_events_max: 128 }));
    driver.accounts([{ id: 1n, user_data_32: 9 }, { id: 2n, code: 3 }]);
    driver.transfers([
        { id: 1n, debit_account_id: 1n, credit_account_id: 2n, amount: 5n },
        { id: 2n, debit_account_id: 1n, credit_account_id: 2n, amount: 7n, flags: TF.pending },
        { id: 3n, debit_account_id: 1n, credit_account_id: 2n, amount: 4n, flags: TF.pending,
            timeout: 1 },
        { id: 4n, pending_id: 2n, amount: 6n, flags: TF.post_pending_transfer, user_data_32: 8 },
        { id: 5n, debit_account_id: 1n, credit_account_id: 2n, amount: 1n, flags: TF.linked },
        { id: 6n, debit_account_id: 1n, credit_account_id: 9n, amount: 1n },
    ]);
    driver.pulse(2_000_000_000n);
    const filter = new Uint8Array(64);
    new DataView(filter.buffer).setUint32(16, 100, true);
    const reply = driver.run(Operation.get_change_events, filter);
    assert.equal(reply.length, 5 * 384);
    const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
    const types = [0, 1, 2, 3, 4].map((i) => view.getUint8(i * 384 + 88));
    assert.deepEqual(types, [0, 1, 1, 2, 4]);
    const expired = 4 * 384;
    // Expiry of transfer 3: amount 4, after which account 1 has no pending debits.
    assert.equal(view.getUint32(expired, true), 3);
    assert.equal(view.getUint32(expired + 16, true), 4);
    assert.equal(view.getUint8(expired + 88), 4);
    assert.equal(view.getBigUint64(expired + 144, true), 0n); // debits_pending
    assert.equal(view.getBigUint64(expired + 160, true), 5n + 6n); // debits_posted
    assert.equal(view.getUint32(expired + 232, true), 9); // debit account user_data_32
    assert.equal(view.getUint16(expired + 348, true), 3); // credit account code
    const posted = 3 * 384;
    assert.equal(view.getUint32(posted + 72, true), 8); // the post's own user_data_32
    assert.ok(view.getBigUint64(expired + 352, true) > view.getBigUint64(expired + 360, true));
    // Limit and range.
    new DataView(filter.buffer).setUint32(16, 2, true);
    assert.equal(driver.run(Operation.get_change_events, filter).length, 2 * 384);
    new DataView(filter.buffer).setBigUint64(0, view.getBigUint64(posted + 352, true), true);
    new DataView(filter.buffer).setUint32(16, 100, true);
    assert.equal(driver.run(Operation.get_change_events, filter).length, 2 * 384);
    filter[30] = 1; // reserved must be zero
    assert.equal(driver.run(Operation.get_change_events, filter).length, 0);
});

test('invariant: total debits equal total credits after a mixed workload', () => {
    const driver = new Driver(new Ledger({ accounts_max: 32, transfers_max: 8192 }));
    workload(driver, 99, 60);
    const ids = Array.from({ length: 20 }, (_, i) => BigInt(i + 1));
    const accounts = driver.lookup_accounts(ids);
    const sum = (field: 'debits_pending' | 'debits_posted' | 'credits_pending' |
        'credits_posted') => accounts.reduce((total, a) => total + a[field], 0n);
    assert.equal(sum('debits_posted'), sum('credits_posted'));
    assert.equal(sum('debits_pending'), sum('credits_pending'));
    assert.ok(sum('debits_posted') > 0n);
    // Pending balances equal the amounts of transfers still pending.
    let pending = 0n;
    for (let slot = 0; slot < driver.ledger.transfers_count; slot++) {
        if (driver.ledger.transfer_status[slot] === 1) {
            const words = driver.ledger.transfer_words;
            pending += BigInt(words[slot * 32 + 12]) | (BigInt(words[slot * 32 + 13]) << 32n);
        }
    }
    assert.equal(sum('debits_pending'), pending);
});

// Found by the ledger split's review: the undo log held 4 entries per event, but a pending
// transfer in a chain writes 5 with change events on, so one valid linked chain of 8189 pending
// transfers tripped an assertion (a replica crash from a client's request).
test('ledger: a linked chain of 8189 pending transfers with change events, all or nothing',
    () => {
        const driver = new Driver(new Ledger({ accounts_max: 8, transfers_max: 20_000,
            change_events_max: 40_000 }));
        driver.accounts([{ id: 1n }, { id: 2n }]);
        const chain = (first: bigint, last_fails: boolean): TransferInput[] => {
            const transfers: TransferInput[] = [];
            for (let index = 0; index < 8189; index++) {
                const last = index === 8188;
                transfers.push({
                    id: first + BigInt(index), debit_account_id: 1n, credit_account_id: 2n,
                    amount: 1n, timeout: 60, flags: TF.pending | (last ? 0 : TF.linked),
                    ledger: last && last_fails ? 2 : 1,
                });
            }
            return transfers;
        };
        const created = driver.transfers(chain(1_000n, false));
        assert.equal(created.length, 8189);
        assert.ok(created.every((result) => result.status === TS.created));
        assert.equal(driver.ledger.transfers_count, 8189);
        const undone = driver.transfers(chain(100_000n, true));
        assert.ok(undone.every((result) => result.status !== TS.created));
        assert.equal(driver.ledger.transfers_count, 8189, 'the failed chain left nothing');
    });
