// Header views: a reusable window over 256 header bytes at (bytes, offset), with typed accessors
// for every field of header_layout.ts, and the checksum sealing order of docs/wire-protocol.md §4.
//
// Hot path rules: a view is allocated once and re-attached per message (`attach` keeps its
// DataView while the backing buffer stays the same, which for the arena is always). Integers up
// to u32 are plain numbers; u64 and u128 fields have limb accessors (u32 words, little-endian
// order) and 16-byte compare/copy helpers. BigInt accessors exist for tests, tooling and startup.
import assert from 'node:assert/strict';

import { checksum } from './checksum';
import { checksum_body_empty, header_size } from './constants';
import {
    Command,
    command_count,
    Field,
    field_by_name,
    frame,
    offsets,
} from './header_layout';

const u64_mask = (1n << 64n) - 1n;

export class HeaderView {
    bytes: Uint8Array = new Uint8Array(header_size);
    /** Byte offset of the header within `bytes`. */
    offset = 0;
    private data: DataView = new DataView(this.bytes.buffer);
    private base = 0;

    /** Points the view at the header starting at bytes[offset]; returns this for chaining. */
    attach(bytes: Uint8Array, offset: number): this {
        assert.ok(offset >= 0 && offset + header_size <= bytes.length, 'header out of bounds');
        if (bytes.buffer !== this.data.buffer) {
            // Only when switching backing buffers, never per message from the arena.
            this.data = new DataView(bytes.buffer);
        }
        this.bytes = bytes;
        this.offset = offset;
        this.base = bytes.byteOffset + offset;
        return this;
    }

    // Plain integers. `at` is a header-relative byte offset from header_layout.ts.
    u8(at: number): number { return this.data.getUint8(this.base + at); }
    u16(at: number): number { return this.data.getUint16(this.base + at, true); }
    u32(at: number): number { return this.data.getUint32(this.base + at, true); }
    set_u8(at: number, value: number): void { this.data.setUint8(this.base + at, value); }
    set_u16(at: number, value: number): void { this.data.setUint16(this.base + at, value, true); }
    set_u32(at: number, value: number): void { this.data.setUint32(this.base + at, value, true); }

    /** Limb `index` (0 = least significant) of a u64 or u128 field, as a u32. */
    limb(at: number, index: number): number {
        return this.data.getUint32(this.base + at + index * 4, true);
    }
    set_limb(at: number, index: number, value: number): void {
        this.data.setUint32(this.base + at + index * 4, value, true);
    }

    /** A u64 field as a number; asserts it is exact (op and commit numbers, sizes, sessions). */
    u64(at: number): number {
        const high = this.limb(at, 1);
        assert.ok(high <= 0x1FFFFF, 'u64 field exceeds Number.MAX_SAFE_INTEGER');
        return high * 0x1_0000_0000 + this.limb(at, 0);
    }
    set_u64(at: number, value: number): void {
        assert.ok(Number.isSafeInteger(value) && value >= 0);
        this.set_limb(at, 0, value >>> 0);
        this.set_limb(at, 1, Math.floor(value / 0x1_0000_0000));
    }

    /** Whether `size` bytes at a header offset are all zero. */
    zero(at: number, size: number): boolean {
        const bytes = this.bytes;
        const start = this.offset + at;
        assert.ok(at >= 0 && size >= 0 && start + size <= bytes.length, 'zero: out of bounds');
        for (let index = 0; index < size; index++) {
            if (bytes[start + index] !== 0) return false;
        }
        return true;
    }
    /** Whether the 16 bytes at a header offset equal other[other_offset, +16). */
    equal16(at: number, other: Uint8Array, other_offset: number): boolean {
        const bytes = this.bytes;
        const start = this.offset + at;
        assert.ok(other_offset >= 0 && other_offset + 16 <= other.length);
        for (let index = 0; index < 16; index++) {
            if (bytes[start + index] !== other[other_offset + index]) return false;
        }
        return true;
    }
    copy16_from(at: number, source: Uint8Array, source_offset: number): void {
        assert.ok(source_offset >= 0 && source_offset + 16 <= source.length);
        const bytes = this.bytes;
        const start = this.offset + at;
        for (let index = 0; index < 16; index++) {
            bytes[start + index] = source[source_offset + index]!;
        }
    }
    fill_zero(at: number, size: number): void {
        // fill() would clamp silently: a range past the buffer is a programmer error.
        assert.ok(at >= 0 && size >= 0 && this.offset + at + size <= this.bytes.length);
        this.bytes.fill(0, this.offset + at, this.offset + at + size);
    }

    // BigInt accessors: allocate, so tests, tooling and startup only.
    u64_bigint(at: number): bigint { return this.data.getBigUint64(this.base + at, true); }
    set_u64_bigint(at: number, value: bigint): void {
        assert.ok(value >= 0n && value <= u64_mask);
        this.data.setBigUint64(this.base + at, value, true);
    }
    u128_bigint(at: number): bigint {
        return this.u64_bigint(at) | (this.u64_bigint(at + 8) << 64n);
    }
    set_u128_bigint(at: number, value: bigint): void {
        assert.ok(value >= 0n && value < 1n << 128n);
        this.set_u64_bigint(at, value & u64_mask);
        this.set_u64_bigint(at + 8, value >> 64n);
    }

    // Frame fields used on every message.
    get size(): number { return this.u32(frame.size); }
    set size(value: number) { this.set_u32(frame.size, value); }
    get view(): number { return this.u32(frame.view); }
    set view(value: number) { this.set_u32(frame.view, value); }
    get release(): number { return this.u32(frame.release); }
    set release(value: number) { this.set_u32(frame.release, value); }
    get protocol(): number { return this.u16(frame.protocol); }
    set protocol(value: number) { this.set_u16(frame.protocol, value); }
    get command(): number { return this.u8(frame.command); }
    set command(value: number) { this.set_u8(frame.command, value); }
    get replica(): number { return this.u8(frame.replica); }
    set replica(value: number) { this.set_u8(frame.replica, value); }

    /** Any field by name, as a number (≤ u32) or bigint (u64/u128): tests and tooling. */
    get(name: string): number | bigint {
        const field = field_by_name(this.command, name);
        return this.get_field(field);
    }
    set(name: string, value: number | bigint): void {
        const field = field_by_name(this.command, name);
        this.set_field(field, value);
    }

    get_field(field: Field): number | bigint {
        switch (field.type) {
            case 'u8': return this.u8(field.offset);
            case 'u16': return this.u16(field.offset);
            case 'u32': return this.u32(field.offset);
            case 'u64': return this.u64_bigint(field.offset);
            case 'u128': return this.u128_bigint(field.offset);
            case 'reserved':
            case 'bytes': return this.bytes_bigint(field);
        }
    }

    set_field(field: Field, value: number | bigint): void {
        switch (field.type) {
            case 'u8': this.set_u8(field.offset, assert_u(value, 8)); return;
            case 'u16': this.set_u16(field.offset, assert_u(value, 16)); return;
            case 'u32': this.set_u32(field.offset, assert_u(value, 32)); return;
            case 'u64': this.set_u64_bigint(field.offset, BigInt(value)); return;
            case 'u128': this.set_u128_bigint(field.offset, BigInt(value)); return;
            case 'reserved':
            case 'bytes': this.set_bytes_bigint(field, BigInt(value)); return;
        }
    }

    // Byte fields as little-endian bigints, so that the round-trip test covers them too.
    private bytes_bigint(field: Field): bigint {
        return bytes_le_bigint(this.bytes, this.offset + field.offset, field.size);
    }
    private set_bytes_bigint(field: Field, value: bigint): void {
        assert.ok(value >= 0n && value < 1n << BigInt(field.size * 8));
        for (let index = 0; index < field.size; index++) {
            this.bytes[this.offset + field.offset + index] = Number(value & 0xFFn);
            value >>= 8n;
        }
    }
}

function assert_u(value: number | bigint, bits: number): number {
    const number = Number(value);
    assert.ok(Number.isInteger(number) && number >= 0 && number < 2 ** bits);
    return number;
}

/**
 * Zeroes the header at bytes[offset] and sets the frame fields every message needs.
 * Fields of the command part are then set by the caller, followed by `seal`.
 */
export function header_init(
    view: HeaderView, bytes: Uint8Array, offset: number,
    command: number, size: number, release: number,
): HeaderView {
    assert.ok(command > 0 && command < command_count);
    assert.ok(size >= header_size);
    assert.ok(offset + size <= bytes.length, 'header_init: the message does not fit');
    view.attach(bytes, offset);
    view.fill_zero(0, header_size);
    view.command = command;
    view.size = size;
    view.release = release;
    return view;
}

/** A cluster id as its 16 wire bytes, to compare headers against (startup only: allocates). */
export function cluster_bytes(cluster: bigint): Uint8Array {
    const bytes = new Uint8Array(header_size);
    new HeaderView().attach(bytes, 0).set_u128_bigint(frame.cluster, cluster);
    return bytes.slice(frame.cluster, frame.cluster + 16);
}

/** checksum_body = checksum(body); the body must already be in place after the header. */
export function set_checksum_body(view: HeaderView): void {
    const size = view.size;
    assert.ok(size >= header_size && view.offset + size <= view.bytes.length, 'body out of bounds');
    checksum(
        view.bytes, view.offset + header_size, size - header_size,
        view.bytes, view.offset + frame.checksum_body,
    );
}

/** checksum = checksum(header bytes 16..255). Must follow set_checksum_body (§4). */
export function set_checksum(view: HeaderView): void {
    const bytes = view.bytes;
    checksum(bytes, view.offset + 16, header_size - 16, bytes, view.offset + frame.checksum);
}

const context_scratch = new Uint8Array(16);

/**
 * The reply `context` rule (§4): with checksum_body set, context = checksum(bytes 16..255 while
 * checksum = 0 and context = 0). The result is written through a scratch buffer because the
 * context field lies inside the checksummed range.
 */
export function set_reply_context(view: HeaderView): void {
    assert.equal(view.command, Command.reply);
    view.fill_zero(frame.checksum, 16);
    view.fill_zero(offsets.reply.context, 16);
    checksum(view.bytes, view.offset + 16, header_size - 16, context_scratch, 0);
    view.copy16_from(offsets.reply.context, context_scratch, 0);
}

/** Seals a fully built message in the required order: body checksum, reply context, checksum. */
export function seal(view: HeaderView): void {
    set_checksum_body(view);
    if (view.command === Command.reply) set_reply_context(view);
    set_checksum(view);
}

/** Seals a message whose body is empty without reading past the header. */
export function seal_empty_body(view: HeaderView): void {
    assert.equal(view.size, header_size);
    view.copy16_from(frame.checksum_body, checksum_body_empty, 0);
    set_checksum(view);
}

/** `size` bytes at `offset` as a little-endian unsigned bigint (cold paths: startup, tests). */
export function bytes_le_bigint(bytes: Uint8Array, offset: number, size: number): bigint {
    assert.ok(offset >= 0 && size >= 0 && offset + size <= bytes.length);
    let value = 0n;
    for (let index = size - 1; index >= 0; index--) {
        value = (value << 8n) | BigInt(bytes[offset + index]!);
    }
    return value;
}
