// The ringledger client: tigerbeetle-node 0.17.9's API and wire protocol in TypeScript over
// node:net (docs/wire-protocol.md §1-§8).
//
// Session: the client registers first (request 0), then numbers its requests 1, 2, 3, ... and
// chains each to the previous reply through `parent` = that reply's `context`. At most one request
// is in flight; it is retransmitted byte for byte on a timer until its reply arrives (§5.3, §5.7).
//
// Batching (§6.3): calls wait in a FIFO of packets. The first call when nothing is in flight goes
// out alone; calls made meanwhile are encoded straight into the next request's buffer ("staging")
// as batches of one multi-batch body, as long as they have the same operation and the request and
// its worst-case reply fit. Two message buffers alternate between in flight and staging; a packet
// is encoded when it reaches a buffer, so input errors reject its own promise only.
//
// Beyond TigerBeetle: per-request `timeout_ms` and `signal` (AbortSignal) reject a request the
// client gives up on (it may still execute, as with any network timeout), and the client emits
// 'connected', 'disconnected', 'registered', 'evicted' and 'invalid_message' events.
import assert from 'node:assert/strict';
import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';

import { tick_ms } from '../constants';
import {
    EvictionReason, Limit, header_size, limit_name, message_body_size_max,
    Operation as VsrOperation,
    register_request_body_size, register_result_body_size, release_0_17_9,
} from '../vsr/constants';
import { cluster_bytes, header_init, HeaderView, seal, seal_empty_body } from '../vsr/header';
import { Command, frame, offsets, request_feature_limit_details } from '../vsr/header_layout';
import { multi_batch_trailer_size } from '../vsr/multi_batch';
import { HeaderValidator } from '../vsr/validate';
import { Operation } from './bindings';
import type {
    Account, AccountBalance, AccountFilter, CreateAccountResult, CreateTransferResult,
    QueryFilter, Transfer,
} from './bindings';
import { operation_spec } from './codec';
import type { Result } from './codec';
import { Connection, parse_address } from './connection';
import type { ConnectionOwner } from './connection';
import { ErrorCodes, RequestError } from './errors';
import type { RequestDiagnosis, RequestErrorOptions } from './errors';
import { Packet, PacketList } from './packet';
import { RequestBuffer } from './request_buffer';

export interface ClientInitArgs {
    cluster_id: bigint;
    replica_addresses: Array<string | number>;
    /** Beyond TigerBeetle: default timeout of every request (0 or absent: wait forever). */
    request_timeout_ms?: number;
    /** Beyond TigerBeetle: calls outstanding at once; more are refused (default 8192). */
    concurrency_max?: number;
    /**
     * Ask a ringledger cluster for the limit in an eviction (a request header byte that
     * TigerBeetle requires to be zero): default true; false to talk to a TigerBeetle cluster.
     */
    limit_details?: boolean;
}

export interface RequestOptions {
    /** Give up after this long (overrides the client's request_timeout_ms; 0 disables). */
    timeout_ms?: number;
    signal?: AbortSignal;
}

export type AccountID = bigint;
export type TransferID = bigint;

export { tick_ms };
/** The first retransmission after 60 ticks (docs/wire-protocol.md §5.7). */
const request_timeout_ticks_first = 60;
const ping_interval_ticks = 3000;
const backoff_ticks_max = 1000;
const rtt_ticks_default = 30;
const concurrency_max_default = 8192;
const buffer_count = 2;

const eviction_names: readonly string[] = (() => {
    const names: string[] = [];
    for (const [name, value] of Object.entries(EvictionReason)) names[value] = name;
    return names;
})();

type Status = 'registering' | 'ready' | 'evicted' | 'closed';

/** The events a client emits, with their listener arguments. */
export interface ClientEvents {
    connected: [replica: number, address: string];
    disconnected: [replica: number, address: string, reason: string];
    /** The session is open: calls made before now are sent. */
    registered: [session: number];
    /** The cluster evicted this client; every call fails with `code` from now on. */
    evicted: [reason: string, code: ErrorCodes];
    /** A message that was ignored (a reply that does not fit the request, for example). */
    invalid_message: [replica: number, reason: string];
}

export class Client extends EventEmitter<ClientEvents> implements ConnectionOwner {
    readonly client_id = new Uint8Array(16);
    private status: Status = 'registering';
    private readonly cluster: Uint8Array;
    private readonly cluster_id: bigint;
    private readonly connections: Connection[];
    private readonly validator: HeaderValidator;
    private readonly header = new HeaderView();
    private readonly received = new HeaderView();
    private view = 0;
    private session = 0;
    private request_number = 0;
    private readonly parent = new Uint8Array(16);
    private batch_size_limit = message_body_size_max;
    private previous_request_latency_us = 0;
    /** The request `features` byte (ours; 0 is what TigerBeetle accepts). */
    private readonly features: number;
    private rtt_ticks = rtt_ticks_default;
    private readonly buffers: RequestBuffer[] = [];
    private inflight: RequestBuffer | null = null;
    private staging: RequestBuffer | null = null;
    private readonly queue = new PacketList();
    private readonly packets_free = new PacketList();
    private packets_outstanding = 0;
    private packets_with_deadline = 0;
    private readonly request_timeout_ms: number;
    private ticks = 0;
    private ping_ticks = 0;
    private readonly ping_bytes: Uint8Array[] = [];
    private readonly timer: NodeJS.Timeout;

    constructor(args: ClientInitArgs) {
        super();
        assert.ok(args !== null && typeof args === 'object', 'createClient: arguments expected');
        if (typeof args.cluster_id !== 'bigint') throw new Error('cluster_id must be a BigInt');
        if (args.cluster_id < 0n) throw new Error('cluster_id must be positive');
        if (args.cluster_id >= 1n << 128n) throw new Error('cluster_id must fit in 128 bits');
        if (!Array.isArray(args.replica_addresses) || args.replica_addresses.length === 0) {
            throw new Error('replica_addresses must not be empty');
        }
        if (args.replica_addresses.length > 6) throw new Error('at most 6 replica addresses');
        this.request_timeout_ms = timeout_option(args.request_timeout_ms, 'request_timeout_ms');
        const concurrency_max = args.concurrency_max ?? concurrency_max_default;
        assert.ok(Number.isInteger(concurrency_max) && concurrency_max > 0,
            'concurrency_max must be a positive integer');
        const addresses = args.replica_addresses.map(parse_address);
        this.features = args.limit_details === false ? 0 : request_feature_limit_details;
        this.cluster = cluster_bytes(args.cluster_id);
        this.cluster_id = args.cluster_id;
        this.validator = new HeaderValidator(args.cluster_id);
        do randomFillSync(this.client_id); while (this.client_id.every((byte) => byte === 0));
        this.connections = addresses.map((address, replica) =>
            new Connection(replica, address, this, this.validator));
        for (let index = 0; index < buffer_count; index++) {
            this.buffers.push(new RequestBuffer(index));
        }
        for (let index = 0; index < addresses.length; index++) {
            this.ping_bytes.push(new Uint8Array(header_size));
        }
        for (let index = 0; index < concurrency_max; index++) this.packets_free.push(new Packet());
        this.timer = setInterval(() => this.tick(), tick_ms);
        this.timer.unref();
        this.register();
        for (const connection of this.connections) connection.connect();
    }

    // The API of tigerbeetle-node 0.17.9, plus an optional RequestOptions argument. Arrow
    // properties so that they work detached from the object, as the original's do.
    readonly createAccounts = (batch: Account[], options?: RequestOptions):
        Promise<CreateAccountResult[]> => this.submit(Operation.create_accounts, batch, options);
    readonly createTransfers = (batch: Transfer[], options?: RequestOptions):
        Promise<CreateTransferResult[]> => this.submit(Operation.create_transfers, batch, options);
    readonly lookupAccounts = (batch: AccountID[], options?: RequestOptions):
        Promise<Account[]> => this.submit(Operation.lookup_accounts, batch, options);
    readonly lookupTransfers = (batch: TransferID[], options?: RequestOptions):
        Promise<Transfer[]> => this.submit(Operation.lookup_transfers, batch, options);
    readonly getAccountTransfers = (filter: AccountFilter, options?: RequestOptions):
        Promise<Transfer[]> => this.submit(Operation.get_account_transfers, filter, options);
    readonly getAccountBalances = (filter: AccountFilter, options?: RequestOptions):
        Promise<AccountBalance[]> => this.submit(Operation.get_account_balances, filter, options);
    readonly queryAccounts = (filter: QueryFilter, options?: RequestOptions):
        Promise<Account[]> => this.submit(Operation.query_accounts, filter, options);
    readonly queryTransfers = (filter: QueryFilter, options?: RequestOptions):
        Promise<Transfer[]> => this.submit(Operation.query_transfers, filter, options);

    /** Closes the connections; every outstanding call fails with ERR_CLIENT_CLOSED. Idempotent. */
    readonly destroy = (): void => {
        if (this.status === 'closed') return;
        this.shut_down('closed', ErrorCodes.ERR_CLIENT_CLOSED);
    };

    /** Whether the client has a session (registration finished). */
    get registered(): boolean {
        return this.status === 'ready';
    }

    private submit<T extends Result>(
        operation: Operation, source: unknown, options: RequestOptions | undefined,
    ): Promise<T[]> {
        if (this.status === 'closed' || this.status === 'evicted') {
            return Promise.reject(new RequestError(ErrorCodes.ERR_CLIENT_CLOSED));
        }
        const spec = operation_spec(operation)!;
        let count = 1;
        if (!spec.filter) {
            if (!Array.isArray(source)) {
                return Promise.reject(new Error('Array argument must be an [object Array].'));
            }
            count = source.length;
            if (count > this.event_max(operation)) {
                return Promise.reject(new RequestError(ErrorCodes.ERR_TOO_MUCH_DATA));
            }
        } else if (source === null || source === undefined) {
            return Promise.reject(new TypeError('Cannot convert undefined or null to object'));
        }
        const timeout_ms = options?.timeout_ms === undefined ? this.request_timeout_ms :
            timeout_option(options.timeout_ms, 'timeout_ms');
        const signal = options?.signal;
        if (signal !== undefined && signal.aborted) {
            return Promise.reject(new RequestError(ErrorCodes.ERR_REQUEST_ABORTED,
                { cause: signal.reason }));
        }
        const packet = this.packets_free.shift();
        if (packet === null) {
            return Promise.reject(new RequestError(ErrorCodes.ERR_CONCURRENCY_MAX_EXCEEDED));
        }
        const promise = packet.start(this, operation, source, count);
        this.packets_outstanding += 1;
        if (timeout_ms > 0) {
            packet.deadline_ms = performance.now() + timeout_ms;
            this.packets_with_deadline += 1;
        }
        if (signal !== undefined) packet.listen(signal);
        this.timer.ref();
        this.queue.push(packet);
        this.pump();
        return promise as Promise<T[]>;
    }

    /** Events of one batch of `operation`: the smaller of what the request and reply allow. */
    private event_max(operation: Operation): number {
        const spec = operation_spec(operation)!;
        if (spec.filter) return 1;
        const by_request = Math.floor((this.batch_size_limit -
            multi_batch_trailer_size(1, spec.event_size)) / spec.event_size);
        const by_reply = Math.floor((message_body_size_max -
            multi_batch_trailer_size(1, spec.result_size)) / spec.result_size);
        return Math.min(by_request, by_reply);
    }

    // Registration (docs/wire-protocol.md §5.2): request 0 with 256 zero bytes of body.
    private register(): void {
        const buffer = this.buffers[0]!;
        assert.ok(buffer.idle() && this.inflight === null);
        buffer.begin_register();
        this.seal_request(buffer, register_request_body_size, 0);
        this.inflight = buffer;
        this.send_inflight();
    }

    /** Moves queued packets into staging, and staging out when nothing is in flight. */
    private pump(): void {
        if (this.status !== 'ready') return;
        for (let round = 0; round < buffer_count + 1; round++) {
            this.stage();
            if (this.inflight !== null || this.staging === null) return;
            if (this.staging.batch_count === 0) return;
            const buffer = this.staging;
            this.staging = null;
            const body_size = buffer.finish();
            this.request_number += 1;
            this.seal_request(buffer, body_size, this.request_number);
            this.inflight = buffer;
            this.send_inflight();
        }
    }

    /** Encodes queue packets into the staging buffer while they fit and share its operation. */
    private stage(): void {
        while (this.queue.head !== null) {
            const packet = this.queue.head;
            if (this.staging === null) {
                const free = this.buffer_free();
                if (free === null) return;
                free.begin(packet.operation, this.batch_size_limit);
                this.staging = free;
            }
            const staging = this.staging;
            if (packet.operation !== staging.operation) {
                if (staging.batch_count > 0) return;
                // Every packet staged so far failed to encode: start over with this operation.
                staging.reset();
                staging.begin(packet.operation, this.batch_size_limit);
            }
            const outcome = staging.add(packet);
            if (outcome === 'full') return;
            this.queue.shift();
            if (outcome === 'added') {
                staging.packets.push(packet);
            } else if (outcome === 'too_much_data') {
                this.settle_error(packet, new RequestError(ErrorCodes.ERR_TOO_MUCH_DATA));
            } else {
                this.settle_error(packet, outcome);
            }
        }
    }

    /** A buffer that is neither in flight nor staging, and that no unflushed write references. */
    private buffer_free(): RequestBuffer | null {
        for (const buffer of this.buffers) {
            if (buffer === this.inflight || buffer === this.staging || !buffer.idle()) continue;
            let writing = false;
            for (const connection of this.connections) {
                if (connection.writing(buffer.index)) writing = true;
            }
            if (!writing) return buffer;
        }
        return null;
    }

    private seal_request(buffer: RequestBuffer, body_size: number, request: number): void {
        const header = header_init(this.header, buffer.bytes, 0, Command.request,
            header_size + body_size, release_0_17_9);
        header.copy16_from(frame.cluster, this.cluster, 0);
        header.view = this.view;
        const at = offsets.request;
        header.copy16_from(at.parent, this.parent, 0);
        header.copy16_from(at.client, this.client_id, 0);
        header.set_u64(at.session, this.session);
        header.set_u32(at.request, request);
        header.set_u8(at.operation, buffer.operation);
        header.set_u32(at.previous_request_latency,
            Math.min(this.previous_request_latency_us, 0xFFFFFFFF));
        header.set_u8(at.features, this.features);
        seal(header);
        buffer.request = request;
        buffer.size = header_size + body_size;
        buffer.sent_ms = performance.now();
        buffer.attempts = 0;
        buffer.timeout_ticks = request_timeout_ticks_first;
    }

    /** Sends the in-flight request to the primary, and to one other replica when there are. */
    private send_inflight(): void {
        const buffer = this.inflight;
        assert.ok(buffer !== null);
        const count = this.connections.length;
        const primary = this.view % count;
        this.connections[primary]!.send(buffer.bytes, buffer.size, buffer.index);
        if (count > 1) {
            const backup = (primary + 1 + Math.floor(Math.random() * (count - 1))) % count;
            this.connections[backup]!.send(buffer.bytes, buffer.size, buffer.index);
        }
    }

    private tick(): void {
        this.ticks += 1;
        for (const connection of this.connections) {
            if (connection.state !== 'disconnected') continue;
            connection.reconnect_ticks -= 1;
            if (connection.reconnect_ticks <= 0) connection.connect();
        }
        this.ping_ticks -= 1;
        if (this.ping_ticks <= 0) this.ping();
        const buffer = this.inflight;
        if (buffer !== null) {
            buffer.timeout_ticks -= 1;
            if (buffer.timeout_ticks <= 0) {
                buffer.attempts += 1;
                buffer.timeout_ticks = 2 * this.rtt_ticks + backoff_ticks(buffer.attempts);
                this.send_inflight();
            }
        }
        if (this.packets_with_deadline > 0) this.expire(performance.now());
    }

    private ping(): void {
        this.ping_ticks = ping_interval_ticks;
        const timestamp_ns = Math.floor(performance.now() * 1e6) + 1;
        for (const connection of this.connections) {
            if (connection.state !== 'connected') continue;
            const slot = buffer_count + connection.replica;
            if (connection.writing(slot)) continue; // The previous ping has not left yet.
            const bytes = this.ping_bytes[connection.replica]!;
            const header = header_init(this.header, bytes, 0, Command.ping_client, header_size,
                release_0_17_9);
            header.copy16_from(frame.cluster, this.cluster, 0);
            header.copy16_from(offsets.ping_client.client, this.client_id, 0);
            header.set_u64(offsets.ping_client.ping_timestamp_monotonic, timestamp_ns);
            header.set_u64(offsets.ping_client.session, this.session);
            seal_empty_body(header);
            connection.send(bytes, header_size, slot);
        }
    }

    /** Fails every packet whose deadline passed (queued ones leave the queue). */
    private expire(now_ms: number): void {
        this.expire_list(this.queue, now_ms);
        if (this.inflight !== null) this.expire_list(this.inflight.packets, now_ms);
        if (this.staging !== null) this.expire_list(this.staging.packets, now_ms);
    }

    private expire_list(list: PacketList, now_ms: number): void {
        let packet = list.head;
        while (packet !== null) {
            const next = packet.next;
            if (!packet.settled && packet.deadline_ms > 0 && packet.deadline_ms <= now_ms) {
                this.abandon(packet, new RequestError(ErrorCodes.ERR_REQUEST_TIMEOUT,
                    { diagnosis: this.diagnosis() }));
            }
            packet = next;
        }
    }

    /**
     * Gives up on a packet: its promise rejects now. A queued packet is dropped; one already
     * encoded stays in its request (the bytes are sealed or about to be) and its results are
     * discarded when the reply comes.
     */
    abandon(packet: Packet, error: Error): void {
        if (packet.settled) return;
        if (packet.list === this.queue) {
            this.queue.remove(packet);
            this.settle_error(packet, error);
            return;
        }
        packet.reject(error);
        this.packet_settled(packet);
    }

    private settle_error(packet: Packet, error: unknown): void {
        packet.reject(error);
        this.packet_settled(packet);
        this.release(packet);
    }

    private packet_settled(packet: Packet): void {
        if (packet.deadline_ms > 0) this.packets_with_deadline -= 1;
        packet.deadline_ms = 0;
        this.packets_outstanding -= 1;
        assert.ok(this.packets_outstanding >= 0 && this.packets_with_deadline >= 0);
        if (this.packets_outstanding === 0) this.timer.unref();
    }

    private release(packet: Packet): void {
        assert.ok(packet.settled && packet.list === null);
        packet.reset();
        this.packets_free.push(packet);
    }

    // ConnectionOwner.
    on_connected(replica: number): void {
        this.emit('connected', replica, this.address_text(replica));
        // Resend now rather than on the timer: the server deduplicates (§5.3).
        if (this.inflight !== null) this.send_inflight();
        this.ping(); // Learns the view and the round-trip time early (§5.6).

    }

    on_disconnected(replica: number, reason: string): void {
        this.emit('disconnected', replica, this.address_text(replica), reason);
    }

    on_invalid(replica: number, reason: string): void {
        this.emit('invalid_message', replica, reason);
    }

    on_write_done(slot: number): void {
        // A buffer whose last write finished may be what the queue waits for.
        if (slot < buffer_count && this.queue.head !== null) this.pump();
    }

    on_message(replica: number, bytes: Uint8Array, offset: number, size: number): void {
        const header = this.received.attach(bytes, offset);
        switch (header.command) {
            case Command.reply: this.on_reply(replica, header, size); return;
            case Command.pong_client: this.on_pong(header); return;
            case Command.eviction: this.on_eviction(header); return;
            default:
                this.emit('invalid_message', replica, `unexpected command ${header.command}`);
        }
    }

    /** Beyond TigerBeetle: the highest view heard of (replies, pongs); `recover` records it. */
    get view_known(): number {
        return this.view;
    }

    private adopt_view(view: number): void {
        if (view > this.view) this.view = view;
    }

    private on_pong(header: HeaderView): void {
        this.adopt_view(header.view);
        const sent_ns = header.u64(offsets.pong_client.ping_timestamp_monotonic);
        const rtt_ms = (performance.now() * 1e6 - sent_ns) / 1e6;
        if (rtt_ms >= 0) this.rtt_ticks = Math.max(1, Math.ceil(rtt_ms / tick_ms));
    }

    private on_eviction(header: HeaderView): void {
        if (!header.equal16(offsets.eviction.client, this.client_id, 0)) return;
        if (header.view < this.view) return;
        const reason = header.u8(offsets.eviction.reason);
        // A limit travels only in evictions of requests that asked for it (ours): it names the
        // capacity limit the batch did not fit.
        const limit = header.u8(offsets.eviction.limit);
        const code = limit === Limit.writes_failing ? ErrorCodes.ERR_WRITES_FAILING :
            limit !== 0 ? ErrorCodes.ERR_LIMIT_REACHED :
            reason === EvictionReason.client_release_too_low ?
                ErrorCodes.ERR_CLIENT_RELEASE_TOO_LOW :
                reason === EvictionReason.client_release_too_high ?
                    ErrorCodes.ERR_CLIENT_RELEASE_TOO_HIGH : ErrorCodes.ERR_CLIENT_EVICTED;
        const options = limit === 0 ? undefined : { limit: limit_name(limit),
            limit_value: header.u64_bigint(offsets.eviction.limit_value) };
        const name = eviction_names[reason] ?? `reason ${reason}`;
        this.emit('evicted', options === undefined ? name :
            `${name}: ${options.limit} (${options.limit_value}) reached`, code);
        this.shut_down('evicted', code, options);
    }

    private on_reply(replica: number, header: HeaderView, size: number): void {
        const buffer = this.inflight;
        const at = offsets.reply;
        if (!header.equal16(at.client, this.client_id, 0)) return;
        if (buffer === null) return; // A duplicate of a reply already taken.
        const request = header.u32(at.request);
        if (request < buffer.request) return;
        const mismatch = request !== buffer.request ? 'request number' :
            !header.equal16(at.request_checksum, buffer.bytes, frame.checksum) ?
                'request_checksum' :
                header.release !== release_0_17_9 ? 'release' :
                    header.u8(at.operation) !== buffer.operation ? 'operation' : null;
        if (mismatch !== null) {
            this.emit('invalid_message', replica, `reply with a different ${mismatch}`);
            return;
        }
        const body_offset = header.offset + header_size;
        const body_size = size - header_size;
        if (buffer.operation === VsrOperation.register) {
            this.on_register_reply(replica, header, body_offset, body_size);
            return;
        }
        this.accept_reply(header);
        this.inflight = null;
        buffer.complete(header.bytes, body_offset, body_size, this);
        this.pump();
    }

    private accept_reply(header: HeaderView): void {
        for (let index = 0; index < 16; index++) {
            this.parent[index] = header.bytes[header.offset + offsets.reply.context + index]!;
        }
        this.adopt_view(header.view);
        const buffer = this.inflight!;
        this.previous_request_latency_us = Math.round((performance.now() - buffer.sent_ms) * 1000);
    }

    private on_register_reply(
        replica: number, header: HeaderView, body_offset: number, body_size: number,
    ): void {
        assert.equal(body_size, register_result_body_size); // validate.ts checked it.
        const bytes = header.bytes;
        const limit = (bytes[body_offset]! | (bytes[body_offset + 1]! << 8) |
            (bytes[body_offset + 2]! << 16) | (bytes[body_offset + 3]! << 24)) >>> 0;
        if (limit === 0 || limit > message_body_size_max) {
            this.emit('invalid_message', replica, `register reply batch_size_limit ${limit}`);
            return;
        }
        this.accept_reply(header);
        this.session = header.u64(offsets.reply.commit);
        this.batch_size_limit = limit;
        this.inflight!.reset();
        this.inflight = null;
        this.status = 'ready';
        this.emit('registered', this.session);
        this.pump();
    }

    /** Resolves one packet of a completed request (RequestBuffer.complete calls back). */
    resolve(packet: Packet, results: Result[] | null, error: Error | null): void {
        if (!packet.settled) {
            if (error !== null) packet.reject(error);
            else packet.resolve(results!);
            this.packet_settled(packet);
        }
        this.release(packet);
    }

    private shut_down(status: 'closed' | 'evicted', code: ErrorCodes,
        options?: RequestErrorOptions): void {
        this.status = status;
        clearInterval(this.timer);
        for (const connection of this.connections) {
            connection.reconnect_ticks = Number.MAX_SAFE_INTEGER;
            connection.close(status);
        }
        const error = (): RequestError => new RequestError(code, options);
        for (const buffer of [this.inflight, this.staging]) {
            if (buffer === null) continue;
            for (let packet = buffer.packets.shift(); packet !== null;
                packet = buffer.packets.shift()) {
                this.resolve(packet, null, error());
            }
            buffer.reset();
        }
        this.inflight = null;
        this.staging = null;
        for (let packet = this.queue.shift(); packet !== null; packet = this.queue.shift()) {
            this.settle_error(packet, error());
        }
        assert.equal(this.packets_outstanding, 0);
    }

    /**
     * Why no reply has come, from what the connections saw: no replica reachable (and the
     * error, e.g. ECONNREFUSED), replicas that close the connection after our messages without a
     * word (what a replica does to a client of another cluster), or replicas that take the
     * messages and do not answer.
     */
    diagnosis(): RequestDiagnosis {
        assert(this.connections.length > 0);
        const reached = this.connections.filter((c) => c.state === 'connected' ||
            c.messages_received_count > 0 || c.closed_unanswered_count > 0);
        // Never reached, or reached before and now every reconnect fails (the replicas stopped).
        const down = this.connections.every((c) => c.state !== 'connected' &&
            c.connect_error !== '');
        if (reached.length === 0 || down) {
            const errors = this.connections.map((c, replica) =>
                `${this.address_text(replica)}: ${c.connect_error || 'connecting'}`);
            const refused = this.connections.every((c) =>
                c.connect_error_code === 'ECONNREFUSED');
            return { kind: refused ? 'connection_refused' : 'unreachable',
                text: `No replica ${reached.length === 0 ? 'could be reached' : 'can be ' +
                    'reached any more'} (${errors.join('; ')}): is a replica running there ` +
                    '(`ringledger start`), and are the addresses right?' };
        }
        const closing = this.connections.filter((c) =>
            c.closed_unanswered_count > 0 && c.messages_received_count === 0);
        if (closing.length > 0 && closing.length === reached.length) {
            const where = closing.map((c) => this.address_text(c.replica)).join(', ');
            return { kind: 'cluster_mismatch', text: `Cluster mismatch: ${where} closed the ` +
                'connection after our messages without answering ' +
                `(${closing[0]!.closed_unanswered_count} times): a replica does that to a ` +
                `client of another cluster. This client's cluster_id is ${this.cluster_id}n; ` +
                'check it against the --cluster the data file was formatted with (the ' +
                'replica logs the cluster id it rejected).' };
        }
        const silent = this.connections.filter((c) => c.messages_received_count === 0);
        if (silent.length === 0) {
            return { kind: 'reply_late', text: 'Every replica is connected and has answered, ' +
                'but not this request in time: the cluster may be overloaded, or have too few ' +
                'replicas up for a quorum.' };
        }
        const where = silent.map((c) => this.address_text(c.replica)).join(', ');
        return { kind: 'no_reply', text: `Connected, but no replica answered from ${where}: ` +
            'the replica may be busy, stopped (SIGSTOP) or without a primary (a view change), ' +
            'or the cluster may have too few replicas up for a quorum.' };
    }

    private address_text(replica: number): string {
        const address = this.connections[replica]!.address;
        return `${address.host}:${address.port}`;
    }
}

function timeout_option(value: number | undefined, name: string): number {
    if (value === undefined) return 0;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
        throw new TypeError(`${name} must be a non-negative number of milliseconds`);
    }
    return value;
}

/** Retransmission backoff in ticks: exponential in the attempt, with full jitter (§5.7). */
function backoff_ticks(attempt: number): number {
    const ceiling = Math.min(backoff_ticks_max, 2 ** Math.min(attempt, 10));
    return 1 + Math.floor(Math.random() * ceiling);
}
