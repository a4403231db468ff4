// The public types of the client: the same names, members and values as tigerbeetle-node 0.17.9's
// `bindings.d.ts`, so that code written against that package compiles and behaves the same here.
// The numeric values are the ledger's (lib/ledger/constants.ts); they are restated as TypeScript
// enums because the API exposes enums (reverse mapping included: `CreateTransferStatus[46]` is
// 'exists'), and the assertions at the end tie both spellings together.
import assert from 'node:assert/strict';

import * as ledger from '../ledger/constants';

export enum AccountFlags {
    none = 0,
    linked = 1 << 0,
    debits_must_not_exceed_credits = 1 << 1,
    credits_must_not_exceed_debits = 1 << 2,
    history = 1 << 3,
    imported = 1 << 4,
    closed = 1 << 5,
}

export enum TransferFlags {
    none = 0,
    linked = 1 << 0,
    pending = 1 << 1,
    post_pending_transfer = 1 << 2,
    void_pending_transfer = 1 << 3,
    balancing_debit = 1 << 4,
    balancing_credit = 1 << 5,
    closing_debit = 1 << 6,
    closing_credit = 1 << 7,
    imported = 1 << 8,
}

export enum AccountFilterFlags {
    none = 0,
    debits = 1 << 0,
    credits = 1 << 1,
    reversed = 1 << 2,
}

export enum QueryFilterFlags {
    none = 0,
    reversed = 1 << 0,
}

export type Account = {
    id: bigint
    debits_pending: bigint
    debits_posted: bigint
    credits_pending: bigint
    credits_posted: bigint
    user_data_128: bigint
    user_data_64: bigint
    user_data_32: number
    reserved: number
    ledger: number
    code: number
    flags: number
    timestamp: bigint
};

export type Transfer = {
    id: bigint
    debit_account_id: bigint
    credit_account_id: bigint
    amount: bigint
    pending_id: bigint
    user_data_128: bigint
    user_data_64: bigint
    user_data_32: number
    timeout: number
    ledger: number
    code: number
    flags: number
    timestamp: bigint
};

export enum CreateAccountStatus {
    created = 0xFFFFFFFF,
    linked_event_failed = 1,
    linked_event_chain_open = 2,
    timestamp_must_be_zero = 3,
    reserved_field = 4,
    reserved_flag = 5,
    id_must_not_be_zero = 6,
    id_must_not_be_int_max = 7,
    flags_are_mutually_exclusive = 8,
    debits_pending_must_be_zero = 9,
    debits_posted_must_be_zero = 10,
    credits_pending_must_be_zero = 11,
    credits_posted_must_be_zero = 12,
    ledger_must_not_be_zero = 13,
    code_must_not_be_zero = 14,
    exists_with_different_flags = 15,
    exists_with_different_user_data_128 = 16,
    exists_with_different_user_data_64 = 17,
    exists_with_different_user_data_32 = 18,
    exists_with_different_ledger = 19,
    exists_with_different_code = 20,
    exists = 21,
    imported_event_expected = 22,
    imported_event_not_expected = 23,
    imported_event_timestamp_out_of_range = 24,
    imported_event_timestamp_must_not_advance = 25,
    imported_event_timestamp_must_not_regress = 26,
}

export enum CreateTransferStatus {
    created = 0xFFFFFFFF,
    linked_event_failed = 1,
    linked_event_chain_open = 2,
    timestamp_must_be_zero = 3,
    reserved_flag = 4,
    id_must_not_be_zero = 5,
    id_must_not_be_int_max = 6,
    flags_are_mutually_exclusive = 7,
    debit_account_id_must_not_be_zero = 8,
    debit_account_id_must_not_be_int_max = 9,
    credit_account_id_must_not_be_zero = 10,
    credit_account_id_must_not_be_int_max = 11,
    accounts_must_be_different = 12,
    pending_id_must_be_zero = 13,
    pending_id_must_not_be_zero = 14,
    pending_id_must_not_be_int_max = 15,
    pending_id_must_be_different = 16,
    timeout_reserved_for_pending_transfer = 17,
    ledger_must_not_be_zero = 19,
    code_must_not_be_zero = 20,
    debit_account_not_found = 21,
    credit_account_not_found = 22,
    accounts_must_have_the_same_ledger = 23,
    transfer_must_have_the_same_ledger_as_accounts = 24,
    pending_transfer_not_found = 25,
    pending_transfer_not_pending = 26,
    pending_transfer_has_different_debit_account_id = 27,
    pending_transfer_has_different_credit_account_id = 28,
    pending_transfer_has_different_ledger = 29,
    pending_transfer_has_different_code = 30,
    exceeds_pending_transfer_amount = 31,
    pending_transfer_has_different_amount = 32,
    pending_transfer_already_posted = 33,
    pending_transfer_already_voided = 34,
    pending_transfer_expired = 35,
    exists_with_different_flags = 36,
    exists_with_different_debit_account_id = 37,
    exists_with_different_credit_account_id = 38,
    exists_with_different_amount = 39,
    exists_with_different_pending_id = 40,
    exists_with_different_user_data_128 = 41,
    exists_with_different_user_data_64 = 42,
    exists_with_different_user_data_32 = 43,
    exists_with_different_timeout = 44,
    exists_with_different_code = 45,
    exists = 46,
    overflows_debits_pending = 47,
    overflows_credits_pending = 48,
    overflows_debits_posted = 49,
    overflows_credits_posted = 50,
    overflows_debits = 51,
    overflows_credits = 52,
    overflows_timeout = 53,
    exceeds_credits = 54,
    exceeds_debits = 55,
    imported_event_expected = 56,
    imported_event_not_expected = 57,
    imported_event_timestamp_out_of_range = 58,
    imported_event_timestamp_must_not_advance = 59,
    imported_event_timestamp_must_not_regress = 60,
    imported_event_timestamp_must_postdate_debit_account = 61,
    imported_event_timestamp_must_postdate_credit_account = 62,
    imported_event_timeout_must_be_zero = 63,
    closing_transfer_must_be_pending = 64,
    debit_account_already_closed = 65,
    credit_account_already_closed = 66,
    exists_with_different_ledger = 67,
    id_already_failed = 68,
}

/**
 * The names clients before 0.17 used for the same statuses (`CreateAccountError.exists` ...).
 * 0.17 returns one result per event, successes included, so "status" is the accurate name.
 */
export const CreateAccountError = CreateAccountStatus;
export type CreateAccountError = CreateAccountStatus;
export const CreateTransferError = CreateTransferStatus;
export type CreateTransferError = CreateTransferStatus;

export type CreateAccountResult = {
    timestamp: bigint
    status: CreateAccountStatus
};

export type CreateTransferResult = {
    timestamp: bigint
    status: CreateTransferStatus
};

export type AccountFilter = {
    account_id: bigint
    user_data_128: bigint
    user_data_64: bigint
    user_data_32: number
    code: number
    timestamp_min: bigint
    timestamp_max: bigint
    limit: number
    flags: number
};

export type QueryFilter = {
    user_data_128: bigint
    user_data_64: bigint
    user_data_32: number
    ledger: number
    code: number
    timestamp_min: bigint
    timestamp_max: bigint
    limit: number
    flags: number
};

export type AccountBalance = {
    debits_pending: bigint
    debits_posted: bigint
    credits_pending: bigint
    credits_posted: bigint
    timestamp: bigint
};

/** The state machine operations the client sends (docs/wire-protocol.md §6.1). */
export enum Operation {
    pulse = 128,
    get_change_events = 137,
    lookup_accounts = 140,
    lookup_transfers = 141,
    get_account_transfers = 142,
    get_account_balances = 143,
    query_accounts = 144,
    query_transfers = 145,
    create_accounts = 146,
    create_transfers = 147,
}

// Both spellings of every value must agree with the ledger's, member for member.
function assert_same(
    name: string, api: Record<string, string | number>, ours: Record<string, number>,
    skip: readonly string[],
): void {
    for (const [key, value] of Object.entries(ours)) {
        if (skip.includes(key)) continue;
        assert.equal(api[key], value, `${name}.${key}`);
    }
    for (const [key, value] of Object.entries(api)) {
        if (typeof value !== 'number' || key === 'none') continue;
        assert.equal(ours[key], value, `${name}.${key} is not in lib/ledger/constants.ts`);
    }
}
assert_same('AccountFlags', AccountFlags, ledger.AccountFlags, ['padding']);
assert_same('TransferFlags', TransferFlags, ledger.TransferFlags, ['padding']);
assert_same('AccountFilterFlags', AccountFilterFlags, ledger.AccountFilterFlags, ['padding']);
assert_same('QueryFilterFlags', QueryFilterFlags, ledger.QueryFilterFlags, ['padding']);
assert_same('CreateAccountStatus', CreateAccountStatus, ledger.CreateAccountStatus, []);
assert_same('CreateTransferStatus', CreateTransferStatus, ledger.CreateTransferStatus, []);
assert_same('Operation', Operation, ledger.Operation, []);
