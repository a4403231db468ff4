// Header layout, views, sealing and validation: every command round-trips through the layout
// table; the register request captured from tigerbeetle-node 0.17.9 (docs/wire-protocol.md §9)
// parses and verifies; a reply we build for it meets §3.3 and §5.4; and each rule rejects.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { checksum_bigint } from '../lib/vsr/checksum';
import { header_size, release_0_17_9 } from '../lib/vsr/constants';
import { header_init, HeaderView, seal } from '../lib/vsr/header';
import {
    Command,
    command_count,
    command_layout,
    frame,
    header_fields,
    offsets,
} from '../lib/vsr/header_layout';
import {
    HeaderValidator,
    Reason,
    reason_text,
    register_result_reason,
    reply_matches_request,
} from '../lib/vsr/validate';
import { build_valid, cluster_test, Random, valid_commands } from './protocol_samples';

test('layout: every command part covers bytes 128..255 exactly, frame matches §2', () => {
    assert.equal(frame.size, 96);
    assert.equal(frame.release, 108);
    assert.equal(frame.protocol, 112);
    assert.equal(frame.command, 114);
    assert.equal(frame.replica, 115);
    for (let code = 0; code < command_count; code++) {
        const fields = command_layout[code]!;
        let next = 128;
        for (const field of fields) {
            assert.equal(field.offset, next);
            next += field.size;
        }
        assert.equal(next, 256);
    }
    // Client command offsets from docs/wire-protocol.md §3.2-§3.6.
    assert.deepEqual(
        [offsets.request.client, offsets.request.session, offsets.request.request,
            offsets.request.operation, offsets.request.previous_request_latency],
        [160, 176, 192, 196, 200],
    );
    assert.deepEqual(
        [offsets.reply.context, offsets.reply.client, offsets.reply.op, offsets.reply.commit,
            offsets.reply.timestamp, offsets.reply.request, offsets.reply.operation],
        [160, 192, 208, 216, 224, 232, 236],
    );
    assert.equal(offsets.ping_client.session, 152);
    assert.equal(offsets.pong_client.ping_timestamp_monotonic, 128);
    assert.equal(offsets.eviction.reason, 255);
    assert.equal(reason_text.length, Object.keys(Reason).length);
});

// Writes `value` little-endian at bytes[offset, +size) without the view: the independent side.
function write_le(bytes: Uint8Array, offset: number, size: number, value: bigint): void {
    for (let index = 0; index < size; index++) {
        bytes[offset + index] = Number((value >> BigInt(8 * index)) & 0xFFn);
    }
}

test('layout: every field of every command round-trips through the view', () => {
    const random = new Random(1);
    const view = new HeaderView();
    for (let code = 0; code < command_count; code++) {
        for (let round = 0; round < 20; round++) {
            const by_view = new Uint8Array(header_size + 32);
            const by_hand = new Uint8Array(header_size + 32);
            const base = 16;
            view.attach(by_view, base);
            view.command = code;
            const values = new Map<string, bigint>();
            for (const field of header_fields(code)) {
                const value = field.name === 'command' ? BigInt(code)
                    : random.bigint(field.size * 8);
                values.set(field.name, value);
                view.set_field(field, value);
                write_le(by_hand, base + field.offset, field.size, value);
            }
            assert.deepEqual(by_view, by_hand, `command ${code}`);
            for (const field of header_fields(code)) {
                assert.equal(BigInt(view.get_field(field)), values.get(field.name), field.name);
            }
            // Bytes outside the header are untouched.
            assert.ok(by_view.subarray(0, base).every((byte) => byte === 0));
        }
    }
});

test('view: limb accessors, u64 numbers and re-attach without reallocation', () => {
    const bytes = new Uint8Array(512);
    const view = new HeaderView().attach(bytes, 256);
    view.set_u128_bigint(128, 0x0102030405060708_090a0b0c0d0e0f10n);
    assert.equal(view.limb(128, 0), 0x0d0e0f10);
    assert.equal(view.limb(128, 3), 0x01020304);
    view.set_u64(208, Number.MAX_SAFE_INTEGER);
    assert.equal(view.u64(208), Number.MAX_SAFE_INTEGER);
    assert.equal(view.u64_bigint(208), BigInt(Number.MAX_SAFE_INTEGER));
    view.set_u64_bigint(208, 1n << 60n);
    assert.throws(() => view.u64(208), /MAX_SAFE_INTEGER/);
    assert.throws(() => view.attach(bytes, 300), /out of bounds/);
    assert.equal(view.attach(bytes, 0).u32(96), 0);
});

// The register request captured from the real client (docs/wire-protocol.md §9).
const captured_rows: ReadonlyArray<[number, string]> = [
    [0x00, '9e0dd4cc6ed3188b01cfc0b6be4f7db5'],
    [0x20, '651b82f3ddd4fcbf2deb8496e8ff613c'],
    [0x60, '00020000000000000000000009110000'],
    [0x70, '00000500000000000000000000000000'],
    [0xa0, '94c34caad67004b1b6362d294b0a5f7a'],
    [0xc0, '00000000020000000000000000000000'],
];

function captured_register(): Uint8Array {
    const message = new Uint8Array(512);
    for (const [offset, row] of captured_rows) message.set(Buffer.from(row, 'hex'), offset);
    return message;
}

test('golden: the captured register request parses and both checksums verify', () => {
    const message = captured_register();
    const validator = new HeaderValidator(0n);
    assert.equal(validator.message(message, 0, message.length), Reason.ok);
    const view = validator.view;
    assert.equal(view.command, Command.request);
    assert.equal(view.size, 512);
    assert.equal(view.release, release_0_17_9);
    assert.equal(view.get('client'), 0x7a5f0a4b292d36b6b10470d6aa4cc394n);
    assert.equal(view.get('operation'), 2);
    assert.equal(view.get('session'), 0n);
    // Re-sealing from zeroed checksums reproduces the captured bytes exactly.
    const copy = message.slice();
    copy.fill(0xAA, 0, 16);
    copy.fill(0xAA, 32, 48);
    seal(new HeaderView().attach(copy, 0));
    assert.deepEqual(copy, message);
    // A different cluster, or one flipped bit anywhere, is rejected.
    assert.equal(new HeaderValidator(1n).message(message, 0, 512), Reason.cluster_mismatch);
    copy[300] = 1;
    assert.equal(validator.message(copy, 0, 512), Reason.checksum_body_invalid);
    copy[300] = 0;
    copy[0xa0] ^= 1;
    assert.equal(validator.message(copy, 0, 512), Reason.checksum_invalid);
    assert.equal(validator.message(message, 0, 511), Reason.body_truncated);
    assert.equal(validator.message(message, 0, 255), Reason.header_truncated);
});

const commit_test = 7;
const timestamp_test = 1_790_000_000_123_456_789n;

/** The register reply our server sends (§3.3, §5.2). */
function build_register_reply(request: HeaderView, target: Uint8Array): HeaderView {
    const reply = header_init(new HeaderView(), target, 0, Command.reply, 320, request.release);
    reply.copy16_from(offsets.reply.request_checksum, request.bytes, request.offset);
    reply.copy16_from(offsets.reply.client, request.bytes, request.offset + offsets.request.client);
    reply.set_u64(offsets.reply.op, commit_test);
    reply.set_u64(offsets.reply.commit, commit_test);
    reply.set_u64_bigint(offsets.reply.timestamp, timestamp_test);
    reply.set_u32(offsets.reply.request, request.u32(offsets.request.request));
    reply.set_u8(offsets.reply.operation, request.u8(offsets.request.operation));
    target.fill(0, 256, 320);
    reply.set_u32(256, 1_048_320);
    seal(reply);
    return reply;
}

test('golden: our register reply satisfies every §3.3 and §5.4 rule', () => {
    const request = new HeaderView().attach(captured_register(), 0);
    const bytes = new Uint8Array(320);
    const reply = build_register_reply(request, bytes);
    const validator = new HeaderValidator(0n);
    assert.equal(validator.message(bytes, 0, 320), Reason.ok);
    assert.equal(reply_matches_request(reply, request), Reason.ok);
    assert.equal(register_result_reason(reply), Reason.ok);
    // §3.3 field by field, read independently of the validator.
    assert.equal(reply.get('request_checksum'), request.get('checksum'));
    assert.equal(reply.get('client'), request.get('client'));
    assert.equal(reply.get('op'), reply.get('commit'));
    assert.ok((reply.get('commit') as bigint) > 0n);
    assert.equal(reply.get('timestamp'), timestamp_test);
    assert.equal(reply.get('request'), 0);
    assert.equal(reply.get('operation'), 2);
    assert.equal(reply.release, request.release);
    for (const name of ['request_checksum_padding', 'context_padding', 'reserved', 'epoch',
        'checksum_padding', 'checksum_body_padding', 'nonce_reserved', 'reserved_frame']) {
        assert.equal(reply.get(name), 0n, name);
    }
    // §4: context = checksum of bytes 16..255 with checksum and context zero; then checksum.
    const copy = bytes.slice(0, 256);
    copy.fill(0, 0, 16);
    copy.fill(0, offsets.reply.context, offsets.reply.context + 16);
    assert.equal(reply.get('context'), checksum_bigint(copy.subarray(16)));
    assert.notEqual(reply.get('context'), 0n);
    assert.equal(reply.get('checksum'), checksum_bigint(bytes.subarray(16, 256)));
    assert.equal(reply.get('checksum_body'), checksum_bigint(bytes.subarray(256, 320)));
});

test('reply rules: each §5.4 and §8 violation is rejected with its reason', () => {
    const request = new HeaderView().attach(captured_register(), 0);
    const validator = new HeaderValidator(0n);
    const cases: ReadonlyArray<[string, (reply: HeaderView) => void, number]> = [
        ['release', (r) => { r.release = 0x1108; }, Reason.reply_release_mismatch],
        ['request', (r) => { r.set_u32(offsets.reply.request, 1); },
            Reason.register_field_not_zero],
        ['operation', (r) => { r.set_u8(offsets.reply.operation, 140); },
            Reason.reply_operation_mismatch],
        ['checksum', (r) => { r.bytes[offsets.reply.request_checksum] ^= 1; },
            Reason.reply_request_checksum_mismatch],
        ['client', (r) => { r.bytes[offsets.reply.client] ^= 1; }, Reason.reply_client_mismatch],
        ['op', (r) => { r.set_u64(offsets.reply.op, commit_test + 1); },
            Reason.reply_op_not_commit],
        ['commit 0', (r) => { r.set_u64(offsets.reply.op, 0); r.set_u64(offsets.reply.commit, 0); },
            Reason.reply_commit_zero],
        ['timestamp', (r) => { r.set_u64(offsets.reply.timestamp, 0); }, Reason.timestamp_zero],
        ['padding', (r) => { r.bytes[offsets.reply.context_padding + 3] = 1; },
            Reason.reserved_nonzero],
        ['epoch', (r) => { r.set_u32(frame.epoch, 1); }, Reason.reserved_nonzero],
        ['protocol', (r) => { r.protocol = 1; }, Reason.protocol_invalid],
        ['release 0', (r) => { r.release = 0; }, Reason.release_zero],
        ['replica', (r) => { r.replica = 6; }, Reason.replica_out_of_range],
        ['size', (r) => { r.size = 256; }, Reason.body_size_invalid],
        ['unknown', (r) => { r.command = 25; }, Reason.command_unknown],
        ['deprecated', (r) => { r.command = 12; }, Reason.command_deprecated],
        ['reserved', (r) => { r.command = 0; }, Reason.command_reserved],
        ['too big', (r) => { r.size = (1 << 20) + 1; }, Reason.size_above_max],
        ['too small', (r) => { r.size = 255; }, Reason.size_below_header],
    ];
    for (const [name, mutate, expected] of cases) {
        const bytes = new Uint8Array(320);
        const reply = build_register_reply(request, bytes);
        mutate(reply);
        // Re-seal the header only, so that each rule (not a checksum) is what rejects.
        sealed_header_checksum(reply);
        let reason = validator.message(bytes, 0, 320);
        if (reason === Reason.ok) reason = reply_matches_request(reply, request);
        assert.equal(reason, expected, `${name}: got ${reason_text[reason]}`);
    }
});

// Recomputes only the header checksum, leaving checksum_body as sealed before.
function sealed_header_checksum(view: HeaderView): void {
    const value = checksum_bigint(view.bytes.subarray(view.offset + 16, view.offset + 256));
    view.set_u128_bigint(frame.checksum, value);
}

test('every command: random valid messages are accepted, and break when a rule breaks', () => {
    const random = new Random(7);
    const validator = new HeaderValidator(cluster_test);
    const bytes = new Uint8Array(1 << 16);
    for (const command of valid_commands) {
        for (let round = 0; round < 50; round++) {
            const size = build_valid(random, bytes, command);
            const reason = validator.message(bytes, 0, size);
            assert.equal(reason, Reason.ok, `command ${command}: ${reason_text[reason]}`);
            // Any non-zero reserved byte is rejected once re-sealed.
            const reserved = header_fields(command).filter((field) => field.type === 'reserved');
            const field = reserved[random.int(reserved.length)]!;
            bytes[field.offset + random.int(field.size)] = 1 + random.int(255);
            sealed_header_checksum(new HeaderView().attach(bytes, 0));
            assert.equal(validator.message(bytes, 0, size), Reason.reserved_nonzero);
            assert.equal(validator.reserved_offset, field.offset);
        }
    }
});
