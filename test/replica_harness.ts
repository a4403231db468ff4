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
import { Prng } from '../lib/prng';
import { header_size, release_0_17_9 } from '../lib/vsr/constants';
import { HeaderView, header_init, seal, seal_empty_body } from '../lib/vsr/header';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { MessagePool } from '../lib/vsr/message_pool';
import { MultiBatchDecoder, MultiBatchEncoder } from '../lib/vsr/multi_batch';
import { Replica, Status } from '../lib/vsr/replica';
import type { ReplicaNetwork, ReplicaTime } from '../lib/vsr/replica';
import {
    replica_create, replica_storage_arena_size, replica_storage_config, replica_storage_open,
    replica_storage_operations_max,
} from '../lib/server/replica_open';
import { HeaderValidator, Reason, reply_matches_request } from '../lib/vsr/validate';

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

export class SimTime implements ReplicaTime {
    ticks = 0;
    /** The wall clock starts where LedgerWorkload's clock starts (1.7e18 ns). */
    realtime_base_us = 1_700_000_000_000_000;
    monotonic_ns(): number { return this.ticks * 10_000_000; }
    realtime_us(): number { return this.realtime_base_us + this.ticks * 10_000; }
}

interface Packet {
    tick: number;
    sequence: number;
    to_replica: boolean;
    connection: number;
    message: number;
}

/** Messages between clients (connection = client index) and the replica. */
export class SimNetwork implements ReplicaNetwork {
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

    /** One replica: replies and evictions go on their connection (send). */
    send_to_client(_message: number): boolean {
        return false;
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

/** One client's view of one committed request, for checking against the model. */
export interface Exchange {
    op: number;
    operation: number;
    request_body: Uint8Array;
    reply_body: Uint8Array;
    timestamp: bigint;
    request: number;
}

/**
 * A client like tigerbeetle-node: registers, then sends one request at a time (queued bodies),
 * retransmitting byte-identically until the reply arrives. Every reply is checked as the real
 * client checks it (a violation there would abort the real client's process).
 */
export class SimClient {
    readonly index: number;
    readonly id: bigint;
    network: SimNetwork;
    release = release_0_17_9;
    session = 0n;
    request_number = 0;
    readonly parent = new Uint8Array(16);
    inflight: Uint8Array | null = null;
    inflight_operation = 0;
    inflight_body: Uint8Array = new Uint8Array(0);
    sent_tick = 0;
    timeout_ticks = 40;
    readonly pending: Array<{ operation: number; body: Uint8Array }> = [];
    readonly exchanges: Exchange[] = [];
    /** Request bytes by request number, as first sent. */
    readonly sent = new Map<number, Uint8Array>();
    /** Reply bytes by request number: a repeated reply must be byte-identical. */
    readonly replies = new Map<number, Uint8Array>();
    evicted = 0;
    pongs = 0;
    retransmits = 0;
    readonly view = new HeaderView();

    constructor(index: number, id: bigint, network: SimNetwork) {
        this.index = index;
        this.id = id;
        this.network = network;
    }

    get idle(): boolean {
        return this.inflight === null && this.pending.length === 0;
    }

    register(): void {
        assert(this.inflight === null && this.request_number === 0);
        this.send_new(2, new Uint8Array(256));
    }

    submit(operation: number, body: Uint8Array): void {
        this.pending.push({ operation, body });
        this.next();
    }

    ping(): void {
        const bytes = new Uint8Array(header_size);
        const view = header_init(this.view, bytes, 0, Command.ping_client, header_size,
            this.release);
        view.set_u128_bigint(frame.cluster, cluster_sim);
        view.set_u128_bigint(offsets.ping_client.client, this.id);
        view.set_u64_bigint(offsets.ping_client.ping_timestamp_monotonic,
            BigInt(this.network.ticks + 1));
        view.set_u64_bigint(offsets.ping_client.session, this.session);
        seal_empty_body(view);
        this.network.client_send(this.index, bytes);
    }

    /** Builds a request with the current chain; `raw` lets tests corrupt it before sealing. */
    build(operation: number, body: Uint8Array, raw?: (view: HeaderView) => void): Uint8Array {
        const bytes = new Uint8Array(header_size + body.length);
        bytes.set(body, header_size);
        const view = header_init(this.view, bytes, 0, Command.request, bytes.length,
            this.release);
        view.set_u128_bigint(frame.cluster, cluster_sim);
        const at = offsets.request;
        view.copy16_from(at.parent, this.parent, 0);
        view.set_u128_bigint(at.client, this.id);
        view.set_u64_bigint(at.session, this.session);
        view.set_u32(at.request, this.request_number);
        view.set_u8(at.operation, operation);
        if (raw !== undefined) raw(view);
        seal(view);
        return bytes;
    }

    private send_new(operation: number, body: Uint8Array): void {
        this.inflight = this.build(operation, body);
        this.sent.set(this.request_number, this.inflight);
        this.inflight_operation = operation;
        this.inflight_body = body;
        this.sent_tick = this.network.ticks;
        this.network.client_send(this.index, this.inflight);
    }

    private next(): void {
        if (this.inflight !== null || this.pending.length === 0 || this.session === 0n ||
            this.evicted !== 0) return;
        const { operation, body } = this.pending.shift()!;
        this.request_number += 1;
        this.send_new(operation, body);
    }

    tick(): void {
        if (this.inflight === null || this.evicted !== 0) return;
        if (this.network.ticks - this.sent_tick < this.timeout_ticks) return;
        this.sent_tick = this.network.ticks;
        this.retransmits += 1;
        this.network.client_send(this.index, this.inflight);
    }

    on_message(bytes: Uint8Array): void {
        const view = new HeaderView().attach(bytes, 0);
        if (view.command === Command.pong_client) {
            this.pongs += 1;
            return;
        }
        if (view.command === Command.eviction) {
            assert.equal(view.u128_bigint(offsets.eviction.client), this.id);
            this.evicted = view.u8(offsets.eviction.reason);
            return;
        }
        assert.equal(view.command, Command.reply);
        assert.equal(view.u128_bigint(offsets.reply.client), this.id);
        const number = view.u32(offsets.reply.request);
        const seen = this.replies.get(number);
        if (seen !== undefined) {
            assert.deepEqual(bytes, seen, 'a repeated reply must be the cached one');
            return;
        }
        if (this.inflight === null) return;
        assert(number <= this.request_number, 'reply for a request not yet sent');
        if (number < this.request_number) return;
        this.accept(bytes, view);
    }

    private accept(bytes: Uint8Array, reply: HeaderView): void {
        const request = new HeaderView().attach(this.inflight!, 0);
        assert.equal(reply_matches_request(reply, request), Reason.ok);
        const body = bytes.slice(header_size);
        if (this.inflight_operation === 2) {
            assert.equal(body.length, 64);
            this.session = reply.u64_bigint(offsets.reply.commit);
            assert(this.session > 0n);
        }
        this.replies.set(this.request_number, bytes);
        this.exchanges.push({
            op: Number(reply.u64_bigint(offsets.reply.op)),
            operation: this.inflight_operation,
            request_body: this.inflight_body,
            reply_body: body,
            timestamp: reply.u64_bigint(offsets.reply.timestamp),
            request: this.request_number,
        });
        this.parent.set(bytes.subarray(offsets.reply.context, offsets.reply.context + 16));
        this.inflight = null;
        this.next();
    }
}

/** Encodes batches of raw events as one multi-batch body. */
export function multi_batch_body(batches: Uint8Array[], event_size: number): Uint8Array {
    const total = batches.reduce((sum, batch) => sum + batch.length, 0);
    const target = new Uint8Array(total + (batches.length * 2 + 2) + event_size * 2);
    const encoder = new MultiBatchEncoder();
    encoder.reset(target, 0, target.length, event_size);
    for (const batch of batches) {
        target.set(batch, encoder.payload_offset());
        encoder.add_batch(batch.length / event_size);
    }
    return target.slice(0, encoder.finish());
}

/** Splits a multi-batch body into its batches (copies). */
export function multi_batch_split(body: Uint8Array, element_size: number): Uint8Array[] {
    const decoder = new MultiBatchDecoder();
    assert.equal(decoder.decode(body, 0, body.length, element_size), 0);
    const result: Uint8Array[] = [];
    for (let batch = 0; batch < decoder.batch_count; batch++) {
        const start = decoder.batch_offset(batch);
        result.push(body.slice(start, start + decoder.element_count(batch) * element_size));
    }
    return result;
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
