// Multi-batch bodies: the wire examples of docs/wire-protocol.md §6.2 encode to and decode from the
// documented bytes, and every rejection case of §6.2 is rejected with its reason.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
    MultiBatchDecoder,
    MultiBatchEncoder,
    MultiBatchReason,
    multi_batch_trailer_size,
} from '../lib/vsr/multi_batch';

function hex(text: string): Uint8Array {
    return Uint8Array.from(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
}
function ff(count: number): string {
    return 'ff'.repeat(count);
}
function id(value: number): string {
    return Buffer.from(new BigUint64Array([BigInt(value), 0n]).buffer).toString('hex');
}

/** Encodes batches of u128 ids (E = 16), as lookup requests do. */
function encode_ids(batches: number[][], element_size = 16): Uint8Array {
    const target = new Uint8Array(4096);
    const encoder = new MultiBatchEncoder();
    encoder.reset(target, 0, target.length, element_size);
    for (const batch of batches) {
        for (let index = 0; index < batch.length; index++) {
            target.set(hex(id(batch[index]!)), encoder.payload_offset() + index * element_size);
        }
        encoder.add_batch(batch.length);
    }
    return target.slice(0, encoder.finish());
}

const decoder = new MultiBatchDecoder();

function decode_counts(body: Uint8Array, element_size: number): number[] {
    assert.equal(decoder.decode(body, 0, body.length, element_size), MultiBatchReason.ok);
    const counts: number[] = [];
    for (let batch = 0; batch < decoder.batch_count; batch++) {
        counts.push(decoder.element_count(batch));
    }
    return counts;
}

test('§6.2 examples: lookup request bodies', () => {
    const one = hex(id(1) + ff(12) + '0100 0100');
    assert.deepEqual(encode_ids([[1]]), one);
    assert.deepEqual(decode_counts(one, 16), [1]);
    assert.equal(decoder.batch_offset(0), 0);

    const empty = hex(ff(12) + '0000 0100');
    assert.deepEqual(encode_ids([[]]), empty);
    assert.deepEqual(decode_counts(empty, 16), [0]);

    const merged = hex(id(3) + id(4) + id(5) + ff(8) + '0100 0000 0200 0300');
    assert.deepEqual(encode_ids([[3, 4], [], [5]]), merged);
    assert.deepEqual(decode_counts(merged, 16), [2, 0, 1]);
    assert.equal(decoder.batch_offset(0), 0);
    assert.equal(decoder.batch_offset(1), 32);
    assert.equal(decoder.batch_offset(2), 32);
    assert.equal(decoder.element_count_total(), 3);
    assert.equal(decoder.payload_size, 48);
});

test('§6.2 examples: lookup reply bodies with E = 128', () => {
    const none = hex(ff(124) + '0000 0100');
    assert.equal(none.length, 128);
    assert.deepEqual(encode_ids([[]], 128), none);
    assert.deepEqual(decode_counts(none, 128), [0]);

    const account = new Uint8Array(256);
    account.set(hex(id(1)), 0);
    account.set(hex(ff(124) + '0100 0100'), 128);
    assert.deepEqual(encode_ids([[1]], 128), account);
    assert.deepEqual(decode_counts(account, 128), [1]);
});

test('trailer size is rounded up to whole elements', () => {
    assert.equal(multi_batch_trailer_size(1, 16), 16);
    assert.equal(multi_batch_trailer_size(7, 16), 16);
    assert.equal(multi_batch_trailer_size(8, 16), 32);
    assert.equal(multi_batch_trailer_size(1, 128), 128);
    assert.equal(multi_batch_trailer_size(63, 128), 128);
    assert.equal(multi_batch_trailer_size(64, 128), 256);
    assert.equal(multi_batch_trailer_size(3, 1), 8);
    assert.throws(() => multi_batch_trailer_size(0, 16));
    assert.throws(() => multi_batch_trailer_size(65535, 16));
});

test('§6.2 rejections', () => {
    const reject = (body: Uint8Array, element_size: number, reason: number): void => {
        assert.equal(decoder.decode(body, 0, body.length, element_size), reason);
        assert.equal(decoder.batch_count, 0);
    };
    reject(new Uint8Array(0), 16, MultiBatchReason.body_too_short);
    reject(hex('01'), 16, MultiBatchReason.body_too_short);
    reject(hex('0000 0100'), 16, MultiBatchReason.body_too_short);
    reject(hex(ff(124) + '0000 0100'), 16 * 16, MultiBatchReason.body_too_short);
    reject(hex(ff(14) + '0000'), 16, MultiBatchReason.batch_count_zero);
    reject(hex(ff(14) + 'ffff'), 16, MultiBatchReason.batch_count_invalid);
    for (let at = 0; at < 12; at++) {
        const body = hex(ff(12) + '0000 0100');
        body[at] = 0xFE;
        reject(body, 16, MultiBatchReason.padding_invalid);
    }
    // Counts claim more, or fewer, elements than the payload holds.
    reject(hex(ff(12) + '0100 0100'), 16, MultiBatchReason.payload_size_mismatch);
    reject(hex(id(1) + ff(12) + '0000 0100'), 16, MultiBatchReason.payload_size_mismatch);
    reject(hex(id(1) + id(2) + ff(12) + '0100 0100'), 16, MultiBatchReason.payload_size_mismatch);
    // A body that is not whole elements.
    reject(hex('00' + id(1) + ff(12) + '0100 0100'), 16, MultiBatchReason.payload_size_mismatch);
    // Valid → invalid → valid: the decoder holds no state from a rejected body.
    assert.deepEqual(decode_counts(hex(ff(12) + '0000 0100'), 16), [0]);
});

test('decode at an offset inside a larger buffer', () => {
    const body = encode_ids([[9], [8, 7]]);
    const buffer = new Uint8Array(256 + body.length + 5).fill(0x55);
    buffer.set(body, 256);
    assert.equal(decoder.decode(buffer, 256, body.length, 16), MultiBatchReason.ok);
    assert.equal(decoder.batch_offset(1), 256 + 16);
    assert.equal(buffer[decoder.batch_offset(1)], 8);
    assert.equal(decoder.element_count(1), 2);
});

test('encoder: capacity is respected, trailer included', () => {
    const encoder = new MultiBatchEncoder();
    const target = new Uint8Array(64);
    encoder.reset(target, 0, 48, 16);
    assert.ok(encoder.fits(2)); // 32 payload + 16 trailer.
    assert.ok(!encoder.fits(3));
    encoder.add_batch(2);
    assert.ok(!encoder.fits(1));
    assert.ok(encoder.fits(0));
    assert.throws(() => encoder.add_batch(1), /does not fit/);
    assert.equal(encoder.finish(), 48);
    encoder.reset(target, 0, 64, 16);
    assert.throws(() => encoder.finish(), /at least one batch/);
    // The largest batch count fits and round-trips.
    const big = new Uint8Array(2 * 65534 + 2 + 16);
    encoder.reset(big, 0, big.length, 16);
    for (let batch = 0; batch < 65534; batch++) encoder.add_batch(0);
    assert.ok(!encoder.fits(0));
    const size = encoder.finish();
    assert.equal(size, multi_batch_trailer_size(65534, 16));
    assert.equal(decoder.decode(big, 0, size, 16), MultiBatchReason.ok);
    assert.equal(decoder.batch_count, 65534);
});
