// The replica's side of the state machine: which operations exist, what a valid request body is
// (TigerBeetle's `input_valid`, docs/wire-protocol.md §6.2-§6.3), how many events a body holds (the
// prepare timestamp advances by that count for create_*, §6.6), and executing a committed prepare
// body into a reply body: each batch of a multi-batch body runs through the ledger and its results
// are encoded, batch for batch, into the reply buffer. Nothing allocates per request except the
// one BigInt timestamp per batch that `Ledger.execute` takes.
import assert from 'node:assert/strict';

import { change_events_reply_max } from '../constants';
import type { StateMachine } from '../vsr/state_machine';
import type { Ledger } from './ledger';
import { batch_events_max } from './constants';
import {
    OperationKind, operation_event_size, operation_kind, operation_limit_offset,
    operation_result_size,
} from './operations';
import { MultiBatchDecoder, MultiBatchEncoder, MultiBatchReason, multi_batch_trailer_size }
    from '../vsr/multi_batch';

/** The ledger's operation code for the pulse that expires pending transfers. */
export const ledger_operation_pulse = 128;
/** Not multi-batch: one 64-byte filter in, up to 2730 change events of 384 bytes out. */
export const operation_get_change_events = 137;

// The operation table (ledger/operations.ts), as per-code typed arrays.
const kind = operation_kind;
const event_size = operation_event_size;
const result_size = operation_result_size;
const limit_offset = operation_limit_offset;
const kind_none = OperationKind.none;
const kind_create = OperationKind.create;
const kind_filter = OperationKind.filter;
const kind_change_events = OperationKind.change_events;

/** Whether a client may request this operation (register is handled by the replica). */
export function operation_supported(operation: number): boolean {
    return kind[operation] !== kind_none;
}

export function operation_is_create(operation: number): boolean {
    return kind[operation] === kind_create;
}

function u32_at(bytes: Uint8Array, at: number): number {
    return (bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 | bytes[at + 3]! << 24) >>> 0;
}

/** Adapts prepares to the ledger; one instance per replica, reused for every prepare. */
export class LedgerStateMachine implements StateMachine {
    readonly ledger: Ledger;
    private readonly decoder = new MultiBatchDecoder();
    private readonly encoder = new MultiBatchEncoder();
    /** The body size limit of a reply (message_size_max - 256). */
    private readonly reply_body_size_max: number;

    constructor(ledger: Ledger, reply_body_size_max: number) {
        this.ledger = ledger;
        this.reply_body_size_max = reply_body_size_max;
    }

    /**
     * Whether a request body is valid for its operation (TigerBeetle's input_valid): a well-formed
     * multi-batch of whole events, at most batch_events_max per batch, exactly one filter per
     * query batch, and a worst-case reply that fits one message.
     */
    operation_supported(operation: number): boolean {
        return operation_supported(operation);
    }

    operation_is_create(operation: number): boolean {
        return operation_is_create(operation);
    }

    input_valid(operation: number, body: Uint8Array, offset: number, size: number): boolean {
        const operation_kind = kind[operation]!;
        assert(operation_kind !== kind_none);
        if (operation_kind === kind_change_events) return size === event_size[operation];
        const decoder = this.decoder;
        if (decoder.decode(body, offset, size, event_size[operation]!) !== MultiBatchReason.ok) {
            return false;
        }
        const result = result_size[operation]!;
        let results_max = 0;
        for (let batch = 0; batch < decoder.batch_count; batch++) {
            const count = decoder.element_count(batch);
            if (count > batch_events_max) return false;
            if (operation_kind === kind_filter) {
                if (count !== 1) return false;
                const limit = u32_at(body, decoder.batch_offset(batch) + limit_offset[operation]!);
                results_max += Math.min(limit, batch_events_max);
            } else {
                results_max += count;
            }
        }
        const reply_size = results_max * result +
            multi_batch_trailer_size(decoder.batch_count, result);
        return reply_size <= this.reply_body_size_max;
    }

    /**
     * The number of events a valid body holds (all batches together); the prepare timestamp of a
     * create_* advances by it. Other operations count 0.
     */
    events_count(operation: number, body: Uint8Array, offset: number, size: number): number {
        if (kind[operation] !== kind_create) return 0;
        const reason = this.decoder.decode(body, offset, size, event_size[operation]!);
        assert(reason === MultiBatchReason.ok, 'events_count: body was validated on receipt');
        return this.decoder.element_count_total();
    }

    /**
     * The first capacity limit (a `Limit` code) a create batch of `events` more events would
     * exceed, or Limit.none (0) when it fits.
     */
    capacity_limit(operation: number, events: number): number {
        if (kind[operation] !== kind_create) return 0;
        return this.ledger.capacity_limit(operation, events * event_size[operation]!);
    }

    limit_value(limit: number): number {
        return this.ledger.limit_value(limit);
    }

    limit_used(limit: number): number {
        return this.ledger.limit_used(limit);
    }

    /**
     * Executes a committed prepare body at the prepare timestamp (hi, lo) and writes the reply
     * body at output[output_offset]; returns its size. For create_*, batch b runs at the
     * timestamp of its last event, `base + events up to and including b` (§6.6), where
     * base = prepare timestamp - all events.
     */
    execute(operation: number, timestamp_hi: number, timestamp_lo: number, body: Uint8Array,
        offset: number, size: number, output: Uint8Array, output_offset: number): number {
        const operation_kind = kind[operation]!;
        assert(operation_kind !== kind_none);
        if (operation_kind === kind_change_events) {
            assert(size === 64);
            const length = this.ledger.execute(operation, timestamp_bigint(timestamp_hi,
                timestamp_lo), body, offset, size, output, output_offset);
            assert(length <= change_events_reply_max * 384);
            return length;
        }
        const decoder = this.decoder;
        const event = event_size[operation]!;
        const result = result_size[operation]!;
        const reason = decoder.decode(body, offset, size, event);
        assert(reason === MultiBatchReason.ok, 'execute: body was validated before prepare');
        const encoder = this.encoder;
        encoder.reset(output, output_offset, this.reply_body_size_max, result);
        // For create_*, walk the batch timestamps forward from base.
        let events_before = 0;
        const events_total = operation_kind === kind_create ? decoder.element_count_total() : 0;
        for (let batch = 0; batch < decoder.batch_count; batch++) {
            const count = decoder.element_count(batch);
            let batch_hi = timestamp_hi;
            let batch_lo = timestamp_lo;
            if (operation_kind === kind_create) {
                events_before += count;
                const back = events_total - events_before;
                batch_lo = timestamp_lo - back;
                while (batch_lo < 0) { batch_lo += 0x1_0000_0000; batch_hi -= 1; }
            }
            const length = this.ledger.execute(operation, timestamp_bigint(batch_hi, batch_lo),
                body, decoder.batch_offset(batch), count * event, output,
                encoder.payload_offset());
            assert(length % result === 0);
            encoder.add_batch(length / result);
        }
        return encoder.finish();
    }

    /** The pulse: expires pending transfers due at the prepare timestamp; no reply body. */
    pulse(timestamp_hi: number, timestamp_lo: number, scratch: Uint8Array): void {
        const length = this.ledger.execute(ledger_operation_pulse,
            timestamp_bigint(timestamp_hi, timestamp_lo), scratch, 0, 0, scratch, 0);
        assert.equal(length, 0);
    }

    /** Whether a pulse at (hi, lo) would expire anything (asked at most every pulse tick). */
    pulse_needed(timestamp_hi: number, timestamp_lo: number): boolean {
        return this.ledger.pulse_needed(timestamp_bigint(timestamp_hi, timestamp_lo));
    }
}

/** The ledger's API takes BigInt timestamps: one per batch. */
function timestamp_bigint(hi: number, lo: number): bigint {
    assert(hi >= 0 && hi < 0x8000_0000 && lo >= 0 && lo < 0x1_0000_0000);
    return (BigInt(hi) << 32n) | BigInt(lo);
}
