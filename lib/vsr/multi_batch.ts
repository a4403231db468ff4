// Multi-batch bodies (docs/wire-protocol.md §6.2) of operations 138-147, in requests and replies:
//
//   [ payload: batch 0 elements | batch 1 elements | ... ][ trailer ]
//   trailer, read backwards from the end of the body:
//     last 2 bytes            postamble: u16 batch_count, 1..65534
//     the 2*batch_count before count of batch 0 right before the postamble, batch 1 before that…
//     the bytes before those  padding, every byte 0xFF
//   trailer_size = ceil((2*batch_count + 2) / E) * E, E = element size of this body
//
// The trailer is always whole elements, so a body is always whole elements. Encoding is
// canonical: a decoded body re-encodes to the same bytes (the fuzz test relies on this).
// Encoder and decoder hold their scratch arrays from construction; nothing allocates per body.
import assert from 'node:assert/strict';

import { multi_batch_count_max } from './constants';

export const MultiBatchReason = {
    ok: 0,
    body_too_short: 1,
    batch_count_zero: 2,
    batch_count_invalid: 3,
    padding_invalid: 4,
    payload_size_mismatch: 5,
} as const;
export type MultiBatchReasonCode = (typeof MultiBatchReason)[keyof typeof MultiBatchReason];

export const multi_batch_reason_text: readonly string[] = Object.freeze([
    'ok',
    'body is shorter than its trailer',
    'batch_count is 0',
    'batch_count is 0xFFFF',
    'a trailer padding byte is not 0xFF',
    'payload size differs from the sum of the counts times the element size',
]);

const count_size = 2;
const postamble_size = 2;
const count_max = 0xFFFF;

function assert_element_size(element_size: number): void {
    assert.ok(Number.isInteger(element_size) && element_size > 0 && element_size <= 0xFFFF);
}

/** Trailer bytes for `batch_count` batches of `element_size`-byte elements. */
export function multi_batch_trailer_size(batch_count: number, element_size: number): number {
    assert.ok(Number.isInteger(batch_count) && batch_count >= 1);
    assert.ok(batch_count <= multi_batch_count_max);
    assert_element_size(element_size);
    const unpadded = count_size * batch_count + postamble_size;
    return Math.ceil(unpadded / element_size) * element_size;
}

/**
 * Builds a multi-batch body in place: for each batch write its elements at `payload_offset()`,
 * call `add_batch(count)`, and finally `finish()` to append the trailer.
 */
export class MultiBatchEncoder {
    private readonly counts = new Uint16Array(multi_batch_count_max);
    private target: Uint8Array = new Uint8Array(0);
    private offset = 0;
    private capacity = 0;
    private element_size = 1;
    private payload_size = 0;
    batch_count = 0;

    /** Starts a body at target[offset, offset + capacity). */
    reset(target: Uint8Array, offset: number, capacity: number, element_size: number): void {
        assert_element_size(element_size);
        assert.ok(offset >= 0 && capacity >= 0 && offset + capacity <= target.length);
        this.target = target;
        this.offset = offset;
        this.capacity = capacity;
        this.element_size = element_size;
        this.payload_size = 0;
        this.batch_count = 0;
    }

    /** Where the elements of the next batch go (an index into the target array). */
    payload_offset(): number {
        return this.offset + this.payload_size;
    }

    /** Whether one more batch of `count` elements still fits with its trailer. */
    fits(count: number): boolean {
        if (this.batch_count >= multi_batch_count_max || count > count_max) return false;
        const payload = this.payload_size + count * this.element_size;
        return payload + multi_batch_trailer_size(this.batch_count + 1, this.element_size) <=
            this.capacity;
    }

    /** Records that the next batch's `count` elements were written at payload_offset(). */
    add_batch(count: number): void {
        assert.ok(Number.isInteger(count) && count >= 0);
        assert.ok(this.fits(count), 'multi-batch does not fit');
        this.counts[this.batch_count] = count;
        this.batch_count += 1;
        this.payload_size += count * this.element_size;
        assert.ok(this.payload_size <= this.capacity);
    }

    /** Writes the trailer after the payload; returns the body size in bytes. */
    finish(): number {
        assert.ok(this.batch_count >= 1, 'a multi-batch has at least one batch');
        const trailer_size = multi_batch_trailer_size(this.batch_count, this.element_size);
        const body_size = this.payload_size + trailer_size;
        assert.ok(body_size <= this.capacity);
        const end = this.offset + body_size;
        const counts_start = end - postamble_size - count_size * this.batch_count;
        // The trailer's padding and counts start after the payload.
        assert.ok(counts_start >= this.offset + this.payload_size);
        this.target.fill(0xFF, this.offset + this.payload_size, counts_start);
        write_u16(this.target, end - postamble_size, this.batch_count);
        for (let batch = 0; batch < this.batch_count; batch++) {
            write_u16(this.target, end - postamble_size - count_size * (batch + 1),
                this.counts[batch]!);
        }
        assert.equal(body_size % this.element_size, 0);
        return body_size;
    }
}

function write_u16(target: Uint8Array, at: number, value: number): void {
    target[at] = value & 0xFF;
    target[at + 1] = value >>> 8;
}

function read_u16(source: Uint8Array, at: number): number {
    return source[at]! | (source[at + 1]! << 8);
}

/**
 * Decodes and checks a multi-batch body. After `decode` returns ok, `batch_count`,
 * `element_count(batch)` and `batch_offset(batch)` describe the batches; the body is not copied.
 */
export class MultiBatchDecoder {
    /** prefix[b] = elements in batches before b; prefix[batch_count] = all elements. */
    private readonly prefix = new Uint32Array(multi_batch_count_max + 1);
    private body_offset = 0;
    private element_size = 1;
    batch_count = 0;
    payload_size = 0;

    decode(
        body: Uint8Array, offset: number, size: number, element_size: number,
    ): MultiBatchReasonCode {
        assert_element_size(element_size);
        assert.ok(offset >= 0 && size >= 0 && offset + size <= body.length);
        this.batch_count = 0;
        this.payload_size = 0;
        if (size < postamble_size) return MultiBatchReason.body_too_short;
        const end = offset + size;
        const batch_count = read_u16(body, end - postamble_size);
        if (batch_count === 0) return MultiBatchReason.batch_count_zero;
        if (batch_count > multi_batch_count_max) return MultiBatchReason.batch_count_invalid;
        const trailer_size = multi_batch_trailer_size(batch_count, element_size);
        if (trailer_size > size) return MultiBatchReason.body_too_short;
        const counts_start = end - postamble_size - count_size * batch_count;
        for (let at = end - trailer_size; at < counts_start; at++) {
            if (body[at] !== 0xFF) return MultiBatchReason.padding_invalid;
        }
        let elements = 0;
        for (let batch = 0; batch < batch_count; batch++) {
            this.prefix[batch] = elements;
            elements += read_u16(body, end - postamble_size - count_size * (batch + 1));
        }
        this.prefix[batch_count] = elements;
        const payload_size = size - trailer_size;
        if (elements * element_size !== payload_size) return MultiBatchReason.payload_size_mismatch;
        assert.ok(payload_size >= 0 && payload_size % element_size === 0);
        this.body_offset = offset;
        this.element_size = element_size;
        this.batch_count = batch_count;
        this.payload_size = payload_size;
        return MultiBatchReason.ok;
    }

    /** Elements in batch `batch` of the last decoded body. */
    element_count(batch: number): number {
        assert.ok(batch >= 0 && batch < this.batch_count);
        return this.prefix[batch + 1]! - this.prefix[batch]!;
    }

    /** Index into the body array of the first element of batch `batch`. */
    batch_offset(batch: number): number {
        assert.ok(batch >= 0 && batch < this.batch_count);
        return this.body_offset + this.prefix[batch]! * this.element_size;
    }

    /** Elements in all batches of the last decoded body. */
    element_count_total(): number {
        return this.prefix[this.batch_count]!;
    }
}
