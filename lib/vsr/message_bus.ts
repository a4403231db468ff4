// MessageBus: framed messages over TCP on the Engine. A fixed connection table (no allocation
// after startup); per connection one receive buffer (a pool message) into which the byte stream is
// parsed in place, and a bounded queue of pool messages to send.
//
// Receiving: bytes are received at the end of what the buffer already holds, so a message that
// arrives in pieces is completed where it lies. A complete message is handed to the owner as a
// pool message that starts at offset 0 of its buffer: when it is alone at the buffer start, the
// buffer itself is handed over (no copy); otherwise the smaller of (the message, the bytes after
// it) is copied into a fresh buffer, which bounds copying by the bytes received. When no pool
// message is free the connection stops receiving (backpressure) until one is released.
//
// Bad peers (garbage, wrong cluster, oversized size, unknown command, a close mid-message) are
// disconnected and counted by reason; validation itself is injected (`MessageValidator`), so the
// bus knows only the frame: 256 header bytes whose `size` field (u32 at offset 96,
// wire-protocol.md §2) is the total message length.
import assert from 'node:assert/strict';
import os from 'node:os';

import type { Engine, IoCompletionTarget } from '../io/engine';
import type { MessagePool, MessagePoolListener } from './message_pool';

export const header_size = 256;
/** Offset of the u32 `size` field in the header (wire-protocol.md §2). */
export const header_size_field_offset = 96;

const errno_cancelled = os.constants.errno.ECANCELED;

/** Header and message checks, with 0 meaning acceptable; HeaderValidator fits this shape. */
export interface MessageValidator {
    /** Checks the header at bytes[offset], of which `available` bytes have arrived. */
    header(bytes: Uint8Array, offset: number, available: number): number;
    /** Checks the whole message (header and body) at bytes[offset]. */
    message(bytes: Uint8Array, offset: number, available: number): number;
}

export interface Time {
    monotonic_ns(): number;
}

export interface Random {
    /** A uniformly random unsigned 32-bit integer. */
    u32(): number;
}

/** The owner of the bus: receives every valid message, and hears of closed connections. */
export interface MessageBusOwner {
    /** The bus holds a reference only during the call; ref (or send) the message to keep it. */
    on_message(connection: number, message: number): void;
    on_close?(connection: number): void;
}

/** Disconnect reasons of the bus itself; validator reasons are counted separately. */
export const BusReason = {
    peer_closed: 0,
    peer_closed_mid_message: 1,
    recv_error: 2,
    send_error: 3,
    send_queue_full: 4,
    connection_table_full: 5,
    closed_by_owner: 6,
    connect_failed: 7,
    /** A valid size field larger than this bus's buffers (message_size_max is configurable). */
    message_too_large: 8,
} as const;
export const bus_reason_count = 9;
/** Validator reason codes counted (larger codes share the last counter). */
export const validator_reason_count = 64;

export interface MessageBusOptions {
    engine: Engine;
    pool: MessagePool;
    validator: MessageValidator;
    owner: MessageBusOwner;
    time: Time;
    random: Random;
    connections_max: number;
    send_queue_max: number;
    backoff_min_ms?: number;
    backoff_max_ms?: number;
}

const state_free = 0;
const state_connecting = 1;
const state_connected = 2;
const state_closing = 3;
const state_backoff = 4;

// Tags: connection * tag_stride + operation, so one integer routes a completion.
const tag_stride = 8;
const op_recv = 0;
const op_send = 1;
const op_connect = 2;
const op_close = 3;
const op_timeout = 4;
const op_accept = 5;

class Connection {
    state = state_free;
    fd = -1;
    /** Whether we dialled out (and so reconnect) rather than accepted. */
    outgoing = false;
    host = '';
    port = 0;
    attempt = 0;
    connected_ns = 0;
    /** Operations submitted whose completion has not come back; the slot waits for zero. */
    in_flight = 0;
    recv_pending = false;
    send_pending = false;
    connect_pending = false;
    timeout_pending = false;
    /** Set when the receiver is paused for want of a pool message. */
    waiting = false;
    /** Receive buffer (pool message) and its window: the current message starts at recv_start. */
    recv_message = -1;
    recv_start = 0;
    recv_end = 0;
    /** Size of the message at recv_start once its header was validated, else 0. */
    recv_size = 0;
    readonly send_queue: Int32Array;
    send_head = 0;
    send_count = 0;
    /** Bytes of the head message already sent. */
    send_offset = 0;

    constructor(send_queue_max: number) {
        this.send_queue = new Int32Array(send_queue_max);
    }
}

export class MessageBus implements IoCompletionTarget, MessagePoolListener {
    readonly engine: Engine;
    readonly pool: MessagePool;
    readonly connections_max: number;
    /** Disconnects by validator reason code. */
    readonly disconnects_invalid = new Uint32Array(validator_reason_count);
    /** Disconnects by BusReason. */
    readonly disconnects_bus = new Uint32Array(bus_reason_count);
    messages_received = 0;
    messages_sent = 0;
    /** How often a receiver paused because the pool was empty. */
    backpressure_pauses = 0;

    private readonly validator: MessageValidator;
    private readonly owner: MessageBusOwner;
    private readonly time: Time;
    private readonly random: Random;
    private readonly backoff_min_ms: number;
    private readonly backoff_max_ms: number;
    private readonly target: number;
    private readonly table: Connection[] = [];
    private readonly bytes: Uint8Array;
    private listen_fd = -1;
    private accept_pending = false;
    private accept_tag: number;
    /** Connections paused for want of a pool message, resumed in order. */
    private readonly waiters: Int32Array;
    private waiters_head = 0;
    private waiters_count = 0;
    private resuming = false;

    constructor(options: MessageBusOptions) {
        assert(Number.isInteger(options.connections_max) && options.connections_max > 0);
        assert(Number.isInteger(options.send_queue_max) && options.send_queue_max > 0);
        assert(options.pool.arena === options.engine.arena, 'pool must live in the engine arena');
        this.engine = options.engine;
        this.pool = options.pool;
        this.validator = options.validator;
        this.owner = options.owner;
        this.time = options.time;
        this.random = options.random;
        this.connections_max = options.connections_max;
        this.backoff_min_ms = options.backoff_min_ms ?? 50;
        this.backoff_max_ms = options.backoff_max_ms ?? 1000;
        assert(this.backoff_min_ms > 0 && this.backoff_min_ms <= this.backoff_max_ms);
        for (let index = 0; index < options.connections_max; index++) {
            this.table.push(new Connection(options.send_queue_max));
        }
        this.waiters = new Int32Array(options.connections_max);
        this.accept_tag = options.connections_max * tag_stride + op_accept;
        this.bytes = options.pool.bytes;
        this.target = this.engine.target_register(this);
        this.pool.listener_set(this);
    }

    /** Listens on host:port (0 picks a port) and starts accepting; returns the port. */
    listen(host: string, port: number, backlog = 128): number {
        assert(this.listen_fd === -1);
        this.listen_fd = this.engine.socket_listen(host, port, backlog);
        this.accept_next();
        return this.engine.socket_local_port(this.listen_fd);
    }

    /** Dials host:port, reconnecting with backoff until closed; returns the connection, or -1. */
    connect(host: string, port: number): number {
        const index = this.slot_acquire();
        if (index === -1) return -1;
        const connection = this.table[index]!;
        connection.outgoing = true;
        connection.host = host;
        connection.port = port;
        connection.attempt = 0;
        this.dial(index);
        return index;
    }

    /** Whether the connection is open and can take messages. */
    connected(connection: number): boolean {
        return this.table[connection]!.state === state_connected;
    }

    state_name(connection: number): string {
        return ['free', 'connecting', 'connected', 'closing', 'backoff'][
            this.table[connection]!.state]!;
    }

    get connections_open(): number {
        let count = 0;
        for (const connection of this.table) if (connection.state !== state_free) count += 1;
        return count;
    }

    /**
     * Queues a pool message (its size field gives the length) to a connection, taking a
     * reference. Returns false when the connection is not open or its queue is full; a full
     * queue means the peer does not keep up, so it is disconnected.
     */
    send(index: number, message: number): boolean {
        const connection = this.table[index]!;
        if (connection.state !== state_connected && connection.state !== state_connecting &&
            connection.state !== state_backoff) {
            return false;
        }
        if (connection.send_count === connection.send_queue.length) {
            if (connection.state === state_connected) {
                this.terminate(index, -1, BusReason.send_queue_full);
            }
            return false;
        }
        const size = this.message_size(message);
        assert(size >= header_size && size <= this.pool.message_size_max, 'send: bad size');
        this.pool.ref(message);
        const tail = (connection.send_head + connection.send_count) % connection.send_queue.length;
        connection.send_queue[tail] = message;
        connection.send_count += 1;
        if (connection.state === state_connected) this.send_next(index);
        return true;
    }

    /** Closes a connection for good (no reconnect). */
    close(index: number): void {
        const connection = this.table[index]!;
        connection.outgoing = false;
        if (connection.state === state_closing || connection.state === state_free) return;
        this.terminate(index, -1, BusReason.closed_by_owner);
    }

    /** Closes the listener and every connection; completions drain afterwards. */
    shutdown(): void {
        if (this.listen_fd !== -1) {
            if (this.accept_pending) this.engine.cancel(this.target, this.accept_tag);
            this.engine.close(this.target, this.accept_tag + tag_stride, this.listen_fd);
            this.listen_fd = -1;
        }
        for (let index = 0; index < this.connections_max; index++) this.close(index);
    }

    /** Whether every connection slot is free and no accept is pending (shutdown finished). */
    get idle(): boolean {
        return !this.accept_pending && this.connections_open === 0;
    }

    message_size(message: number): number {
        const offset = this.pool.offset(message) + header_size_field_offset;
        const bytes = this.bytes;
        return (bytes[offset]! | bytes[offset + 1]! << 8 | bytes[offset + 2]! << 16 |
            bytes[offset + 3]! << 24) >>> 0;
    }

    io_complete(tag: number, result: number): void {
        if (tag >= this.connections_max * tag_stride) return this.on_listener(tag, result);
        const index = Math.floor(tag / tag_stride);
        const connection = this.table[index]!;
        assert(connection.in_flight > 0);
        connection.in_flight -= 1;
        switch (tag % tag_stride) {
            case op_recv: this.on_recv(index, result); break;
            case op_send: this.on_send(index, result); break;
            case op_connect: this.on_connect(index, result); break;
            case op_timeout: this.on_timeout(index, result); break;
            case op_close: break;
            default: assert.fail('message bus: unknown operation tag');
        }
        this.release_if_drained(index);
    }

    message_available(): void {
        // Resuming from inside a delivery would re-enter the parser; the outer loop resumes.
        if (this.resuming) return;
        this.resuming = true;
        // Bounded by the waiters present now: a resumed connection that pauses again queues
        // behind them and waits for the next release.
        const count = this.waiters_count;
        for (let pass = 0; pass < count && this.waiters_count > 0 && this.pool.free > 0; pass++) {
            const index = this.waiters[this.waiters_head]!;
            this.waiters_head = (this.waiters_head + 1) % this.waiters.length;
            this.waiters_count -= 1;
            const connection = this.table[index]!;
            assert(connection.waiting);
            connection.waiting = false;
            if (connection.state === state_connected) this.receive_continue(index);
        }
        this.resuming = false;
    }

    // Accepting.

    private accept_next(): void {
        assert(!this.accept_pending && this.listen_fd !== -1);
        this.accept_pending = true;
        this.engine.socket_accept(this.target, this.accept_tag, this.listen_fd);
    }

    private on_listener(tag: number, result: number): void {
        if (tag !== this.accept_tag) return; // A listener or rejected-socket close.
        this.accept_pending = false;
        if (result < 0) {
            if (result !== -errno_cancelled && this.listen_fd !== -1) this.accept_next();
            return;
        }
        if (this.listen_fd === -1) {
            this.engine.close(this.target, this.accept_tag + tag_stride, result);
            return;
        }
        const index = this.slot_acquire();
        if (index === -1) {
            this.disconnects_bus[BusReason.connection_table_full] += 1;
            this.engine.close(this.target, this.accept_tag + tag_stride, result);
        } else {
            const connection = this.table[index]!;
            connection.fd = result;
            this.open(index);
        }
        this.accept_next();
    }

    // Connecting with exponential backoff and jitter.

    private dial(index: number): void {
        const connection = this.table[index]!;
        connection.state = state_connecting;
        connection.fd = this.engine.socket_create();
        connection.connect_pending = true;
        connection.in_flight += 1;
        this.engine.socket_connect(this.target, index * tag_stride + op_connect, connection.fd,
            connection.host, connection.port);
    }

    private on_connect(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.connect_pending = false;
        if (connection.state !== state_connecting) return;
        if (result < 0) {
            this.disconnects_bus[BusReason.connect_failed] += 1;
            this.retry(index);
            return;
        }
        this.open(index);
    }

    /** Closes the failed socket and waits a jittered, exponentially growing delay. */
    private retry(index: number): void {
        const connection = this.table[index]!;
        connection.in_flight += 1;
        this.engine.close(this.target, index * tag_stride + op_close, connection.fd);
        connection.fd = -1;
        connection.state = state_backoff;
        const ceiling = Math.min(this.backoff_max_ms,
            this.backoff_min_ms * 2 ** Math.min(connection.attempt, 20));
        connection.attempt += 1;
        const delay_ms = this.backoff_min_ms +
            this.random.u32() % (ceiling - this.backoff_min_ms + 1);
        connection.timeout_pending = true;
        connection.in_flight += 1;
        this.engine.timeout(this.target, index * tag_stride + op_timeout, delay_ms);
    }

    private on_timeout(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.timeout_pending = false;
        if (result < 0 || connection.state !== state_backoff) return;
        this.dial(index);
    }

    /** A socket is up (accepted or dialled): start receiving and flush queued sends. */
    private open(index: number): void {
        const connection = this.table[index]!;
        connection.state = state_connected;
        connection.connected_ns = this.time.monotonic_ns();
        connection.recv_start = 0;
        connection.recv_end = 0;
        connection.recv_size = 0;
        assert(connection.recv_message === -1);
        this.receive_continue(index);
        if (connection.send_count > 0) this.send_next(index);
    }

    // Receiving and parsing in place.

    /** Submits a recv into the free tail of the receive buffer, acquiring one if needed. */
    private receive_continue(index: number): void {
        const connection = this.table[index]!;
        assert(connection.state === state_connected && !connection.recv_pending);
        if (connection.recv_message !== -1) {
            if (!this.parse(index)) return;
            assert(connection.state === state_connected && !connection.waiting);
        }
        if (connection.recv_message === -1) {
            // The last buffer went to the owner whole (or none was taken yet).
            const message = this.pool.acquire();
            if (message === -1) return this.wait_for_message(index);
            connection.recv_message = message;
            connection.recv_start = 0;
            connection.recv_end = 0;
        }
        if (connection.recv_start > 0 && connection.recv_start === connection.recv_end) {
            connection.recv_start = 0;
            connection.recv_end = 0;
        }
        this.compact_if_needed(connection);
        const free = this.pool.message_size_max - connection.recv_end;
        assert(free > 0);
        connection.recv_pending = true;
        connection.in_flight += 1;
        this.engine.socket_recv(this.target, index * tag_stride + op_recv, connection.fd,
            this.pool.offset(connection.recv_message) + connection.recv_end, free);
    }

    private on_recv(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.recv_pending = false;
        if (connection.state !== state_connected) return;
        if (result <= 0) {
            const partial = connection.recv_end > connection.recv_start;
            const reason = result < 0 ? BusReason.recv_error
                : partial ? BusReason.peer_closed_mid_message : BusReason.peer_closed;
            this.terminate(index, -1, reason);
            return;
        }
        connection.recv_end += result;
        assert(connection.recv_end <= this.pool.message_size_max);
        this.receive_continue(index);
    }

    /**
     * Delivers every complete message in the buffer. Returns false when the connection was
     * closed (bad input) or paused (no pool message for a copy).
     */
    private parse(index: number): boolean {
        const connection = this.table[index]!;
        // Each pass consumes one message or stops; messages are at least 256 bytes.
        for (let pass = 0; pass <= this.pool.message_size_max / header_size; pass++) {
            if (connection.recv_message === -1) return true;
            const available = connection.recv_end - connection.recv_start;
            if (available < header_size) return true;
            const base = this.pool.offset(connection.recv_message) + connection.recv_start;
            if (connection.recv_size === 0) {
                const reason = this.validator.header(this.bytes, base, available);
                if (reason !== 0) return this.terminate(index, reason, -1);
                const size = this.message_size_at(base);
                if (size < header_size || size > this.pool.message_size_max) {
                    return this.terminate(index, -1, BusReason.message_too_large);
                }
                connection.recv_size = size;
            }
            if (available < connection.recv_size) return true;
            const reason = this.validator.message(this.bytes, base, available);
            if (reason !== 0) return this.terminate(index, reason, -1);
            if (!this.deliver(index)) return false;
            if (connection.state !== state_connected) return false;
        }
        assert.fail('message bus: parse loop bound exceeded');
    }

    /** Hands the complete message at recv_start to the owner; false when paused. */
    private deliver(index: number): boolean {
        const connection = this.table[index]!;
        const size = connection.recv_size;
        const remaining = connection.recv_end - connection.recv_start - size;
        const buffer = connection.recv_message;
        let message: number;
        if (connection.recv_start === 0 && remaining === 0) {
            // The whole buffer is this message: hand it over and receive into a fresh one later.
            message = buffer;
            connection.recv_message = -1;
            connection.recv_start = 0;
            connection.recv_end = 0;
        } else {
            const fresh = this.pool.acquire();
            if (fresh === -1) {
                this.wait_for_message(index);
                return false;
            }
            const source = this.pool.offset(buffer);
            const target = this.pool.offset(fresh);
            if (connection.recv_start === 0 && remaining < size) {
                // Move the (shorter) trailing bytes out; the message keeps its buffer.
                this.bytes.copyWithin(target, source + size, source + size + remaining);
                message = buffer;
                connection.recv_message = fresh;
                connection.recv_start = 0;
                connection.recv_end = remaining;
            } else {
                const start = source + connection.recv_start;
                this.bytes.copyWithin(target, start, start + size);
                message = fresh;
                connection.recv_start += size;
            }
        }
        connection.recv_size = 0;
        this.messages_received += 1;
        const resuming = this.resuming;
        this.resuming = true;
        this.owner.on_message(index, message);
        this.pool.unref(message);
        this.resuming = resuming;
        if (!resuming && this.waiters_count > 0) this.message_available();
        return true;
    }

    /** Moves a partial message to the buffer start when it cannot complete where it lies. */
    private compact_if_needed(connection: Connection): void {
        if (connection.recv_start === 0) return;
        const needed = connection.recv_size === 0 ? header_size : connection.recv_size;
        if (connection.recv_start + needed <= this.pool.message_size_max) return;
        const base = this.pool.offset(connection.recv_message);
        this.bytes.copyWithin(base, base + connection.recv_start, base + connection.recv_end);
        connection.recv_end -= connection.recv_start;
        connection.recv_start = 0;
    }

    private wait_for_message(index: number): void {
        const connection = this.table[index]!;
        assert(!connection.waiting && this.waiters_count < this.waiters.length);
        connection.waiting = true;
        this.backpressure_pauses += 1;
        this.waiters[(this.waiters_head + this.waiters_count) % this.waiters.length] = index;
        this.waiters_count += 1;
    }

    private message_size_at(offset: number): number {
        const bytes = this.bytes;
        const at = offset + header_size_field_offset;
        return (bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 |
            bytes[at + 3]! << 24) >>> 0;
    }

    // Sending.

    private send_next(index: number): void {
        const connection = this.table[index]!;
        if (connection.send_pending || connection.send_count === 0) return;
        const message = connection.send_queue[connection.send_head]!;
        const size = this.message_size(message);
        assert(connection.send_offset < size);
        connection.send_pending = true;
        connection.in_flight += 1;
        this.engine.socket_send(this.target, index * tag_stride + op_send, connection.fd,
            this.pool.offset(message) + connection.send_offset, size - connection.send_offset);
    }

    private on_send(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.send_pending = false;
        if (connection.state !== state_connected) return;
        if (result < 0) {
            this.terminate(index, -1, BusReason.send_error);
            return;
        }
        const message = connection.send_queue[connection.send_head]!;
        connection.send_offset += result;
        if (connection.send_offset === this.message_size(message)) {
            connection.send_offset = 0;
            connection.send_head = (connection.send_head + 1) % connection.send_queue.length;
            connection.send_count -= 1;
            this.messages_sent += 1;
            this.pool.unref(message);
        }
        this.send_next(index);
    }

    // Closing.

    /**
     * Counts the reason (a validator code, or a BusReason when `validator_reason` is -1), cancels
     * what is in flight and closes the socket. The slot is freed once every completion is back.
     * Returns false so that the parser can `return this.terminate(...)`.
     */
    private terminate(index: number, validator_reason: number, bus_reason: number): boolean {
        const connection = this.table[index]!;
        assert(connection.state !== state_free && connection.state !== state_closing);
        if (validator_reason >= 0) {
            this.disconnects_invalid[Math.min(validator_reason, validator_reason_count - 1)] += 1;
        } else {
            this.disconnects_bus[bus_reason] += 1;
        }
        const reconnect = connection.outgoing && bus_reason !== BusReason.closed_by_owner;
        const tag = index * tag_stride;
        if (connection.recv_pending) this.engine.cancel(this.target, tag + op_recv);
        if (connection.send_pending) this.engine.cancel(this.target, tag + op_send);
        if (connection.connect_pending) this.engine.cancel(this.target, tag + op_connect);
        if (connection.timeout_pending) this.engine.cancel(this.target, tag + op_timeout);
        if (connection.fd !== -1) {
            connection.in_flight += 1;
            this.engine.close(this.target, tag + op_close, connection.fd);
            connection.fd = -1;
        }
        this.receive_release(connection);
        connection.send_offset = 0; // A reconnect resends the head message whole.
        if (reconnect) {
            // Queued messages wait for the next connection; backoff starts over the dial.
            connection.state = state_backoff;
            connection.in_flight += 1;
            connection.timeout_pending = true;
            this.engine.timeout(this.target, tag + op_timeout, this.backoff_min_ms);
            return false;
        }
        connection.state = state_closing;
        this.send_queue_release(connection);
        this.release_if_drained(index);
        return false;
    }

    private receive_release(connection: Connection): void {
        if (connection.recv_message !== -1) this.pool.unref(connection.recv_message);
        connection.recv_message = -1;
        connection.recv_start = 0;
        connection.recv_end = 0;
        connection.recv_size = 0;
        if (connection.waiting) this.waiters_remove(connection);
    }

    /** Drops a closed connection from the waiters (a linear scan: closing is rare). */
    private waiters_remove(connection: Connection): void {
        const length = this.waiters.length;
        let kept = 0;
        for (let pass = 0; pass < this.waiters_count; pass++) {
            const index = this.waiters[(this.waiters_head + pass) % length]!;
            if (this.table[index] === connection) continue;
            this.waiters[(this.waiters_head + kept) % length] = index;
            kept += 1;
        }
        assert(kept === this.waiters_count - 1);
        this.waiters_count = kept;
        connection.waiting = false;
    }

    private send_queue_release(connection: Connection): void {
        while (connection.send_count > 0) {
            this.pool.unref(connection.send_queue[connection.send_head]!);
            connection.send_head = (connection.send_head + 1) % connection.send_queue.length;
            connection.send_count -= 1;
        }
        connection.send_offset = 0;
        connection.send_head = 0;
    }

    private release_if_drained(index: number): void {
        const connection = this.table[index]!;
        if (connection.state !== state_closing || connection.in_flight > 0) return;
        assert(!connection.waiting);
        connection.state = state_free;
        connection.outgoing = false;
        if (this.owner.on_close !== undefined) this.owner.on_close(index);
    }

    private slot_acquire(): number {
        for (let index = 0; index < this.connections_max; index++) {
            const connection = this.table[index]!;
            if (connection.state !== state_free) continue;
            assert(connection.in_flight === 0 && connection.send_count === 0);
            assert(connection.recv_message === -1 && !connection.waiting);
            connection.send_head = 0;
            connection.send_offset = 0;
            connection.state = state_closing; // Claimed; the caller sets the real state.
            return index;
        }
        return -1;
    }
}
