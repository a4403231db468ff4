// MessageBus: in-place framing (every split point, coalesced streams), backpressure when the pool
// is empty, bad peers disconnected by reason, bounded send queues, redial with backoff and jitter,
// the bound on connections, and 200 concurrent loopback connections mixing valid and invalid
// traffic on every available engine. For a replica: the client table (against a model, with
// colliding keys) behind send_to_client, the dialled peers behind send_to_replica and their
// logs, the labelling of accepted peers, and two buses that dial each other over loopback.
// Every real-socket test releases its engine, listeners and sockets in `finally`, so a failure
// reports instead of keeping the process alive.
import assert from 'node:assert/strict';
import net from 'node:net';
import os from 'node:os';
import { test } from 'node:test';

import type { Address } from '../lib/io/address';
import { Arena } from '../lib/io/arena';
import type { Engine, EngineKind, IoCompletionTarget } from '../lib/io/engine';
import { create_engine } from '../lib/io/index';
import { header_init, HeaderView, seal } from '../lib/vsr/header';
import { Command } from '../lib/vsr/header_layout';
import {
    BusReason, MessageBus, type MessageBusOwner, type Random, accept_backoff_ms, backoff_delay_ms,
    listener_closes_max, listener_operations_max, receive_reserve, tag_stride,
} from '../lib/vsr/message_bus';
import { ClientConnections, client_hash } from '../lib/vsr/client_connections';
import { MessagePool } from '../lib/vsr/message_pool';
import { HeaderValidator, Reason } from '../lib/vsr/validate';
import { Prng } from '../lib/prng';

const errno = os.constants.errno;
/** A test that waits on sockets fails after this instead of hanging the run. */
const socket_test_timeout_ms = 30_000;

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

// A deterministic engine: recvs complete only when the test feeds bytes. Several connections
// may each have a recv, a connect and a timeout in flight; the single-connection getters
// (recv_tag, connect_tag, timeout_tag) serve the tests with one of each.
class FakeEngine {
    readonly kind: EngineKind = 'libuv';
    readonly buffers_registered = false;
    target!: IoCompletionTarget;
    /** Pending recvs by connection. */
    recvs = new Map<number, { tag: number; offset: number; length: number }>();
    accept_tag = -1;
    closed = 0;
    sent: number[] = [];
    /** The connection of each send, in order. */
    sent_connections: number[] = [];
    /** When set, sends stay in flight until `complete` is called with their tags. */
    hold_sends = false;
    held_send_tags: number[] = [];
    connect_tags = new Set<number>();
    timeout_tags = new Set<number>();
    timeouts_ms: number[] = [];
    /** When set, recvs stay in flight forever (tests of accepting with many connections). */
    recvs_ignored = false;
    constructor(readonly arena: Arena) {}
    get in_flight(): number { return 0; }
    /** Connection 0's pending recv, or -1. */
    get recv_tag(): number { return this.recvs.get(0)?.tag ?? -1; }
    get connect_tag(): number { return only(this.connect_tags); }
    get timeout_tag(): number { return only(this.timeout_tags); }
    connect_tag_of(connection: number): number { return tag_of(this.connect_tags, connection); }
    timeout_tag_of(connection: number): number { return tag_of(this.timeout_tags, connection); }
    target_register(target: IoCompletionTarget): number { this.target = target; return 0; }
    socket_listen(): number { return 100; }
    socket_local_port(): number { return 1; }
    socket_accept(_target: number, tag: number): void { this.accept_tag = tag; }
    socket_recv(_target: number, tag: number, _fd: number, offset: number, length: number): void {
        if (this.recvs_ignored) return;
        const connection = Math.floor(tag / tag_stride);
        assert.equal(this.recvs.has(connection), false, 'one recv at a time per connection');
        this.recvs.set(connection, { tag, offset, length });
    }
    socket_send(_target: number, tag: number, _fd: number, _offset: number, length: number): void {
        this.sent.push(length);
        this.sent_connections.push(Math.floor(tag / tag_stride));
        if (this.hold_sends) this.held_send_tags.push(tag);
        else this.target.io_complete(tag, length);
    }
    socket_create(): number { return 6; }
    socket_connect(_target: number, tag: number): void {
        assert.equal(this.connect_tags.has(tag), false, 'one connect at a time per connection');
        this.connect_tags.add(tag);
    }
    timeout(_target: number, tag: number, duration_ms: number): void {
        assert.equal(this.timeout_tags.has(tag), false, 'one timeout at a time per tag');
        this.timeout_tags.add(tag);
        this.timeouts_ms.push(duration_ms);
    }
    /** When set, closes stay in flight until `closes_complete` is called. */
    hold_closes = false;
    held_close_tags: number[] = [];
    /** Closes complete at once: the bus must cope with completions inside its own calls. */
    close(_target: number, tag: number): void {
        this.closed += 1;
        if (this.hold_closes) this.held_close_tags.push(tag);
        else this.target.io_complete(tag, 0);
    }
    /** Completes up to `count` held closes, oldest first. */
    closes_complete(count: number): void {
        for (let index = 0; index < count && this.held_close_tags.length > 0; index++) {
            this.target.io_complete(this.held_close_tags.shift()!, 0);
        }
    }
    /** Completes an operation the test held (a send, connect or timeout). */
    complete(tag: number, result: number): void {
        assert.notEqual(tag, -1);
        this.connect_tags.delete(tag);
        this.timeout_tags.delete(tag);
        this.target.io_complete(tag, result);
    }
    cancelled_tags: number[] = [];
    /** Cancels take effect when the test calls `complete_cancelled`, as a kernel's would later. */
    cancel(_target: number, tag: number): void {
        const connection = Math.floor(tag / tag_stride);
        if (this.recvs.get(connection)?.tag === tag) this.recvs.delete(connection);
        this.cancelled_tags.push(tag);
    }
    complete_cancelled(): void {
        const tags = this.cancelled_tags;
        this.cancelled_tags = [];
        this.held_send_tags = this.held_send_tags.filter((tag) => !tags.includes(tag));
        for (const tag of tags) this.complete(tag, -errno.ECANCELED);
    }
    /** Accepts one connection with fd 5, or fails the accept with a negative errno. */
    accept(result = 5): void {
        const tag = this.accept_tag;
        assert.notEqual(tag, -1, 'an accept is pending');
        this.accept_tag = -1;
        this.target.io_complete(tag, result);
    }
    /** Feeds bytes to a connection through as many recvs as they need; returns those not taken. */
    feed(bytes: Uint8Array, connection = 0): number {
        let position = 0;
        for (let recv = this.recvs.get(connection); position < bytes.length && recv !== undefined;
            recv = this.recvs.get(connection)) {
            const take = Math.min(recv.length, bytes.length - position);
            this.arena.bytes.set(bytes.subarray(position, position + take), recv.offset);
            position += take;
            this.recvs.delete(connection);
            this.target.io_complete(recv.tag, take);
        }
        return bytes.length - position;
    }
    /** The peer closes: the connection's pending recv completes with 0. */
    end(connection = 0): void {
        const recv = this.recvs.get(connection);
        assert.ok(recv !== undefined, 'a recv is pending');
        this.recvs.delete(connection);
        this.target.io_complete(recv.tag, 0);
    }
}

/** The connection's tag in a set, or -1. */
function tag_of(tags: Set<number>, connection: number): number {
    for (const tag of tags) if (Math.floor(tag / tag_stride) === connection) return tag;
    return -1;
}

/** The one tag in a set, or -1 when it is empty. */
function only(tags: Set<number>): number {
    assert.ok(tags.size <= 1, 'more than one in flight: name the connection');
    for (const tag of tags) return tag;
    return -1;
}

class Recorder implements MessageBusOwner {
    messages: Uint8Array[] = [];
    held: number[] = [];
    hold = false;
    /** When set, every message is sent back on its connection; the results are recorded. */
    echo: MessageBus | null = null;
    echo_results: boolean[] = [];
    closed: number[] = [];
    /** The connection of each message, in order. */
    connections: number[] = [];
    /** When set, the command part of every header is zeroed, as a replica rewriting it would. */
    rewrite = false;
    constructor(public pool: MessagePool | null = null) {}
    on_message(connection: number, message: number): void {
        const pool = this.pool!;
        const size = new DataView(pool.bytes.buffer, pool.bytes.byteOffset + pool.offset(message))
            .getUint32(96, true);
        this.messages.push(pool.buffers[message]!.slice(0, size));
        this.connections.push(connection);
        if (this.rewrite) pool.buffers[message]!.fill(0, 128, 256);
        if (this.hold) {
            pool.ref(message);
            this.held.push(message);
        }
        if (this.echo !== null) this.echo_results.push(this.echo.send(connection, message));
    }
    on_close(connection: number): void {
        this.closed.push(connection);
    }
}

interface FakeBusOptions {
    random?: Random;
    /** Accept one connection (index 0) before returning. */
    accept?: boolean;
    log?: (line: string) => void;
    connections_max?: number;
    /** A cluster member: our index and every replica's address (the bus dials the others). */
    replica?: number;
    replica_addresses?: Address[];
}

function fake_bus(pool_count: number, message_size_max = 8192, options: FakeBusOptions = {}) {
    const arena = new Arena(pool_count * message_size_max + 4096);
    const engine = new FakeEngine(arena);
    const pool = new MessagePool(arena, pool_count, message_size_max);
    arena.seal();
    const owner = new Recorder(pool);
    const bus = new MessageBus({
        engine: engine as unknown as Engine, pool, validator: new HeaderValidator(cluster), owner,
        time, random: options.random ?? random_zero,
        connections_max: options.connections_max ?? 4, send_queue_max: 4,
        backoff_min_ms: 10, backoff_max_ms: 160, log: options.log,
        replica: options.replica, replica_addresses: options.replica_addresses,
    });
    bus.listen('127.0.0.1', 0);
    if (options.accept !== false) engine.accept();
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
    for (let index = 0; index < stream.length; index++) {
        engine.feed(stream.subarray(index, index + 1));
    }
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

test('message bus: a full send queue closes the peer that does not read, nothing leaks', () => {
    const { engine, pool, owner, bus } = fake_bus(8);
    owner.echo = bus;
    engine.hold_sends = true;
    const parts: Uint8Array[] = [];
    for (let index = 0; index < 5; index++) parts.push(message_make(index * 10, index));
    engine.feed(concat(parts));
    // send_queue_max is 4: four echoes queue (the first in flight), the fifth is refused.
    assert.deepEqual(owner.echo_results, [true, true, true, true, false]);
    assert.equal(engine.held_send_tags.length, 1, 'one send in flight per connection');
    assert.equal(bus.disconnects_bus[BusReason.send_queue_full], 1);
    assert.equal(bus.connected(0), false);
    assert.equal(bus.send(0, 0), false, 'a closing connection takes nothing');
    // The slot stays taken until the send in flight comes back.
    assert.equal(bus.connections_open, 1);
    // Closed while parsing (no recv pending): only the send in flight is cancelled.
    assert.deepEqual(engine.cancelled_tags, engine.held_send_tags);
    engine.complete_cancelled();
    assert.equal(engine.held_send_tags.length, 0);
    assert.equal(bus.connections_open, 0);
    assert.deepEqual(owner.closed, [0]);
    assert.equal(bus.messages_sent, 0);
    pool.assert_no_leaks();
});

test('message bus: backoff delays are jittered within a doubling ceiling', () => {
    const prng = new Prng(11);
    for (let attempt = 0; attempt < 12; attempt++) {
        const ceiling = Math.min(1000, 50 * 2 ** attempt);
        assert.equal(backoff_delay_ms(50, 1000, attempt, 0), 50);
        assert.equal(backoff_delay_ms(50, 1000, attempt, ceiling - 50), ceiling);
        const seen = new Set<number>();
        for (let draw = 0; draw < 200; draw++) {
            const delay_ms = backoff_delay_ms(50, 1000, attempt, prng.u32());
            assert.ok(delay_ms >= 50 && delay_ms <= ceiling, `attempt ${attempt}: ${delay_ms}`);
            seen.add(delay_ms);
        }
        if (attempt >= 2) assert.ok(seen.size > 10, 'delays are spread, not one value');
    }
    assert.throws(() => backoff_delay_ms(0, 10, 0, 0));
});

test('message bus: connect redials with backoff and jitter, and resets after success', () => {
    const seed = 5;
    const { engine, pool, owner, bus } = fake_bus(4, 8192, { random: new Prng(seed),
        accept: false });
    const expected = new Prng(seed);
    const connection = bus.connect('127.0.0.1', 4000);
    assert.equal(connection, 0);
    const queued = pool.acquire();
    pool.buffers[queued]!.set(message_make(20, 3));
    assert.ok(bus.send(connection, queued), 'a dialling connection queues');
    pool.unref(queued);
    for (let attempt = 0; attempt < 8; attempt++) {
        assert.equal(bus.state_name(connection), 'connecting');
        engine.complete(engine.connect_tag, -errno.ECONNREFUSED);
        assert.equal(bus.state_name(connection), 'backoff');
        assert.equal(engine.timeouts_ms.at(-1),
            backoff_delay_ms(10, 160, attempt, expected.u32()), `attempt ${attempt}`);
        engine.complete(engine.timeout_tag, 0);
    }
    assert.equal(bus.disconnects_bus[BusReason.connect_failed], 8);
    assert.ok(new Set(engine.timeouts_ms).size > 3, 'jittered, not a fixed schedule');
    engine.complete(engine.connect_tag, 0);
    assert.ok(bus.connected(connection));
    assert.deepEqual(engine.sent, [256 + 20], 'the queued message went out once connected');
    // The peer goes away: the redial starts over from the shortest delay.
    engine.end();
    assert.equal(bus.disconnects_bus[BusReason.peer_closed], 1);
    assert.equal(bus.state_name(connection), 'backoff');
    assert.equal(engine.timeouts_ms.at(-1), backoff_delay_ms(10, 160, 0, expected.u32()));
    assert.equal(engine.timeouts_ms.at(-1), 10);
    // Closed by its owner while backing off: no redial, the slot frees once the timer is back.
    bus.close(connection);
    assert.equal(bus.state_name(connection), 'closing');
    engine.complete_cancelled();
    assert.equal(bus.state_name(connection), 'free');
    assert.equal(engine.connect_tag, -1, 'no redial after close');
    assert.deepEqual(owner.closed, [connection]);
    pool.assert_no_leaks();
});

test('message bus: accept out of descriptors backs off, tells the operator once, recovers', () => {
    const lines: string[] = [];
    const { engine, bus } = fake_bus(16, 8192, { accept: false, log: (line) => lines.push(line) });
    for (let failure = 0; failure < 5; failure++) {
        engine.accept(-(failure % 2 === 0 ? errno.EMFILE : errno.ENFILE));
        assert.equal(engine.accept_tag, -1, 'no accept while backing off: it would spin');
        assert.notEqual(engine.timeout_tag, -1);
        assert.equal(engine.timeouts_ms.at(-1), accept_backoff_ms);
        engine.complete(engine.timeout_tag, 0);
        assert.notEqual(engine.accept_tag, -1, 'accepting again after the backoff');
    }
    assert.equal(bus.accept_starvations, 5);
    assert.equal(lines.length, 1, 'one line per episode, not one per failure');
    assert.match(lines[0]!, /EMFILE.*ulimit -n.*--connections-max/);
    // A respite of one accept (a descriptor freed by a peer hanging up) is the same episode.
    engine.accept();
    assert.ok(bus.connected(0));
    engine.accept(-errno.EMFILE);
    engine.complete(engine.timeout_tag, 0);
    assert.equal(lines.length, 1, 'still the same episode');
    // It ends after accept_recovered (8) accepts in a row.
    for (let accepted = 1; accepted <= 8; accepted++) {
        engine.accept();
        assert.equal(lines.length, accepted < 8 ? 1 : 2, `after ${accepted} accepts`);
    }
    assert.match(lines[1]!, /accepting connections again/);
    assert.equal(bus.accept_starvations, 6);
    // A failure that is not about descriptors (the peer aborted) re-arms at once, silently.
    engine.accept(-errno.ECONNABORTED);
    assert.notEqual(engine.accept_tag, -1);
    assert.equal(engine.timeout_tag, -1);
    assert.equal(lines.length, 2);
    // Shutdown while backing off cancels the timer and is idle once it is back.
    engine.accept(-errno.EMFILE);
    bus.shutdown();
    engine.complete_cancelled();
    assert.ok(bus.idle);
});

test('message bus: a full table refuses sockets with a bounded number of closes in flight', () => {
    const { engine, bus } = fake_bus(4, 8192, { accept: false });
    engine.recvs_ignored = true;
    for (let index = 0; index < 4; index++) engine.accept();
    assert.equal(bus.connections_open, 4);
    engine.hold_closes = true;
    for (let index = 0; index < listener_closes_max; index++) engine.accept();
    assert.equal(bus.disconnects_bus[BusReason.connection_table_full], listener_closes_max);
    assert.equal(engine.held_close_tags.length, listener_closes_max);
    assert.equal(engine.accept_tag, -1, 'accepting pauses while the closes are at their bound');
    engine.closes_complete(1);
    assert.notEqual(engine.accept_tag, -1, 'one close back: accepting resumes');
    engine.accept();
    assert.equal(engine.held_close_tags.length, listener_closes_max);
    assert.equal(engine.accept_tag, -1);
    engine.closes_complete(listener_closes_max);
    assert.notEqual(engine.accept_tag, -1);
    assert.ok(listener_operations_max >= listener_closes_max + 2);
});

test('message bus: a redial waits for the failed socket\'s close to come back', () => {
    const { engine, bus } = fake_bus(4, 8192, { accept: false });
    const connection = bus.connect('127.0.0.1', 4000);
    engine.hold_closes = true;
    engine.complete(engine.connect_tag, -errno.ECONNREFUSED);
    assert.equal(engine.held_close_tags.length, 1);
    // The backoff timer fires with the close still out: another round, no new socket.
    for (let round = 0; round < 3; round++) {
        engine.complete(engine.timeout_tag, 0);
        assert.equal(engine.connect_tag, -1, 'no dial while the last close is in flight');
        assert.equal(bus.state_name(connection), 'backoff');
    }
    engine.closes_complete(1);
    engine.complete(engine.timeout_tag, 0);
    assert.notEqual(engine.connect_tag, -1, 'the redial goes out once the close is back');
});

// Clients and replicas: the client table behind send_to_client, the dialled peers behind
// send_to_replica, and the labelling of accepted connections.

/** A client id with every limb random (unlike the seeds above). */
function client_id_random(prng: Prng): bigint {
    const id = prng.u128();
    return id === 0n ? 1n : id;
}

function limbs_of(id: bigint): [number, number, number, number] {
    const limb = (index: number): number => Number((id >> BigInt(32 * index)) & 0xffffffffn);
    return [limb(0), limb(1), limb(2), limb(3)];
}

/** A sealed ping_client or request from `client`. */
function client_message(client: bigint, command: number = Command.ping_client): Uint8Array {
    const bytes = message_make(command === Command.request ? 16 : 0, 0, cluster, command);
    const view = new HeaderView().attach(bytes, 0);
    view.set('client', client);
    seal(view);
    return bytes;
}

/** A sealed replica message naming `replica` as its author: a ping, or a prepare. */
function replica_message(replica: number, command: number = Command.ping): Uint8Array {
    const bytes = new Uint8Array(256);
    const view = new HeaderView();
    header_init(view, bytes, 0, command, bytes.length, release);
    view.replica = replica;
    if (command === Command.ping) {
        view.set('ping_timestamp_monotonic', 7n);
    } else {
        assert.equal(command, Command.prepare);
        view.set('operation', 146);
        view.set('op', 2n);
        view.set('commit', 1n);
        view.set('timestamp', 3n);
        view.set('client', 9n);
    }
    seal(view);
    return bytes;
}

/** A reply or an eviction to `client`, in a pool message the caller unrefs. */
function to_client(pool: MessagePool, client: bigint, command: number = Command.reply): number {
    const message = pool.acquire();
    assert.notEqual(message, -1);
    const view = new HeaderView();
    header_init(view, pool.buffers[message]!, 0, command, 256, release);
    view.set('client', client);
    return message;
}

/** send_to_client through a fresh message; the connection it went out on, or -1 if refused. */
function client_send(engine: FakeEngine, pool: MessagePool, bus: MessageBus, client: bigint,
    command: number = Command.reply): number {
    const message = to_client(pool, client, command);
    const sends = engine.sent_connections.length;
    const queued = bus.send_to_client(message);
    pool.unref(message);
    assert.equal(engine.sent_connections.length, sends + (queued ? 1 : 0));
    return queued ? engine.sent_connections.at(-1)! : -1;
}

test('client table: set, get and remove against a model, with colliding and wrapping runs', () => {
    assert.equal(new ClientConnections(1).capacity, 2);
    assert.equal(new ClientConnections(4).capacity, 8);
    assert.equal(new ClientConnections(5).capacity, 16);
    const table = new ClientConnections(48);
    assert.equal(table.capacity, 128);
    const mask = table.capacity - 1;
    // Keys sharing one home slot, and keys whose home is the last slot (their runs wrap to 0).
    const colliding: bigint[] = [];
    const wrapping: bigint[] = [];
    for (let value = 1n; colliding.length < 20 || wrapping.length < 12; value++) {
        const home = client_hash(...limbs_of(value)) & mask;
        if (home === 5 && colliding.length < 20) colliding.push(value);
        if (home === mask && wrapping.length < 12) wrapping.push(value);
    }
    const prng = new Prng(17);
    const keys = [...colliding, ...wrapping];
    for (let index = 0; index < 17; index++) keys.push(client_id_random(prng));
    assert.ok(keys.length > table.entries_max);
    const model = new Map<bigint, number>();
    for (let step = 0; step < 5000; step++) {
        const key = keys[prng.u32() % keys.length]!;
        const connection = prng.u32() % 1000;
        const full = model.size === table.entries_max && !model.has(key);
        if (full || prng.u32() % 3 === 0) {
            assert.equal(table.remove(...limbs_of(key)), model.get(key) ?? -1);
            model.delete(key);
        } else {
            assert.equal(table.set(...limbs_of(key), connection), model.get(key) ?? -1);
            model.set(key, connection);
        }
        table.verify();
        assert.equal(table.count, model.size);
        for (const probe of keys) {
            assert.equal(table.get(...limbs_of(probe)), model.get(probe) ?? -1, `step ${step}`);
        }
    }
    // Full: every key present updates in place; one more is a programming error.
    for (const key of model.keys()) table.remove(...limbs_of(key));
    assert.equal(table.count, 0);
    for (let index = 0; index < table.entries_max; index++) {
        assert.equal(table.set(...limbs_of(keys[index]!), index), -1);
    }
    assert.equal(table.set(...limbs_of(keys[0]!), 99), 0, 'an update fits a full table');
    assert.throws(() => table.set(...limbs_of(keys[table.entries_max]!), 1), /entries_max/);
    table.verify();
    assert.throws(() => new ClientConnections(0));
});

test('message bus: send_to_client goes where its client last sent from, forgotten on close', () => {
    const { engine, pool, owner, bus } = fake_bus(8, 8192, { accept: false });
    engine.accept();
    engine.accept();
    const [alice, bob, carol] = [5n, 1n << 100n | 3n, 0xffffffffffffffffffffffffffffffffn];
    assert.equal(client_send(engine, pool, bus, alice), -1, 'an unknown client');
    // Learned before the owner sees the message: the replica rewrites a request in place.
    owner.rewrite = true;
    engine.feed(client_message(alice), 0);
    assert.equal(bus.clients_count, 1);
    assert.equal(bus.state_name(0), 'connected from a client');
    assert.equal(client_send(engine, pool, bus, alice), 0);
    assert.equal(client_send(engine, pool, bus, alice, Command.eviction), 0);
    assert.equal(client_send(engine, pool, bus, bob), -1);
    // Alice moves to connection 1 (a request this time): replies follow her.
    engine.feed(client_message(alice, Command.request), 1);
    assert.equal(bus.clients_count, 1);
    assert.equal(client_send(engine, pool, bus, alice), 1);
    engine.feed(client_message(bob), 0);
    assert.equal(client_send(engine, pool, bus, bob), 0);
    // A connection holds one client: carol on connection 1 replaces alice there.
    engine.feed(client_message(carol), 1);
    assert.equal(bus.clients_count, 2);
    assert.equal(client_send(engine, pool, bus, alice), -1);
    assert.equal(client_send(engine, pool, bus, carol), 1);
    // Closing forgets; the slot's next owner inherits nothing.
    engine.end(1);
    assert.equal(bus.clients_count, 1);
    assert.equal(client_send(engine, pool, bus, carol), -1);
    engine.accept();
    assert.ok(bus.connected(1));
    assert.equal(bus.state_name(1), 'connected');
    assert.equal(client_send(engine, pool, bus, carol), -1);
    assert.equal(client_send(engine, pool, bus, bob), 0);
    const ping = pool.acquire();
    pool.buffers[ping]!.set(client_message(bob));
    assert.throws(() => bus.send_to_client(ping), /reply or an eviction/);
    pool.unref(ping);
    bus.shutdown();
    pool.assert_no_leaks();
});

test('message bus: many clients move between and close many connections (model check)', () => {
    const connections_max = 64;
    const { engine, pool, bus } = fake_bus(connections_max + 8, 4096,
        { accept: false, connections_max });
    for (let index = 0; index < connections_max; index++) engine.accept();
    const prng = new Prng(23);
    const clients: bigint[] = [];
    for (let index = 0; index < 200; index++) clients.push(client_id_random(prng));
    const connection_of = new Map<bigint, number>();
    const client_of = new Map<number, bigint>();
    for (let step = 0; step < 3000; step++) {
        const connection = prng.u32() % connections_max;
        if (prng.u32() % 16 === 0) {
            // The client at the other end goes away; a new one takes the freed slot.
            engine.end(connection);
            const gone = client_of.get(connection);
            if (gone !== undefined) connection_of.delete(gone);
            client_of.delete(connection);
            engine.accept();
            assert.ok(bus.connected(connection), 'the lowest free slot is the one just freed');
            continue;
        }
        const client = clients[prng.u32() % clients.length]!;
        engine.feed(client_message(client, prng.u32() % 2 === 0 ? Command.request
            : Command.ping_client), connection);
        const before = client_of.get(connection);
        if (before !== undefined) connection_of.delete(before);
        const moved_from = connection_of.get(client);
        if (moved_from !== undefined) client_of.delete(moved_from);
        connection_of.set(client, connection);
        client_of.set(connection, client);
        assert.equal(bus.clients_count, connection_of.size);
        if (step % 100 !== 0) continue;
        for (const id of clients) {
            assert.equal(client_send(engine, pool, bus, id), connection_of.get(id) ?? -1);
        }
    }
    assert.ok(bus.clients_count <= connections_max);
    bus.shutdown();
    engine.complete_cancelled();
    assert.equal(bus.clients_count, 0);
    assert.ok(bus.idle);
    pool.assert_no_leaks();
});

const cluster_addresses: Address[] = [
    { host: '127.0.0.1', port: 3000 }, { host: '127.0.0.1', port: 3001 },
    { host: '::1', port: 3002 },
];

test('message bus: dials every replica; send_to_replica once connected; logs per episode', () => {
    const lines: string[] = [];
    const { engine, pool, bus } = fake_bus(16, 8192, { accept: false, connections_max: 6,
        replica: 1, replica_addresses: cluster_addresses, log: (line) => lines.push(line) });
    assert.equal(bus.replica_count, 3);
    assert.equal(bus.replica_connection(0), 0);
    assert.equal(bus.replica_connection(2), 1);
    assert.throws(() => bus.replica_connection(1), /never dial ourselves/);
    assert.equal(engine.connect_tags.size, 2, 'both peers dialled at construction');
    assert.equal(bus.state_name(0), 'connecting to replica 0');
    assert.equal(bus.replica_of(1), 2);
    const message = pool.acquire();
    pool.buffers[message]!.set(replica_message(1));
    assert.equal(bus.send_to_replica(0, message), false, 'not connected yet');
    assert.throws(() => bus.send_to_replica(1, message), /never sends to itself/);
    assert.throws(() => bus.send_to_replica(3, message));
    // Replica 0 refuses, again and again: one line for the episode.
    for (let attempt = 0; attempt < 4; attempt++) {
        engine.complete(engine.connect_tag_of(0), -errno.ECONNREFUSED);
        assert.equal(bus.state_name(0), 'backoff to replica 0');
        assert.equal(bus.send_to_replica(0, message), false);
        engine.complete(engine.timeout_tag_of(0), 0);
    }
    assert.equal(lines.length, 1);
    assert.match(lines[0]!,
        /cannot reach replica 0 at 127\.0\.0\.1:3000 \(connect: ECONNREFUSED\)/);
    assert.match(lines[0]!, /same --addresses in the same order/);
    engine.complete(engine.connect_tag_of(1), 0);
    assert.match(lines[1]!, /connected to replica 2 at \[::1\]:3002$/);
    assert.ok(bus.send_to_replica(2, message));
    assert.deepEqual(engine.sent_connections, [1]);
    engine.complete(engine.connect_tag_of(0), 0);
    assert.match(lines[2]!, /connected to replica 0 at 127\.0\.0\.1:3000$/);
    assert.ok(bus.send_to_replica(0, message));
    assert.deepEqual(engine.sent_connections, [1, 0]);
    // Replica 2 goes away: one line, quiet redials, a line when it is back.
    engine.end(1);
    assert.match(lines[3]!, /lost the connection to replica 2 at \[::1\]:3002 \(peer closed\)/);
    assert.equal(bus.send_to_replica(2, message), false, 'not held while the peer is down');
    engine.complete(engine.timeout_tag_of(1), 0);
    engine.complete(engine.connect_tag_of(1), -errno.ECONNREFUSED);
    engine.complete(engine.timeout_tag_of(1), 0);
    assert.equal(lines.length, 4);
    engine.complete(engine.connect_tag_of(1), 0);
    assert.match(lines[4]!, /connected to replica 2/);
    assert.equal(lines.length, 5);
    // A full queue drops the message and keeps the connection.
    engine.hold_sends = true;
    for (let index = 0; index < 4; index++) assert.ok(bus.send_to_replica(2, message));
    assert.equal(bus.send_to_replica(2, message), false);
    assert.equal(bus.replica_sends_dropped, 1);
    assert.ok(bus.connected(1));
    pool.unref(message);
    bus.shutdown();
    engine.complete_cancelled();
    assert.ok(bus.idle);
    assert.equal(bus.replica_connection(0), -1);
    assert.equal(bus.replica_connection(2), -1);
    assert.equal(lines.length, 5, 'shutting down is not an episode');
    pool.assert_no_leaks();
});

test('message bus: accepted connections are labelled by the replica commands they send', () => {
    const lines: string[] = [];
    const { engine, pool, owner, bus } = fake_bus(16, 8192, { accept: false,
        connections_max: 8, replica: 0, replica_addresses: cluster_addresses,
        log: (line) => lines.push(line) });
    engine.accept();
    assert.equal(bus.state_name(2), 'connected');
    // A prepare names its author, not necessarily the sender (repair): no label.
    engine.feed(replica_message(1, Command.prepare), 2);
    assert.equal(bus.replica_of(2), -1);
    engine.feed(replica_message(2), 2);
    assert.equal(bus.state_name(2), 'connected from replica 2');
    assert.equal(bus.replica_of(2), 2);
    // A request forwarded by a replica is delivered, but its client is not learned there.
    engine.feed(client_message(11n, Command.request), 2);
    assert.equal(bus.clients_count, 0);
    assert.equal(bus.state_name(2), 'connected from replica 2');
    // A connection first seen as a client's becomes a replica's, and forgets its client.
    engine.accept();
    engine.feed(client_message(12n), 3);
    assert.equal(bus.clients_count, 1);
    engine.feed(replica_message(1), 3);
    assert.equal(bus.state_name(3), 'connected from replica 1');
    assert.equal(bus.clients_count, 0);
    assert.equal(owner.messages.length, 5, 'every message was delivered');
    // Ourselves, or outside the cluster: closed, counted, told once.
    engine.accept();
    engine.feed(replica_message(0), 4);
    assert.equal(bus.connected(4), false);
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /from replica 0, which is us/);
    engine.accept();
    engine.feed(replica_message(5), 4);
    assert.equal(bus.connected(4), false);
    assert.equal(bus.disconnects_bus[BusReason.replica_invalid], 2);
    assert.equal(lines.length, 1);
    assert.equal(owner.messages.length, 5, 'refused messages never reach the owner');
    // A bus in no cluster labels whatever index the sender names.
    const alone = fake_bus(4);
    alone.engine.feed(replica_message(5));
    assert.equal(alone.bus.state_name(0), 'connected from replica 5');
    assert.throws(() => alone.bus.send_to_replica(0, 0), /in no cluster/);
    bus.shutdown();
    engine.complete_cancelled();
    pool.assert_no_leaks();
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
        assert.ok(this.bus.send(connection, message), 'echo queued');
    }
}

/**
 * Everything a real-socket test opens, released in `finally` whether the test passed or not: the
 * client sockets, every bus (listener and connections), then the engine. A failed assertion thus
 * fails the test instead of leaving a listener or a started io_uring poll handle that keeps the
 * process alive.
 */
class Resources {
    readonly sockets: net.Socket[] = [];
    readonly buses: MessageBus[] = [];
    constructor(readonly engine: Engine) {}

    async release(): Promise<void> {
        for (const socket of this.sockets) socket.destroy();
        for (const bus of this.buses) bus.shutdown();
        // Bounded: after a failure some completions may never come; destroy tears them down.
        await settle(() => this.buses.every((bus) => bus.idle) && this.engine.in_flight === 0);
        this.engine.destroy();
    }
}

type ClientKind = 'valid' | 'garbage' | 'cluster' | 'command' | 'mid' | 'oversized' | 'large';

/** Connects at once; sends only when `go` resolves, so every connection is open before traffic. */
function client_run(resources: Resources, port: number, kind: ClientKind, seed: number,
    go: Promise<void>): Promise<boolean> {
    return new Promise((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        resources.sockets.push(socket);
        const chunks: Buffer[] = [];
        let received = 0;
        let expected = Buffer.alloc(0);
        void go.then(() => {
            if (kind === 'valid') {
                const parts = [message_make(0, seed), message_make(seed % 3000, seed),
                    message_make(40000 + seed, seed), message_make(7, seed)];
                expected = Buffer.from(concat(parts));
                // Split the stream at a seed-dependent point: coalesced and partial messages.
                const split = (seed * 7919) % expected.length;
                socket.write(expected.subarray(0, split));
                setTimeout(() => socket.write(expected.subarray(split)), seed % 5);
            } else if (kind === 'garbage') {
                socket.write(Buffer.alloc(512, (seed & 255) | 1));
            } else if (kind === 'cluster') {
                socket.write(message_make(0, seed, 99n));
            } else if (kind === 'command') {
                socket.write(message_make(0, seed, 0n, 99));
            } else if (kind === 'oversized') {
                socket.write(oversized());
            } else if (kind === 'large') {
                socket.write(message_make(70000, seed)); // Valid, but above these buffers.
            } else {
                socket.end(message_make(500, seed).subarray(0, 300));
            }
        });
        socket.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            received += chunk.length;
            if (kind === 'valid' && expected.length > 0 && received >= expected.length) {
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
        { timeout: socket_test_timeout_ms }, async () => {
            const message_size_max = 64 * 1024;
            // Fewer messages than connections: the connections past the pool wait for a buffer
            // (backpressure) and are served as others finish, all within the pool.
            const pool_count = 150;
            const connections = 200;
            const arena = new Arena(pool_count * message_size_max + 4096);
            const engine = create_engine(kind, { arena, entries: 2048 });
            const resources = new Resources(engine);
            try {
                const pool = new MessagePool(arena, pool_count, message_size_max);
                arena.seal();
                const owner = new Echo();
                const bus = new MessageBus({
                    engine, pool, validator: new HeaderValidator(cluster), owner, time,
                    random: random_zero, connections_max: 256, send_queue_max: 8,
                });
                resources.buses.push(bus);
                owner.bus = bus;
                engine.start();
                const port = bus.listen('127.0.0.1', 0, 512);
                const kinds: ClientKind[] = ['valid', 'valid', 'garbage', 'valid', 'cluster',
                    'command', 'valid', 'mid', 'oversized', 'large'];
                let release_traffic!: () => void;
                const go = new Promise<void>((resolve) => { release_traffic = resolve; });
                const runs: Promise<boolean>[] = [];
                for (let index = 0; index < connections; index++) {
                    runs.push(client_run(resources, port, kinds[index % kinds.length]!,
                        index + 1, go));
                }
                await until(() => bus.connections_open === connections);
                // All 200 are open at once; the pool holds receive buffers for all but the
                // reserve, and the rest wait: backpressure, not an allocation or a crash.
                assert.equal(pool.used, pool_count - receive_reserve);
                assert.equal(bus.backpressure_pauses, connections - (pool_count - receive_reserve));
                release_traffic();
                const results = await Promise.all(runs);
                assert.ok(results.every((ok) => ok), 'every valid client got its echo, exactly');
                await until(() => bus.connections_open === 0);
                const per_kind = connections / kinds.length;
                assert.equal(bus.messages_received, 4 * 4 * per_kind);
                assert.equal(bus.messages_sent, 4 * 4 * per_kind);
                // Every echo byte for byte: a valid client's (seed = index + 1) four messages.
                assert.equal(bus.bytes_sent, runs.reduce((sum, _, index) =>
                    kinds[index % kinds.length] !== 'valid' ? sum
                        : sum + 4 * 256 + (index + 1) % 3000 + 40000 + (index + 1) + 7, 0));
                assert.equal(bus.disconnects_invalid[Reason.checksum_invalid], per_kind);
                assert.equal(bus.disconnects_invalid[Reason.cluster_mismatch], per_kind);
                assert.equal(bus.disconnects_invalid[Reason.command_unknown], per_kind);
                assert.equal(bus.disconnects_invalid[Reason.size_above_max], per_kind);
                assert.equal(bus.disconnects_bus[BusReason.message_too_large], per_kind);
                assert.equal(bus.disconnects_bus[BusReason.peer_closed_mid_message], per_kind);
                assert.equal(bus.disconnects_bus[BusReason.peer_closed], 4 * per_kind);
                assert.equal(bus.disconnects_bus[BusReason.connection_table_full], 0);
                assert.ok(arena.is_sealed && pool.used_max <= pool_count, 'memory is the pool');
                bus.shutdown();
                await until(() => bus.idle && engine.in_flight === 0);
                pool.assert_no_leaks();
            } finally {
                await resources.release();
            }
        });

    test(`message bus (${kind}): connections past connections_max are closed and counted`,
        { timeout: socket_test_timeout_ms }, async () => {
            const arena = new Arena(8 * 8192 + 4096);
            const engine = create_engine(kind, { arena, entries: 64 });
            const resources = new Resources(engine);
            try {
                const pool = new MessagePool(arena, 8, 8192);
                arena.seal();
                const owner = new Echo();
                const bus = new MessageBus({
                    engine, pool, validator: new HeaderValidator(cluster), owner, time,
                    random: random_zero, connections_max: 3, send_queue_max: 4,
                });
                resources.buses.push(bus);
                owner.bus = bus;
                engine.start();
                const port = bus.listen('127.0.0.1', 0);
                const closed: boolean[] = [];
                for (let index = 0; index < 5; index++) {
                    const socket = net.connect(port, '127.0.0.1');
                    resources.sockets.push(socket);
                    closed.push(false);
                    socket.on('close', () => { closed[index] = true; });
                    socket.on('error', () => {});
                    await until(() => bus.connections_open +
                        bus.disconnects_bus[BusReason.connection_table_full]! === index + 1);
                }
                assert.equal(bus.connections_open, 3);
                assert.equal(bus.disconnects_bus[BusReason.connection_table_full], 2);
                await until(() => closed[3] === true && closed[4] === true);
                // The three admitted connections are served.
                const echoes = resources.sockets.slice(0, 3).map((socket, index) =>
                    new Promise<Buffer>((resolve) => {
                        socket.once('data', resolve);
                        socket.write(message_make(index * 100, index));
                    }));
                const replies = await Promise.all(echoes);
                for (let index = 0; index < 3; index++) {
                    assert.ok(replies[index]!.equals(message_make(index * 100, index)));
                }
                assert.deepEqual(closed.slice(0, 3), [false, false, false]);
                bus.shutdown();
                await until(() => bus.idle && engine.in_flight === 0);
                pool.assert_no_leaks();
            } finally {
                await resources.release();
            }
        });

    test(`message bus (${kind}): connect retries with backoff, then echoes bus to bus`,
        { timeout: socket_test_timeout_ms }, async () => {
            const arena = new Arena(16 * 8192 + 4096);
            const engine = create_engine(kind, { arena, entries: 64 });
            const resources = new Resources(engine);
            try {
                const server_pool = new MessagePool(arena, 8, 8192);
                const client_pool = new MessagePool(arena, 8, 8192);
                arena.seal();
                const echo = new Echo();
                const server = new MessageBus({
                    engine, pool: server_pool, validator: new HeaderValidator(cluster),
                    owner: echo, time, random: random_zero, connections_max: 4,
                    send_queue_max: 4,
                });
                echo.bus = server;
                const recorder = new Recorder(client_pool);
                const client = new MessageBus({
                    engine, pool: client_pool, validator: new HeaderValidator(cluster),
                    owner: recorder, time, random: new Prng(3), connections_max: 2,
                    send_queue_max: 4, backoff_min_ms: 5, backoff_max_ms: 40,
                });
                resources.buses.push(server, client);
                engine.start();
                const port = await free_port();
                const connection = client.connect('127.0.0.1', port);
                assert.equal(connection, 0);
                // Queue a message before the connection exists; it goes out once connected.
                const message = client_pool.acquire();
                client_pool.buffers[message]!.set(message_make(123, 9));
                assert.ok(client.send(connection, message));
                client_pool.unref(message);
                await until(() => client.disconnects_bus[BusReason.connect_failed]! >= 2);
                assert.equal(server.listen('127.0.0.1', port), port);
                await until(() => recorder.messages.length === 1);
                assert.deepEqual(recorder.messages[0], message_make(123, 9));
                client.shutdown();
                server.shutdown();
                await until(() => client.idle && server.idle && engine.in_flight === 0);
                server_pool.assert_no_leaks();
                client_pool.assert_no_leaks();
            } finally {
                await resources.release();
            }
        });
}

// Two replicas on loopback: each dials the other, and a replica message crosses both ways.
for (const kind of engines_available()) {
    test(`message bus (${kind}): two replicas dial each other and exchange messages`,
        { timeout: socket_test_timeout_ms }, async () => {
            const arena = new Arena(16 * 8192 + 4096);
            const engine = create_engine(kind, { arena, entries: 64 });
            const resources = new Resources(engine);
            try {
                const pools = [new MessagePool(arena, 8, 8192), new MessagePool(arena, 8, 8192)];
                arena.seal();
                const addresses: Address[] = [];
                for (let index = 0; index < 2; index++) {
                    addresses.push({ host: '127.0.0.1', port: await free_port() });
                }
                const lines: string[][] = [[], []];
                const owners = pools.map((pool) => new Recorder(pool));
                const buses = [0, 1].map((replica) => new MessageBus({
                    engine, pool: pools[replica]!, validator: new HeaderValidator(cluster),
                    owner: owners[replica]!, time, random: new Prng(replica + 1),
                    connections_max: 4, send_queue_max: 4, backoff_min_ms: 5,
                    backoff_max_ms: 40, replica, replica_addresses: addresses,
                    log: (line) => lines[replica]!.push(line),
                }));
                resources.buses.push(...buses);
                engine.start();
                // Replica 1 listens late: replica 0's first dials fail, and it says so once.
                buses[0]!.listen('127.0.0.1', addresses[0]!.port);
                await until(() => buses[0]!.disconnects_bus[BusReason.connect_failed]! >= 2);
                buses[1]!.listen('127.0.0.1', addresses[1]!.port);
                await until(() => buses.every((bus, replica) =>
                    bus.connected(bus.replica_connection(1 - replica))));
                for (const replica of [0, 1]) {
                    const pool = pools[replica]!;
                    const message = pool.acquire();
                    pool.buffers[message]!.set(replica_message(replica));
                    assert.ok(buses[replica]!.send_to_replica(1 - replica, message));
                    pool.unref(message);
                }
                await until(() => owners.every((owner) => owner.messages.length === 1));
                for (const replica of [0, 1]) {
                    const bus = buses[replica]!;
                    assert.deepEqual(owners[replica]!.messages[0], replica_message(1 - replica));
                    // It came in on the peer's own connection, not on the one we dialled.
                    const inbound = owners[replica]!.connections[0]!;
                    assert.notEqual(inbound, bus.replica_connection(1 - replica));
                    assert.equal(bus.state_name(inbound), `connected from replica ${1 - replica}`);
                    assert.match(lines[replica]!.at(-1)!,
                        new RegExp(`connected to replica ${1 - replica} at 127\\.0\\.0\\.1:`));
                }
                assert.equal(lines[0]!.filter((line) => /cannot reach/.test(line)).length, 1);
                for (const bus of buses) bus.shutdown();
                await until(() => buses.every((bus) => bus.idle) && engine.in_flight === 0);
                for (const pool of pools) pool.assert_no_leaks();
            } finally {
                await resources.release();
            }
        });
}

/** Polls every 10 ms; returns whether the condition held within 10 s. */
async function settle(condition: () => boolean): Promise<boolean> {
    for (let turn = 0; turn < 1000 && !condition(); turn++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return condition();
}

async function until(condition: () => boolean): Promise<void> {
    assert.ok(await settle(condition), 'condition not reached within 10 s');
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
