// The history a fault run records: every operation a client invoked, when (ms since the run
// began), when it completed (Infinity if it never did), and what it returned. The checker reads
// only this and the final reads taken after every fault healed. Tests only.
import type { Account, Transfer } from '../../lib/testing/ledger_model';

export type { Account, Transfer };

export type OpKind = 'create_accounts' | 'create_transfers' | 'resubmit' | 'lookup_accounts' |
    'lookup_transfers' | 'query_transfers';

/** ok: a reply came; indeterminate: none came (a timeout, an error, or the run ended first). */
export type Outcome = 'ok' | 'indeterminate';

export interface Op {
    index: number;
    kind: OpKind;
    client: 'official' | 'ours';
    invoke_ms: number;
    complete_ms: number;
    outcome: Outcome;
    error: string;
    /** Writes (create_accounts: accounts; create_transfers and resubmit: transfers). */
    accounts: Account[];
    transfers: Transfer[];
    /** The status of each event, for a write that was answered. */
    statuses: number[];
    /** Resubmissions: the status each event must be answered with. */
    statuses_expected: number[];
    /** lookup_accounts, lookup_transfers: the ids asked for. */
    ids: bigint[];
    /** Reads that were answered: what came back. */
    accounts_found: Account[];
    transfers_found: Transfer[];
    /** query_transfers: the filter's ledger and limit (newest first). */
    query_ledger: number;
    query_limit: number;
}

export function op_make(index: number, kind: OpKind, client: Op['client'],
    invoke_ms: number): Op {
    return {
        index, kind, client, invoke_ms, complete_ms: Infinity, outcome: 'indeterminate', error: '',
        accounts: [], transfers: [], statuses: [], statuses_expected: [], ids: [],
        accounts_found: [], transfers_found: [], query_ledger: 0, query_limit: 0,
    };
}

/** What the checker is given: the history, and the state read back after every heal. */
export interface History {
    ops: Op[];
    /** Every account of the workload, as read after the run. */
    accounts_final: Account[];
    /** Every transfer id ever submitted that exists after the run. */
    transfers_final: Transfer[];
}

export function account_make(id: bigint, ledger: number): Account {
    return {
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger, code: 1,
        flags: 0, timestamp: 0n,
    };
}

export function transfer_make(id: bigint, debit: bigint, credit: bigint, amount: bigint,
    ledger: number, flags = 0, pending_id = 0n): Transfer {
    return {
        id, debit_account_id: debit, credit_account_id: credit, amount, pending_id,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger, code: 1, flags,
        timestamp: 0n,
    };
}

/** Plain copies (a client's result objects may carry extra fields). */
export function transfer_copy(t: Transfer): Transfer {
    return {
        id: t.id, debit_account_id: t.debit_account_id, credit_account_id: t.credit_account_id,
        amount: t.amount, pending_id: t.pending_id, user_data_128: t.user_data_128,
        user_data_64: t.user_data_64, user_data_32: t.user_data_32, timeout: t.timeout,
        ledger: t.ledger, code: t.code, flags: t.flags, timestamp: t.timestamp,
    };
}

export function account_copy(a: Account): Account {
    return {
        id: a.id, debits_pending: a.debits_pending, debits_posted: a.debits_posted,
        credits_pending: a.credits_pending, credits_posted: a.credits_posted,
        user_data_128: a.user_data_128, user_data_64: a.user_data_64,
        user_data_32: a.user_data_32, reserved: a.reserved, ledger: a.ledger, code: a.code,
        flags: a.flags, timestamp: a.timestamp,
    };
}
