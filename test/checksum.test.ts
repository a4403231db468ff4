// The AEGIS-128L checksum: the published vectors, a message captured from the real client, both
// implementations against each other, and argument checking at the JS boundary.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import {
    checksum,
    checksum_aes_ni_supported,
    checksum_bigint,
    checksum_equal,
    checksum_implementation,
    checksum_select,
    ChecksumImplementation,
} from '../lib/vsr/checksum';

const implementations: ChecksumImplementation[] = checksum_aes_ni_supported()
    ? ['aes-ni', 'portable']
    : ['portable'];

function hex(bytes: Uint8Array): string {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

function checksum_hex(bytes: Uint8Array): string {
    const tag = new Uint8Array(16);
    checksum(bytes, 0, bytes.length, tag, 0);
    return hex(tag);
}

// Runs body once per implementation, always restoring automatic selection.
function for_each_implementation(body: (name: ChecksumImplementation) => void): void {
    try {
        for (const name of implementations) {
            assert.equal(checksum_select(name), name);
            assert.equal(checksum_implementation(), name);
            body(name);
        }
    } finally {
        checksum_select('auto');
    }
}

// The register request header as captured from tigerbeetle-node 0.17.9 (docs/wire-protocol.md §9),
// one row of 16 bytes per line; rows not listed are zero. The body is 256 zero bytes.
const captured_rows: ReadonlyArray<[number, string]> = [
    [0x00, '9e0dd4cc6ed3188b01cfc0b6be4f7db5'], // checksum
    [0x20, '651b82f3ddd4fcbf2deb8496e8ff613c'], // checksum_body
    [0x60, '00020000000000000000000009110000'], // size 512, release 0.17.9
    [0x70, '00000500000000000000000000000000'], // command request
    [0xa0, '94c34caad67004b1b6362d294b0a5f7a'], // client id
    [0xc0, '00000000020000000000000000000000'], // operation register
];

function captured_register_message(): Uint8Array {
    const message = new Uint8Array(512);
    for (const [offset, row] of captured_rows) message.set(Buffer.from(row, 'hex'), offset);
    return message;
}

test('checksum: the three vectors of wire-protocol.md §4', () => {
    for_each_implementation(() => {
        assert.equal(checksum_hex(new Uint8Array(0)), '83cc600dc4e3e7e62d4055826174f149');
        assert.equal(checksum_hex(new Uint8Array(16)), 'f72ad48dd05dd1656133101cd4be3a26');
        assert.equal(checksum_hex(new Uint8Array(256)), '651b82f3ddd4fcbf2deb8496e8ff613c');
        assert.equal(checksum_bigint(new Uint8Array(0)), 0x49F174618255402DE6E7E3C40D60CC83n);
    });
});

test('checksum: both checksums of the captured register request', () => {
    for_each_implementation(() => {
        const message = captured_register_message();
        assert.ok(checksum_equal(message, 16, 240, message, 0), 'header checksum');
        assert.ok(checksum_equal(message, 256, 256, message, 32), 'body checksum');
        const tag = new Uint8Array(16);
        checksum(message, 16, 240, tag, 0);
        assert.equal(hex(tag), '9e0dd4cc6ed3188b01cfc0b6be4f7db5');

        // Valid to invalid: any change in the covered bytes breaks the checksum.
        message[0xa0] ^= 0x01;
        assert.equal(checksum_equal(message, 16, 240, message, 0), false);
        message[0xa0] ^= 0x01;
        message[511] = 1;
        assert.equal(checksum_equal(message, 256, 256, message, 32), false);
        assert.ok(checksum_equal(message, 16, 240, message, 0), 'header does not cover body');
    });
});

test('checksum: every single-bit flip changes the checksum', () => {
    for_each_implementation(() => {
        const bytes = new Uint8Array(70);
        for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37) & 0xff;
        const expected = new Uint8Array(16);
        checksum(bytes, 0, bytes.length, expected, 0);
        for (let bit = 0; bit < bytes.length * 8; bit++) {
            bytes[bit >> 3] ^= 1 << (bit & 7);
            assert.equal(checksum_equal(bytes, 0, bytes.length, expected, 0), false);
            bytes[bit >> 3] ^= 1 << (bit & 7);
        }
        assert.ok(checksum_equal(bytes, 0, bytes.length, expected, 0));
        // Trailing zero bytes are not padding: the length is part of the checksum.
        const longer = new Uint8Array(71);
        longer.set(bytes);
        assert.equal(checksum_equal(longer, 0, longer.length, expected, 0), false);
    });
});

// A small deterministic generator (xorshift32) so that a failure reproduces.
function random_fill(bytes: Uint8Array, seed: number): number {
    let state = seed >>> 0 || 1;
    for (let i = 0; i < bytes.length; i++) {
        state ^= state << 13;
        state >>>= 0;
        state ^= state >>> 17;
        state ^= state << 5;
        state >>>= 0;
        bytes[i] = state & 0xff;
    }
    return state;
}

function checksum_with(name: ChecksumImplementation, bytes: Uint8Array, offset: number,
    length: number, target: Uint8Array, target_offset: number): void {
    checksum_select(name);
    checksum(bytes, offset, length, target, target_offset);
}

test('checksum: portable and AES-NI agree on random inputs', () => {
    if (!checksum_aes_ni_supported()) {
        assert.throws(() => checksum_select('aes-ni'), /not available/);
        return;
    }
    const pool = new Uint8Array((1 << 20) + 4096);
    random_fill(pool, 0x5eed);
    const tags = new Uint8Array(64);
    try {
        for (let length = 0; length <= 1100; length++) {
            const offset = (length * 7919) % 2048;
            checksum_with('portable', pool, offset, length, tags, 0);
            checksum_with('aes-ni', pool, offset, length, tags, 16);
            assert.equal(hex(tags.subarray(0, 16)), hex(tags.subarray(16, 32)), `len ${length}`);
        }
        for (const [offset, length] of [[0, 1 << 20], [1, 1 << 20], [4095, (1 << 20) - 3]]) {
            checksum_with('portable', pool, offset, length, tags, 5);
            checksum_with('aes-ni', pool, offset, length, tags, 37);
            assert.equal(hex(tags.subarray(5, 21)), hex(tags.subarray(37, 53)));
        }
    } finally {
        checksum_select('auto');
    }
});

test('checksum: views with a byte offset and wider element types use byte offsets', () => {
    for_each_implementation(() => {
        const backing = new Uint8Array(300);
        random_fill(backing, 7);
        const view = backing.subarray(3, 260);
        const tag_view = new Uint8Array(16);
        const tag_backing = new Uint8Array(16);
        checksum(view, 10, 200, tag_view, 0);
        checksum(backing, 13, 200, tag_backing, 0);
        assert.equal(hex(tag_view), hex(tag_backing));
        const words = new Uint32Array(backing.buffer, 4, 64);
        checksum(words as unknown as Uint8Array, 0, 256, tag_view, 0);
        checksum(backing, 4, 256, tag_backing, 0);
        assert.equal(hex(tag_view), hex(tag_backing));
        // Source and target may overlap: the tag is written only after it is computed.
        const copy = backing.slice();
        checksum(backing, 0, 64, backing, 8);
        checksum(copy, 0, 64, copy, 200);
        assert.equal(hex(backing.subarray(8, 24)), hex(copy.subarray(200, 216)));
    });
});

test('checksum: arguments out of range throw and write nothing', () => {
    const source = new Uint8Array(64);
    const target = new Uint8Array(32).fill(0xaa);
    const bad: ReadonlyArray<[number, number, number]> = [
        [0, 65, 0], [1, 64, 0], [65, 0, 0], [-1, 4, 0], [0, -1, 0], [0.5, 4, 0], [0, 4, 17],
        [0, 4, 32], [0, 4, -1], [NaN, 4, 0], [0, Infinity, 0], [2 ** 60, 1, 0],
    ];
    for (const [offset, length, target_offset] of bad) {
        assert.throws(() => checksum(source, offset, length, target, target_offset), RangeError,
            `${offset} ${length} ${target_offset}`);
        assert.throws(() => checksum_equal(source, offset, length, target, target_offset),
            RangeError);
    }
    assert.ok(target.every((byte) => byte === 0xaa));
    // The boundary cases themselves are valid.
    checksum(source, 64, 0, target, 16);
    checksum(source, 0, 64, target, 0);
    assert.equal(hex(target.subarray(0, 16)), checksum_hex(source));
    const untyped = checksum as unknown as (...args: unknown[]) => void;
    assert.throws(() => untyped([1, 2], 0, 1, target, 0), TypeError);
    assert.throws(() => untyped(source, '0', 1, target, 0), TypeError);
    assert.throws(() => untyped(source, 0, 1, null, 0), TypeError);
    assert.throws(() => checksum_select('sha256' as 'auto'), /not available/);
});

test('checksum: RINGLEDGER_CHECKSUM=portable forces the portable implementation at load', () => {
    const module_path = path.resolve(__dirname, '..', 'lib', 'vsr', 'checksum.js');
    const script = `const c = require(${JSON.stringify(module_path)});` +
        `process.stdout.write(c.checksum_implementation() + ' ' + ` +
        `c.checksum_bigint(new Uint8Array(16)).toString(16));`;
    const run = (value: string) => child_process.execFileSync(process.execPath, ['-e', script], {
        env: { ...process.env, RINGLEDGER_CHECKSUM: value },
        encoding: 'utf8',
    });
    assert.equal(run('portable'), 'portable 263abed41c10336165d15dd08dd42af7');
    const automatic = checksum_aes_ni_supported() ? 'aes-ni' : 'portable';
    assert.equal(run('auto'), `${automatic} 263abed41c10336165d15dd08dd42af7`);
});
