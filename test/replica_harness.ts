// A deterministic harness for the replica (tests only; allocates freely): the real Replica over
// SimulatorStorage, with simulated time (ticks), a simulated network (latency, loss, duplication
// from a seeded PRNG) and simulated clients that speak the protocol of docs/wire-protocol.md §5
// the way tigerbeetle-node does: register, one request in flight, retransmission, the parent
// chain, and client-side checks of every reply (§5.4). A seed replays a run exactly.
import assert from 'node:assert/strict';

import { Arena, sector_size } from '../lib/io/arena';
import { Ledger } from '../lib/ledger/ledger';
import { storage_format } from '../lib/vsr/data_file';
import { SimulatorStorage } from '../lib/storage/simulator_storage';
import { storage_run_until } from '../lib/storage/storage';
import type { StorageConfig } from '../lib/storage/zones';
import { ZoneLayout, sector_ceil } from '../lib/storage/zones';
import { account_encode } from '../lib/testing/ledger_model';
import { SimClient as SimClientOf, SimTime } from '../lib/testing/sim_client';
import type { ClientNetwork } from '../lib/testing/sim_client';
import { Prng } from '../lib/prng';
import { header_size } from '../lib/vsr/constants';
import { HeaderView } from '../lib/vsr/header';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { MessagePool } from '../lib/vsr/message_pool';
import { Replica, Status } from '../lib/vsr/replica';
import type { ReplicaNetwork } from '../lib/vsr/replica';
import {
    replica_create, replica_storage_arena_size, replica_storage_config, replica_storage_open,
    replica_storage_operations_max,
} from '../lib/server/replica_open';
import { HeaderValidator, Reason } from '../lib/vsr/validate';

// The client and the request helpers are lib/testing's, shared with the cluster simulator.
export type { Exchange } from '../lib/testing/sim_client';
export { SimTime };
export { multi_batch_body, multi_batch_split } from '../lib/testing/ledger_requests';

/** Small messages and a WAL of 256 slots: many ops, fast. */
export const config_sim: StorageConfig = {
    slot_count: 256,
    message_size_max: 16 * 1024,
    clients_max: 4,
    block_size: sector_size,
    grid_block_count: 8,
};

export const cluster_sim = 7n;
/** Enough for every session's cached reply, packets in flight and the pipeline. */
function pool_messages_for(clients_max: number): number {
    return Math.max(160, 2 * clients_max + 64);
}
const restarts_max = 12;

interface Packet {
    tick: number;
    sequence: number;
    to_replica: boolean;
    connection: number;
    message: number;
}

/** Messages between clients (connection = client index) and the replica. */
export class SimNetwork implements ReplicaNetwork, ClientNetwork {
    readonly prng: Prng;
    readonly pool: MessagePool;
    readonly validator = new HeaderValidator(cluster_sim);
    replica: Replica | null = null;
    clients: SimClient[] = [];
    packets: Packet[] = [];
    latency_ticks_max = 3;
    loss_percent = 0;
    duplicate_percent = 0;
    /** Messages the validator rejected, by reason (the bus would disconnect). */
    rejected: number[] = [];
    private sequence = 0;
    ticks = 0;

    constructor(prng: Prng, pool: MessagePool) {
        this.prng = prng;
        this.pool = pool;
    }

    /** Replica → client. */
    send(connection: number, message: number): boolean {
        if (connection < 0 || connection >= this.clients.length) return false;
        this.enqueue(false, connection, message);
        return true;
    }

    /** Replies and evictions: to the simulated client their header names. */
    send_to_client(message: number): boolean {
        const view = new HeaderView().attach(this.pool.bytes, this.pool.offset(message));
        const at = view.command === Command.reply ? offsets.reply.client : offsets.eviction.client;
        const id = view.u128_bigint(at);
        const index = this.clients.findIndex((client) => client.id === id);
        return index === -1 ? false : this.send(index, message);
    }

    send_to_replica(_replica: number, _message: number): boolean {
        assert.fail('a single replica has no peer');
    }

    /** Client → replica: the bytes travel in a pool message, as from the bus. */
    client_send(connection: number, bytes: Uint8Array): void {
        const message = this.pool.acquire();
        assert(message !== -1, 'sim: pool exhausted');
        this.pool.bytes.set(bytes, this.pool.offset(message));
        this.enqueue(true, connection, message);
        this.pool.unref(message);
    }

    private enqueue(to_replica: boolean, connection: number, message: number): void {
        if (this.prng.int(100) < this.loss_percent) return;
        const copies = this.prng.int(100) < this.duplicate_percent ? 2 : 1;
        for (let copy = 0; copy < copies; copy++) {
            this.pool.ref(message);
            this.packets.push({
                tick: this.ticks + this.prng.int(this.latency_ticks_max + 1),
                sequence: this.sequence++, to_replica, connection, message,
            });
        }
    }

    /** Delivers every packet due by now, oldest first. */
    tick(): void {
        this.ticks += 1;
        this.packets.sort((a, b) => a.tick - b.tick || a.sequence - b.sequence);
        while (this.packets.length > 0 && this.packets[0]!.tick <= this.ticks) {
            const packet = this.packets.shift()!;
            this.deliver(packet);
            this.pool.unref(packet.message);
        }
    }

    private deliver(packet: Packet): void {
        const offset = this.pool.offset(packet.message);
        const bytes = this.pool.bytes;
        const reason = this.validator.message(bytes, offset, this.pool.message_size_max);
        if (reason !== Reason.ok) {
            this.rejected.push(reason);
            return;
        }
        if (packet.to_replica) {
            if (this.replica !== null && this.replica.status === Status.normal) {
                this.replica.on_message(packet.connection, packet.message);
            }
            return;
        }
        const size = new HeaderView().attach(bytes, offset).size;
        this.clients[packet.connection]!.on_message(bytes.slice(offset, offset + size));
    }

    /** Drops everything in flight (a crash of the replica's process loses its sockets). */
    clear(): void {
        for (const packet of this.packets) this.pool.unref(packet.message);
        this.packets = [];
    }
}

/**
 * The harness's client: lib/testing's SimClient over a harness network, as a client of one
 * replica (test/cluster_harness.ts passes its own network, which sends to every replica).
 */
export class SimClient extends SimClientOf<SimNetwork> {
    constructor(index: number, id: bigint, network: SimNetwork) {
        super(index, id, network, {
            cluster: cluster_sim, replica_count: 1, seed: Number(id & 0x7fff_ffffn),
        });
    }
}

export interface HarnessOptions {
    seed: number;
    clients: number;
    config?: StorageConfig;
    accounts_max?: number;
    transfers_max?: number;
    /** Where the replica's log lines go (default: nowhere). */
    log?: (line: string) => void;
}

/** One committed op as the WAL records it. */
export interface LogEntry {
    op: number;
    checksum: bigint;
    operation: number;
    timestamp: bigint;
    client: bigint;
    request: number;
}

/** The replica and everything around it; restartable over the same simulated disk. */
export class Harness {
    readonly prng: Prng;
    readonly time = new SimTime();
    readonly storage: SimulatorStorage;
    readonly config: StorageConfig;
    readonly options: HarnessOptions;
    network!: SimNetwork;
    pool!: MessagePool;
    replica!: Replica;
    ledger!: Ledger;
    clients: SimClient[] = [];
    /** Every op committed so far (index = op), captured from the WAL as commits happen. */
    readonly log: LogEntry[] = [];
    /** Counters summed over restarts. */
    checkpoints = 0;
    wal_stalls = 0;
    replies_waited = 0;

    private constructor(options: HarnessOptions) {
        this.options = options;
        this.prng = new Prng(options.seed);
        const base = options.config ?? config_sim;
        this.config = replica_storage_config(base, base.clients_max, this.ledger_config());
        const layout = new ZoneLayout(this.config);
        const per_open = replica_storage_arena_size(this.config) +
            pool_messages_for(this.config.clients_max) *
            sector_ceil(this.config.message_size_max);
        const arena = new Arena(per_open * (restarts_max + 1));
        this.storage = new SimulatorStorage(arena, layout, {
            seed: options.seed, latency_ticks_min: 0, latency_ticks_max: 3,
            operations_max: replica_storage_operations_max, dsync: true,
        });
    }

    static async create(options: HarnessOptions): Promise<Harness> {
        const harness = new Harness(options);
        await storage_format(harness.storage, {
            cluster: cluster_sim, replica: 0, replica_count: 1,
        });
        await harness.open();
        for (let index = 0; index < options.clients; index++) {
            const id = harness.prng.u128() | 1n;
            harness.clients.push(new SimClient(index, id, harness.network));
        }
        harness.network.clients = harness.clients;
        return harness;
    }

    /** Opens (or reopens) the replica over the simulated disk and replays the WAL. */
    async open(): Promise<void> {
        const { listener, superblock, journal } = await replica_storage_open(this.storage);
        this.pool = new MessagePool(this.storage.arena,
            pool_messages_for(this.config.clients_max),
            this.config.message_size_max);
        this.ledger = new Ledger(this.ledger_config());
        this.replica = replica_create({
            pool: this.pool, time: this.time, random: this.prng, storage: this.storage,
            superblock, journal, storage_listener: listener, ledger: this.ledger,
            clients_max: this.config.clients_max, log: this.options.log,
        });
        this.replica.open();
        await storage_run_until(this.storage, () => this.replica.status === Status.normal ||
            this.replica.status === Status.failed);
        if (this.replica.status !== Status.normal) throw this.replica.failure!;
        const network = new SimNetwork(this.prng, this.pool);
        network.ticks = this.time.ticks;
        network.replica = this.replica;
        network.clients = this.clients;
        for (const client of this.clients) client.network = network;
        this.network = network;
        this.replica.network_attach(network);
        this.log_capture();
    }

    /**
     * Records ops committed since the last capture from the journal's headers; an op seen before
     * (replayed after a restart) must be the same prepare.
     */
    log_capture(): void {
        const journal = this.replica.journal;
        const view = new HeaderView();
        const from = Math.max(1, this.replica.commit_min - journal.slot_count + 1);
        for (let op = from; op <= this.replica.commit_min; op++) {
            view.attach(journal.headers, (op % journal.slot_count) * header_size);
            if (Number(view.u64_bigint(offsets.prepare.op)) !== op) continue;
            // A slot whose newer prepare was torn by a crash and cut from the head is rewritten
            // as a reserved header naming the slot's older op: no prepare, nothing to capture.
            if (view.u8(offsets.prepare.operation) === 0) continue;
            const checksum = view.u128_bigint(frame.checksum);
            const known = this.log[op];
            if (known !== undefined) {
                assert.equal(known.checksum, checksum, `op ${op} changed after it committed`);
                continue;
            }
            assert(op === 1 || this.log[op - 1] !== undefined, `op ${op - 1} was not captured`);
            this.log[op] = {
                op, checksum, operation: view.u8(offsets.prepare.operation),
                timestamp: view.u64_bigint(offsets.prepare.timestamp),
                client: view.u128_bigint(offsets.prepare.client),
                request: view.u32(offsets.prepare.request),
            };
        }
    }

    ledger_config(): { accounts_max: number; transfers_max: number } {
        return {
            accounts_max: this.options.accounts_max ?? 4096,
            transfers_max: this.options.transfers_max ?? 16384,
        };
    }

    /** One 10 ms tick of everything, in a fixed order. */
    tick(): void {
        this.time.ticks += 1;
        this.storage.tick();
        this.network.tick();
        this.replica.tick();
        for (const client of this.clients) client.tick();
        this.log_capture();
    }

    run_until(done: () => boolean, ticks_max: number): void {
        for (let tick = 0; tick < ticks_max; tick++) {
            if (done()) return;
            this.tick();
        }
        assert(done(), `harness: not done after ${ticks_max} ticks`);
    }

    /** The process dies (in-flight writes lost or torn) and restarts on the same disk. */
    async crash_restart(): Promise<void> {
        this.checkpoints += this.replica.stats.checkpoints;
        this.wal_stalls += this.replica.stats.wal_stalls;
        this.replies_waited += this.replica.client_replies.writes_waited;
        this.storage.crash();
        this.network.clear();
        await this.open();
    }

    /** Every client registered (run until all have sessions). */
    register_all(): void {
        for (const client of this.clients) client.register();
        this.run_until(() => this.clients.every((client) => client.session !== 0n), 5000);
    }
}

/** An account event (ledger 1, code 1, everything else zero) as its 128 bytes. */
export function account_event(id: bigint): Uint8Array {
    const bytes = new Uint8Array(128);
    account_encode({
        id, debits_pending: 0n, debits_posted: 0n, credits_pending: 0n, credits_posted: 0n,
        user_data_128: 0n, user_data_64: 0n, user_data_32: 0, reserved: 0, ledger: 1, code: 1,
        flags: 0, timestamp: 0n,
    }, bytes, 0);
    return bytes;
}

/** A lookup body: the ids as u128s. */
export function ids_body(...values: bigint[]): Uint8Array {
    const bytes = new Uint8Array(values.length * 16);
    const view = new DataView(bytes.buffer);
    values.forEach((value, index) => {
        view.setBigUint64(index * 16, value & 0xffff_ffff_ffff_ffffn, true);
        view.setBigUint64(index * 16 + 8, value >> 64n, true);
    });
    return bytes;
}

/** Runs the harness for a number of ticks. */
export function settle(harness: Harness, ticks = 200): void {
    for (let tick = 0; tick < ticks; tick++) harness.tick();
}

/** Submits one request and runs until its reply; returns the reply body. */
export function request_and_wait(harness: Harness, client: SimClient, operation: number,
    body: Uint8Array): Uint8Array {
    const before = client.exchanges.length;
    client.submit(operation, body);
    harness.run_until(() => client.exchanges.length > before, 2000);
    return client.exchanges[client.exchanges.length - 1]!.reply_body;
}
