// The shared-memory layout table in TypeScript matches the C++ structs field for field.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { binding } from '../lib/io/binding';
import { engine_completions_offset, engine_control_size, engine_layout } from '../lib/io/layout';
import { account_at, record_fields, transfer_at } from '../lib/ledger/record_layout';
import { account_encode, transfer_encode } from '../lib/testing/ledger_model';
import type { Account, Transfer } from '../lib/testing/ledger_model';

type NativeLayout = Record<string, number>;

function native_layout(): NativeLayout {
    const layout = binding().engine_layout as NativeLayout | undefined;
    assert.ok(layout !== undefined, 'the addon exports engine_layout');
    return layout;
}

test('layout: every TypeScript field equals the C++ value, and none is missing', () => {
    const native = native_layout();
    const names = Object.keys(engine_layout).sort();
    assert.deepEqual(Object.keys(native).sort(), names);
    for (const name of names) {
        const value = engine_layout[name as keyof typeof engine_layout];
        assert.equal(native[name], value, `layout field ${name}`);
    }
});

test('layout: fields fit inside their records and doubles are 8-aligned', () => {
    const L = engine_layout;
    for (const field of ['enter_calls', 'submitted', 'completed', 'js_calls'] as const) {
        const offset = L[`header_${field}`];
        assert.equal(offset % 8, 0);
        assert.ok(offset + 8 <= L.header_size);
    }
    for (const field of ['arena_offset', 'length', 'file_offset', 'extra'] as const) {
        const offset = L[`descriptor_${field}`];
        assert.equal(offset % 8, 0);
        assert.ok(offset + 8 <= L.descriptor_size);
    }
    assert.equal(L.descriptor_size % 8, 0);
    assert.equal(L.staging_offset % 8, 0);
    assert.equal(engine_completions_offset(4), L.staging_offset + 4 * 2 * L.descriptor_size);
    assert.equal(engine_control_size(4), engine_completions_offset(4) + 4 * L.completion_size);
    // Invalid: a layout that disagreed with native would be caught by the first test; check that
    // the comparison itself is not vacuous.
    const native = native_layout();
    assert.notEqual(native.descriptor_size, L.descriptor_size + 8);
});

test('record layout: the table agrees with the reference model\'s own encoders', () => {
    // Each field gets a distinct value through the model's hand-written encoder; reading it back
    // at the table's offset must give it, so the table and the independent copy agree byte for
    // byte.
    for (const [kind, fields, encode] of [
        ['account', record_fields.account, (record: Record<string, unknown>, bytes: Uint8Array) =>
            account_encode(record as unknown as Account, bytes, 0)],
        ['transfer', record_fields.transfer, (record: Record<string, unknown>,
            bytes: Uint8Array) => transfer_encode(record as unknown as Transfer, bytes, 0)],
    ] as const) {
        const record: Record<string, unknown> = {};
        fields.forEach(([name, size], index) => {
            record[name] = size >= 8 ? BigInt(index + 1) * 0x01010101n : index + 1;
        });
        const bytes = new Uint8Array(128);
        encode(record, bytes);
        const view = new DataView(bytes.buffer);
        const at = kind === 'account' ? account_at : transfer_at;
        fields.forEach(([name, size], index) => {
            const offset = (at as Record<string, number>)[name]!;
            const value = size >= 8 ? view.getBigUint64(offset, true) :
                size === 4 ? view.getUint32(offset, true) : view.getUint16(offset, true);
            assert.equal(value, size >= 8 ? BigInt(index + 1) * 0x01010101n : index + 1,
                `${kind}.${name} at ${offset}`);
        });
    }
});
