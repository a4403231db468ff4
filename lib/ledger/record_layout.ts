// THE layout table of the ledger's fixed-size records as they travel and as the ledger keeps them:
// accounts and transfers (128 bytes), account balances, the two query filters, and create
// results. Fields are listed in wire order with their size; offsets are computed cumulatively at
// load and each record's total is asserted, so a typo cannot leave a hole or an overlap. Every
// codec (the client's, the ledger's, the tests' and benchmarks') takes its offsets from here.
//
// The reference model in lib/testing/ledger_model.ts keeps its own hand-written encoder on
// purpose: it is an independent check of this table and of the codecs built on it.
import assert from 'node:assert/strict';

/** u128/u64/u32/u16: little-endian integers; reserved: bytes that must be zero. */
export type RecordFieldType = 'u128' | 'u64' | 'u32' | 'u16' | 'reserved';
type FieldList = ReadonlyArray<readonly [string, number, RecordFieldType]>;

const account_fields = [
    ['id', 16, 'u128'],
    ['debits_pending', 16, 'u128'],
    ['debits_posted', 16, 'u128'],
    ['credits_pending', 16, 'u128'],
    ['credits_posted', 16, 'u128'],
    ['user_data_128', 16, 'u128'],
    ['user_data_64', 8, 'u64'],
    ['user_data_32', 4, 'u32'],
    ['reserved', 4, 'u32'],
    ['ledger', 4, 'u32'],
    ['code', 2, 'u16'],
    ['flags', 2, 'u16'],
    ['timestamp', 8, 'u64'],
] as const satisfies FieldList;

const transfer_fields = [
    ['id', 16, 'u128'],
    ['debit_account_id', 16, 'u128'],
    ['credit_account_id', 16, 'u128'],
    ['amount', 16, 'u128'],
    ['pending_id', 16, 'u128'],
    ['user_data_128', 16, 'u128'],
    ['user_data_64', 8, 'u64'],
    ['user_data_32', 4, 'u32'],
    ['timeout', 4, 'u32'],
    ['ledger', 4, 'u32'],
    ['code', 2, 'u16'],
    ['flags', 2, 'u16'],
    ['timestamp', 8, 'u64'],
] as const satisfies FieldList;

const account_balance_fields = [
    ['debits_pending', 16, 'u128'],
    ['debits_posted', 16, 'u128'],
    ['credits_pending', 16, 'u128'],
    ['credits_posted', 16, 'u128'],
    ['timestamp', 8, 'u64'],
    ['reserved', 56, 'reserved'],
] as const satisfies FieldList;

const account_filter_fields = [
    ['account_id', 16, 'u128'],
    ['user_data_128', 16, 'u128'],
    ['user_data_64', 8, 'u64'],
    ['user_data_32', 4, 'u32'],
    ['code', 2, 'u16'],
    ['reserved', 58, 'reserved'],
    ['timestamp_min', 8, 'u64'],
    ['timestamp_max', 8, 'u64'],
    ['limit', 4, 'u32'],
    ['flags', 4, 'u32'],
] as const satisfies FieldList;

const query_filter_fields = [
    ['user_data_128', 16, 'u128'],
    ['user_data_64', 8, 'u64'],
    ['user_data_32', 4, 'u32'],
    ['ledger', 4, 'u32'],
    ['code', 2, 'u16'],
    ['reserved', 6, 'reserved'],
    ['timestamp_min', 8, 'u64'],
    ['timestamp_max', 8, 'u64'],
    ['limit', 4, 'u32'],
    ['flags', 4, 'u32'],
] as const satisfies FieldList;

const create_result_fields = [
    ['timestamp', 8, 'u64'],
    ['status', 4, 'u32'],
    ['reserved', 4, 'u32'],
] as const satisfies FieldList;

type Offsets<Fields extends FieldList> = { readonly [F in Fields[number] as F[0]]: number };

function offsets_of<Fields extends FieldList>(fields: Fields, size: number, name: string):
    Offsets<Fields> {
    const offsets: Record<string, number> = {};
    let at = 0;
    for (const [field, field_size] of fields) {
        assert(!(field in offsets), `${name}.${field} twice`);
        // Every integer is aligned to its own size (up to 8): records are read in place.
        const type = fields.find(([other]) => other === field)![2];
        if (type !== 'reserved') {
            assert.equal(at % Math.min(field_size, 8), 0, `${name}.${field} misaligned`);
        }
        offsets[field] = at;
        at += field_size;
    }
    assert.equal(at, size, `${name}: fields cover ${at} bytes, not ${size}`);
    return Object.freeze(offsets) as Offsets<Fields>;
}

export const account_size = 128;
export const transfer_size = 128;
export const account_balance_size = 128;
export const account_filter_size = 128;
export const query_filter_size = 64;
export const create_result_size = 16;

/** Byte offsets of each record's fields. */
export const account_at = offsets_of(account_fields, account_size, 'Account');
export const transfer_at = offsets_of(transfer_fields, transfer_size, 'Transfer');
export const account_balance_at = offsets_of(account_balance_fields, account_balance_size,
    'AccountBalance');
export const account_filter_at = offsets_of(account_filter_fields, account_filter_size,
    'AccountFilter');
export const query_filter_at = offsets_of(query_filter_fields, query_filter_size, 'QueryFilter');
export const create_result_at = offsets_of(create_result_fields, create_result_size,
    'CreateResult');

/** The field lists themselves, for table-driven code (tests, the reference model's check). */
export const record_fields = {
    account: account_fields, transfer: transfer_fields, account_balance: account_balance_fields,
    account_filter: account_filter_fields, query_filter: query_filter_fields,
    create_result: create_result_fields,
} as const;

type Words<Table> = { readonly [F in keyof Table]: number };

/** Word (u32) indexes of a record's fields, for code that reads records as Uint32Arrays. */
function words_of<Table extends Record<string, number>>(offsets: Table): Words<Table> {
    const words: Record<string, number> = {};
    for (const [field, offset] of Object.entries(offsets)) {
        if (offset % 4 === 0) words[field] = offset / 4;
    }
    return Object.freeze(words) as Words<Table>;
}

export const account_word = words_of(account_at);
export const transfer_word = words_of(transfer_at);
/** An account's four balances: the words from debits_pending through credits_posted. */
export const account_balance_words = (account_at.credits_posted + 16 - account_at.debits_pending) /
    4;
assert.equal(account_balance_words, 16);

// The ledger reads records as Uint32 words: its word indexes come from the byte offsets.
assert.equal(account_at.debits_pending % 4, 0);
assert.equal(transfer_at.timestamp % 8, 0);
// Accounts and transfers share their tail (user data to timestamp), so one set of word indexes
// serves both; an AccountBalance is an account's four balances then the timestamp.
for (const field of ['user_data_128', 'user_data_64', 'user_data_32', 'ledger', 'code', 'flags',
    'timestamp'] as const) {
    assert.equal(account_at[field], transfer_at[field], `Account and Transfer differ at ${field}`);
}
assert.equal(account_balance_at.credits_posted - account_balance_at.debits_pending,
    account_at.credits_posted - account_at.debits_pending);
// Both filters end with timestamp_min, timestamp_max, limit and flags, u32-aligned.
for (const [at, size] of [[account_filter_at, account_filter_size],
    [query_filter_at, query_filter_size]] as const) {
    assert.equal(at.flags, size - 4);
    assert.equal(at.limit, size - 8);
    assert.equal(at.timestamp_max, at.timestamp_min + 8);
    assert.equal(at.timestamp_min % 8, 0);
}
assert.equal(create_result_at.status, 8);
