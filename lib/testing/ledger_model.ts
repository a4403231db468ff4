// A plainly written reference model of the ledger, with TigerBeetle 0.17.9 semantics.
//
// It deliberately shares no code with lib/ledger: objects are plain records of BigInts kept in
// Maps and arrays, every rule is written out in the order TigerBeetle checks it, and nothing is
// optimised. Its only job is to be obviously right, so that the randomized test can compare the
// optimised ledger against it byte for byte. It follows the same `execute` contract as
// lib/ledger/ledger.ts: for create_* the timestamp is that of the batch's last event; for the
// pulse it is the prepare timestamp.
import assert from 'node:assert/strict';

export const Op = {
    pulse: 128, get_change_events: 137, lookup_accounts: 140, lookup_transfers: 141,
    get_account_transfers: 142, get_account_balances: 143, query_accounts: 144,
    query_transfers: 145, create_accounts: 146, create_transfers: 147,
} as const;

export const AF = {
    linked: 1, debits_must_not_exceed_credits: 2, credits_must_not_exceed_debits: 4, history: 8,
    imported: 16, closed: 32,
} as const;

export const TF = {
    linked: 1, pending: 2, post_pending_transfer: 4, void_pending_transfer: 8,
    balancing_debit: 16, balancing_credit: 32, closing_debit: 64, closing_credit: 128,
    imported: 256,
} as const;

/** CreateAccountStatus values (docs/wire-protocol.md §6.5). */
export const AccountStatus = {
    created: 0xffffffff, linked_event_failed: 1, linked_event_chain_open: 2,
    imported_event_expected: 22, imported_event_not_expected: 23, timestamp_must_be_zero: 3,
    imported_event_timestamp_out_of_range: 24, imported_event_timestamp_must_not_advance: 25,
    reserved_field: 4, reserved_flag: 5, id_must_not_be_zero: 6, id_must_not_be_int_max: 7,
    exists_with_different_flags: 15, exists_with_different_user_data_128: 16,
    exists_with_different_user_data_64: 17, exists_with_different_user_data_32: 18,
    exists_with_different_ledger: 19, exists_with_different_code: 20, exists: 21,
    flags_are_mutually_exclusive: 8, debits_pending_must_be_zero: 9,
    debits_posted_must_be_zero: 10, credits_pending_must_be_zero: 11,
    credits_posted_must_be_zero: 12, ledger_must_not_be_zero: 13, code_must_not_be_zero: 14,
    imported_event_timestamp_must_not_regress: 26,
} as const;

/** CreateTransferStatus values (docs/wire-protocol.md §6.5). */
export const TransferStatus = {
    created: 0xffffffff, linked_event_failed: 1, linked_event_chain_open: 2,
    imported_event_expected: 56, imported_event_not_expected: 57, timestamp_must_be_zero: 3,
    imported_event_timestamp_out_of_range: 58, imported_event_timestamp_must_not_advance: 59,
    reserved_flag: 4, id_must_not_be_zero: 5, id_must_not_be_int_max: 6,
    exists_with_different_flags: 36, exists_with_different_pending_id: 40,
    exists_with_different_timeout: 44, exists_with_different_debit_account_id: 37,
    exists_with_different_credit_account_id: 38, exists_with_different_amount: 39,
    exists_with_different_user_data_128: 41, exists_with_different_user_data_64: 42,
    exists_with_different_user_data_32: 43, exists_with_different_ledger: 67,
    exists_with_different_code: 45, exists: 46, id_already_failed: 68,
    flags_are_mutually_exclusive: 7, debit_account_id_must_not_be_zero: 8,
    debit_account_id_must_not_be_int_max: 9, credit_account_id_must_not_be_zero: 10,
    credit_account_id_must_not_be_int_max: 11, accounts_must_be_different: 12,
    pending_id_must_be_zero: 13, pending_id_must_not_be_zero: 14,
    pending_id_must_not_be_int_max: 15, pending_id_must_be_different: 16,
    timeout_reserved_for_pending_transfer: 17, closing_transfer_must_be_pending: 64,
    ledger_must_not_be_zero: 19, code_must_not_be_zero: 20, debit_account_not_found: 21,
    credit_account_not_found: 22, accounts_must_have_the_same_ledger: 23,
    transfer_must_have_the_same_ledger_as_accounts: 24, pending_transfer_not_found: 25,
    pending_transfer_not_pending: 26, pending_transfer_has_different_debit_account_id: 27,
    pending_transfer_has_different_credit_account_id: 28,
    pending_transfer_has_different_ledger: 29, pending_transfer_has_different_code: 30,
    exceeds_pending_transfer_amount: 31, pending_transfer_has_different_amount: 32,
    pending_transfer_already_posted: 33, pending_transfer_already_voided: 34,
    pending_transfer_expired: 35, imported_event_timestamp_must_not_regress: 60,
    imported_event_timestamp_must_postdate_debit_account: 61,
    imported_event_timestamp_must_postdate_credit_account: 62,
    imported_event_timeout_must_be_zero: 63, debit_account_already_closed: 65,
    credit_account_already_closed: 66, overflows_debits_pending: 47,
    overflows_credits_pending: 48, overflows_debits_posted: 49, overflows_credits_posted: 50,
    overflows_debits: 51, overflows_credits: 52, overflows_timeout: 53, exceeds_credits: 54,
    exceeds_debits: 55,
} as const;

const transient_statuses = new Set<number>([21, 22, 25, 54, 55, 65, 66]);
export const u128_max = (1n << 128n) - 1n;
export const timestamp_max = (1n << 63n) - 1n;
const ns_per_s = 1_000_000_000n;

export interface Account {
    id: bigint; debits_pending: bigint; debits_posted: bigint; credits_pending: bigint;
    credits_posted: bigint; user_data_128: bigint; user_data_64: bigint; user_data_32: number;
    reserved: number; ledger: number; code: number; flags: number; timestamp: bigint;
}

export interface Transfer {
    id: bigint; debit_account_id: bigint; credit_account_id: bigint; amount: bigint;
    pending_id: bigint; user_data_128: bigint; user_data_64: bigint; user_data_32: number;
    timeout: number; ledger: number; code: number; flags: number; timestamp: bigint;
}

type Pending = 'pending' | 'posted' | 'voided' | 'expired';

interface Balance {
    debits_pending: bigint; debits_posted: bigint; credits_pending: bigint;
    credits_posted: bigint;
}

/** A balance snapshot of both accounts right after a transfer, keyed by transfer timestamp. */
interface HistoryRow { debit: Balance; credit: Balance }

// ------------------------------------------------------------------------- byte codecs

function read_u128(bytes: Uint8Array, offset: number): bigint {
    let value = 0n;
    for (let i = 15; i >= 0; i--) value = (value << 8n) | BigInt(bytes[offset + i]);
    return value;
}

function read_u64(bytes: Uint8Array, offset: number): bigint {
    let value = 0n;
    for (let i = 7; i >= 0; i--) value = (value << 8n) | BigInt(bytes[offset + i]);
    return value;
}

function read_u32(bytes: Uint8Array, offset: number): number {
    return (bytes[offset] | (bytes[offset + 1] << 8) | (bytes[offset + 2] << 16) |
        (bytes[offset + 3] << 24)) >>> 0;
}

function read_u16(bytes: Uint8Array, offset: number): number {
    return bytes[offset] | (bytes[offset + 1] << 8);
}

function write_uint(bytes: Uint8Array, offset: number, size: number, value: bigint | number) {
    let v = BigInt(value);
    assert(v >= 0n && v < (1n << BigInt(size * 8)));
    for (let i = 0; i < size; i++) {
        bytes[offset + i] = Number(v & 0xffn);
        v >>= 8n;
    }
}

export function account_decode(bytes: Uint8Array, offset: number): Account {
    return {
        id: read_u128(bytes, offset), debits_pending: read_u128(bytes, offset + 16),
        debits_posted: read_u128(bytes, offset + 32),
        credits_pending: read_u128(bytes, offset + 48),
        credits_posted: read_u128(bytes, offset + 64),
        user_data_128: read_u128(bytes, offset + 80), user_data_64: read_u64(bytes, offset + 96),
        user_data_32: read_u32(bytes, offset + 104), reserved: read_u32(bytes, offset + 108),
        ledger: read_u32(bytes, offset + 112), code: read_u16(bytes, offset + 116),
        flags: read_u16(bytes, offset + 118), timestamp: read_u64(bytes, offset + 120),
    };
}

export function account_encode(a: Account, bytes: Uint8Array, offset: number): void {
    write_uint(bytes, offset, 16, a.id);
    write_uint(bytes, offset + 16, 16, a.debits_pending);
    write_uint(bytes, offset + 32, 16, a.debits_posted);
    write_uint(bytes, offset + 48, 16, a.credits_pending);
    write_uint(bytes, offset + 64, 16, a.credits_posted);
    write_uint(bytes, offset + 80, 16, a.user_data_128);
    write_uint(bytes, offset + 96, 8, a.user_data_64);
    write_uint(bytes, offset + 104, 4, a.user_data_32);
    write_uint(bytes, offset + 108, 4, a.reserved);
    write_uint(bytes, offset + 112, 4, a.ledger);
    write_uint(bytes, offset + 116, 2, a.code);
    write_uint(bytes, offset + 118, 2, a.flags);
    write_uint(bytes, offset + 120, 8, a.timestamp);
}

export function transfer_decode(bytes: Uint8Array, offset: number): Transfer {
    return {
        id: read_u128(bytes, offset), debit_account_id: read_u128(bytes, offset + 16),
        credit_account_id: read_u128(bytes, offset + 32), amount: read_u128(bytes, offset + 48),
        pending_id: read_u128(bytes, offset + 64), user_data_128: read_u128(bytes, offset + 80),
        user_data_64: read_u64(bytes, offset + 96), user_data_32: read_u32(bytes, offset + 104),
        timeout: read_u32(bytes, offset + 108), ledger: read_u32(bytes, offset + 112),
        code: read_u16(bytes, offset + 116), flags: read_u16(bytes, offset + 118),
        timestamp: read_u64(bytes, offset + 120),
    };
}

export function transfer_encode(t: Transfer, bytes: Uint8Array, offset: number): void {
    write_uint(bytes, offset, 16, t.id);
    write_uint(bytes, offset + 16, 16, t.debit_account_id);
    write_uint(bytes, offset + 32, 16, t.credit_account_id);
    write_uint(bytes, offset + 48, 16, t.amount);
    write_uint(bytes, offset + 64, 16, t.pending_id);
    write_uint(bytes, offset + 80, 16, t.user_data_128);
    write_uint(bytes, offset + 96, 8, t.user_data_64);
    write_uint(bytes, offset + 104, 4, t.user_data_32);
    write_uint(bytes, offset + 108, 4, t.timeout);
    write_uint(bytes, offset + 112, 4, t.ledger);
    write_uint(bytes, offset + 116, 2, t.code);
    write_uint(bytes, offset + 118, 2, t.flags);
    write_uint(bytes, offset + 120, 8, t.timestamp);
}

export interface AccountFilter {
    account_id: bigint; user_data_128: bigint; user_data_64: bigint; user_data_32: number;
    code: number; reserved_zero: boolean; timestamp_min: bigint; timestamp_max: bigint;
    limit: number; flags: number;
}

function account_filter_decode(bytes: Uint8Array): AccountFilter {
    let reserved_zero = true;
    for (let i = 46; i < 104; i++) if (bytes[i] !== 0) reserved_zero = false;
    return {
        account_id: read_u128(bytes, 0), user_data_128: read_u128(bytes, 16),
        user_data_64: read_u64(bytes, 32), user_data_32: read_u32(bytes, 40),
        code: read_u16(bytes, 44), reserved_zero, timestamp_min: read_u64(bytes, 104),
        timestamp_max: read_u64(bytes, 112), limit: read_u32(bytes, 120),
        flags: read_u32(bytes, 124),
    };
}

export interface QueryFilter {
    user_data_128: bigint; user_data_64: bigint; user_data_32: number; ledger: number;
    code: number; reserved_zero: boolean; timestamp_min: bigint; timestamp_max: bigint;
    limit: number; flags: number;
}

function query_filter_decode(bytes: Uint8Array): QueryFilter {
    let reserved_zero = true;
    for (let i = 34; i < 40; i++) if (bytes[i] !== 0) reserved_zero = false;
    return {
        user_data_128: read_u128(bytes, 0), user_data_64: read_u64(bytes, 16),
        user_data_32: read_u32(bytes, 24), ledger: read_u32(bytes, 28),
        code: read_u16(bytes, 32), reserved_zero, timestamp_min: read_u64(bytes, 40),
        timestamp_max: read_u64(bytes, 48), limit: read_u32(bytes, 56),
        flags: read_u32(bytes, 60),
    };
}

// ------------------------------------------------------------------------- the model

function has(flags: number, flag: number): boolean {
    return (flags & flag) !== 0;
}

function timestamp_valid(timestamp: bigint): boolean {
    return timestamp >= 1n && timestamp <= timestamp_max;
}

function balance_of(a: Account): Balance {
    return {
        debits_pending: a.debits_pending, debits_posted: a.debits_posted,
        credits_pending: a.credits_pending, credits_posted: a.credits_posted,
    };
}

const result_max = 8189;

export class LedgerModel {
    readonly accounts = new Map<bigint, Account>();
    readonly transfers = new Map<bigint, Transfer>();
    readonly orphans = new Set<bigint>();
    readonly pending = new Map<bigint, Pending>();
    readonly history = new Map<bigint, HistoryRow>();
    private readonly timestamps_of_accounts = new Set<bigint>();
    private readonly timestamps_of_transfers = new Set<bigint>();
    /** Undo actions of the open linked chain, or null outside a chain. */
    private undo: Array<() => void> | null = null;

    /** Executes one batch and returns the reply body (same contract as Ledger.execute). */
    execute(operation: number, timestamp: bigint, input: Uint8Array): Uint8Array {
        assert(timestamp_valid(timestamp));
        switch (operation) {
            case Op.create_accounts:
                return this.execute_create(false, timestamp, input);
            case Op.create_transfers:
                return this.execute_create(true, timestamp, input);
            case Op.lookup_accounts:
                return this.lookup(input, (id) => this.accounts.get(id), account_encode);
            case Op.lookup_transfers:
                return this.lookup(input, (id) => this.transfers.get(id), transfer_encode);
            case Op.get_account_transfers:
            case Op.get_account_balances:
                if (input.length !== 128) return new Uint8Array(0);
                return this.account_filter(operation, account_filter_decode(input));
            case Op.query_accounts:
            case Op.query_transfers:
                if (input.length !== 64) return new Uint8Array(0);
                return this.query(operation, query_filter_decode(input));
            case Op.pulse:
                this.pulse(timestamp);
                return new Uint8Array(0);
            case Op.get_change_events:
                // The real ledger keeps no change events unless configured to; the model has none.
                return new Uint8Array(0);
            default:
                throw new Error(`model: unknown operation ${operation}`);
        }
    }

    private execute_create(transfers: boolean, timestamp: bigint, input: Uint8Array): Uint8Array {
        assert(input.length % 128 === 0);
        const count = input.length / 128;
        const output = new Uint8Array(count * 16);
        const statuses: number[] = [];
        const timestamps: bigint[] = [];
        const S = transfers ? TransferStatus : AccountStatus;
        const batch_imported = count > 0 &&
            has(read_u16(input, 118), transfers ? TF.imported : AF.imported);
        let chain_start: number | null = null;
        let chain_broken = false;
        for (let index = 0; index < count; index++) {
            const event = input.subarray(index * 128, index * 128 + 128);
            const flags = read_u16(event, 118);
            const linked = has(flags, 1);
            const imported = has(flags, transfers ? TF.imported : AF.imported);
            const event_timestamp = timestamp - BigInt(count) + BigInt(index) + 1n;
            const event_claimed = read_u64(event, 120);
            let status: number;
            let result_timestamp = event_timestamp;
            if (linked && chain_start === null) {
                chain_start = index;
                this.undo = [];
            }
            if (linked && index === count - 1) {
                status = S.linked_event_chain_open;
            } else if (chain_broken) {
                status = S.linked_event_failed;
            } else if (batch_imported !== imported) {
                status = imported ? S.imported_event_not_expected : S.imported_event_expected;
            } else if (imported && !timestamp_valid(event_claimed)) {
                status = S.imported_event_timestamp_out_of_range;
            } else if (imported && event_claimed >= timestamp) {
                status = S.imported_event_timestamp_must_not_advance;
            } else if (!imported && event_claimed !== 0n) {
                status = S.timestamp_must_be_zero;
            } else {
                const result = transfers ?
                    this.create_transfer(event_timestamp, transfer_decode(event, 0)) :
                    this.create_account(event_timestamp, account_decode(event, 0));
                status = result.status;
                if (result.timestamp !== null) result_timestamp = result.timestamp;
            }
            statuses.push(status);
            timestamps.push(result_timestamp);
            if (status !== S.created) {
                if (chain_start !== null && !chain_broken) {
                    chain_broken = true;
                    this.rollback();
                    for (let i = chain_start; i < index; i++) statuses[i] = S.linked_event_failed;
                }
                if (transfers && transient_statuses.has(status)) {
                    this.orphans.add(read_u128(event, 0));
                }
            }
            if (chain_start !== null && (!linked || status === S.linked_event_chain_open)) {
                chain_start = null;
                chain_broken = false;
                this.undo = null;
            }
        }
        assert(chain_start === null && this.undo === null);
        for (let i = 0; i < count; i++) {
            write_uint(output, i * 16, 8, timestamps[i]);
            write_uint(output, i * 16 + 8, 4, statuses[i]);
        }
        return output;
    }

    private rollback(): void {
        assert(this.undo !== null);
        while (this.undo.length > 0) this.undo.pop()!();
    }

    /** Records how to undo a change, if inside a linked chain. */
    private on_rollback(action: () => void): void {
        if (this.undo !== null) this.undo.push(action);
    }

    /** Updates an account in place, remembering its old value for a rollback. */
    private account_update(account: Account, change: (a: Account) => void): void {
        const before = { ...account };
        this.on_rollback(() => Object.assign(account, before));
        change(account);
    }

    private pending_set(id: bigint, status: Pending): void {
        const before = this.pending.get(id);
        this.on_rollback(() => {
            if (before === undefined) this.pending.delete(id); else this.pending.set(id, before);
        });
        this.pending.set(id, status);
    }

    private account_timestamp_max(): bigint {
        let max = 0n;
        for (const t of this.timestamps_of_accounts) if (t > max) max = t;
        return max;
    }

    private transfer_timestamp_max(): bigint {
        let max = 0n;
        for (const t of this.timestamps_of_transfers) if (t > max) max = t;
        return max;
    }

    private create_account(
        event_timestamp: bigint, a: Account,
    ): { status: number; timestamp: bigint | null } {
        const S = AccountStatus;
        const fail = (status: number) => ({ status, timestamp: null });
        if (a.reserved !== 0) return fail(S.reserved_field);
        if ((a.flags & 0xffc0) !== 0) return fail(S.reserved_flag);
        if (a.id === 0n) return fail(S.id_must_not_be_zero);
        if (a.id === u128_max) return fail(S.id_must_not_be_int_max);
        const e = this.accounts.get(a.id);
        if (e !== undefined) {
            if (a.flags !== e.flags) return fail(S.exists_with_different_flags);
            if (a.user_data_128 !== e.user_data_128) {
                return fail(S.exists_with_different_user_data_128);
            }
            if (a.user_data_64 !== e.user_data_64) {
                return fail(S.exists_with_different_user_data_64);
            }
            if (a.user_data_32 !== e.user_data_32) {
                return fail(S.exists_with_different_user_data_32);
            }
            if (a.ledger !== e.ledger) return fail(S.exists_with_different_ledger);
            if (a.code !== e.code) return fail(S.exists_with_different_code);
            return { status: S.exists, timestamp: e.timestamp };
        }
        if (has(a.flags, AF.debits_must_not_exceed_credits) &&
            has(a.flags, AF.credits_must_not_exceed_debits)) {
            return fail(S.flags_are_mutually_exclusive);
        }
        if (a.debits_pending !== 0n) return fail(S.debits_pending_must_be_zero);
        if (a.debits_posted !== 0n) return fail(S.debits_posted_must_be_zero);
        if (a.credits_pending !== 0n) return fail(S.credits_pending_must_be_zero);
        if (a.credits_posted !== 0n) return fail(S.credits_posted_must_be_zero);
        if (a.ledger === 0) return fail(S.ledger_must_not_be_zero);
        if (a.code === 0) return fail(S.code_must_not_be_zero);
        let timestamp = event_timestamp;
        if (has(a.flags, AF.imported)) {
            // Imported accounts must come after every account, and not collide with a transfer.
            if (a.timestamp <= this.account_timestamp_max() ||
                this.timestamps_of_transfers.has(a.timestamp)) {
                return fail(S.imported_event_timestamp_must_not_regress);
            }
            timestamp = a.timestamp;
        }
        const account: Account = { ...a, timestamp };
        this.accounts.set(a.id, account);
        this.timestamps_of_accounts.add(timestamp);
        this.on_rollback(() => {
            this.accounts.delete(a.id);
            this.timestamps_of_accounts.delete(timestamp);
        });
        return { status: S.created, timestamp };
    }

    private create_transfer(
        event_timestamp: bigint, t: Transfer,
    ): { status: number; timestamp: bigint | null } {
        const S = TransferStatus;
        const fail = (status: number) => ({ status, timestamp: null });
        if ((t.flags & 0xfe00) !== 0) return fail(S.reserved_flag);
        if (t.id === 0n) return fail(S.id_must_not_be_zero);
        if (t.id === u128_max) return fail(S.id_must_not_be_int_max);
        const e = this.transfers.get(t.id);
        if (e !== undefined) return this.transfer_exists(t, e);
        if (this.orphans.has(t.id)) return fail(S.id_already_failed);
        if (has(t.flags, TF.post_pending_transfer) || has(t.flags, TF.void_pending_transfer)) {
            return this.post_or_void(event_timestamp, t);
        }
        if (t.debit_account_id === 0n) return fail(S.debit_account_id_must_not_be_zero);
        if (t.debit_account_id === u128_max) return fail(S.debit_account_id_must_not_be_int_max);
        if (t.credit_account_id === 0n) return fail(S.credit_account_id_must_not_be_zero);
        if (t.credit_account_id === u128_max) return fail(S.credit_account_id_must_not_be_int_max);
        if (t.credit_account_id === t.debit_account_id) return fail(S.accounts_must_be_different);
        if (t.pending_id !== 0n) return fail(S.pending_id_must_be_zero);
        if (!has(t.flags, TF.pending)) {
            if (t.timeout !== 0) return fail(S.timeout_reserved_for_pending_transfer);
            if (has(t.flags, TF.closing_debit) || has(t.flags, TF.closing_credit)) {
                return fail(S.closing_transfer_must_be_pending);
            }
        }
        if (t.ledger === 0) return fail(S.ledger_must_not_be_zero);
        if (t.code === 0) return fail(S.code_must_not_be_zero);
        const dr = this.accounts.get(t.debit_account_id);
        if (dr === undefined) return fail(S.debit_account_not_found);
        const cr = this.accounts.get(t.credit_account_id);
        if (cr === undefined) return fail(S.credit_account_not_found);
        if (dr.ledger !== cr.ledger) return fail(S.accounts_must_have_the_same_ledger);
        if (t.ledger !== dr.ledger) return fail(S.transfer_must_have_the_same_ledger_as_accounts);
        let timestamp = event_timestamp;
        if (has(t.flags, TF.imported)) {
            if (t.timestamp <= this.transfer_timestamp_max() ||
                this.timestamps_of_accounts.has(t.timestamp)) {
                return fail(S.imported_event_timestamp_must_not_regress);
            }
            if (t.timestamp <= dr.timestamp) {
                return fail(S.imported_event_timestamp_must_postdate_debit_account);
            }
            if (t.timestamp <= cr.timestamp) {
                return fail(S.imported_event_timestamp_must_postdate_credit_account);
            }
            if (t.timeout !== 0) return fail(S.imported_event_timeout_must_be_zero);
            timestamp = t.timestamp;
        }
        if (has(dr.flags, AF.closed)) return fail(S.debit_account_already_closed);
        if (has(cr.flags, AF.closed)) return fail(S.credit_account_already_closed);
        let amount = t.amount;
        if (has(t.flags, TF.balancing_debit)) {
            const debits = dr.debits_posted + dr.debits_pending;
            const room = dr.credits_posted > debits ? dr.credits_posted - debits : 0n;
            if (room < amount) amount = room;
        }
        if (has(t.flags, TF.balancing_credit)) {
            const credits = cr.credits_posted + cr.credits_pending;
            const room = cr.debits_posted > credits ? cr.debits_posted - credits : 0n;
            if (room < amount) amount = room;
        }
        const status = this.transfer_limits(t, dr, cr, amount, timestamp);
        if (status !== null) return fail(status);
        this.transfer_insert({ ...t, amount, timestamp });
        const pending = has(t.flags, TF.pending);
        if (pending) this.pending_set(t.id, 'pending');
        this.account_update(dr, (a) => {
            if (pending) a.debits_pending += amount; else a.debits_posted += amount;
            if (has(t.flags, TF.closing_debit)) a.flags |= AF.closed;
        });
        this.account_update(cr, (a) => {
            if (pending) a.credits_pending += amount; else a.credits_posted += amount;
            if (has(t.flags, TF.closing_credit)) a.flags |= AF.closed;
        });
        this.history_record(timestamp, dr, cr);
        return { status: S.created, timestamp };
    }

    /** The overflow and balance-limit checks of a new transfer, in TigerBeetle's order. */
    private transfer_limits(
        t: Transfer, dr: Account, cr: Account, amount: bigint, timestamp: bigint,
    ): number | null {
        const S = TransferStatus;
        if (has(t.flags, TF.pending)) {
            if (amount + dr.debits_pending > u128_max) return S.overflows_debits_pending;
            if (amount + cr.credits_pending > u128_max) return S.overflows_credits_pending;
        }
        if (amount + dr.debits_posted > u128_max) return S.overflows_debits_posted;
        if (amount + cr.credits_posted > u128_max) return S.overflows_credits_posted;
        if (amount + dr.debits_pending + dr.debits_posted > u128_max) return S.overflows_debits;
        if (amount + cr.credits_pending + cr.credits_posted > u128_max) return S.overflows_credits;
        if (timestamp + BigInt(t.timeout) * ns_per_s > timestamp_max) return S.overflows_timeout;
        if (has(dr.flags, AF.debits_must_not_exceed_credits) &&
            dr.debits_pending + dr.debits_posted + amount > dr.credits_posted) {
            return S.exceeds_credits;
        }
        if (has(cr.flags, AF.credits_must_not_exceed_debits) &&
            cr.credits_pending + cr.credits_posted + amount > cr.debits_posted) {
            return S.exceeds_debits;
        }
        return null;
    }

    private transfer_insert(transfer: Transfer): void {
        this.transfers.set(transfer.id, transfer);
        this.timestamps_of_transfers.add(transfer.timestamp);
        this.on_rollback(() => {
            this.transfers.delete(transfer.id);
            this.timestamps_of_transfers.delete(transfer.timestamp);
        });
    }

    private history_record(timestamp: bigint, dr: Account, cr: Account): void {
        if (!has(dr.flags, AF.history) && !has(cr.flags, AF.history)) return;
        this.history.set(timestamp, { debit: balance_of(dr), credit: balance_of(cr) });
        this.on_rollback(() => this.history.delete(timestamp));
    }

    private transfer_exists(
        t: Transfer, e: Transfer,
    ): { status: number; timestamp: bigint | null } {
        const S = TransferStatus;
        const fail = (status: number) => ({ status, timestamp: null });
        if (t.flags !== e.flags) return fail(S.exists_with_different_flags);
        if (t.pending_id !== e.pending_id) return fail(S.exists_with_different_pending_id);
        if (t.timeout !== e.timeout) return fail(S.exists_with_different_timeout);
        const post_or_void = has(t.flags, TF.post_pending_transfer) ||
            has(t.flags, TF.void_pending_transfer);
        // A post or void may leave fields zero to mean "as in the pending transfer".
        const p = post_or_void ? this.transfers.get(t.pending_id)! : null;
        const differs = (given: bigint, stored: bigint): boolean =>
            post_or_void ? given !== 0n && given !== stored : given !== stored;
        if (differs(t.debit_account_id, e.debit_account_id)) {
            return fail(S.exists_with_different_debit_account_id);
        }
        if (differs(t.credit_account_id, e.credit_account_id)) {
            return fail(S.exists_with_different_credit_account_id);
        }
        if (p !== null && has(t.flags, TF.void_pending_transfer)) {
            if (t.amount === 0n ? e.amount !== p.amount : t.amount !== e.amount) {
                return fail(S.exists_with_different_amount);
            }
        } else if (p !== null) {
            if (t.amount === u128_max ? e.amount !== p.amount : t.amount !== e.amount) {
                return fail(S.exists_with_different_amount);
            }
        } else if (has(t.flags, TF.balancing_debit) || has(t.flags, TF.balancing_credit)) {
            if (t.amount < e.amount) return fail(S.exists_with_different_amount);
        } else if (t.amount !== e.amount) {
            return fail(S.exists_with_different_amount);
        }
        const inherited = <T>(given: T, zero: T, from_pending: T | undefined): T =>
            p !== null && given === zero ? from_pending as T : given;
        if (inherited(t.user_data_128, 0n, p?.user_data_128) !== e.user_data_128) {
            return fail(S.exists_with_different_user_data_128);
        }
        if (inherited(t.user_data_64, 0n, p?.user_data_64) !== e.user_data_64) {
            return fail(S.exists_with_different_user_data_64);
        }
        if (inherited(t.user_data_32, 0, p?.user_data_32) !== e.user_data_32) {
            return fail(S.exists_with_different_user_data_32);
        }
        if (inherited(t.ledger, 0, e.ledger) !== e.ledger) {
            return fail(S.exists_with_different_ledger);
        }
        if (inherited(t.code, 0, e.code) !== e.code) return fail(S.exists_with_different_code);
        return { status: S.exists, timestamp: e.timestamp };
    }

    private post_or_void(
        event_timestamp: bigint, t: Transfer,
    ): { status: number; timestamp: bigint | null } {
        const S = TransferStatus;
        const fail = (status: number) => ({ status, timestamp: null });
        const posting = has(t.flags, TF.post_pending_transfer);
        const voiding = has(t.flags, TF.void_pending_transfer);
        if (posting && voiding) return fail(S.flags_are_mutually_exclusive);
        const exclusive = TF.pending | TF.balancing_debit | TF.balancing_credit |
            TF.closing_debit | TF.closing_credit;
        if ((t.flags & exclusive) !== 0) return fail(S.flags_are_mutually_exclusive);
        if (t.pending_id === 0n) return fail(S.pending_id_must_not_be_zero);
        if (t.pending_id === u128_max) return fail(S.pending_id_must_not_be_int_max);
        if (t.pending_id === t.id) return fail(S.pending_id_must_be_different);
        if (t.timeout !== 0) return fail(S.timeout_reserved_for_pending_transfer);
        const p = this.transfers.get(t.pending_id);
        if (p === undefined) return fail(S.pending_transfer_not_found);
        if (!has(p.flags, TF.pending)) return fail(S.pending_transfer_not_pending);
        const dr = this.accounts.get(p.debit_account_id)!;
        const cr = this.accounts.get(p.credit_account_id)!;
        if (t.debit_account_id !== 0n && t.debit_account_id !== p.debit_account_id) {
            return fail(S.pending_transfer_has_different_debit_account_id);
        }
        if (t.credit_account_id !== 0n && t.credit_account_id !== p.credit_account_id) {
            return fail(S.pending_transfer_has_different_credit_account_id);
        }
        if (t.ledger !== 0 && t.ledger !== p.ledger) {
            return fail(S.pending_transfer_has_different_ledger);
        }
        if (t.code !== 0 && t.code !== p.code) return fail(S.pending_transfer_has_different_code);
        // Voiding with amount 0 and posting with amount u128 max mean "the pending amount".
        let amount = t.amount;
        if (voiding && t.amount === 0n) amount = p.amount;
        if (posting && t.amount === u128_max) amount = p.amount;
        if (amount > p.amount) return fail(S.exceeds_pending_transfer_amount);
        if (voiding && amount < p.amount) return fail(S.pending_transfer_has_different_amount);
        const state = this.pending.get(p.id);
        if (state === 'posted') return fail(S.pending_transfer_already_posted);
        if (state === 'voided') return fail(S.pending_transfer_already_voided);
        if (state === 'expired') return fail(S.pending_transfer_expired);
        assert(state === 'pending');
        if (p.timeout !== 0 && p.timestamp + BigInt(p.timeout) * ns_per_s <= event_timestamp) {
            return fail(S.pending_transfer_expired);
        }
        let timestamp = event_timestamp;
        if (has(t.flags, TF.imported)) {
            if (t.timestamp <= this.transfer_timestamp_max() ||
                this.timestamps_of_accounts.has(t.timestamp)) {
                return fail(S.imported_event_timestamp_must_not_regress);
            }
            timestamp = t.timestamp;
        }
        if (has(dr.flags, AF.closed) && !voiding) return fail(S.debit_account_already_closed);
        if (has(cr.flags, AF.closed) && !voiding) return fail(S.credit_account_already_closed);
        this.transfer_insert({
            id: t.id, debit_account_id: p.debit_account_id, credit_account_id: p.credit_account_id,
            amount, pending_id: t.pending_id,
            user_data_128: t.user_data_128 !== 0n ? t.user_data_128 : p.user_data_128,
            user_data_64: t.user_data_64 !== 0n ? t.user_data_64 : p.user_data_64,
            user_data_32: t.user_data_32 !== 0 ? t.user_data_32 : p.user_data_32,
            timeout: 0, ledger: p.ledger, code: p.code, flags: t.flags, timestamp,
        });
        this.pending_set(p.id, posting ? 'posted' : 'voided');
        this.account_update(dr, (a) => {
            a.debits_pending -= p.amount;
            if (posting) a.debits_posted += amount;
            if (voiding && has(p.flags, TF.closing_debit)) a.flags &= ~AF.closed;
        });
        this.account_update(cr, (a) => {
            a.credits_pending -= p.amount;
            if (posting) a.credits_posted += amount;
            if (voiding && has(p.flags, TF.closing_credit)) a.flags &= ~AF.closed;
        });
        this.history_record(timestamp, dr, cr);
        return { status: S.created, timestamp };
    }

    /** Expires every pending transfer whose timeout has passed, oldest deadline first. */
    private pulse(timestamp: bigint): void {
        const due: Array<{ expires_at: bigint; transfer: Transfer }> = [];
        for (const [id, state] of this.pending) {
            const p = this.transfers.get(id)!;
            if (state !== 'pending' || p.timeout === 0) continue;
            const expires_at = p.timestamp + BigInt(p.timeout) * ns_per_s;
            if (expires_at <= timestamp) due.push({ expires_at, transfer: p });
        }
        due.sort((x, y) => x.expires_at !== y.expires_at ?
            (x.expires_at < y.expires_at ? -1 : 1) :
            (x.transfer.timestamp < y.transfer.timestamp ? -1 : 1));
        for (const { transfer: p } of due.slice(0, result_max)) {
            const dr = this.accounts.get(p.debit_account_id)!;
            const cr = this.accounts.get(p.credit_account_id)!;
            dr.debits_pending -= p.amount;
            cr.credits_pending -= p.amount;
            if (has(p.flags, TF.closing_debit)) dr.flags &= ~AF.closed;
            if (has(p.flags, TF.closing_credit)) cr.flags &= ~AF.closed;
            this.pending.set(p.id, 'expired');
        }
    }

    private lookup<T>(
        input: Uint8Array, find: (id: bigint) => T | undefined,
        encode: (object: T, bytes: Uint8Array, offset: number) => void,
    ): Uint8Array {
        assert(input.length % 16 === 0);
        const found: T[] = [];
        for (let offset = 0; offset < input.length; offset += 16) {
            const object = find(read_u128(input, offset));
            if (object !== undefined) found.push(object);
        }
        const output = new Uint8Array(found.length * 128);
        found.forEach((object, index) => encode(object, output, index * 128));
        return output;
    }

    /** Transfers that match an account filter, in the filter's order, up to its limit. */
    private account_filter_transfers(f: AccountFilter): Transfer[] | null {
        const valid = f.account_id !== 0n && f.account_id !== u128_max &&
            (f.timestamp_min === 0n || timestamp_valid(f.timestamp_min)) &&
            (f.timestamp_max === 0n || timestamp_valid(f.timestamp_max)) &&
            (f.timestamp_max === 0n || f.timestamp_min <= f.timestamp_max) &&
            f.limit !== 0 && (f.flags & 3) !== 0 && (f.flags & ~7) === 0 && f.reserved_zero;
        if (!valid) return null;
        const matches = [...this.transfers.values()].filter((t) =>
            ((has(f.flags, 1) && t.debit_account_id === f.account_id) ||
                (has(f.flags, 2) && t.credit_account_id === f.account_id)) &&
            (f.user_data_128 === 0n || t.user_data_128 === f.user_data_128) &&
            (f.user_data_64 === 0n || t.user_data_64 === f.user_data_64) &&
            (f.user_data_32 === 0 || t.user_data_32 === f.user_data_32) &&
            (f.code === 0 || t.code === f.code) &&
            (f.timestamp_min === 0n || t.timestamp >= f.timestamp_min) &&
            (f.timestamp_max === 0n || t.timestamp <= f.timestamp_max));
        return order_and_limit(matches, has(f.flags, 4), f.limit);
    }

    private account_filter(operation: number, f: AccountFilter): Uint8Array {
        if (operation === Op.get_account_balances) {
            const account = this.accounts.get(f.account_id);
            if (account === undefined || !has(account.flags, AF.history)) {
                return new Uint8Array(0);
            }
        }
        const transfers = this.account_filter_transfers(f);
        if (transfers === null) return new Uint8Array(0);
        const output = new Uint8Array(transfers.length * 128);
        transfers.forEach((t, index) => {
            if (operation === Op.get_account_transfers) {
                transfer_encode(t, output, index * 128);
                return;
            }
            const row = this.history.get(t.timestamp)!;
            const balance = t.debit_account_id === f.account_id ? row.debit : row.credit;
            const offset = index * 128;
            write_uint(output, offset, 16, balance.debits_pending);
            write_uint(output, offset + 16, 16, balance.debits_posted);
            write_uint(output, offset + 32, 16, balance.credits_pending);
            write_uint(output, offset + 48, 16, balance.credits_posted);
            write_uint(output, offset + 64, 8, t.timestamp);
        });
        return output;
    }

    private query(operation: number, f: QueryFilter): Uint8Array {
        const valid = (f.timestamp_min === 0n || timestamp_valid(f.timestamp_min)) &&
            (f.timestamp_max === 0n || timestamp_valid(f.timestamp_max)) &&
            (f.timestamp_max === 0n || f.timestamp_min <= f.timestamp_max) &&
            f.limit !== 0 && (f.flags & ~1) === 0 && f.reserved_zero;
        if (!valid) return new Uint8Array(0);
        const matches = <T extends Account | Transfer>(o: T): boolean =>
            (f.user_data_128 === 0n || o.user_data_128 === f.user_data_128) &&
            (f.user_data_64 === 0n || o.user_data_64 === f.user_data_64) &&
            (f.user_data_32 === 0 || o.user_data_32 === f.user_data_32) &&
            (f.ledger === 0 || o.ledger === f.ledger) &&
            (f.code === 0 || o.code === f.code) &&
            (f.timestamp_min === 0n || o.timestamp >= f.timestamp_min) &&
            (f.timestamp_max === 0n || o.timestamp <= f.timestamp_max);
        const reversed = has(f.flags, 1);
        if (operation === Op.query_accounts) {
            const found = order_and_limit([...this.accounts.values()].filter(matches), reversed,
                f.limit);
            const output = new Uint8Array(found.length * 128);
            found.forEach((a, index) => account_encode(a, output, index * 128));
            return output;
        }
        const found = order_and_limit([...this.transfers.values()].filter(matches), reversed,
            f.limit);
        const output = new Uint8Array(found.length * 128);
        found.forEach((t, index) => transfer_encode(t, output, index * 128));
        return output;
    }

    /** Checks the double-entry invariants; returns a description of the first violation. */
    check_invariants(): string | null {
        return check_ledger_invariants([...this.accounts.values()],
            [...this.transfers.values()].filter((t) => this.pending.get(t.id) === 'pending'));
    }
}

function order_and_limit<T extends { timestamp: bigint }>(
    objects: T[], reversed: boolean, limit: number,
): T[] {
    objects.sort((x, y) => (x.timestamp < y.timestamp ? -1 : x.timestamp > y.timestamp ? 1 : 0));
    if (reversed) objects.reverse();
    return objects.slice(0, Math.min(limit, result_max));
}

/**
 * The double-entry invariants over a full set of accounts and the transfers still pending:
 * per ledger, debits equal credits (posted and pending), and every account's pending amounts
 * are the sums of its still-pending transfers.
 */
export function check_ledger_invariants(
    accounts: Account[], pending_transfers: Transfer[],
): string | null {
    const sums = new Map<number, bigint[]>();
    for (const a of accounts) {
        const s = sums.get(a.ledger) ?? [0n, 0n, 0n, 0n];
        s[0] += a.debits_posted; s[1] += a.credits_posted;
        s[2] += a.debits_pending; s[3] += a.credits_pending;
        sums.set(a.ledger, s);
    }
    for (const [ledger, s] of sums) {
        if (s[0] !== s[1]) return `ledger ${ledger}: debits_posted ${s[0]} != credits ${s[1]}`;
        if (s[2] !== s[3]) return `ledger ${ledger}: debits_pending ${s[2]} != credits ${s[3]}`;
    }
    const debits = new Map<bigint, bigint>();
    const credits = new Map<bigint, bigint>();
    for (const t of pending_transfers) {
        debits.set(t.debit_account_id, (debits.get(t.debit_account_id) ?? 0n) + t.amount);
        credits.set(t.credit_account_id, (credits.get(t.credit_account_id) ?? 0n) + t.amount);
    }
    for (const a of accounts) {
        if (a.debits_pending !== (debits.get(a.id) ?? 0n)) {
            return `account ${a.id}: debits_pending ${a.debits_pending} != pending transfers`;
        }
        if (a.credits_pending !== (credits.get(a.id) ?? 0n)) {
            return `account ${a.id}: credits_pending ${a.credits_pending} != pending transfers`;
        }
    }
    return null;
}
