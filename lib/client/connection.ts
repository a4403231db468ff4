// One client connection to one replica over node:net: connecting with backoff, framing the byte
// stream into messages, validating each header (lib/vsr/validate.ts), and sending whole messages
// while remembering which buffer each unflushed write still references.
//
// Reading uses `onread` with one preallocated chunk, copied into a receive buffer of one maximal
// message, so that no Buffer is allocated per read. Messages are handed to the owner where they lie
// and must be consumed before `on_message` returns.
//
// What a bad message does (docs/wire-protocol.md §1, §8): a wrong checksum, an unknown command,
// a size out of range or another cluster closes the connection (and the client reconnects); any
// other invalid header is ignored, and counted through `on_invalid`.
import assert from 'node:assert/strict';
import net from 'node:net';

import { address_parse } from '../io/address';
import type { Address } from '../io/address';
import { header_size, message_size_max } from '../vsr/constants';
import { frame } from '../vsr/header_layout';
import { HeaderValidator, Reason, reason_text } from '../vsr/validate';
import type { ReasonCode } from '../vsr/validate';

export type { Address };

/** Parses '3000', 3000, 'host:3000' or '[::1]:3000' (io/address.ts); a bare port: 127.0.0.1. */
export function parse_address(value: string | number): Address {
    const address = address_parse(String(value), 1);
    if (typeof address === 'string') throw new Error(`invalid replica address: ${address}`);
    return address;
}

export interface ConnectionOwner {
    /** A valid message lies at bytes[offset, offset + size); read it before returning. */
    on_message(replica: number, bytes: Uint8Array, offset: number, size: number): void;
    on_connected(replica: number): void;
    on_disconnected(replica: number, reason: string): void;
    on_invalid(replica: number, reason: string): void;
    /** A write finished (flushed or failed): the buffer `slot` is no longer referenced by it. */
    on_write_done(slot: number): void;
}

/** Unflushed writes per connection; a connection this far behind gets no more until it drains. */
const writes_pending_max = 16;
const read_chunk_size = 64 * 1024;

// Reasons after which the stream cannot be trusted: the client closes and reconnects.
const closing_reasons: readonly number[] = [
    Reason.checksum_invalid, Reason.command_unknown, Reason.size_below_header,
    Reason.size_above_max, Reason.cluster_mismatch, Reason.checksum_body_invalid,
];

export class Connection {
    readonly address: Address;
    socket: net.Socket | null = null;
    state: 'disconnected' | 'connecting' | 'connected' = 'disconnected';
    /** Ticks until the next connection attempt while disconnected. */
    reconnect_ticks = 0;
    private reconnect_attempt = 0;
    private readonly receive = new Uint8Array(message_size_max);
    private receive_size = 0;
    private readonly chunk = new Uint8Array(read_chunk_size);
    // Ring of the buffer slots referenced by unflushed writes, in write order.
    private readonly writes_slot = new Int32Array(writes_pending_max);
    private writes_head = 0;
    writes_count = 0;
    private closed_reason = '';
    /** The errno name of the error that ended the socket (`ECONNREFUSED`), '' for none. */
    private closed_code = '';
    // What this connection saw, for a request that gets no reply to say why (Client.diagnosis):
    /** The last failed attempt's error (`connect ECONNREFUSED ...`); '' once connected. */
    connect_error = '';
    /** Its errno name (`ECONNREFUSED`, `EHOSTUNREACH`, ...), '' when it had none. */
    connect_error_code = '';
    /** Connections the peer closed after we sent, before any valid message came back. */
    closed_unanswered_count = 0;
    /** Valid messages received, over every connection to this replica. */
    messages_received_count = 0;
    private sent_since_connect = false;
    private received_since_connect = false;

    private readonly on_read_bound = (size: number, buffer: Uint8Array): boolean => {
        this.on_read(size, buffer);
        return true;
    };
    // The write callback of the current socket: one per socket, so that a late callback of a
    // destroyed socket cannot release a write of its successor.
    private on_write_current: () => void = () => undefined;

    constructor(
        readonly replica: number,
        address: Address,
        private readonly owner: ConnectionOwner,
        private readonly validator: HeaderValidator,
    ) {
        this.address = address;
    }

    connect(): void {
        assert.equal(this.state, 'disconnected');
        assert.equal(this.socket, null);
        this.state = 'connecting';
        this.receive_size = 0;
        this.closed_reason = '';
        this.closed_code = '';
        const socket = net.connect({
            host: this.address.host,
            port: this.address.port,
            noDelay: true,
            onread: { buffer: this.chunk, callback: this.on_read_bound },
        });
        socket.unref();
        this.socket = socket;
        this.on_write_current = () => {
            if (this.socket === socket) this.on_write();
        };
        socket.on('connect', () => {
            if (this.socket !== socket) return;
            this.state = 'connected';
            this.reconnect_attempt = 0;
            this.connect_error = '';
            this.connect_error_code = '';
            this.sent_since_connect = false;
            this.received_since_connect = false;
            this.owner.on_connected(this.replica);
        });
        socket.on('error', (error: Error) => {
            if (this.closed_reason !== '') return;
            this.closed_reason = error.message;
            const code = (error as NodeJS.ErrnoException).code;
            this.closed_code = typeof code === 'string' ? code : '';
        });
        socket.on('close', () => {
            if (this.socket === socket) this.on_close();
        });
    }

    /** Ends the connection now; it reconnects after `backoff_ticks` (0: stays closed). */
    close(reason: string): void {
        if (this.socket === null) return;
        if (this.closed_reason === '') this.closed_reason = reason;
        this.socket.destroy();
        this.on_close();
    }

    /**
     * Sends bytes[0, size) of buffer `slot`. Returns false without sending when the connection is
     * down or too far behind; the caller's retransmission timer covers both.
     */
    send(bytes: Uint8Array, size: number, slot: number): boolean {
        if (this.state !== 'connected' || this.socket === null) return false;
        if (this.writes_count === writes_pending_max) return false;
        assert.ok(size >= header_size && size <= bytes.length);
        const index = (this.writes_head + this.writes_count) % writes_pending_max;
        this.writes_slot[index] = slot;
        this.writes_count += 1;
        this.sent_since_connect = true;
        this.socket.write(bytes.subarray(0, size), this.on_write_current);
        return true;
    }

    /** Whether an unflushed write still references buffer `slot`. */
    writing(slot: number): boolean {
        for (let offset = 0; offset < this.writes_count; offset++) {
            if (this.writes_slot[(this.writes_head + offset) % writes_pending_max] === slot) {
                return true;
            }
        }
        return false;
    }

    private on_write(): void {
        if (this.writes_count === 0) return; // Already released by on_close.
        const slot = this.writes_slot[this.writes_head]!;
        this.writes_head = (this.writes_head + 1) % writes_pending_max;
        this.writes_count -= 1;
        this.owner.on_write_done(slot);
    }

    private on_close(): void {
        const socket = this.socket;
        if (socket === null) return;
        this.socket = null;
        const was_connected = this.state === 'connected';
        this.state = 'disconnected';
        this.receive_size = 0;
        // A destroyed socket drops its queued writes; the buffers are free again.
        while (this.writes_count > 0) this.on_write();
        this.reconnect_attempt = Math.min(this.reconnect_attempt + 1, 5);
        this.reconnect_ticks = backoff_ticks(this.reconnect_attempt);
        const reason = this.closed_reason === '' ? 'closed by peer' : this.closed_reason;
        if (!was_connected) {
            this.connect_error = reason;
            this.connect_error_code = this.closed_code;
        }
        // A replica closes a connection whose messages name another cluster, without a word.
        if (was_connected && this.closed_reason === '' && this.sent_since_connect &&
            !this.received_since_connect) {
            this.closed_unanswered_count += 1;
        }
        if (was_connected) this.owner.on_disconnected(this.replica, reason);
    }

    private on_read(size: number, buffer: Uint8Array): void {
        assert.ok(buffer === this.chunk && size <= this.chunk.length);
        let copied = 0;
        while (copied < size && this.socket !== null) {
            const count = Math.min(size - copied, this.receive.length - this.receive_size);
            assert.ok(count > 0);
            this.receive.set(this.chunk.subarray(copied, copied + count), this.receive_size);
            this.receive_size += count;
            copied += count;
            this.frame();
        }
    }

    /** Consumes every complete message at the start of the receive buffer. */
    private frame(): void {
        let offset = 0;
        while (this.socket !== null && this.receive_size - offset >= header_size) {
            const available = this.receive_size - offset;
            const header_reason = this.validator.header(this.receive, offset, available);
            if (closing_reasons.includes(header_reason)) {
                this.close(`invalid message: ${reason_text[header_reason]}`);
                return;
            }
            const size = read_u32(this.receive, offset + frame.size);
            if (available < size) break;
            const reason: ReasonCode = header_reason === Reason.ok ?
                this.validator.message(this.receive, offset, available) : header_reason;
            if (closing_reasons.includes(reason)) {
                this.close(`invalid message: ${reason_text[reason]}`);
                return;
            }
            if (reason === Reason.ok) {
                this.received_since_connect = true;
                this.messages_received_count += 1;
                this.owner.on_message(this.replica, this.receive, offset, size);
            } else {
                this.owner.on_invalid(this.replica, reason_text[reason]!);
            }
            offset += size;
        }
        if (this.socket === null) return;
        if (offset > 0) {
            this.receive.copyWithin(0, offset, this.receive_size);
            this.receive_size -= offset;
        }
    }
}

function read_u32(bytes: Uint8Array, at: number): number {
    return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) |
        (bytes[at + 3]! << 24)) >>> 0;
}

/** Reconnection delay in 10 ms ticks: 50 ms doubling per attempt up to 1 s, with jitter. */
function backoff_ticks(attempt: number): number {
    const ceiling = Math.min(100, 5 * 2 ** attempt);
    return 5 + Math.floor(Math.random() * (ceiling - 4));
}
