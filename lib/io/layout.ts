// The shared-memory layout between UringEngine and the addon: field → byte offset for the control
// buffer's header, its staging descriptors and its completion records, plus the operation codes
// and limits. The numbers come from the addon at load (`binding().engine_layout`, exported from
// the structs and enums of native/engine_layout.h); this file only names what TypeScript expects
// and refuses to load when any of it is missing or not a non-negative integer.
//
// Control buffer: [header][staging: entries × staging_per_entry descriptors][entries completions].
import { binding } from './binding';

/** Every name the addon's engine_layout must export (native/engine.cc, layout_export). */
export const engine_layout_fields = [
    'header_size',
    'header_staged_count',
    'header_completion_count',
    'header_polling',
    'header_enter_calls',
    'header_submitted',
    'header_completed',
    'header_js_calls',

    'descriptor_size',
    'descriptor_op',
    'descriptor_slot',
    'descriptor_generation',
    'descriptor_fd',
    'descriptor_flags',
    'descriptor_link',
    'descriptor_arena_offset',
    'descriptor_length',
    'descriptor_file_offset',
    'descriptor_extra',

    'completion_size',
    'completion_slot',
    'completion_result',

    'staging_offset',
    // Staging holds two descriptors per slot: cancels take a descriptor but no slot.
    'staging_per_entry',

    'op_read',
    'op_write',
    'op_sync',
    'op_allocate',
    'op_accept',
    'op_connect',
    'op_recv',
    'op_send',
    'op_shutdown',
    'op_close',
    'op_timeout',
    'op_cancel',

    'entries_max',
    // connect: descriptor `flags` holds the port in its low 16 bits and this bit for IPv6.
    'connect_flag_ipv6',
] as const;

export type EngineLayoutField = (typeof engine_layout_fields)[number];

/** The layout as TypeScript uses it: every field a byte offset, a size, a code or a limit. */
export type EngineLayout = { readonly [name in EngineLayoutField]: number };

/**
 * Reads the addon's layout export: every expected name must be present and a non-negative
 * integer, or this throws naming it. Names TypeScript does not use are ignored.
 */
export function engine_layout_read(native: Readonly<Record<string, unknown>>): EngineLayout {
    const layout: Partial<Record<EngineLayoutField, number>> = {};
    for (const name of engine_layout_fields) {
        const value = native[name];
        if (value === undefined) {
            throw new Error(`ringledger: the addon's engine_layout lacks ${name} ` +
                '(native/engine.cc layout_export); rebuild it (`npm run build:native`)');
        }
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
            throw new Error(`ringledger: the addon's engine_layout.${name} is ${String(value)}, ` +
                'not a non-negative integer');
        }
        layout[name] = value;
    }
    return Object.freeze(layout as EngineLayout);
}

export const engine_layout: EngineLayout = engine_layout_read(binding().engine_layout);

export function engine_completions_offset(entries: number): number {
    return engine_layout.staging_offset +
        entries * engine_layout.staging_per_entry * engine_layout.descriptor_size;
}

export function engine_control_size(entries: number): number {
    return engine_completions_offset(entries) + entries * engine_layout.completion_size;
}
