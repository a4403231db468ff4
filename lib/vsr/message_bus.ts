// MessageBus: framed messages over TCP on the Engine. A fixed connection table (no allocation
// after startup); per connection one receive buffer (a pool message) into which the byte stream is
// parsed in place, and a bounded queue of pool messages to send.
//
// ## Public API (what an owner such as the replica server relies on)
//
// Setup, at startup: one MessagePool in the engine's arena, then
//     const bus = new MessageBus({ engine, pool, validator, owner, time, random,
//         connections_max, send_queue_max, backoff_min_ms?, backoff_max_ms?, log?,
//         replica?, replica_addresses? });   // in a cluster, dials the other replicas
//     const port = bus.listen(host, port);         // accept clients and peers
//     const connection = bus.connect(host, port);  // dial a peer; redials with backoff + jitter
//
// Connections are named by `connection`, an index in [0, connections_max). Accepted and dialled
// connections share the table; past connections_max an accepted socket is closed at once and
// counted (BusReason.connection_table_full). An index is reused once its connection is closed:
// `owner.on_close(connection)` says when, and the owner must forget the index there (the replica
// drops it from its client sessions). An owner that answers later than the delivery (a reply
// after the WAL write) may also keep `bus.generation(connection)` and send only while it is
// unchanged, which rules out answering the peer that took the slot over.
//
// Receiving: `owner.on_message(connection, message)` is called once per valid message (both
// checksums and every header rule passed the validator). `message` is a pool index; its bytes are
// `pool.buffers[message]` (arena offset `pool.offset(message)`), starting at byte 0, its length is
// the header's size field (`bus.message_size(message)`). The buffer belongs to the owner alone:
// the bus never touches a delivered message again, so the owner may rewrite it in place (the
// replica turns a request into a prepare where it lies). The bus holds one reference only during
// the call and drops it on return: to keep the message, take one with `pool.ref(message)` and
// drop it with `pool.unref(message)` when done.
//
// Sending: `bus.send(connection, message)` queues a sealed pool message (its size field gives the
// length) and takes its own reference until the bytes are sent, so the caller unrefs its own as
// usual and one buffer may be queued to many connections at once (it must not change while
// queued). It returns false, queueing nothing, when the connection is not open (free or closing)
// or its queue (send_queue_max messages) is full; a full queue means the peer does not read, so
// an open connection is then closed (BusReason.send_queue_full). A dialled connection queues
// while connecting or backing off, and its queue survives a reconnect.
//
// A replica's network (lib/vsr/network.ts, ReplicaNetwork): the bus names destinations for it.
// - `send_to_client(message)`: a reply or an eviction goes to the connection its client (the
//   header's `client`) last sent a request or ping_client from. The bus learns client id ->
//   connection from every such message on an accepted connection, in a fixed table
//   (ClientConnections, one entry per connection at most), and forgets it when the connection
//   closes.
// - `send_to_replica(replica, message)`: given `replica` and `replica_addresses`, the bus dials
//   every other replica at construction (one outbound connection per peer, redialled with
//   backoff and jitter) and sends to replica r only over ours to r: false until it is up.
//   Peers' connections to us are receive-only; one is labelled replica r once it sends a
//   replica command naming r as sender (for `state_name`, `replica_of` and logs). A dialled
//   peer that cannot be reached, or drops, is logged once per episode and once when it connects.
//
// Closing: `bus.close(connection)` (no redial), `bus.shutdown()` for everything; the bus is
// `idle` once every slot is free, then the engine's in-flight operations drain.
//
// Memory and backpressure: the pool is the bus's only memory. Each open connection holds one
// receive buffer, and one pool message is kept in reserve for splitting coalesced messages (see
// `receive_reserve`); messages the owner keeps and messages in send queues come on top. Size the
// pool at connections_max + 1 + what the owner keeps to never pause. A smaller pool is valid:
// a connection that finds no buffer stops receiving (the kernel's socket buffer and then TCP flow
// control push back on the peer) and is resumed, in arrival order, as messages return to the pool.
// Running out is never an allocation and never a crash.
//
// Counters: messages_received, messages_sent, bytes_sent, backpressure_pauses,
// disconnects_invalid[reason] (validator reason codes), disconnects_bus[BusReason].
//
// ## How a stream is parsed
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
// docs/wire-protocol.md §2) is the total message length.
import assert from 'node:assert/strict';
import os from 'node:os';

import type { Engine, IoCompletionTarget } from '../io/engine';
import { address_format, ip_family } from '../io/address';
import type { Address } from '../io/address';
import { errno_name } from '../io/errors';
import { ClientConnections } from './client_connections';
import { header_size, replicas_max } from './constants';
import { Command, frame, offsets } from './header_layout';
import type { MessagePool, MessagePoolListener } from './message_pool';
import type { ReplicaNetwork } from './network';
import { Reason } from './validate';

const cluster_mismatch: number = Reason.cluster_mismatch;

export { header_size };
/** Offset of the u32 `size` field in the header (docs/wire-protocol.md §2). */
export const header_size_field_offset = frame.size;

/**
 * Pool messages a connection without a receive buffer leaves free when it takes one. A
 * connection that holds a buffer may need a second one to split coalesced messages; with every
 * buffer held by receivers waiting for that second one, nothing would ever return to the pool.
 * Keeping one in reserve means some receiver can always split, deliver, and so make progress.
 */
export const receive_reserve = 1;

const errno_cancelled = os.constants.errno.ECANCELED;

/** Header and message checks, with 0 meaning acceptable; HeaderValidator fits this shape. */
export interface MessageValidator {
    /** Checks the header at bytes[offset], of which `available` bytes have arrived. */
    header(bytes: Uint8Array, offset: number, available: number): number;
    /** Checks the whole message (header and body) at bytes[offset]. */
    message(bytes: Uint8Array, offset: number, available: number): number;
    /** The cluster id headers must name, for the log line of a peer that names another. */
    readonly cluster_id: bigint;
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
    /**
     * A valid message, at byte 0 of pool buffer `message`, now the owner's to read or rewrite.
     * The bus holds a reference only during the call; ref (or send) the message to keep it.
     */
    on_message(connection: number, message: number): void;
    /** The connection's slot is free: forget the index, which a new connection may reuse. */
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
    /** A replica command naming as its sender ourselves or an index outside the cluster. */
    replica_invalid: 9,
} as const;
export const bus_reason_count = 10;
/** Per BusReason, how an operator's log line names it. */
export const bus_reason_names: readonly string[] = [
    'peer closed', 'peer closed mid-message', 'receive error', 'send error', 'send queue full',
    'connection table full', 'closed by owner', 'connect failed', 'message too large',
    'replica index invalid',
];
assert.equal(bus_reason_names.length, bus_reason_count);

/**
 * Engine operations one connection holds at most: recv, send, close, and a connect or a backoff
 * timeout (cancels take no operation). A redial waits until every earlier operation is back.
 */
export const bus_operations_per_connection = 4;
/** Closes of sockets refused for a full table that may be in flight before accepting pauses. */
export const listener_closes_max = 8;
/** The listener's operations: its accept or its accept backoff timeout, its own close, and the
 * closes of refused sockets. */
export const listener_operations_max = 2 + listener_closes_max;
/** How long accepting pauses after the process or the system ran out of descriptors. */
export const accept_backoff_ms = 100;
/** Accepts in a row that end an episode of descriptor starvation (see accept_recovered_check). */
const accept_recovered = 8;
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
    /** Operator messages (an accept that ran out of descriptors), once per episode. */
    log?: (line: string) => void;
    /**
     * Our index in the cluster; given with replica_addresses. The bus then dials every other
     * replica at construction, for send_to_replica.
     */
    replica?: number;
    /**
     * Every replica's address in index order, ours at [replica] (IP literals: names are
     * resolved once at startup, lib/io/address.ts). Without it the bus is in no cluster.
     */
    replica_addresses?: readonly Address[];
}

const state_free = 0;
const state_connecting = 1;
const state_connected = 2;
const state_closing = 3;
const state_backoff = 4;

/** Tags are connection * tag_stride + operation, so one integer routes a completion (tests'
 * fake engines route by it too). */
export const tag_stride = 8;
const op_recv = 0;
const op_send = 1;
const op_connect = 2;
const op_close = 3;
const op_timeout = 4;
const op_accept = 5;
const op_accept_timeout = 6;
// The operation is the tag modulo the stride: every operation code must be below it.
assert(op_accept_timeout < tag_stride && op_timeout < tag_stride);

// Who is at the other end of a connection. A dialled connection is to the replica we dialled; an
// accepted one is unknown until its messages say: a request or a ping_client makes it a client's,
// a replica command (its header's `replica` is the sender) a peer's. The peer label wins: a
// client-labelled connection that sends a replica command becomes the replica's.
const peer_unknown = 0;
const peer_client = 1;
const peer_replica_inbound = 2;
const peer_replica_dialled = 3;

// Where a client command carries its client id (16 bytes, little-endian limbs).
const client_at_request = offsets.request.client;
const client_at_ping = offsets.ping_client.client;
const client_at_reply = offsets.reply.client;
const client_at_eviction = offsets.eviction.client;

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
    generation = 0;
    /** Who is at the other end (peer_unknown, peer_client, peer_replica_*). */
    peer = peer_unknown;
    /** The replica at the other end when `peer` is a replica, else -1. */
    replica = -1;
    /** Whether the client table maps `client` to this connection (one client at most). */
    client_known = false;
    /** The limbs of that client's id. */
    readonly client = new Uint32Array(4);
    /** A dialled peer was told unreachable: it stays quiet until it connects again. */
    unreachable_logged = false;

    constructor(send_queue_max: number) {
        this.send_queue = new Int32Array(send_queue_max);
    }
}

export class MessageBus implements IoCompletionTarget, MessagePoolListener, ReplicaNetwork {
    readonly engine: Engine;
    readonly pool: MessagePool;
    readonly connections_max: number;
    /** Our index in the cluster, and its size; 0 and 0 for a bus in no cluster. */
    readonly replica: number;
    readonly replica_count: number;
    /** send_to_replica calls dropped for a full queue (VSR's timeouts resend). */
    replica_sends_dropped = 0;
    /** Disconnects by validator reason code. */
    readonly disconnects_invalid = new Uint32Array(validator_reason_count);
    /** Disconnects by BusReason. */
    readonly disconnects_bus = new Uint32Array(bus_reason_count);
    messages_received = 0;
    messages_sent = 0;
    /** Bytes the kernel took from our sends, counted as each send completes (a partial counts
     * what it wrote; a resend after a reconnect counts again). */
    bytes_sent = 0;
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
    /** Closes issued by the listener (its own, refused sockets) whose completion is not back. */
    private listener_closes = 0;
    /** Accepting waits for a refused socket's close, or for the descriptor backoff timeout. */
    private accept_paused = false;
    private accept_timeout_pending = false;
    /** Set while accepting fails for want of descriptors: the operator hears of it once. */
    private accept_starved = false;
    /** Accepts in a row that succeeded while starved: the episode ends at accept_recovered. */
    private accept_recovering = 0;
    private readonly log: (line: string) => void;
    /** Accepts that failed with EMFILE, ENFILE, ENOBUFS or ENOMEM. */
    accept_starvations = 0;
    /** Connections paused for want of a pool message, resumed in order. */
    private readonly waiters: Int32Array;
    private waiters_head = 0;
    private waiters_count = 0;
    /** Set while the bus is inside a delivery or a completion: releases then only mark. */
    private resuming = false;
    /** A message returned to the pool while waiters were queued; resume them. */
    private resume_pending = false;
    /** Client id -> the connection it last sent from; one entry per connection at most. */
    private readonly clients: ClientConnections;
    /** Per replica, the connection we dialled to it; -1 for ourselves or once closed for good. */
    private readonly replica_connections = new Int32Array(replicas_max).fill(-1);
    private readonly replica_addresses: readonly Address[];
    /** A replica_invalid disconnect was logged: the rest are only counted. */
    private replica_invalid_logged = false;

    constructor(options: MessageBusOptions) {
        assert(Number.isInteger(options.connections_max) && options.connections_max > 0);
        assert(Number.isInteger(options.send_queue_max) && options.send_queue_max > 0);
        assert(options.pool.arena === options.engine.arena, 'pool must live in the engine arena');
        assert(options.pool.count > receive_reserve,
            'message bus: the pool needs a receive buffer plus the reserve');
        this.engine = options.engine;
        this.pool = options.pool;
        this.validator = options.validator;
        this.owner = options.owner;
        this.time = options.time;
        this.random = options.random;
        this.connections_max = options.connections_max;
        this.backoff_min_ms = options.backoff_min_ms ?? 50;
        this.backoff_max_ms = options.backoff_max_ms ?? 1000;
        this.log = options.log ?? (() => undefined);
        assert(this.backoff_min_ms > 0 && this.backoff_min_ms <= this.backoff_max_ms);
        for (let index = 0; index < options.connections_max; index++) {
            this.table.push(new Connection(options.send_queue_max));
        }
        this.waiters = new Int32Array(options.connections_max);
        this.accept_tag = options.connections_max * tag_stride + op_accept;
        // The parser needs room for at least a header in every receive buffer.
        assert(options.pool.message_size_max >= header_size);
        this.bytes = options.pool.bytes;
        this.clients = new ClientConnections(options.connections_max);
        this.replica_addresses = options.replica_addresses ?? [];
        this.replica_count = this.replica_addresses.length;
        this.replica = options.replica ?? 0;
        assert.equal(options.replica === undefined, options.replica_addresses === undefined,
            'message bus: give replica and replica_addresses together');
        assert(this.replica_count <= replicas_max);
        if (this.replica_count > 0) {
            assert(Number.isInteger(this.replica) && this.replica < this.replica_count);
        }
        this.target = this.engine.target_register(this);
        this.pool.listener_set(this);
        this.replicas_dial();
    }

    /** Listens on host:port (0 picks a port) and starts accepting; returns the port. */
    listen(host: string, port: number, backlog = 128): number {
        assert(this.listen_fd === -1);
        this.listen_fd = this.engine.socket_listen(host, port, backlog);
        assert(this.listen_fd >= 0);
        this.accept_next();
        return this.engine.socket_local_port(this.listen_fd);
    }

    /** Dials host:port, reconnecting with backoff until closed; returns the connection, or -1. */
    connect(host: string, port: number): number {
        return this.connect_as(host, port, -1);
    }

    /**
     * Incremented each time the slot is taken by a new connection: (connection, generation)
     * names one connection for its whole life, while the index alone is reused.
     */
    generation(connection: number): number {
        assert(connection >= 0 && connection < this.connections_max);
        return this.table[connection]!.generation;
    }

    /** Whether the connection is open and can take messages. */
    connected(connection: number): boolean {
        assert(connection >= 0 && connection < this.connections_max);
        return this.table[connection]!.state === state_connected;
    }

    /** The state, with the peer once known: "connected", "backoff to replica 2" (for logs). */
    state_name(connection: number): string {
        assert(connection >= 0 && connection < this.connections_max);
        const entry = this.table[connection]!;
        const state = ['free', 'connecting', 'connected', 'closing', 'backoff'][entry.state]!;
        switch (entry.peer) {
            case peer_client: return `${state} from a client`;
            case peer_replica_inbound: return `${state} from replica ${entry.replica}`;
            case peer_replica_dialled: return `${state} to replica ${entry.replica}`;
            default: return state;
        }
    }

    /** The replica at the other end of a connection (dialled or labelled), else -1. */
    replica_of(connection: number): number {
        assert(connection >= 0 && connection < this.connections_max);
        const entry = this.table[connection]!;
        assert.equal(entry.replica === -1,
            entry.peer !== peer_replica_inbound && entry.peer !== peer_replica_dialled);
        return entry.replica;
    }

    /** The connection we dialled to a replica (-1 once closed for good). */
    replica_connection(replica: number): number {
        assert(this.replica_count > 0 && replica >= 0 && replica < this.replica_count);
        assert(replica !== this.replica, 'message bus: we never dial ourselves');
        return this.replica_connections[replica]!;
    }

    /** Clients whose connection the bus knows (at most one per connection). */
    get clients_count(): number {
        assert(this.clients.count <= this.connections_max);
        return this.clients.count;
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
        assert(index >= 0 && index < this.connections_max, 'send: no such connection');
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
        assert(connection.send_count <= connection.send_queue.length);
        if (connection.state === state_connected) this.send_next(index);
        return true;
    }

    /**
     * Queues a reply or an eviction to the client its header names, on the connection that
     * client last sent a request or a ping_client from. False when none is known (it closed, or
     * the client never sent to us) or the queue refused it.
     */
    send_to_client(message: number): boolean {
        const base = this.pool.offset(message);
        const command = this.bytes[base + frame.command]!;
        assert(command === Command.reply || command === Command.eviction,
            'send_to_client: only a reply or an eviction goes to a client');
        const at = base + (command === Command.reply ? client_at_reply : client_at_eviction);
        const index = this.clients.get(this.u32_at(at), this.u32_at(at + 4),
            this.u32_at(at + 8), this.u32_at(at + 12));
        if (index === -1) return false;
        const connection = this.table[index]!;
        assert(connection.client_known && connection.peer === peer_client);
        assert(connection.state === state_connected, 'a closing connection holds no client');
        return this.send(index, message);
    }

    /**
     * Queues a message to a replica on the connection we dialled to it. False, queueing nothing,
     * until that connection is up (messages are not held for a peer that is down: VSR resends
     * on its timeouts), and when its queue is full: a slow peer loses the message rather than
     * the connection, whose redial would cost more than the resend.
     */
    send_to_replica(replica: number, message: number): boolean {
        assert(this.replica_count > 0, 'send_to_replica: the bus is in no cluster');
        assert(Number.isInteger(replica) && replica >= 0 && replica < this.replica_count);
        assert(replica !== this.replica, 'send_to_replica: a replica never sends to itself');
        const index = this.replica_connections[replica]!;
        if (index === -1) return false; // Closed for good: the bus is shutting down.
        const connection = this.table[index]!;
        assert(connection.peer === peer_replica_dialled && connection.replica === replica);
        if (connection.state !== state_connected) return false;
        if (connection.send_count === connection.send_queue.length) {
            this.replica_sends_dropped += 1;
            return false;
        }
        const queued = this.send(index, message);
        assert(queued);
        return true;
    }

    /** Closes a connection for good (no reconnect). */
    close(index: number): void {
        assert(index >= 0 && index < this.connections_max, 'close: no such connection');
        const connection = this.table[index]!;
        connection.outgoing = false;
        if (connection.state === state_closing || connection.state === state_free) return;
        this.terminate(index, -1, BusReason.closed_by_owner);
    }

    /** Closes the listener and every connection; completions drain afterwards. */
    shutdown(): void {
        if (this.listen_fd !== -1) {
            if (this.accept_pending) this.engine.cancel(this.target, this.accept_tag);
            if (this.accept_timeout_pending) {
                this.engine.cancel(this.target, this.accept_tag + op_accept_timeout - op_accept);
            }
            this.listener_close(this.listen_fd);
            this.listen_fd = -1;
        }
        for (let index = 0; index < this.connections_max; index++) this.close(index);
    }

    /** Whether every connection slot is free and no accept is pending (shutdown finished). */
    get idle(): boolean {
        return !this.accept_pending && !this.accept_timeout_pending &&
            this.listener_closes === 0 && this.connections_open === 0;
    }

    message_size(message: number): number {
        return this.u32_at(this.pool.offset(message) + header_size_field_offset);
    }

    /** The little-endian u32 at an arena offset (headers have no alignment promise here). */
    private u32_at(offset: number): number {
        const bytes = this.bytes;
        return (bytes[offset]! | bytes[offset + 1]! << 8 | bytes[offset + 2]! << 16 |
            bytes[offset + 3]! << 24) >>> 0;
    }

    io_complete(tag: number, result: number): void {
        assert(Number.isInteger(tag) && tag >= 0);
        const nested = this.resuming;
        this.resuming = true;
        if (tag >= this.connections_max * tag_stride) {
            this.on_listener(tag, result);
        } else {
            this.on_connection(tag, result);
        }
        this.resuming = nested;
        if (!nested) this.resume_run();
    }

    /** Pool listener: a message returned. Waiters resume from the outermost bus frame only. */
    message_available(): void {
        if (this.waiters_count === 0) return;
        this.resume_pending = true;
        if (!this.resuming) this.resume_run();
    }

    private on_connection(tag: number, result: number): void {
        const index = Math.floor(tag / tag_stride);
        assert(index >= 0 && index < this.connections_max);
        const connection = this.table[index]!;
        // A slot is freed only once every completion is back: none arrives for a free one.
        assert(connection.state !== state_free);
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

    /**
     * Resumes paused receivers while messages keep returning. Each round is bounded by the
     * waiters present at its start; rounds are bounded by the table size, and a release after the
     * last round (an in-flight send, the owner's unref) starts another run.
     */
    private resume_run(): void {
        if (!this.resume_pending) return;
        assert(!this.resuming);
        this.resuming = true;
        for (let round = 0; round < this.connections_max && this.resume_pending; round++) {
            this.resume_pending = false;
            const count = this.waiters_count;
            for (let pass = 0; pass < count && this.pool.free > 0; pass++) this.resume_one();
        }
        this.resuming = false;
    }

    /** Takes the oldest waiter; if it still finds no message it queues again at the back. */
    private resume_one(): void {
        assert(this.waiters_count > 0);
        const index = this.waiters[this.waiters_head]!;
        assert(index >= 0 && index < this.connections_max);
        this.waiters_head = (this.waiters_head + 1) % this.waiters.length;
        this.waiters_count -= 1;
        const connection = this.table[index]!;
        assert(connection.waiting);
        connection.waiting = false;
        if (connection.state === state_connected) this.receive_continue(index);
    }

    // Accepting.

    private accept_next(): void {
        assert(!this.accept_pending && !this.accept_timeout_pending && this.listen_fd !== -1);
        this.accept_paused = false;
        // Refused sockets still closing are at their bound: accept again when one is back.
        if (this.listener_closes >= listener_closes_max) {
            this.accept_paused = true;
            return;
        }
        this.accept_pending = true;
        this.engine.socket_accept(this.target, this.accept_tag, this.listen_fd);
    }

    private listener_close(fd: number): void {
        assert(this.listener_closes < listener_closes_max + 1);
        this.listener_closes += 1;
        this.engine.close(this.target, this.accept_tag + tag_stride, fd);
    }

    private on_listener(tag: number, result: number): void {
        if (tag === this.accept_tag + tag_stride) return this.on_listener_close();
        if (tag === this.accept_tag + op_accept_timeout - op_accept) {
            this.accept_timeout_pending = false;
            if (this.listen_fd !== -1) this.accept_next();
            return;
        }
        assert(tag === this.accept_tag);
        this.accept_pending = false;
        if (result < 0) return this.on_accept_failed(result);
        if (this.accept_starved) this.accept_recovered_check();
        if (this.listen_fd === -1) return this.listener_close(result);
        const index = this.slot_acquire();
        if (index === -1) {
            this.disconnects_bus[BusReason.connection_table_full] += 1;
            this.listener_close(result);
        } else {
            const connection = this.table[index]!;
            assert.equal(connection.fd, -1);
            connection.fd = result;
            this.open(index);
        }
        this.accept_next();
    }

    /**
     * An episode of starvation ends after accept_recovered accepts in a row, not at the first:
     * a descriptor freed now and then (a peer that hangs up) would otherwise make each short
     * respite a new episode, and the operator would be told again and again.
     */
    private accept_recovered_check(): void {
        assert(this.accept_starved && this.accept_recovering < accept_recovered);
        this.accept_recovering += 1;
        if (this.accept_recovering < accept_recovered) return;
        this.accept_starved = false;
        this.accept_recovering = 0;
        this.log('bus: accepting connections again (file descriptors are available)');
    }

    private on_listener_close(): void {
        assert(this.listener_closes > 0);
        this.listener_closes -= 1;
        if (this.accept_paused && this.listen_fd !== -1) this.accept_next();
    }

    /**
     * Out of descriptors (ours or the system's): re-arming at once would spin on the same
     * error, so accepting pauses for a while; the operator is told once per episode. Other
     * failures (a connection aborted before it was accepted) re-arm at once.
     */
    private on_accept_failed(result: number): void {
        assert(result < 0 && !this.accept_pending);
        if (result === -errno_cancelled || this.listen_fd === -1) return;
        const errno = -result;
        const e = os.constants.errno;
        if (errno !== e.EMFILE && errno !== e.ENFILE && errno !== e.ENOBUFS &&
            errno !== e.ENOMEM) return this.accept_next();
        this.accept_starvations += 1;
        this.accept_recovering = 0;
        if (!this.accept_starved) {
            this.accept_starved = true;
            this.log(`bus: accept failed with ${errno_name(errno)}: out of file descriptors; ` +
                `pausing accepts for ${accept_backoff_ms} ms at a time until one succeeds ` +
                '(raise `ulimit -n` / systemd LimitNOFILE=, or lower --connections-max)');
        }
        this.accept_timeout_pending = true;
        this.engine.timeout(this.target, this.accept_tag + op_accept_timeout - op_accept,
            accept_backoff_ms);
    }

    // Connecting with exponential backoff and jitter.

    /** Claims a slot and dials; `replica` labels a peer's connection (-1: a plain connect). */
    private connect_as(host: string, port: number, replica: number): number {
        assert(Number.isInteger(port) && port >= 0 && port <= 0xffff);
        assert(replica >= -1 && replica < this.replica_count);
        const index = this.slot_acquire();
        if (index === -1) return -1;
        const connection = this.table[index]!;
        connection.outgoing = true;
        connection.host = host;
        connection.port = port;
        connection.attempt = 0;
        // Labelled before the dial, so that whatever its completion logs names the peer.
        if (replica !== -1) {
            connection.peer = peer_replica_dialled;
            connection.replica = replica;
            this.replica_connections[replica] = index;
        }
        this.dial(index);
        return index;
    }

    /**
     * One outbound connection to every other replica: all our messages to replica r go over
     * ours to r, and r's to us over its own (which we accept and only receive on), so each
     * direction has a single ordered stream. Dialled at construction; each redials until closed.
     */
    private replicas_dial(): void {
        for (let replica = 0; replica < this.replica_count; replica++) {
            if (replica === this.replica) continue;
            const address = this.replica_addresses[replica]!;
            assert(ip_family(address.host) !== 0, 'message bus: resolve replica addresses first');
            const index = this.connect_as(address.host, address.port, replica);
            assert(index !== -1, 'message bus: connections_max leaves no slot for a replica');
        }
    }

    /**
     * A dialled replica failed to connect or dropped: logged once per episode, with what to
     * check; the redials that follow are quiet until it connects.
     */
    private peer_unreachable(index: number, what: string, cause: string): void {
        const connection = this.table[index]!;
        if (connection.peer !== peer_replica_dialled || connection.unreachable_logged) return;
        connection.unreachable_logged = true;
        this.log(`bus: ${what} replica ${connection.replica} at ` +
            `${address_format(connection.host, connection.port)} (${cause}); redialling with ` +
            'backoff, logged again once it connects. Check that it is running and listening ' +
            'there, that every replica has the same --addresses in the same order, and that ' +
            'no firewall drops the port');
    }

    private peer_connected(index: number): void {
        const connection = this.table[index]!;
        if (connection.peer !== peer_replica_dialled) return;
        assert(connection.state === state_connecting && connection.fd >= 0);
        connection.unreachable_logged = false;
        this.log(`bus: connected to replica ${connection.replica} at ` +
            address_format(connection.host, connection.port));
    }

    private dial(index: number): void {
        const connection = this.table[index]!;
        // Only dialled connections redial, and only once the previous socket is closed.
        assert(connection.outgoing && connection.fd === -1 && !connection.connect_pending);
        assert.equal(connection.in_flight, 0);
        connection.state = state_connecting;
        connection.fd = this.engine.socket_create(ip_family(connection.host) === 6 ? 6 : 4);
        connection.connect_pending = true;
        this.in_flight_add(connection);
        this.engine.socket_connect(this.target, index * tag_stride + op_connect, connection.fd,
            connection.host, connection.port);
    }

    private on_connect(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.connect_pending = false;
        if (connection.state !== state_connecting) return;
        if (result < 0) {
            this.disconnects_bus[BusReason.connect_failed] += 1;
            this.peer_unreachable(index, 'cannot reach', `connect: ${errno_name(-result)}`);
            this.retry(index);
            return;
        }
        this.peer_connected(index);
        this.open(index);
    }

    /** Closes the failed socket and backs off before the next dial. */
    private retry(index: number): void {
        const connection = this.table[index]!;
        assert(connection.state === state_connecting && connection.fd !== -1);
        this.in_flight_add(connection);
        this.engine.close(this.target, index * tag_stride + op_close, connection.fd);
        connection.fd = -1;
        connection.state = state_backoff;
        this.backoff_start(index);
    }

    /**
     * Waits a delay drawn uniformly from [backoff_min_ms, ceiling], the ceiling doubling per
     * failed attempt up to backoff_max_ms: the jitter keeps peers that lost each other at the
     * same moment from redialling in lockstep.
     */
    private backoff_start(index: number): void {
        const connection = this.table[index]!;
        assert(connection.state === state_backoff && !connection.timeout_pending);
        assert(connection.outgoing, 'message bus: only a dialled connection backs off');
        const delay_ms = backoff_delay_ms(this.backoff_min_ms, this.backoff_max_ms,
            connection.attempt, this.random.u32());
        connection.attempt += 1;
        connection.timeout_pending = true;
        this.in_flight_add(connection);
        this.engine.timeout(this.target, index * tag_stride + op_timeout, delay_ms);
    }

    private on_timeout(index: number, result: number): void {
        const connection = this.table[index]!;
        connection.timeout_pending = false;
        if (result < 0 || connection.state !== state_backoff) return;
        // A cancelled recv or send of the last socket still to come back would land on the
        // next one (same tag), and a close still out would add to the next socket's operations:
        // wait another round for every one of them.
        if (connection.in_flight > 0) return this.backoff_start(index);
        this.dial(index);
    }

    /** A socket is up (accepted or dialled): start receiving and flush queued sends. */
    private open(index: number): void {
        const connection = this.table[index]!;
        assert(connection.fd >= 0);
        assert(!connection.recv_pending && !connection.send_pending && !connection.waiting);
        // A reconnect resends the head message whole.
        assert.equal(connection.send_offset, 0);
        connection.state = state_connected;
        connection.connected_ns = this.time.monotonic_ns();
        connection.attempt = 0; // The next failure backs off from the shortest delay again.
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
            // The last buffer went to the owner whole (or none was taken yet). Leave the
            // reserve for connections that hold a buffer already and need one to split.
            const message = this.pool.free > receive_reserve ? this.pool.acquire() : -1;
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
        assert(connection.recv_start <= connection.recv_end);
        const free = this.pool.message_size_max - connection.recv_end;
        assert(free > 0);
        connection.recv_pending = true;
        this.in_flight_add(connection);
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
        // A recv is only in flight into the connection's own buffer.
        assert(connection.recv_message !== -1);
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
            assert(available >= 0 && connection.recv_end <= this.pool.message_size_max);
            if (available < header_size) return true;
            const base = this.pool.offset(connection.recv_message) + connection.recv_start;
            if (connection.recv_size === 0) {
                const reason = this.validator.header(this.bytes, base, available);
                if (reason === cluster_mismatch) this.cluster_mismatch_log(base);
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
            // Before the delivery: the owner may rewrite the message (a request into a prepare).
            if (!this.sender_learn(index, base)) {
                return this.terminate(index, -1, BusReason.replica_invalid);
            }
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
        assert(size >= header_size && size <= this.pool.message_size_max && remaining >= 0);
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
        assert(connection.recv_start <= connection.recv_end);
        // The owner gets a message nobody else holds: it may rewrite it in place.
        assert.equal(this.pool.references_of(message), 1);
        this.messages_received += 1;
        const nested = this.resuming;
        this.resuming = true;
        this.owner.on_message(index, message);
        this.pool.unref(message);
        this.resuming = nested;
        if (!nested) this.resume_run();
        return true;
    }

    /** Moves a partial message to the buffer start when it cannot complete where it lies. */
    private compact_if_needed(connection: Connection): void {
        if (connection.recv_start === 0) return;
        const needed = connection.recv_size === 0 ? header_size : connection.recv_size;
        assert(needed <= this.pool.message_size_max);
        if (connection.recv_start + needed <= this.pool.message_size_max) return;
        const base = this.pool.offset(connection.recv_message);
        this.bytes.copyWithin(base, base + connection.recv_start, base + connection.recv_end);
        connection.recv_end -= connection.recv_start;
        connection.recv_start = 0;
    }

    /**
     * Learns who is at the other end of an accepted connection from a valid message at `base`
     * (idempotent: a message whose delivery paused is seen again). Returns false for a replica
     * command that names an impossible sender (ourselves, or outside the cluster).
     */
    private sender_learn(index: number, base: number): boolean {
        const connection = this.table[index]!;
        if (connection.outgoing) return true; // We dialled it: we know who is there.
        const command = this.bytes[base + frame.command]!;
        if (command === Command.request || command === Command.ping_client) {
            if (connection.peer === peer_unknown) connection.peer = peer_client;
            // A replica may forward a client's request: only a client's connection is learned.
            if (connection.peer !== peer_client) return true;
            const at = command === Command.request ? client_at_request : client_at_ping;
            this.client_learn(index, base + at);
            return true;
        }
        // A prepare, a reply or a grid block names its author (a block: nobody, replica 0),
        // who need not be the sender: repair resends them as they were written.
        if (command === Command.prepare || command === Command.reply ||
            command === Command.block) return true;
        if (connection.peer === peer_replica_inbound) return true;
        const replica = this.bytes[base + frame.replica]!;
        if (this.replica_count > 0 &&
            (replica >= this.replica_count || replica === this.replica)) {
            this.replica_invalid_log(replica);
            return false;
        }
        this.client_forget(index);
        connection.peer = peer_replica_inbound;
        connection.replica = replica;
        return true;
    }

    /** Maps the client id at arena offset `at` to the connection, which held another or none. */
    private client_learn(index: number, at: number): void {
        const connection = this.table[index]!;
        assert(connection.peer === peer_client && connection.state === state_connected);
        const limb0 = this.u32_at(at);
        const limb1 = this.u32_at(at + 4);
        const limb2 = this.u32_at(at + 8);
        const limb3 = this.u32_at(at + 12);
        assert((limb0 | limb1 | limb2 | limb3) !== 0, 'the validator refuses client 0');
        const key = connection.client;
        if (connection.client_known) {
            if (key[0] === limb0 && key[1] === limb1 && key[2] === limb2 && key[3] === limb3) {
                // The usual case: the same client again, already mapped here.
                assert.equal(this.clients.get(limb0, limb1, limb2, limb3), index);
                return;
            }
            this.client_forget(index);
        }
        const previous = this.clients.set(limb0, limb1, limb2, limb3, index);
        if (previous !== -1) {
            // The client moved here: its old connection no longer holds the entry.
            const other = this.table[previous]!;
            assert(previous !== index && other.client_known);
            other.client_known = false;
        }
        key[0] = limb0;
        key[1] = limb1;
        key[2] = limb2;
        key[3] = limb3;
        connection.client_known = true;
        // One entry per connection at most, so the table (sized for connections_max) never fills.
        assert(this.clients.count <= this.connections_max);
    }

    /** Drops the connection's client entry, if it holds one. */
    private client_forget(index: number): void {
        const connection = this.table[index]!;
        if (!connection.client_known) return;
        const key = connection.client;
        const removed = this.clients.remove(key[0]!, key[1]!, key[2]!, key[3]!);
        assert.equal(removed, index, 'client table: an entry names the connection holding it');
        connection.client_known = false;
    }

    private replica_invalid_log(replica: number): void {
        if (this.replica_invalid_logged) return;
        this.replica_invalid_logged = true;
        const what = replica === this.replica ? `${replica}, which is us`
            : `${replica}, outside this cluster of ${this.replica_count}`;
        this.log(`bus: an accepted connection says it is from replica ${what}; closed it ` +
            '(later ones are only counted): check that every replica has the same --addresses ' +
            'in the same order and its own data file (`ringledger format --replica=<i>`)');
    }

    private wait_for_message(index: number): void {
        const connection = this.table[index]!;
        assert(!connection.waiting && this.waiters_count < this.waiters.length);
        assert(connection.state === state_connected && !connection.recv_pending);
        connection.waiting = true;
        this.backpressure_pauses += 1;
        this.waiters[(this.waiters_head + this.waiters_count) % this.waiters.length] = index;
        this.waiters_count += 1;
    }

    private message_size_at(offset: number): number {
        return this.u32_at(offset + header_size_field_offset);
    }

    // Sending.

    private send_next(index: number): void {
        const connection = this.table[index]!;
        if (connection.send_pending || connection.send_count === 0) return;
        assert(connection.state === state_connected && connection.fd >= 0);
        const message = connection.send_queue[connection.send_head]!;
        const size = this.message_size(message);
        assert(connection.send_offset < size);
        connection.send_pending = true;
        this.in_flight_add(connection);
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
        assert(connection.send_count > 0);
        const message = connection.send_queue[connection.send_head]!;
        connection.send_offset += result;
        this.bytes_sent += result;
        assert(connection.send_offset <= this.message_size(message));
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
        // Buffers released below may resume other connections: only after this one is settled.
        const nested = this.resuming;
        this.resuming = true;
        this.terminate_connection(index, validator_reason, bus_reason);
        this.resuming = nested;
        if (!nested) this.resume_run();
        return false;
    }

    /** Once per connection (it is closed next): a peer that speaks for another cluster. */
    private cluster_mismatch_log(base: number): void {
        let cluster = 0n;
        for (let byte = 15; byte >= 0; byte--) {
            cluster = (cluster << 8n) | BigInt(this.bytes[base + frame.cluster + byte]!);
        }
        assert(cluster !== this.validator.cluster_id);
        this.log(`bus: closed a connection whose message names cluster ${cluster}, not ours ` +
            `(${this.validator.cluster_id}): a client or replica started with another cluster ` +
            'id (--cluster / cluster_id)');
    }

    private terminate_connection(index: number, validator_reason: number,
        bus_reason: number): void {
        const connection = this.table[index]!;
        if (validator_reason >= 0) {
            this.disconnects_invalid[Math.min(validator_reason, validator_reason_count - 1)] += 1;
        } else {
            this.disconnects_bus[bus_reason] += 1;
        }
        const reconnect = connection.outgoing && bus_reason !== BusReason.closed_by_owner;
        if (reconnect) {
            this.peer_unreachable(index, 'lost the connection to', validator_reason >= 0
                ? `a message failed validation, reason ${validator_reason}`
                : bus_reason_names[bus_reason]!);
        }
        this.client_forget(index); // No reply may be queued to a connection that is going.
        const tag = index * tag_stride;
        if (connection.recv_pending) this.engine.cancel(this.target, tag + op_recv);
        if (connection.send_pending) this.engine.cancel(this.target, tag + op_send);
        if (connection.connect_pending) this.engine.cancel(this.target, tag + op_connect);
        if (connection.timeout_pending) this.engine.cancel(this.target, tag + op_timeout);
        if (connection.fd !== -1) {
            this.in_flight_add(connection);
            this.engine.close(this.target, tag + op_close, connection.fd);
            connection.fd = -1;
        }
        assert.equal(connection.fd, -1);
        this.receive_release(connection);
        connection.send_offset = 0; // A reconnect resends the head message whole.
        if (reconnect) {
            // Queued messages wait for the next connection, dialled after a backoff.
            connection.state = state_backoff;
            this.backoff_start(index);
            return;
        }
        connection.state = state_closing;
        this.send_queue_release(connection);
        this.release_if_drained(index);
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
        // Every completion is back, so nothing is pending, and nothing is held.
        assert(!connection.recv_pending && !connection.send_pending);
        assert(!connection.connect_pending && !connection.timeout_pending);
        assert(connection.fd === -1 && connection.recv_message === -1);
        assert.equal(connection.send_count, 0);
        assert(!connection.client_known);
        if (connection.peer === peer_replica_dialled) {
            // Closed for good: send_to_replica has no connection to that replica any more.
            assert.equal(this.replica_connections[connection.replica], index);
            this.replica_connections[connection.replica] = -1;
        }
        connection.state = state_free;
        connection.outgoing = false;
        connection.peer = peer_unknown;
        connection.replica = -1;
        connection.unreachable_logged = false;
        if (this.owner.on_close !== undefined) this.owner.on_close(index);
    }

    private in_flight_add(connection: Connection): void {
        connection.in_flight += 1;
        assert(connection.in_flight <= bus_operations_per_connection,
            'message bus: more operations in flight on a connection than its bound');
    }

    private slot_acquire(): number {
        for (let index = 0; index < this.connections_max; index++) {
            const connection = this.table[index]!;
            if (connection.state !== state_free) continue;
            assert(connection.in_flight === 0 && connection.send_count === 0);
            assert(connection.recv_message === -1 && !connection.waiting);
            assert.equal(connection.fd, -1);
            assert(connection.peer === peer_unknown && connection.replica === -1);
            assert(!connection.client_known && !connection.unreachable_logged);
            connection.send_head = 0;
            connection.send_offset = 0;
            connection.generation += 1;
            connection.state = state_closing; // Claimed; the caller sets the real state.
            return index;
        }
        return -1;
    }
}

/** The redial delay after `attempt` failures, from one uniformly random u32. */
export function backoff_delay_ms(backoff_min_ms: number, backoff_max_ms: number, attempt: number,
    random_u32: number): number {
    assert(backoff_min_ms > 0 && backoff_min_ms <= backoff_max_ms && attempt >= 0);
    const ceiling = Math.min(backoff_max_ms, backoff_min_ms * 2 ** Math.min(attempt, 20));
    const delay = backoff_min_ms + random_u32 % (ceiling - backoff_min_ms + 1);
    assert(delay >= backoff_min_ms && delay <= ceiling);
    return delay;
}
