// The storage interface: sector reads and writes addressed by (zone, zone offset), with buffers
// named by arena offset. The superblock and the journal are written against this interface only, so
// they run unchanged over the real data file (`FileStorage`, O_DIRECT through an Engine) and over
// the deterministic fault-injecting simulator (`SimulatorStorage`).
//
// Like the Engine, completions carry no closure: a caller registers a target once at startup and
// tags each operation with a small integer of its own. Every operation completes exactly once with
// a result >= 0 (bytes, or 0 for a sync) or -errno. A latent sector error is -EIO: a value the
// caller handles (it marks the data unreadable), never an exception.
import assert from 'node:assert/strict';

import type { Arena } from '../io/arena';
import type { Zone, ZoneLayout } from './zones';

export interface StorageCompletionTarget {
    storage_complete(tag: number, result: number): void;
}

export interface Storage {
    readonly arena: Arena;
    readonly layout: ZoneLayout;
    /** Operations submitted whose completion has not been delivered yet. */
    readonly in_flight: number;
    /** Completions arrive from Node's event loop (libuv), so waiting means yielding to it. */
    readonly event_loop_driven: boolean;

    /** Startup only: returns the id that every submission names. */
    target_register(target: StorageCompletionTarget): number;

    read(target: number, tag: number, zone: Zone, zone_offset: number,
        arena_offset: number, length: number): void;
    write(target: number, tag: number, zone: Zone, zone_offset: number,
        arena_offset: number, length: number): void;
    /** Makes every completed write durable (a no-op for a file opened O_DSYNC). */
    sync(target: number, tag: number): void;

    /**
     * Delivers the completions that are due; returns how many. The simulator advances one tick; the
     * file storage waits briefly for its engine. Zero means "nothing yet", not "idle".
     */
    tick(): number;
}

/** Why the storage refused to open: names the zone and, where known, the op and the slot. */
export class StorageRefusal extends Error {
    readonly zone: string;
    /** The op the damaged data belonged to, or -1 when no intact copy names it. */
    readonly op: number;
    readonly slot: number;

    constructor(zone: string, op: number, slot: number, reason: string) {
        super(`storage refused: zone ${zone}` +
            (slot >= 0 ? ` slot ${slot}` : '') +
            (op >= 0 ? ` op ${op}` : '') + `: ${reason}`);
        // -1 means unknown; a refusal always names its zone and says why.
        assert(op >= -1 && slot >= -1);
        assert(zone.length > 0 && reason.length > 0);
        this.name = 'StorageRefusal';
        this.zone = zone;
        this.op = op;
        this.slot = slot;
    }
}

/**
 * Startup and test helper: ticks the storage until `done()` holds. Yields to the event loop when a
 * tick delivers nothing, so engines that complete from Node's loop (libuv) make progress too.
 */
export async function storage_run_until(storage: Storage, done: () => boolean,
    ticks_max: number = 10_000_000): Promise<void> {
    assert(Number.isInteger(ticks_max) && ticks_max > 0);
    for (let ticks = 0; ticks < ticks_max; ticks++) {
        if (done()) return;
        if (storage.tick() === 0 && storage.event_loop_driven) {
            await new Promise<void>((resolve) => setImmediate(resolve));
        }
    }
    throw new Error(`storage_run_until: not done after ${ticks_max} ticks`);
}
