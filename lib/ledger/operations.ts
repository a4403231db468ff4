// THE operation table: for every operation of the state machine, its code, name, kind of batch,
// event size, result size and (for queries) where the result bound `limit` sits in its filter.
// The replica's state machine, the client's codec and the tests read it from here; adding an
// operation is one row. Per-code typed arrays are built from it at load for the hot paths.
import assert from 'node:assert/strict';

import { change_event_size } from '../constants';
import {
    account_filter_at, account_filter_size, account_size, create_result_size, query_filter_at,
    query_filter_size, transfer_size,
} from './record_layout';

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

/** Every operation a client may send, in code order. */
export const operation_specs: readonly OperationSpec[] = Object.freeze([
    row(137, 'get_change_events', OperationKind.change_events, 64, change_event_size, 16),
    row(140, 'lookup_accounts', OperationKind.lookup, 16, 128),
    row(141, 'lookup_transfers', OperationKind.lookup, 16, 128),
    row(142, 'get_account_transfers', OperationKind.filter, 128, 128, 120),
    row(143, 'get_account_balances', OperationKind.filter, 128, 128, 120),
    row(144, 'query_accounts', OperationKind.filter, 64, 128, 56),
    row(145, 'query_transfers', OperationKind.filter, 64, 128, 56),
    row(146, 'create_accounts', OperationKind.create, 128, 16),
    row(147, 'create_transfers', OperationKind.create, 128, 16),
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
    assert.equal(operation_kind[spec.operation], OperationKind.none,
        `operation ${spec.name}: twice`);
    // Filters carry their bound inside the event, as the last u32 before padding.
    const bounded = spec.kind === OperationKind.filter || spec.kind === OperationKind.change_events;
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
    operation_specs.filter((spec) => spec.kind !== OperationKind.change_events);

// The table agrees with the record layouts: what each operation carries in and out.
for (const spec of operation_specs) {
    if (spec.kind === OperationKind.create) {
        assert.equal(spec.result_size, create_result_size, `operation ${spec.name}: results`);
        assert(spec.event_size === account_size && spec.event_size === transfer_size);
    } else if (spec.kind === OperationKind.lookup) {
        assert.equal(spec.result_size, account_size, `operation ${spec.name}: results`);
    } else if (spec.kind === OperationKind.filter) {
        const account_filter = spec.event_size === account_filter_size;
        assert(account_filter || spec.event_size === query_filter_size);
        assert.equal(spec.limit_offset, account_filter ? account_filter_at.limit :
            query_filter_at.limit, `operation ${spec.name}: limit_offset`);
    }
}
assert.equal(client_operation_specs.length, operation_specs.length - 1);
