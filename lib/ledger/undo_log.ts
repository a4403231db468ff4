// The undo log of a linked chain. While a chain is open, the ledger records here every change
// it makes before making it: the kind of change, its argument (a slot or row), and what the
// change overwrites (an account record, a transfer's pending status). A chain that fails is
// rolled back by undoing the entries newest first, which restores exactly the state in which
// the chain began; a chain that succeeds just forgets them. The log is preallocated for the
// longest chain, a whole batch, at `undo_entries_per_event_max` entries per event.
import assert from 'node:assert/strict';

import { batch_events_max, record_words as record_words_imported } from './constants';
import { copy_record } from './record_store';

const record_words = 32;
assert.equal(record_words, record_words_imported);

/** The kinds of entry, each undone by one method of UndoTarget. */
export const UndoKind = {
    /** An account record changed in place; its saved copy is restored. */
    account: 1,
    /** An account was created: the newest account is removed. */
    account_insert: 2,
    /** A transfer was created: the newest transfer is removed. */
    transfer_insert: 3,
    /** A transfer's pending status changed; the saved status is restored. */
    status: 4,
    /** A change event was appended: the newest row is removed. */
    change_event: 5,
} as const;
const kind_first = UndoKind.account, kind_last = UndoKind.change_event;

/**
 * The most entries one event makes: a pending transfer or a post/void saves both accounts,
 * inserts itself, changes a pending status and appends a change event.
 */
export const undo_entries_per_event_max = 5;
const undo_entries_max = batch_events_max * undo_entries_per_event_max;

/** What a rollback undoes, one method per kind (the ledger implements it). */
export interface UndoTarget {
    undo_account(slot: number, saved: Uint32Array, saved_offset: number): void;
    undo_account_insert(slot: number): void;
    undo_transfer_insert(slot: number): void;
    undo_status(slot: number, status: number): void;
    undo_change_event(row: number): void;
}

/** The counts a rollback must restore, recorded when the chain begins. */
export interface UndoCounts {
    accounts: number;
    transfers: number;
    history: number;
    change_events: number;
}

export class UndoLog {
    private readonly entry_kind = new Uint8Array(undo_entries_max);
    private readonly entry_argument = new Uint32Array(undo_entries_max);
    /** Per entry, what it overwrote: a whole account record, or one word (a status). */
    private readonly entry_saved = new Uint32Array(undo_entries_max * record_words);
    count = 0;
    /** Whether a chain is open: only then are changes recorded. */
    open = false;
    /** The counts when the chain began (see Ledger.chain_rollback). */
    readonly begin_counts: UndoCounts = { accounts: 0, transfers: 0, history: 0, change_events: 0 };

    begin(accounts: number, transfers: number, history: number, change_events: number): void {
        assert(!this.open, 'undo_log: a chain is already open');
        assert.equal(this.count, 0);
        assert(accounts >= 0 && transfers >= 0 && history >= 0 && change_events >= 0);
        this.open = true;
        this.begin_counts.accounts = accounts;
        this.begin_counts.transfers = transfers;
        this.begin_counts.history = history;
        this.begin_counts.change_events = change_events;
    }

    commit(): void {
        assert(this.open, 'undo_log: commit without a chain');
        assert(this.count <= undo_entries_max);
        this.open = false;
        this.count = 0;
    }

    /** Records a change that saves nothing (an insert or an append). Only while open. */
    push(kind: number, argument: number): void {
        if (!this.open) return;
        if (this.count >= undo_entries_max) assert.fail('undo_log: full');
        if (!(kind >= kind_first && kind <= kind_last)) assert.fail('undo_log: bad kind');
        this.entry_kind[this.count] = kind;
        this.entry_argument[this.count] = argument;
        this.count++;
    }

    /** Records that record source[offset..offset + 32) is about to change. Only while open. */
    push_record(kind: number, argument: number, source: Uint32Array, offset: number): void {
        if (!this.open) return;
        if (!(offset >= 0 && offset + record_words <= source.length)) {
            assert.fail('undo_log: saving a record outside its array');
        }
        this.push(kind, argument);
        copy_record(this.entry_saved, (this.count - 1) * record_words, source, offset);
    }

    /** Records that a one-word value is about to change. Only while open. */
    push_word(kind: number, argument: number, value: number): void {
        if (!this.open) return;
        if (!(value >= 0 && value <= 0xffffffff)) assert.fail('undo_log: a value beyond a word');
        this.push(kind, argument);
        this.entry_saved[(this.count - 1) * record_words] = value;
    }

    /** Undoes every entry, newest first, and closes the chain. */
    rollback(target: UndoTarget): void {
        assert(this.open, 'undo_log: rollback without a chain');
        assert(this.count <= undo_entries_max);
        for (let entry = this.count - 1; entry >= 0; entry--) {
            const argument = this.entry_argument[entry];
            const saved = entry * record_words;
            switch (this.entry_kind[entry]) {
                case UndoKind.account:
                    target.undo_account(argument, this.entry_saved, saved);
                    break;
                case UndoKind.account_insert:
                    target.undo_account_insert(argument);
                    break;
                case UndoKind.transfer_insert:
                    target.undo_transfer_insert(argument);
                    break;
                case UndoKind.status:
                    target.undo_status(argument, this.entry_saved[saved]);
                    break;
                case UndoKind.change_event:
                    target.undo_change_event(argument);
                    break;
                default:
                    assert.fail('undo_log: bad entry');
            }
            assert(this.open, 'undo_log: an undo closed the chain');
        }
        this.open = false;
        this.count = 0;
    }
}
