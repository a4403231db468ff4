// SimulatorStorage: the data file in memory, for deterministic tests. Everything random comes from
// one seeded PRNG, and time is ticks, so a seed replays a run exactly. Each operation completes
// after an injected latency; writes are applied when they complete, and faults are injected there:
//
// - bit flip: a written sector rots after the write (its checksum no longer matches);
// - misdirected write: the data lands on another sector of the same zone, the target keeps its
//   old bytes;
// - lost write: success is reported, nothing reaches the medium;
// - latent sector error: the sector becomes unreadable, reads covering it complete with -EIO until
//   it is written again;
// - refused write: the device fails the write with an errno (EIO, ENOSPC), nothing lands; set per
//   zone with `write_errors_set` until cleared (a failing disk, a full one);
// - crash: the process dies; writes in flight are lost, applied, or torn (a prefix of their bytes
//   lands, cutting a sector in two), and, when not modelling O_DSYNC, completed but unsynced
//   sectors may revert.
//
// Faults come from per-zone probabilities (random runs) or from `fault_next_write` and the direct
// corruption calls (tests that enumerate one fault at a time). A random fault lands only where
// the storage's `StorageFaultFilter` allows (a cluster's fault atlas keeps each area faulty on
// few enough replicas that the cluster can repair it); the forced ones are the test's own choice.
import assert from 'node:assert/strict';

import type { Arena } from '../io/arena';
import type { Storage, StorageCompletionTarget } from './storage';
import { Zone, ZoneLayout, sector_size, zone_count } from './zones';

export enum WriteFault {
    none = 0,
    bit_flip = 1,
    misdirect = 2,
    lost = 3,
    latent_error = 4,
}
export const write_fault_count = 5;

/**
 * Where random write faults may land. Consulted on the hot path (each faulty write), so it must
 * not allocate. A misdirected write asks twice: for the range it missed and where it landed.
 */
export interface StorageFaultFilter {
    /** Whether a fault may damage bytes [zone_offset, zone_offset + length) of `zone`. */
    fault_allowed(zone: Zone, zone_offset: number, length: number): boolean;
}

export enum CrashMode {
    /** Each in-flight write is independently lost, applied or torn (PRNG). */
    random = 0,
    lost = 1,
    torn = 2,
    applied = 3,
}

const EIO = 5;
const kind_read = 1;
const kind_write = 2;
const kind_sync = 3;

export interface SimulatorOptions {
    seed: number;
    latency_ticks_min: number;
    latency_ticks_max: number;
    /** Bound on operations in flight. */
    operations_max: number;
    /** Model O_DSYNC: a completed write is durable. Otherwise only synced writes are. */
    dsync: boolean;
}

export class SimulatorStorage implements Storage {
    readonly arena: Arena;
    readonly layout: ZoneLayout;
    readonly event_loop_driven = false;
    readonly options: SimulatorOptions;
    /** The medium as reads see it. */
    readonly memory: Uint8Array;
    /** What survives a crash when not modelling O_DSYNC. */
    private readonly durable: Uint8Array | null;
    private readonly sector_unsynced: Uint8Array;
    private readonly sector_unreadable: Uint8Array;
    /** Per zone and fault kind: the probability that a completing write suffers it. */
    readonly fault_probability: Float64Array = new Float64Array(zone_count * write_fault_count);
    private readonly next_fault: Int32Array = new Int32Array(zone_count);
    private readonly next_fault_offset: Float64Array = new Float64Array(zone_count);
    /** Per zone: writes fail with this errno while it is not 0 (write_errors_set). */
    private readonly write_errno: Int32Array = new Int32Array(zone_count);
    /** Writes failed by write_errors_set. */
    writes_refused = 0;
    /** Random faults may land only where this allows (null: anywhere). */
    private fault_filter: StorageFaultFilter | null = null;
    /** Random faults drawn but not applied because the filter forbade where they would land. */
    faults_filtered = 0;

    private readonly targets: StorageCompletionTarget[] = [];
    private readonly op_kind: Uint8Array;
    private readonly op_target: Int32Array;
    private readonly op_tag: Int32Array;
    private readonly op_zone: Int32Array;
    private readonly op_zone_offset: Float64Array;
    private readonly op_arena_offset: Float64Array;
    private readonly op_length: Float64Array;
    private readonly op_ready_tick: Float64Array;
    private readonly op_sequence: Float64Array;
    private prng_state: number;
    private sequence = 0;
    private ticks = 0;
    in_flight = 0;
    /** Counts of injected faults by kind, for tests to check that a run really injected some. */
    readonly faults_injected: Uint32Array = new Uint32Array(write_fault_count);

    constructor(arena: Arena, layout: ZoneLayout, options: SimulatorOptions) {
        assert(options.latency_ticks_min >= 0);
        assert(options.latency_ticks_max >= options.latency_ticks_min);
        assert(options.operations_max > 0);
        assert(Number.isInteger(options.seed));
        this.arena = arena;
        this.layout = layout;
        this.options = options;
        this.memory = new Uint8Array(layout.total_size_bytes);
        this.durable = options.dsync ? null : new Uint8Array(layout.total_size_bytes);
        const sectors = layout.total_size_bytes / sector_size;
        assert(Number.isInteger(sectors), 'simulator: the medium is whole sectors');
        this.sector_unsynced = new Uint8Array(sectors);
        this.sector_unreadable = new Uint8Array(sectors);
        const count = options.operations_max;
        this.op_kind = new Uint8Array(count);
        this.op_target = new Int32Array(count);
        this.op_tag = new Int32Array(count);
        this.op_zone = new Int32Array(count);
        this.op_zone_offset = new Float64Array(count);
        this.op_arena_offset = new Float64Array(count);
        this.op_length = new Float64Array(count);
        this.op_ready_tick = new Float64Array(count);
        this.op_sequence = new Float64Array(count);
        this.prng_state = options.seed >>> 0;
    }

    target_register(target: StorageCompletionTarget): number {
        this.targets.push(target);
        return this.targets.length - 1;
    }

    read(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        this.submit(kind_read, target, tag, zone, zone_offset, arena_offset, length);
    }

    write(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        this.submit(kind_write, target, tag, zone, zone_offset, arena_offset, length);
    }

    sync(target: number, tag: number): void {
        this.submit(kind_sync, target, tag, Zone.superblock, 0, 0, 0);
    }

    tick(): number {
        this.ticks += 1;
        let delivered = 0;
        // Bounded: each pass delivers one operation, and no more than operations_max are queued.
        for (let pass = 0; pass < this.options.operations_max; pass++) {
            const index = this.due_next();
            if (index < 0) break;
            this.complete(index);
            delivered += 1;
        }
        return delivered;
    }

    /** Seeded PRNG (mulberry32): a float in [0, 1). */
    random(): number {
        this.prng_state = (this.prng_state + 0x6d2b79f5) >>> 0;
        let t = this.prng_state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    }

    random_below(bound: number): number {
        assert(bound > 0);
        const value = Math.floor(this.random() * bound);
        assert(value >= 0 && value < bound);
        return value;
    }

    fault_probability_set(zone: Zone, fault: WriteFault, probability: number): void {
        assert(probability >= 0 && probability <= 1);
        assert(zone >= 0 && zone < zone_count);
        assert(fault > WriteFault.none && fault < write_fault_count);
        this.fault_probability[zone * write_fault_count + fault] = probability;
    }

    /** Random faults from now on land only where `filter` allows (null: anywhere). */
    fault_filter_set(filter: StorageFaultFilter | null): void {
        this.fault_filter = filter;
    }

    /** Whether every sector of the range reads back (no latent sector error on it). */
    readable(zone: Zone, zone_offset: number, length: number): boolean {
        assert(zone_offset >= 0 && length > 0);
        assert(zone_offset + length <= this.layout.sizes[zone]!, 'readable: past the zone');
        const start = this.layout.starts[zone]! + zone_offset;
        const end = Math.ceil((start + length) / sector_size);
        for (let sector = Math.floor(start / sector_size); sector < end; sector++) {
            if (this.sector_unreadable[sector] === 1) return false;
        }
        return true;
    }

    /** Every write to `zone` fails with `errno` (0: they succeed again); nothing of it lands. */
    write_errors_set(zone: Zone, errno: number): void {
        assert(Number.isInteger(errno) && errno >= 0);
        assert(zone >= 0 && zone < zone_count);
        this.write_errno[zone] = errno;
    }

    /** The next write completing in `zone` suffers `fault` (misdirect: to `misdirect_offset`). */
    fault_next_write(zone: Zone, fault: WriteFault, misdirect_offset: number = -1): void {
        assert(fault !== WriteFault.none);
        assert(zone >= 0 && zone < zone_count);
        assert(fault !== WriteFault.misdirect || misdirect_offset < 0 ||
            misdirect_offset % sector_size === 0);
        this.next_fault[zone] = fault;
        this.next_fault_offset[zone] = misdirect_offset;
    }

    /** Flips one bit of the medium now (bit rot after the fact). */
    flip_bit(zone: Zone, zone_offset_byte: number, bit: number = 0): void {
        const offset = this.layout.starts[zone]! + zone_offset_byte;
        assert(zone_offset_byte >= 0 && zone_offset_byte < this.layout.sizes[zone]!);
        this.memory[offset] = this.memory[offset]! ^ (1 << (bit & 7));
        if (this.durable !== null) this.durable[offset] = this.memory[offset]!;
    }

    /** Makes the sector holding `zone_offset_byte` unreadable until it is rewritten. */
    latent_error_set(zone: Zone, zone_offset_byte: number): void {
        assert(zone_offset_byte >= 0 && zone_offset_byte < this.layout.sizes[zone]!);
        const offset = this.layout.starts[zone]! + zone_offset_byte;
        this.sector_unreadable[Math.floor(offset / sector_size)] = 1;
    }

    /** Copies bytes of the medium (tests only; allocates). */
    peek(zone: Zone, zone_offset: number, length: number): Uint8Array {
        assert(zone_offset >= 0 && length >= 0);
        assert(zone_offset + length <= this.layout.sizes[zone]!, 'peek: past the end of the zone');
        const offset = this.layout.starts[zone]! + zone_offset;
        return this.memory.slice(offset, offset + length);
    }

    /**
     * The process dies: operations in flight never complete; their writes are lost, applied or
     * torn per `mode`; without O_DSYNC, unsynced sectors may also revert or tear.
     */
    crash(mode: CrashMode = CrashMode.random): void {
        for (let index = 0; index < this.options.operations_max; index++) {
            if (this.op_kind[index] === kind_write) this.crash_write(index, mode);
            this.op_kind[index] = 0;
        }
        this.in_flight = 0;
        if (this.durable !== null) this.crash_unsynced(this.durable);
        this.next_fault.fill(0);
    }

    /**
     * The medium is replaced by a blank one (a lost disk): every byte zero, every sector readable
     * and synced. Only while nothing is in flight (after a crash).
     */
    replace(): void {
        assert.equal(this.in_flight, 0, 'simulator: a disk is replaced only while idle');
        this.memory.fill(0);
        if (this.durable !== null) this.durable.fill(0);
        this.sector_unsynced.fill(0);
        this.sector_unreadable.fill(0);
        this.next_fault.fill(0);
    }

    private crash_write(index: number, mode: CrashMode): void {
        const choice = mode === CrashMode.random ? 1 + this.random_below(3) : mode;
        if (choice === CrashMode.lost) return;
        const start = this.layout.starts[this.op_zone[index]!]! + this.op_zone_offset[index]!;
        const source = this.op_arena_offset[index]!;
        let length = this.op_length[index]!;
        assert(length > 0 && length % sector_size === 0);
        // A torn write lands a prefix that ends inside a sector.
        if (choice === CrashMode.torn) length = 1 + this.random_below(length - 1);
        assert(length <= this.op_length[index]!);
        this.memory.set(this.arena.bytes.subarray(source, source + length), start);
        if (this.durable !== null) {
            this.durable.set(this.memory.subarray(start, start + length), start);
        }
    }

    private crash_unsynced(durable: Uint8Array): void {
        for (let sector = 0; sector < this.sector_unsynced.length; sector++) {
            if (this.sector_unsynced[sector] === 0) continue;
            const start = sector * sector_size;
            const keep = this.random_below(3);
            // 0: the sector reverts; 1: it reached the medium; 2: it tears mid-sector.
            if (keep === 0) this.memory.set(durable.subarray(start, start + sector_size), start);
            if (keep === 2) {
                const cut = 1 + this.random_below(sector_size - 1);
                this.memory.set(durable.subarray(start + cut, start + sector_size), start + cut);
            }
            durable.set(this.memory.subarray(start, start + sector_size), start);
            this.sector_unsynced[sector] = 0;
        }
    }

    private submit(kind: number, target: number, tag: number, zone: Zone, zone_offset: number,
        arena_offset: number, length: number): void {
        assert(kind === kind_read || kind === kind_write || kind === kind_sync);
        assert(target >= 0 && target < this.targets.length);
        if (kind !== kind_sync) {
            this.layout.offset(zone, zone_offset, length);
            assert(arena_offset % sector_size === 0, 'arena offset must be sector-aligned');
            assert(arena_offset + length <= this.arena.size_bytes);
        }
        const index = this.op_kind.indexOf(0);
        assert(index >= 0, 'simulator: more operations in flight than operations_max');
        const latency = this.options.latency_ticks_min + this.random_below(
            this.options.latency_ticks_max - this.options.latency_ticks_min + 1);
        this.op_kind[index] = kind;
        this.op_target[index] = target;
        this.op_tag[index] = tag;
        this.op_zone[index] = zone;
        this.op_zone_offset[index] = zone_offset;
        this.op_arena_offset[index] = arena_offset;
        this.op_length[index] = length;
        this.op_ready_tick[index] = this.ticks + latency;
        this.op_sequence[index] = this.sequence++;
        this.in_flight += 1;
        assert(this.in_flight <= this.options.operations_max);
    }

    private due_next(): number {
        let best = -1;
        for (let index = 0; index < this.options.operations_max; index++) {
            if (this.op_kind[index] === 0 || this.op_ready_tick[index]! > this.ticks) continue;
            if (best < 0 || this.op_sequence[index]! < this.op_sequence[best]!) best = index;
        }
        return best;
    }

    private complete(index: number): void {
        const kind = this.op_kind[index]!;
        assert(kind !== 0, 'simulator: completion of a free operation');
        assert(this.op_ready_tick[index]! <= this.ticks);
        let result = this.op_length[index]!;
        if (kind === kind_read) result = this.complete_read(index);
        const refused = kind === kind_write ? this.write_errno[this.op_zone[index]!]! : 0;
        if (refused !== 0) {
            result = -refused;
            this.writes_refused += 1;
        } else if (kind === kind_write) {
            this.complete_write(index);
        }
        if (kind === kind_sync) this.complete_sync();
        this.op_kind[index] = 0;
        this.in_flight -= 1;
        assert(this.in_flight >= 0);
        this.targets[this.op_target[index]!]!.storage_complete(this.op_tag[index]!, result);
    }

    private complete_read(index: number): number {
        const start = this.layout.starts[this.op_zone[index]!]! + this.op_zone_offset[index]!;
        const length = this.op_length[index]!;
        assert(start % sector_size === 0 && start + length <= this.memory.length);
        for (let sector = start / sector_size; sector < (start + length) / sector_size; sector++) {
            if (this.sector_unreadable[sector] === 1) return -EIO;
        }
        const target = this.op_arena_offset[index]!;
        this.arena.bytes.set(this.memory.subarray(start, start + length), target);
        return length;
    }

    private complete_write(index: number): void {
        const zone = this.op_zone[index]!;
        let zone_offset = this.op_zone_offset[index]!;
        const length = this.op_length[index]!;
        const forced = this.next_fault[zone] !== WriteFault.none;
        let fault = this.fault_choose(zone);
        if (fault === WriteFault.misdirect) {
            const offset = this.misdirect_offset(zone, zone_offset, length, forced);
            if (offset < 0) fault = WriteFault.none;
            else zone_offset = offset;
        } else if (fault !== WriteFault.none && !forced &&
            !this.filter_allows(zone, zone_offset, length)) {
            fault = WriteFault.none;
        }
        if (fault !== WriteFault.none) this.faults_injected[fault]! += 1;
        if (fault === WriteFault.lost) return;
        // A misdirected write still lands whole, aligned, inside its zone.
        assert(zone_offset % sector_size === 0 && zone_offset + length <= this.layout.sizes[zone]!);
        const start = this.layout.starts[zone]! + zone_offset;
        const source = this.op_arena_offset[index]!;
        this.memory.set(this.arena.bytes.subarray(source, source + length), start);
        for (let sector = start / sector_size; sector < (start + length) / sector_size; sector++) {
            this.sector_unreadable[sector] = 0;
            this.sector_unsynced[sector] = 1;
        }
        if (this.durable === null) this.sector_unsynced.fill(0, start / sector_size,
            (start + length) / sector_size);
        const victim = start + this.random_below(length);
        if (fault === WriteFault.bit_flip) {
            this.memory[victim] = this.memory[victim]! ^ (1 << this.random_below(8));
        }
        if (fault === WriteFault.latent_error) {
            this.sector_unreadable[Math.floor(victim / sector_size)] = 1;
        }
    }

    /**
     * Where a misdirected write lands, or -1 when the filter forbids it: the range it misses keeps
     * stale bytes and the one it lands on is overwritten, so both must be open to faults.
     */
    private misdirect_offset(zone: Zone, zone_offset: number, length: number,
        forced: boolean): number {
        const offset = this.next_fault_offset[zone]!;
        this.next_fault_offset[zone] = -1;
        const sectors = (this.layout.sizes[zone]! - length) / sector_size + 1;
        // As before the filter existed: the first random misdirect of a zone lands at its
        // offset 0 (next_fault_offset starts at 0), which the WAL's seeded fault tests expect.
        const landing = offset >= 0 ? offset : this.random_below(sectors) * sector_size;
        if (forced) return landing;
        if (this.filter_allows(zone, zone_offset, length) &&
            this.filter_allows(zone, landing, length)) return landing;
        return -1;
    }

    private filter_allows(zone: Zone, zone_offset: number, length: number): boolean {
        if (this.fault_filter === null || this.fault_filter.fault_allowed(zone, zone_offset,
            length)) return true;
        this.faults_filtered += 1;
        return false;
    }

    private complete_sync(): void {
        if (this.durable === null) return;
        for (let sector = 0; sector < this.sector_unsynced.length; sector++) {
            if (this.sector_unsynced[sector] === 0) continue;
            const start = sector * sector_size;
            this.durable.set(this.memory.subarray(start, start + sector_size), start);
            this.sector_unsynced[sector] = 0;
        }
    }

    private fault_choose(zone: number): WriteFault {
        assert(zone >= 0 && zone < zone_count);
        const forced = this.next_fault[zone]!;
        if (forced !== WriteFault.none) {
            this.next_fault[zone] = WriteFault.none;
            return forced;
        }
        for (let fault = 1; fault < write_fault_count; fault++) {
            const probability = this.fault_probability[zone * write_fault_count + fault]!;
            if (probability > 0 && this.random() < probability) return fault;
        }
        return WriteFault.none;
    }
}
