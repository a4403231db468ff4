// A small in-memory server for the client tests: it speaks the client protocol of
// docs/wire-protocol.md §3-§7 over node:net (register, sessions with the parent chain, duplicates
// answered from the cached reply, ping/pong, evictions) and executes batches on the real Ledger,
// but it keeps nothing on disk and has one session table in a Map. Hooks let a test drop, delay,
// corrupt or evict, so the client's retransmission and error paths can be driven on purpose.
import assert from 'node:assert/strict';
import net from 'node:net';

import { Operation as LedgerOperation } from '../lib/ledger/constants';
import { Ledger } from '../lib/ledger/ledger';
import { client_operation_specs } from '../lib/ledger/operations';
import {
    header_size, message_body_size_max, message_size_max, Operation, register_result_body_size,
    release_0_17_9,
} from '../lib/vsr/constants';
import { cluster_bytes, header_init, HeaderView, seal, seal_empty_body } from '../lib/vsr/header';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { MultiBatchDecoder, MultiBatchEncoder, MultiBatchReason } from '../lib/vsr/multi_batch';
import { HeaderValidator, Reason } from '../lib/vsr/validate';

export interface RequestInfo {
    readonly client: string;
    readonly operation: number;
    readonly request: number;
    /** Events per batch of the request body (empty for register). */
    readonly batch_counts: readonly number[];
    readonly view: number;
    readonly release: number;
    /** The whole request message. */
    readonly message: Uint8Array;
}

/** What a hook tells the server to do with a request, instead of the normal path. */
export type RequestAction =
    | { kind: 'drop' }
    | { kind: 'close' }
    | { kind: 'evict', reason: number }
    | { kind: 'delay', ms: number }
    | { kind: 'garbage' }
    | { kind: 'mutate_reply', mutate: (reply: Uint8Array, header: HeaderView) => void };

export interface FakeServerOptions {
    cluster?: bigint;
    batch_size_limit?: number;
    accounts_max?: number;
    transfers_max?: number;
}

interface Session {
    session: number;
    request: number;
    release: number;
    context: Uint8Array;
    reply: Uint8Array | null;
    /** A request that is executing (delayed): its retransmits are dropped. */
    executing: boolean;
}

// From the one operation table.
const event_sizes: Record<number, number> = {};
const result_sizes: Record<number, number> = {};
for (const spec of client_operation_specs) {
    event_sizes[spec.operation] = spec.event_size;
    result_sizes[spec.operation] = spec.result_size;
}

export class FakeServer {
    port = 0;
    readonly requests: RequestInfo[] = [];
    pings = 0;
    on_request: ((info: RequestInfo) => RequestAction | undefined) | null = null;
    readonly sockets = new Set<net.Socket>();
    private readonly server: net.Server;
    private readonly sessions = new Map<string, Session>();
    private readonly validator: HeaderValidator;
    private readonly cluster: Uint8Array;
    private readonly ledger: Ledger;
    private readonly batch_size_limit: number;
    private op = 0;
    private timestamp = 0n;
    private readonly decoder = new MultiBatchDecoder();
    private readonly encoder = new MultiBatchEncoder();
    private readonly output = new Uint8Array(message_size_max);
    private readonly pulse_timer: NodeJS.Timeout;

    constructor(options: FakeServerOptions = {}) {
        const cluster = options.cluster ?? 0n;
        this.validator = new HeaderValidator(cluster);
        this.cluster = cluster_bytes(cluster);
        this.batch_size_limit = options.batch_size_limit ?? message_body_size_max;
        this.ledger = new Ledger({
            accounts_max: options.accounts_max ?? 4096,
            transfers_max: options.transfers_max ?? 16384,
        });
        this.server = net.createServer((socket) => this.accept(socket));
        this.pulse_timer = setInterval(() => this.pulse(), 50);
        this.pulse_timer.unref();
    }

    async start(port = 0): Promise<number> {
        await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
        this.port = (this.server.address() as net.AddressInfo).port;
        return this.port;
    }

    async close(): Promise<void> {
        clearInterval(this.pulse_timer);
        for (const socket of this.sockets) socket.destroy();
        await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }

    /** Sends an eviction to every connection of every session. */
    evict_all(reason: number): void {
        for (const [client_hex] of this.sessions) {
            for (const socket of this.sockets) socket.write(this.eviction(client_hex, reason));
        }
    }

    private accept(socket: net.Socket): void {
        this.sockets.add(socket);
        socket.setNoDelay(true);
        let pending: Buffer = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => {
            pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
            while (pending.length >= header_size) {
                const reason = this.validator.header(pending, 0, pending.length);
                if (reason !== Reason.ok) {
                    socket.destroy();
                    return;
                }
                const size = pending.readUInt32LE(frame.size);
                if (pending.length < size) break;
                const message = new Uint8Array(size);
                message.set(pending.subarray(0, size));
                pending = pending.subarray(size);
                if (this.validator.message(message, 0, size) !== Reason.ok) {
                    socket.destroy();
                    return;
                }
                this.on_message(socket, message);
            }
        });
        socket.on('error', () => undefined);
        socket.on('close', () => this.sockets.delete(socket));
    }

    private on_message(socket: net.Socket, message: Uint8Array): void {
        const header = new HeaderView().attach(message, 0);
        if (header.command === Command.ping_client) {
            this.pings += 1;
            socket.write(this.pong(header));
            return;
        }
        assert.equal(header.command, Command.request);
        const client_hex = hex(message, offsets.request.client);
        const operation = header.u8(offsets.request.operation);
        const info: RequestInfo = {
            client: client_hex, operation, request: header.u32(offsets.request.request),
            batch_counts: this.batch_counts(message, operation), view: header.view,
            release: header.release, message,
        };
        this.requests.push(info);
        const action = this.on_request?.(info);
        if (action !== undefined && this.act(socket, message, client_hex, action)) return;
        this.request(socket, message, client_hex);
    }

    /** Returns true when the action replaces the normal handling. */
    private act(
        socket: net.Socket, message: Uint8Array, client_hex: string, action: RequestAction,
    ): boolean {
        switch (action.kind) {
            case 'drop': return true;
            case 'close': socket.destroy(); return true;
            case 'evict': socket.write(this.eviction(client_hex, action.reason)); return true;
            case 'garbage': socket.write(Buffer.alloc(300, 0xAB)); return true;
            case 'delay': {
                const session = this.sessions.get(client_hex);
                if (session !== undefined) session.executing = true;
                setTimeout(() => {
                    if (session !== undefined) session.executing = false;
                    if (!socket.destroyed) this.request(socket, message, client_hex);
                }, action.ms);
                return true;
            }
            case 'mutate_reply': {
                const reply = this.execute_request(message, client_hex);
                if (reply === null) return true;
                const copy = reply.slice();
                action.mutate(copy, new HeaderView().attach(copy, 0));
                socket.write(copy);
                return true;
            }
        }
    }

    private request(socket: net.Socket, message: Uint8Array, client_hex: string): void {
        const header = new HeaderView().attach(message, 0);
        const session = this.sessions.get(client_hex);
        if (session?.executing === true) return;
        if (session !== undefined && header.u32(offsets.request.request) === session.request &&
            session.reply !== null) {
            // A retransmit of the last request: the cached reply, not a second execution (§5.3).
            socket.write(session.reply);
            return;
        }
        const reply = this.execute_request(message, client_hex);
        if (reply !== null) socket.write(reply);
    }

    /** Runs register or an operation; returns the reply, or null when the request is dropped. */
    private execute_request(message: Uint8Array, client_hex: string): Uint8Array | null {
        const header = new HeaderView().attach(message, 0);
        const operation = header.u8(offsets.request.operation);
        const request = header.u32(offsets.request.request);
        let session = this.sessions.get(client_hex);
        if (operation === Operation.register) {
            if (session !== undefined && session.reply !== null && session.request === 0) {
                return session.reply;
            }
            this.op += 1;
            session = { session: this.op, request: 0, release: header.release,
                context: new Uint8Array(16), reply: null, executing: false };
            this.sessions.set(client_hex, session);
            const body = new Uint8Array(register_result_body_size);
            new DataView(body.buffer).setUint32(0, this.batch_size_limit, true);
            return this.reply(message, session, body);
        }
        if (session === undefined) return this.eviction(client_hex, 1);
        if (request !== session.request + 1) return null;
        if (!header.equal16(offsets.request.parent, session.context, 0)) return null;
        this.op += 1;
        const body = this.execute(operation, message.subarray(header_size));
        if (body === null) return this.eviction(client_hex, 5);
        session.request = request;
        return this.reply(message, session, body);
    }

    private batch_counts(message: Uint8Array, operation: number): number[] {
        const event_size = event_sizes[operation];
        if (event_size === undefined) return [];
        const size = message.length - header_size;
        if (this.decoder.decode(message, header_size, size, event_size) !== MultiBatchReason.ok) {
            return [];
        }
        const counts: number[] = [];
        for (let batch = 0; batch < this.decoder.batch_count; batch++) {
            counts.push(this.decoder.element_count(batch));
        }
        return counts;
    }

    private execute(operation: number, body: Uint8Array): Uint8Array | null {
        const event_size = event_sizes[operation];
        const result_size = result_sizes[operation];
        if (event_size === undefined || result_size === undefined) return null;
        const decoder = this.decoder;
        if (decoder.decode(body, 0, body.length, event_size) !== MultiBatchReason.ok) return null;
        this.encoder.reset(this.output, 0, message_body_size_max, result_size);
        const now_ns = BigInt(Date.now()) * 1_000_000n;
        if (this.timestamp < now_ns) this.timestamp = now_ns;
        for (let batch = 0; batch < decoder.batch_count; batch++) {
            const count = decoder.element_count(batch);
            const offset = decoder.batch_offset(batch);
            const create = operation === Operation.create_accounts ||
                operation === Operation.create_transfers;
            this.timestamp += create ? BigInt(Math.max(count, 1)) : 1n;
            this.ledger.prefetch(operation, body, offset, count * event_size);
            const length = this.ledger.execute(operation, this.timestamp, body, offset,
                count * event_size, this.output, this.encoder.payload_offset());
            this.encoder.add_batch(length / result_size);
        }
        const size = this.encoder.finish();
        return this.output.slice(0, size);
    }

    private reply(request: Uint8Array, session: Session, body: Uint8Array): Uint8Array {
        const source = new HeaderView().attach(request, 0);
        const bytes = new Uint8Array(header_size + body.length);
        bytes.set(body, header_size);
        const header = header_init(new HeaderView(), bytes, 0, Command.reply, bytes.length,
            source.release);
        header.copy16_from(frame.cluster, this.cluster, 0);
        const at = offsets.reply;
        header.copy16_from(at.request_checksum, request, frame.checksum);
        header.copy16_from(at.client, request, offsets.request.client);
        header.set_u64(at.op, this.op);
        header.set_u64(at.commit, this.op);
        header.set_u64_bigint(at.timestamp, this.timestamp === 0n ?
            BigInt(Date.now()) * 1_000_000n : this.timestamp);
        header.set_u32(at.request, source.u32(offsets.request.request));
        header.set_u8(at.operation, source.u8(offsets.request.operation));
        seal(header);
        session.context = bytes.slice(at.context, at.context + 16);
        session.reply = bytes;
        return bytes;
    }

    private pong(ping: HeaderView): Uint8Array {
        const bytes = new Uint8Array(header_size);
        const header = header_init(new HeaderView(), bytes, 0, Command.pong_client, header_size,
            release_0_17_9);
        header.copy16_from(frame.cluster, this.cluster, 0);
        header.copy16_from(offsets.pong_client.ping_timestamp_monotonic, ping.bytes,
            offsets.ping_client.ping_timestamp_monotonic);
        // copy16 took 16 bytes; the field is 8, the rest must stay zero.
        header.fill_zero(offsets.pong_client.ping_timestamp_monotonic + 8, 8);
        seal_empty_body(header);
        return bytes;
    }

    private eviction(client_hex: string, reason: number): Uint8Array {
        const bytes = new Uint8Array(header_size);
        const header = header_init(new HeaderView(), bytes, 0, Command.eviction, header_size,
            release_0_17_9);
        header.copy16_from(frame.cluster, this.cluster, 0);
        header.copy16_from(offsets.eviction.client, Buffer.from(client_hex, 'hex'), 0);
        header.set_u8(offsets.eviction.reason, reason);
        seal_empty_body(header);
        this.sessions.delete(client_hex);
        return bytes;
    }

    private pulse(): void {
        const now_ns = BigInt(Date.now()) * 1_000_000n;
        if (!this.ledger.pulse_needed(now_ns)) return;
        this.timestamp = (this.timestamp < now_ns ? now_ns : this.timestamp) + 8190n;
        this.ledger.execute(LedgerOperation.pulse, this.timestamp, this.output, 0, 0, this.output,
            0);
    }
}

function hex(bytes: Uint8Array, offset: number): string {
    return Buffer.from(bytes.subarray(offset, offset + 16)).toString('hex');
}
