// One suite for every engine kind: the Engine contract (lib/io/engine.ts) as callers rely on it.
// Each case runs against io_uring and libuv; an engine that fails to construct fails its cases
// (never skips them), and the last case checks that both engines left identical file contents.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { Arena } from '../lib/io/arena';
import type { Engine, EngineKind, IoCompletionTarget } from '../lib/io/engine';
import { IoError } from '../lib/io/errors';
import { create_engine } from '../lib/io/index';

const root = path.resolve(__dirname, '..', '..');
// Not os.tmpdir(): /tmp may be tmpfs, which refuses O_DIRECT.
const data_dir = path.join(root, '.test-data', `io-engine-${process.pid}`);
const small_mount = path.join(data_dir, 'small-fs');
const small_image = path.join(data_dir, 'small-fs.img');
// ramfs has no O_DIRECT at all (tmpfs gained it in Linux 6.6): the refusing filesystem.
const ramfs_mount = path.join(data_dir, 'ramfs');
const block = 4096;
const { EBADF, EINVAL, ENOENT, EEXIST, ENOSPC, ECANCELED, ECONNREFUSED } = os.constants.errno;
const kinds: readonly EngineKind[] = ['libuv', 'io_uring'];
const random_digests = new Map<EngineKind, string>();

/** Records each completion once and lets a test await a tag. */
class Waiter implements IoCompletionTarget {
    readonly results = new Map<number, number>();
    /** Every tag in the order it completed. */
    readonly order: number[] = [];
    private readonly waiting = new Map<number, (result: number) => void>();

    io_complete(tag: number, result: number): void {
        assert.ok(!this.results.has(tag), `tag ${tag} completed twice`);
        this.results.set(tag, result);
        this.order.push(tag);
        const resolve = this.waiting.get(tag);
        if (resolve !== undefined) {
            this.waiting.delete(tag);
            resolve(result);
        }
    }

    wait(tag: number): Promise<number> {
        const result = this.results.get(tag);
        if (result !== undefined) {
            this.results.delete(tag);
            return Promise.resolve(result);
        }
        return new Promise((resolve) => {
            this.waiting.set(tag, (value) => {
                this.results.delete(tag);
                resolve(value);
            });
        });
    }
}

interface Setup {
    arena: Arena;
    engine: Engine;
    waiter: Waiter;
    target: number;
}

/** Whether this host has IPv6 loopback (CI machines may not). */
const ipv6_loopback = (() => {
    const result = child_process.spawnSync(process.execPath, ['-e', `
        const server = require('node:net').createServer().listen(0, '::1', () => server.close());
        server.on('error', () => process.exit(1));`], { timeout: 10_000 });
    return result.status === 0;
})();

function setup(kind: EngineKind, arena_bytes = 4 << 20, entries = 512): Setup {
    const arena = new Arena(arena_bytes);
    const engine = create_engine(kind, { arena, entries });
    const waiter = new Waiter();
    const target = engine.target_register(waiter);
    engine.start();
    return { arena, engine, waiter, target };
}

let file_counter = 0;
function file_path(kind: string, directory = data_dir): string {
    file_counter += 1;
    return path.join(directory, `${kind}-${file_counter}.dat`);
}

function pattern_fill(bytes: Uint8Array, seed: number): void {
    for (let index = 0; index < bytes.length; index++) {
        bytes[index] = (index * 31 + seed * 7 + (index >> 12)) & 0xff;
    }
}

/** mulberry32: a small seeded PRNG, so a sequence is the same on every engine. */
function prng(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let value = state;
        value = Math.imul(value ^ (value >>> 15), value | 1);
        value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
        return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
    };
}

before(() => {
    fs.mkdirSync(data_dir, { recursive: true });
    // A real, tiny file system that fills up: an 8 MiB ext4 image on a loop device (needs root).
    child_process.execFileSync('truncate', ['-s', '8M', small_image]);
    child_process.execFileSync('mkfs.ext4', ['-q', '-F', small_image]);
    fs.mkdirSync(small_mount);
    child_process.execFileSync('mount', ['-o', 'loop', small_image, small_mount]);
    fs.mkdirSync(ramfs_mount);
    child_process.execFileSync('mount', ['-t', 'ramfs', 'ramfs', ramfs_mount]);
});

after(() => {
    child_process.spawnSync('umount', [small_mount]);
    child_process.spawnSync('umount', [ramfs_mount]);
    fs.rmSync(data_dir, { recursive: true, force: true });
});

for (const kind of kinds) {
    test(`${kind}: O_DIRECT write/read round trip at several offsets and sizes`, async () => {
        const { arena, engine, waiter, target } = setup(kind);
        const file = file_path(kind);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
        const cases: [number, number][] = [
            [0, block], [block, 16 * block], [1 << 20, 3 * block], [5 * block, 256 * block],
        ];
        for (const [file_offset, length] of cases) {
            pattern_fill(arena.bytes.subarray(0, length), file_offset + length);
            engine.file_write(target, 1, fd, 0, length, file_offset);
            assert.equal(await waiter.wait(1), length);
            arena.bytes.fill(0, 2 << 20, (2 << 20) + length);
            engine.file_read(target, 2, fd, 2 << 20, length, file_offset);
            assert.equal(await waiter.wait(2), length);
            assert.deepEqual(arena.bytes.subarray(2 << 20, (2 << 20) + length),
                arena.bytes.subarray(0, length));
        }
        engine.file_sync(target, 3, fd, true);
        engine.file_sync(target, 4, fd, false);
        assert.equal(await waiter.wait(3), 0);
        assert.equal(await waiter.wait(4), 0);
        // Reading past the end of the file is not an error: zero bytes.
        engine.file_read(target, 5, fd, 0, block, 64 << 20);
        assert.equal(await waiter.wait(5), 0);
        engine.file_allocate(target, 6, fd, 8 << 20, 4 * block);
        assert.equal(await waiter.wait(6), 0);
        assert.equal(fs.statSync(file).size, (8 << 20) + 4 * block);
        // Allocating a range inside the file leaves its size alone.
        engine.file_allocate(target, 6, fd, 0, block);
        assert.equal(await waiter.wait(6), 0);
        assert.equal(fs.statSync(file).size, (8 << 20) + 4 * block);
        engine.close(target, 7, fd);
        assert.equal(await waiter.wait(7), 0);
        assert.equal(engine.in_flight, 0);
        const stats = engine.stats();
        assert.equal(stats.submitted, stats.completed);
        engine.destroy();
    });

    test(`${kind}: misaligned O_DIRECT offsets and sizes give EINVAL naming op and path`,
        async () => {
            const { engine, waiter, target } = setup(kind);
            const file = file_path(kind);
            const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
            // A block in the file first: a read at the end of the file would return 0 unchecked.
            engine.file_write(target, 6, fd, 0, block, 0);
            assert.equal(await waiter.wait(6), block);
            engine.file_write(target, 1, fd, 0, block, 100);
            engine.file_write(target, 2, fd, 0, 1000, 0);
            engine.file_read(target, 3, fd, 100, block, 0);
            for (const tag of [1, 2, 3]) {
                const result = await waiter.wait(tag);
                assert.equal(result, -EINVAL, `tag ${tag}`);
                const error = new IoError(result, 'write', file);
                assert.match(error.message, /EINVAL/);
                assert.match(error.message, /write/);
                assert.ok(error.message.includes(file));
            }
            // Valid after invalid: the fd is still usable.
            engine.file_write(target, 4, fd, 0, block, block);
            assert.equal(await waiter.wait(4), block);
            engine.close(target, 5, fd);
            assert.equal(await waiter.wait(5), 0);
            engine.destroy();
        });

    test(`${kind}: EBADF after close, ENOENT and EEXIST at open, ECONNREFUSED`, async () => {
        const { engine, waiter, target } = setup(kind);
        const file = file_path(kind);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
        engine.close(target, 1, fd);
        assert.equal(await waiter.wait(1), 0);
        engine.file_write(target, 2, fd, 0, block, 0);
        assert.equal(await waiter.wait(2), -EBADF);
        engine.file_sync(target, 3, fd, true);
        assert.equal(await waiter.wait(3), -EBADF);
        assert.throws(() => engine.file_open(path.join(data_dir, 'missing', 'x'),
            { direct: true, dsync: false, create: false }),
        (error: unknown) => error instanceof IoError && error.code === 'ENOENT' &&
            error.errno === ENOENT && /open/.test(error.message));
        assert.throws(() => engine.file_open(file, { direct: true, dsync: false, create: true }),
            (error: unknown) => error instanceof IoError && error.errno === EEXIST);
        const again = engine.file_open(file, { direct: true, dsync: true, create: false });
        engine.close(target, 4, again);
        assert.equal(await waiter.wait(4), 0);
        // A connect to a port nobody listens on any more is refused, as a result, not a throw.
        const listen_fd = engine.socket_listen('127.0.0.1', 0, 1);
        const port = engine.socket_local_port(listen_fd);
        engine.close(target, 5, listen_fd);
        assert.equal(await waiter.wait(5), 0);
        const client_fd = engine.socket_create();
        engine.socket_connect(target, 6, client_fd, '127.0.0.1', port);
        assert.equal(await waiter.wait(6), -ECONNREFUSED);
        engine.close(target, 7, client_fd);
        assert.equal(await waiter.wait(7), 0);
        engine.destroy();
    });

    test(`${kind}: O_DIRECT on a filesystem without it is refused with the fix`, async () => {
        const { engine, waiter, target } = setup(kind);
        const file = file_path(kind, ramfs_mount);
        assert.throws(() => engine.file_open(file, { direct: true, dsync: false, create: true }),
            (error: unknown) => error instanceof IoError && error.code === 'EINVAL' &&
                error.operation === 'open' && error.message.includes(file) &&
                /does not support O_DIRECT.*ext4/.test(error.message));
        // The refused open left no file behind, and the same path without O_DIRECT opens: the
        // refusal is O_DIRECT's, not the path's.
        assert.equal(fs.existsSync(file), false);
        const fd = engine.file_open(file, { direct: false, dsync: false, create: true });
        assert.ok(fd >= 0);
        engine.close(target, 1, fd);
        assert.equal(await waiter.wait(1), 0);
        engine.destroy();
    });

    test(`${kind}: a linked write and fdatasync complete in order, each once`, async () => {
        const { arena, engine, waiter, target } = setup(kind);
        const file = file_path(kind);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
        pattern_fill(arena.bytes.subarray(0, 8 * block), 5);
        // Two independent chains at once: write → fdatasync, and write → write → fsync.
        engine.file_write(target, 1, fd, 0, 4 * block, 0, true);
        engine.file_sync(target, 2, fd, true);
        engine.file_write(target, 3, fd, 4 * block, 2 * block, 4 * block, true);
        engine.file_write(target, 4, fd, 6 * block, 2 * block, 6 * block, true);
        engine.file_sync(target, 5, fd, false);
        assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((tag) => waiter.wait(tag))),
            [4 * block, 0, 2 * block, 2 * block, 0]);
        const position = (tag: number): number => waiter.order.indexOf(tag);
        assert.ok(position(1) < position(2), waiter.order.join(' '));
        assert.ok(position(3) < position(4) && position(4) < position(5), waiter.order.join(' '));
        assert.deepEqual(fs.readFileSync(file), Buffer.from(arena.bytes.subarray(0, 8 * block)));
        engine.close(target, 6, fd);
        assert.equal(await waiter.wait(6), 0);
        assert.equal(engine.in_flight, 0);
        engine.destroy();
    });

    test(`${kind}: a failed or short linked write cancels what follows it`, async () => {
        const { engine, waiter, target } = setup(kind);
        const file = file_path(kind);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
        // Misaligned length: the write fails with EINVAL, its fdatasync never runs.
        engine.file_write(target, 1, fd, 0, 1000, 0, true);
        engine.file_sync(target, 2, fd, true);
        // A whole chain behind a failed head is cancelled.
        engine.file_write(target, 3, fd, 0, block, 100, true);
        engine.file_write(target, 4, fd, 0, block, 0, true);
        engine.file_sync(target, 5, fd, true);
        assert.equal(await waiter.wait(1), -EINVAL);
        assert.equal(await waiter.wait(2), -ECANCELED);
        assert.equal(await waiter.wait(3), -EINVAL);
        assert.equal(await waiter.wait(4), -ECANCELED);
        assert.equal(await waiter.wait(5), -ECANCELED);
        assert.equal(fs.statSync(file).size, 0, 'nothing behind a failed link ran');
        // A read-only file: the write fails with EBADF and the linked read is cancelled.
        const read_only = engine.file_open(file, { direct: true, dsync: false, create: false,
            read_only: true });
        engine.file_write(target, 6, read_only, 0, block, 0, true);
        engine.file_read(target, 7, read_only, block, block, 0);
        assert.equal(await waiter.wait(6), -EBADF);
        assert.equal(await waiter.wait(7), -ECANCELED);
        // A short write breaks the link too: see the ENOSPC test.
        // The link is per call: the next, unlinked write runs whatever came before.
        engine.file_write(target, 8, fd, 0, block, 0);
        assert.equal(await waiter.wait(8), block);
        for (const [tag, handle] of [[9, fd], [10, read_only]] as const) {
            engine.close(target, tag, handle);
            assert.equal(await waiter.wait(tag), 0);
        }
        assert.equal(engine.in_flight, 0);
        engine.destroy();
    });

    test(`${kind}: a linked write must be followed by a file operation`, () => {
        // Not started: a programmer error must not reach a submission.
        const arena = new Arena(16 * block);
        const engine = create_engine(kind, { arena, entries: 8 });
        const target = engine.target_register(new Waiter());
        const fd = engine.file_open(file_path(kind), { direct: true, dsync: false,
            create: true });
        engine.file_write(target, 1, fd, 0, block, 0, true);
        assert.throws(() => engine.timeout(target, 2, 10), /followed by a file operation/);
        assert.throws(() => engine.cancel(target, 1), /waiting for its follower/);
        engine.destroy();
    });

    test(`${kind}: writes to a full file system give ENOSPC`, async () => {
        const { arena, engine, waiter, target } = setup(kind);
        const file = file_path(kind, small_mount);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
        const chunk = 1 << 20;
        arena.bytes.fill(0xab, 0, chunk);
        let result = 0;
        let written = 0;
        // The file system holds under 8 MiB, so 16 MiB of writes must run out of space. Each
        // write is linked to an fdatasync, which runs only after a write of the whole chunk: a
        // short write (the last that fits) or a failed one cancels it.
        let short_writes = 0;
        for (let index = 0; index < 16 && result >= 0; index++) {
            engine.file_write(target, 1, fd, 0, chunk, written, true);
            engine.file_sync(target, 3, fd, true);
            result = await waiter.wait(1);
            const sync_result = await waiter.wait(3);
            if (result > 0) written += result;
            assert.ok(result < 0 || result % 512 === 0);
            assert.equal(sync_result, result === chunk ? 0 : -ECANCELED, `write ${result}`);
            if (result >= 0 && result < chunk) short_writes += 1;
        }
        assert.ok(short_writes <= 1);
        assert.equal(result, -ENOSPC);
        assert.ok(written > 1 << 20 && written < 8 << 20, `wrote ${written} bytes`);
        engine.close(target, 2, fd);
        assert.equal(await waiter.wait(2), 0);
        fs.unlinkSync(file);
        engine.destroy();
    });

    test(`${kind}: TCP echo over loopback with 100 concurrent connections`, async () => {
        const { arena, engine } = setup(kind);
        const echo = new Echo(arena, engine, 100);
        await echo.run();
        assert.equal(echo.verified, 100);
        assert.equal(echo.accepted, 100);
        assert.equal(engine.in_flight, 0);
        engine.destroy();
    });

    test(`${kind}: 2 MiB to a slow receiver arrives intact, then end of stream`, async () => {
        const { arena, engine, waiter, target } = setup(kind, 8 << 20);
        const total = 2 << 20;
        const listen_fd = engine.socket_listen('127.0.0.1', 0, 1);
        const client_fd = engine.socket_create();
        engine.socket_accept(target, 1, listen_fd);
        const port = engine.socket_local_port(listen_fd);
        engine.socket_connect(target, 2, client_fd, '127.0.0.1', port);
        assert.equal(await waiter.wait(2), 0);
        const server_fd = await waiter.wait(1);
        pattern_fill(arena.bytes.subarray(0, total), 9);
        // The sender runs ahead while nobody receives: the receiving side must hold back (the
        // libuv engine pauses the socket once its bounded queue is full) and lose nothing.
        const sending = (async () => {
            for (let sent = 0; sent < total;) {
                engine.socket_send(target, 3, server_fd, sent, total - sent);
                const result = await waiter.wait(3);
                assert.ok(result > 0);
                sent += result;
            }
            engine.socket_shutdown(target, 4, server_fd);
            assert.equal(await waiter.wait(4), 0);
        })();
        await new Promise((resolve) => setTimeout(resolve, 50));
        let received = 0;
        for (let step = 0; step < 100_000; step++) {
            const piece = 65536 - (step % 3) * 1000;
            engine.socket_recv(target, 5, client_fd, (4 << 20) + received, piece);
            const result = await waiter.wait(5);
            assert.ok(result >= 0 && result <= piece);
            if (result === 0) break;
            received += result;
        }
        await sending;
        assert.equal(received, total);
        assert.deepEqual(arena.bytes.subarray(4 << 20, (4 << 20) + total),
            arena.bytes.subarray(0, total));
        for (const [tag, fd] of [[6, client_fd], [7, server_fd], [8, listen_fd]] as const) {
            engine.close(target, tag, fd);
            assert.equal(await waiter.wait(tag), 0);
        }
        engine.destroy();
    });

    test(`${kind}: IPv6 listen, connect and bytes both ways; IPv6 listeners are IPv6 only`,
        async () => {
            const { arena, engine, waiter, target } = setup(kind);
            if (!ipv6_loopback) {
                // No ::1 on this host: listening there is an error naming the address.
                assert.throws(() => engine.socket_listen('::1', 0, 1), /listen \[::1\]:0/);
                engine.destroy();
                return;
            }
            const listen_fd = engine.socket_listen('::1', 0, 1);
            const port = engine.socket_local_port(listen_fd);
            assert.ok(port > 0);
            engine.socket_accept(target, 1, listen_fd);
            const client_fd = engine.socket_create(6);
            engine.socket_connect(target, 2, client_fd, '::1', port);
            assert.equal(await waiter.wait(2), 0);
            const server_fd = await waiter.wait(1);
            assert.ok(server_fd >= 0);
            pattern_fill(arena.bytes.subarray(0, 4096), 3);
            engine.socket_send(target, 3, client_fd, 0, 4096);
            assert.equal(await waiter.wait(3), 4096);
            let received = 0;
            for (let step = 0; step < 100 && received < 4096; step++) {
                engine.socket_recv(target, 4, server_fd, 8192 + received, 4096 - received);
                const result = await waiter.wait(4);
                assert.ok(result > 0);
                received += result;
            }
            assert.deepEqual(arena.bytes.subarray(8192, 8192 + 4096),
                arena.bytes.subarray(0, 4096));
            // The same port on IPv4 loopback is a different socket: IPV6_V6ONLY.
            const refused_fd = engine.socket_create();
            engine.socket_connect(target, 5, refused_fd, '127.0.0.1', port);
            assert.equal(await waiter.wait(5), -ECONNREFUSED);
            for (const [tag, fd] of [[6, client_fd], [7, server_fd], [8, listen_fd],
                [9, refused_fd]] as const) {
                engine.close(target, tag, fd);
                assert.equal(await waiter.wait(tag), 0);
            }
            engine.destroy();
        });

    test(`${kind}: timeouts fire, cancellation completes with ECANCELED once`, async () => {
        const { engine, waiter, target } = setup(kind);
        const start = performance.now();
        engine.timeout(target, 1, 20);
        engine.timeout(target, 2, 10_000);
        assert.equal(await waiter.wait(1), 0);
        assert.ok(performance.now() - start >= 15);
        engine.cancel(target, 2);
        assert.equal(await waiter.wait(2), -ECANCELED);
        assert.ok(performance.now() - start < 5_000);
        // A pending recv on an idle connection is cancelled too, and the socket stays usable.
        const listen_fd = engine.socket_listen('127.0.0.1', 0, 8);
        const port = engine.socket_local_port(listen_fd);
        assert.ok(port > 0);
        const client_fd = engine.socket_create();
        engine.socket_accept(target, 3, listen_fd);
        engine.socket_connect(target, 4, client_fd, '127.0.0.1', port);
        assert.equal(await waiter.wait(4), 0);
        const server_fd = await waiter.wait(3);
        assert.ok(server_fd >= 0);
        engine.socket_recv(target, 5, server_fd, 0, block);
        await new Promise((resolve) => setTimeout(resolve, 20));
        engine.cancel(target, 5);
        assert.equal(await waiter.wait(5), -ECANCELED);
        // Cancelling what already completed (or was never submitted) reports nothing.
        engine.cancel(target, 1);
        engine.cancel(target, 99);
        for (const [tag, fd] of [[6, client_fd], [7, server_fd], [8, listen_fd]] as const) {
            engine.close(target, tag, fd);
            assert.equal(await waiter.wait(tag), 0);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.equal(waiter.results.size, 0, 'no completion after cancel of a completed op');
        assert.equal(engine.in_flight, 0);
        engine.destroy();
    });

    test(`${kind}: a seeded random sequence of file operations matches a model`, async () => {
        const { arena, engine, waiter, target } = setup(kind);
        const file_bytes = 1 << 20;
        const model = new Uint8Array(file_bytes);
        const fd = engine.file_open(file_path(kind), { direct: true, dsync: false, create: true });
        engine.file_allocate(target, 1, fd, 0, file_bytes);
        assert.equal(await waiter.wait(1), 0);
        const random = prng(0x5eed);
        for (let step = 0; step < 300; step++) {
            const blocks = 1 + Math.floor(random() * 8);
            const offset = Math.floor(random() * (file_bytes / block - blocks)) * block;
            const length = blocks * block;
            const choice = random();
            if (choice < 0.6) {
                for (let index = 0; index < length; index++) {
                    arena.bytes[index] = Math.floor(random() * 256);
                }
                model.set(arena.bytes.subarray(0, length), offset);
                // A third of the writes are linked to an fdatasync, as the journal does.
                const link = choice < 0.2;
                engine.file_write(target, 2, fd, 0, length, offset, link);
                if (link) engine.file_sync(target, 6, fd, true);
                assert.equal(await waiter.wait(2), length);
                if (link) assert.equal(await waiter.wait(6), 0);
            } else if (choice < 0.65) {
                engine.file_sync(target, 6, fd, choice < 0.625);
                assert.equal(await waiter.wait(6), 0);
            } else if (choice < 0.7) {
                // Inside the file: its size and contents stay as they are.
                engine.file_allocate(target, 7, fd, offset, length);
                assert.equal(await waiter.wait(7), 0);
            } else {
                engine.file_read(target, 3, fd, 1 << 20, length, offset);
                assert.equal(await waiter.wait(3), length);
                assert.deepEqual(arena.bytes.subarray(1 << 20, (1 << 20) + length),
                    model.subarray(offset, offset + length), `step ${step}`);
            }
        }
        engine.file_read(target, 4, fd, 1 << 20, file_bytes, 0);
        assert.equal(await waiter.wait(4), file_bytes);
        const contents = arena.bytes.subarray(1 << 20, (1 << 20) + file_bytes);
        assert.deepEqual(contents, model);
        random_digests.set(kind, crypto.createHash('sha256').update(contents).digest('hex'));
        engine.close(target, 5, fd);
        assert.equal(await waiter.wait(5), 0);
        engine.destroy();
    });

    test(`${kind}: a worker thread sees bytes the engine read into the arena`, async () => {
        const { arena, engine, waiter, target } = setup(kind);
        const file = file_path(kind);
        const expected = Buffer.alloc(2 * block);
        pattern_fill(expected, 42);
        fs.writeFileSync(file, expected);
        const fd = engine.file_open(file, { direct: true, dsync: false, create: false });
        engine.file_read(target, 1, fd, 8 * block, 2 * block, 0);
        assert.equal(await waiter.wait(1), 2 * block);
        const worker = new Worker(
            'const { parentPort, workerData: w } = require("node:worker_threads");' +
            'const view = new Uint8Array(w.shared, w.base + w.offset, w.length);' +
            'parentPort.postMessage(Array.from(view));' +
            'view.fill(0x77);',
            {
                eval: true,
                workerData: {
                    shared: arena.shared_buffer, base: arena.base_offset,
                    offset: 8 * block, length: 2 * block,
                },
            });
        const seen = await new Promise<number[]>((resolve, reject) => {
            worker.once('message', resolve);
            worker.once('error', reject);
        });
        await new Promise((resolve) => worker.once('exit', resolve));
        assert.deepEqual(Buffer.from(seen), expected);
        // And the other way: what the worker wrote, the engine writes to the file.
        engine.file_write(target, 2, fd, 8 * block, block, 0);
        assert.equal(await waiter.wait(2), block);
        engine.close(target, 3, fd);
        assert.equal(await waiter.wait(3), 0);
        assert.ok(fs.readFileSync(file).subarray(0, block).every((byte) => byte === 0x77));
        engine.destroy();
    });
}

test('libuv: loop mode is refused with a message naming io_uring', () => {
    const { engine } = setup('libuv');
    assert.throws(() => engine.run_once(10), /io_uring/);
    engine.destroy();
});

test('both engines leave identical file contents after the same random sequence', () => {
    assert.equal(random_digests.size, kinds.length, 'every engine ran the random sequence');
    assert.equal(random_digests.get('libuv'), random_digests.get('io_uring'));
});

/** Tags: kind of operation times 1000 plus the connection index. */
const tag_accept = 0;
const tag_server_recv = 1;
const tag_server_send = 2;
const tag_client_connect = 3;
const tag_client_send = 4;
const tag_client_recv = 5;
const tag_close = 6;
const tag_close_client = 500;
const tag_close_listener = 999;

/**
 * `count` clients against an echo server on the same engine: each client sends one 4 KiB message
 * unique to it and expects it back, byte for byte, then closes; the server closes on end of stream.
 */
class Echo implements IoCompletionTarget {
    readonly target: number;
    readonly listen_fd: number;
    readonly server_fds: number[] = [];
    readonly client_fds: number[] = [];
    readonly client_received: number[];
    accepted = 0;
    verified = 0;
    closed = 0;
    resolve: () => void = () => {};
    reject: (error: Error) => void = () => {};

    constructor(readonly arena: Arena, readonly engine: Engine, readonly count: number) {
        assert.ok(count > 0 && count < tag_close_client);
        this.target = engine.target_register(this);
        this.listen_fd = engine.socket_listen('127.0.0.1', 0, count);
        this.client_received = new Array<number>(count).fill(0);
    }

    region(kind: number, index: number): number {
        return (kind * this.count + index) * block;
    }

    run(): Promise<void> {
        const port = this.engine.socket_local_port(this.listen_fd);
        const done = new Promise<void>((resolve, reject) => {
            this.resolve = resolve;
            this.reject = reject;
        });
        this.engine.socket_accept(this.target, tag_accept * 1000, this.listen_fd);
        for (let index = 0; index < this.count; index++) {
            pattern_fill(this.arena.bytes.subarray(this.region(1, index),
                this.region(1, index + 1)), index);
            this.client_fds[index] = this.engine.socket_create();
            this.engine.socket_connect(this.target, tag_client_connect * 1000 + index,
                this.client_fds[index]!, '127.0.0.1', port);
        }
        return done;
    }

    io_complete(tag: number, result: number): void {
        const operation = Math.floor(tag / 1000);
        const index = tag % 1000;
        if (result < 0) {
            this.reject(new Error(`echo: operation ${operation} of ${index}: ${result}`));
        } else if (operation <= tag_server_send) {
            this.server_step(operation, index, result);
        } else {
            this.client_step(operation, index, result);
        }
    }

    server_step(operation: number, index: number, result: number): void {
        const e = this.engine;
        if (operation === tag_accept) {
            const slot = this.accepted;
            this.server_fds[slot] = result;
            this.accepted += 1;
            if (this.accepted < this.count) {
                e.socket_accept(this.target, tag_accept * 1000, this.listen_fd);
            }
            e.socket_recv(this.target, tag_server_recv * 1000 + slot, result,
                this.region(0, slot), block);
        } else if (operation === tag_server_recv && result === 0) {
            e.close(this.target, tag_close * 1000 + index, this.server_fds[index]!);
        } else if (operation === tag_server_recv) {
            e.socket_send(this.target, tag_server_send * 1000 + index, this.server_fds[index]!,
                this.region(0, index), result);
        } else {
            e.socket_recv(this.target, tag_server_recv * 1000 + index, this.server_fds[index]!,
                this.region(0, index), block);
        }
    }

    client_step(operation: number, index: number, result: number): void {
        if (operation === tag_client_connect) {
            this.engine.socket_send(this.target, tag_client_send * 1000 + index,
                this.client_fds[index]!, this.region(1, index), block);
        } else if (operation === tag_client_send) {
            if (result !== block) return this.reject(new Error(`echo: short send ${result}`));
            this.client_recv(index);
        } else if (operation === tag_client_recv) {
            if (result === 0) return this.reject(new Error(`echo: ${index} saw end of stream`));
            this.client_received[index]! += result;
            if (this.client_received[index]! < block) return this.client_recv(index);
            this.client_verify(index);
        } else {
            assert.equal(operation, tag_close);
            this.closed += 1;
            // Server connections and clients are closed first, then the listener.
            if (this.closed === 2 * this.count) {
                this.engine.close(this.target, tag_close * 1000 + tag_close_listener,
                    this.listen_fd);
            }
            if (this.closed === 2 * this.count + 1) this.resolve();
        }
    }

    client_recv(index: number): void {
        this.engine.socket_recv(this.target, tag_client_recv * 1000 + index,
            this.client_fds[index]!, this.region(2, index) + this.client_received[index]!,
            block - this.client_received[index]!);
    }

    client_verify(index: number): void {
        const sent = this.arena.bytes.subarray(this.region(1, index), this.region(1, index + 1));
        const got = this.arena.bytes.subarray(this.region(2, index), this.region(2, index + 1));
        if (Buffer.compare(sent, got) !== 0) {
            return this.reject(new Error(`echo: client ${index} got other bytes`));
        }
        this.verified += 1;
        this.engine.close(this.target, tag_close * 1000 + tag_close_client + index,
            this.client_fds[index]!);
    }
}
