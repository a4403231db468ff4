// The prefetch of one batch over the two grooves (groove.ts): every record the batch can touch,
// pinned before execute, in two stages.
// 1. The ids the batch names, as Ledger.prefetch names them: a create_transfers event's id, its
//    two accounts and its pending transfer; a create_accounts event's id; the ids of a lookup;
//    the account of get_account_transfers / get_account_balances.
//    An imported event's timestamp is probed in the other kind's groove (the ledger refuses an
//    imported timestamp that an object of the other kind has: find_timestamp).
// 2. create_transfers only, once the pending transfers are pinned: their two accounts (a post
//    or void may leave its accounts zero and take the pending transfer's).
// A pulse (`start_pulse`) pins the transfers it will expire (Ledger.pulse_expiring names them,
// from the ledger's in-memory expiry order), then, in stage 2, their accounts.
// Each stage's reads go to the device together (both grooves at once); `advance` answers true
// when execute may run, or when a block was refused (`refusal`, the batch then abandoned).
// A batch pins at most 2 transfers and 4 accounts per event: the grooves' pinned_max must allow
// it (asserted at start). Queries and change events pin nothing here: their indexes are not all
// in the grid yet (see groove.ts).
import assert from 'node:assert/strict';

import {
    AccountFlags, Operation, TransferFlags, batch_events_max, record_words,
} from './constants';
import type { GrooveRecordStore } from './groove';
import { account_at, transfer_at } from './record_layout';
import type { BlockRefusal } from '../lsm/tree';

const w_debit_account = transfer_at.debit_account_id / 4;
const w_credit_account = transfer_at.credit_account_id / 4;
const w_pending_id = transfer_at.pending_id / 4;
const w_timestamp_lo = transfer_at.timestamp / 4, w_timestamp_hi = w_timestamp_lo + 1;
// Flags are the high half of the word that holds the code (u16 code, then u16 flags).
const w_account_code_flags = account_at.code / 4;
const w_transfer_code_flags = transfer_at.code / 4;
assert(account_at.flags === account_at.code + 2 && transfer_at.flags === transfer_at.code + 2);
assert(account_at.timestamp === transfer_at.timestamp);

const stage_idle = 0;
const stage_ids = 1;
const stage_pending_accounts = 2;

export class GroovePrefetch {
    readonly accounts: GrooveRecordStore;
    readonly transfers: GrooveRecordStore;
    /** Why the prefetch ended early (a block refused), or null. */
    refusal: BlockRefusal | null = null;
    private stage = stage_idle;
    private input: Uint32Array = new Uint32Array(0);
    private base = 0;
    private events = 0;
    /** A pulse's expiring transfers (their ids in `input`), or 0. */
    private expiring = 0;

    constructor(accounts: GrooveRecordStore, transfers: GrooveRecordStore) {
        assert(accounts.forest === transfers.forest, 'groove_prefetch: one forest');
        this.accounts = accounts;
        this.transfers = transfers;
    }

    /** Stage 1: pins the ids the batch at input[base..] (`input_length` bytes) names. */
    start(operation: number, input: Uint32Array, base: number, input_length: number): void {
        assert(this.stage === stage_idle && this.accounts.pinned === 0 &&
            this.transfers.pinned === 0, 'groove_prefetch: a batch is already pinned');
        assert(base >= 0 && base + (input_length >>> 2) <= input.length);
        this.refusal = null;
        this.input = input;
        this.base = base;
        this.events = 0;
        this.expiring = 0;
        if (operation === Operation.create_transfers) this.pin_transfers(input_length >>> 7);
        else if (operation === Operation.create_accounts) {
            assert(input_length >>> 7 <= this.accounts.pinned_max);
            for (let event = 0; event < input_length >>> 7; event++) {
                const at = base + event * record_words;
                this.accounts.prefetch(input, at);
                if (((input[at + w_account_code_flags]! >>> 16) & AccountFlags.imported) !== 0) {
                    this.timestamp_probe(this.transfers, at);
                }
            }
        } else if (operation === Operation.lookup_accounts ||
            operation === Operation.lookup_transfers) {
            const store = operation === Operation.lookup_accounts ? this.accounts :
                this.transfers;
            assert(input_length >>> 4 <= store.pinned_max);
            for (let id = 0; id < input_length >>> 4; id++) store.prefetch(input, base + id * 4);
        } else if ((operation === Operation.get_account_transfers ||
            operation === Operation.get_account_balances) && input_length === 128) {
            this.accounts.prefetch(input, base);
        }
        this.stage = stage_ids;
        this.reads_start();
    }

    /** Stage 1 of a pulse: the `count` transfers at ids[0..count * 4) it will expire. */
    start_pulse(ids: Uint32Array, count: number): void {
        assert(this.stage === stage_idle && this.accounts.pinned === 0 &&
            this.transfers.pinned === 0, 'groove_prefetch: a batch is already pinned');
        assert(count >= 0 && count <= batch_events_max && count * 4 <= ids.length);
        assert(count <= this.transfers.pinned_max && 2 * count <= this.accounts.pinned_max,
            'groove_prefetch: pinned_max below what a pulse may pin');
        this.refusal = null;
        this.input = ids;
        this.base = 0;
        this.events = 0;
        this.expiring = count;
        for (let index = 0; index < count; index++) this.transfers.prefetch(ids, index * 4);
        this.stage = stage_ids;
        this.reads_start();
    }

    private pin_transfers(events: number): void {
        assert(events <= batch_events_max);
        assert(2 * events <= this.transfers.pinned_max && 4 * events <= this.accounts.pinned_max,
            'groove_prefetch: pinned_max below what a create_transfers batch may pin');
        const input = this.input;
        for (let event = 0; event < events; event++) {
            const at = this.base + event * record_words;
            this.transfers.prefetch(input, at);
            this.accounts.prefetch(input, at + w_debit_account);
            this.accounts.prefetch(input, at + w_credit_account);
            if ((input[at + w_pending_id]! | input[at + w_pending_id + 1]! |
                input[at + w_pending_id + 2]! | input[at + w_pending_id + 3]!) !== 0) {
                this.transfers.prefetch(input, at + w_pending_id);
            }
            if (((input[at + w_transfer_code_flags]! >>> 16) & TransferFlags.imported) !== 0) {
                this.timestamp_probe(this.accounts, at);
            }
        }
        this.events = events;
    }

    /** The imported timestamp of the event at input[at..], probed in the other kind's store. */
    private timestamp_probe(store: GrooveRecordStore, at: number): void {
        const hi = this.input[at + w_timestamp_hi]!, lo = this.input[at + w_timestamp_lo]!;
        // A zero timestamp is refused before the ledger looks it up (out of range).
        if ((hi | lo) !== 0) store.prefetch_timestamp(hi, lo);
    }

    private reads_start(): void {
        this.accounts.prefetch_start();
        this.transfers.prefetch_start();
    }

    /** Moves the prefetch on once its reads have landed: true when execute may run. */
    advance(): boolean {
        if (this.stage === stage_idle) return true;
        const accounts = this.accounts.prefetch_advance();
        const transfers = this.transfers.prefetch_advance();
        if (!accounts || !transfers) return false;
        this.refusal = this.accounts.refusal ?? this.transfers.refusal;
        if (this.refusal !== null || this.stage === stage_pending_accounts ||
            (this.events === 0 && this.expiring === 0)) {
            this.stage = stage_idle;
            return true;
        }
        assert(this.stage === stage_ids);
        this.stage = stage_pending_accounts;
        if (this.expiring > 0) this.pin_expiring_accounts();
        else this.pin_pending_accounts();
        this.reads_start();
        return this.advance();
    }

    /** Stage 2 of a pulse: the accounts of every transfer it will expire. */
    private pin_expiring_accounts(): void {
        const transfers = this.transfers;
        assert(this.events === 0);
        for (let index = 0; index < this.expiring; index++) {
            const slot = transfers.find(this.input, index * 4);
            // The ledger names pending transfers it holds: the store has each of them.
            assert(slot >= 0, 'groove_prefetch: an expiring transfer the store lacks');
            this.accounts.prefetch(transfers.words, slot * record_words + w_debit_account);
            this.accounts.prefetch(transfers.words, slot * record_words + w_credit_account);
        }
    }

    /** Stage 2: the accounts of every pending transfer a create_transfers event names. */
    private pin_pending_accounts(): void {
        const input = this.input, transfers = this.transfers;
        for (let event = 0; event < this.events; event++) {
            const at = this.base + event * record_words + w_pending_id;
            if ((input[at]! | input[at + 1]! | input[at + 2]! | input[at + 3]!) === 0) continue;
            const pending = transfers.find(input, at);
            if (pending < 0) continue;
            this.accounts.prefetch(transfers.words, pending * record_words + w_debit_account);
            this.accounts.prefetch(transfers.words, pending * record_words + w_credit_account);
        }
    }
}
