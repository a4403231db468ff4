// The shared-memory layout table in TypeScript matches the C++ structs field for field.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { binding } from '../lib/io/binding';
import { engine_completions_offset, engine_control_size, engine_layout } from '../lib/io/layout';

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
