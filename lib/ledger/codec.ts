// BigInt encoders/decoders for ledger records and a small driver (tests, tools, the model test).
import { Ledger } from './ledger';
import { Operation } from './constants';

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
    const bytes = new Uint8Array(accounts.length * 128);
    const view = new DataView(bytes.buffer);
    accounts.forEach((a, i) => {
        const o = i * 128;
        put_u128(view, o, a.id);
        put_u128(view, o + 16, a.debits_pending ?? 0n);
        put_u128(view, o + 32, a.debits_posted ?? 0n);
        put_u128(view, o + 48, a.credits_pending ?? 0n);
        put_u128(view, o + 64, a.credits_posted ?? 0n);
        put_u128(view, o + 80, a.user_data_128 ?? 0n);
        view.setBigUint64(o + 96, a.user_data_64 ?? 0n, true);
        view.setUint32(o + 104, a.user_data_32 ?? 0, true);
        view.setUint32(o + 108, a.reserved ?? 0, true);
        view.setUint32(o + 112, a.ledger ?? 1, true);
        view.setUint16(o + 116, a.code ?? 1, true);
        view.setUint16(o + 118, a.flags ?? 0, true);
        view.setBigUint64(o + 120, a.timestamp ?? 0n, true);
    });
    return bytes;
}

export function encode_transfers(transfers: TransferInput[]): Uint8Array {
    const bytes = new Uint8Array(transfers.length * 128);
    const view = new DataView(bytes.buffer);
    transfers.forEach((t, i) => {
        const o = i * 128;
        put_u128(view, o, t.id);
        put_u128(view, o + 16, t.debit_account_id ?? 0n);
        put_u128(view, o + 32, t.credit_account_id ?? 0n);
        put_u128(view, o + 48, t.amount ?? 0n);
        put_u128(view, o + 64, t.pending_id ?? 0n);
        put_u128(view, o + 80, t.user_data_128 ?? 0n);
        view.setBigUint64(o + 96, t.user_data_64 ?? 0n, true);
        view.setUint32(o + 104, t.user_data_32 ?? 0, true);
        view.setUint32(o + 108, t.timeout ?? 0, true);
        view.setUint32(o + 112, t.ledger ?? 1, true);
        view.setUint16(o + 116, t.code ?? 1, true);
        view.setUint16(o + 118, t.flags ?? 0, true);
        view.setBigUint64(o + 120, t.timestamp ?? 0n, true);
    });
    return bytes;
}

export interface Result { timestamp: bigint; status: number }

export function decode_results(bytes: Uint8Array): Result[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const results: Result[] = [];
    for (let o = 0; o < bytes.length; o += 16) {
        results.push({ timestamp: view.getBigUint64(o, true), status: view.getUint32(o + 8,
            true) });
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
        out.push({
            id: get_u128(view, o), debits_pending: get_u128(view, o + 16),
            debits_posted: get_u128(view, o + 32), credits_pending: get_u128(view, o + 48),
            credits_posted: get_u128(view, o + 64), user_data_128: get_u128(view, o + 80),
            ledger: view.getUint32(o + 112, true), code: view.getUint16(o + 116, true),
            flags: view.getUint16(o + 118, true), timestamp: view.getBigUint64(o + 120, true),
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
        out.push({
            id: get_u128(view, o), debit_account_id: get_u128(view, o + 16),
            credit_account_id: get_u128(view, o + 32), amount: get_u128(view, o + 48),
            pending_id: get_u128(view, o + 64), user_data_128: get_u128(view, o + 80),
            user_data_64: view.getBigUint64(o + 96, true), user_data_32: view.getUint32(o + 104,
                true),
            timeout: view.getUint32(o + 108, true), ledger: view.getUint32(o + 112, true),
            code: view.getUint16(o + 116, true), flags: view.getUint16(o + 118, true),
            timestamp: view.getBigUint64(o + 120, true),
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
