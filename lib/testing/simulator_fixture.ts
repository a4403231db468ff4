// Test fixture for the storage layer (tests only; allocates freely): a simulator over the test
// config, and a builder of chained prepare messages in the arena.
import { Arena } from '../io/arena';
import { storage_arena_size } from '../vsr/data_file';
import {
    body_checksum_set, command_prepare, header_checksum_set, offset_cluster, offset_command,
    offset_op, offset_operation, offset_parent, offset_size, offset_view, u32_write, u64_write,
} from '../vsr/prepare_header';
import { SimulatorStorage } from '../storage/simulator_storage';
import type { SimulatorOptions } from '../storage/simulator_storage';
import type { StorageConfig } from '../storage/zones';
import { ZoneLayout, config_test, header_size, sector_ceil } from '../storage/zones';

export const cluster_test = new Uint8Array(16).fill(7);

export function simulator_make(seed: number, options: Partial<SimulatorOptions> = {},
    config: StorageConfig = config_test): SimulatorStorage {
    const layout = new ZoneLayout(config);
    // Room for many reopenings: each SuperBlock and Journal takes its buffers at construction.
    const arena = new Arena(sector_ceil(storage_arena_size(config)) * 48 +
        4 * config.message_size_max);
    return new SimulatorStorage(arena, layout, {
        seed, latency_ticks_min: 0, latency_ticks_max: 3, operations_max: 16, dsync: true,
        ...options,
    });
}

/** Builds prepares op by op, each chained to the previous one's header checksum. */
export class PrepareBuilder {
    readonly offset: number;
    private readonly arena: Arena;
    private readonly parent = new Uint8Array(16);
    private seed = 1;

    constructor(arena: Arena, message_size_max: number, root_checksum: Uint8Array) {
        this.arena = arena;
        this.offset = arena.allocate(message_size_max);
        this.parent.set(root_checksum);
    }

    /** Writes prepare `op` into the builder's buffer; returns a copy of its header. */
    build(op: number, view: number, body_size: number): Uint8Array {
        const bytes = this.arena.bytes;
        const at = this.offset;
        bytes.fill(0, at, at + header_size);
        bytes.set(cluster_test, at + offset_cluster);
        u32_write(bytes, at + offset_size, header_size + body_size);
        u32_write(bytes, at + offset_view, view);
        bytes[at + offset_command] = command_prepare;
        bytes.set(this.parent, at + offset_parent);
        u64_write(bytes, at + offset_op, op);
        bytes[at + offset_operation] = 138;
        for (let index = 0; index < body_size; index++) {
            this.seed = (Math.imul(this.seed, 1103515245) + 12345) >>> 0;
            bytes[at + header_size + index] = this.seed >>> 24;
        }
        body_checksum_set(bytes, at);
        header_checksum_set(bytes, at);
        this.parent.set(bytes.subarray(at, at + 16));
        return bytes.slice(at, at + header_size);
    }
}
