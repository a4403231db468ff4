// The storage layer: zone layout, the simulator's determinism and fault kinds, and the data file
// on disk (format refuses an existing file, the lock refuses a second opener, format → open over
// io_uring with O_DIRECT).
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';
import { UringEngine } from '../lib/io/uring_engine';
import { close, format, open, storage_arena_size } from '../lib/vsr/data_file';
import { lock_acquire, lock_release } from '../lib/storage/file_storage';
import { CrashMode, WriteFault } from '../lib/storage/simulator_storage';
import { PrepareBuilder, simulator_make } from '../lib/testing/simulator_fixture';
import type { StorageCompletionTarget } from '../lib/storage/storage';
import { StorageRefusal, storage_run_until } from '../lib/storage/storage';
import {
    Zone, ZoneLayout, config_production, config_test, sector_size, zone_count,
} from '../lib/storage/zones';

class Results implements StorageCompletionTarget {
    readonly results: Map<number, number> = new Map();
    storage_complete(tag: number, result: number): void {
        assert(!this.results.has(tag), `tag ${tag} completed twice`);
        this.results.set(tag, result);
    }
}

test('zones: sector-aligned, in order, sized from the config', () => {
    const layout = new ZoneLayout(config_production);
    assert.equal(layout.sizes[Zone.wal_headers], 256 * 1024);
    assert.equal(layout.sizes[Zone.wal_prepares], 1024 * 1024 * 1024);
    assert.equal(layout.sizes[Zone.client_replies], 64 * 1024 * 1024);
    for (let zone = 1; zone < zone_count; zone++) {
        assert.equal(layout.starts[zone], layout.starts[zone - 1]! + layout.sizes[zone - 1]!);
        assert.equal(layout.starts[zone]! % sector_size, 0);
    }
    assert.equal(layout.starts[Zone.grid]! % config_production.block_size, 0);
    // Invalid I/O shapes are programmer errors.
    assert.throws(() => layout.offset(Zone.wal_headers, 100, sector_size), /sector-aligned/);
    assert.throws(() => layout.offset(Zone.wal_headers, 0, 100), /multiple of the sector/);
    assert.throws(() => layout.offset(Zone.wal_headers, 256 * 1024, sector_size), /crosses/);
    assert.equal(layout.offset(Zone.wal_prepares, 0, sector_size),
        layout.starts[Zone.wal_prepares]);
    assert.throws(() => new ZoneLayout({ ...config_test, slot_count: 16 }), /slot_count/);
});

test('simulator: the same seed replays the same run exactly', async () => {
    const memories: Uint8Array[] = [];
    for (let run = 0; run < 2; run++) {
        const storage = simulator_make(42);
        storage.fault_probability_set(Zone.grid, WriteFault.bit_flip, 0.3);
        storage.fault_probability_set(Zone.grid, WriteFault.misdirect, 0.3);
        const results = new Results();
        const target = storage.target_register(results);
        const buffer = storage.arena.allocate(sector_size);
        for (let index = 0; index < 8; index++) {
            storage.arena.bytes.fill(index + 1, buffer, buffer + sector_size);
            storage.write(target, index, Zone.grid, (index % 4) * sector_size, buffer,
                sector_size);
            await storage_run_until(storage, () => results.results.size === index + 1);
        }
        memories.push(storage.peek(Zone.grid, 0, 8 * sector_size));
        assert(storage.faults_injected[WriteFault.bit_flip]! > 0);
    }
    assert.deepEqual(memories[0], memories[1]);
});

test('simulator: latent errors, misdirected and lost writes, bounded queue', async () => {
    const storage = simulator_make(7);
    const results = new Results();
    const target = storage.target_register(results);
    const buffer = storage.arena.allocate(2 * sector_size);
    storage.arena.bytes.fill(9, buffer, buffer + sector_size);
    storage.fault_next_write(Zone.grid, WriteFault.misdirect, 3 * sector_size);
    storage.write(target, 1, Zone.grid, 0, buffer, sector_size);
    // A forced fault applies to the next write to *complete* in the zone: wait for this one.
    await storage_run_until(storage, () => results.results.size === 1);
    storage.fault_next_write(Zone.grid, WriteFault.lost);
    storage.write(target, 2, Zone.grid, sector_size, buffer, sector_size);
    await storage_run_until(storage, () => results.results.size === 2);
    assert.equal(results.results.get(1), sector_size);
    assert.equal(results.results.get(2), sector_size, 'a lost write still reports success');
    assert.equal(storage.peek(Zone.grid, 0, 1)[0], 0);
    assert.equal(storage.peek(Zone.grid, sector_size, 1)[0], 0);
    assert.equal(storage.peek(Zone.grid, 3 * sector_size, 1)[0], 9);
    storage.latent_error_set(Zone.grid, 3 * sector_size + 10);
    storage.read(target, 3, Zone.grid, 2 * sector_size, buffer, 2 * sector_size);
    await storage_run_until(storage, () => results.results.size === 3);
    assert.equal(results.results.get(3), -5, 'EIO');
    // Rewriting the sector clears the latent error.
    storage.write(target, 4, Zone.grid, 3 * sector_size, buffer, sector_size);
    await storage_run_until(storage, () => results.results.size === 4);
    storage.read(target, 5, Zone.grid, 3 * sector_size, buffer, sector_size);
    await storage_run_until(storage, () => results.results.size === 5);
    assert.equal(results.results.get(5), sector_size);
    for (let index = 0; index < 16; index++) storage.sync(target, 100 + index);
    assert.throws(() => storage.sync(target, 200), /operations_max/);
});

test('simulator: a crash loses or tears writes that were not durable', async () => {
    const storage = simulator_make(8, { dsync: false });
    const results = new Results();
    const target = storage.target_register(results);
    const buffer = storage.arena.allocate(sector_size);
    storage.arena.bytes.fill(1, buffer, buffer + sector_size);
    storage.write(target, 1, Zone.grid, 0, buffer, sector_size);
    storage.sync(target, 2);
    await storage_run_until(storage, () => results.results.size === 2);
    storage.arena.bytes.fill(2, buffer, buffer + sector_size);
    storage.write(target, 3, Zone.grid, 0, buffer, sector_size);
    await storage_run_until(storage, () => results.results.size === 3);
    assert.equal(storage.peek(Zone.grid, 0, 1)[0], 2);
    // Unsynced: after the crash the sector is old, new, or torn between them; nothing else.
    storage.crash(CrashMode.random);
    const sector = storage.peek(Zone.grid, 0, sector_size);
    assert(sector.every((byte) => byte === 1 || byte === 2));
    // In flight at the crash and torn: a strict prefix lands.
    storage.write(target, 4, Zone.grid, sector_size, buffer, sector_size);
    storage.crash(CrashMode.torn);
    const torn = storage.peek(Zone.grid, sector_size, sector_size);
    assert.equal(torn[0], 2);
    assert.equal(torn[sector_size - 1], 0);
    assert.equal(storage.in_flight, 0);
});

function temporary_path(): string {
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ringledger-storage-'));
    return path.join(directory, 'replica.ringledger');
}

function engine_make(): UringEngine {
    const arena = new Arena(8 * storage_arena_size(config_test));
    return new UringEngine({ arena, entries: 16 });
}

test('data file: format, open, refuse an existing file, refuse while locked', async () => {
    const file = temporary_path();
    const options = { cluster: 99n, replica: 0, replica_count: 1 };
    const engine = engine_make();
    try {
        await format(file, options, engine, config_test);
        assert.equal(fs.statSync(file).size, new ZoneLayout(config_test).total_size_bytes);
        lock_acquire(file); // Format released its lock.
        lock_release(file);
        await assert.rejects(format(file, options, engine, config_test),
            (error: unknown) => error instanceof StorageRefusal && /already exists/.test(
                error.message));
        const opened = await open(file, engine, config_test);
        assert.equal(opened.superblock.sequence, 1);
        assert.equal(opened.superblock.replica_count, 1);
        assert.equal(opened.journal.op_max, 0);
        // While open, a second opener is refused by the lock.
        await assert.rejects(open(file, engine, config_test),
            /is locked by this process \(it is open here already\)/);
        await close(opened, file);
        lock_acquire(file);
        lock_release(file);
    } finally {
        engine.destroy();
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
});

test('data file: the lock is an flock held for the holder\'s life, named when refused',
    async () => {
        const file = temporary_path();
        fs.writeFileSync(file, 'x');
        // A child takes the lock and waits; while it lives, we are refused and told who holds it.
        const child = child_process.spawn(process.execPath, ['-e', `
            require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'storage',
                'file_storage.js'))}).lock_acquire(${JSON.stringify(file)});
            process.stdout.write('locked\\n');
            setTimeout(() => {}, 60000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
        try {
            await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
            assert.throws(() => lock_acquire(file), (error: unknown) =>
                error instanceof StorageRefusal &&
                error.message.includes(`is locked by process ${child.pid} (`));
            // SIGKILL: no cleanup runs, and the kernel still drops the lock.
            child.kill('SIGKILL');
            await new Promise((resolve) => child.once('exit', resolve));
            lock_acquire(file);
            lock_release(file);
        } finally {
            child.kill('SIGKILL');
            fs.rmSync(path.dirname(file), { recursive: true, force: true });
        }
    });

test('data file: the lock holds against a holder in another PID namespace', async (t) => {
    if (process.getuid?.() !== 0 || !fs.existsSync('/usr/bin/unshare')) {
        // CI runs as root with util-linux; a developer without root still runs the test above.
        t.diagnostic('needs root and unshare(1): not run here');
        return;
    }
    const file = temporary_path();
    fs.writeFileSync(file, 'x');
    // Inside its namespace the holder gets a pid that no process here has, as happens in a
    // container: a lock naming a pid would look stale from here and be taken over.
    const pid_max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
    let pid_inside = pid_max - 2;
    while (fs.existsSync(`/proc/${pid_inside}`)) pid_inside -= 1;
    const holder = `require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'storage',
        'file_storage.js'))}).lock_acquire(${JSON.stringify(file)});
        process.stdout.write('locked ' + process.pid + '\\n');
        setTimeout(() => {}, 60000);`;
    const child = child_process.spawn('/usr/bin/unshare', ['--pid', '--fork', '--mount-proc',
        '/bin/sh', '-c', `echo ${pid_inside - 1} > /proc/sys/kernel/ns_last_pid && ` +
        `"${process.execPath}" -e "$0"`, holder], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
        const line = await new Promise<string>((resolve) =>
            child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString())));
        assert.equal(line, `locked ${pid_inside}\n`);
        assert(!fs.existsSync(`/proc/${pid_inside}`), 'no such pid in our namespace');
        // The kernel's lock table knows the holder; here it has its outer pid.
        assert.throws(() => lock_acquire(file), /is locked by (process \d+|a process in another)/);
    } finally {
        child.kill('SIGKILL');
        await new Promise((resolve) => child.once('exit', resolve));
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
});

test('data file: the journal runs on the file and refuses a corrupt prepare', async () => {
    const file = temporary_path();
    const engine = engine_make();
    const layout = new ZoneLayout(config_test);
    try {
        await format(file, { cluster: 0x0707070707070707_0707070707070707n, replica: 0,
            replica_count: 1 }, engine, config_test);
        const first = await open(file, engine, config_test);
        const builder = new PrepareBuilder(engine.arena, config_test.message_size_max,
            first.journal.headers.subarray(0, 16));
        const written: Uint8Array[] = [];
        for (let op = 1; op <= 40; op++) {
            written[op] = builder.build(op, 0, (op * 331) % 6000);
            first.journal.write_prepare(builder.offset);
            await first.waiter.wait(first.storage);
            assert.equal(first.waiter.written_result, 0);
        }
        await close(first, file);
        const second = await open(file, engine, config_test);
        assert.equal(second.journal.op_max, 40);
        for (let op = 9; op <= 40; op++) {
            const slot = op % config_test.slot_count;
            assert.deepEqual(second.journal.headers.subarray(slot * 256, slot * 256 + 256),
                written[op]);
            assert.equal(second.journal.slot_status(slot), 'intact');
        }
        await close(second, file);
        // Rot one byte of op 38's body on disk: a single replica must refuse, naming it.
        const offset = layout.starts[Zone.wal_prepares]! +
            (38 % config_test.slot_count) * config_test.message_size_max + 400;
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, Buffer.from([0xa5]), 0, 1, offset);
        fs.closeSync(fd);
        await assert.rejects(open(file, engine, config_test), (error: unknown) =>
            error instanceof StorageRefusal && error.zone === 'wal_prepares' && error.op === 38);
        lock_acquire(file); // A refused open released the lock.
        lock_release(file);
    } finally {
        engine.destroy();
        fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
});
