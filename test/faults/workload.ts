// The fault run's workload, from the root namespace through both clients: the official
// tigerbeetle-node 0.17.9 (which retries forever, so its requests complete after a heal) and
// ours (with a request timeout, so its requests also end indeterminate). Workers draw operations
// from the seed: single transfers, linked chains, pending transfers then their post or void,
// resubmissions of acknowledged ids (same body: exists; another amount or user_data_32:
// exists_with_different_*), and reads (every account, some transfers, the newest transfers of a
// ledger). Bounded by an operation count and by the time the runner gives. Tests only.
import assert from 'node:assert/strict';

import { createClient as official_create_client } from 'tigerbeetle-node';

import { createClient as ours_create_client } from '../../lib/client';
import { Prng } from '../../lib/prng';
import { TF, TransferStatus } from '../../lib/testing/ledger_model';
import {
    account_copy, account_make, op_make, transfer_copy, transfer_make,
} from './history';
import type { Account, History, Op, OpKind, Transfer } from './history';

/** Ledger 1 holds the first six accounts, ledger 2 the last two. */
export const account_ids: readonly bigint[] = [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
export const ledger_of = (id: bigint): number => (id <= 6n ? 1 : 2);
const transfer_id_first = 1_000_000n;
const lookup_chunk = 8000;
export const our_timeout_ms = 4_000;
/** QueryFilterFlags.reversed: newest first. */
const query_reversed = 1;

/** What both clients offer (the official one's API, which ours copies). */
interface LedgerClient {
    createAccounts(batch: Account[]): Promise<Array<{ status: number; timestamp: bigint }>>;
    createTransfers(batch: Transfer[]): Promise<Array<{ status: number; timestamp: bigint }>>;
    lookupAccounts(ids: bigint[]): Promise<Account[]>;
    lookupTransfers(ids: bigint[]): Promise<Transfer[]>;
    queryTransfers(filter: {
        user_data_128: bigint; user_data_64: bigint; user_data_32: number; ledger: number;
        code: number; timestamp_min: bigint; timestamp_max: bigint; limit: number; flags: number;
    }): Promise<Transfer[]>;
    destroy(): void;
}

export interface WorkloadOptions {
    seed: number;
    addresses: string[];
    workers: number;
    ops_max: number;
    pause_ms_max: number;
}

export class Workload {
    readonly options: WorkloadOptions;
    readonly ops: Op[] = [];
    private readonly prng: Prng;
    private readonly started_ms = performance.now();
    private readonly clients: LedgerClient[];
    private transfer_id_next = transfer_id_first;
    /** Pending transfers acknowledged created and not yet posted or voided by anyone. */
    private readonly pendings: Transfer[] = [];
    /** Single transfers acknowledged created (flags 0): candidates for resubmission. */
    private readonly created: Transfer[] = [];
    private stopping = false;

    constructor(options: WorkloadOptions) {
        assert(options.workers >= 2 && options.ops_max > 0);
        this.options = options;
        this.prng = new Prng(options.seed);
        this.clients = [
            official_create_client({ cluster_id: 0n, replica_addresses: options.addresses }),
            ours_create_client({ cluster_id: 0n, replica_addresses: options.addresses,
                request_timeout_ms: our_timeout_ms }),
        ] as unknown as LedgerClient[];
    }

    now_ms(): number {
        return performance.now() - this.started_ms;
    }

    /** Creates the accounts (before any fault), then runs the workers until `stop`. */
    async run(): Promise<void> {
        const op = this.begin('create_accounts', 0);
        op.accounts = account_ids.map((id) => account_make(id, ledger_of(id)));
        const results = await this.clients[0]!.createAccounts(op.accounts);
        this.end_write(op, results);
        assert(op.statuses.every((status) => status === TransferStatus.created),
            `accounts not created: ${op.statuses}`);
        const workers: Array<Promise<void>> = [];
        for (let worker = 0; worker < this.options.workers; worker++) {
            workers.push(this.worker(worker % 2));
        }
        await Promise.all(workers);
    }

    /** The workers finish the operation in hand and invoke no more. */
    stop(): void {
        this.stopping = true;
    }

    private async worker(client: number): Promise<void> {
        while (!this.stopping && this.ops.length < this.options.ops_max) {
            await this.step(client);
            await new Promise((resolve) => setTimeout(resolve,
                this.prng.int(this.options.pause_ms_max + 1)));
        }
    }

    private async step(client: number): Promise<void> {
        const roll = this.prng.int(100);
        if (roll < 30) return this.transfers(client, 1 + this.prng.int(4), false);
        if (roll < 40) return this.transfers(client, 2 + this.prng.int(2), true);
        if (roll < 50) return this.pending_create(client);
        if (roll < 60 && this.pendings.length > 0) return this.pending_finish(client);
        if (roll < 68 && this.created.length > 0) return this.resubmit(client);
        if (roll < 85) return this.lookup_accounts(client);
        if (roll < 93) return this.lookup_transfers(client);
        return this.query_transfers(client);
    }

    private pair(): [bigint, bigint, number] {
        const ledger = this.prng.chance(3, 4) ? 1 : 2;
        const ids = account_ids.filter((id) => ledger_of(id) === ledger);
        const debit = this.prng.pick(ids);
        let credit = this.prng.pick(ids);
        if (credit === debit) credit = ids[(ids.indexOf(debit) + 1) % ids.length]!;
        return [debit, credit, ledger];
    }

    private transfer_new(flags: number): Transfer {
        const [debit, credit, ledger] = this.pair();
        const amount = BigInt(1 + this.prng.int(10));
        return transfer_make(this.transfer_id_next++, debit, credit, amount, ledger, flags);
    }

    private async transfers(client: number, count: number, linked: boolean): Promise<void> {
        const batch: Transfer[] = [];
        for (let index = 0; index < count; index++) {
            batch.push(this.transfer_new(linked && index < count - 1 ? TF.linked : 0));
        }
        const op = await this.write(client, 'create_transfers', batch);
        if (op.outcome === 'ok' && !linked) {
            batch.forEach((t, index) => {
                if (op.statuses[index] === TransferStatus.created) this.created.push(t);
            });
        }
    }

    private async pending_create(client: number): Promise<void> {
        const transfer = this.transfer_new(TF.pending);
        const op = await this.write(client, 'create_transfers', [transfer]);
        if (op.outcome === 'ok' && op.statuses[0] === TransferStatus.created) {
            this.pendings.push(transfer);
        }
    }

    /** Posts (the whole amount or less) or voids a pending transfer: each is finished once. */
    private async pending_finish(client: number): Promise<void> {
        const pending = this.pendings.splice(this.prng.int(this.pendings.length), 1)[0]!;
        const posting = this.prng.chance(2, 3);
        const amount = posting ? BigInt(1 + this.prng.int(Number(pending.amount))) : 0n;
        const transfer = transfer_make(this.transfer_id_next++, pending.debit_account_id,
            pending.credit_account_id, amount, pending.ledger,
            posting ? TF.post_pending_transfer : TF.void_pending_transfer, pending.id);
        await this.write(client, 'create_transfers', [transfer]);
    }

    private async resubmit(client: number): Promise<void> {
        const original = this.prng.pick(this.created);
        const variant = this.prng.int(3);
        const transfer = transfer_copy(original);
        if (variant === 1) transfer.amount += 1n;
        if (variant === 2) transfer.user_data_32 = 1 + this.prng.int(1000);
        const expected = [TransferStatus.exists, TransferStatus.exists_with_different_amount,
            TransferStatus.exists_with_different_user_data_32][variant]!;
        const op = this.begin('resubmit', client);
        op.transfers = [transfer];
        op.statuses_expected = [expected];
        await this.settle(op, this.clients[client]!.createTransfers([transfer]));
    }

    private async write(client: number, kind: OpKind, batch: Transfer[]): Promise<Op> {
        const op = this.begin(kind, client);
        op.transfers = batch;
        await this.settle(op, this.clients[client]!.createTransfers(batch));
        return op;
    }

    private async settle(op: Op,
        request: Promise<Array<{ status: number; timestamp: bigint }>>): Promise<void> {
        try {
            this.end_write(op, await request);
        } catch (error) {
            op.error = String(error);
        }
    }

    private async lookup_accounts(client: number): Promise<void> {
        const op = this.begin('lookup_accounts', client);
        op.ids = [...account_ids];
        await this.read(op, this.clients[client]!.lookupAccounts(op.ids), (found) => {
            op.accounts_found = found.map(account_copy);
        });
    }

    private async lookup_transfers(client: number): Promise<void> {
        const op = this.begin('lookup_transfers', client);
        const issued = Number(this.transfer_id_next - transfer_id_first);
        for (let index = 0; index < 1 + this.prng.int(8) && issued > 0; index++) {
            op.ids.push(transfer_id_first + BigInt(this.prng.int(issued)));
        }
        if (op.ids.length === 0) op.ids.push(transfer_id_first);
        await this.read(op, this.clients[client]!.lookupTransfers(op.ids), (found) => {
            op.transfers_found = found.map(transfer_copy);
        });
    }

    private async query_transfers(client: number): Promise<void> {
        const op = this.begin('query_transfers', client);
        op.query_ledger = this.prng.chance(1, 2) ? 1 : 2;
        op.query_limit = 10;
        const query = this.clients[client]!.queryTransfers({
            user_data_128: 0n, user_data_64: 0n, user_data_32: 0, ledger: op.query_ledger,
            code: 0, timestamp_min: 0n, timestamp_max: 0n, limit: op.query_limit,
            flags: query_reversed,
        });
        await this.read(op, query, (found) => {
            op.transfers_found = found.map(transfer_copy);
        });
    }

    /** A read's answer kept, or its error recorded (the read is then left unchecked). */
    private async read<T>(op: Op, request: Promise<T[]>, keep: (found: T[]) => void):
        Promise<void> {
        try {
            keep(await request);
            this.end(op);
        } catch (error) {
            op.error = String(error);
        }
    }

    private begin(kind: OpKind, client: number): Op {
        const op = op_make(this.ops.length, kind, client === 0 ? 'official' : 'ours',
            this.now_ms());
        this.ops.push(op);
        return op;
    }

    private end(op: Op): void {
        op.complete_ms = this.now_ms();
        op.outcome = 'ok';
    }

    private end_write(op: Op, results: Array<{ status: number; timestamp: bigint }>): void {
        const count = Math.max(op.transfers.length, op.accounts.length);
        assert.equal(results.length, count, 'one result per event');
        op.statuses = results.map((result) => result.status);
        this.end(op);
    }

    /** After every heal: every account and every transfer id ever submitted, read back. */
    async final_reads(): Promise<History> {
        const client = this.clients[0]!;
        const accounts_final = (await client.lookupAccounts([...account_ids])).map(account_copy);
        const transfers_final: Transfer[] = [];
        for (let start = transfer_id_first; start < this.transfer_id_next;
            start += BigInt(lookup_chunk)) {
            const ids: bigint[] = [];
            for (let id = start; id < this.transfer_id_next && ids.length < lookup_chunk; id++) {
                ids.push(id);
            }
            for (const t of await client.lookupTransfers(ids)) {
                transfers_final.push(transfer_copy(t));
            }
        }
        return { ops: this.ops, accounts_final, transfers_final };
    }

    close(): void {
        for (const client of this.clients) client.destroy();
    }
}
