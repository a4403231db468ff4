// Operation codes, flags and result statuses of TigerBeetle 0.17.9 (docs/wire-protocol.md §6).
// Their relations are asserted once at load, at the bottom.
import assert from 'node:assert/strict';

import { message_body_size_max } from '../constants';
import { client_operations } from '../vsr/constants';

export { Limit, limit_count, limit_name } from '../vsr/constants';

/** The client operations, plus the state machine's own: the pulse and the change-event feed. */
export const Operation = {
    pulse: 128,
    get_change_events: 137,
    ...client_operations,
} as const;

export const AccountFlags = {
    linked: 1 << 0,
    debits_must_not_exceed_credits: 1 << 1,
    credits_must_not_exceed_debits: 1 << 2,
    history: 1 << 3,
    imported: 1 << 4,
    closed: 1 << 5,
    padding: 0xffc0,
} as const;

export const TransferFlags = {
    linked: 1 << 0,
    pending: 1 << 1,
    post_pending_transfer: 1 << 2,
    void_pending_transfer: 1 << 3,
    balancing_debit: 1 << 4,
    balancing_credit: 1 << 5,
    closing_debit: 1 << 6,
    closing_credit: 1 << 7,
    imported: 1 << 8,
    padding: 0xfe00,
} as const;

export const AccountFilterFlags = { debits: 1, credits: 2, reversed: 4,
    padding: ~7 >>> 0 } as const;
export const QueryFilterFlags = { reversed: 1, padding: ~1 >>> 0 } as const;

/** Pending status of a transfer (internal, never on the wire). */
export const PendingStatus = { none: 0, pending: 1, posted: 2, voided: 3, expired: 4 } as const;

export const CreateAccountStatus = {
    created: 0xffffffff,
    linked_event_failed: 1,
    linked_event_chain_open: 2,
    timestamp_must_be_zero: 3,
    reserved_field: 4,
    reserved_flag: 5,
    id_must_not_be_zero: 6,
    id_must_not_be_int_max: 7,
    flags_are_mutually_exclusive: 8,
    debits_pending_must_be_zero: 9,
    debits_posted_must_be_zero: 10,
    credits_pending_must_be_zero: 11,
    credits_posted_must_be_zero: 12,
    ledger_must_not_be_zero: 13,
    code_must_not_be_zero: 14,
    exists_with_different_flags: 15,
    exists_with_different_user_data_128: 16,
    exists_with_different_user_data_64: 17,
    exists_with_different_user_data_32: 18,
    exists_with_different_ledger: 19,
    exists_with_different_code: 20,
    exists: 21,
    imported_event_expected: 22,
    imported_event_not_expected: 23,
    imported_event_timestamp_out_of_range: 24,
    imported_event_timestamp_must_not_advance: 25,
    imported_event_timestamp_must_not_regress: 26,
} as const;

export const CreateTransferStatus = {
    created: 0xffffffff,
    linked_event_failed: 1,
    linked_event_chain_open: 2,
    timestamp_must_be_zero: 3,
    reserved_flag: 4,
    id_must_not_be_zero: 5,
    id_must_not_be_int_max: 6,
    flags_are_mutually_exclusive: 7,
    debit_account_id_must_not_be_zero: 8,
    debit_account_id_must_not_be_int_max: 9,
    credit_account_id_must_not_be_zero: 10,
    credit_account_id_must_not_be_int_max: 11,
    accounts_must_be_different: 12,
    pending_id_must_be_zero: 13,
    pending_id_must_not_be_zero: 14,
    pending_id_must_not_be_int_max: 15,
    pending_id_must_be_different: 16,
    timeout_reserved_for_pending_transfer: 17,
    ledger_must_not_be_zero: 19,
    code_must_not_be_zero: 20,
    debit_account_not_found: 21,
    credit_account_not_found: 22,
    accounts_must_have_the_same_ledger: 23,
    transfer_must_have_the_same_ledger_as_accounts: 24,
    pending_transfer_not_found: 25,
    pending_transfer_not_pending: 26,
    pending_transfer_has_different_debit_account_id: 27,
    pending_transfer_has_different_credit_account_id: 28,
    pending_transfer_has_different_ledger: 29,
    pending_transfer_has_different_code: 30,
    exceeds_pending_transfer_amount: 31,
    pending_transfer_has_different_amount: 32,
    pending_transfer_already_posted: 33,
    pending_transfer_already_voided: 34,
    pending_transfer_expired: 35,
    exists_with_different_flags: 36,
    exists_with_different_debit_account_id: 37,
    exists_with_different_credit_account_id: 38,
    exists_with_different_amount: 39,
    exists_with_different_pending_id: 40,
    exists_with_different_user_data_128: 41,
    exists_with_different_user_data_64: 42,
    exists_with_different_user_data_32: 43,
    exists_with_different_timeout: 44,
    exists_with_different_code: 45,
    exists: 46,
    overflows_debits_pending: 47,
    overflows_credits_pending: 48,
    overflows_debits_posted: 49,
    overflows_credits_posted: 50,
    overflows_debits: 51,
    overflows_credits: 52,
    overflows_timeout: 53,
    exceeds_credits: 54,
    exceeds_debits: 55,
    imported_event_expected: 56,
    imported_event_not_expected: 57,
    imported_event_timestamp_out_of_range: 58,
    imported_event_timestamp_must_not_advance: 59,
    imported_event_timestamp_must_not_regress: 60,
    imported_event_timestamp_must_postdate_debit_account: 61,
    imported_event_timestamp_must_postdate_credit_account: 62,
    imported_event_timeout_must_be_zero: 63,
    closing_transfer_must_be_pending: 64,
    debit_account_already_closed: 65,
    credit_account_already_closed: 66,
    exists_with_different_ledger: 67,
    id_already_failed: 68,
} as const;

/** Transient statuses burn the transfer id: a retry gets `id_already_failed`. */
export function transfer_status_transient(status: number): boolean {
    return status === 21 || status === 22 || status === 25 || status === 54 ||
        status === 55 || status === 65 || status === 66;
}

/** Events per create/lookup batch and results per query (docs/wire-protocol.md §6.3). */
export const batch_events_max = 8189;
export const record_size = 128;
export const record_words = 32;

// ---------------------------------------------------------------- relations, asserted at load

assert.equal(record_size, record_words * 4);
// A whole batch of events, or of results, fits one message body.
assert(batch_events_max * record_size <= message_body_size_max);
// Each flag set's padding is exactly the bits no flag uses.
const flag_bits = (flags: Record<string, number>): number => Object.entries(flags)
    .filter(([name]) => name !== 'padding').reduce((bits, [, bit]) => bits | bit, 0);
assert.equal(AccountFlags.padding, ~flag_bits(AccountFlags) & 0xffff);
assert.equal(TransferFlags.padding, ~flag_bits(TransferFlags) & 0xffff);
assert.equal(AccountFilterFlags.padding, ~flag_bits(AccountFilterFlags) >>> 0);
assert.equal(QueryFilterFlags.padding, ~flag_bits(QueryFilterFlags) >>> 0);
// Statuses are distinct, and `created` (0xffffffff) is the only one beyond the small codes.
for (const statuses of [CreateAccountStatus, CreateTransferStatus]) {
    const values = Object.values(statuses);
    assert.equal(new Set(values).size, values.length, 'constants: a status twice');
    assert(values.every((value) => value === 0xffffffff || (value > 0 && value < 256)));
}
assert.equal(new Set(Object.values(PendingStatus)).size, Object.keys(PendingStatus).length);
// The transient statuses, by name: the ones that depend on state that may change later.
const transient_statuses = [
    CreateTransferStatus.debit_account_not_found, CreateTransferStatus.credit_account_not_found,
    CreateTransferStatus.pending_transfer_not_found, CreateTransferStatus.exceeds_credits,
    CreateTransferStatus.exceeds_debits, CreateTransferStatus.debit_account_already_closed,
    CreateTransferStatus.credit_account_already_closed,
];
assert(transient_statuses.every(transfer_status_transient), 'constants: transient statuses');
assert.equal(Object.values(CreateTransferStatus).filter(transfer_status_transient).length,
    transient_statuses.length, 'constants: a transient status without a name');
