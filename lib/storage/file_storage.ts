// FileStorage: the Storage interface over an Engine and one data file opened O_DIRECT|O_DSYNC.
// Every completed write is durable, so `sync` is only an fsync for callers that want one at a
// boundary. Storage tags are mapped to engine tags through a preallocated table (no closure, no
// object per I/O).
//
// Exclusive access: one process serves a data file, enforced by an exclusive flock(2) on a
// descriptor of it held for as long as the file is open (lock_acquire / lock_release). The kernel
// drops the lock when the process dies, so a crash never leaves a stale one, and it holds across
// PID namespaces sharing a volume (containers), where a pid file would mean nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';

import { binding } from '../io/binding';
import { IoError } from '../io/errors';

import type { Engine, IoCompletionTarget } from '../io/engine';
import type { Storage, StorageCompletionTarget } from './storage';
import { StorageRefusal } from './storage';
import { sector_size } from './zones';
import type { Zone, ZoneLayout } from './zones';

export class FileStorage implements Storage, IoCompletionTarget {
    readonly engine: Engine;
    readonly arena: Engine['arena'];
    readonly layout: ZoneLayout;
    readonly event_loop_driven: boolean;
    readonly fd: number;
    private readonly engine_target: number;
    private readonly targets: StorageCompletionTarget[] = [];
    private readonly slot_target: Int32Array;
    private readonly slot_tag: Int32Array;
    private readonly slot_expected: Float64Array;
    private readonly free: Int32Array;
    private free_count: number;
    in_flight = 0;

    constructor(engine: Engine, layout: ZoneLayout, fd: number, operations_max: number) {
        assert(Number.isInteger(operations_max) && operations_max > 0);
        assert(fd >= 0);
        this.engine = engine;
        this.arena = engine.arena;
        this.layout = layout;
        this.fd = fd;
        this.event_loop_driven = engine.kind !== 'io_uring';
        this.engine_target = engine.target_register(this);
        // -1 marks a free slot: each completion must find its slot taken.
        this.slot_target = new Int32Array(operations_max).fill(-1);
        this.slot_tag = new Int32Array(operations_max);
        this.slot_expected = new Float64Array(operations_max);
        this.free = new Int32Array(operations_max);
        for (let slot = 0; slot < operations_max; slot++) {
            this.free[slot] = operations_max - 1 - slot;
        }
        this.free_count = operations_max;
    }

    target_register(target: StorageCompletionTarget): number {
        this.targets.push(target);
        return this.targets.length - 1;
    }

    read(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        const file_offset = this.layout.offset(zone, zone_offset, length);
        // O_DIRECT: the buffer is sector-aligned and inside the arena.
        assert(arena_offset % sector_size === 0, 'file storage: unaligned read buffer');
        assert(arena_offset >= 0 && arena_offset + length <= this.arena.size_bytes);
        const slot = this.slot_acquire(target, tag, length);
        this.engine.file_read(this.engine_target, slot, this.fd, arena_offset, length,
            file_offset);
    }

    write(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        const file_offset = this.layout.offset(zone, zone_offset, length);
        assert(arena_offset % sector_size === 0, 'file storage: unaligned write buffer');
        assert(arena_offset >= 0 && arena_offset + length <= this.arena.size_bytes);
        const slot = this.slot_acquire(target, tag, length);
        this.engine.file_write(this.engine_target, slot, this.fd, arena_offset, length,
            file_offset);
    }

    sync(target: number, tag: number): void {
        const slot = this.slot_acquire(target, tag, 0);
        this.engine.file_sync(this.engine_target, slot, this.fd, true);
    }

    /** Startup only: preallocates the whole file so that later writes cannot fail for space. */
    allocate(target: number, tag: number): void {
        assert.equal(this.in_flight, 0, 'file storage: allocate is the first operation');
        const slot = this.slot_acquire(target, tag, 0);
        this.engine.file_allocate(this.engine_target, slot, this.fd, 0,
            this.layout.total_size_bytes);
    }

    tick(): number {
        if (this.event_loop_driven || this.in_flight === 0) return 0;
        return this.engine.run_once(10);
    }

    io_complete(slot: number, result: number): void {
        assert(slot >= 0 && slot < this.slot_target.length);
        assert(this.in_flight > 0 && this.free_count < this.free.length);
        const target = this.slot_target[slot]!;
        assert(target >= 0, 'file storage: a completion for a free slot');
        const tag = this.slot_tag[slot]!;
        // A short read or write on a preallocated file is an I/O error, not a partial success.
        const expected = this.slot_expected[slot]!;
        const outcome = result >= 0 && expected > 0 && result !== expected ? -5 : result;
        this.slot_target[slot] = -1;
        this.free[this.free_count++] = slot;
        this.in_flight -= 1;
        // Free slots and operations in flight partition the slot table.
        assert.equal(this.free_count + this.in_flight, this.free.length);
        this.targets[target]!.storage_complete(tag, outcome);
    }

    private slot_acquire(target: number, tag: number, expected: number): number {
        assert(target >= 0 && target < this.targets.length);
        assert(this.free_count > 0, 'file storage: more operations in flight than operations_max');
        assert(tag >= 0 && tag <= 0x7fffffff && expected >= 0);
        const slot = this.free[--this.free_count]!;
        assert.equal(this.slot_target[slot], -1, 'file storage: a free slot is in use');
        this.slot_target[slot] = target;
        this.slot_tag[slot] = tag;
        this.slot_expected[slot] = expected;
        this.in_flight += 1;
        assert.equal(this.free_count + this.in_flight, this.free.length);
        return slot;
    }
}

/** The lock descriptors this process holds, by data file path (startup and shutdown only). */
const lock_descriptors = new Map<string, number>();

/**
 * Takes the data file's lock or throws a StorageRefusal naming the holder: an exclusive flock on
 * a descriptor of the file held open until `lock_release` (or the process's end, which releases
 * it: a crash never leaves a stale lock).
 */
export function lock_acquire(path: string): void {
    const fd = fs.openSync(path, 'r'); // ENOENT goes to the caller: "format it first".
    const result = binding().file_lock(fd);
    if (result === 0) {
        lock_descriptors.set(path, fd);
        return;
    }
    fs.closeSync(fd);
    if (result === -os.constants.errno.EWOULDBLOCK) {
        throw new StorageRefusal('data file', -1, -1,
            `${path} is locked by ${lock_holder(path)}: one process serves a data file`);
    }
    throw new IoError(result, 'flock', path);
}

export function lock_release(path: string): void {
    const fd = lock_descriptors.get(path);
    assert(fd !== undefined, 'lock_release: the lock is not ours');
    lock_descriptors.delete(path);
    fs.closeSync(fd);
}

/**
 * Who holds the lock, from /proc/locks (the kernel's table of locks, by device and inode): a pid
 * and its command line when the holder is in our PID namespace, else what can be said.
 */
function lock_holder(path: string): string {
    let pid = -1;
    try {
        const stat = fs.statSync(path, { bigint: true });
        const major = Number(((stat.dev >> 8n) & 0xfffn) | ((stat.dev >> 32n) & ~0xfffn));
        const minor = Number((stat.dev & 0xffn) | ((stat.dev >> 12n) & ~0xffn));
        for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
            const fields = line.trim().split(/\s+/);
            // "1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF"
            if (fields[1] !== 'FLOCK' || fields[3] !== 'WRITE') continue;
            const [maj, min, ino] = (fields[5] ?? '').split(':');
            if (Number.parseInt(maj!, 16) === major && Number.parseInt(min!, 16) === minor &&
                ino === String(stat.ino)) pid = Number(fields[4]);
        }
    } catch {
        return 'another process';
    }
    if (pid === process.pid) return 'this process (it is open here already)';
    if (pid <= 0) return 'a process in another PID namespace (a container sharing the volume)';
    let command = '';
    try {
        command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    } catch {
        // It just exited, or /proc hides it: the pid alone still helps.
    }
    return `process ${pid}${command === '' ? '' : ` (${command})`}`;
}
