// The server: one replica serving clients over one engine, on one thread. `Server.open` builds
// everything at startup (arena, engine, data file, ledger, replica, message bus) in the order of
// docs/vsr.md §7: lock and open the data file, read the superblock by quorum, recover the WAL,
// restore the checkpoint, replay the WAL to the head, and only then listen. `run` drives the loop:
//
// - io_uring: each turn is one `run_once` (one io_uring_enter: submit what the last turn queued,
//   wait for completions at most until the next 10 ms tick, deliver them), then the tick if due.
//   Turns run in batches between setImmediate yields, so that Node still sees signals.
// - libuv: the engine delivers completions from Node's own loop; a 10 ms interval ticks.
//
// `stop` (SIGINT/SIGTERM in the CLI) closes the listener and every connection, waits for the WAL
// write in flight, releases every message and closes the file.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';

import { Arena, sector_size } from '../io/arena';
import type { Engine, EngineKind } from '../io/engine';
import { create_engine } from '../io/index';
import { Ledger } from '../ledger/ledger';
import { FileStorage, lock_acquire, lock_release } from '../storage/file_storage';
import { fd_close, settings_read } from '../vsr/data_file';
import type { DataFileSettings } from '../vsr/data_file';
import { storage_run_until } from '../storage/storage';
import { ZoneLayout } from '../storage/zones';
import { MessageBus } from '../vsr/message_bus';
import { MessagePool } from '../vsr/message_pool';
import { Replica, Status, tick_ms } from '../vsr/replica';
import {
    replica_create, replica_storage_arena_size, replica_storage_open,
    replica_storage_operations_max,
} from './replica_open';
import type { ReplicaTime } from '../vsr/replica';
import { bytes_le_bigint } from '../vsr/header';
import { HeaderValidator } from '../vsr/validate';
import { Prng } from '../prng';
import type { Address, Capacity, ServerSizing } from './config';
import { data_file_config, ledger_config, server_sizing } from './config';

export interface ServerOptions {
    path: string;
    /**
     * One address per replica, in index order (IP literals: resolve names first); ours,
     * addresses[replica], is where we listen, and the bus dials every other one.
     */
    addresses: Address[];
    io: EngineKind;
    /** Capacity the caller expects; the data file's own is used, and a disagreement refused. */
    clients_max?: number;
    accounts_max?: number;
    transfers_max?: number;
    connections_max?: number;
    log: (line: string) => void;
}

/** The system clocks: monotonic from performance.now(), wall clock with µs resolution. */
export class SystemTime implements ReplicaTime {
    monotonic_ns(): number {
        return Math.floor(performance.now() * 1e6);
    }
    /** Wall time as the monotonic clock advances from the process's wall-clock origin, so
     * that it never goes backwards while we run (prepare timestamps must increase). */
    realtime_us(): number {
        return Math.floor((performance.timeOrigin + performance.now()) * 1000);
    }
}

const turns_per_yield = 64;

export class Server {
    readonly options: ServerOptions;
    readonly engine: Engine;
    readonly pool: MessagePool;
    readonly storage: FileStorage;
    readonly replica: Replica;
    readonly bus: MessageBus;
    readonly ledger: Ledger;
    readonly time: SystemTime;
    readonly port: number;
    readonly address: Address;
    private stopping = false;
    private stopped = false;
    private resolve_run: (() => void) | null = null;
    private reject_run: ((error: Error) => void) | null = null;
    private tick_next_ns = 0;
    private interval: NodeJS.Timeout | null = null;
    private readonly turn_bound: () => void;

    private constructor(options: ServerOptions, parts: ServerParts) {
        this.options = options;
        this.engine = parts.engine;
        this.pool = parts.pool;
        this.storage = parts.storage;
        this.replica = parts.replica;
        this.bus = parts.bus;
        this.ledger = parts.ledger;
        this.time = parts.time;
        this.address = parts.address;
        this.port = parts.port;
        this.turn_bound = () => this.turn();
    }

    /** Opens the data file, replays it, and listens; throws with what to do on failure. */
    static async open(options: ServerOptions): Promise<Server> {
        const parts = await server_parts(options);
        return new Server(options, parts);
    }

    /** Serves until `stop()`; resolves once everything is closed. */
    run(): Promise<void> {
        assert(this.resolve_run === null && !this.stopped);
        return new Promise<void>((resolve, reject) => {
            this.resolve_run = resolve;
            this.reject_run = reject;
            this.tick_next_ns = this.time.monotonic_ns() + tick_ms * 1e6;
            if (this.engine.kind === 'io_uring') {
                setImmediate(this.turn_bound);
            } else {
                this.engine.start();
                this.interval = setInterval(this.turn_bound, tick_ms);
            }
        });
    }

    /** Asks the loop to stop; `run()` resolves when it has. */
    stop(): void {
        if (this.stopping) return;
        this.stopping = true;
        this.bus.shutdown();
    }

    private turn(): void {
        try {
            if (this.engine.kind === 'io_uring') this.turns_uring();
            else this.tick_if_due();
            // A state sync stops the replica once the adopted checkpoint is durable: the process
            // exits so that it is started again over it (lib/cli/start.ts).
            if (this.replica.status === Status.failed && !this.replica.sync_writing_pending) {
                throw this.replica.failure!;
            }
            if (this.stopping && this.drained()) return this.finish();
            if (this.engine.kind === 'io_uring') setImmediate(this.turn_bound);
        } catch (error) {
            this.fail(error as Error);
        }
    }

    /** A batch of loop turns: each waits for I/O at most until the next tick. */
    private turns_uring(): void {
        for (let turn = 0; turn < turns_per_yield; turn++) {
            const wait_ns = this.tick_next_ns - this.time.monotonic_ns();
            const wait_ms = wait_ns <= 0 ? 0 : Math.ceil(wait_ns / 1e6);
            const completions = this.engine.run_once(Math.min(wait_ms, tick_ms));
            this.tick_if_due();
            // Idle (the wait ended without I/O): yield to Node so that signals get through.
            if (completions === 0 || this.stopping) return;
        }
    }

    private tick_if_due(): void {
        const now = this.time.monotonic_ns();
        if (now < this.tick_next_ns) return;
        this.replica.tick();
        this.tick_next_ns += tick_ms * 1e6;
        // After a long stall (a huge batch, a debugger), do not replay the missed ticks at once.
        if (now - this.tick_next_ns > 10 * tick_ms * 1e6) this.tick_next_ns = now + tick_ms * 1e6;
    }

    private drained(): boolean {
        return this.bus.idle && !this.replica.busy && this.storage.in_flight === 0;
    }

    private finish(): void {
        if (this.interval !== null) clearInterval(this.interval);
        this.interval = null;
        this.replica.release_messages();
        this.pool.assert_no_leaks();
        this.close_file().then(() => {
            this.stopped = true;
            this.resolve_run!();
        }, (error: Error) => this.fail(error));
    }

    private async close_file(): Promise<void> {
        try {
            await fd_close(this.engine, this.storage.fd, this.options.path);
        } finally {
            lock_release(this.options.path);
            this.engine.destroy();
        }
    }

    private fail(error: Error): void {
        if (this.interval !== null) clearInterval(this.interval);
        this.interval = null;
        this.stopped = true;
        if (this.reject_run !== null) this.reject_run(error);
    }
}

interface ServerParts {
    engine: Engine;
    pool: MessagePool;
    storage: FileStorage;
    replica: Replica;
    bus: MessageBus;
    ledger: Ledger;
    time: SystemTime;
    address: Address;
    port: number;
}

async function server_parts(options: ServerOptions): Promise<ServerParts> {
    lock_acquire(options.path);
    let engine: Engine | null = null;
    try {
        const settings = await settings_read(options.path, options.io);
        // Checked before anything is sized: the replica connections come from the cluster's size.
        addresses_check(settings.replica, settings.replica_count, options.addresses.length);
        const capacity = capacity_from_file(settings, options);
        const config = data_file_config(capacity);
        const sizing = server_sizing(capacity.clients_max, options.connections_max,
            settings.replica_count);
        const stride = Math.ceil(config.message_size_max / sector_size) * sector_size;
        const arena = new Arena(replica_storage_arena_size(config) +
            sizing.messages_count * stride + 4 * sector_size);
        engine = create_engine(options.io, {
            arena, entries: sizing.engine_entries, log: options.log,
        });
        return await server_parts_locked(options, { capacity, sizing, arena, engine });
    } catch (error) {
        lock_release(options.path);
        if (engine !== null) engine.destroy();
        throw error;
    }
}

/**
 * The capacity comes from the data file, where `format` recorded it. A flag given to `start`
 * is only a check: one that disagrees with the file is an error naming both values.
 */
function capacity_from_file(settings: DataFileSettings, options: ServerOptions): Capacity {
    const recorded: Capacity = {
        clients_max: settings.config.clients_max,
        accounts_max: settings.capacity.accounts_max,
        transfers_max: settings.capacity.transfers_max,
    };
    if (recorded.accounts_max === 0 || recorded.transfers_max === 0) {
        throw new Error('the data file records no ledger capacity: it was formatted as bare ' +
            'storage (a test), not by `ringledger format`');
    }
    for (const name of ['clients_max', 'accounts_max', 'transfers_max'] as const) {
        const given = options[name];
        if (given !== undefined && given !== recorded[name]) {
            throw new Error(`--${name.replace('_', '-')}=${given} disagrees with the data ` +
                `file, formatted with ${name} ${recorded[name]}: the capacity is set at ` +
                '`format` and `start` takes it from the file (drop the flag)');
        }
    }
    return recorded;
}

/** `--addresses` names every replica of the cluster, in index order: one per replica. */
function addresses_check(replica: number, replica_count: number, addresses_count: number): void {
    assert(replica >= 0 && replica < replica_count);
    if (addresses_count !== replica_count) {
        throw new Error(`the data file is replica ${replica} of a cluster of ` +
            `${replica_count}: give --addresses with ${replica_count} ` +
            `address(es), not ${addresses_count}`);
    }
}

/** What `server_parts` sized and allocated before the data file is opened for service. */
interface ServerPrepared {
    capacity: Capacity;
    sizing: ServerSizing;
    arena: Arena;
    engine: Engine;
}

async function server_parts_locked(options: ServerOptions,
    prepared: ServerPrepared): Promise<ServerParts> {
    const { capacity, sizing, arena, engine } = prepared;
    const config = data_file_config(capacity);
    const layout = new ZoneLayout(config);
    const fd = engine.file_open(options.path, { direct: true, dsync: true, create: false });
    const storage = new FileStorage(engine, layout, fd, replica_storage_operations_max);
    const { listener, superblock, journal } = await replica_storage_open(storage);
    // The settings were read from the same superblock: this open must agree with them.
    addresses_check(superblock.replica, superblock.replica_count, options.addresses.length);
    assert.equal(sizing.replica_connections_max, 2 * (superblock.replica_count - 1));
    const pool = new MessagePool(arena, sizing.messages_count, config.message_size_max);
    const ledger = new Ledger(ledger_config(capacity));
    const time = new SystemTime();
    const random = new Prng(Date.now() % 0x7fffffff);
    const replica = replica_create({
        pool, time, random, storage, superblock, journal, storage_listener: listener, ledger,
        clients_max: capacity.clients_max, request_queue_max: sizing.request_queue_max,
        log: options.log, io_flush: () => engine.flush(),
    });
    arena.seal();
    replica.open();
    await storage_run_until(storage, () =>
        replica.status >= Status.normal || replica.startup_waits_for_peers);
    // Open is done: serving (normal), or in a cluster also joining a view change or waiting
    // for the primary's view (recovering_head), or still restoring while grid blocks it read
    // corrupt come from its peers (the bus below and the run loop's ticks fetch them; the
    // replica serves once they are back); or it failed, saying why.
    if (replica.status === Status.failed) throw replica.failure!;
    const cluster = bytes_le_bigint(superblock.cluster_bytes(), 0, 16);
    // The bus dials every other replica (options.addresses, resolved by the caller).
    const bus = new MessageBus({
        engine, pool, validator: new HeaderValidator(cluster), owner: replica, time, random,
        connections_max: sizing.connections_max, send_queue_max: sizing.send_queue_max,
        log: options.log, replica: superblock.replica, replica_addresses: options.addresses,
    });
    replica.network_attach(bus);
    const address = options.addresses[superblock.replica]!;
    const port = bus.listen(address.host, address.port);
    return { engine, pool, storage, replica, bus, ledger, time, address, port };
}

