// The io_uring engine: O_DIRECT files with fixed and unregistered buffers, sockets, timeouts,
// cancellation, both run modes, batching counters, idle exit, worker visibility and the probes.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { Arena } from '../lib/io/arena';
import { IoError } from '../lib/io/errors';
import {
    ProbeError, direct_io_message, io_uring_features_error, io_uring_setup_error,
    probe_direct_io, probe_io_uring,
} from '../lib/io/probe';
import { ipv4_parse } from '../lib/io/address';
import { UringEngine } from '../lib/io/uring_engine';

const root = path.resolve(__dirname, '..', '..');
// Not os.tmpdir(): /tmp may be tmpfs, which refuses O_DIRECT.
const data_dir = path.join(root, '.test-data', `uring-engine-${process.pid}`);
const block = 4096;
const EBADF = 9;
const EINVAL = 22;
const ECANCELED = 125;

class Recorder {
    readonly results = new Map<number, number>();
    io_complete(tag: number, result: number): void {
        assert.ok(!this.results.has(tag), `tag ${tag} completed twice`);
        this.results.set(tag, result);
    }
}

function engine_make(register_buffers = true, entries = 64, log?: (line: string) => void) {
    const arena = new Arena(256 * block);
    const engine = new UringEngine({ arena, entries, register_buffers, log });
    const recorder = new Recorder();
    const target = engine.target_register(recorder);
    return { arena, engine, recorder, target };
}

function run_until(engine: UringEngine, recorder: Recorder, count: number): void {
    for (let turn = 0; turn < 1000 && recorder.results.size < count; turn++) engine.run_once(50);
    assert.equal(recorder.results.size, count);
}

let file_counter = 0;
function file_path(): string {
    file_counter += 1;
    return path.join(data_dir, `file-${file_counter}`);
}

before(() => fs.mkdirSync(data_dir, { recursive: true }));
after(() => fs.rmSync(data_dir, { recursive: true, force: true }));

for (const register of [true, false]) {
    test(`uring: O_DIRECT write/read round trip, ${register ? 'fixed' : 'unregistered'}`, () => {
        const lines: string[] = [];
        const { arena, engine, recorder, target } = engine_make(register, 64, (l) => lines.push(l));
        assert.equal(engine.buffers_registered, register);
        assert.equal(lines.length, register ? 0 : 1);
        if (!register) assert.match(lines[0]!, /unregistered buffers: disabled by options/);
        const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
        for (let index = 0; index < 4 * block; index++) arena.bytes[index] = (index * 7) & 0xff;
        engine.file_write(target, 1, fd, 0, 4 * block, 8 * block);
        run_until(engine, recorder, 1);
        engine.file_read(target, 2, fd, 16 * block, 4 * block, 8 * block);
        engine.file_read(target, 3, fd, 32 * block, block, 100 * block);  // Past the end.
        run_until(engine, recorder, 3);
        assert.equal(recorder.results.get(1), 4 * block);
        assert.equal(recorder.results.get(2), 4 * block);
        assert.equal(recorder.results.get(3), 0);
        const written = arena.bytes.subarray(0, 4 * block);
        assert.deepEqual(arena.bytes.subarray(16 * block, 20 * block), written);
        // Misaligned O_DIRECT length is the kernel's EINVAL, as a result, not a throw.
        engine.file_write(target, 4, fd, 0, 100, 0);
        engine.close(target, 5, fd);
        run_until(engine, recorder, 5);
        assert.equal(recorder.results.get(4), -EINVAL);
        assert.equal(recorder.results.get(5), 0);
        engine.destroy();
    });
}

test('uring: fdatasync, fsync, fallocate; EBADF after close; open errors throw IoError', () => {
    const { engine, recorder, target } = engine_make();
    const file = file_path();
    const fd = engine.file_open(file, { direct: true, dsync: true, create: true });
    engine.file_allocate(target, 1, fd, 0, 64 * block);
    run_until(engine, recorder, 1);
    engine.file_sync(target, 2, fd, true);
    engine.file_sync(target, 3, fd, false);
    run_until(engine, recorder, 3);
    assert.deepEqual([...recorder.results.values()], [0, 0, 0]);
    assert.equal(fs.statSync(file).size, 64 * block);
    engine.close(target, 4, fd);
    run_until(engine, recorder, 4);
    engine.file_read(target, 5, fd, 0, block, 0);
    engine.file_sync(target, 6, fd, true);
    run_until(engine, recorder, 6);
    assert.equal(recorder.results.get(5), -EBADF);
    assert.equal(recorder.results.get(6), -EBADF);
    assert.throws(() => engine.file_open(path.join(data_dir, 'missing', 'x'),
        { direct: true, dsync: false, create: false }),
    (error: unknown) => error instanceof IoError && error.code === 'ENOENT' &&
        error.operation === 'open' && error.message.includes('missing'));
    assert.throws(() => engine.file_open(file, { direct: true, dsync: false, create: true }),
        (error: unknown) => error instanceof IoError && error.code === 'EEXIST');
    // Programmer errors are asserted before submission.
    assert.throws(() => engine.file_read(target, 7, fd, 255 * block, 2 * block, 0), /arena/);
    assert.equal(engine.in_flight, 0);
    engine.destroy();
});

test('uring: timeouts fire, cancel of a timeout and of a pending recv', () => {
    const { engine, recorder, target } = engine_make();
    const listen_fd = engine.socket_listen('127.0.0.1', 0, 16);
    const port = engine.socket_local_port(listen_fd);
    const client_fd = engine.socket_create();
    engine.socket_connect(target, 1, client_fd, '127.0.0.1', port);
    engine.socket_accept(target, 2, listen_fd);
    run_until(engine, recorder, 2);
    assert.equal(recorder.results.get(1), 0);
    const server_fd = recorder.results.get(2)!;
    assert.ok(server_fd > 0);
    const started_ms = Date.now();
    engine.timeout(target, 3, 30);
    engine.timeout(target, 4, 60_000);
    engine.socket_recv(target, 5, server_fd, 0, block);
    engine.cancel(target, 99);  // Nothing in flight has this tag: a no-op.
    engine.run_once(0);
    engine.cancel(target, 4);
    engine.cancel(target, 5);
    run_until(engine, recorder, 5);
    assert.equal(recorder.results.get(3), 0);
    assert.ok(Date.now() - started_ms >= 25);
    assert.equal(recorder.results.get(4), -ECANCELED);
    assert.ok(recorder.results.get(5) === -ECANCELED || recorder.results.get(5) === -4);
    for (const [tag, fd] of [[6, client_fd], [7, server_fd], [8, listen_fd]] as const) {
        engine.close(target, tag, fd);
    }
    run_until(engine, recorder, 8);
    assert.equal(engine.in_flight, 0);
    engine.destroy();
});

test('uring: TCP echo over loopback in loop mode', () => {
    const { arena, engine, recorder, target } = engine_make();
    const listen_fd = engine.socket_listen('localhost', 0, 16);
    const port = engine.socket_local_port(listen_fd);
    assert.ok(port > 0);
    assert.throws(() => engine.socket_listen('127.0.0.1', port, 16),
        (error: unknown) => error instanceof IoError && error.code === 'EADDRINUSE');
    const client_fd = engine.socket_create();
    engine.socket_accept(target, 1, listen_fd);
    engine.socket_connect(target, 2, client_fd, '127.0.0.1', port);
    run_until(engine, recorder, 2);
    const server_fd = recorder.results.get(1)!;
    const message = Buffer.from('ringledger echo');
    arena.bytes.set(message, 0);
    engine.socket_send(target, 3, client_fd, 0, message.length);
    engine.socket_recv(target, 4, server_fd, block, block);
    run_until(engine, recorder, 4);
    assert.equal(recorder.results.get(4), message.length);
    engine.socket_send(target, 5, server_fd, block, message.length);
    engine.socket_recv(target, 6, client_fd, 2 * block, block);
    run_until(engine, recorder, 6);
    assert.deepEqual(Buffer.from(arena.bytes.subarray(2 * block, 2 * block + 15)), message);
    engine.socket_shutdown(target, 7, client_fd);
    engine.socket_recv(target, 8, server_fd, block, block);  // The peer closed: 0 bytes.
    run_until(engine, recorder, 8);
    assert.equal(recorder.results.get(8), 0);
    for (const [tag, fd] of [[9, client_fd], [10, server_fd], [11, listen_fd]] as const) {
        engine.close(target, tag, fd);
    }
    run_until(engine, recorder, 11);
    engine.destroy();
});

test('uring: event-loop mode delivers completions with one JS call per drain', async () => {
    const { arena, engine, target: _unused } = engine_make();
    let resolve_done: () => void = () => {};
    const done = new Promise<void>((resolve) => { resolve_done = resolve; });
    const results: number[] = [];
    const target = engine.target_register({
        io_complete(tag: number, result: number) {
            results.push(tag, result);
            if (tag === 1) engine.file_read(target, 2, fd, 8 * block, block, 0);
            if (tag === 2) resolve_done();
        },
    });
    const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
    arena.bytes.fill(0x5a, 0, block);
    engine.start();
    assert.throws(() => engine.run_once(0), /event-loop mode/);
    engine.file_write(target, 1, fd, 0, block, 0);
    await done;
    assert.deepEqual(results, [1, block, 2, block]);
    assert.equal(arena.bytes[8 * block + 100], 0x5a);
    const stats = engine.stats();
    assert.equal(stats.submitted, 2);
    assert.equal(stats.completed, 2);
    assert.equal(stats.js_calls, 2);
    assert.equal(stats.enter_calls, 2);
    engine.destroy();
});

// Event-loop mode with network completions arriving while Node sleeps in epoll (the poll handle
// on the ring fd must wake it), with and without a kernel submission-polling thread.
for (const sqpoll of [false, true]) {
    test(`uring: TCP echo in event-loop mode${sqpoll ? ' with SQPOLL' : ''}`, async () => {
        const arena = new Arena(16 * block);
        const engine = new UringEngine({ arena, entries: 16, sqpoll });
        const listen_fd = engine.socket_listen('127.0.0.1', 0, 4);
        const client_fd = engine.socket_create();
        const message = Buffer.from('event loop echo');
        arena.bytes.set(message, 0);
        let server_fd = -1;
        const trace: string[] = [];
        let finish: (error?: Error) => void = () => {};
        const done = new Promise<void>((resolve, reject) => {
            finish = (error) => (error === undefined ? resolve() : reject(error));
        });
        const target = engine.target_register({
            io_complete(tag: number, result: number) {
                trace.push(`${tag}:${result}`);
                if (result < 0) return finish(new Error(`tag ${tag} failed: ${result}`));
                if (tag === 1) {
                    server_fd = result;
                    engine.socket_recv(target, 3, server_fd, block, block);
                } else if (tag === 2) {
                    engine.socket_send(target, 4, client_fd, 0, message.length);
                } else if (tag === 3) {
                    engine.socket_send(target, 5, server_fd, block, result);
                } else if (tag === 5) {
                    engine.socket_recv(target, 6, client_fd, 2 * block, block);
                } else if (tag === 6) {
                    finish();
                }
            },
        });
        engine.start();
        engine.socket_accept(target, 1, listen_fd);
        // Connect from a later turn, so the accept has been waiting in the kernel.
        setTimeout(() => engine.socket_connect(target, 2, client_fd, '127.0.0.1',
            engine.socket_local_port(listen_fd)), 20);
        await done;
        assert.deepEqual(Buffer.from(arena.bytes.subarray(2 * block, 2 * block + 15)), message);
        assert.ok(trace.includes(`6:${message.length}`), trace.join(' '));
        let closed = 0;
        await new Promise<void>((resolve) => {
            const closer = engine.target_register({
                io_complete(_tag: number, result: number) {
                    assert.equal(result, 0);
                    closed += 1;
                    if (closed === 3) resolve();
                },
            });
            for (const fd of [client_fd, server_fd, listen_fd]) engine.close(closer, fd, fd);
        });
        assert.equal(engine.in_flight, 0);
        engine.destroy();
    });
}

test('uring: one io_uring_enter per flush batch in both modes', async () => {
    const { engine, recorder, target } = engine_make(true, 128);
    const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
    for (let tag = 0; tag < 100; tag++) engine.file_write(target, tag, fd, 0, block, tag * block);
    assert.equal(engine.stats().enter_calls, 0);
    engine.run_once(1000);
    assert.equal(engine.stats().enter_calls, 1);
    assert.equal(engine.stats().submitted, 100);
    run_until(engine, recorder, 100);
    const loop_enters = engine.stats().enter_calls;
    engine.destroy();

    const other = engine_make(true, 128);
    other.engine.start();
    let count = 0;
    let resolve_done: () => void = () => {};
    const done = new Promise<void>((resolve) => { resolve_done = resolve; });
    const timeouts = other.engine.target_register({
        io_complete() { count += 1; if (count === 50) resolve_done(); },
    });
    for (let tag = 0; tag < 50; tag++) other.engine.timeout(timeouts, tag, 5);
    await done;
    const stats = other.engine.stats();
    assert.equal(stats.enter_calls, 1, 'the whole turn is submitted by one io_uring_enter');
    assert.ok(stats.js_calls >= 1 && stats.js_calls <= 50);
    other.engine.destroy();
    assert.ok(loop_enters >= 1 && loop_enters <= 100);
});

// Loop mode with the default wait (at least one completion) returns as soon as any write is done,
// so O_DIRECT writes that finish one by one cost about one enter each; waiting for the batch
// (min_complete) takes them all in a handful of enters.
for (const min_complete of [1, 1000]) {
    test(`uring: enter_calls per op, 1000 4 KiB O_DIRECT writes, min_complete ${min_complete}`,
        (t) => {
            const arena = new Arena(1024 * block);
            const engine = new UringEngine({ arena, entries: 1024 });
            const recorder = new Recorder();
            const target = engine.target_register(recorder);
            const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
            const started = process.hrtime.bigint();
            for (let tag = 0; tag < 1000; tag++) {
                engine.file_write(target, tag, fd, tag * block, block, tag * block);
            }
            for (let turn = 0; turn < 2000 && recorder.results.size < 1000; turn++) {
                engine.run_once(1000, min_complete);
            }
            const elapsed_us = Number(process.hrtime.bigint() - started) / 1000;
            const stats = engine.stats();
            assert.equal(recorder.results.size, 1000);
            assert.ok([...recorder.results.values()].every((result) => result === block));
            t.diagnostic(`1000 writes: enter_calls=${stats.enter_calls} ` +
                `(${(stats.enter_calls / 1000).toFixed(4)} per op), ${elapsed_us.toFixed(0)} us`);
            assert.equal(stats.submitted, 1000);
            assert.ok(stats.enter_calls <= (min_complete === 1 ? 1001 : 10));
            engine.close(target, 1000, fd);
            run_until(engine, recorder, 1001);
            engine.destroy();
        });
}

test('uring: a write linked to its fdatasync is one submission and one enter', () => {
    const { arena, engine, recorder, target } = engine_make(true, 64);
    const file = file_path();
    const fd = engine.file_open(file, { direct: true, dsync: false, create: true });
    arena.bytes.fill(0x42, 0, 8 * block);
    for (let lane = 0; lane < 8; lane++) {
        engine.file_write(target, 2 * lane, fd, lane * block, block, lane * block, true);
        engine.file_sync(target, 2 * lane + 1, fd, true);
    }
    // One io_uring_enter submits all eight chains and waits for all sixteen completions.
    for (let turn = 0; turn < 100 && recorder.results.size < 16; turn++) {
        engine.run_once(1000, 16);
    }
    assert.equal(recorder.results.size, 16);
    for (let lane = 0; lane < 8; lane++) {
        assert.equal(recorder.results.get(2 * lane), block);
        assert.equal(recorder.results.get(2 * lane + 1), 0);
    }
    const stats = engine.stats();
    assert.equal(stats.submitted, 16);
    assert.ok(stats.enter_calls <= 2, `enter_calls ${stats.enter_calls}`);
    assert.ok(fs.readFileSync(file).every((byte) => byte === 0x42));
    // A submission point between a linked write and its follower would split the chain.
    engine.file_write(target, 100, fd, 0, block, 0, true);
    assert.throws(() => engine.run_once(0), /waiting for its follower/);
    assert.throws(() => engine.flush(), /waiting for its follower/);
    engine.file_sync(target, 101, fd, true);
    run_until(engine, recorder, 18);
    // Only the follower waits: a close staged with them would run at once (not linked).
    engine.close(target, 102, fd);
    run_until(engine, recorder, 19);
    assert.deepEqual([100, 101, 102].map((tag) => recorder.results.get(tag)), [block, 0, 0]);
    engine.destroy();
});

test('uring: a chain never splits when the submission queue is nearly full', () => {
    // 4 SQ entries and 3 chains of 2 staged at once: native submits before a chain that would
    // not fit, so every fdatasync still follows its own write.
    const { arena, engine, recorder, target } = engine_make(true, 8);
    const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
    arena.bytes.fill(0x17, 0, 4 * block);
    engine.file_write(target, 0, fd, 0, block, 0);
    for (let chain = 0; chain < 3; chain++) {
        engine.file_write(target, 1 + 2 * chain, fd, 0, 1000, 0, true);  // Fails: misaligned.
        engine.file_sync(target, 2 + 2 * chain, fd, true);
    }
    run_until(engine, recorder, 7);
    assert.equal(recorder.results.get(0), block);
    for (let chain = 0; chain < 3; chain++) {
        assert.equal(recorder.results.get(1 + 2 * chain), -EINVAL);
        assert.equal(recorder.results.get(2 + 2 * chain), -ECANCELED);
    }
    engine.close(target, 7, fd);
    run_until(engine, recorder, 8);
    engine.destroy();
});

test('uring: a kernel refusing a full submission queue (EBUSY) defers, drains, retries', () => {
    // 8 timeouts and their 8 cancels staged at once: twice what the submission queue holds, so
    // native must enter to make room, and the fault hook makes those enters fail as a kernel with
    // an overflowed completion queue does. The rest stays staged in order and goes out on later
    // turns; every timeout is cancelled and completes exactly once.
    const { engine, recorder, target } = engine_make(true, 8);
    assert.equal(engine.fault_enter_busy(3), 0);
    for (let tag = 0; tag < 8; tag++) engine.timeout(target, tag, 60_000);
    for (let tag = 0; tag < 8; tag++) engine.cancel(target, tag);
    for (let turn = 0; turn < 100 && recorder.results.size < 8; turn++) engine.run_once(10);
    assert.equal(recorder.results.size, 8);
    for (let tag = 0; tag < 8; tag++) assert.equal(recorder.results.get(tag), -ECANCELED);
    assert.ok(engine.fault_enter_busy(0) >= 1, 'the refusal was met and deferred');
    assert.equal(engine.in_flight, 0);
    engine.destroy();
});

test('uring: SQPOLL loop mode polls completions without entering the kernel', () => {
    const arena = new Arena(256 * block);
    const engine = new UringEngine({ arena, entries: 128, sqpoll: true });
    const recorder = new Recorder();
    const target = engine.target_register(recorder);
    const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
    for (let index = 0; index < 64 * block; index++) arena.bytes[index] = index % 251;
    for (let tag = 0; tag < 64; tag++) {
        engine.file_write(target, tag, fd, tag * block, block, tag * block);
    }
    // run_once(0) with SQPOLL never waits: the kernel thread submits and completes. The only
    // enter allowed is one wake-up for the one batch, if the thread was asleep.
    const deadline_ms = Date.now() + 10_000;
    while (recorder.results.size < 64 && Date.now() < deadline_ms) engine.run_once(0);
    assert.equal(recorder.results.size, 64);
    assert.ok([...recorder.results.values()].every((result) => result === block));
    assert.ok(engine.stats().enter_calls <= 1, `enter_calls ${engine.stats().enter_calls}`);
    engine.file_read(target, 64, fd, 128 * block, 64 * block, 0);
    engine.close(target, 65, fd);
    while (recorder.results.size < 66 && Date.now() < deadline_ms) engine.run_once(0);
    assert.equal(recorder.results.get(64), 64 * block);
    assert.deepEqual(arena.bytes.subarray(128 * block, 192 * block),
        arena.bytes.subarray(0, 64 * block));
    assert.ok(engine.stats().enter_calls <= 2);
    engine.destroy();
});

test('uring: a worker thread sees bytes the engine read into the arena', async () => {
    const { arena, engine, recorder, target } = engine_make();
    const file = file_path();
    fs.writeFileSync(file, Buffer.alloc(block, 0x33));
    const fd = engine.file_open(file, { direct: true, dsync: false, create: false });
    engine.file_read(target, 1, fd, 3 * block, block, 0);
    run_until(engine, recorder, 1);
    assert.equal(recorder.results.get(1), block);
    const worker = new Worker(
        'const { parentPort, workerData } = require("node:worker_threads");' +
        'const view = new Uint8Array(workerData.buffer, workerData.offset, workerData.length);' +
        'let sum = 0; for (const byte of view) sum += byte; parentPort.postMessage(sum);',
        { eval: true, workerData: {
            buffer: arena.shared_buffer, offset: arena.base_offset + 3 * block, length: block,
        } });
    const sum = await new Promise<number>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
    });
    assert.equal(sum, 0x33 * block);
    await worker.terminate();
    engine.close(target, 2, fd);
    run_until(engine, recorder, 2);
    engine.destroy();
});

test('uring: terminating a worker with a started engine and an op in flight is clean', async () => {
    const worker = new Worker(`
        const { parentPort } = require('node:worker_threads');
        const { Arena } = require(${JSON.stringify(path.join(root, 'dist/lib/io/arena'))});
        const { UringEngine } = require(
            ${JSON.stringify(path.join(root, 'dist/lib/io/uring_engine'))});
        const engine = new UringEngine({ arena: new Arena(4096), entries: 8 });
        const target = engine.target_register({ io_complete(tag, result) {
            parentPort.postMessage([tag, result]);
        } });
        engine.start();
        engine.timeout(target, 1, 1);
        engine.timeout(target, 2, 600000);`, { eval: true });
    const first = await new Promise<number[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
    });
    assert.deepEqual(first, [1, 0]);
    // The environment's cleanup hook closes the ring and the uv handles before the addon unloads
    // (without it, libuv ran a close callback into unloaded code and the process crashed).
    assert.equal(await worker.terminate(), 1);
});

test('uring: the process exits when idle (no leaked ref) and waits while ops are in flight', () => {
    const script = `
        const { Arena } = require(${JSON.stringify(path.join(root, 'dist/lib/io/arena'))});
        const { UringEngine } = require(
            ${JSON.stringify(path.join(root, 'dist/lib/io/uring_engine'))});
        const engine = new UringEngine({ arena: new Arena(4096), entries: 8 });
        const target = engine.target_register({ io_complete(tag, result) {
            process.stdout.write('done ' + tag + ' ' + result + '\\n');
        } });
        engine.start();
        engine.timeout(target, 7, 150);`;
    const started_ms = Date.now();
    const child = child_process.spawnSync(process.execPath, ['-e', script],
        { encoding: 'utf8', timeout: 10_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'done 7 0\n');
    assert.ok(Date.now() - started_ms >= 150);
    assert.ok(Date.now() - started_ms < 5000);
});

test('uring: an arena over RLIMIT_MEMLOCK runs unregistered and says why, once', () => {
    // Root passes any limit through CAP_IPC_LOCK, so the child runs without that capability.
    // (Not as `nobody`: a checkout under a 0700 directory, as mktemp makes, would be unreadable.)
    const script = `
        const { Arena } = require(${JSON.stringify(path.join(root, 'dist/lib/io/arena'))});
        const { UringEngine } = require(
            ${JSON.stringify(path.join(root, 'dist/lib/io/uring_engine'))});
        const lines = [];
        const engine = new UringEngine({ arena: new Arena(4 << 20), entries: 8,
            log: (line) => lines.push(line) });
        process.stdout.write(JSON.stringify({ registered: engine.buffers_registered, lines }));
        engine.destroy();`;
    const outcomes = [64, 8192].map((limit_kib) => {
        const child = child_process.spawnSync('setpriv', ['--bounding-set=-ipc_lock',
            '--inh-caps=-ipc_lock', 'sh', '-c', `ulimit -l ${limit_kib} && exec "$0" -e "$1"`,
            process.execPath, script], { encoding: 'utf8', timeout: 10_000 });
        assert.equal(child.status, 0, child.stderr);
        return JSON.parse(child.stdout) as { registered: boolean; lines: string[] };
    });
    assert.equal(outcomes[0]!.registered, false);
    assert.equal(outcomes[0]!.lines.length, 1);
    // Root skips the pre-check (root usually holds CAP_IPC_LOCK), so the kernel's ENOMEM speaks.
    assert.match(outcomes[0]!.lines[0]!, /RLIMIT_MEMLOCK (is )?65536 bytes.*ulimit -l/);
    assert.deepEqual(outcomes[1], { registered: true, lines: [] });
});

// Arenas above 1 GiB register as several fixed buffers (the kernel's per-buffer cap); a transfer
// that straddles two of them falls back to a plain read. Long: it pins 1.25 GiB of memory.
if (process.env.RINGLEDGER_TEST_LONG === '1') {
    test('uring (long): a 1.25 GiB arena registers in chunks and straddling ops work', () => {
        const gib = 1 << 30;
        const arena = new Arena(gib + gib / 4);
        const engine = new UringEngine({ arena, entries: 8 });
        assert.equal(engine.buffers_registered, true);
        const recorder = new Recorder();
        const target = engine.target_register(recorder);
        const fd = engine.file_open(file_path(), { direct: true, dsync: false, create: true });
        arena.bytes.fill(0x11, gib - block, gib + block);
        engine.file_write(target, 1, fd, gib - block, 2 * block, 0);  // Straddles the chunks.
        run_until(engine, recorder, 1);
        engine.file_read(target, 2, fd, gib + 8 * block, 2 * block, 0);  // In chunk 1.
        run_until(engine, recorder, 2);
        assert.deepEqual([...recorder.results.values()], [2 * block, 2 * block]);
        assert.equal(arena.bytes[gib + 9 * block + 7], 0x11);
        engine.close(target, 3, fd);
        run_until(engine, recorder, 3);
        engine.destroy();
    });
}

test('uring: a host without io_uring is explained at startup (simulated probe failures)', () => {
    const failing = (result: number, features = 0) => ({
        engine_probe: (): [number, number] => [result, features],
        engine_probe_direct_io: (): [number, 'open' | 'write'] => [0, 'write'],
    });
    const cases: [number, number | null, RegExp][] = [
        [-1, 0, /io_uring_setup: EPERM.*blocked by seccomp.*seccomp=unconfined/],
        [-1, 2, /EPERM.*kernel.io_uring_disabled = 2.*sysctl -w kernel.io_uring_disabled=0/],
        [-1, 1, /EPERM.*io_uring_disabled = 1.*io_uring_group/],
        [-38, null, /ENOSYS.*kernel is too old.*seccomp/],
        [-12, null, /ENOMEM.*locked-memory limit.*Linux 5\.10\.0.*before 5\.12.*ulimit -l/],
    ];
    for (const [result, disabled, message] of cases) {
        assert.throws(() => probe_io_uring(failing(result), disabled, '5.10.0-28-amd64'),
            (error: unknown) => error instanceof ProbeError &&
                error.code === 'ERR_IO_URING_UNAVAILABLE' && error.errno === -result &&
                message.test(error.message) && /libuv engine/.test(error.message));
    }
    // A ring without IORING_FEAT_EXT_ARG (before Linux 5.11) is refused too.
    assert.throws(() => probe_io_uring(failing(0, 0), 0), /EXT_ARG.*5\.11/);
    probe_io_uring(failing(0, 1 << 8), 0);
    // O_DIRECT refused at open (tmpfs before 6.6, ramfs) or at the first write.
    const direct = (result: number, step: 'open' | 'write') => ({
        engine_probe: (): [number, number] => [0, 1 << 8],
        engine_probe_direct_io: (): [number, 'open' | 'write'] => [result, step],
    });
    const refused = probe_direct_io('/data', direct(-22, 'write'));
    assert.equal(refused.supported, false);
    assert.match(refused.message,
        /^O_DIRECT write in \/data: EINVAL: the filesystem does not support O_DIRECT.*ext4/);
    assert.match(probe_direct_io('/data', direct(-13, 'open')).message,
        /EACCES.*exists and is writable/);
    assert.deepEqual(probe_direct_io('/data', direct(0, 'write')),
        { supported: true, message: '' });
});

test('uring: the O_DIRECT probe on a real filesystem without O_DIRECT (ramfs)', () => {
    const mount = path.join(data_dir, 'ramfs');
    fs.mkdirSync(mount);
    child_process.execFileSync('mount', ['-t', 'ramfs', 'ramfs', mount]);
    try {
        const probe = probe_direct_io(mount);
        assert.equal(probe.supported, false);
        assert.match(probe.message, /O_DIRECT open in .*ramfs: EINVAL: .*does not support/);
        assert.deepEqual(fs.readdirSync(mount), [], 'the probe leaves no file behind');
    } finally {
        child_process.execFileSync('umount', [mount]);
    }
});

test('uring: probes explain how to fix an unavailable io_uring or O_DIRECT', () => {
    probe_io_uring();
    assert.match(io_uring_setup_error(-1).message, /seccomp|sysctl/);
    assert.equal(io_uring_setup_error(-1).code, 'ERR_IO_URING_UNAVAILABLE');
    assert.match(io_uring_setup_error(-38).message, /kernel is too old/);
    // The memlock advice only where the running kernel charges rings to RLIMIT_MEMLOCK.
    assert.match(io_uring_setup_error(-12, null, '5.11.22').message, /ulimit -l/);
    const recent = io_uring_setup_error(-12, null, '6.18.44-fc-v1272').message;
    assert.match(recent, /Linux 6\.18\.44-fc-v1272 charges rings to the memory cgroup/);
    assert.doesNotMatch(recent, /before 5\.12|ulimit -l/);
    assert.match(io_uring_features_error(0)!.message, /EXT_ARG/);
    assert.equal(io_uring_features_error(1 << 8), null);
    assert.deepEqual(probe_direct_io(data_dir), { supported: true, message: '' });
    // tmpfs accepts O_DIRECT since Linux 6.6; older kernels refuse it with EINVAL.
    const tmpfs = probe_direct_io('/dev/shm');
    assert.ok(tmpfs.supported || /EINVAL/.test(tmpfs.message));
    assert.match(direct_io_message('/dev/shm', -22, 'open'),
        /O_DIRECT open in \/dev\/shm: EINVAL: the filesystem does not support O_DIRECT/);
    assert.match(probe_direct_io(path.join(data_dir, 'absent')).message, /ENOENT/);
    assert.equal(ipv4_parse('10.0.0.1'), 0x0a000001);
    assert.equal(ipv4_parse('10.0.0'), -1);
    assert.equal(ipv4_parse('256.0.0.1'), -1);
});
