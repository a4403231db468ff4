// Test and benchmark fixture for checkpoints (allocates freely; never on a replica's data path):
// boots a superblock + ledger + checkpointer over any Storage, runs checkpoints to completion,
// and fills a ledger quickly with valid accounts and transfers.
import assert from 'node:assert/strict';

import { account_at, transfer_at } from '../ledger/record_layout';

import { Operation } from '../ledger/constants';
import { Ledger } from '../ledger/ledger';
import type { LedgerConfig } from '../ledger/ledger';
import { Checkpointer } from '../ledger/checkpoint';
import type { CheckpointListener } from '../vsr/checkpoint_schedule';
import type { ClientReplies } from '../vsr/client_replies';
import { StartupWaiter } from '../vsr/data_file';
import type { Storage } from '../storage/storage';
import { StorageRefusal, storage_run_until } from '../storage/storage';
import { SuperBlock } from '../vsr/superblock';
import { Prng } from '../prng';

export class CheckpointEvents implements CheckpointListener {
    done_op = -1;
    done = false;
    restored = false;
    error: StorageRefusal | null = null;
    /** Order of events, for tests that check what happened before what. */
    readonly log: string[] = [];

    checkpoint_done(op: number, error: StorageRefusal | null): void {
        assert(!this.done);
        this.done = true;
        this.done_op = op;
        this.error = error;
        this.log.push(`checkpoint_done ${op}`);
    }

    checkpoint_restored(error: StorageRefusal | null): void {
        assert(!this.restored);
        this.restored = true;
        this.error = error;
        this.log.push('restored');
    }
}

export interface CheckpointNode {
    storage: Storage;
    superblock: SuperBlock;
    ledger: Ledger;
    checkpointer: Checkpointer;
    events: CheckpointEvents;
}

/** Opens the superblock and restores the checkpoint it names; throws the refusal if any. */
export async function checkpoint_node_boot(storage: Storage, ledger_config: LedgerConfig,
    sessions_size_max: number, replies: ClientReplies | null = null,
    ledger: Ledger = new Ledger(ledger_config), opened: SuperBlock | null = null):
    Promise<CheckpointNode> {
    let superblock = opened;
    if (superblock === null) {
        const waiter = new StartupWaiter();
        superblock = new SuperBlock(storage, waiter);
        superblock.open();
        await waiter.wait(storage);
    }
    const events = new CheckpointEvents();
    const checkpointer = new Checkpointer(storage, superblock, ledger, replies, events,
        sessions_size_max);
    checkpointer.restore();
    await storage_run_until(storage, () => events.restored);
    if (events.error !== null) throw events.error;
    return { storage, superblock, ledger, checkpointer, events };
}

/** Runs one checkpoint to completion; throws its refusal if any. */
export async function checkpoint_run(node: CheckpointNode, op: number,
    sessions: Uint8Array = new Uint8Array(0)): Promise<void> {
    node.events.done = false;
    const prepare_checksum = new Uint8Array(16).fill(op & 0xff);
    node.checkpointer.checkpoint_start(op, op, prepare_checksum, 0, sessions, sessions.length);
    await storage_run_until(node.storage, () => node.events.done);
    if (node.events.error !== null) throw node.events.error;
}

/** Creates valid accounts and transfers in large batches, straight into a Ledger. */
export class LedgerFiller {
    readonly prng: Prng;
    private readonly batch = new Uint8Array(8189 * 128);
    private readonly view = new DataView(this.batch.buffer);
    private readonly output = new Uint8Array(8190 * 128);
    clock = 1_700_000_000_000_000_000n;
    accounts = 0;
    private next_transfer_id = 1n << 64n;

    constructor(seed: number) {
        this.prng = new Prng(seed);
    }

    create_accounts(ledger: Ledger, count: number): void {
        for (let done = 0; done < count;) {
            const events = Math.min(8189, count - done);
            this.batch.fill(0, 0, events * 128);
            for (let index = 0; index < events; index++) {
                this.view.setBigUint64(index * 128, BigInt(this.accounts + index + 1), true);
                this.view.setUint32(index * 128 + account_at.ledger, 1, true);
                this.view.setUint16(index * 128 + account_at.code, 1, true);
            }
            this.execute(ledger, Operation.create_accounts, events);
            this.accounts += events;
            done += events;
        }
    }

    /** `count` transfers between random accounts (a fraction of them pending with a timeout). */
    create_transfers(ledger: Ledger, count: number, pending_percent: number = 0): void {
        assert(this.accounts >= 2);
        for (let done = 0; done < count;) {
            const events = Math.min(8189, count - done);
            this.batch.fill(0, 0, events * 128);
            for (let index = 0; index < events; index++) {
                const at = index * 128;
                const debit = 1 + this.prng.int(this.accounts);
                let credit = 1 + this.prng.int(this.accounts - 1);
                if (credit >= debit) credit += 1;
                this.view.setBigUint64(at, this.next_transfer_id++, true);
                this.view.setBigUint64(at + 8, 1n, true);
                this.view.setBigUint64(at + transfer_at.debit_account_id, BigInt(debit), true);
                this.view.setBigUint64(at + transfer_at.credit_account_id, BigInt(credit), true);
                this.view.setBigUint64(at + transfer_at.amount, BigInt(1 + this.prng.int(1000)),
                    true);
                this.view.setUint32(at + transfer_at.ledger, 1, true);
                this.view.setUint16(at + transfer_at.code, 1, true);
                if (this.prng.int(100) < pending_percent) {
                    this.view.setUint32(at + 108, 1, true); // timeout 1 s
                    this.view.setUint16(at + 118, 2, true); // pending
                }
            }
            this.execute(ledger, Operation.create_transfers, events);
            done += events;
        }
    }

    /** A pulse 2 s later: pending transfers with a 1 s timeout expire. */
    pulse(ledger: Ledger): void {
        this.clock += 2_000_000_000n;
        ledger.execute(Operation.pulse, this.clock, this.batch, 0, 0, this.output, 0);
    }

    private execute(ledger: Ledger, operation: number, events: number): void {
        this.clock += BigInt(events) + 1000n;
        const length = ledger.execute(operation, this.clock, this.batch, 0, events * 128,
            this.output, 0);
        const results = new DataView(this.output.buffer, 0, length);
        for (let index = 0; index * 16 < length; index++) {
            assert.equal(results.getUint32(index * 16 + 8, true), 0xffffffff,
                `fixture: event ${index} of operation ${operation} was not created`);
        }
    }
}
