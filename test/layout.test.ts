// The shared-memory layout TypeScript reads from the addon (lib/io/layout.ts) is the one the C++
// structs define, complete and consistent: every field lies inside its record, aligned for the
// typed array that reads it, the records are packed as the engine indexes them, and the buffer's
// areas follow one another as engine_completions_offset says.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { binding } from '../lib/io/binding';
import {
    engine_completions_offset, engine_control_size, engine_layout, engine_layout_fields,
    engine_layout_read,
} from '../lib/io/layout';
import type { EngineLayoutField } from '../lib/io/layout';
import { account_at, record_fields, transfer_at } from '../lib/ledger/record_layout';
import { account_encode, transfer_encode } from '../lib/testing/ledger_model';
import type { Account, Transfer } from '../lib/testing/ledger_model';

type Width = 4 | 8;
/** Each record's fields with the width of the typed array UringEngine reads them through. */
const records: Record<'header' | 'descriptor' | 'completion', Record<string, Width>> = {
    header: {
        staged_count: 4, completion_count: 4, polling: 4,
        enter_calls: 8, submitted: 8, completed: 8, js_calls: 8,
    },
    descriptor: {
        op: 4, slot: 4, generation: 4, fd: 4, flags: 4, link: 4,
        arena_offset: 8, length: 8, file_offset: 8, extra: 8,
    },
    completion: { slot: 4, result: 4 },
};
/** Bytes of a record that no exported field covers (the header's `reserved` word). */
const unexported: Record<keyof typeof records, number> = {
    header: 4, descriptor: 0, completion: 0,
};

function field(name: string): number {
    assert.ok((engine_layout_fields as readonly string[]).includes(name), `no field ${name}`);
    return engine_layout[name as EngineLayoutField];
}

test('layout: the addon exports exactly the expected names, as lib/io/layout.ts reads them', () => {
    const native = binding().engine_layout;
    assert.deepEqual(Object.keys(native).sort(), [...engine_layout_fields].sort());
    for (const name of engine_layout_fields) {
        assert.equal(engine_layout[name], native[name], name);
        assert.ok(Number.isSafeInteger(engine_layout[name]) && engine_layout[name] >= 0, name);
    }
    assert.ok(Object.isFrozen(engine_layout));
});

test('layout: a missing or malformed export is refused at load, naming it', () => {
    const native = binding().engine_layout;
    assert.deepEqual(engine_layout_read(native), engine_layout);
    const without = { ...native };
    delete without.descriptor_extra;
    assert.throws(() => engine_layout_read(without), /engine_layout lacks descriptor_extra/);
    for (const bad of [-8, 1.5, '8', null, Number.NaN]) {
        assert.throws(() => engine_layout_read({ ...native, header_polling: bad }),
            /engine_layout\.header_polling is .*not a non-negative integer/, String(bad));
    }
    // Names TypeScript does not use are ignored.
    assert.deepEqual(engine_layout_read({ ...native, header_reserved: 12 }), engine_layout);
});

test('layout: fields lie inside their records, aligned and packed as the engine reads them', () => {
    for (const [record, fields] of Object.entries(records) as
        [keyof typeof records, Record<string, Width>][]) {
        // The table above names every exported field of the record, so the checks cover them all.
        const exported = engine_layout_fields
            .filter((name) => name.startsWith(`${record}_`) && name !== `${record}_size`)
            .map((name) => name.slice(record.length + 1));
        assert.deepEqual(exported.sort(), Object.keys(fields).sort(), record);
        const size = field(`${record}_size`);
        const spans = Object.entries(fields)
            .map(([name, width]) => ({ name, width, offset: field(`${record}_${name}`) }))
            .sort((a, b) => a.offset - b.offset);
        let end = 0;
        for (const { name, width, offset } of spans) {
            assert.equal(offset % width, 0, `${record}.${name} at ${offset} is ${width}-aligned`);
            assert.ok(offset >= end, `${record}.${name} at ${offset} overlaps the field before`);
            end = offset + width;
            assert.ok(end <= size, `${record}.${name} ends at ${end}, inside ${size}`);
        }
        // Packed: the fields (and the one reserved word) fill the record without padding.
        const widths = spans.reduce((sum, span) => sum + span.width, 0);
        assert.equal(widths + unexported[record], size, `${record} is packed`);
    }
    const L = engine_layout;
    // Descriptors sit back to back after the header, each starting 8-aligned (Float64Array).
    assert.equal(L.staging_offset, L.header_size);
    assert.equal(L.header_size % 8, 0);
    assert.equal(L.descriptor_size % 8, 0);
    assert.equal(L.completion_size % 4, 0);
});

test('layout: the areas of the control buffer follow one another', () => {
    const L = engine_layout;
    assert.ok(L.staging_per_entry >= 2, 'a cancel takes a descriptor but no slot');
    for (const entries of [1, 2, 3, 64, L.entries_max]) {
        const completions = engine_completions_offset(entries);
        assert.equal(completions,
            L.staging_offset + entries * L.staging_per_entry * L.descriptor_size);
        assert.equal(completions % 8, 0, 'completions follow whole, aligned descriptors');
        assert.equal(engine_control_size(entries), completions + entries * L.completion_size);
        assert.ok(Number.isSafeInteger(engine_control_size(entries)));
    }
    assert.ok(engine_completions_offset(1) > L.header_size);
});

test('layout: op codes are distinct and the connect flag clears the port bits', () => {
    const ops = engine_layout_fields.filter((name) => name.startsWith('op_'));
    assert.equal(ops.length, 12);
    const codes = ops.map((name) => engine_layout[name]);
    assert.equal(new Set(codes).size, codes.length, 'distinct op codes');
    for (const code of codes) assert.ok(code > 0 && code <= 0x7fffffff, `op code ${code}`);
    const flag = engine_layout.connect_flag_ipv6;
    assert.ok(flag > 0xffff && (flag & (flag - 1)) === 0, 'one bit above the 16-bit port');
    assert.ok(engine_layout.entries_max >= 1);
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
