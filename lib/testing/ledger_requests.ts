// Client requests of the ledger workload for the simulators (tests only; allocates freely): the
// multi-batch bodies clients send (docs/wire-protocol.md §6.2), a request of 1-3 workload batches
// the way tigerbeetle-node merges them, and the check of one committed request against the
// reference model: each batch re-executed at its docs/wire-protocol.md §6.6 timestamp, and the
// reply compared byte for byte.
import assert from 'node:assert/strict';

import { client_operation_specs, operation_spec } from '../ledger/operations';
import { MultiBatchDecoder, MultiBatchEncoder } from '../vsr/multi_batch';
import type { LedgerModel } from './ledger_model';
import { Op } from './ledger_model';
import type { Batch, LedgerWorkload } from './ledger_workload';

/** Event size per client operation, from the one operation table. */
export const event_size: Readonly<Record<number, number>> = (() => {
    const sizes: Record<number, number> = {};
    for (const spec of client_operation_specs) sizes[spec.operation] = spec.event_size;
    return sizes;
})();

export function result_size(operation: number): number {
    const spec = operation_spec(operation);
    assert(spec !== undefined, `operation ${operation} is not in the operation table`);
    return spec.result_size;
}

/** Encodes batches of raw events as one multi-batch body. */
export function multi_batch_body(batches: Uint8Array[], event_size_bytes: number): Uint8Array {
    const total = batches.reduce((sum, batch) => sum + batch.length, 0);
    const target = new Uint8Array(total + (batches.length * 2 + 2) + event_size_bytes * 2);
    const encoder = new MultiBatchEncoder();
    encoder.reset(target, 0, target.length, event_size_bytes);
    for (const batch of batches) {
        target.set(batch, encoder.payload_offset());
        encoder.add_batch(batch.length / event_size_bytes);
    }
    return target.slice(0, encoder.finish());
}

/** Splits a multi-batch body into its batches (copies). */
export function multi_batch_split(body: Uint8Array, element_size: number): Uint8Array[] {
    const decoder = new MultiBatchDecoder();
    assert.equal(decoder.decode(body, 0, body.length, element_size), 0);
    const result: Uint8Array[] = [];
    for (let batch = 0; batch < decoder.batch_count; batch++) {
        const start = decoder.batch_offset(batch);
        result.push(body.slice(start, start + decoder.element_count(batch) * element_size));
    }
    return result;
}

export interface WorkloadRequest { operation: number; batches: Batch[] }

/** A request of 1-3 workload batches of one operation (creates merge, as the client does). */
export function request_next(workload: LedgerWorkload): WorkloadRequest {
    for (let attempt = 0; attempt < 100; attempt++) {
        const batch = workload.next();
        if (event_size[batch.operation] === undefined) continue; // Pulses are the replica's.
        const batches = [batch];
        const creates = batch.operation === Op.create_accounts ||
            batch.operation === Op.create_transfers;
        while (creates && batches.length < 3 && workload.prng.chance(1, 3)) {
            const more = workload.next();
            if (more.operation !== batch.operation) break;
            batches.push(more);
        }
        return { operation: batch.operation, batches };
    }
    assert.fail('workload produced no client batch');
}

/** The body a client sends for a workload request. */
export function request_body(request: WorkloadRequest): Uint8Array {
    const size = event_size[request.operation];
    assert(size !== undefined);
    return multi_batch_body(request.batches.map((batch) => batch.input), size);
}

/** Create events in a request (what it can take of the ledger's capacity). */
export function request_create_events(request: WorkloadRequest): { accounts: number;
    transfers: number; } {
    const events = request.batches.reduce((sum, batch) => sum + batch.input.length / 128, 0);
    return {
        accounts: request.operation === Op.create_accounts ? events : 0,
        transfers: request.operation === Op.create_transfers ? events : 0,
    };
}

/**
 * Executes one committed client request on the model, batch by batch, at the timestamps the
 * replica gives them (a create batch's events take the nanoseconds just below the prepare
 * timestamp), and compares each batch's result with the reply when the client got one.
 */
export function request_check(model: LedgerModel, op: number, operation: number,
    timestamp: bigint, request: Uint8Array, reply: Uint8Array | null): void {
    const batches = multi_batch_split(request, event_size[operation]!);
    const replies = reply === null ? null : multi_batch_split(reply, result_size(operation));
    if (replies !== null) assert.equal(replies.length, batches.length, `op ${op}: batch count`);
    const creates = operation === Op.create_accounts || operation === Op.create_transfers;
    const total = batches.reduce((sum, batch) => sum + batch.length / 128, 0);
    let before = 0;
    batches.forEach((batch, index) => {
        let batch_timestamp = timestamp;
        if (creates) {
            before += batch.length / 128;
            batch_timestamp = timestamp - BigInt(total - before);
        }
        const expected = model.execute(operation, batch_timestamp, batch);
        if (replies !== null) {
            assert.deepEqual(replies[index], expected, `op ${op} batch ${index}: the reply ` +
                'differs from the reference model');
        }
    });
}
