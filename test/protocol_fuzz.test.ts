// Protocol fuzz: seeded random and mutated messages through the header validator and the
// multi-batch decoder. Nothing may throw or hang; every message gets the verdict the independent
// reference validator (test/protocol_samples.ts) or the mutation itself predicts; every accepted
// multi-batch body re-encodes to the same bytes. RINGLEDGER_TEST_LONG=1 runs 20× longer, and
// RINGLEDGER_SEED=<n> replays a seed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { test_seed } from '../lib/testing/seed';
import { client_operation_specs } from '../lib/ledger/operations';

import { checksum } from '../lib/vsr/checksum';
import { header_size, message_size_max } from '../lib/vsr/constants';
import { HeaderView, seal } from '../lib/vsr/header';
import { Command, command_count, header_fields } from '../lib/vsr/header_layout';
import {
    MultiBatchDecoder,
    MultiBatchEncoder,
    MultiBatchReason,
    multi_batch_reason_text,
} from '../lib/vsr/multi_batch';
import { HeaderValidator, Reason, reason_text } from '../lib/vsr/validate';
import {
    build_valid,
    cluster_test,
    Random,
    reference_valid,
    valid_commands,
} from './protocol_samples';

const long = process.env.RINGLEDGER_TEST_LONG === '1';
const seed = test_seed(0x5eed_0001);
const message_count = long ? 2_000_000 : 100_000;
const body_count = long ? 2_000_000 : 100_000;
const buffer_size = 1 << 16;

// Event and result sizes of the multi-batch operations, from the one operation table.
const event_size: Record<number, number> = {};
const result_size: Record<number, number> = {};
for (const spec of client_operation_specs) {
    event_size[spec.operation] = spec.event_size;
    result_size[spec.operation] = spec.result_size;
}

const decoder = new MultiBatchDecoder();
const encoder = new MultiBatchEncoder();
const reencoded = new Uint8Array(buffer_size);

/** Decodes a body; if accepted, asserts that re-encoding reproduces it byte for byte. */
function decode_checked(body: Uint8Array, offset: number, size: number, element: number): number {
    const reason = decoder.decode(body, offset, size, element);
    assert.ok(multi_batch_reason_text[reason] !== undefined);
    if (reason !== MultiBatchReason.ok) {
        assert.equal(decoder.batch_count, 0);
        return reason;
    }
    encoder.reset(reencoded, 0, reencoded.length, element);
    for (let batch = 0; batch < decoder.batch_count; batch++) {
        const count = decoder.element_count(batch);
        const start = decoder.batch_offset(batch);
        reencoded.set(body.subarray(start, start + count * element), encoder.payload_offset());
        encoder.add_batch(count);
    }
    const encoded_size = encoder.finish();
    assert.equal(encoded_size, size);
    assert.deepEqual(reencoded.subarray(0, size), body.subarray(offset, offset + size));
    return reason;
}

// Mutations of a valid message and the verdict each one implies (undefined: ask the oracle).
type Mutation = (random: Random, bytes: Uint8Array, size: number) => [number, number | undefined];

function reseal(bytes: Uint8Array): void {
    const view = new HeaderView().attach(bytes, 0);
    const size = view.size;
    if (size >= header_size && size <= buffer_size) {
        seal(view);
    } else {
        // There is no such body: seal only the header; the validator rejects the size first.
        header_checksum(bytes);
    }
}

function header_checksum(bytes: Uint8Array): void {
    checksum(bytes, 16, header_size - 16, bytes, 0);
}

const mutations: readonly Mutation[] = [
    // Unchanged: accepted.
    (_random, _bytes, size) => [size, Reason.ok],
    // A flipped bit in header bytes 16..255: header checksum fails.
    (random, bytes, size) => {
        bytes[16 + random.int(240)] ^= 1 << random.int(8);
        return [size, Reason.checksum_invalid];
    },
    // A flipped bit in the checksum itself.
    (random, bytes, size) => {
        bytes[random.int(16)] ^= 1 << random.int(8);
        return [size, Reason.checksum_invalid];
    },
    // A flipped bit in the body: body checksum fails (no body: unchanged).
    (random, bytes, size) => {
        if (size === header_size) return [size, Reason.ok];
        bytes[header_size + random.int(size - header_size)] ^= 1 << random.int(8);
        return [size, Reason.checksum_body_invalid];
    },
    // Fewer bytes arrived than the message holds.
    (random, _bytes, size) => {
        const available = random.int(size);
        return [available, available < header_size ? Reason.header_truncated
            : Reason.body_truncated];
    },
    // A non-zero reserved byte, header re-sealed.
    (random, bytes, size) => {
        const reserved = header_fields(bytes[114]!).filter((field) => field.type === 'reserved');
        const field = reserved[random.int(reserved.length)]!;
        bytes[field.offset + random.int(field.size)] = 1 + random.int(255);
        header_checksum(bytes);
        return [size, Reason.reserved_nonzero];
    },
    // Random bytes of the header set to random values, fully re-sealed: ask the oracle.
    (random, bytes, size) => {
        const changes = 1 + random.int(random.chance(0.8) ? 2 : 16);
        for (let change = 0; change < changes; change++) {
            bytes[16 + random.int(240)] = random.chance(0.3) ? 0 : random.u32() & 0xFF;
        }
        reseal(bytes);
        return [random.chance(0.9) ? size : random.int(buffer_size), undefined];
    },
    // One typed field set to zero, a small value or a random value, re-sealed: ask the oracle.
    (random, bytes, size) => {
        const view = new HeaderView().attach(bytes, 0);
        const fields = header_fields(view.command).filter((field) => field.type !== 'reserved' &&
            field.name !== 'checksum' && field.name !== 'checksum_body' &&
            field.name !== 'command' && field.name !== 'size');
        const field = fields[random.int(fields.length)]!;
        const choice = random.int(3);
        const value = choice === 0 ? 0n : choice === 1 ? BigInt(random.int(3))
            : random.bigint(field.size * 8);
        view.set_field(field, value);
        reseal(bytes);
        return [size, undefined];
    },
    // A random command byte, re-sealed.
    (random, bytes, size) => {
        bytes[114] = random.chance(0.5) ? random.int(command_count + 3) : random.u32() & 0xFF;
        header_checksum(bytes);
        return [size, undefined];
    },
    // Mostly random header, re-sealed.
    (random, bytes, _size) => {
        random.fill(bytes, 16, header_size);
        if (random.chance(0.5)) bytes.fill(0, 128, 256);
        new HeaderView().attach(bytes, 0).size = header_size + random.int(2048);
        reseal(bytes);
        return [header_size + random.int(4096), undefined];
    },
];

function expect_verdict(
    validator: HeaderValidator, bytes: Uint8Array, available: number, expected: number | undefined,
): number {
    const reason = validator.message(bytes, 0, available);
    assert.ok(Number.isInteger(reason) && reason_text[reason] !== undefined);
    const oracle = reference_valid(bytes, available);
    if (expected !== undefined) assert.equal(reason, expected, reason_text[reason]);
    assert.equal(reason === Reason.ok, oracle,
        `validator says "${reason_text[reason]}", reference says ${oracle}`);
    return reason;
}

// For accepted requests and replies of multi-batch operations, run the body decoder too.
function decode_message_body(validator: HeaderValidator): void {
    const view = validator.view;
    const command = view.command;
    if (command !== Command.request && command !== Command.reply) return;
    const operation = view.u8(command === Command.request ? 196 : 236);
    const element = command === Command.request ? event_size[operation] : result_size[operation];
    if (element === undefined) return;
    decode_checked(view.bytes, header_size, view.size - header_size, element);
}

test(`fuzz: ${message_count} random and mutated messages through the validator`, {
    timeout: long ? 3_600_000 : 60_000,
}, () => {
    const random = new Random(seed);
    const validator = new HeaderValidator(cluster_test);
    const bytes = new Uint8Array(buffer_size);
    const verdicts = new Uint32Array(reason_text.length);
    for (let index = 0; index < message_count; index++) {
        const command = valid_commands[random.int(valid_commands.length)]!;
        const size = build_valid(random, bytes, command);
        const mutation = random.int(mutations.length);
        const [available, expected] = mutations[mutation]!(random, bytes, size);
        try {
            const reason = expect_verdict(validator, bytes, available, expected);
            verdicts[reason]! += 1;
            if (reason === Reason.ok) decode_message_body(validator);
        } catch (error) {
            throw new Error(`seed ${seed} message ${index} command ${command} ` +
                `mutation ${mutation}: ${(error as Error).message}`);
        }
    }
    // The run must have exercised acceptance and a broad set of rejection reasons.
    assert.ok(verdicts[Reason.ok]! > message_count / 10);
    const seen = Array.from(verdicts).filter((count) => count > 0).length;
    assert.ok(seen >= 15, `only ${seen} distinct verdicts`);
});

// Random bodies: either valid encodings with random counts, or those mutated, or noise.
function random_body(random: Random, body: Uint8Array, element: number): number {
    const batches = 1 + random.int(random.chance(0.9) ? 8 : 300);
    encoder.reset(body, 0, body.length, element);
    for (let batch = 0; batch < batches; batch++) {
        const count = random.chance(0.3) ? 0 : random.int(6);
        if (!encoder.fits(count)) break;
        random.fill(body, encoder.payload_offset(), encoder.payload_offset() + count * element);
        encoder.add_batch(count);
    }
    if (encoder.batch_count === 0) encoder.add_batch(0);
    return encoder.finish();
}

test(`fuzz: ${body_count} random and mutated multi-batch bodies`, {
    timeout: long ? 3_600_000 : 60_000,
}, () => {
    const random = new Random(seed ^ 0x9e3779b9);
    const body = new Uint8Array(buffer_size);
    const elements = [1, 2, 8, 16, 64, 128, 384];
    const verdicts = new Uint32Array(multi_batch_reason_text.length);
    for (let index = 0; index < body_count; index++) {
        const element = elements[random.int(elements.length)]!;
        let size = random_body(random, body, element);
        const kind = random.int(6);
        if (kind === 1) body[size - 1 - random.int(Math.min(size, 40))] ^= 1 << random.int(8);
        if (kind === 2) size = random.int(size + 1);
        if (kind === 3) body[random.int(size)] = random.u32() & 0xFF;
        if (kind === 4) { size = random.int(600); random.fill(body, 0, size); }
        if (kind === 5) size = Math.min(body.length, size + element * random.int(3));
        const offset = 0;
        assert.ok(size <= message_size_max);
        const reason = decode_checked(body, offset, size, element);
        if (kind === 0) assert.equal(reason, MultiBatchReason.ok);
        verdicts[reason]! += 1;
    }
    for (let reason = 0; reason < verdicts.length; reason++) {
        assert.ok(verdicts[reason]! > 0, `never saw ${multi_batch_reason_text[reason]}`);
    }
});
