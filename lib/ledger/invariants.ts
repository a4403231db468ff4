// Whole-state invariants of the ledger, verified where their O(state) cost is paid anyway: when
// a state is loaded (a checkpoint or a snapshot) and in tests (Ledger.checksum_state). Each
// function reads arrays the ledger owns; per batch, the ledger checks what a batch guarantees
// (Ledger.create_batch_check) instead.
import assert from 'node:assert/strict';

import { AccountFlags, PendingStatus, TransferFlags } from './constants';
import { account_at, account_balance_words, account_word, transfer_at } from './record_layout';
import { MemoryRecordStore } from './record_store';
import { timestamp_after, u128_add, u128_compare, u128_equal } from './u128';

const record_words = 32;
const none = 0xffffffff;
const timestamp_max_hi = 0x7fffffff;
const w_debits_pending = account_word.debits_pending;
const w_debits_posted = account_word.debits_posted;
const w_credits_pending = account_word.credits_pending;
const w_credits_posted = account_word.credits_posted;
const w_ledger = account_word.ledger;
const w_code_flags = account_word.code;
const w_timestamp_lo = account_word.timestamp;
const w_timestamp_hi = account_word.timestamp + 1;
const balance_words = account_balance_words;
const account_flag_debits_must_not_exceed_credits = AccountFlags.debits_must_not_exceed_credits;
const account_flag_credits_must_not_exceed_debits = AccountFlags.credits_must_not_exceed_debits;
const transfer_flag_pending = TransferFlags.pending;
const pending_none = PendingStatus.none;
assert.equal(account_at.timestamp, transfer_at.timestamp);
assert.equal(account_at.code, transfer_at.code);

/** Slot order is timestamp order: timestamps in range and strictly increasing. */
export function timestamps_check(store: MemoryRecordStore): void {
    const words = store.words;
    let previous_hi = 0, previous_lo = 0;
    for (let slot = 0; slot < store.count; slot++) {
        const record = slot * record_words;
        const hi = words[record + w_timestamp_hi], lo = words[record + w_timestamp_lo];
        assert(hi <= timestamp_max_hi, 'ledger: a timestamp out of range');
        assert(timestamp_after(hi, lo, previous_hi, previous_lo),
            'ledger: slots out of timestamp order');
        previous_hi = hi;
        previous_lo = lo;
    }
}

/**
 * Balances (O(accounts)): per ledger, debits equal credits, pending and posted apart (every
 * transfer moves one amount on both sides within one ledger; the sums are mod 2^128); per
 * account, pending + posted does not overflow and the balance limits hold.
 */
export function balances_check(accounts: Uint32Array, accounts_count: number): void {
    assert(accounts_count * record_words <= accounts.length);
    const ledger_index = new Map<number, number>();
    const sums = new Uint32Array(accounts_count * balance_words);
    const totals = new Uint32Array(8); // debits, then credits, pending + posted.
    for (let slot = 0; slot < accounts_count; slot++) {
        const account = slot * record_words;
        const ledger = accounts[account + w_ledger];
        assert(ledger !== 0, 'ledger: an account without a ledger');
        let index = ledger_index.get(ledger);
        if (index === undefined) {
            index = ledger_index.size;
            ledger_index.set(ledger, index);
        }
        for (let balance = 0; balance < balance_words; balance += 4) {
            const sum = index * balance_words + balance;
            u128_add(sums, sum, sums, sum, accounts, account + w_debits_pending + balance);
        }
        assert(!u128_add(totals, 0, accounts, account + w_debits_pending, accounts,
            account + w_debits_posted), 'ledger: debits pending + posted overflow');
        assert(!u128_add(totals, 4, accounts, account + w_credits_pending, accounts,
            account + w_credits_posted), 'ledger: credits pending + posted overflow');
        const flags = accounts[account + w_code_flags] >>> 16;
        if ((flags & account_flag_debits_must_not_exceed_credits) !== 0) {
            assert(u128_compare(totals, 0, accounts, account + w_credits_posted) <= 0,
                'ledger: debits exceed credits');
        }
        if ((flags & account_flag_credits_must_not_exceed_debits) !== 0) {
            assert(u128_compare(totals, 4, accounts, account + w_debits_posted) <= 0,
                'ledger: credits exceed debits');
        }
    }
    assert(ledger_index.size <= accounts_count);
    // Relative to debits_pending: debits_posted at 4, credits_pending 8, credits_posted 12.
    assert.equal(w_credits_pending - w_debits_pending, 8);
    for (const [ledger, index] of ledger_index) {
        const sum = index * balance_words;
        assert(u128_equal(sums, sum, sums, sum + 8),
            `ledger: ledger ${ledger} has pending debits != pending credits`);
        assert(u128_equal(sums, sum + 4, sums, sum + 12),
            `ledger: ledger ${ledger} has posted debits != posted credits`);
    }
}

/** Per transfer: a pending status exactly for pending transfers; history rows in order. */
export function transfers_check(
    words: Uint32Array, transfer_status: Uint8Array, transfer_history_row: Uint32Array,
    transfers_count: number, history_count: number,
): void {
    assert(transfers_count <= transfer_status.length && history_count <= transfers_count);
    let history_rows = 0;
    for (let slot = 0; slot < transfers_count; slot++) {
        const flags = words[slot * record_words + w_code_flags] >>> 16;
        const status = transfer_status[slot];
        assert.equal((flags & transfer_flag_pending) !== 0, status !== pending_none,
            'ledger: a pending status that does not match the flags');
        const row = transfer_history_row[slot];
        if (row === none) continue;
        assert.equal(row, history_rows, 'ledger: history rows out of order');
        history_rows++;
    }
    assert.equal(history_rows, history_count, 'ledger: history rows without transfers');
}
