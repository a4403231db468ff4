// THE layout table of the 256-byte message header: the common frame (bytes 0..127) and the
// command-specific part (bytes 128..255) of every command. Everything else (header views,
// validation, tests) derives offsets from here, so a field is described exactly once.
//
// Fields are listed in wire order with their size; offsets are computed cumulatively at load and
// each command's part is asserted to cover exactly 128 bytes, so a typo cannot leave a hole or an
// overlap. Field types:
//   u8/u16/u32/u64/u128  little-endian integers;
//   reserved             bytes that must be zero on the wire (padding included), checked by
//                        validation for every command from this table alone;
//   bytes                opaque bytes, not interpreted by the header code.
//
// Client commands (request, reply, ping_client, pong_client, eviction) follow TigerBeetle 0.17.9
// byte for byte (docs/wire-protocol.md §3). Replica-to-replica commands are OURS: TigerBeetle
// names their purpose and fields but documents no byte layout, so the layouts below are designed
// here to fit the frame; they never meet a TigerBeetle peer (docs/vsr.md §9).
import assert from 'node:assert/strict';

import { header_command_offset, header_command_size, header_size } from './constants';

export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'u128' | 'reserved' | 'bytes';
type FieldSpec = readonly [name: string, size: number, type: FieldType];
type FieldList = readonly FieldSpec[];

/**
 * Command codes (docs/wire-protocol.md §3.1). The brief's VSR names are used; TigerBeetle 0.17.9
 * renamed some of them, given in the comments. 12, 21, 22 and 23 are deprecated and never sent.
 */
export const Command = {
    reserved: 0,
    ping: 1,
    pong: 2,
    ping_client: 3,
    pong_client: 4,
    request: 5,
    prepare: 6,
    prepare_ok: 7,
    reply: 8,
    commit: 9,
    start_view_change: 10, // exit_view in 0.17.9.
    do_view_change: 11, // join_view.
    deprecated_12: 12,
    request_start_view: 13, // get_view.
    request_headers: 14, // get_headers.
    request_prepare: 15, // get_prepare.
    request_reply: 16, // get_reply.
    headers: 17,
    eviction: 18,
    request_blocks: 19, // get_blocks.
    block: 20,
    deprecated_21: 21,
    deprecated_22: 22,
    deprecated_23: 23,
    start_view: 24, // view.
} as const;
export type CommandName = keyof typeof Command;
export type CommandCode = (typeof Command)[CommandName];
/** One past the largest command code; codes at or above it are unknown. */
export const command_count = 25;

const frame_fields = [
    ['checksum', 16, 'u128'],
    ['checksum_padding', 16, 'reserved'],
    ['checksum_body', 16, 'u128'],
    ['checksum_body_padding', 16, 'reserved'],
    ['nonce_reserved', 16, 'reserved'],
    ['cluster', 16, 'u128'],
    ['size', 4, 'u32'],
    ['epoch', 4, 'reserved'],
    ['view', 4, 'u32'],
    ['release', 4, 'u32'],
    ['protocol', 2, 'u16'],
    ['command', 1, 'u8'],
    ['replica', 1, 'u8'],
    ['reserved_frame', 12, 'reserved'],
] as const satisfies FieldList;

// Client commands: docs/wire-protocol.md §3.2-§3.6.
const request_fields = [
    ['parent', 16, 'u128'],
    ['parent_padding', 16, 'reserved'],
    ['client', 16, 'u128'],
    ['session', 8, 'u64'],
    ['timestamp', 8, 'u64'],
    ['request', 4, 'u32'],
    ['operation', 1, 'u8'],
    ['previous_request_latency_padding', 3, 'reserved'],
    ['previous_request_latency', 4, 'u32'],
    ['reserved', 51, 'reserved'],
    // OURS, not TigerBeetle's: tigerbeetle-node sends 0. Bit 0 (request_feature_limit_details):
    // the client reads `limit` and `limit_value` in an eviction. The replica never copies it into
    // the prepare (its bytes are rewritten there).
    ['features', 1, 'u8'],
] as const satisfies FieldList;

const reply_fields = [
    ['request_checksum', 16, 'u128'],
    ['request_checksum_padding', 16, 'reserved'],
    ['context', 16, 'u128'],
    ['context_padding', 16, 'reserved'],
    ['client', 16, 'u128'],
    ['op', 8, 'u64'],
    ['commit', 8, 'u64'],
    ['timestamp', 8, 'u64'],
    ['request', 4, 'u32'],
    ['operation', 1, 'u8'],
    ['reserved', 19, 'reserved'],
] as const satisfies FieldList;

const ping_client_fields = [
    ['client', 16, 'u128'],
    ['ping_timestamp_monotonic', 8, 'u64'],
    ['session', 8, 'u64'],
    ['reserved', 96, 'reserved'],
] as const satisfies FieldList;

const pong_client_fields = [
    ['ping_timestamp_monotonic', 8, 'u64'],
    ['reserved', 120, 'reserved'],
] as const satisfies FieldList;

const eviction_fields = [
    ['client', 16, 'u128'],
    // OURS, not TigerBeetle's, and sent only to a client whose request asked for them
    // (`features` bit 0): tigerbeetle-node ignores an eviction whose reserved bytes are not zero,
    // so for it these stay 0. A limit (lib/vsr/constants.ts `Limit`) and its value.
    ['limit_value', 8, 'u64'],
    ['limit', 1, 'u8'],
    ['reserved', 102, 'reserved'],
    ['reason', 1, 'u8'],
] as const satisfies FieldList;

/** Request `features` bit 0: the client reads limit details in an eviction. */
export const request_feature_limit_details = 1;

// Replica commands: OUR layouts (see the file comment).
// ping: the body holds `release_count` u32 releases the sender can run, for upgrades.
const ping_fields = [
    ['checkpoint_id', 16, 'u128'],
    ['checkpoint_op', 8, 'u64'],
    ['ping_timestamp_monotonic', 8, 'u64'],
    ['release_count', 2, 'u16'],
    ['reserved', 94, 'reserved'],
] as const satisfies FieldList;

const pong_fields = [
    ['ping_timestamp_monotonic', 8, 'u64'],
    ['pong_timestamp_wall', 8, 'u64'],
    ['reserved', 112, 'reserved'],
] as const satisfies FieldList;

// prepare: `parent` is the checksum of the op-1 prepare header (the hash chain); the body is the
// request body unchanged.
const prepare_fields = [
    ['parent', 16, 'u128'],
    ['parent_padding', 16, 'reserved'],
    ['request_checksum', 16, 'u128'],
    ['request_checksum_padding', 16, 'reserved'],
    ['checkpoint_id', 16, 'u128'],
    ['client', 16, 'u128'],
    ['op', 8, 'u64'],
    ['commit', 8, 'u64'],
    ['timestamp', 8, 'u64'],
    ['request', 4, 'u32'],
    ['operation', 1, 'u8'],
    ['reserved', 3, 'reserved'],
] as const satisfies FieldList;

// prepare_ok: names the acknowledged prepare by checksum and op and echoes its identifying fields.
const prepare_ok_fields = [
    ['parent', 16, 'u128'],
    ['prepare_checksum', 16, 'u128'],
    ['prepare_checksum_padding', 16, 'reserved'],
    ['checkpoint_id', 16, 'u128'],
    ['client', 16, 'u128'],
    ['op', 8, 'u64'],
    ['commit_min', 8, 'u64'],
    ['timestamp', 8, 'u64'],
    ['request', 4, 'u32'],
    ['operation', 1, 'u8'],
    ['reserved', 19, 'reserved'],
] as const satisfies FieldList;

const commit_fields = [
    ['commit_checksum', 16, 'u128'],
    ['commit_checksum_padding', 16, 'reserved'],
    ['checkpoint_id', 16, 'u128'],
    ['checkpoint_op', 8, 'u64'],
    ['commit', 8, 'u64'],
    ['timestamp_monotonic', 8, 'u64'],
    // The root block of checkpoint_op: with checkpoint_id, a state sync target (docs/vsr.md §16).
    ['checkpoint_root_address', 8, 'u64'],
    ['reserved', 48, 'reserved'],
] as const satisfies FieldList;

// start_view_change: a vote to move to `view`. `votes` gossips the votes for that view the
// sender has seen (bit r: replica r), so that a quorum seen by any replica reaches all of them;
// `joined` is 1 when the sender already moved to that view (it saw a quorum of votes).
const start_view_change_fields = [
    ['votes', 1, 'u8'],
    ['joined', 1, 'u8'],
    ['reserved', 126, 'reserved'],
] as const satisfies FieldList;

// do_view_change: the body is the log suffix as whole 256-byte headers, newest first; bit i of the
// bitsets describes body header i.
const do_view_change_fields = [
    ['present_bitset', 16, 'u128'],
    ['nack_bitset', 16, 'u128'],
    ['op', 8, 'u64'],
    /** The highest op of the sender's log it knows committed (at most op). */
    ['commit', 8, 'u64'],
    ['checkpoint_op', 8, 'u64'],
    /** With head_uncertain: the highest op the sender may have acknowledged (it denies above). */
    ['op_acknowledged_max', 8, 'u64'],
    ['log_view', 4, 'u32'],
    /**
     * 1 when the sender cannot prove its log head (a faulty WAL slot above op, internals.md §10,
     * or a log cut by a start_view and not yet repaired): it may have acknowledged ops above op
     * that it no longer holds, so it denies none up to op_acknowledged_max.
     */
    ['head_uncertain', 1, 'u8'],
    ['reserved', 59, 'reserved'],
] as const satisfies FieldList;

// start_view: the body is the suffix headers plus hook headers, as whole 256-byte headers.
const start_view_fields = [
    ['nonce', 16, 'u128'],
    ['op', 8, 'u64'],
    ['commit_max', 8, 'u64'],
    ['checkpoint_op', 8, 'u64'],
    ['reserved', 88, 'reserved'],
] as const satisfies FieldList;

const request_start_view_fields = [
    ['nonce', 16, 'u128'],
    ['reserved', 112, 'reserved'],
] as const satisfies FieldList;

const request_headers_fields = [
    ['op_min', 8, 'u64'],
    ['op_max', 8, 'u64'],
    ['reserved', 112, 'reserved'],
] as const satisfies FieldList;

const request_prepare_fields = [
    ['prepare_checksum', 16, 'u128'],
    ['prepare_checksum_padding', 16, 'reserved'],
    ['prepare_op', 8, 'u64'],
    ['reserved', 88, 'reserved'],
] as const satisfies FieldList;

const request_reply_fields = [
    ['reply_checksum', 16, 'u128'],
    ['reply_checksum_padding', 16, 'reserved'],
    ['reply_client', 16, 'u128'],
    ['reply_op', 8, 'u64'],
    ['reserved', 72, 'reserved'],
] as const satisfies FieldList;

// headers: the body is 1..headers_count_max whole 256-byte headers.
const headers_fields = [
    ['reserved', 128, 'reserved'],
] as const satisfies FieldList;

// request_blocks: the body is 1..4 BlockRequest{checksum u128, address u64, reserved 8 bytes}.
const request_blocks_fields = [
    ['reserved', 128, 'reserved'],
] as const satisfies FieldList;

// block: a grid block is a message; `metadata` belongs to the block type (LSM layer).
const block_fields = [
    ['metadata', 96, 'bytes'],
    ['address', 8, 'u64'],
    ['snapshot', 8, 'u64'],
    ['block_type', 1, 'u8'],
    ['reserved', 15, 'reserved'],
] as const satisfies FieldList;

// Never valid on the wire; the layout exists so that every code has one.
const reserved_fields = [
    ['reserved', 128, 'reserved'],
] as const satisfies FieldList;

const command_fields = {
    reserved: reserved_fields,
    ping: ping_fields,
    pong: pong_fields,
    ping_client: ping_client_fields,
    pong_client: pong_client_fields,
    request: request_fields,
    prepare: prepare_fields,
    prepare_ok: prepare_ok_fields,
    reply: reply_fields,
    commit: commit_fields,
    start_view_change: start_view_change_fields,
    do_view_change: do_view_change_fields,
    deprecated_12: reserved_fields,
    request_start_view: request_start_view_fields,
    request_headers: request_headers_fields,
    request_prepare: request_prepare_fields,
    request_reply: request_reply_fields,
    headers: headers_fields,
    eviction: eviction_fields,
    request_blocks: request_blocks_fields,
    block: block_fields,
    deprecated_21: reserved_fields,
    deprecated_22: reserved_fields,
    deprecated_23: reserved_fields,
    start_view: start_view_fields,
} as const satisfies Record<CommandName, FieldList>;

type NamesOf<L extends FieldList> = L[number][0];
export type Offsets<L extends FieldList> = { readonly [K in NamesOf<L>]: number };

export interface Field {
    readonly name: string;
    readonly offset: number;
    readonly size: number;
    readonly type: FieldType;
}

function build_fields(list: FieldList, offset_start: number, size_total: number): Field[] {
    const fields: Field[] = [];
    let offset = offset_start;
    for (const [name, size, type] of list) {
        assert.ok(size > 0);
        if (type === 'u8') assert.equal(size, 1);
        if (type === 'u16') assert.equal(size, 2);
        if (type === 'u32') assert.equal(size, 4);
        if (type === 'u64') assert.equal(size, 8);
        if (type === 'u128') assert.equal(size, 16);
        // Natural alignment, so every integer can be read with one aligned access.
        if (type !== 'reserved' && type !== 'bytes') assert.equal(offset % size, 0, name);
        fields.push(Object.freeze({ name, offset, size, type }));
        offset += size;
    }
    assert.equal(offset - offset_start, size_total, 'layout must cover its part exactly');
    const names = new Set(fields.map((field) => field.name));
    assert.equal(names.size, fields.length, 'field names must be unique');
    return fields;
}

function build_offsets<L extends FieldList>(fields: readonly Field[]): Offsets<L> {
    const offsets: Record<string, number> = {};
    for (const field of fields) offsets[field.name] = field.offset;
    return Object.freeze(offsets) as Offsets<L>;
}

/** The frame fields (bytes 0..127), in wire order. */
export const frame_layout: readonly Field[] =
    Object.freeze(build_fields(frame_fields, 0, header_command_offset));
/** Offsets of the frame fields, e.g. `frame.size` = 96. */
export const frame: Offsets<typeof frame_fields> = build_offsets(frame_layout);

type CommandOffsets = { readonly [C in CommandName]: Offsets<(typeof command_fields)[C]> };

/** Per command code: its command-specific fields (bytes 128..255), in wire order. */
export const command_layout: ReadonlyArray<readonly Field[]> = build_command_layouts();
/** Offsets of command-specific fields, e.g. `offsets.reply.context` = 160. */
export const offsets: CommandOffsets = build_command_offsets();

function build_command_layouts(): ReadonlyArray<readonly Field[]> {
    const layouts: (readonly Field[])[] = [];
    for (const name of Object.keys(Command) as CommandName[]) {
        const code = Command[name];
        layouts[code] = Object.freeze(
            build_fields(command_fields[name], header_command_offset, header_command_size),
        );
    }
    assert.equal(layouts.length, command_count);
    for (let code = 0; code < command_count; code++) assert.ok(layouts[code] !== undefined);
    return Object.freeze(layouts);
}

function build_command_offsets(): CommandOffsets {
    const result: Record<string, unknown> = {};
    for (const name of Object.keys(Command) as CommandName[]) {
        result[name] = build_offsets(command_layout[Command[name]]!);
    }
    return Object.freeze(result) as CommandOffsets;
}

/** Every field of a command's header, frame first, in wire order (for tests and tooling). */
export function header_fields(command: number): readonly Field[] {
    assert.ok(Number.isInteger(command) && command >= 0 && command < command_count);
    return [...frame_layout, ...command_layout[command]!];
}

/** Looks a field up by name: startup and tests only. */
export function field_by_name(command: number, name: string): Field {
    const found = header_fields(command).find((field) => field.name === name);
    assert.ok(found !== undefined, `command ${command} has no field ${name}`);
    return found;
}

/** The command name for a code, or undefined when the code is unknown. */
export const command_names: ReadonlyArray<CommandName> = (() => {
    const names: CommandName[] = [];
    for (const name of Object.keys(Command) as CommandName[]) names[Command[name]] = name;
    return Object.freeze(names);
})();

/**
 * For validation: per command, the reserved byte ranges of the whole header as flat
 * [offset, size, offset, size, ...] so that the check loops over plain integers.
 */
export const reserved_ranges: ReadonlyArray<Int32Array> = (() => {
    const result: Int32Array[] = [];
    for (let code = 0; code < command_count; code++) {
        const ranges: number[] = [];
        for (const field of header_fields(code)) {
            if (field.type === 'reserved') ranges.push(field.offset, field.size);
        }
        result.push(Int32Array.from(ranges));
    }
    return Object.freeze(result);
})();

assert.equal(frame.command, 114);
// The header checksum is the first field and covers every byte after it (bytes 16..255).
assert.equal(frame.checksum, 0);
// The bus reads a message's length at offset 96 (wire-protocol.md §2).
assert.equal(frame.size, 96);
assert.equal(offsets.reply.context, 160);
assert.equal(command_names.length, command_count);
assert.equal(reserved_ranges.length, command_count);
assert.equal(frame.reserved_frame + 12, header_command_offset);
assert.equal(header_command_offset + header_command_size, header_size);
