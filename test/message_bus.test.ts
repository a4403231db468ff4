// MessageBus: in-place framing (every split point, coalesced streams), backpressure when the pool
// is empty, bad peers disconnected by reason, and 200 concurrent loopback connections mixing
// valid and invalid traffic on every available engine.
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';
import type { Engine, EngineKind, IoCompletionTarget } from '../lib/io/engine';
import { create_engine } from '../lib/io/index';
import { header_init, HeaderView, seal } from '../lib/vsr/header';
import { Command } from '../lib/vsr/header_layout';
import { BusReason, MessageBus, type MessageBusOwner } from '../lib/vsr/message_bus';
import { MessagePool } from '../lib/vsr/message_pool';
import { HeaderValidator, Reason } from '../lib/vsr/validate';

const release = 0x00001109;
const cluster = 0n;

/** A sealed message: ping_client (256 bytes) when body_size is 0, else a request with a body. */
function message_make(body_size: number, seed: number, cluster_id = cluster,
    command: number = body_size === 0 ? Command.ping_client : Command.request): Uint8Array {
    const bytes = new Uint8Array(256 + body_size);
    const view = new HeaderView();
    header_init(view, bytes, 0, command === 99 ? Command.ping_client : command,
        bytes.length, release);
    if (cluster_id !== 0n) view.set('cluster', cluster_id);
    view.set('client', BigInt(seed + 1));
    if (command === Command.request) {
        view.set('operation', 146);
        view.set('session', 1n);
        view.set('request', 1);
        for (let index = 0; index < body_size; index++) bytes[256 + index] = (seed + index) & 255;
    } else {
        view.set('ping_timestamp_monotonic', BigInt(seed + 1));
    }
    if (command === 99) view.command = 99;
    seal(view);
    return bytes;
}

const time = { monotonic_ns: () => Number(process.hrtime.bigint()) };
const random_zero = { u32: () => 0 };

// A deterministic engine: recvs complete only when the test feeds bytes.
class FakeEngine {
    readonly kind: EngineKind = 'libuv';
    readonly buffers_registered = false;
    target!: IoCompletionTarget;
    recv_tag = -1;
    recv_offset = 0;
    recv_length = 0;
    accept_tag = -1;
    closed = 0;
    sent: number[] = [];
    constructor(readonly arena: Arena) {}
    get in_flight(): number { return 0; }
    target_register(target: IoCompletionTarget): number { this.target = target; return 0; }
    socket_listen(): number { return 100; }
    socket_local_port(): number { return 1; }
    socket_accept(_target: number, tag: number): void { this.accept_tag = tag; }
    socket_recv(_target: number, tag: number, _fd: number, offset: number, length: number): void {
        assert.equal(this.recv_tag, -1, 'one recv at a time');
        this.recv_tag = tag;
        this.recv_offset = offset;
        this.recv_length = length;
    }
    socket_send(_target: number, tag: number, _fd: number, _offset: number, length: number): void {
        this.sent.push(length);
        this.target.io_complete(tag, length);
    }
    close(): void { this.closed += 1; }
    cancel(_target: number, tag: number): void {
        if (tag === this.recv_tag) this.recv_tag = -1;
    }
    /** Accepts one connection with fd 5. */
    accept(): void {
        const tag = this.accept_tag;
        this.accept_tag = -1;
        this.target.io_complete(tag, 5);
    }
    /** Feeds bytes through as many recvs as they need; returns the bytes not taken. */
    feed(bytes: Uint8Array): number {
        let position = 0;
        while (position < bytes.length && this.recv_tag !== -1) {
            const take = Math.min(this.recv_length, bytes.length - position);
            this.arena.bytes.set(bytes.subarray(position, position + take), this.recv_offset);
            position += take;
            const tag = this.recv_tag;
            this.recv_tag = -1;
            this.target.io_complete(tag, take);
        }
        return bytes.length - position;
    }
    end(): void {
        const tag = this.recv_tag;
        this.recv_tag = -1;
        this.target.io_complete(tag, 0);
    }
}

class Recorder implements MessageBusOwner {
    messages: Uint8Array[] = [];
    held: number[] = [];
    hold = false;
    constructor(public pool: MessagePool | null = null) {}
    on_message(_connection: number, message: number): void {
        const pool = this.pool!;
        const size = new DataView(pool.bytes.buffer, pool.bytes.byteOffset + pool.offset(message))
            .getUint32(96, true);
        this.messages.push(pool.buffers[message]!.slice(0, size));
        if (this.hold) {
            pool.ref(message);
            this.held.push(message);
        }
    }
}

function fake_bus(pool_count: number, message_size_max = 8192) {
    const arena = new Arena(pool_count * message_size_max + 4096);
    const engine = new FakeEngine(arena);
    const pool = new MessagePool(arena, pool_count, message_size_max);
    arena.seal();
    const owner = new Recorder(pool);
    const bus = new MessageBus({
        engine: engine as unknown as Engine, pool, validator: new HeaderValidator(cluster), owner,
        time, random: random_zero, connections_max: 4, send_queue_max: 4,
    });
    bus.listen('127.0.0.1', 0);
    engine.accept();
    return { arena, engine, pool, owner, bus };
}

function concat(parts: Uint8Array[]): Uint8Array {
    const total = parts.reduce((sum, part) => sum + part.length, 0);
    const result = new Uint8Array(total);
    let offset = 0;
    for (const part of parts) {
        result.set(part, offset);
        offset += part.length;
    }
    return result;
}

test('message bus: in-place framing at every split point, coalesced and byte by byte', () => {
    const expected = [message_make(0, 1), message_make(300, 2), message_make(1000, 3),
        message_make(0, 4)];
    const stream = concat(expected);
    const { engine, pool, owner, bus } = fake_bus(4);
    for (let split = 0; split <= stream.length; split++) {
        owner.messages = [];
        assert.equal(engine.feed(stream.subarray(0, split)), 0);
        assert.equal(engine.feed(stream.subarray(split)), 0);
        assert.equal(owner.messages.length, expected.length, `split at ${split}`);
        for (let index = 0; index < expected.length; index++) {
            assert.deepEqual(owner.messages[index], expected[index]);
        }
        assert.equal(pool.used, 1, 'only the receive buffer stays in use');
    }
    // Three pieces with a split inside a header and one inside a body.
    owner.messages = [];
    engine.feed(stream.subarray(0, 100));
    engine.feed(stream.subarray(100, 700));
    engine.feed(stream.subarray(700));
    assert.equal(owner.messages.length, 4);
    // Byte by byte.
    owner.messages = [];
    for (let index = 0; index < stream.length; index++) engine.feed(stream.subarray(index, index + 1));
    assert.deepEqual(owner.messages, expected);
    assert.equal(bus.messages_received, (stream.length + 1) * 4 + 8);
    assert.equal(bus.disconnects_invalid.reduce((a, b) => a + b, 0), 0);
    assert.equal(pool.used_max <= 2, true, 'a copy needs at most one extra buffer');
});

test('message bus: many small messages coalesced fill and wrap the buffer', () => {
    const { engine, pool, owner } = fake_bus(3, 8192);
    const parts: Uint8Array[] = [];
    for (let index = 0; index < 100; index++) parts.push(message_make((index * 37) % 500, index));
    const stream = concat(parts);
    // Pieces of 3000 bytes: the receive buffer (8 KiB) must compact partial messages to its start.
    for (let offset = 0; offset < stream.length; offset += 3000) {
        assert.equal(engine.feed(stream.subarray(offset, offset + 3000)), 0);
    }
    assert.deepEqual(owner.messages, parts);
    assert.equal(pool.used, 1);
});

test('message bus: an empty pool pauses receiving, a release resumes it', () => {
    const { engine, pool, owner, bus } = fake_bus(3);
    owner.hold = true;
    const parts = [message_make(0, 1), message_make(10, 2), message_make(20, 3),
        message_make(30, 4)];
    const stream = concat(parts);
    engine.feed(stream);
    // Three buffers: two held by the owner, one holding the rest; no fresh one to copy into.
    assert.equal(owner.messages.length, 2);
    assert.equal(pool.free, 0);
    assert.equal(engine.recv_tag, -1, 'no recv issued while the pool is empty');
    assert.ok(bus.backpressure_pauses >= 1);
    assert.ok(bus.connected(0), 'backpressure is not a disconnect');
    owner.hold = false;
    pool.unref(owner.held.shift()!);
    assert.equal(owner.messages.length, 4, 'the release resumed parsing');
    assert.notEqual(engine.recv_tag, -1, 'and receiving');
    pool.unref(owner.held.shift()!);
    assert.equal(pool.used, 1);
    // Valid then invalid: a later bad message still disconnects.
    engine.feed(message_make(0, 9, 7n));
    assert.equal(bus.disconnects_invalid[Reason.cluster_mismatch], 1);
    assert.equal(bus.connected(0), false);
    pool.assert_no_leaks();
});

test('message bus: bad peers are disconnected and counted by reason', () => {
    const cases: Array<[string, Uint8Array, number, number]> = [
        ['garbage', new Uint8Array(300).fill(0xAB), Reason.checksum_invalid, -1],
        ['wrong cluster', message_make(0, 1, 42n), Reason.cluster_mismatch, -1],
        ['unknown command', message_make(0, 1, 0n, 99), Reason.command_unknown, -1],
        ['oversized', oversized(), Reason.size_above_max, -1],
        ['too large for the buffers', message_make(9000, 1), -1, BusReason.message_too_large],
        ['mid-message close', message_make(100, 1).subarray(0, 200), -1,
            BusReason.peer_closed_mid_message],
    ];
    for (const [name, bytes, reason, bus_reason] of cases) {
        const { engine, pool, owner, bus } = fake_bus(2);
        engine.feed(message_make(0, 5)); // A valid message first.
        assert.equal(owner.messages.length, 1, name);
        engine.feed(bytes);
        if (bus_reason === BusReason.peer_closed_mid_message) engine.end();
        assert.equal(bus.connected(0), false, name);
        if (reason >= 0) assert.equal(bus.disconnects_invalid[reason], 1, name);
        if (bus_reason >= 0) assert.equal(bus.disconnects_bus[bus_reason], 1, name);
        assert.equal(engine.closed, 1, name);
        assert.equal(owner.messages.length, 1, name);
        pool.assert_no_leaks();
    }
});

function oversized(): Uint8Array {
    const bytes = message_make(0, 1);
    const view = new HeaderView().attach(bytes, 0);
    view.size = 2 * 1024 * 1024;
    seal_header_only(view);
    return bytes;
}

function seal_header_only(view: HeaderView): void {
    // Re-seal the header checksum only: the body is absent on purpose.
    const { checksum } = require('../lib/vsr/checksum') as typeof import('../lib/vsr/checksum');
    checksum(view.bytes, 16, 240, view.bytes, 0);
}

// Real sockets on every engine.

function engines_available(): EngineKind[] {
    const kinds: EngineKind[] = ['libuv'];
    try {
        const arena = new Arena(4096);
        create_engine('io_uring', { arena, entries: 8 }).destroy();
        kinds.push('io_uring');
    } catch {
        // io_uring is unavailable here (kernel, seccomp, or the addon): libuv only.
    }
    return kinds;
}

class Echo implements MessageBusOwner {
    bus!: MessageBus;
    on_message(connection: number, message: number): void {
        this.bus.send(connection, message);
    }
}

type ClientKind = 'valid' | 'garbage' | 'cluster' | 'command' | 'mid';

/** Lets every client connect before any sends, so all connections are open at once. */
class Barrier {
    private arrived = 0;
    private release!: () => void;
    readonly wait = new Promise<void>((resolve) => { this.release = resolve; });
    constructor(private readonly count: number) {}
    arrive(): void {
        this.arrived += 1;
        if (this.arrived === this.count) this.release();
    }
}

function client_run(port: number, kind: ClientKind, seed: number,
    barrier: Barrier): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        const chunks: Buffer[] = [];
        let expected = Buffer.alloc(0);
        socket.on('connect', () => barrier.arrive());
        void barrier.wait.then(() => {
            if (kind === 'valid') {
                const parts = [message_make(0, seed), message_make(seed % 3000, seed),
                    message_make(40000 + seed, seed), message_make(7, seed)];
                expected = Buffer.from(concat(parts));
                // Split the stream at a seed-dependent point: coalesced and partial messages.
                const split = (seed * 7919) % expected.length;
                socket.write(expected.subarray(0, split));
                setTimeout(() => socket.write(expected.subarray(split)), seed % 5);
            } else if (kind === 'garbage') {
                socket.write(Buffer.alloc(512, seed & 255));
            } else if (kind === 'cluster') {
                socket.write(message_make(0, seed, 99n));
            } else if (kind === 'command') {
                socket.write(message_make(0, seed, 0n, 99));
            } else {
                socket.end(message_make(500, seed).subarray(0, 300));
            }
        });
        socket.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            if (kind === 'valid' && Buffer.concat(chunks).length >= expected.length) {
                resolve(Buffer.concat(chunks).equals(expected));
                socket.destroy();
            }
        });
        socket.on('error', () => {});
        socket.on('close', () => resolve(kind !== 'valid'));
    });
}

for (const kind of engines_available()) {
    test(`message bus (${kind}): 200 concurrent connections, valid echoed, invalid closed`,
        async () => {
            const message_size_max = 64 * 1024;
            const pool_count = 150; // Fewer than the connections: backpressure is exercised.
            const arena = new Arena(pool_count * message_size_max + 4096);
            const engine = create_engine(kind, { arena, entries: 2048 });
            const pool = new MessagePool(arena, pool_count, message_size_max);
            arena.seal();
            const owner = new Echo();
            const bus = new MessageBus({
                engine, pool, validator: new HeaderValidator(cluster), owner, time,
                random: random_zero, connections_max: 256, send_queue_max: 8,
            });
            owner.bus = bus;
            engine.start();
            const port = bus.listen('127.0.0.1', 0, 512);
            const kinds: ClientKind[] = ['valid', 'valid', 'garbage', 'valid', 'cluster',
                'command', 'valid', 'mid'];
            const runs: Promise<boolean>[] = [];
            const barrier = new Barrier(200);
            for (let index = 0; index < 200; index++) {
                runs.push(client_run(port, kinds[index % kinds.length]!, index + 1, barrier));
            }
            const results = await Promise.all(runs);
            assert.ok(results.every((ok) => ok), 'every valid client got its echo, byte for byte');
            await until(() => bus.connections_open === 0);
            assert.equal(bus.messages_received, 4 * 100);
            assert.equal(bus.messages_sent, 4 * 100);
            assert.equal(bus.disconnects_invalid[Reason.checksum_invalid], 25);
            assert.equal(bus.disconnects_invalid[Reason.cluster_mismatch], 25);
            assert.equal(bus.disconnects_invalid[Reason.command_unknown], 25);
            assert.equal(bus.disconnects_bus[BusReason.peer_closed_mid_message], 25);
            assert.equal(bus.disconnects_bus[BusReason.peer_closed], 100);
            assert.ok(pool.used_max <= pool_count);
            assert.ok(bus.backpressure_pauses > 0, 'more connections than pool messages');
            console.log(`${kind}: pool used_max ${pool.used_max}/${pool_count}, ` +
                `backpressure pauses ${bus.backpressure_pauses}`);
            bus.shutdown();
            await until(() => bus.idle);
            pool.assert_no_leaks();
            await until(() => engine.in_flight === 0);
            engine.destroy();
        });

    test(`message bus (${kind}): connect retries with backoff, then echoes bus to bus`,
        async () => {
            const arena = new Arena(16 * 8192 + 4096);
            const engine = create_engine(kind, { arena, entries: 64 });
            const server_pool = new MessagePool(arena, 8, 8192);
            const client_pool = new MessagePool(arena, 8, 8192);
            arena.seal();
            const echo = new Echo();
            const server = new MessageBus({
                engine, pool: server_pool, validator: new HeaderValidator(cluster), owner: echo,
                time, random: random_zero, connections_max: 4, send_queue_max: 4,
            });
            echo.bus = server;
            const recorder = new Recorder(client_pool);
            const client = new MessageBus({
                engine, pool: client_pool, validator: new HeaderValidator(cluster),
                owner: recorder, time, random: { u32: () => 7 }, connections_max: 2,
                send_queue_max: 4, backoff_min_ms: 5, backoff_max_ms: 40,
            });
            engine.start();
            const port = await free_port();
            const connection = client.connect('127.0.0.1', port);
            assert.equal(connection, 0);
            // Queue a message before the connection exists; it goes out once connected.
            const message = client_pool.acquire();
            client_pool.buffers[message]!.set(message_make(123, 9));
            assert.ok(client.send(connection, message));
            client_pool.unref(message);
            await until(() => client.disconnects_bus[BusReason.connect_failed] >= 2);
            assert.equal(server.listen('127.0.0.1', port), port);
            await until(() => recorder.messages.length === 1);
            assert.deepEqual(recorder.messages[0], message_make(123, 9));
            client.shutdown();
            server.shutdown();
            await until(() => client.idle && server.idle);
            server_pool.assert_no_leaks();
            client_pool.assert_no_leaks();
            await until(() => engine.in_flight === 0);
            engine.destroy();
        });
}

async function until(condition: () => boolean): Promise<void> {
    for (let turn = 0; turn < 1000 && !condition(); turn++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(condition(), 'condition not reached within 10 s');
}

function free_port(): Promise<number> {
    return new Promise((resolve) => {
        const server = net.createServer();
        server.listen(0, '127.0.0.1', () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

void os;
