// The fault runner's history checker on hand-built histories: a history that holds passes, and
// each kind of violation the runner must catch (a lost write, a transfer applied twice, a stale
// read, an unbalanced read, a broken idempotence answer, writes ordered against real time, a
// phantom) is caught and named.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { TF, TransferStatus } from '../lib/testing/ledger_model';
import { history_check } from './faults/checker';
import type { Violation } from './faults/checker';
import { account_make, op_make, transfer_make } from './faults/history';
import type { Account, History, Op, Transfer } from './faults/history';

const created = TransferStatus.created;

function account_after(id: bigint, timestamp: bigint, debits: bigint, credits: bigint,
    debits_pending = 0n, credits_pending = 0n): Account {
    return {
        ...account_make(id, 1), timestamp, debits_posted: debits, credits_posted: credits,
        debits_pending, credits_pending,
    };
}

function write(index: number, invoke_ms: number, complete_ms: number, transfers: Transfer[],
    statuses: number[] | null): Op {
    const op = op_make(index, 'create_transfers', 'official', invoke_ms);
    op.transfers = transfers;
    if (statuses !== null) {
        op.outcome = 'ok';
        op.complete_ms = complete_ms;
        op.statuses = statuses;
    }
    return op;
}

function read_accounts(index: number, invoke_ms: number, complete_ms: number,
    found: Account[]): Op {
    const op = op_make(index, 'lookup_accounts', 'ours', invoke_ms);
    op.outcome = 'ok';
    op.complete_ms = complete_ms;
    op.ids = [1n, 2n];
    op.accounts_found = found;
    return op;
}

const t1 = transfer_make(1000n, 1n, 2n, 5n, 1);
const t2 = transfer_make(1001n, 1n, 2n, 3n, 1);
const stamped = (t: Transfer, timestamp: bigint): Transfer => ({ ...t, timestamp });

/**
 * Accounts 1 and 2 created at timestamps 1 and 2; transfer 1000 (5) acknowledged at 20 ms with
 * timestamp 100, then transfer 1001 (3) acknowledged at 40 ms with timestamp 200; a read of
 * both balances invoked at 50 ms.
 */
function history_valid(): History {
    const accounts = op_make(0, 'create_accounts', 'official', 0);
    accounts.accounts = [account_make(1n, 1), account_make(2n, 1)];
    accounts.outcome = 'ok';
    accounts.complete_ms = 5;
    accounts.statuses = [created, created];
    return {
        ops: [accounts, write(1, 10, 20, [t1], [created]), write(2, 30, 40, [t2], [created]),
            read_accounts(3, 50, 60, [account_after(1n, 1n, 8n, 0n),
                account_after(2n, 2n, 0n, 8n)])],
        accounts_final: [account_after(1n, 1n, 8n, 0n), account_after(2n, 2n, 0n, 8n)],
        transfers_final: [stamped(t1, 100n), stamped(t2, 200n)],
    };
}

function kinds(violations: Violation[]): string[] {
    return [...new Set(violations.map((violation) => violation.kind))].sort();
}

test('faults checker: a history that holds has no violation', () => {
    const result = history_check(history_valid());
    assert.deepEqual(result.violations, []);
    assert.equal(result.writes_acknowledged, 2);
    assert.equal(result.reads_checked, 1);
    assert.equal(result.transfers_committed, 2);
});

test('faults checker: a lost write (acknowledged created, missing after the run)', () => {
    const history = history_valid();
    history.transfers_final = [stamped(t1, 100n)];
    history.accounts_final = [account_after(1n, 1n, 5n, 0n), account_after(2n, 2n, 0n, 5n)];
    const result = history_check(history);
    assert.deepEqual(kinds(result.violations), ['lost_write', 'stale_read']);
    assert.equal(result.violations[0]!.detail, 'transfer 1001 acknowledged created is missing');
});

test('faults checker: a transfer applied twice shows in the final balances', () => {
    const history = history_valid();
    history.accounts_final = [account_after(1n, 1n, 13n, 0n), account_after(2n, 2n, 0n, 13n)];
    const result = history_check(history);
    assert.deepEqual(kinds(result.violations), ['final_account']);
    assert.equal(result.violations.length, 2);
    assert.match(result.violations[0]!.detail, /^account 1: read .*debits_posted=13/);
});

test('faults checker: a stale read (misses a write acknowledged before it began)', () => {
    const history = history_valid();
    // Invoked at 50 ms, after transfer 1001 was acknowledged at 40 ms, yet without it.
    history.ops[3] = read_accounts(3, 50, 60, [account_after(1n, 1n, 5n, 0n),
        account_after(2n, 2n, 0n, 5n)]);
    const result = history_check(history);
    assert.deepEqual(kinds(result.violations), ['stale_read']);
    assert.match(result.violations[0]!.detail,
        /match no state in prefixes \[2, 2\]; they are the state at prefix 1$/);
    // The same balances are fine for a read that began before 1001 was acknowledged.
    history.ops[3] = read_accounts(3, 35, 60, history.ops[3]!.accounts_found);
    assert.deepEqual(history_check(history).violations, []);
});

test('faults checker: a read of transfers that misses one acknowledged before it began', () => {
    const history = history_valid();
    const read = op_make(4, 'lookup_transfers', 'official', 45);
    read.outcome = 'ok';
    read.complete_ms = 48;
    read.ids = [1000n, 1001n];
    read.transfers_found = [stamped(t1, 100n)];
    history.ops.push(read);
    assert.deepEqual(kinds(history_check(history).violations), ['stale_read']);
    read.transfers_found = [stamped(t1, 100n), stamped(t2, 200n)];
    assert.deepEqual(history_check(history).violations, []);
    // A transfer read with a field the cluster never committed.
    read.transfers_found = [stamped(t1, 100n), { ...stamped(t2, 200n), amount: 4n }];
    assert.deepEqual(kinds(history_check(history).violations), ['stale_read']);
});

test('faults checker: debits must equal credits in every read', () => {
    const history = history_valid();
    history.ops[3] = read_accounts(3, 50, 60, [account_after(1n, 1n, 8n, 0n),
        account_after(2n, 2n, 0n, 7n)]);
    const result = history_check(history);
    assert.deepEqual(kinds(result.violations), ['stale_read', 'unbalanced_read']);
    assert(result.violations.some((violation) => violation.detail ===
        'ledger 1: debits - credits = 1 posted, 0 pending'));
});

test('faults checker: writes ordered against real time', () => {
    const history = history_valid();
    // 1001 was acknowledged (40 ms) before 1000 was invoked (45 ms), yet ordered after it.
    history.ops[1] = write(1, 45, 48, [t1], [created]);
    history.ops[3] = read_accounts(3, 50, 60, history.ops[3]!.accounts_found);
    const result = history_check(history);
    assert.deepEqual(kinds(result.violations), ['real_time_order']);
});

test('faults checker: a resubmission must answer exists or exists_with_different_*', () => {
    const history = history_valid();
    const resubmit = op_make(4, 'resubmit', 'ours', 70);
    resubmit.transfers = [{ ...t1, amount: 6n }];
    resubmit.statuses_expected = [TransferStatus.exists_with_different_amount];
    resubmit.outcome = 'ok';
    resubmit.complete_ms = 80;
    resubmit.statuses = [TransferStatus.exists_with_different_amount];
    history.ops.push(resubmit);
    assert.deepEqual(history_check(history).violations, []);
    resubmit.statuses = [created];
    assert.deepEqual(kinds(history_check(history).violations), ['idempotence']);
});

test('faults checker: a write without a reply is classified by whether it exists', () => {
    const history = history_valid();
    const pending = transfer_make(1002n, 1n, 2n, 2n, 1, TF.pending);
    const lost = transfer_make(1003n, 1n, 2n, 2n, 1);
    history.ops.push(write(4, 70, Infinity, [pending], null), write(5, 71, Infinity, [lost], null));
    history.transfers_final.push(stamped(pending, 300n));
    history.accounts_final = [account_after(1n, 1n, 8n, 0n, 2n, 0n),
        account_after(2n, 2n, 0n, 8n, 0n, 2n)];
    const result = history_check(history);
    assert.deepEqual(result.violations, []);
    assert.equal(result.writes_indeterminate, 2);
    assert.equal(result.indeterminate_committed, 1);
    assert.equal(result.indeterminate_not_committed, 1);
});

test('faults checker: a transfer that exists but was never submitted, or answered failed', () => {
    const history = history_valid();
    history.transfers_final.push(stamped(transfer_make(5000n, 1n, 2n, 1n, 1), 300n));
    assert(kinds(history_check(history).violations).includes('phantom_transfer'));
    const failed = history_valid();
    failed.ops[2]!.statuses = [TransferStatus.exceeds_credits];
    assert.deepEqual(kinds(history_check(failed).violations),
        ['failed_write_applied', 'status_mismatch']);
});
