// Validation of every received header: checksums, size bounds, cluster, frame rules, zero
// reserved/padding bytes (taken from the layout table), and each command's own field rules
// (docs/wire-protocol.md §1-§3, §8; our rules for replica commands). The result is a reason code,
// `Reason.ok` when the header is acceptable; `reason_text[code]` explains a rejection.
// Nothing here throws or allocates on any path: bad input from the network is an answer, not
// an exception.
import assert from 'node:assert/strict';

import { checksum_equal } from './checksum';
import {
    block_request_size,
    block_requests_max,
    checksum_body_empty,
    eviction_reason_max,
    header_size,
    headers_count_max,
    message_body_size_max,
    message_size_max,
    Operation,
    protocol_version,
    register_request_body_size,
    register_result_body_size,
    replicas_max,
    view_change_headers_max,
} from './constants';
import { cluster_bytes, HeaderView } from './header';
import { Command, command_count, frame, offsets, reserved_ranges } from './header_layout';

export const Reason = {
    ok: 0,
    header_truncated: 1,
    checksum_invalid: 2,
    command_unknown: 3,
    command_reserved: 4,
    command_deprecated: 5,
    size_below_header: 6,
    size_above_max: 7,
    body_truncated: 8,
    checksum_body_invalid: 9,
    cluster_mismatch: 10,
    protocol_invalid: 11,
    release_zero: 12,
    reserved_nonzero: 13,
    body_size_invalid: 14,
    checksum_body_not_empty: 15,
    client_zero: 16,
    replica_not_zero: 17,
    replica_out_of_range: 18,
    view_not_zero: 19,
    timestamp_zero: 20,
    timestamp_not_zero: 21,
    operation_invalid: 22,
    register_field_not_zero: 23,
    session_zero: 24,
    request_zero: 25,
    reply_op_not_commit: 26,
    reply_commit_zero: 27,
    eviction_reason_invalid: 28,
    op_order_invalid: 29,
    block_address_zero: 30,
    reply_client_mismatch: 31,
    reply_request_mismatch: 32,
    reply_request_checksum_mismatch: 33,
    reply_release_mismatch: 34,
    reply_operation_mismatch: 35,
    register_result_invalid: 36,
    op_beyond_max: 37,
    flag_invalid: 38,
    reply_op_zero: 39,
} as const;
export type ReasonCode = (typeof Reason)[keyof typeof Reason];

/** Human text per reason code, for logs. */
export const reason_text: readonly string[] = Object.freeze([
    'ok',
    'fewer than 256 header bytes',
    'header checksum does not match bytes 16..255',
    'unknown command',
    'command 0 (reserved) is never valid',
    'deprecated command',
    'size is below the header size',
    'size is above message_size_max',
    'fewer bytes than size',
    'body checksum does not match the body',
    'cluster differs from ours',
    'protocol is not 0',
    'release is 0',
    'a reserved or padding field is not zero',
    'body size is not valid for this command',
    'checksum_body of an empty body is not the empty checksum',
    'client is 0',
    'replica must be 0',
    'replica index out of range',
    'view must be 0',
    'a required timestamp is 0',
    'timestamp must be 0',
    'operation is not valid for this command',
    'register must have parent, session and request 0',
    'session is 0 outside register',
    'request number is 0 outside register',
    'reply op differs from commit',
    'reply commit is 0',
    'eviction reason is not 1..8',
    'op numbers are out of order',
    'block address is 0',
    'reply client differs from the request',
    'reply request number differs from the request',
    'reply request_checksum differs from the request checksum',
    'reply release differs from the request release',
    'reply operation differs from the request',
    'register result is invalid',
    'an op number is 2^53 or more (no log reaches it)',
    'a flag byte is neither 0 nor 1',
    'request_reply names op 0, which has no reply (the root prepare)',
]);

const deprecated = [Command.deprecated_12, Command.deprecated_21, Command.deprecated_22,
    Command.deprecated_23] as readonly number[];

// Checked once at load (the asserts below guard programmer errors only, never input):
// reason codes are 0..n in order, each with its text, and the deprecated codes are real ones.
assert(Object.values(Reason).every((code, index) => code === index));
assert.equal(reason_text.length, Object.keys(Reason).length);
assert(deprecated.every((code) => code > Command.reserved && code < command_count));

/**
 * Validates received headers for one cluster. Holds one reusable view; `view` is left attached to
 * the last header checked so the caller can read fields without re-attaching.
 */
export class HeaderValidator {
    readonly view = new HeaderView();
    /** After Reason.reserved_nonzero: the header offset of the offending field. */
    reserved_offset = -1;
    private readonly cluster: Uint8Array;

    constructor(readonly cluster_id: bigint) {
        this.cluster = cluster_bytes(cluster_id);
        assert.equal(this.cluster.length, 16);
    }

    /** Checks the header at bytes[offset] of which `available` bytes have arrived. */
    header(bytes: Uint8Array, offset: number, available: number): ReasonCode {
        if (available < header_size || offset < 0 || offset + header_size > bytes.length) {
            return Reason.header_truncated;
        }
        const view = this.view.attach(bytes, offset);
        if (!checksum_equal(bytes, offset + 16, header_size - 16, bytes, offset + frame.checksum)) {
            return Reason.checksum_invalid;
        }
        const command = view.command;
        if (command >= command_count) return Reason.command_unknown;
        if (command === Command.reserved) return Reason.command_reserved;
        if (deprecated.includes(command)) return Reason.command_deprecated;
        const size = view.size;
        if (size < header_size) return Reason.size_below_header;
        if (size > message_size_max) return Reason.size_above_max;
        if (!view.equal16(frame.cluster, this.cluster, 0)) return Reason.cluster_mismatch;
        if (view.protocol !== protocol_version) return Reason.protocol_invalid;
        if (view.release === 0) return Reason.release_zero;
        const ranges = reserved_ranges[command]!;
        for (let index = 0; index < ranges.length; index += 2) {
            if (!view.zero(ranges[index]!, ranges[index + 1]!)) {
                this.reserved_offset = ranges[index]!;
                return Reason.reserved_nonzero;
            }
        }
        return command_reason(view, command, size - header_size);
    }

    /** The header checks, then that the whole body has arrived and matches checksum_body. */
    message(bytes: Uint8Array, offset: number, available: number): ReasonCode {
        const reason = this.header(bytes, offset, available);
        if (reason !== Reason.ok) return reason;
        const size = this.view.size;
        if (available < size || offset + size > bytes.length) return Reason.body_truncated;
        const body_ok = checksum_equal(
            bytes, offset + header_size, size - header_size, bytes, offset + frame.checksum_body,
        );
        return body_ok ? Reason.ok : Reason.checksum_body_invalid;
    }
}

function command_reason(view: HeaderView, command: number, body_size: number): ReasonCode {
    switch (command) {
        case Command.request: return request_reason(view, body_size);
        case Command.reply: return reply_reason(view, body_size);
        case Command.ping_client: return ping_client_reason(view, body_size);
        case Command.pong_client: return pong_client_reason(view, body_size);
        case Command.eviction: return eviction_reason(view, body_size);
        default: return replica_command_reason(view, command, body_size);
    }
}

function empty_body_reason(view: HeaderView, body_size: number): ReasonCode {
    if (body_size !== 0) return Reason.body_size_invalid;
    if (!view.equal16(frame.checksum_body, checksum_body_empty, 0)) {
        return Reason.checksum_body_not_empty;
    }
    return Reason.ok;
}

// docs/wire-protocol.md §3.2, §5.2, §7: the client sends register first, then operations ≥ 128.
function request_reason(view: HeaderView, body_size: number): ReasonCode {
    const at = offsets.request;
    if (view.replica !== 0) return Reason.replica_not_zero;
    if (view.zero(at.client, 16)) return Reason.client_zero;
    if (!view.zero(at.timestamp, 8)) return Reason.timestamp_not_zero;
    const operation = view.u8(at.operation);
    if (operation === Operation.register) {
        if (!view.zero(at.parent, 16) || !view.zero(at.session, 8) ||
            view.u32(at.request) !== 0) {
            return Reason.register_field_not_zero;
        }
        // A register without a body is a valid header; the replica evicts it (§7 step 6).
        if (body_size !== 0 && body_size !== register_request_body_size) {
            return Reason.body_size_invalid;
        }
        return Reason.ok;
    }
    if (operation < Operation.vsr_operations_reserved) return Reason.operation_invalid;
    if (view.zero(at.session, 8)) return Reason.session_zero;
    if (view.u32(at.request) === 0) return Reason.request_zero;
    return Reason.ok;
}

// docs/wire-protocol.md §3.3 and §8: what the client silently ignores is invalid here.
function reply_reason(view: HeaderView, body_size: number): ReasonCode {
    const at = offsets.reply;
    if (view.replica >= replicas_max) return Reason.replica_out_of_range;
    if (view.zero(at.client, 16)) return Reason.client_zero;
    if (view.zero(at.commit, 8)) return Reason.reply_commit_zero;
    if (view.limb(at.op, 0) !== view.limb(at.commit, 0) ||
        view.limb(at.op, 1) !== view.limb(at.commit, 1)) {
        return Reason.reply_op_not_commit;
    }
    if (view.zero(at.timestamp, 8)) return Reason.timestamp_zero;
    const operation = view.u8(at.operation);
    if (operation === Operation.register) {
        if (body_size !== register_result_body_size) return Reason.body_size_invalid;
        if (view.u32(at.request) !== 0) return Reason.register_field_not_zero;
        return Reason.ok;
    }
    if (operation < Operation.vsr_operations_reserved) return Reason.operation_invalid;
    return Reason.ok;
}

function ping_client_reason(view: HeaderView, body_size: number): ReasonCode {
    const at = offsets.ping_client;
    const empty = empty_body_reason(view, body_size);
    if (empty !== Reason.ok) return empty;
    if (view.replica !== 0) return Reason.replica_not_zero;
    if (view.view !== 0) return Reason.view_not_zero;
    if (view.zero(at.client, 16)) return Reason.client_zero;
    if (view.zero(at.ping_timestamp_monotonic, 8)) return Reason.timestamp_zero;
    return Reason.ok;
}

function pong_client_reason(view: HeaderView, body_size: number): ReasonCode {
    const empty = empty_body_reason(view, body_size);
    if (empty !== Reason.ok) return empty;
    if (view.replica >= replicas_max) return Reason.replica_out_of_range;
    if (view.zero(offsets.pong_client.ping_timestamp_monotonic, 8)) return Reason.timestamp_zero;
    return Reason.ok;
}

function eviction_reason(view: HeaderView, body_size: number): ReasonCode {
    const at = offsets.eviction;
    const empty = empty_body_reason(view, body_size);
    if (empty !== Reason.ok) return empty;
    if (view.replica >= replicas_max) return Reason.replica_out_of_range;
    if (view.zero(at.client, 16)) return Reason.client_zero;
    const reason = view.u8(at.reason);
    if (reason === 0 || reason > eviction_reason_max) return Reason.eviction_reason_invalid;
    return Reason.ok;
}

/** Whether a u64 field `low_at` ≤ u64 field `high_at`, compared by limbs. */
function u64_less_equal(view: HeaderView, low_at: number, high_at: number): boolean {
    const low_high = view.limb(low_at, 1);
    const high_high = view.limb(high_at, 1);
    if (low_high !== high_high) return low_high < high_high;
    return view.limb(low_at, 0) <= view.limb(high_at, 0);
}

/** A body of whole elements: count in [1, count_max]. */
function elements_reason(body_size: number, element_size: number, count_max: number): ReasonCode {
    assert(element_size > 0 && count_max >= 1);
    if (body_size === 0 || body_size % element_size !== 0) return Reason.body_size_invalid;
    return body_size / element_size <= count_max ? Reason.ok : Reason.body_size_invalid;
}

/**
 * Per replica command, the u64 fields that hold op numbers: the replica reads them as numbers,
 * exact below 2^53 (no log reaches that far), so a peer cannot make it misread one.
 */
const op_fields: ReadonlyMap<number, readonly number[]> = new Map([
    [Command.ping, [offsets.ping.checkpoint_op]],
    [Command.prepare, [offsets.prepare.op, offsets.prepare.commit]],
    [Command.prepare_ok, [offsets.prepare_ok.op, offsets.prepare_ok.commit_min]],
    // The root address is no op, but is read as a number too (a state sync target).
    [Command.commit, [offsets.commit.checkpoint_op, offsets.commit.commit,
        offsets.commit.checkpoint_root_address]],
    [Command.do_view_change, [offsets.do_view_change.op, offsets.do_view_change.commit,
        offsets.do_view_change.checkpoint_op, offsets.do_view_change.op_acknowledged_max]],
    [Command.start_view, [offsets.start_view.op, offsets.start_view.commit_max,
        offsets.start_view.checkpoint_op]],
    [Command.request_headers, [offsets.request_headers.op_min, offsets.request_headers.op_max]],
    [Command.request_prepare, [offsets.request_prepare.prepare_op]],
    [Command.request_reply, [offsets.request_reply.reply_op]],
]);
/** The high 32-bit limb of the largest safe integer. */
const safe_integer_high_limb_max = 0x1F_FFFF;

// Our rules for replica-to-replica commands (layouts in header_layout.ts).
function replica_command_reason(view: HeaderView, command: number, body_size: number): ReasonCode {
    if (view.replica >= replicas_max) return Reason.replica_out_of_range;
    for (const at of op_fields.get(command) ?? []) {
        if (view.limb(at, 1) > safe_integer_high_limb_max) return Reason.op_beyond_max;
    }
    switch (command) {
        case Command.ping: {
            const at = offsets.ping;
            if (body_size !== view.u16(at.release_count) * 4) return Reason.body_size_invalid;
            if (view.zero(at.ping_timestamp_monotonic, 8)) return Reason.timestamp_zero;
            return Reason.ok;
        }
        case Command.pong: {
            const empty = empty_body_reason(view, body_size);
            if (empty !== Reason.ok) return empty;
            const at = offsets.pong;
            if (view.zero(at.ping_timestamp_monotonic, 8)) return Reason.timestamp_zero;
            if (view.zero(at.pong_timestamp_wall, 8)) return Reason.timestamp_zero;
            return Reason.ok;
        }
        case Command.prepare: return prepare_reason(view);
        case Command.prepare_ok: {
            const at = offsets.prepare_ok;
            const empty = empty_body_reason(view, body_size);
            if (empty !== Reason.ok) return empty;
            return view.u8(at.operation) === Operation.reserved ? Reason.operation_invalid
                : Reason.ok;
        }
        case Command.commit: {
            const empty = empty_body_reason(view, body_size);
            if (empty !== Reason.ok) return empty;
            const at = offsets.commit;
            if (!u64_less_equal(view, at.checkpoint_op, at.commit)) return Reason.op_order_invalid;
            if (view.zero(at.timestamp_monotonic, 8)) return Reason.timestamp_zero;
            return Reason.ok;
        }
        default: return repair_command_reason(view, command, body_size);
    }
}

// View change and repair commands.
function repair_command_reason(view: HeaderView, command: number, body_size: number): ReasonCode {
    switch (command) {
        case Command.start_view_change:
        case Command.request_start_view:
        case Command.request_prepare:
            return empty_body_reason(view, body_size);
        case Command.do_view_change: {
            const at = offsets.do_view_change;
            if (!u64_less_equal(view, at.commit, at.op)) return Reason.op_order_invalid;
            if (view.u32(at.log_view) > view.view) return Reason.op_order_invalid;
            if (view.u8(at.head_uncertain) > 1) return Reason.flag_invalid;
            // An uncertain head at its checkpoint has no header to send (replica.ts).
            if (body_size === 0 && view.u8(at.head_uncertain) === 1) return Reason.ok;
            return elements_reason(body_size, header_size, view_change_headers_max);
        }
        case Command.start_view: {
            const at = offsets.start_view;
            if (!u64_less_equal(view, at.commit_max, at.op)) return Reason.op_order_invalid;
            return elements_reason(body_size, header_size, view_change_headers_max);
        }
        case Command.request_headers: {
            const empty = empty_body_reason(view, body_size);
            if (empty !== Reason.ok) return empty;
            const at = offsets.request_headers;
            return u64_less_equal(view, at.op_min, at.op_max) ? Reason.ok : Reason.op_order_invalid;
        }
        case Command.request_reply: {
            const empty = empty_body_reason(view, body_size);
            if (empty !== Reason.ok) return empty;
            const at = offsets.request_reply;
            if (view.zero(at.reply_client, 16)) return Reason.client_zero;
            // Every reply is of a committed client op, at least 1.
            return view.zero(at.reply_op, 8) ? Reason.reply_op_zero : Reason.ok;
        }
        case Command.headers: return elements_reason(body_size, header_size, headers_count_max);
        case Command.request_blocks:
            return elements_reason(body_size, block_request_size, block_requests_max);
        case Command.block:
            if (view.zero(offsets.block.address, 8)) return Reason.block_address_zero;
            return body_size <= message_body_size_max ? Reason.ok : Reason.body_size_invalid;
        default:
            // Every known command code is handled above; unknown codes were rejected earlier.
            return Reason.command_unknown;
    }
}

// A prepare of a client operation names the client; VSR-internal operations (pulse, upgrade,
// noop) have client 0. Op 0 is only the synthetic root prepare.
function prepare_reason(view: HeaderView): ReasonCode {
    const at = offsets.prepare;
    const operation = view.u8(at.operation);
    if (operation === Operation.reserved) return Reason.operation_invalid;
    if (operation === Operation.root) {
        return view.zero(at.op, 8) ? Reason.ok : Reason.operation_invalid;
    }
    if (view.zero(at.op, 8)) return Reason.op_order_invalid;
    if (!u64_less_equal(view, at.commit, at.op) ||
        (view.limb(at.commit, 0) === view.limb(at.op, 0) &&
            view.limb(at.commit, 1) === view.limb(at.op, 1))) {
        return Reason.op_order_invalid;
    }
    if (view.zero(at.timestamp, 8)) return Reason.timestamp_zero;
    const client_operation = operation >= Operation.vsr_operations_reserved ||
        operation === Operation.register;
    if (client_operation && view.zero(at.client, 16)) return Reason.client_zero;
    return Reason.ok;
}

/**
 * Client-side acceptance of a reply for the in-flight request (docs/wire-protocol.md §5.4): both
 * headers already validated. A violation here aborts the real client, so the tests check every
 * reply the replica sends with it (test/replica_harness.ts, SimClient).
 */
export function reply_matches_request(reply: HeaderView, request: HeaderView): ReasonCode {
    const reply_at = offsets.reply;
    const request_at = offsets.request;
    // Preconditions (validated headers), not input checks.
    assert.equal(reply.command, Command.reply);
    assert.equal(request.command, Command.request);
    if (!reply.equal16(reply_at.client, request.bytes, request.offset + request_at.client)) {
        return Reason.reply_client_mismatch;
    }
    if (reply.u32(reply_at.request) !== request.u32(request_at.request)) {
        return Reason.reply_request_mismatch;
    }
    if (!reply.equal16(reply_at.request_checksum, request.bytes, request.offset + frame.checksum)) {
        return Reason.reply_request_checksum_mismatch;
    }
    if (reply.release !== request.release) return Reason.reply_release_mismatch;
    if (reply.u8(reply_at.operation) !== request.u8(request_at.operation)) {
        return Reason.reply_operation_mismatch;
    }
    return Reason.ok;
}

/**
 * The register reply body: batch_size_limit in 1..1,048,320 and zero reserved bytes (§5.2).
 * The reply must already have passed HeaderValidator.message, so its body is in the buffer.
 */
export function register_result_reason(reply: HeaderView): ReasonCode {
    assert.equal(reply.command, Command.reply);
    if (reply.size !== header_size + register_result_body_size) return Reason.body_size_invalid;
    const limit = reply.u32(header_size);
    if (limit === 0 || limit > message_body_size_max) return Reason.register_result_invalid;
    if (!reply.zero(header_size + 4, register_result_body_size - 4)) {
        return Reason.register_result_invalid;
    }
    return Reason.ok;
}
