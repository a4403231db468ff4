// The simulated cluster (internals.md §17; tests and `ringledger simulate` only, allocates
// freely): replica_count real replicas, each over its own SimulatorStorage, with simulated time,
// the PacketSimulator between them and their clients, and the checkers watching every tick.
// Faults are the caller's (lib/testing/simulator.ts): crash (the storage loses or tears what was
// in flight, the process and its connections vanish), restart (reopen over the same storage,
// then recover as at any startup), pause (neither the replica nor its storage run, packets to it
// wait), connection resets, and random WAL write faults where the fault atlas allows them
// (fault_atlas.ts), until the liveness phase stops them.
//
// The replica is built through a ReplicaFactory, because its wiring over the ledger
// (lib/server/replica_open.ts) sits above this layer: lib/cli/simulate.ts passes it in.
// ClusterReplica is everything the simulator reads or calls on a replica.
import assert from 'node:assert/strict';

import { Arena, sector_size } from '../io/arena';
import type { LedgerConfig } from '../ledger/ledger';
import { Prng } from '../prng';
import { SimulatorStorage, write_fault_count } from '../storage/simulator_storage';
import type { StorageConfig } from '../storage/zones';
import { Zone, ZoneLayout, header_size, sector_ceil } from '../storage/zones';
import { checksum_equal } from '../vsr/checksum';
import { bytes_le_bigint } from '../vsr/header';
import { frame } from '../vsr/header_layout';
import { storage_format } from '../vsr/data_file';
import { MessagePool } from '../vsr/message_pool';
import type { ReplicaNetwork } from '../vsr/network';
import type { ReplicaRandom, ReplicaTime } from '../vsr/replica';
import { Status } from '../vsr/replica';
import { VsrState } from '../vsr/superblock';
import {
    CheckpointChecker, CommitChecker, RunDigest, Violation, ViolationKind, error_text,
} from './cluster_checkers';
import type { CheckpointCheckMode } from './cluster_checkers';
import { ClusterNetwork } from './cluster_network';
import type { ClusterFaultAtlas } from './fault_atlas';
import { GridRot } from './grid_faults';
import { MachineClock, clock_faults_none, timestamp_ahead_max_ns } from './machine_clock';
import type { ClockFaults } from './machine_clock';
import { PacketSimulator } from './packet_simulator';
import type { PacketSimulatorOptions } from './packet_simulator';
import { SimClient, SimTime } from './sim_client';

/** What the simulator expects of a replica (lib/vsr/replica.ts `Replica` is one). */
export interface ClusterReplica {
    /** Status in lib/vsr/replica.ts: failed means it could not open; opening before open(). */
    readonly status: number;
    readonly failure: Error | null;
    readonly view: number;
    readonly replica: number;
    readonly replica_count: number;
    /** The highest op executed (committed). */
    readonly commit_min: number;
    /** The head: the highest op prepared. */
    readonly op: number;
    /** Whether its log may lack ops it acknowledged (it cannot prove its head). */
    readonly head_uncertain: boolean;
    /**
     * State sync stopped it (status failed) to be restarted over the peer's checkpoint its
     * superblock now names: sync_restart_wanted once that is durable.
     */
    readonly sync_pending: boolean;
    readonly sync_restart_wanted: boolean;
    /** Headers by slot (op % slot_count), 256 bytes each. */
    readonly journal: { readonly headers: Uint8Array; readonly slot_count: number };
    readonly superblock: { vsr_state_read(state: VsrState): void };
    /** Starts recovery (checkpoint restore, WAL replay), driven by storage completions. */
    open(): void;
    /** Every 10 ms tick. */
    tick(): void;
    /** Every message, clients' (connection = client index) and peers' (connection_none). */
    on_message(connection: number, message: number): void;
    on_close(connection: number): void;
    network_attach(network: ReplicaNetwork): void;
    /** One line of protocol state for reports. */
    describe(): string;
    /** The session table: each session's latest reply in the pool (-1: not in memory). */
    readonly sessions: SessionTable;
    /** Session replies lost at startup and not yet fetched back from a peer. */
    readonly replies_missing: number;
    readonly stats: { readonly replies_lost: number; readonly replies_repaired: number };
    /** Grid blocks wanted from peers and repaired (lib/vsr/grid_repair.ts; null when solo). */
    readonly grid_repair: {
        readonly blocks_repaired: number;
        readonly wanted_count: number;
        readonly wanted_max: number;
        wanted_entry(entry: number): { address: number; checksum: Uint8Array } | null;
    } | null;
}

/** What the checkers read of a replica's session table (lib/vsr/client_sessions.ts). */
export interface SessionTable {
    readonly capacity: number;
    /** 0 for a free entry. */
    session(entry: number): number;
    /** The pool message holding the entry's latest reply, or -1. */
    reply_message(entry: number): number;
}

export interface ReplicaFactoryOptions {
    storage: SimulatorStorage;
    pool: MessagePool;
    time: ReplicaTime;
    random: ReplicaRandom;
    clients_max: number;
    ledger: LedgerConfig;
    log?: (line: string) => void;
}

/** Builds a replica over a simulated disk (lib/cli/simulate.ts: the ledger replica). */
export interface ReplicaFactory {
    /** The zones of a data file for a replica of this capacity (format and open agree). */
    storage_config(base: StorageConfig, ledger: LedgerConfig): StorageConfig;
    /** Arena bytes one opening takes, besides its message pool. */
    arena_size_per_open(config: StorageConfig): number;
    /** Storage operations a replica can have in flight at once. */
    readonly storage_operations_max: number;
    /** Opens the superblock and WAL over `storage` and builds the replica (before open()). */
    create(options: ReplicaFactoryOptions): Promise<ClusterReplica>;
}

export interface ClusterOptions {
    seed: number;
    cluster: bigint;
    replica_count: number;
    client_count: number;
    /** The data file's shape before the factory sizes it (clients_max is the sessions'). */
    storage: StorageConfig;
    ledger: LedgerConfig;
    storage_latency_ticks_max: number;
    /** Every replica's message pool. */
    pool_messages: number;
    /** Openings of each replica's storage, the format included (its arena is sized for them). */
    opens_max: number;
    network: Omit<PacketSimulatorOptions, 'seed' | 'node_count' | 'replica_count' |
        'packets_max' | 'message_size_max'>;
    packets_max: number;
    client_ping_ticks: number;
    checkpoint_check: CheckpointCheckMode;
    factory: ReplicaFactory;
    log?: (line: string) => void;
    /** Random write faults in the WAL zones, where the atlas allows them (none when absent). */
    storage_faults?: StorageFaultOptions;
    /** Each machine's clock faults, drawn from `seed` (ideal clocks when absent). */
    clocks?: { faults: ClockFaults; seed: number };
    /** Grid blocks that rot while a replica is down (grid_faults.ts; none when absent or 0). */
    grid_rot?: { blocks_per_restart_max: number; seed: number };
}

export interface StorageFaultOptions {
    atlas: ClusterFaultAtlas;
    /** By WriteFault (index 0 unused): the chance per million that a WAL write suffers it. */
    wal_fault_per_million: readonly number[];
    /** By WriteFault: the same for a write to the client replies zone. */
    reply_fault_per_million: readonly number[];
}

const wal_zones = [Zone.wal_headers, Zone.wal_prepares] as const;

export const Health = { up: 0, down: 1, paused: 2 } as const;

/** One replica's machine: its disk persists across crashes, its process does not. */
export class ReplicaNode {
    readonly index: number;
    readonly storage: SimulatorStorage;
    readonly random: Prng;
    /** The machine's clocks: they outlive the replica's crashes. */
    readonly time: MachineClock;
    replica: ClusterReplica | null = null;
    /** The running incarnation's message pool. */
    pool: MessagePool | null = null;
    health: number = Health.up;
    /** Down: restart not before this tick. Paused: resume at this tick. */
    until_tick = 0;
    opens = 0;
    /** The highest op of this incarnation the commit checker has looked at. */
    commit_checked = 0;
    /** The durable checkpoint op last given to the checkpoint checker (-1: none yet). */
    checkpoint_checked = -1;
    /** Session replies lost at startup, and repaired from a peer, by incarnations that died. */
    replies_lost = 0;
    replies_repaired = 0;
    /** Grid blocks repaired from a peer by incarnations that died. */
    grid_blocks_repaired = 0;
    /** A state sync stopped the replica: Cluster.sync_restarts reopens it. */
    sync_restart = false;
    /** Where the running incarnation's arena memory starts. */
    arena_mark = 0;

    constructor(index: number, storage: SimulatorStorage, random: Prng, time: MachineClock) {
        this.index = index;
        this.storage = storage;
        this.random = random;
        this.time = time;
    }

    get running(): boolean {
        return this.health === Health.up && this.replica !== null;
    }
}

export class Cluster {
    readonly options: ClusterOptions;
    readonly time = new SimTime();
    readonly config: StorageConfig;
    readonly nodes: ReplicaNode[] = [];
    readonly clients: SimClient<ClusterNetwork>[] = [];
    readonly network: ClusterNetwork;
    readonly packets: PacketSimulator;
    readonly digest = new RunDigest();
    readonly commits: CommitChecker;
    readonly checkpoints: CheckpointChecker;
    readonly grid_rot: GridRot | null;
    private readonly prng: Prng;
    private readonly vsr_state = new VsrState();
    /** State syncs: replicas restarted over a peer's checkpoint (sync_restart_due). */
    syncs = 0;

    private constructor(options: ClusterOptions) {
        assert(options.replica_count >= 1 && options.replica_count <= 6);
        assert(options.client_count >= 1 && options.opens_max >= 2);
        this.options = options;
        this.prng = new Prng(options.seed);
        this.config = options.factory.storage_config(options.storage, options.ledger);
        assert.equal(this.config.clients_max, options.storage.clients_max);
        this.packets = new PacketSimulator({
            ...options.network, seed: this.prng.u32(),
            node_count: options.replica_count + options.client_count,
            replica_count: options.replica_count, packets_max: options.packets_max,
            message_size_max: this.config.message_size_max,
        });
        this.network = new ClusterNetwork(this.packets, options.cluster, options.replica_count,
            options.client_count);
        this.commits = new CommitChecker(this.digest);
        this.checkpoints = new CheckpointChecker(options.checkpoint_check, this.digest);
        const rot = options.grid_rot;
        this.grid_rot = rot === undefined || rot.blocks_per_restart_max === 0 ? null
            : new GridRot(rot.seed, options.replica_count, this.config.grid_block_count,
                this.config.block_size, rot.blocks_per_restart_max);
    }

    /** Formats every replica's disk and opens them, and creates the clients. */
    static async create(options: ClusterOptions): Promise<Cluster> {
        const cluster = new Cluster(options);
        for (let index = 0; index < options.replica_count; index++) {
            const node = cluster.node_create(index);
            cluster.nodes.push(node);
            await storage_format(node.storage, {
                cluster: options.cluster, replica: index, replica_count: options.replica_count,
            });
            node.opens += 1;
            // The format is written pristine: faults start with the replica's own writes.
            cluster.storage_faults_start(node);
            await cluster.replica_open(node);
        }
        const ids = new Set<bigint>();
        for (let index = 0; index < options.client_count; index++) {
            let id = cluster.prng.u128() | 1n;
            while (ids.has(id)) id = cluster.prng.u128() | 1n;
            ids.add(id);
            cluster.clients.push(new SimClient(index, id, cluster.network, {
                cluster: options.cluster, replica_count: options.replica_count,
                seed: cluster.prng.u32(), ping_ticks: options.client_ping_ticks,
            }));
        }
        cluster.network.clients_set(cluster.clients);
        return cluster;
    }

    private node_create(index: number): ReplicaNode {
        const config = this.config;
        const per_open = this.options.factory.arena_size_per_open(config) +
            this.options.pool_messages * sector_ceil(config.message_size_max) + sector_size;
        const arena = new Arena(per_open * this.options.opens_max);
        const storage = new SimulatorStorage(arena, new ZoneLayout(config), {
            seed: this.prng.u32(), latency_ticks_min: 0,
            latency_ticks_max: this.options.storage_latency_ticks_max,
            operations_max: this.options.factory.storage_operations_max,
            // O_DSYNC, as the data file is opened: a completed write is durable, and a crash
            // loses or tears only the writes still in flight.
            dsync: true,
        });
        // The clocks draw from a stream of their own: ideal ones draw nothing, so a run
        // without clock faults is the run it was before they existed.
        const clocks = this.options.clocks ?? { faults: clock_faults_none, seed: 0 };
        const time = new MachineClock(this.time,
            new Prng((clocks.seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0), clocks.faults, index);
        return new ReplicaNode(index, storage, new Prng(this.prng.u32()), time);
    }

    private storage_faults_start(node: ReplicaNode): void {
        const faults = this.options.storage_faults;
        if (faults === undefined) return;
        assert.equal(faults.wal_fault_per_million.length, write_fault_count);
        assert.equal(faults.atlas.replica_count, this.options.replica_count);
        assert.equal(faults.atlas.slot_count, this.config.slot_count);
        assert.equal(faults.atlas.message_size_max, this.config.message_size_max);
        assert.equal(faults.atlas.reply_slot_count, this.config.clients_max);
        assert.equal(faults.reply_fault_per_million.length, write_fault_count);
        node.storage.fault_filter_set(faults.atlas.filter(node.index));
        for (let fault = 1; fault < write_fault_count; fault++) {
            const per_million = faults.wal_fault_per_million[fault]!;
            assert(per_million >= 0 && per_million <= 1_000_000);
            for (const zone of wal_zones) {
                node.storage.fault_probability_set(zone, fault, per_million / 1_000_000);
            }
            const reply_per_million = faults.reply_fault_per_million[fault]!;
            assert(reply_per_million >= 0 && reply_per_million <= 1_000_000);
            node.storage.fault_probability_set(Zone.client_replies, fault,
                reply_per_million / 1_000_000);
        }
    }

    /** No more random storage faults (the liveness phase); the damage done stays. */
    storage_faults_stop(): void {
        for (const node of this.nodes) {
            for (let fault = 1; fault < write_fault_count; fault++) {
                for (const zone of wal_zones) node.storage.fault_probability_set(zone, fault, 0);
                node.storage.fault_probability_set(Zone.client_replies, fault, 0);
            }
        }
    }

    /** Session replies lost at startup and repaired from a peer, over every incarnation. */
    replies_repair_counts(): { lost: number; repaired: number } {
        let lost = 0;
        let repaired = 0;
        for (const node of this.nodes) {
            lost += node.replies_lost + (node.replica?.stats.replies_lost ?? 0);
            repaired += node.replies_repaired + (node.replica?.stats.replies_repaired ?? 0);
        }
        assert(repaired <= lost, 'a reply repaired that was never lost');
        return { lost, repaired };
    }

    /** Random storage faults injected so far, by WriteFault, over every replica's disk. */
    storage_faults_injected(): number[] {
        const counts = new Array<number>(write_fault_count).fill(0);
        for (const node of this.nodes) {
            for (let fault = 0; fault < write_fault_count; fault++) {
                counts[fault]! += node.storage.faults_injected[fault]!;
            }
        }
        return counts;
    }

    /** A fresh process over the node's disk: build the replica, attach it, start recovery. */
    private async replica_open(node: ReplicaNode): Promise<void> {
        assert(node.replica === null);
        assert(node.opens < this.options.opens_max, `replica ${node.index}: arena exhausted`);
        node.opens += 1;
        node.arena_mark = node.storage.arena.used_bytes;
        const pool = new MessagePool(node.storage.arena, this.options.pool_messages,
            this.config.message_size_max);
        let replica: ClusterReplica;
        try {
            replica = await this.options.factory.create({
                storage: node.storage, pool, time: node.time, random: node.random,
                clients_max: this.config.clients_max, ledger: this.options.ledger,
                log: this.options.log === undefined ? undefined
                    : (line) => this.options.log!(`[${this.time.ticks}] r${node.index} ${line}`),
            });
        } catch (error) {
            throw new Violation(ViolationKind.replica_failed, -1, node.index, `replica ` +
                `${node.index} could not open its storage: ${error_text(error)}`, error);
        }
        assert.equal(replica.replica, node.index);
        assert.equal(replica.replica_count, this.options.replica_count);
        node.replica = replica;
        node.pool = pool;
        node.health = Health.up;
        node.commit_checked = 0;
        replica.network_attach(this.network.replica_attach(node.index, replica, pool));
        this.guarded(node, 'open', () => replica.open());
    }

    /** The process dies: in-flight writes are lost or torn, its connections close. */
    crash(index: number, down_ticks: number): void {
        const node = this.nodes[index]!;
        assert(node.replica !== null, `replica ${index} is already down`);
        node.replies_lost += node.replica.stats.replies_lost;
        node.replies_repaired += node.replica.stats.replies_repaired;
        node.grid_blocks_repaired += node.replica.grid_repair?.blocks_repaired ?? 0;
        node.storage.crash();
        node.replica = null;
        node.pool = null;
        node.health = Health.down;
        node.until_tick = this.time.ticks + down_ticks;
        this.network.replica_detach(index);
        this.packets.node_hold(index, 0);
    }

    async restart(index: number): Promise<void> {
        const node = this.nodes[index]!;
        assert(node.health === Health.down && node.replica === null);
        // Blocks rot while the machine is down: the restore finds them.
        this.grid_rot?.rot(index, this.nodes.map((other) => other.storage));
        await this.replica_open(node);
    }

    /**
     * A replica whose superblock now names a peer's checkpoint (state sync) stops; its process
     * is restarted over the same disk at once (sync_restarts), as a supervisor would: the
     * restore fetches the blocks it lacks from peers. In-flight writes die as in a crash.
     */
    private sync_restart_due(node: ReplicaNode): void {
        assert(node.replica !== null && node.replica.sync_restart_wanted);
        this.crash(node.index, 0);
        node.sync_restart = true;
        this.syncs += 1;
    }

    /** Restarts the replicas a state sync stopped this tick (call after every tick). */
    async sync_restarts(): Promise<void> {
        for (const node of this.nodes) {
            if (!node.sync_restart) continue;
            assert(node.health === Health.down && node.replica === null);
            node.sync_restart = false;
            // The stopped incarnation's memory is the new one's: a sync costs no open.
            node.storage.arena.rewind(node.arena_mark);
            node.opens -= 1;
            assert(node.opens >= 0);
            await this.replica_open(node);
        }
    }

    /**
     * A down replica's data file is lost and rebuilt as `ringledger recover` writes it, for the
     * cluster's `view` (the caller waited for a pipeline of commits without it): a blank disk,
     * formatted pristine, then its faults as before.
     */
    async reformat(index: number, view: number): Promise<void> {
        const node = this.nodes[index]!;
        assert(node.health === Health.down && node.replica === null);
        assert(this.options.replica_count >= 3);
        node.storage.replace();
        node.storage.fault_filter_set(null);
        for (let fault = 1; fault < write_fault_count; fault++) {
            for (const zone of wal_zones) node.storage.fault_probability_set(zone, fault, 0);
            node.storage.fault_probability_set(Zone.client_replies, fault, 0);
        }
        assert(node.opens + 2 <= this.options.opens_max, 'format takes an open of the arena');
        await storage_format(node.storage, {
            cluster: this.options.cluster, replica: index,
            replica_count: this.options.replica_count, recovery: { view },
        });
        node.opens += 1;
        this.storage_faults_start(node);
        node.commit_checked = 0;
        node.checkpoint_checked = -1;
    }

    /** Grid blocks repaired from a peer, over every incarnation. */
    grid_blocks_repaired(): number {
        return this.nodes.reduce((sum, node) => sum + node.grid_blocks_repaired +
            (node.replica?.grid_repair?.blocks_repaired ?? 0), 0);
    }

    /** Neither the replica nor its disk run for `ticks`; packets to it wait. */
    pause(index: number, ticks: number): void {
        const node = this.nodes[index]!;
        assert(node.running && ticks > 0);
        node.health = Health.paused;
        node.until_tick = this.time.ticks + ticks;
        this.packets.node_hold(index, node.until_tick);
    }

    resume(index: number): void {
        const node = this.nodes[index]!;
        assert(node.health === Health.paused);
        node.health = Health.up;
        this.packets.node_hold(index, 0);
    }

    /** Replicas down or paused. */
    get replicas_unavailable(): number {
        return this.nodes.reduce((sum, node) => sum + (node.health === Health.up ? 0 : 1), 0);
    }

    /** One 10 ms tick of everything, in a fixed order; throws a Violation. */
    tick(): void {
        this.time.ticks += 1;
        this.network.ticks = this.time.ticks;
        for (const node of this.nodes) node.time.tick();
        // Cluster time keeps every prepare within reach of the true time, however far ahead
        // one clock runs (machine_clock.ts): the checker's bound for ops committed now.
        this.commits.timestamp_max = BigInt(this.time.realtime_us()) * 1000n +
            timestamp_ahead_max_ns;
        for (const node of this.nodes) {
            if (node.health === Health.paused && node.until_tick <= this.time.ticks) {
                this.resume(node.index);
            }
            if (node.running) this.guarded(node, 'a storage completion', () => node.storage.tick());
        }
        this.packets.tick(this.network);
        for (const node of this.nodes) {
            if (node.running) this.guarded(node, 'tick', () => node.replica!.tick());
        }
        for (const client of this.clients) client.tick();
        for (const node of this.nodes) {
            if (node.running) this.observe(node);
        }
    }

    /** Runs replica code, turning what it throws into a Violation that names the replica. */
    private guarded(node: ReplicaNode, what: string, run: () => unknown): void {
        try {
            run();
        } catch (error) {
            if (error instanceof Violation) throw error;
            const replica = node.replica;
            throw new Violation(ViolationKind.assertion, replica === null ? -1 : replica.op,
                node.index, `replica ${node.index}` + (replica === null ? '' : ` (op ` +
                    `${replica.op}, commit_min ${replica.commit_min}, view ${replica.view})`) +
                ` threw in ${what}: ${error_text(error)}`, error);
        }
    }

    /**
     * Replicas whose disk holds op `op` as the prepare with header checksum `checksum`: intact in
     * both WAL rings (what the medium holds, crashed or not: writes are durable as they
     * complete), or under a durable checkpoint at or past it (its slot may hold a newer op by
     * then). With `damaged_count`, replicas whose copy may have been damaged after it was written
     * and acknowledged (the fault atlas opens its WAL area to faults) count too.
     */
    op_holders(op: number, checksum: bigint, damaged_count: boolean = false): number {
        assert(op >= 1);
        let holders = 0;
        const atlas = this.options.storage_faults?.atlas;
        const slot = op % this.config.slot_count;
        for (const node of this.nodes) {
            if (node.checkpoint_checked >= op || this.op_intact(node, op, checksum)) {
                holders += 1;
            } else if (damaged_count && atlas !== undefined &&
                atlas.wal_faulty(node.index, atlas.wal_area(slot))) {
                holders += 1;
            }
        }
        assert(holders <= this.nodes.length);
        return holders;
    }

    /**
     * Whether the node's WAL holds op `op` (checksum `checksum`) whole: its redundant header and
     * its prepare readable, each with the checksum, and the prepare's body matching its own.
     */
    op_intact(node: ReplicaNode, op: number, checksum: bigint): boolean {
        const slot = op % this.config.slot_count;
        const storage = node.storage;
        if (!storage.readable(Zone.wal_headers, slot * header_size, header_size)) return false;
        const header = storage.peek(Zone.wal_headers, slot * header_size, header_size);
        if (bytes_le_bigint(header, 0, 16) !== checksum ||
            !checksum_equal(header, 16, header_size - 16, header, frame.checksum)) return false;
        return this.prepare_intact(node, op, checksum);
    }

    /** Whether the node's WAL prepare ring holds op `op` (checksum `checksum`) whole. */
    prepare_intact(node: ReplicaNode, op: number, checksum: bigint): boolean {
        const prepare_offset = (op % this.config.slot_count) * this.config.message_size_max;
        const storage = node.storage;
        if (!storage.readable(Zone.wal_prepares, prepare_offset, header_size)) return false;
        const prepare = storage.peek(Zone.wal_prepares, prepare_offset, header_size);
        if (bytes_le_bigint(prepare, 0, 16) !== checksum ||
            !checksum_equal(prepare, 16, header_size - 16, prepare, frame.checksum)) return false;
        const size = new DataView(prepare.buffer).getUint32(frame.size, true);
        if (size < header_size || size > this.config.message_size_max) return false;
        if (!storage.readable(Zone.wal_prepares, prepare_offset, size)) return false;
        const message = storage.peek(Zone.wal_prepares, prepare_offset, size);
        return checksum_equal(message, header_size, size - header_size, message,
            frame.checksum_body);
    }

    /** The checkers' look at one replica after the tick. */
    private observe(node: ReplicaNode): void {
        const replica = node.replica!;
        if (replica.sync_pending) {
            assert.equal(replica.status, Status.failed);
            if (replica.sync_restart_wanted) this.sync_restart_due(node);
            return;
        }
        if (replica.status === Status.failed) {
            throw new Violation(ViolationKind.replica_failed, replica.commit_min, node.index,
                `replica ${node.index} failed to recover: ${replica.failure?.message}`);
        }
        node.commit_checked = this.commits.observe(node.index, replica.journal,
            node.commit_checked, replica.commit_min);
        replica.superblock.vsr_state_read(this.vsr_state);
        if (this.vsr_state.checkpoint_op !== node.checkpoint_checked) {
            node.checkpoint_checked = this.vsr_state.checkpoint_op;
            this.checkpoints.observe(node.index, this.vsr_state);
        }
    }
}
