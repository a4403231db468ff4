// The simulated network of the cluster simulator (internals.md §17, after TigerBeetle's
// packet_simulator.zig): every packet is delayed on its own (a minimum plus an exponential part, so
// packets overtake each other), may be lost or replayed (delivered twice), and waits in a bounded
// path: a full path drops what is sent to it. Paths clog for a while (their packets wait), and
// the replicas are partitioned from time to time (one replica isolated, random halves or a random
// subset; both directions cut, or only one) until the partition heals. Everything random comes
// from one seeded PRNG, and time is the simulator's ticks, so a seed replays the same network.
//
// Nodes are replicas (0 .. replica_count - 1) then clients. A packet holds a reference to a
// message of the network's own pool: the sender's bytes are copied once at submission (a
// replica's pool then owes the network nothing, and may die with a crash), a replayed packet
// shares the message, and the receiver copies it into its own pool on delivery. Packets wait in
// a binary heap over fixed arrays, ordered by (delivery tick, submission sequence).
import assert from 'node:assert/strict';

import { Arena } from '../io/arena';
import { Prng } from '../prng';
import { MessagePool } from '../vsr/message_pool';

/** How the replicas are split when a partition starts. */
export const PartitionMode = {
    /** One replica on its own. */
    isolate_single: 0,
    /** A side of a uniformly chosen size 1 .. replica_count - 1. */
    uniform_size: 1,
    /** Each replica on either side with probability 1/2. */
    uniform_partition: 2,
} as const;
export const partition_mode_count = 3;
export const partition_mode_names: readonly string[] =
    ['isolate_single', 'uniform_size', 'uniform_partition'];

export interface PacketSimulatorOptions {
    seed: number;
    /** Replicas, then clients. */
    node_count: number;
    /** Nodes below this are replicas: only they are partitioned. */
    replica_count: number;
    /** Packets in flight in all (and messages in the network's pool). */
    packets_max: number;
    message_size_max: number;
    /** At least 1: a packet sent during a tick arrives in a later one. */
    one_way_delay_min_ticks: number;
    one_way_delay_mean_ticks: number;
    packet_loss_percent: number;
    packet_replay_percent: number;
    path_capacity_packets: number;
    /** Chance per tick, in parts per million, that one random path clogs. */
    path_clog_per_million: number;
    path_clog_duration_mean_ticks: number;
    partition_mode: number;
    /** Both directions cut, or only from one side to the other. */
    partition_symmetric: boolean;
    /** Chance per tick, in parts per million, of a partition once the last one is stable. */
    partition_per_million: number;
    unpartition_per_million: number;
    /** A partition lasts at least this long, and the next starts at least this long after. */
    partition_stability_ticks: number;
    unpartition_stability_ticks: number;
}

/** Where due packets go. */
export interface PacketTarget {
    /** `message` is the network pool's; the callee copies what it keeps. */
    packet_deliver(source: number, target: number, message: number): void;
}

/** Counters for the run summary and for tests that check faults were injected. */
export class PacketStats {
    submitted = 0;
    delivered = 0;
    replayed = 0;
    dropped_loss = 0;
    dropped_capacity = 0;
    dropped_partition = 0;
    /** Packets on a path whose connection was reset, or to or from a replica that crashed. */
    dropped_reset = 0;
    /** The network's pool or packet table was full. */
    dropped_full = 0;
    clogs = 0;
    partitions = 0;

    get dropped(): number {
        return this.dropped_loss + this.dropped_capacity + this.dropped_partition +
            this.dropped_reset + this.dropped_full;
    }
}

/** An exponential delay's tail is cut here, so that no packet waits unboundedly. */
const delay_tail_multiple = 20;
const million = 1_000_000;
/** Levels of a binary heap of up to 2^32 packets: bounds the sift loops. */
const heap_depth_max = 32;

export class PacketSimulator {
    readonly options: PacketSimulatorOptions;
    readonly pool: MessagePool;
    readonly stats = new PacketStats();
    /** Faults stop when the network heals (liveness): delays stay. */
    faults_enabled = true;
    private readonly prng: Prng;
    private ticks = 0;
    private sequence = 0;

    // Packets, by slot: what each carries and when it is due.
    private readonly packet_message: Int32Array;
    private readonly packet_source: Uint16Array;
    private readonly packet_target: Uint16Array;
    private readonly packet_epoch: Uint32Array;
    private readonly packet_ready_tick: Float64Array;
    private readonly packet_sequence: Float64Array;
    private readonly slots_free: Int32Array;
    private slots_free_count: number;
    /** The heap of slots, least (ready tick, sequence) first. */
    private readonly heap: Int32Array;
    private heap_count = 0;

    // Paths, by source * node_count + target.
    private readonly path_packets: Uint16Array;
    private readonly path_clogged_until_tick: Float64Array;
    /** Bumped when a path's connection resets: packets of older epochs are dropped. */
    private readonly path_epoch: Uint32Array;
    /** Per node: deliveries to it wait until this tick (a paused process reads nothing). */
    private readonly node_held_until_tick: Float64Array;

    // The partition of the replicas.
    private readonly partition_side: Uint8Array;
    /** Scratch for drawing a side of a given size. */
    private readonly partition_order: Uint8Array;
    private partitioned = false;
    /** Asymmetric partitions cut only packets sent from this side. */
    private partition_side_cut = 0;
    private partition_changed_tick = 0;

    constructor(options: PacketSimulatorOptions) {
        options_check(options);
        this.options = options;
        this.prng = new Prng(options.seed);
        const arena = new Arena((options.packets_max + 1) *
            Math.ceil(options.message_size_max / 4096) * 4096 + 4096);
        this.pool = new MessagePool(arena, options.packets_max + 1, options.message_size_max);
        arena.seal();
        const count = options.packets_max;
        this.packet_message = new Int32Array(count);
        this.packet_source = new Uint16Array(count);
        this.packet_target = new Uint16Array(count);
        this.packet_epoch = new Uint32Array(count);
        this.packet_ready_tick = new Float64Array(count);
        this.packet_sequence = new Float64Array(count);
        this.slots_free = new Int32Array(count);
        for (let slot = 0; slot < count; slot++) this.slots_free[slot] = count - 1 - slot;
        this.slots_free_count = count;
        this.heap = new Int32Array(count);
        const paths = options.node_count * options.node_count;
        this.path_packets = new Uint16Array(paths);
        this.path_clogged_until_tick = new Float64Array(paths);
        this.path_epoch = new Uint32Array(paths);
        this.node_held_until_tick = new Float64Array(options.node_count);
        this.partition_side = new Uint8Array(options.replica_count);
        this.partition_order = new Uint8Array(options.replica_count);
    }

    get packets_in_flight(): number {
        return this.heap_count;
    }

    get is_partitioned(): boolean {
        return this.partitioned;
    }

    /**
     * Sends `size` bytes at bytes[offset] from `source` to `target`. Returns false when the path
     * or the network was full (a sender's queue overflowing); a lost packet still returns true,
     * as a socket send does.
     */
    submit(source: number, target: number, bytes: Uint8Array, offset: number,
        size: number): boolean {
        const path = this.path(source, target);
        assert(size >= 256 && size <= this.options.message_size_max);
        assert(offset >= 0 && offset + size <= bytes.length);
        this.stats.submitted += 1;
        if (this.faults_enabled && this.prng.int(100) < this.options.packet_loss_percent) {
            this.stats.dropped_loss += 1;
            return true;
        }
        const copies = this.faults_enabled &&
            this.prng.int(100) < this.options.packet_replay_percent ? 2 : 1;
        const message = this.pool.acquire();
        if (message === -1) {
            this.stats.dropped_full += 1;
            return false;
        }
        this.pool.bytes.set(bytes.subarray(offset, offset + size), this.pool.offset(message));
        let queued = false;
        for (let copy = 0; copy < copies; copy++) {
            if (this.path_packets[path]! >= this.options.path_capacity_packets) {
                this.stats.dropped_capacity += 1;
            } else if (this.slots_free_count === 0) {
                this.stats.dropped_full += 1;
            } else {
                this.enqueue(source, target, path, message);
                if (copy === 1) this.stats.replayed += 1;
                queued = true;
            }
        }
        this.pool.unref(message);
        return queued;
    }

    /** One tick: faults evolve, then every packet due by now is delivered (or dropped). */
    tick(target: PacketTarget): void {
        this.ticks += 1;
        if (this.faults_enabled) {
            this.clog_maybe();
            this.partition_maybe();
        }
        // Bounded by the packets queued before this tick: those sent or put back during it are
        // due later, so the loop stops at them.
        const count = this.heap_count;
        for (let pass = 0; pass < count; pass++) {
            if (this.heap_count === 0) break;
            const slot = this.heap[0]!;
            if (this.packet_ready_tick[slot]! > this.ticks) break;
            this.heap_pop();
            this.deliver_or_drop(slot, target);
        }
        assert(this.heap_count === 0 || this.packet_ready_tick[this.heap[0]!]! > this.ticks);
    }

    /** Heals the network for good: no partition, no clog, no loss or replay from now on. */
    heal(): void {
        this.faults_enabled = false;
        this.partitioned = false;
        this.path_clogged_until_tick.fill(0);
    }

    /** A node's connections die (its process crashed): what is in flight to or from it is lost. */
    node_reset(node: number): void {
        assert(node >= 0 && node < this.options.node_count);
        for (let other = 0; other < this.options.node_count; other++) {
            if (other === node) continue;
            if (this.path_valid(node, other)) this.path_epoch[this.path(node, other)]! += 1;
            if (this.path_valid(other, node)) this.path_epoch[this.path(other, node)]! += 1;
        }
    }

    /** One connection resets: packets in flight between the two nodes are lost. */
    path_reset(a: number, b: number): void {
        this.path_epoch[this.path(a, b)]! += 1;
        this.path_epoch[this.path(b, a)]! += 1;
    }

    /** Deliveries to `node` wait until `tick` (0: no longer). */
    node_hold(node: number, tick: number): void {
        assert(node >= 0 && node < this.options.node_count && tick >= 0);
        this.node_held_until_tick[node] = tick;
    }

    path_valid(source: number, target: number): boolean {
        const nodes = this.options.node_count;
        if (source < 0 || source >= nodes || target < 0 || target >= nodes) return false;
        if (source === target) return false;
        // Clients talk to replicas only.
        return source < this.options.replica_count || target < this.options.replica_count;
    }

    private path(source: number, target: number): number {
        assert(this.path_valid(source, target), `network: no path ${source} -> ${target}`);
        return source * this.options.node_count + target;
    }

    private enqueue(source: number, target: number, path: number, message: number): void {
        assert(this.slots_free_count > 0);
        this.slots_free_count -= 1;
        const slot = this.slots_free[this.slots_free_count]!;
        this.pool.ref(message);
        this.packet_message[slot] = message;
        this.packet_source[slot] = source;
        this.packet_target[slot] = target;
        this.packet_epoch[slot] = this.path_epoch[path]!;
        this.packet_ready_tick[slot] = this.ticks + this.delay_ticks();
        this.packet_sequence[slot] = this.sequence++;
        this.path_packets[path]! += 1;
        assert(this.path_packets[path]! <= this.options.path_capacity_packets);
        this.heap_push(slot);
    }

    private deliver_or_drop(slot: number, target: PacketTarget): void {
        const source = this.packet_source[slot]!;
        const destination = this.packet_target[slot]!;
        const path = this.path(source, destination);
        const wait_until = Math.max(this.path_clogged_until_tick[path]!,
            this.node_held_until_tick[destination]!);
        if (this.packet_epoch[slot] === this.path_epoch[path] && wait_until > this.ticks) {
            // Clogged, or the receiver is paused: the packet waits, in order with later ones.
            this.packet_ready_tick[slot] = wait_until;
            this.packet_sequence[slot] = this.sequence++;
            this.heap_push(slot);
            return;
        }
        const message = this.packet_message[slot]!;
        if (this.packet_epoch[slot] !== this.path_epoch[path]) {
            this.stats.dropped_reset += 1;
        } else if (this.partition_cuts(source, destination)) {
            this.stats.dropped_partition += 1;
        } else {
            this.stats.delivered += 1;
            target.packet_deliver(source, destination, message);
        }
        this.path_packets[path]! -= 1;
        this.slots_free[this.slots_free_count] = slot;
        this.slots_free_count += 1;
        assert(this.slots_free_count <= this.options.packets_max);
        this.pool.unref(message);
    }

    /** The minimum plus an exponential part (cut at a multiple of its mean), in whole ticks. */
    private delay_ticks(): number {
        const mean = this.options.one_way_delay_mean_ticks;
        const uniform = this.prng.u32() / 2 ** 32;
        const exponential = Math.min(Math.floor(-mean * Math.log(1 - uniform)),
            mean * delay_tail_multiple);
        const delay = this.options.one_way_delay_min_ticks + exponential;
        assert(delay >= 1 && Number.isInteger(delay));
        return delay;
    }

    private clog_maybe(): void {
        if (this.prng.int(million) >= this.options.path_clog_per_million) return;
        const nodes = this.options.node_count;
        const source = this.prng.int(nodes);
        const target = this.prng.int(nodes);
        if (!this.path_valid(source, target)) return;
        const mean = this.options.path_clog_duration_mean_ticks;
        const uniform = this.prng.u32() / 2 ** 32;
        const duration = 1 + Math.min(Math.floor(-mean * Math.log(1 - uniform)),
            mean * delay_tail_multiple);
        const path = this.path(source, target);
        this.path_clogged_until_tick[path] = Math.max(this.path_clogged_until_tick[path]!,
            this.ticks + duration);
        this.stats.clogs += 1;
    }

    private partition_maybe(): void {
        const replicas = this.options.replica_count;
        if (replicas < 2) return;
        const stable = this.ticks - this.partition_changed_tick;
        if (this.partitioned) {
            if (stable < this.options.partition_stability_ticks) return;
            if (this.prng.int(million) >= this.options.unpartition_per_million) return;
            this.partitioned = false;
            this.partition_changed_tick = this.ticks;
            return;
        }
        if (stable < this.options.unpartition_stability_ticks) return;
        if (this.prng.int(million) >= this.options.partition_per_million) return;
        this.partition_sides_choose();
        let side_one = 0;
        for (let replica = 0; replica < replicas; replica++) {
            side_one += this.partition_side[replica]!;
        }
        // A "partition" with every replica on one side cuts nothing: skip it.
        if (side_one === 0 || side_one === replicas) return;
        this.partitioned = true;
        this.partition_side_cut = this.prng.int(2);
        this.partition_changed_tick = this.ticks;
        this.stats.partitions += 1;
    }

    private partition_sides_choose(): void {
        const replicas = this.options.replica_count;
        const side = this.partition_side;
        side.fill(0);
        if (this.options.partition_mode === PartitionMode.isolate_single) {
            side[this.prng.int(replicas)] = 1;
        } else if (this.options.partition_mode === PartitionMode.uniform_size) {
            const size = 1 + this.prng.int(replicas - 1);
            // A partial Fisher-Yates draw of `size` distinct replicas.
            const order = this.partition_order;
            for (let index = 0; index < replicas; index++) order[index] = index;
            for (let index = 0; index < size; index++) {
                const pick = index + this.prng.int(replicas - index);
                const chosen = order[pick]!;
                order[pick] = order[index]!;
                order[index] = chosen;
                side[chosen] = 1;
            }
        } else {
            for (let replica = 0; replica < replicas; replica++) side[replica] = this.prng.int(2);
        }
    }

    private partition_cuts(source: number, target: number): boolean {
        if (!this.partitioned) return false;
        const replicas = this.options.replica_count;
        if (source >= replicas || target >= replicas) return false;
        if (this.partition_side[source] === this.partition_side[target]) return false;
        if (this.options.partition_symmetric) return true;
        return this.partition_side[source] === this.partition_side_cut;
    }

    // ------------------------------------------------------------------ the heap

    private before(a: number, b: number): boolean {
        const tick_a = this.packet_ready_tick[a]!;
        const tick_b = this.packet_ready_tick[b]!;
        if (tick_a !== tick_b) return tick_a < tick_b;
        return this.packet_sequence[a]! < this.packet_sequence[b]!;
    }

    private heap_push(slot: number): void {
        assert(this.heap_count < this.heap.length);
        let index = this.heap_count;
        this.heap_count += 1;
        this.heap[index] = slot;
        // Sift up: one level per step, so at most heap_depth_max steps.
        for (let step = 0; step < heap_depth_max && index > 0; step++) {
            const parent = (index - 1) >> 1;
            if (!this.before(this.heap[index]!, this.heap[parent]!)) break;
            this.heap_swap(index, parent);
            index = parent;
        }
    }

    private heap_pop(): number {
        assert(this.heap_count > 0);
        const top = this.heap[0]!;
        this.heap_count -= 1;
        this.heap[0] = this.heap[this.heap_count]!;
        let index = 0;
        // Sift down: one level per step, so at most heap_depth_max steps.
        for (let step = 0; step < heap_depth_max; step++) {
            const left = 2 * index + 1;
            if (left >= this.heap_count) break;
            const right = left + 1;
            const child = right < this.heap_count &&
                this.before(this.heap[right]!, this.heap[left]!) ? right : left;
            if (!this.before(this.heap[child]!, this.heap[index]!)) break;
            this.heap_swap(index, child);
            index = child;
        }
        return top;
    }

    private heap_swap(a: number, b: number): void {
        const slot = this.heap[a]!;
        this.heap[a] = this.heap[b]!;
        this.heap[b] = slot;
    }
}

function options_check(options: PacketSimulatorOptions): void {
    assert(options.replica_count >= 1 && options.replica_count <= 6);
    assert(options.node_count > options.replica_count && options.node_count <= 0xffff);
    assert(options.packets_max >= 1);
    assert(options.one_way_delay_min_ticks >= 1, 'a packet is delivered in a later tick');
    assert(options.one_way_delay_mean_ticks >= 0);
    assert(options.packet_loss_percent >= 0 && options.packet_loss_percent <= 100);
    assert(options.packet_replay_percent >= 0 && options.packet_replay_percent <= 100);
    assert(options.path_capacity_packets >= 1 && options.path_capacity_packets <= 0xffff);
    assert(options.path_clog_per_million >= 0 && options.path_clog_per_million <= million);
    assert(options.path_clog_duration_mean_ticks >= 0);
    assert(options.partition_mode >= 0 && options.partition_mode < partition_mode_count);
    assert(options.partition_per_million >= 0 && options.partition_per_million <= million);
    assert(options.unpartition_per_million >= 0 && options.unpartition_per_million <= million);
    assert(options.partition_stability_ticks >= 0 && options.unpartition_stability_ticks >= 0);
}
