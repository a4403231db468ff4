// The checker of a fault run's history. The cluster gives every committed event a unique,
// increasing timestamp, and a batch's events consecutive ones ending at the batch's timestamp,
// so the committed writes have one total order: by timestamp. The checker rebuilds that order
// from the transfers that exist after the run, replays it into the reference model
// (lib/testing/ledger_model.ts), and then holds the history to it:
// - every transfer acknowledged created exists (no lost write), none answered failed exists, and
//   the statuses the cluster answered are the model's for that batch at that point;
// - the final balances and transfers are the model's after the whole order (a transfer applied
//   twice, or once too few, shows as a balance off);
// - the order respects real time: a write acknowledged before another was invoked comes first;
// - every read equals the model at some prefix of the order that includes every write
//   acknowledged before the read was invoked and excludes every write invoked after the read
//   completed (strict serializability), and balances debits against credits per ledger;
// - a resubmitted id is answered exists, or exists_with_different_* for a changed field;
// - a write without a reply is classified committed or not by whether its ids exist.
// Tests only (allocates freely).
import assert from 'node:assert/strict';

import {
    LedgerModel, Op as ModelOp, TransferStatus, account_encode, transfer_encode,
} from '../../lib/testing/ledger_model';
import type { Account, History, Op, Transfer } from './history';

export interface Violation {
    kind: 'lost_write' | 'failed_write_applied' | 'phantom_transfer' | 'batch_timestamps' |
        'status_mismatch' | 'real_time_order' | 'final_account' | 'final_transfer' |
        'stale_read' | 'unbalanced_read' | 'idempotence' | 'unavailable' | 'not_converged' |
        'diverged' | 'refusal_unnamed';
    op: number;
    detail: string;
}

export interface CheckResult {
    violations: Violation[];
    writes_acknowledged: number;
    writes_indeterminate: number;
    indeterminate_committed: number;
    indeterminate_not_committed: number;
    reads_checked: number;
    resubmits_checked: number;
    transfers_committed: number;
}

/** A committed write: the op, its batch timestamp, and its place in the order. */
interface Committed {
    op: Op;
    timestamp: bigint;
    position: number;
}

const violations_max = 100;

class Checker {
    readonly history: History;
    readonly violations: Violation[] = [];
    readonly final = new Map<bigint, Transfer>();
    /** Transfer id to the op that submitted it (resubmissions aside). */
    readonly submitted = new Map<bigint, Op>();
    readonly order: Committed[] = [];
    readonly position_of_op = new Map<number, number>();
    /** keys[k]: the accounts' balances after the first k committed writes. */
    readonly keys: string[] = [];
    readonly model = new LedgerModel();
    account_ids: bigint[] = [];

    constructor(history: History) {
        this.history = history;
        for (const t of history.transfers_final) {
            assert(!this.final.has(t.id), 'the final reads list each transfer once');
            this.final.set(t.id, t);
        }
        for (const op of history.ops) {
            if (op.kind !== 'create_transfers') continue;
            for (const t of op.transfers) {
                assert(!this.submitted.has(t.id), 'the workload submits each id once');
                this.submitted.set(t.id, op);
            }
        }
    }

    violation(kind: Violation['kind'], op: number, detail: string): void {
        if (this.violations.length < violations_max) this.violations.push({ kind, op, detail });
    }
}

export function history_check(history: History): CheckResult {
    const checker = new Checker(history);
    const result: CheckResult = {
        violations: checker.violations, writes_acknowledged: 0, writes_indeterminate: 0,
        indeterminate_committed: 0, indeterminate_not_committed: 0, reads_checked: 0,
        resubmits_checked: 0, transfers_committed: history.transfers_final.length,
    };
    writes_classify(checker, result);
    if (!accounts_replay(checker)) return result;
    order_check(checker);
    for (const committed of checker.order) write_replay(checker, committed);
    final_check(checker);
    for (const op of history.ops) {
        if (op.outcome !== 'ok') continue;
        if (op.kind === 'resubmit') {
            result.resubmits_checked += 1;
            if (op.statuses[0] !== op.statuses_expected[0]) {
                checker.violation('idempotence', op.index, `id ${op.transfers[0]!.id} ` +
                    `resubmitted: status ${op.statuses[0]}, not ${op.statuses_expected[0]}`);
            }
        } else if (op.kind !== 'create_transfers' && op.kind !== 'create_accounts') {
            result.reads_checked += 1;
            read_check(checker, op);
        }
    }
    return result;
}

/** Lost and phantom writes; the committed writes in timestamp order; the unanswered counted. */
function writes_classify(checker: Checker, result: CheckResult): void {
    for (const t of checker.history.transfers_final) {
        if (!checker.submitted.has(t.id)) {
            checker.violation('phantom_transfer', -1, `transfer ${t.id} exists, never submitted`);
        }
    }
    for (const op of checker.history.ops) {
        if (op.kind !== 'create_transfers') continue;
        const committed = op.transfers.some((t) => checker.final.has(t.id));
        if (op.outcome === 'ok') {
            result.writes_acknowledged += 1;
            op.transfers.forEach((t, index) => {
                const created = op.statuses[index] === TransferStatus.created;
                if (created && !checker.final.has(t.id)) {
                    checker.violation('lost_write', op.index, `transfer ${t.id} acknowledged ` +
                        'created is missing');
                }
                if (!created && checker.final.has(t.id)) {
                    checker.violation('failed_write_applied', op.index, `transfer ${t.id} ` +
                        `answered ${op.statuses[index]} exists`);
                }
            });
        } else {
            result.writes_indeterminate += 1;
            if (committed) result.indeterminate_committed += 1;
            else result.indeterminate_not_committed += 1;
        }
        if (!committed) continue;
        const timestamp = batch_timestamp(checker, op);
        if (timestamp !== null) checker.order.push({ op, timestamp, position: -1 });
    }
    checker.order.sort((a, b) => (a.timestamp < b.timestamp ? -1 : 1));
    checker.order.forEach((committed, position) => {
        committed.position = position;
        checker.position_of_op.set(committed.op.index, position);
    });
}

/** The batch's timestamp (its last event's), the same from every committed event, or null. */
function batch_timestamp(checker: Checker, op: Op): bigint | null {
    let timestamp: bigint | null = null;
    const count = BigInt(op.transfers.length);
    for (let index = 0; index < op.transfers.length; index++) {
        const t = checker.final.get(op.transfers[index]!.id);
        if (t === undefined) continue;
        const batch = t.timestamp + count - 1n - BigInt(index);
        if (timestamp !== null && batch !== timestamp) {
            checker.violation('batch_timestamps', op.index, `events imply batch timestamps ` +
                `${timestamp} and ${batch}`);
            return null;
        }
        timestamp = batch;
    }
    return timestamp;
}

/** Creates the accounts in the model at the cluster's timestamps; false if they differ. */
function accounts_replay(checker: Checker): boolean {
    const op = checker.history.ops[0];
    assert(op !== undefined && op.kind === 'create_accounts');
    checker.account_ids = op.accounts.map((a) => a.id);
    const final = new Map(checker.history.accounts_final.map((a) => [a.id, a]));
    const last = final.get(op.accounts[op.accounts.length - 1]!.id);
    if (last === undefined || final.size !== op.accounts.length) {
        checker.violation('final_account', op.index, 'an account created is missing');
        return false;
    }
    const input = new Uint8Array(op.accounts.length * 128);
    op.accounts.forEach((a, index) => account_encode(a, input, index * 128));
    checker.model.execute(ModelOp.create_accounts, last.timestamp, input);
    checker.keys.push(balances_key(checker.account_ids, checker.model.accounts));
    return true;
}

/** A write acknowledged before another was invoked has the smaller timestamp. */
function order_check(checker: Checker): void {
    let invoke_max_ms = -Infinity;
    let invoke_max_op = -1;
    for (const committed of checker.order) {
        if (committed.op.complete_ms < invoke_max_ms) {
            checker.violation('real_time_order', committed.op.index, `acknowledged at ` +
                `${committed.op.complete_ms.toFixed(1)} ms, ordered after op ${invoke_max_op} ` +
                `invoked at ${invoke_max_ms.toFixed(1)} ms`);
        }
        if (committed.op.invoke_ms > invoke_max_ms) {
            invoke_max_ms = committed.op.invoke_ms;
            invoke_max_op = committed.op.index;
        }
    }
}

function write_replay(checker: Checker, committed: Committed): void {
    const op = committed.op;
    // keys[k] is the state after k writes: this write's is keys[position + 1].
    assert.equal(checker.keys.length, committed.position + 1);
    const input = new Uint8Array(op.transfers.length * 128);
    op.transfers.forEach((t, index) => transfer_encode(t, input, index * 128));
    const output = checker.model.execute(ModelOp.create_transfers, committed.timestamp, input);
    const view = new DataView(output.buffer, output.byteOffset, output.byteLength);
    op.transfers.forEach((t, index) => {
        const status = view.getUint32(index * 16 + 8, true);
        if ((status === TransferStatus.created) !== checker.final.has(t.id)) {
            checker.violation('status_mismatch', op.index, `transfer ${t.id}: the model ` +
                `answers ${status} at timestamp ${committed.timestamp}, yet it ` +
                `${checker.final.has(t.id) ? 'exists' : 'does not exist'}`);
        } else if (op.outcome === 'ok' && op.statuses[index] !== status) {
            checker.violation('status_mismatch', op.index, `transfer ${t.id}: answered ` +
                `${op.statuses[index]}, the model answers ${status}`);
        }
    });
    checker.keys.push(balances_key(checker.account_ids, checker.model.accounts));
}

/** The state after the whole order is the state read back after the run. */
function final_check(checker: Checker): void {
    for (const a of checker.history.accounts_final) {
        const expected = checker.model.accounts.get(a.id);
        if (expected === undefined || !records_equal(a, expected)) {
            checker.violation('final_account', -1, `account ${a.id}: read ${record_text(a)}, ` +
                `the model holds ${expected === undefined ? 'nothing' : record_text(expected)}`);
        }
    }
    for (const t of checker.history.transfers_final) {
        const expected = checker.model.transfers.get(t.id);
        if (expected === undefined || !records_equal(t, expected)) {
            checker.violation('final_transfer', -1, `transfer ${t.id}: read ${record_text(t)}, ` +
                `the model holds ${expected === undefined ? 'nothing' : record_text(expected)}`);
        }
    }
}

/** The prefixes [lo, hi] of the order a read may observe, from real time alone. */
function read_window(checker: Checker, read: Op): [number, number] {
    let lo = 0;
    let hi = checker.order.length;
    for (const committed of checker.order) {
        if (committed.op.complete_ms < read.invoke_ms) lo = Math.max(lo, committed.position + 1);
        if (committed.op.invoke_ms > read.complete_ms) hi = Math.min(hi, committed.position);
    }
    assert(lo >= 0 && hi <= checker.order.length);
    assert.equal(checker.keys.length, checker.order.length + 1, 'every prefix has its state');
    return [lo, hi];
}

function read_check(checker: Checker, read: Op): void {
    const [lo, hi] = read_window(checker, read);
    let window: [number, number] | null = [lo, hi];
    if (read.kind === 'lookup_accounts') {
        balances_check(checker, read);
        const key = balances_key(checker.account_ids,
            new Map(read.accounts_found.map((a) => [a.id, a])));
        let match = -1;
        for (let k = lo; k <= hi && match === -1; k++) if (checker.keys[k] === key) match = k;
        if (match === -1) {
            const anywhere = checker.keys.indexOf(key);
            window = null;
            checker.violation('stale_read', read.index, `balances ${key} match no state in ` +
                `prefixes [${lo}, ${hi}]` + (anywhere === -1 ? ' nor any other' :
                `; they are the state at prefix ${anywhere}`));
        }
    } else if (read.kind === 'lookup_transfers') {
        window = lookup_window(checker, read, window);
    } else {
        window = query_window(checker, read, window);
    }
    if (window !== null && window[0] > window[1]) {
        checker.violation('stale_read', read.index, `${read.kind} fits prefixes ` +
            `[${window[0]}, ${window[1]}] only, outside [${lo}, ${hi}] allowed by real time`);
    }
}

/** Debits equal credits, posted and pending, per ledger, in one read of every account. */
function balances_check(checker: Checker, read: Op): void {
    if (read.accounts_found.length !== checker.account_ids.length) {
        checker.violation('stale_read', read.index,
            `${read.accounts_found.length} of ${checker.account_ids.length} accounts found`);
        return;
    }
    const sums = new Map<number, bigint[]>();
    for (const a of read.accounts_found) {
        const sum = sums.get(a.ledger) ?? [0n, 0n];
        sum[0]! += a.debits_posted - a.credits_posted;
        sum[1]! += a.debits_pending - a.credits_pending;
        sums.set(a.ledger, sum);
    }
    for (const [ledger, sum] of sums) {
        if (sum[0] !== 0n || sum[1] !== 0n) {
            checker.violation('unbalanced_read', read.index, `ledger ${ledger}: debits - ` +
                `credits = ${sum[0]} posted, ${sum[1]} pending`);
        }
    }
}

/** Narrows the window to prefixes where exactly the found ids exist. */
function lookup_window(checker: Checker, read: Op, window: [number, number]): [number, number] {
    const found = new Map(read.transfers_found.map((t) => [t.id, t]));
    for (const id of read.ids) {
        const position = transfer_position(checker, id);
        const t = found.get(id);
        if (t !== undefined) {
            const expected = checker.model.transfers.get(id);
            if (position === -1 || expected === undefined || !records_equal(t, expected)) {
                checker.violation('stale_read', read.index, `transfer ${id} read as ` +
                    `${record_text(t)}, committed as ${expected ? record_text(expected) : '-'}`);
                continue;
            }
            window[0] = Math.max(window[0], position + 1);
        } else if (position !== -1) {
            window[1] = Math.min(window[1], position);
        }
    }
    return window;
}

/** The newest `limit` transfers of a ledger: the newest one found fixes the prefix. */
function query_window(checker: Checker, read: Op, window: [number, number]): [number, number] {
    const ledger = [...checker.model.transfers.values()]
        .filter((t) => t.ledger === read.query_ledger)
        .sort((a, b) => (a.timestamp < b.timestamp ? -1 : 1));
    if (read.transfers_found.length === 0) {
        if (ledger.length > 0) {
            window[1] = Math.min(window[1], transfer_position(checker, ledger[0]!.id));
        }
        return window;
    }
    const newest = ledger.findIndex((t) => t.id === read.transfers_found[0]!.id);
    const expected = newest === -1 ? [] :
        ledger.slice(Math.max(0, newest + 1 - read.query_limit), newest + 1).reverse();
    const same = expected.length === read.transfers_found.length &&
        expected.every((t, index) => records_equal(t, read.transfers_found[index]!));
    if (!same) {
        checker.violation('stale_read', read.index, `query of ledger ${read.query_ledger} ` +
            `read ids ${read.transfers_found.map((t) => t.id).join(',')}, no prefix holds them`);
        return window;
    }
    window[0] = Math.max(window[0], transfer_position(checker, ledger[newest]!.id) + 1);
    if (newest + 1 < ledger.length) {
        window[1] = Math.min(window[1], transfer_position(checker, ledger[newest + 1]!.id));
    }
    return window;
}

/** The position in the order of the write that created a transfer, or -1. */
function transfer_position(checker: Checker, id: bigint): number {
    if (!checker.final.has(id)) return -1;
    const op = checker.submitted.get(id);
    return op === undefined ? -1 : checker.position_of_op.get(op.index) ?? -1;
}

function balances_key(ids: readonly bigint[], accounts: ReadonlyMap<bigint, Account>): string {
    return ids.map((id) => {
        const a = accounts.get(id);
        return a === undefined ? '-' :
            `${a.debits_pending}/${a.debits_posted}/${a.credits_pending}/${a.credits_posted}`;
    }).join(' ');
}

function records_equal(a: Account | Transfer, b: Account | Transfer): boolean {
    return record_text(a) === record_text(b);
}

function record_text(record: Account | Transfer): string {
    return Object.entries(record).sort(([x], [y]) => (x < y ? -1 : 1))
        .map(([key, value]) => `${key}=${value}`).join(' ');
}
