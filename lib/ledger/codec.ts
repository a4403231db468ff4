// BigInt encoders/decoders for ledger records and a small driver (tests, tools, the model test).
// Encoders assert that every value fits its field: a DataView store would wrap it silently.
import assert from 'node:assert/strict';

import { Ledger } from './ledger';
import { Operation } from './constants';
import {
    account_at, account_filter_at, account_filter_size, account_size, create_result_at,
    create_result_size, query_filter_at, query_filter_size, transfer_at, transfer_size,
} from './record_layout';

export interface AccountInput {
    id: bigint; debits_pending?: bigint; debits_posted?: bigint; credits_pending?: bigint;
    credits_posted?: bigint; user_data_128?: bigint; user_data_64?: bigint;
    user_data_32?: number; reserved?: number; ledger?: number; code?: number; flags?: number;
    timestamp?: bigint;
}

export interface TransferInput {
    id: bigint; debit_account_id?: bigint; credit_account_id?: bigint; amount?: bigint;
    pending_id?: bigint; user_data_128?: bigint; user_data_64?: bigint; user_data_32?: number;
    timeout?: number; ledger?: number; code?: number; flags?: number; timestamp?: bigint;
}

function put_u128(view: DataView, offset: number, value: bigint): void {
    if (!(value >= 0n && value < (1n << 128n))) assert.fail(`codec: ${value} is not a u128`);
    view.setBigUint64(offset, value & 0xffffffffffffffffn, true);
    view.setBigUint64(offset + 8, value >> 64n, true);
}

function put_u64(view: DataView, offset: number, value: bigint): void {
    if (!(value >= 0n && value < (1n << 64n))) assert.fail(`codec: ${value} is not a u64`);
    view.setBigUint64(offset, value, true);
}

function put_u32(view: DataView, offset: number, value: number): void {
    if (!(Number.isInteger(value) && value >= 0 && value <= 0xffffffff)) {
        assert.fail(`codec: ${value} is not a u32`);
    }
    view.setUint32(offset, value, true);
}

function put_u16(view: DataView, offset: number, value: number): void {
    if (!(Number.isInteger(value) && value >= 0 && value <= 0xffff)) {
        assert.fail(`codec: ${value} is not a u16`);
    }
    view.setUint16(offset, value, true);
}

function put_u8(view: DataView, offset: number, value: number): void {
    if (!(Number.isInteger(value) && value >= 0 && value <= 0xff)) {
        assert.fail(`codec: ${value} is not a u8`);
    }
    view.setUint8(offset, value);
}

/** A DataView over `bytes`, which must hold whole records of `size` bytes. */
function records_view(bytes: Uint8Array, size: number): DataView {
    assert.equal(bytes.length % size, 0, `codec: ${bytes.length} bytes are not whole records`);
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function get_u128(view: DataView, offset: number): bigint {
    return view.getBigUint64(offset, true) | (view.getBigUint64(offset + 8, true) << 64n);
}

export function encode_accounts(accounts: AccountInput[]): Uint8Array {
    const bytes = new Uint8Array(accounts.length * account_size);
    const view = new DataView(bytes.buffer);
    accounts.forEach((account, index) => {
        const at = index * account_size;
        put_u128(view, at + account_at.id, account.id);
        put_u128(view, at + account_at.debits_pending, account.debits_pending ?? 0n);
        put_u128(view, at + account_at.debits_posted, account.debits_posted ?? 0n);
        put_u128(view, at + account_at.credits_pending, account.credits_pending ?? 0n);
        put_u128(view, at + account_at.credits_posted, account.credits_posted ?? 0n);
        put_u128(view, at + account_at.user_data_128, account.user_data_128 ?? 0n);
        put_u64(view, at + account_at.user_data_64, account.user_data_64 ?? 0n);
        put_u32(view, at + account_at.user_data_32, account.user_data_32 ?? 0);
        put_u32(view, at + account_at.reserved, account.reserved ?? 0);
        put_u32(view, at + account_at.ledger, account.ledger ?? 1);
        put_u16(view, at + account_at.code, account.code ?? 1);
        put_u16(view, at + account_at.flags, account.flags ?? 0);
        put_u64(view, at + account_at.timestamp, account.timestamp ?? 0n);
    });
    return bytes;
}

export function encode_transfers(transfers: TransferInput[]): Uint8Array {
    const bytes = new Uint8Array(transfers.length * transfer_size);
    const view = new DataView(bytes.buffer);
    transfers.forEach((transfer, index) => {
        const at = index * transfer_size;
        put_u128(view, at + transfer_at.id, transfer.id);
        put_u128(view, at + transfer_at.debit_account_id, transfer.debit_account_id ?? 0n);
        put_u128(view, at + transfer_at.credit_account_id, transfer.credit_account_id ?? 0n);
        put_u128(view, at + transfer_at.amount, transfer.amount ?? 0n);
        put_u128(view, at + transfer_at.pending_id, transfer.pending_id ?? 0n);
        put_u128(view, at + transfer_at.user_data_128, transfer.user_data_128 ?? 0n);
        put_u64(view, at + transfer_at.user_data_64, transfer.user_data_64 ?? 0n);
        put_u32(view, at + transfer_at.user_data_32, transfer.user_data_32 ?? 0);
        put_u32(view, at + transfer_at.timeout, transfer.timeout ?? 0);
        put_u32(view, at + transfer_at.ledger, transfer.ledger ?? 1);
        put_u16(view, at + transfer_at.code, transfer.code ?? 1);
        put_u16(view, at + transfer_at.flags, transfer.flags ?? 0);
        put_u64(view, at + transfer_at.timestamp, transfer.timestamp ?? 0n);
    });
    return bytes;
}

export interface Result { timestamp: bigint; status: number }

export function decode_results(bytes: Uint8Array): Result[] {
    const view = records_view(bytes, create_result_size);
    const results: Result[] = [];
    for (let at = 0; at < bytes.length; at += create_result_size) {
        results.push({ timestamp: view.getBigUint64(at + create_result_at.timestamp, true),
            status: view.getUint32(at + create_result_at.status, true) });
        assert.equal(view.getUint32(at + create_result_at.reserved, true), 0);
    }
    return results;
}

export interface AccountRecord {
    id: bigint; debits_pending: bigint; debits_posted: bigint; credits_pending: bigint;
    credits_posted: bigint; user_data_128: bigint; flags: number; timestamp: bigint;
    ledger: number; code: number;
}

export function decode_accounts(bytes: Uint8Array): AccountRecord[] {
    const view = records_view(bytes, account_size);
    const out: AccountRecord[] = [];
    for (let at = 0; at < bytes.length; at += account_size) {
        out.push({
            id: get_u128(view, at + account_at.id),
            debits_pending: get_u128(view, at + account_at.debits_pending),
            debits_posted: get_u128(view, at + account_at.debits_posted),
            credits_pending: get_u128(view, at + account_at.credits_pending),
            credits_posted: get_u128(view, at + account_at.credits_posted),
            user_data_128: get_u128(view, at + account_at.user_data_128),
            ledger: view.getUint32(at + account_at.ledger, true),
            code: view.getUint16(at + account_at.code, true),
            flags: view.getUint16(at + account_at.flags, true),
            timestamp: view.getBigUint64(at + account_at.timestamp, true),
        });
    }
    return out;
}

export interface TransferRecord {
    id: bigint; debit_account_id: bigint; credit_account_id: bigint; amount: bigint;
    pending_id: bigint; user_data_128: bigint; user_data_64: bigint; user_data_32: number;
    timeout: number; ledger: number; code: number; flags: number; timestamp: bigint;
}

export function decode_transfers(bytes: Uint8Array): TransferRecord[] {
    const view = records_view(bytes, transfer_size);
    const out: TransferRecord[] = [];
    for (let at = 0; at < bytes.length; at += transfer_size) {
        out.push({
            id: get_u128(view, at + transfer_at.id),
            debit_account_id: get_u128(view, at + transfer_at.debit_account_id),
            credit_account_id: get_u128(view, at + transfer_at.credit_account_id),
            amount: get_u128(view, at + transfer_at.amount),
            pending_id: get_u128(view, at + transfer_at.pending_id),
            user_data_128: get_u128(view, at + transfer_at.user_data_128),
            user_data_64: view.getBigUint64(at + transfer_at.user_data_64, true),
            user_data_32: view.getUint32(at + transfer_at.user_data_32, true),
            timeout: view.getUint32(at + transfer_at.timeout, true),
            ledger: view.getUint32(at + transfer_at.ledger, true),
            code: view.getUint16(at + transfer_at.code, true),
            flags: view.getUint16(at + transfer_at.flags, true),
            timestamp: view.getBigUint64(at + transfer_at.timestamp, true),
        });
    }
    return out;
}

export function encode_ids(ids: bigint[]): Uint8Array {
    const bytes = new Uint8Array(ids.length * 16);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, index) => put_u128(view, index * 16, id));
    return bytes;
}

export interface AccountFilterInput {
    account_id: bigint; user_data_128?: bigint; user_data_64?: bigint; user_data_32?: number;
    code?: number; timestamp_min?: bigint; timestamp_max?: bigint; limit?: number; flags?: number;
    reserved?: number;
}

/** `reserved` sets one byte inside each filter's reserved bytes (to test that it is refused). */
const account_filter_reserved_probe = account_filter_at.reserved + 14;
const query_filter_reserved_probe = query_filter_at.reserved + 2;
assert(account_filter_reserved_probe < account_filter_at.timestamp_min);
assert(query_filter_reserved_probe < query_filter_at.timestamp_min);

export function encode_account_filter(filter: AccountFilterInput): Uint8Array {
    const bytes = new Uint8Array(account_filter_size);
    const view = new DataView(bytes.buffer);
    const at = account_filter_at;
    put_u128(view, at.account_id, filter.account_id);
    put_u128(view, at.user_data_128, filter.user_data_128 ?? 0n);
    put_u64(view, at.user_data_64, filter.user_data_64 ?? 0n);
    put_u32(view, at.user_data_32, filter.user_data_32 ?? 0);
    put_u16(view, at.code, filter.code ?? 0);
    put_u8(view, account_filter_reserved_probe, filter.reserved ?? 0);
    put_u64(view, at.timestamp_min, filter.timestamp_min ?? 0n);
    put_u64(view, at.timestamp_max, filter.timestamp_max ?? 0n);
    put_u32(view, at.limit, filter.limit ?? 8189);
    put_u32(view, at.flags, filter.flags ?? 3);
    return bytes;
}

export interface QueryFilterInput {
    user_data_128?: bigint; user_data_64?: bigint; user_data_32?: number; ledger?: number;
    code?: number; timestamp_min?: bigint; timestamp_max?: bigint; limit?: number; flags?: number;
    reserved?: number;
}

export function encode_query_filter(filter: QueryFilterInput): Uint8Array {
    const bytes = new Uint8Array(query_filter_size);
    const view = new DataView(bytes.buffer);
    const at = query_filter_at;
    put_u128(view, at.user_data_128, filter.user_data_128 ?? 0n);
    put_u64(view, at.user_data_64, filter.user_data_64 ?? 0n);
    put_u32(view, at.user_data_32, filter.user_data_32 ?? 0);
    put_u32(view, at.ledger, filter.ledger ?? 0);
    put_u16(view, at.code, filter.code ?? 0);
    put_u8(view, query_filter_reserved_probe, filter.reserved ?? 0);
    put_u64(view, at.timestamp_min, filter.timestamp_min ?? 0n);
    put_u64(view, at.timestamp_max, filter.timestamp_max ?? 0n);
    put_u32(view, at.limit, filter.limit ?? 8189);
    put_u32(view, at.flags, filter.flags ?? 0);
    return bytes;
}

/** Drives a Ledger with a monotonic fake clock, the way the replica would. */
export class Driver {
    readonly output = new Uint8Array(2 * 1024 * 1024);
    clock = 1_000_000_000n;

    constructor(readonly ledger: Ledger) {}

    run(operation: number, input: Uint8Array, advance = 0n): Uint8Array {
        assert(advance >= 0n, 'driver: the clock only moves forward');
        assert(input.length <= this.output.length);
        const events = operation === Operation.create_accounts ||
            operation === Operation.create_transfers ? BigInt(input.length / 128) : 0n;
        this.clock += advance + events + 1n;
        if (operation === Operation.pulse) this.clock += 8189n;
        assert(this.clock < (1n << 63n), 'driver: the clock ran out');
        this.ledger.prefetch(operation, input, 0, input.length);
        const length = this.ledger.execute(operation, this.clock, input, 0, input.length,
            this.output, 0);
        assert(length >= 0 && length <= this.output.length);
        return this.output.slice(0, length);
    }

    accounts(accounts: AccountInput[]): Result[] {
        return decode_results(this.run(Operation.create_accounts, encode_accounts(accounts)));
    }

    transfers(transfers: TransferInput[]): Result[] {
        return decode_results(this.run(Operation.create_transfers, encode_transfers(transfers)));
    }

    statuses_accounts(accounts: AccountInput[]): number[] {
        return this.accounts(accounts).map((result) => result.status);
    }

    statuses_transfers(transfers: TransferInput[]): number[] {
        return this.transfers(transfers).map((result) => result.status);
    }

    lookup_accounts(ids: bigint[]): AccountRecord[] {
        return decode_accounts(this.run(Operation.lookup_accounts, encode_ids(ids)));
    }

    lookup_transfers(ids: bigint[]): TransferRecord[] {
        return decode_transfers(this.run(Operation.lookup_transfers, encode_ids(ids)));
    }

    pulse(advance: bigint): void {
        this.run(Operation.pulse, new Uint8Array(0), advance);
    }
}
