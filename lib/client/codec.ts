// Encoding of the API's objects into request bodies and decoding of reply bodies, in place through
// a DataView over the buffer (docs/wire-protocol.md §6.4). Input is checked field by field with
// tigerbeetle-node 0.17.9's rules and messages ("id must be a BigInt", "code must be a u16.",
// "user_data_64 conversion was lossy", ...), so callers see the same errors from either client.
//
// Nothing is allocated per event beyond the objects the API returns: a u128 below 2^64 is written
// and read without building an intermediate BigInt.
import assert from 'node:assert/strict';

import { two_32 } from '../constants';
import { OperationKind, client_operation_specs } from '../ledger/operations';
import {
    account_at as account_offsets, account_balance_at as account_balance_offsets,
    account_filter_at as account_filter_offsets, create_result_at as create_result_offsets,
    query_filter_at as query_filter_offsets, transfer_at as transfer_offsets,
} from '../ledger/record_layout';
import { Operation } from './bindings';
import type {
    Account, AccountBalance, CreateAccountResult, CreateTransferResult, Transfer,
} from './bindings';

export type Result =
    CreateAccountResult | CreateTransferResult | Account | Transfer | AccountBalance;

export interface OperationSpec {
    readonly event_size: number;
    readonly result_size: number;
    /** Query-type operations take exactly one filter per batch and return up to `limit`. */
    readonly filter: boolean;
    readonly name: string;
    /** Where a filter's `limit` sits (filter operations only). */
    readonly limit_offset: number;
}

// The client's view of the one operation table (ledger/operations.ts).
const specs: (OperationSpec | undefined)[] = [];
for (const row of client_operation_specs) {
    specs[row.operation] = Object.freeze({
        event_size: row.event_size, result_size: row.result_size,
        filter: row.kind === OperationKind.filter, name: row.name, limit_offset: row.limit_offset,
    });
    assert.equal(Operation[row.operation as Operation], row.name);
}

/** The sizes of an operation the client sends, or undefined when it sends no such operation. */
export function operation_spec(operation: number): OperationSpec | undefined {
    return specs[operation];
}

const u64_max = (1n << 64n) - 1n;
const u128_max = (1n << 128n) - 1n;

// The field checks. `name` is the field's name in messages; `record` is the object being encoded.
/** Below 2^53 a bigint converts to a Number exactly. */
const number_exact_limit = 2n ** 53n;

function u128_into(view: DataView, at: number, value: unknown, name: string): void {
    if (typeof value !== 'bigint') throw new Error(`${name} must be a BigInt`);
    if (value >= 0n && value < number_exact_limit) {
        // The common case (ids, amounts below 2^53): a Number and two u32 stores cost a third
        // less than setBigUint64, which matters at 8,189 events × 6 such fields per batch.
        const number = Number(value);
        const high = Math.floor(number / two_32);
        view.setUint32(at, number - high * two_32, true);
        view.setUint32(at + 4, high, true);
        view.setUint32(at + 8, 0, true);
        view.setUint32(at + 12, 0, true);
        return;
    }
    if (value >= 0n && value <= u64_max) {
        view.setBigUint64(at, value, true);
        view.setUint32(at + 8, 0, true);
        view.setUint32(at + 12, 0, true);
        return;
    }
    if (value < 0n) throw new Error(`${name} must be positive`);
    if (value > u128_max) throw new Error(`${name} must fit in 128 bits`);
    // setBigUint64 stores the value modulo 2^64: the low half without a mask.
    view.setBigUint64(at, value, true);
    view.setBigUint64(at + 8, value >> 64n, true);
}

function u64_into(view: DataView, at: number, value: unknown, name: string): void {
    if (typeof value !== 'bigint') throw new Error(`${name} must be an unsigned 64-bit BigInt`);
    if (value < 0n || value > u64_max) throw new Error(`${name} conversion was lossy`);
    view.setBigUint64(at, value, true);
}

/** A u32 field takes any number modulo 2^32, as napi_get_value_uint32 does. */
function u32_into(view: DataView, at: number, value: unknown, name: string): void {
    if (typeof value !== 'number') throw new Error(`${name} must be a number`);
    view.setUint32(at, value >>> 0, true);
}

function u16_into(view: DataView, at: number, value: unknown, name: string): void {
    if (typeof value !== 'number') throw new Error(`${name} must be a number`);
    const word = value >>> 0;
    if (word > 0xFFFF) throw new Error(`${name} must be a u16.`);
    view.setUint16(at, word, true);
}

/** Reading a property of null or undefined fails the way napi_get_named_property does. */
function record_of(value: unknown): Record<string, unknown> {
    if (value === null || value === undefined) {
        throw new TypeError('Cannot convert undefined or null to object');
    }
    return value as Record<string, unknown>;
}

function account_into(view: DataView, at: number, value: unknown): void {
    const a = record_of(value);
    u128_into(view, at + account_offsets.id, a.id, 'id');
    u128_into(view, at + account_offsets.debits_pending, a.debits_pending, 'debits_pending');
    u128_into(view, at + account_offsets.debits_posted, a.debits_posted, 'debits_posted');
    u128_into(view, at + account_offsets.credits_pending, a.credits_pending, 'credits_pending');
    u128_into(view, at + account_offsets.credits_posted, a.credits_posted, 'credits_posted');
    u128_into(view, at + account_offsets.user_data_128, a.user_data_128, 'user_data_128');
    u64_into(view, at + account_offsets.user_data_64, a.user_data_64, 'user_data_64');
    u32_into(view, at + account_offsets.user_data_32, a.user_data_32, 'user_data_32');
    u32_into(view, at + account_offsets.reserved, a.reserved, 'reserved');
    u32_into(view, at + account_offsets.ledger, a.ledger, 'ledger');
    u16_into(view, at + account_offsets.code, a.code, 'code');
    u16_into(view, at + account_offsets.flags, a.flags, 'flags');
    u64_into(view, at + account_offsets.timestamp, a.timestamp, 'timestamp');
}

function transfer_into(view: DataView, at: number, value: unknown): void {
    const t = record_of(value);
    u128_into(view, at + transfer_offsets.id, t.id, 'id');
    u128_into(view, at + transfer_offsets.debit_account_id, t.debit_account_id, 'debit_account_id');
    u128_into(view, at + transfer_offsets.credit_account_id, t.credit_account_id,
        'credit_account_id');
    u128_into(view, at + transfer_offsets.amount, t.amount, 'amount');
    u128_into(view, at + transfer_offsets.pending_id, t.pending_id, 'pending_id');
    u128_into(view, at + transfer_offsets.user_data_128, t.user_data_128, 'user_data_128');
    u64_into(view, at + transfer_offsets.user_data_64, t.user_data_64, 'user_data_64');
    u32_into(view, at + transfer_offsets.user_data_32, t.user_data_32, 'user_data_32');
    u32_into(view, at + transfer_offsets.timeout, t.timeout, 'timeout');
    u32_into(view, at + transfer_offsets.ledger, t.ledger, 'ledger');
    u16_into(view, at + transfer_offsets.code, t.code, 'code');
    u16_into(view, at + transfer_offsets.flags, t.flags, 'flags');
    u64_into(view, at + transfer_offsets.timestamp, t.timestamp, 'timestamp');
}

function account_filter_into(view: DataView, at: number, value: unknown): void {
    const f = record_of(value);
    u128_into(view, at + account_filter_offsets.account_id, f.account_id, 'account_id');
    u128_into(view, at + account_filter_offsets.user_data_128, f.user_data_128, 'user_data_128');
    u64_into(view, at + account_filter_offsets.user_data_64, f.user_data_64, 'user_data_64');
    u32_into(view, at + account_filter_offsets.user_data_32, f.user_data_32, 'user_data_32');
    u16_into(view, at + account_filter_offsets.code, f.code, 'code');
    zero(view, at + account_filter_offsets.reserved, 58);
    u64_into(view, at + account_filter_offsets.timestamp_min, f.timestamp_min, 'timestamp_min');
    u64_into(view, at + account_filter_offsets.timestamp_max, f.timestamp_max, 'timestamp_max');
    u32_into(view, at + account_filter_offsets.limit, f.limit, 'limit');
    u32_into(view, at + account_filter_offsets.flags, f.flags, 'flags');
}

function query_filter_into(view: DataView, at: number, value: unknown): void {
    const f = record_of(value);
    u128_into(view, at + query_filter_offsets.user_data_128, f.user_data_128, 'user_data_128');
    u64_into(view, at + query_filter_offsets.user_data_64, f.user_data_64, 'user_data_64');
    u32_into(view, at + query_filter_offsets.user_data_32, f.user_data_32, 'user_data_32');
    u32_into(view, at + query_filter_offsets.ledger, f.ledger, 'ledger');
    u16_into(view, at + query_filter_offsets.code, f.code, 'code');
    zero(view, at + query_filter_offsets.reserved, 6);
    u64_into(view, at + query_filter_offsets.timestamp_min, f.timestamp_min, 'timestamp_min');
    u64_into(view, at + query_filter_offsets.timestamp_max, f.timestamp_max, 'timestamp_max');
    u32_into(view, at + query_filter_offsets.limit, f.limit, 'limit');
    u32_into(view, at + query_filter_offsets.flags, f.flags, 'flags');
}

function zero(view: DataView, at: number, size: number): void {
    for (let index = 0; index < size; index++) view.setUint8(at + index, 0);
}

/**
 * Writes the events at view[at...]: `source` is the array of events (already known to be one), or
 * for query-type operations the one filter object. Throws on the first invalid field, in which
 * case the bytes written so far are garbage the caller must not send.
 */
export function encode_events(
    operation: Operation, source: unknown, view: DataView, at: number,
): void {
    const size = specs[operation]!.event_size;
    if (specs[operation]!.filter) {
        encode_filter(operation, source, view, at);
        return;
    }
    const events = source as readonly unknown[];
    const count = events.length;
    switch (operation) {
        case Operation.create_accounts:
            for (let index = 0; index < count; index++) {
                account_into(view, at + index * size, events[index]);
            }
            return;
        case Operation.create_transfers:
            for (let index = 0; index < count; index++) {
                transfer_into(view, at + index * size, events[index]);
            }
            return;
        case Operation.lookup_accounts:
        case Operation.lookup_transfers:
            for (let index = 0; index < count; index++) {
                u128_into(view, at + index * size, events[index], 'lookup');
            }
            return;
        default:
            assert.fail(`encode_events: operation ${operation} is not sent by the client`);
    }
}

function encode_filter(operation: Operation, filter: unknown, view: DataView, at: number): void {
    if (operation === Operation.get_account_transfers ||
        operation === Operation.get_account_balances) {
        account_filter_into(view, at, filter);
    } else {
        assert.ok(operation === Operation.query_accounts ||
            operation === Operation.query_transfers);
        query_filter_into(view, at, filter);
    }
}

/** The `limit` field of an encoded filter (the result bound of a query batch). */
export function filter_limit(operation: Operation, view: DataView, at: number): number {
    const spec = specs[operation]!;
    assert.ok(spec.filter);
    return view.getUint32(at + spec.limit_offset, true);
}

function u128_at(view: DataView, at: number): bigint {
    const low = view.getBigUint64(at, true);
    if (view.getUint32(at + 8, true) === 0 && view.getUint32(at + 12, true) === 0) return low;
    return (view.getBigUint64(at + 8, true) << 64n) | low;
}

function account_at(view: DataView, at: number): Account {
    return {
        id: u128_at(view, at + account_offsets.id),
        debits_pending: u128_at(view, at + account_offsets.debits_pending),
        debits_posted: u128_at(view, at + account_offsets.debits_posted),
        credits_pending: u128_at(view, at + account_offsets.credits_pending),
        credits_posted: u128_at(view, at + account_offsets.credits_posted),
        user_data_128: u128_at(view, at + account_offsets.user_data_128),
        user_data_64: view.getBigUint64(at + account_offsets.user_data_64, true),
        user_data_32: view.getUint32(at + account_offsets.user_data_32, true),
        reserved: view.getUint32(at + account_offsets.reserved, true),
        ledger: view.getUint32(at + account_offsets.ledger, true),
        code: view.getUint16(at + account_offsets.code, true),
        flags: view.getUint16(at + account_offsets.flags, true),
        timestamp: view.getBigUint64(at + account_offsets.timestamp, true),
    };
}

function transfer_at(view: DataView, at: number): Transfer {
    return {
        id: u128_at(view, at + transfer_offsets.id),
        debit_account_id: u128_at(view, at + transfer_offsets.debit_account_id),
        credit_account_id: u128_at(view, at + transfer_offsets.credit_account_id),
        amount: u128_at(view, at + transfer_offsets.amount),
        pending_id: u128_at(view, at + transfer_offsets.pending_id),
        user_data_128: u128_at(view, at + transfer_offsets.user_data_128),
        user_data_64: view.getBigUint64(at + transfer_offsets.user_data_64, true),
        user_data_32: view.getUint32(at + transfer_offsets.user_data_32, true),
        timeout: view.getUint32(at + transfer_offsets.timeout, true),
        ledger: view.getUint32(at + transfer_offsets.ledger, true),
        code: view.getUint16(at + transfer_offsets.code, true),
        flags: view.getUint16(at + transfer_offsets.flags, true),
        timestamp: view.getBigUint64(at + transfer_offsets.timestamp, true),
    };
}

function balance_at(view: DataView, at: number): AccountBalance {
    return {
        debits_pending: u128_at(view, at + account_balance_offsets.debits_pending),
        debits_posted: u128_at(view, at + account_balance_offsets.debits_posted),
        credits_pending: u128_at(view, at + account_balance_offsets.credits_pending),
        credits_posted: u128_at(view, at + account_balance_offsets.credits_posted),
        timestamp: view.getBigUint64(at + account_balance_offsets.timestamp, true),
    };
}

// tigerbeetle-node's objects carry the reserved word too (its .d.ts does not say so); equal
// objects from both clients need it.
function create_result_at(view: DataView, at: number): CreateAccountResult | CreateTransferResult {
    const result = {
        timestamp: view.getBigUint64(at + create_result_offsets.timestamp, true),
        status: view.getUint32(at + create_result_offsets.status, true),
        reserved: view.getUint32(at + create_result_offsets.reserved, true),
    };
    return result;
}

/** Decodes `count` results of `operation` at view[at...] into the objects the API returns. */
export function decode_results(
    operation: Operation, view: DataView, at: number, count: number,
): Result[] {
    const results: Result[] = [];
    const size = specs[operation]!.result_size;
    switch (operation) {
        case Operation.create_accounts:
        case Operation.create_transfers:
            for (let index = 0; index < count; index++) {
                results.push(create_result_at(view, at + index * size));
            }
            break;
        case Operation.lookup_accounts:
        case Operation.query_accounts:
            for (let index = 0; index < count; index++) {
                results.push(account_at(view, at + index * size));
            }
            break;
        case Operation.lookup_transfers:
        case Operation.get_account_transfers:
        case Operation.query_transfers:
            for (let index = 0; index < count; index++) {
                results.push(transfer_at(view, at + index * size));
            }
            break;
        case Operation.get_account_balances:
            for (let index = 0; index < count; index++) {
                results.push(balance_at(view, at + index * size));
            }
            break;
        default:
            assert.fail(`decode_results: operation ${operation} is not sent by the client`);
    }
    return results;
}
