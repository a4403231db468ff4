// THE operation table: for every operation of the state machine, its code, name, kind of batch,
// event size, result size and (for queries) where the result bound `limit` sits in its filter.
// The replica's state machine, the client's codec and the tests read it from here; adding an
// operation is one row. Per-code typed arrays are built from it at load for the hot paths.
import assert from 'node:assert/strict';

import { change_event_size } from '../constants';

/** How an operation's body is shaped. */
export const OperationKind = {
    /** Not an operation a client may send. */
    none: 0,
    /** Batches of events that change state; one result per event that failed or succeeded. */
    create: 1,
    /** Batches of ids; one result per id found. */
    lookup: 2,
    /** One filter per batch; the result count is bounded by the filter's `limit`. */
    filter: 3,
    /** Not multi-batch: one filter in, up to change_events_reply_max events out. */
    change_events: 4,
} as const;

export interface OperationSpec {
    readonly operation: number;
    readonly name: string;
    readonly kind: number;
    readonly event_size: number;
    readonly result_size: number;
    /** Byte offset of the u32 `limit` in the filter (filter and change-event kinds only). */
    readonly limit_offset: number;
}

const K = OperationKind;

/** Every operation a client may send, in code order. */
export const operation_specs: readonly OperationSpec[] = Object.freeze([
    row(137, 'get_change_events', K.change_events, 64, change_event_size, 16),
    row(140, 'lookup_accounts', K.lookup, 16, 128),
    row(141, 'lookup_transfers', K.lookup, 16, 128),
    row(142, 'get_account_transfers', K.filter, 128, 128, 120),
    row(143, 'get_account_balances', K.filter, 128, 128, 120),
    row(144, 'query_accounts', K.filter, 64, 128, 56),
    row(145, 'query_transfers', K.filter, 64, 128, 56),
    row(146, 'create_accounts', K.create, 128, 16),
    row(147, 'create_transfers', K.create, 128, 16),
]);

function row(operation: number, name: string, kind: number, event_size: number,
    result_size: number, limit_offset = 0): OperationSpec {
    return Object.freeze({ operation, name, kind, event_size, result_size, limit_offset });
}

/** Per operation code (0..255): the table's columns as typed arrays, for the hot paths. */
export const operation_kind = new Uint8Array(256);
export const operation_event_size = new Uint16Array(256);
export const operation_result_size = new Uint16Array(256);
export const operation_limit_offset = new Uint8Array(256);
const spec_by_code: (OperationSpec | undefined)[] = [];

for (const spec of operation_specs) {
    assert(spec.operation > 128 && spec.operation < 256, `operation ${spec.name}: its code`);
    assert.equal(operation_kind[spec.operation], K.none, `operation ${spec.name}: twice`);
    // Filters carry their bound inside the event, as the last u32 before padding.
    const bounded = spec.kind === K.filter || spec.kind === K.change_events;
    assert.equal(bounded, spec.limit_offset > 0, `operation ${spec.name}: limit_offset`);
    assert(spec.limit_offset + 4 <= spec.event_size);
    operation_kind[spec.operation] = spec.kind;
    operation_event_size[spec.operation] = spec.event_size;
    operation_result_size[spec.operation] = spec.result_size;
    operation_limit_offset[spec.operation] = spec.limit_offset;
    spec_by_code[spec.operation] = spec;
}

/** The row of an operation, or undefined when clients may not send it. */
export function operation_spec(operation: number): OperationSpec | undefined {
    return spec_by_code[operation];
}

/** The multi-batch operations tigerbeetle-node sends (all but the change-event feed). */
export const client_operation_specs: readonly OperationSpec[] =
    operation_specs.filter((spec) => spec.kind !== K.change_events);
