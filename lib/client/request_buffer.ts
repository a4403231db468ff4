// One request's message buffer: the packets encoded into it as batches of one multi-batch body
// (docs/wire-protocol.md §6.2-§6.3), the bookkeeping of its retransmission, and the split of its
// reply back into one result array per packet.
import assert from 'node:assert/strict';

import {
    header_size, message_body_size_max, message_size_max, Operation as VsrOperation,
    register_request_body_size,
} from '../vsr/constants';
import { MultiBatchDecoder, MultiBatchEncoder, MultiBatchReason, multi_batch_trailer_size }
    from '../vsr/multi_batch';
import { Operation } from './bindings';
import { decode_results, encode_events, filter_limit, operation_spec } from './codec';
import type { Result } from './codec';
import { ErrorCodes, RequestError } from './errors';
import { Packet, PacketList } from './packet';

/** What a completed request hands back, packet by packet, in request order. */
export interface RequestBufferOwner {
    resolve(packet: Packet, results: Result[] | null, error: Error | null): void;
}

export type AddOutcome = 'added' | 'full' | 'too_much_data' | Error;

// Decoding is synchronous and never re-entered, so one decoder serves every client.
const decoder = new MultiBatchDecoder();

export class RequestBuffer {
    readonly bytes = new Uint8Array(message_size_max);
    readonly data = new DataView(this.bytes.buffer);
    readonly packets = new PacketList();
    private readonly encoder = new MultiBatchEncoder();
    /** 0 while the buffer is free. */
    operation: number = 0;
    /** Worst-case reply payload: Σ result_max × result size. */
    private reply_payload_max = 0;
    request = 0;
    size = 0;
    sent_ms = 0;
    attempts = 0;
    timeout_ticks = 0;

    constructor(readonly index: number) {}

    get batch_count(): number {
        return this.encoder.batch_count;
    }

    idle(): boolean {
        return this.operation === 0;
    }

    begin(operation: Operation, batch_size_limit: number): void {
        assert.ok(this.idle() && this.packets.count === 0);
        const spec = operation_spec(operation)!;
        assert.ok(batch_size_limit > 0 && batch_size_limit <= message_body_size_max);
        this.operation = operation;
        this.reply_payload_max = 0;
        this.encoder.reset(this.bytes, header_size, batch_size_limit, spec.event_size);
    }

    begin_register(): void {
        assert.ok(this.idle() && this.packets.count === 0);
        this.operation = VsrOperation.register;
        this.bytes.fill(0, header_size, header_size + register_request_body_size);
    }

    /**
     * Encodes the packet as the next batch, or says why not ('full': try the next request).
     * After 'added' the caller moves the packet into `packets`.
     */
    add(packet: Packet): AddOutcome {
        assert.equal(packet.operation, this.operation);
        const spec = operation_spec(this.operation)!;
        const at = this.encoder.payload_offset();
        let result_max = packet.count;
        if (!this.encoder.fits(packet.count) || !this.reply_fits(result_max)) {
            return this.batch_count === 0 ? 'too_much_data' : 'full';
        }
        try {
            encode_events(packet.operation, packet.source, this.data, at);
        } catch (error) {
            return error instanceof Error ? error : new Error(String(error));
        }
        if (spec.filter) {
            result_max = filter_limit(packet.operation, this.data, at);
            if (!this.reply_fits(result_max)) {
                return this.batch_count === 0 ? 'too_much_data' : 'full';
            }
        }
        packet.result_max = result_max;
        packet.source = null;
        this.encoder.add_batch(packet.count);
        this.reply_payload_max += result_max * spec.result_size;
        return 'added';
    }

    private reply_fits(result_count: number): boolean {
        const result_size = operation_spec(this.operation)!.result_size;
        return this.reply_payload_max + result_count * result_size +
            multi_batch_trailer_size(this.batch_count + 1, result_size) <= message_body_size_max;
    }

    /** Writes the trailer; returns the body size. */
    finish(): number {
        assert.ok(this.batch_count === this.packets.count && this.batch_count > 0);
        // Postcondition of add(): the packets are the batches, in order.
        return this.encoder.finish();
    }

    /**
     * Splits the reply body at bytes[offset, +size) into each packet's results; a body that does
     * not decode as this request's reply fails every packet with ERR_INVALID_REPLY.
     */
    complete(bytes: Uint8Array, offset: number, size: number, owner: RequestBufferOwner): void {
        assert.ok(!this.idle() && this.operation !== VsrOperation.register);
        const operation = this.operation as Operation;
        const result_size = operation_spec(operation)!.result_size;
        const valid = decoder.decode(bytes, offset, size, result_size) === MultiBatchReason.ok &&
            decoder.batch_count === this.packets.count && this.counts_valid();
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        let batch = 0;
        for (let packet = this.packets.shift(); packet !== null; packet = this.packets.shift()) {
            if (!valid) {
                owner.resolve(packet, null, new RequestError(ErrorCodes.ERR_INVALID_REPLY));
            } else if (packet.settled) {
                owner.resolve(packet, null, null); // Abandoned: results are not wanted.
            } else {
                const results = decode_results(operation, view, decoder.batch_offset(batch),
                    decoder.element_count(batch));
                owner.resolve(packet, results, null);
            }
            batch += 1;
        }
        this.reset();
    }

    private counts_valid(): boolean {
        let batch = 0;
        for (let packet = this.packets.head; packet !== null; packet = packet.next) {
            if (decoder.element_count(batch) > packet.result_max) return false;
            batch += 1;
        }
        return true;
    }

    reset(): void {
        assert.equal(this.packets.count, 0);
        this.operation = 0;
        this.reply_payload_max = 0;
        this.request = 0;
        this.size = 0;
        this.attempts = 0;
        this.timeout_ticks = 0;
        this.encoder.reset(this.bytes, header_size, 0, 1);
    }
}
