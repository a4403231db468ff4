// BigInt encoders/decoders for ledger records and a small driver (tests, tools, the model test).
import { Ledger } from './ledger';
import { Operation } from './constants';
import {
    account_at, account_size, create_result_at, transfer_at, transfer_size,
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
    view.setBigUint64(offset, value & 0xffffffffffffffffn, true);
    view.setBigUint64(offset + 8, value >> 64n, true);
}

function get_u128(view: DataView, offset: number): bigint {
    return view.getBigUint64(offset, true) | (view.getBigUint64(offset + 8, true) << 64n);
}

export function encode_accounts(accounts: AccountInput[]): Uint8Array {
    const bytes = new Uint8Array(accounts.length * account_size);
    const view = new DataView(bytes.buffer);
    accounts.forEach((a, i) => {
        const o = i * 128;
        put_u128(view, o + account_at.id, a.id);
        put_u128(view, o + account_at.debits_pending, a.debits_pending ?? 0n);
        put_u128(view, o + account_at.debits_posted, a.debits_posted ?? 0n);
        put_u128(view, o + account_at.credits_pending, a.credits_pending ?? 0n);
        put_u128(view, o + account_at.credits_posted, a.credits_posted ?? 0n);
        put_u128(view, o + account_at.user_data_128, a.user_data_128 ?? 0n);
        view.setBigUint64(o + account_at.user_data_64, a.user_data_64 ?? 0n, true);
        view.setUint32(o + account_at.user_data_32, a.user_data_32 ?? 0, true);
        view.setUint32(o + account_at.reserved, a.reserved ?? 0, true);
        view.setUint32(o + account_at.ledger, a.ledger ?? 1, true);
        view.setUint16(o + account_at.code, a.code ?? 1, true);
        view.setUint16(o + account_at.flags, a.flags ?? 0, true);
        view.setBigUint64(o + account_at.timestamp, a.timestamp ?? 0n, true);
    });
    return bytes;
}

export function encode_transfers(transfers: TransferInput[]): Uint8Array {
    const bytes = new Uint8Array(transfers.length * transfer_size);
    const view = new DataView(bytes.buffer);
    transfers.forEach((t, i) => {
        const o = i * 128;
        put_u128(view, o + transfer_at.id, t.id);
        put_u128(view, o + transfer_at.debit_account_id, t.debit_account_id ?? 0n);
        put_u128(view, o + transfer_at.credit_account_id, t.credit_account_id ?? 0n);
        put_u128(view, o + transfer_at.amount, t.amount ?? 0n);
        put_u128(view, o + transfer_at.pending_id, t.pending_id ?? 0n);
        put_u128(view, o + transfer_at.user_data_128, t.user_data_128 ?? 0n);
        view.setBigUint64(o + transfer_at.user_data_64, t.user_data_64 ?? 0n, true);
        view.setUint32(o + transfer_at.user_data_32, t.user_data_32 ?? 0, true);
        view.setUint32(o + transfer_at.timeout, t.timeout ?? 0, true);
        view.setUint32(o + transfer_at.ledger, t.ledger ?? 1, true);
        view.setUint16(o + transfer_at.code, t.code ?? 1, true);
        view.setUint16(o + transfer_at.flags, t.flags ?? 0, true);
        view.setBigUint64(o + transfer_at.timestamp, t.timestamp ?? 0n, true);
    });
    return bytes;
}

export interface Result { timestamp: bigint; status: number }

export function decode_results(bytes: Uint8Array): Result[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const results: Result[] = [];
    for (let o = 0; o < bytes.length; o += 16) {
        results.push({ timestamp: view.getBigUint64(o + create_result_at.timestamp, true),
            status: view.getUint32(o + create_result_at.status, true) });
    }
    return results;
}

export interface AccountRecord {
    id: bigint; debits_pending: bigint; debits_posted: bigint; credits_pending: bigint;
    credits_posted: bigint; user_data_128: bigint; flags: number; timestamp: bigint;
    ledger: number; code: number;
}

export function decode_accounts(bytes: Uint8Array): AccountRecord[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: AccountRecord[] = [];
    for (let o = 0; o < bytes.length; o += 128) {
        const A = account_at;
        out.push({
            id: get_u128(view, o + A.id), debits_pending: get_u128(view, o + A.debits_pending),
            debits_posted: get_u128(view, o + A.debits_posted),
            credits_pending: get_u128(view, o + A.credits_pending),
            credits_posted: get_u128(view, o + A.credits_posted),
            user_data_128: get_u128(view, o + A.user_data_128),
            ledger: view.getUint32(o + A.ledger, true), code: view.getUint16(o + A.code, true),
            flags: view.getUint16(o + A.flags, true),
            timestamp: view.getBigUint64(o + A.timestamp, true),
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
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: TransferRecord[] = [];
    for (let o = 0; o < bytes.length; o += 128) {
        const T = transfer_at;
        out.push({
            id: get_u128(view, o + T.id),
            debit_account_id: get_u128(view, o + T.debit_account_id),
            credit_account_id: get_u128(view, o + T.credit_account_id),
            amount: get_u128(view, o + T.amount), pending_id: get_u128(view, o + T.pending_id),
            user_data_128: get_u128(view, o + T.user_data_128),
            user_data_64: view.getBigUint64(o + T.user_data_64, true),
            user_data_32: view.getUint32(o + T.user_data_32, true),
            timeout: view.getUint32(o + T.timeout, true),
            ledger: view.getUint32(o + T.ledger, true),
            code: view.getUint16(o + T.code, true), flags: view.getUint16(o + T.flags, true),
            timestamp: view.getBigUint64(o + T.timestamp, true),
        });
    }
    return out;
}

export function encode_ids(ids: bigint[]): Uint8Array {
    const bytes = new Uint8Array(ids.length * 16);
    const view = new DataView(bytes.buffer);
    ids.forEach((id, i) => put_u128(view, i * 16, id));
    return bytes;
}

export interface AccountFilterInput {
    account_id: bigint; user_data_128?: bigint; user_data_64?: bigint; user_data_32?: number;
    code?: number; timestamp_min?: bigint; timestamp_max?: bigint; limit?: number; flags?: number;
    reserved?: number;
}

export function encode_account_filter(f: AccountFilterInput): Uint8Array {
    const bytes = new Uint8Array(128);
    const view = new DataView(bytes.buffer);
    put_u128(view, 0, f.account_id);
    put_u128(view, 16, f.user_data_128 ?? 0n);
    view.setBigUint64(32, f.user_data_64 ?? 0n, true);
    view.setUint32(40, f.user_data_32 ?? 0, true);
    view.setUint16(44, f.code ?? 0, true);
    view.setUint8(60, f.reserved ?? 0);
    view.setBigUint64(104, f.timestamp_min ?? 0n, true);
    view.setBigUint64(112, f.timestamp_max ?? 0n, true);
    view.setUint32(120, f.limit ?? 8189, true);
    view.setUint32(124, f.flags ?? 3, true);
    return bytes;
}

export interface QueryFilterInput {
    user_data_128?: bigint; user_data_64?: bigint; user_data_32?: number; ledger?: number;
    code?: number; timestamp_min?: bigint; timestamp_max?: bigint; limit?: number; flags?: number;
    reserved?: number;
}

export function encode_query_filter(f: QueryFilterInput): Uint8Array {
    const bytes = new Uint8Array(64);
    const view = new DataView(bytes.buffer);
    put_u128(view, 0, f.user_data_128 ?? 0n);
    view.setBigUint64(16, f.user_data_64 ?? 0n, true);
    view.setUint32(24, f.user_data_32 ?? 0, true);
    view.setUint32(28, f.ledger ?? 0, true);
    view.setUint16(32, f.code ?? 0, true);
    view.setUint8(36, f.reserved ?? 0);
    view.setBigUint64(40, f.timestamp_min ?? 0n, true);
    view.setBigUint64(48, f.timestamp_max ?? 0n, true);
    view.setUint32(56, f.limit ?? 8189, true);
    view.setUint32(60, f.flags ?? 0, true);
    return bytes;
}

/** Drives a Ledger with a monotonic fake clock, the way the replica would. */
export class Driver {
    readonly output = new Uint8Array(2 * 1024 * 1024);
    clock = 1_000_000_000n;

    constructor(readonly ledger: Ledger) {}

    run(operation: number, input: Uint8Array, advance = 0n): Uint8Array {
        const events = operation === Operation.create_accounts ||
            operation === Operation.create_transfers ? BigInt(input.length / 128) : 0n;
        this.clock += advance + events + 1n;
        if (operation === Operation.pulse) this.clock += 8189n;
        this.ledger.prefetch(operation, input, 0, input.length);
        const length = this.ledger.execute(operation, this.clock, input, 0, input.length,
            this.output, 0);
        return this.output.slice(0, length);
    }

    accounts(accounts: AccountInput[]): Result[] {
        return decode_results(this.run(Operation.create_accounts, encode_accounts(accounts)));
    }

    transfers(transfers: TransferInput[]): Result[] {
        return decode_results(this.run(Operation.create_transfers, encode_transfers(transfers)));
    }

    statuses_accounts(accounts: AccountInput[]): number[] {
        return this.accounts(accounts).map((r) => r.status);
    }

    statuses_transfers(transfers: TransferInput[]): number[] {
        return this.transfers(transfers).map((r) => r.status);
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
