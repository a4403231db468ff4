// A small deterministic cluster for targeted view-change tests (tests only; allocates freely):
// replica_count real Replicas, each over its own SimulatorStorage, a packet network with per-link
// filters (cut a link, drop one command), simulated clients that send every request to every
// replica (backups drop it, the primary answers), crash and restart of one replica. The seeded
// swarm simulator (lib/testing) covers random faults; this one builds exact situations.
import assert from 'node:assert/strict';

import { Arena } from '../lib/io/arena';
import { Ledger } from '../lib/ledger/ledger';
import { storage_format } from '../lib/vsr/data_file';
import type { FormatRecovery } from '../lib/vsr/superblock';
import { SimulatorStorage } from '../lib/storage/simulator_storage';
import { storage_run_until } from '../lib/storage/storage';
import type { StorageConfig } from '../lib/storage/zones';
import { ZoneLayout, sector_ceil } from '../lib/storage/zones';
import { Prng } from '../lib/prng';
import { header_size } from '../lib/vsr/constants';
import { HeaderView } from '../lib/vsr/header';
import { frame, offsets } from '../lib/vsr/header_layout';
import { MessagePool } from '../lib/vsr/message_pool';
import { connection_none } from '../lib/vsr/network';
import type { ReplicaNetwork } from '../lib/vsr/network';
import { Replica, Status } from '../lib/vsr/replica';
import type { ReplicaTime } from '../lib/vsr/replica';
import {
    replica_create, replica_storage_arena_size, replica_storage_config, replica_storage_open,
    replica_storage_operations_max,
} from '../lib/server/replica_open';
import { HeaderValidator, Reason } from '../lib/vsr/validate';
import { SimClient, SimTime, cluster_sim, config_sim } from './replica_harness';
import type { SimNetwork } from './replica_harness';

const restarts_max = 40;
const pool_messages = 192;

interface Packet {
    tick: number;
    sequence: number;
    /** Sender: a replica index, or -1 - client for a client. */
    from: number;
    /** Receiver: a replica index, or -1 - client. */
    to: number;
    message: number;
    /** The pool the message is in (a restarted replica has a new one). */
    pool: MessagePool;
}

/** A link filter: return true to drop the packet (from, to: replica or -1 - client). */
export type LinkFilter = (from: number, to: number, command: number) => boolean;

/** The network between the replicas and the clients, in one pool shared by all replicas. */
class ClusterNetwork {
    readonly cluster: Cluster;
    readonly validator = new HeaderValidator(cluster_sim);
    packets: Packet[] = [];
    sequence = 0;
    ticks = 0;
    filter: LinkFilter | null = null;
    rejected = 0;
    dropped = 0;

    constructor(cluster: Cluster) {
        this.cluster = cluster;
    }

    /** SimClient's entry: a request or ping goes to every replica. */
    client_send(index: number, bytes: Uint8Array): void {
        for (let replica = 0; replica < this.cluster.replica_count; replica++) {
            const pool = this.cluster.pools[replica]!;
            const message = pool.acquire();
            if (message === -1) {
                this.dropped += 1;
                continue;
            }
            pool.bytes.set(bytes, pool.offset(message));
            this.enqueue(-1 - index, replica, message, pool);
            pool.unref(message);
        }
    }

    enqueue(from: number, to: number, message: number, pool: MessagePool): void {
        const command = pool.bytes[pool.offset(message) + frame.command]!;
        if (this.filter !== null && this.filter(from, to, command)) return;
        // The receiver gets its own copy in its own pool (each replica has its arena).
        const target = to >= 0 ? this.cluster.pools[to]! : pool;
        const copy = target.acquire();
        if (copy === -1) {
            this.dropped += 1; // The receiver has no buffer: the packet is lost, as on a link.
            return;
        }
        const size = new HeaderView().attach(pool.bytes, pool.offset(message)).size;
        target.bytes.set(pool.bytes.subarray(pool.offset(message), pool.offset(message) + size),
            target.offset(copy));
        const latency = 1 + this.cluster.prng.int(3);
        this.packets.push({ tick: this.ticks + latency, sequence: this.sequence++, from, to,
            message: copy, pool: target });
    }

    tick(): void {
        this.ticks += 1;
        this.packets.sort((a, b) => a.tick - b.tick || a.sequence - b.sequence);
        while (this.packets.length > 0 && this.packets[0]!.tick <= this.ticks) {
            const packet = this.packets.shift()!;
            this.deliver(packet);
        }
    }

    private deliver(packet: Packet): void {
        const to = packet.to;
        const pool = packet.pool;
        const offset = pool.offset(packet.message);
        if (to < 0) {
            const size = new HeaderView().attach(pool.bytes, offset).size;
            this.cluster.clients[-1 - to]!.on_message(pool.bytes.slice(offset, offset + size));
            pool.unref(packet.message);
            return;
        }
        const replica = this.cluster.replicas[to]!;
        const reason = this.validator.message(pool.bytes, offset, pool.message_size_max);
        if (reason !== Reason.ok) {
            this.rejected += 1;
        } else if (this.cluster.up[to] && replica.status !== Status.failed &&
            pool === this.cluster.pools[to]) {
            replica.on_message(packet.from >= 0 ? connection_none : -1 - packet.from,
                packet.message);
        }
        pool.unref(packet.message);
    }

    /** Drops every packet to or from `replica` (its process died with its sockets). */
    drop_replica(replica: number): void {
        this.packets = this.packets.filter((packet) => {
            if (packet.to !== replica && packet.from !== replica) return true;
            packet.pool.unref(packet.message);
            return false;
        });
    }
}

/** One replica's view of the network: sends land in the cluster network's queue. */
class ReplicaLink implements ReplicaNetwork {
    constructor(readonly network: ClusterNetwork, readonly replica: number) {}

    private get pool(): MessagePool { return this.network.cluster.pools[this.replica]!; }

    send(connection: number, message: number): boolean {
        if (connection < 0) return false;
        this.network.enqueue(this.replica, -1 - connection, message, this.pool);
        return true;
    }

    send_to_client(message: number): boolean {
        const pool = this.pool;
        const view = new HeaderView().attach(pool.bytes, pool.offset(message));
        const at = view.command === 8 ? offsets.reply.client : offsets.eviction.client;
        const id = view.u128_bigint(at);
        const index = this.network.cluster.clients.findIndex((client) => client.id === id);
        if (index === -1) return false;
        return this.send(index, message);
    }

    send_to_replica(replica: number, message: number): boolean {
        assert(replica !== this.replica);
        this.network.enqueue(this.replica, replica, message, this.pool);
        return true;
    }
}

export interface ClusterOptions {
    seed: number;
    replica_count: number;
    clients: number;
    config?: StorageConfig;
    log?: (line: string) => void;
    /** Each replica's clocks, given the cluster's true time (default: the true time itself). */
    time_of?: (replica: number, time: SimTime) => ReplicaTime;
}

export class Cluster {
    readonly prng: Prng;
    readonly replica_count: number;
    readonly time = new SimTime();
    readonly config: StorageConfig;
    readonly storages: SimulatorStorage[] = [];
    readonly pools: MessagePool[] = [];
    readonly replicas: Replica[] = [];
    /** Each replica's ledger (its state checksum compares replicas). */
    readonly ledgers: Ledger[] = [];
    readonly up: boolean[] = [];
    readonly clients: SimClient[] = [];
    readonly network: ClusterNetwork;
    readonly options: ClusterOptions;
    /** The committed header checksum of each op, from whichever replica committed it first. */
    readonly committed = new Map<number, bigint>();
    readonly committed_by = new Map<number, string>();

    private constructor(options: ClusterOptions) {
        this.options = options;
        this.prng = new Prng(options.seed);
        this.replica_count = options.replica_count;
        const base = options.config ?? config_sim;
        this.config = replica_storage_config(base, base.clients_max, ledger_config);
        this.network = new ClusterNetwork(this);
    }

    static async create(options: ClusterOptions): Promise<Cluster> {
        const cluster = new Cluster(options);
        for (let replica = 0; replica < options.replica_count; replica++) {
            cluster.storages.push(await cluster.storage_formatted(replica, 0, null));
            cluster.up.push(false);
        }
        for (let replica = 0; replica < options.replica_count; replica++) {
            await cluster.open(replica);
        }
        for (let index = 0; index < options.clients; index++) {
            const id = cluster.prng.u128() | 1n;
            cluster.clients.push(new SimClient(index, id,
                cluster.network as unknown as SimNetwork));
        }
        return cluster;
    }

    /** A fresh disk for `replica`, formatted (as `ringledger recover` does with a recovery). */
    private async storage_formatted(replica: number, generation: number,
        recovery: FormatRecovery | null): Promise<SimulatorStorage> {
        const layout = new ZoneLayout(this.config);
        const per_open = replica_storage_arena_size(this.config) +
            pool_messages * sector_ceil(this.config.message_size_max);
        const arena = new Arena(per_open * (restarts_max + 1));
        const storage = new SimulatorStorage(arena, layout, {
            seed: this.options.seed * 16 + replica + generation * 256, latency_ticks_min: 0,
            latency_ticks_max: 2, operations_max: replica_storage_operations_max, dsync: true,
        });
        await storage_format(storage, {
            cluster: cluster_sim, replica, replica_count: this.replica_count,
            ...(recovery === null ? {} : { recovery }),
        });
        return storage;
    }

    /** Replaces a crashed replica's lost disk with a data file rebuilt for `view`. */
    async reformat(replica: number, view: number): Promise<void> {
        assert(!this.up[replica]);
        this.storages[replica] = await this.storage_formatted(replica, 1, { view });
    }

    /**
     * Opens a replica over its disk. With `wait`, runs its storage alone until it serves (or
     * failed: thrown); without, it joins the cluster at once and startup goes on with the
     * cluster's ticks (a restore waiting for peers' grid blocks).
     */
    async open(replica: number, wait = true): Promise<void> {
        const storage = this.storages[replica]!;
        const { listener, superblock, journal } = await replica_storage_open(storage);
        const pool = new MessagePool(storage.arena, pool_messages, this.config.message_size_max);
        this.pools[replica] = pool;
        const log = this.options.log;
        this.replicas[replica] = replica_create({
            pool, time: this.options.time_of?.(replica, this.time) ?? this.time,
            random: new Prng(this.options.seed * 31 + replica),
            storage, superblock, journal, storage_listener: listener,
            ledger: this.ledgers[replica] = new Ledger(ledger_config),
            clients_max: this.config.clients_max,
            log: log === undefined ? undefined : (line) => log(`[${this.time.ticks}] ${line}`),
        });
        const instance = this.replicas[replica]!;
        if (!wait) {
            instance.network_attach(new ReplicaLink(this.network, replica));
            this.up[replica] = true;
            instance.open();
            return;
        }
        instance.open();
        await storage_run_until(storage, () => instance.status >= Status.normal);
        if (instance.status === Status.failed) throw instance.failure!;
        instance.network_attach(new ReplicaLink(this.network, replica));
        this.up[replica] = true;
    }

    /** Kills replica's process (in-flight writes lost or torn), then reopens it on its disk. */
    async crash(replica: number): Promise<void> {
        this.up[replica] = false;
        this.storages[replica]!.crash();
        this.network.drop_replica(replica);
    }

    async restart(replica: number, wait = true): Promise<void> {
        assert(!this.up[replica]);
        await this.open(replica, wait);
    }

    tick(): void {
        this.time.ticks += 1;
        for (let replica = 0; replica < this.replica_count; replica++) {
            if (this.up[replica]) this.storages[replica]!.tick();
        }
        this.network.tick();
        for (let replica = 0; replica < this.replica_count; replica++) {
            if (this.up[replica]) this.replicas[replica]!.tick();
        }
        for (const client of this.clients) client.tick();
        this.check_commits();
    }

    run_until(done: () => boolean, ticks_max: number): void {
        for (let tick = 0; tick < ticks_max; tick++) {
            if (done()) return;
            this.tick();
        }
        assert(done(), `cluster: not done after ${ticks_max} ticks (${this.describe()})`);
    }

    /** No two replicas commit different prepares at one op. */
    check_commits(): void {
        const view = new HeaderView();
        for (let index = 0; index < this.replica_count; index++) {
            if (!this.up[index]) continue;
            const replica = this.replicas[index]!;
            const journal = replica.journal;
            const from = Math.max(1, replica.commit_min - 8);
            for (let op = from; op <= replica.commit_min; op++) {
                view.attach(journal.headers, (op % journal.slot_count) * header_size);
                if (Number(view.u64_bigint(offsets.prepare.op)) !== op) continue;
                const checksum = view.u128_bigint(frame.checksum);
                const known = this.committed.get(op);
                if (known === undefined) {
                    this.committed.set(op, checksum);
                    this.committed_by.set(op, `replica ${index} view ${replica.view} header ` +
                        `view ${view.view} at tick ${this.time.ticks}`);
                } else {
                    assert.equal(checksum, known, `replica ${index} (view ${replica.view}) ` +
                        `committed another op ${op} (header view ${view.view}) than ` +
                        `${this.committed_by.get(op)}`);
                }
            }
        }
    }

    primary(): number {
        let best = -1;
        for (let index = 0; index < this.replica_count; index++) {
            const replica = this.replicas[index]!;
            if (!this.up[index] || replica.status !== Status.normal) continue;
            if (!replica.is_primary) continue;
            if (best === -1 || replica.view > this.replicas[best]!.view) best = index;
        }
        return best;
    }

    describe(): string {
        return this.replicas.map((replica, index) => `r${index}${this.up[index] ? '' : '(down)'}` +
            ` s${replica.status} v${replica.view}/${replica.log_view} op${replica.op} ` +
            `c${replica.commit_min}/${replica.commit_max}`).join('; ');
    }

    register_all(): void {
        for (const client of this.clients) client.register();
        this.run_until(() => this.clients.every((client) => client.session !== 0n), 20_000);
    }
}

const ledger_config = { accounts_max: 65_536, transfers_max: 16_384 };
