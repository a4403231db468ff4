// A seeded random workload for the ledger: batches that mix every operation and flag, valid and
// invalid events, duplicates, linked chains, two-phase flows, imported events and queries, with
// timestamps that advance like a wall clock (sometimes far enough for pending transfers to
// expire).
import assert from 'node:assert/strict';
import {
    AF, Account, Op, TF, Transfer, account_encode, transfer_encode, u128_max,
} from './ledger_model';
import { Prng } from '../prng';

export interface Batch {
    operation: number;
    /** For create_*: the timestamp of the last event; otherwise the prepare timestamp. */
    timestamp: bigint;
    input: Uint8Array;
}

const ms = 1_000_000n;
const recent_max = 256;

export class LedgerWorkload {
    readonly prng: Prng;
    /** The timestamp of the last batch; every batch is strictly later. */
    clock = 1_700_000_000_000_000_000n;
    account_ids: bigint[] = [];
    transfer_ids: bigint[] = [];
    pending_ids: bigint[] = [];
    private next_account_id = 1n;
    private next_transfer_id = 1_000_000n;
    private readonly recent_accounts: Account[] = [];
    private readonly recent_transfers: Transfer[] = [];
    private readonly events_max: number;

    /** Accounts known to exist, by ledger, so that most transfers can succeed. */
    private readonly live_accounts = new Map<number, bigint[]>();
    private readonly live_pending: bigint[] = [];

    constructor(seed: number, events_max = 24) {
        assert(events_max >= 1);
        this.prng = new Prng(seed);
        this.events_max = events_max;
        // Some seeds run near the end of time, so that timeouts can overflow.
        if (seed % 4 === 3) this.clock = 9_223_360_000_000_000_000n;
    }

    /** Learns from a reply which objects were created, to aim later events at them. */
    observe(batch: Batch, reply: Uint8Array): void {
        if (batch.operation !== Op.create_accounts && batch.operation !== Op.create_transfers) {
            return;
        }
        const view = new DataView(reply.buffer, reply.byteOffset, reply.byteLength);
        for (let i = 0; i * 16 < reply.length; i++) {
            if (view.getUint32(i * 16 + 8, true) !== 0xffffffff) continue;
            const event = new DataView(batch.input.buffer, batch.input.byteOffset + i * 128, 128);
            const id = event.getBigUint64(0, true) | (event.getBigUint64(8, true) << 64n);
            if (batch.operation === Op.create_accounts) {
                const ledger = event.getUint32(112, true);
                const list = this.live_accounts.get(ledger) ?? [];
                list.push(id);
                this.live_accounts.set(ledger, list);
            } else if ((event.getUint16(118, true) & TF.pending) !== 0) {
                this.live_pending.push(id);
            }
        }
    }

    next(): Batch {
        const roll = this.prng.int(100);
        if (roll < 6 || this.account_ids.length < 4) return this.create_accounts();
        if (roll < 55) return this.create_transfers();
        if (roll < 62) return this.lookup(Op.lookup_accounts, this.account_ids);
        if (roll < 69) return this.lookup(Op.lookup_transfers, this.transfer_ids);
        if (roll < 76) return this.account_filter(Op.get_account_transfers);
        if (roll < 82) return this.account_filter(Op.get_account_balances);
        if (roll < 87) return this.query_filter(Op.query_accounts);
        if (roll < 92) return this.query_filter(Op.query_transfers);
        if (roll < 94) return this.change_events_filter();
        return { operation: Op.pulse, timestamp: this.advance(1), input: new Uint8Array(0) };
    }

    private change_events_filter(): Batch {
        const input = new Uint8Array(64);
        const view = new DataView(input.buffer);
        this.filter_range(view, 0);
        view.setUint32(16, this.prng.chance(1, 20) ? 0 : 1 + this.prng.int(30), true);
        return { operation: Op.get_change_events, timestamp: this.advance(0), input };
    }

    /** Moves the clock on (usually by milliseconds, sometimes by seconds) past `events`. */
    private advance(events: number): bigint {
        const step = this.prng.chance(1, 12) ?
            BigInt(1 + this.prng.int(4000)) * ms : BigInt(1 + this.prng.int(50)) * ms;
        this.clock += step + BigInt(events);
        return this.clock;
    }

    private small(values: number): number {
        return this.prng.int(values);
    }

    private batch_size(): number {
        return this.prng.chance(1, 10) ? 0 : 1 + this.prng.int(this.events_max);
    }

    private create_accounts(): Batch {
        const count = Math.max(1, this.batch_size());
        const imported = this.prng.chance(1, 10);
        const imported_base = this.clock;
        const input = new Uint8Array(count * 128);
        for (let i = 0; i < count; i++) {
            const account = this.account_event(imported, imported_base + BigInt(1 + i));
            account_encode(account, input, i * 128);
            this.remember(this.recent_accounts, account);
        }
        return { operation: Op.create_accounts, timestamp: this.advance(count), input };
    }

    private account_event(imported: boolean, imported_timestamp: bigint): Account {
        const p = this.prng;
        if (this.recent_accounts.length > 0 && p.chance(1, 10)) {
            // A duplicate, sometimes with one field changed.
            const a = { ...p.pick(this.recent_accounts) };
            switch (p.int(8)) {
                case 0: a.user_data_32 = this.small(3); break;
                case 1: a.code = 1 + this.small(3); break;
                case 2: a.user_data_128 = BigInt(this.small(3)); break;
                case 3: a.user_data_64 = BigInt(this.small(3)); break;
                case 4: a.ledger = 1 + this.small(2); break;
                case 5: a.flags ^= AF.history; break;
                default: break;
            }
            return a;
        }
        let flags = 0;
        if (p.chance(1, 5)) flags |= AF.linked;
        if (p.chance(1, 8)) flags |= AF.debits_must_not_exceed_credits;
        if (p.chance(1, 8)) flags |= AF.credits_must_not_exceed_debits;
        if (p.chance(1, 3)) flags |= AF.history;
        if (p.chance(1, 40)) flags |= AF.closed;
        if (imported !== p.chance(1, 30)) flags |= AF.imported;
        if (p.chance(1, 60)) flags |= 1 << (6 + this.small(10));
        const id = p.chance(1, 60) ? p.pick([0n, u128_max]) : this.next_account_id++;
        if (id !== 0n && id !== u128_max) this.account_ids.push(id);
        return {
            id, debits_pending: p.chance(1, 80) ? 1n : 0n, debits_posted: p.chance(1, 80) ? 1n : 0n,
            credits_pending: p.chance(1, 80) ? 1n : 0n, credits_posted: p.chance(1, 80) ? 1n : 0n,
            user_data_128: BigInt(this.small(3)),
            user_data_64: BigInt(this.small(3)), user_data_32: this.small(3),
            reserved: p.chance(1, 80) ? 1 : 0, ledger: p.chance(1, 50) ? 0 : 1 + this.small(2),
            code: p.chance(1, 50) ? 0 : 1 + this.small(3), flags,
            timestamp: has(flags, AF.imported) ?
                (p.chance(1, 15) ? imported_timestamp - 10n * ms :
                    p.chance(1, 25) ? p.pick([0n, 1n << 63n, this.clock + 100_000n * ms]) :
                        imported_timestamp) :
                (p.chance(1, 80) ? 1n : 0n),
        };
    }

    private create_transfers(): Batch {
        const count = this.batch_size();
        const imported = this.prng.chance(1, 12);
        const imported_base = this.clock;
        const input = new Uint8Array(count * 128);
        for (let i = 0; i < count; i++) {
            const transfer = this.transfer_event(imported, imported_base + BigInt(1 + i));
            transfer_encode(transfer, input, i * 128);
            this.remember(this.recent_transfers, transfer);
        }
        return { operation: Op.create_transfers, timestamp: this.advance(count), input };
    }

    private transfer_event(imported: boolean, imported_timestamp: bigint): Transfer {
        const p = this.prng;
        if (this.recent_transfers.length > 0 && p.chance(1, 8)) {
            const t = { ...p.pick(this.recent_transfers) };
            if (p.chance(1, 2)) this.mutate_duplicate(t);
            return t;
        }
        const t = this.transfer_plain();
        const kind = p.int(100);
        if (kind < 20) {
            t.flags |= TF.pending;
            if (p.chance(1, 2)) t.timeout = 1 + this.small(3);
        } else if (kind < 40 && this.pending_ids.length > 0) {
            this.make_post_or_void(t);
        } else if (kind < 48) {
            t.flags |= p.pick([TF.balancing_debit, TF.balancing_credit,
                TF.balancing_debit | TF.balancing_credit]);
            t.amount = p.chance(1, 2) ? u128_max : t.amount;
        } else if (kind < 52) {
            t.flags |= TF.pending | p.pick([TF.closing_debit, TF.closing_credit]);
            if (p.chance(1, 2)) t.timeout = 1 + this.small(3);
        }
        if (p.chance(1, 6)) t.flags |= TF.linked;
        if (imported !== p.chance(1, 60)) {
            t.flags |= TF.imported;
            t.timeout = p.chance(1, 6) ? t.timeout : 0;
            t.timestamp = p.chance(1, 15) ? imported_timestamp - 10n * ms : imported_timestamp;
            if (p.chance(1, 25)) t.timestamp = p.pick([0n, 1n << 63n, this.clock + 100_000n * ms]);
        }
        this.corrupt(t);
        if (has(t.flags, TF.pending) && t.id > 0n && t.id !== u128_max) this.pending_ids.push(t.id);
        if (t.id > 0n && t.id !== u128_max) this.transfer_ids.push(t.id);
        return t;
    }

    private transfer_plain(): Transfer {
        const p = this.prng;
        let ledger = 1 + this.small(2);
        let candidates = this.account_ids;
        const live = this.live_accounts.get(ledger);
        if (live !== undefined && live.length >= 2 && p.chance(9, 10)) candidates = live;
        const debit = p.pick(candidates);
        let credit = p.pick(candidates);
        if (credit === debit) credit = p.pick(candidates);
        if (candidates !== live && p.chance(1, 2)) ledger = 1 + this.small(2);
        return {
            id: this.next_transfer_id++, debit_account_id: debit, credit_account_id: credit,
            amount: p.chance(1, 30) ? u128_max - BigInt(this.small(5)) : BigInt(p.int(100)),
            pending_id: 0n, user_data_128: BigInt(this.small(3)),
            user_data_64: BigInt(this.small(3)), user_data_32: this.small(3), timeout: 0,
            ledger, code: 1 + this.small(3), flags: 0, timestamp: 0n,
        };
    }

    private make_post_or_void(t: Transfer): void {
        const p = this.prng;
        t.flags |= p.chance(1, 2) ? TF.post_pending_transfer : TF.void_pending_transfer;
        const choice = p.int(10);
        t.pending_id = choice < 6 && this.live_pending.length > 0 ? p.pick(this.live_pending) :
            choice < 9 ? p.pick(this.pending_ids) : p.pick(this.transfer_ids);
        t.amount = p.pick([0n, u128_max, BigInt(p.int(60)), BigInt(p.int(200))]);
        if (p.chance(2, 3)) { t.debit_account_id = 0n; t.credit_account_id = 0n; }
        if (p.chance(2, 3)) { t.ledger = 0; t.code = 0; }
        if (p.chance(1, 2)) { t.user_data_128 = 0n; t.user_data_64 = 0n; t.user_data_32 = 0; }
    }

    private mutate_duplicate(t: Transfer): void {
        const p = this.prng;
        switch (p.int(11)) {
            case 0: t.flags ^= TF.linked; break;
            case 1: t.pending_id ^= 1n; break;
            case 2: t.timeout = t.timeout === 0 ? 1 : t.timeout - 1; break;
            case 3: t.debit_account_id = p.pick(this.account_ids); break;
            case 4: t.credit_account_id = p.pick(this.account_ids); break;
            case 5: if (t.amount < u128_max) t.amount += 1n; break;
            case 6: t.user_data_128 = BigInt(this.small(3)); break;
            case 7: t.user_data_64 = BigInt(this.small(3)); break;
            case 8: t.user_data_32 = this.small(3); break;
            case 9: t.ledger = this.small(3); break;
            default: t.code = this.small(4); break;
        }
    }

    /** Sometimes breaks one rule, to reach each error status. */
    private corrupt(t: Transfer): void {
        const p = this.prng;
        if (!p.chance(1, 6)) return;
        switch (p.int(14)) {
            case 0: t.id = p.pick([0n, u128_max]); break;
            case 1: t.debit_account_id = p.pick([0n, u128_max, 999_999n]); break;
            case 2: t.credit_account_id = p.pick([0n, u128_max, 999_999n]); break;
            case 3: t.credit_account_id = t.debit_account_id; break;
            case 4: t.pending_id = p.pick([1n, u128_max, t.id, 999_999n]); break;
            case 5: t.timeout = 1 + this.small(2); break;
            case 6: t.ledger = p.pick([0, 1, 2, 3]); break;
            case 7: t.code = 0; break;
            case 8: t.flags |= 1 << (9 + this.small(7)); break;
            case 9: t.timestamp = 1n; break;
            case 10: t.flags |= p.pick([TF.pending, TF.post_pending_transfer, TF.closing_debit]);
                break;
            case 11: t.timeout = 0xffffffff; t.flags |= TF.pending; break;
            case 12: t.amount = u128_max; break;
            default: t.flags |= TF.void_pending_transfer | TF.post_pending_transfer; break;
        }
    }

    private remember<T>(recent: T[], item: T): void {
        if (recent.length >= recent_max) recent.splice(this.prng.int(recent.length), 1);
        recent.push(item);
    }

    private lookup(operation: number, known: bigint[]): Batch {
        const count = this.batch_size();
        const input = new Uint8Array(count * 16);
        for (let i = 0; i < count; i++) {
            const id = known.length > 0 && this.prng.chance(4, 5) ?
                this.prng.pick(known) : BigInt(this.prng.int(2_000_000));
            for (let b = 0; b < 16; b++) input[i * 16 + b] = Number((id >> BigInt(8 * b)) & 255n);
        }
        return { operation, timestamp: this.advance(0), input };
    }

    private timestamp_bound(): bigint {
        if (this.prng.chance(1, 2)) return 0n;
        const back = BigInt(this.prng.int(5000)) * ms;
        return this.clock > back ? this.clock - back : 0n;
    }

    private account_filter(operation: number): Batch {
        const p = this.prng;
        const input = new Uint8Array(128);
        const view = new DataView(input.buffer);
        const id = this.account_ids.length > 0 && p.chance(9, 10) ?
            p.pick(this.account_ids) : p.pick([0n, u128_max, 999_999n]);
        view.setBigUint64(0, id & 0xffffffffffffffffn, true);
        view.setBigUint64(8, id >> 64n, true);
        if (p.chance(1, 5)) input[16] = this.small(3);
        if (p.chance(1, 5)) input[32] = this.small(3);
        if (p.chance(1, 5)) input[40] = this.small(3);
        if (p.chance(1, 5)) input[44] = this.small(4);
        if (p.chance(1, 50)) input[60] = 1;
        this.filter_range(view, 104);
        view.setUint32(120, p.chance(1, 20) ? 0 : 1 + p.int(30), true);
        view.setUint32(124, p.chance(1, 30) ? 8 : p.int(8), true);
        return { operation, timestamp: this.advance(0), input };
    }

    private filter_range(view: DataView, offset: number): void {
        let min = this.timestamp_bound();
        let max = this.timestamp_bound();
        if (min > max && max !== 0n && this.prng.chance(4, 5)) [min, max] = [max, min];
        view.setBigUint64(offset, min, true);
        view.setBigUint64(offset + 8, max, true);
    }

    private query_filter(operation: number): Batch {
        const p = this.prng;
        const input = new Uint8Array(64);
        const view = new DataView(input.buffer);
        if (p.chance(1, 4)) input[0] = this.small(3);
        if (p.chance(1, 4)) input[16] = this.small(3);
        if (p.chance(1, 4)) input[24] = this.small(3);
        if (p.chance(1, 3)) input[28] = this.small(3);
        if (p.chance(1, 4)) input[32] = this.small(4);
        if (p.chance(1, 50)) input[36] = 1;
        this.filter_range(view, 40);
        view.setUint32(56, p.chance(1, 20) ? 0 : 1 + p.int(30), true);
        view.setUint32(60, p.chance(1, 30) ? 2 : p.int(2), true);
        return { operation, timestamp: this.advance(0), input };
    }
}

function has(flags: number, flag: number): boolean {
    return (flags & flag) !== 0;
}
