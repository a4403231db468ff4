// The shared-memory layout between UringEngine and the addon (native/engine_layout.h): one table,
// field → byte offset, for the control buffer's header, its staging descriptors and its
// completion records, plus the operation codes. The C++ side asserts the same numbers at compile
// time and exports them as `binding.engine_layout`; test/layout.test.ts checks the two agree.
//
// Control buffer: [header][staging: entries × staging_per_entry descriptors][entries completions].

export const engine_layout = {
    header_size: 48,
    header_staged_count: 0,
    header_completion_count: 4,
    header_polling: 8,
    header_enter_calls: 16,
    header_submitted: 24,
    header_completed: 32,
    header_js_calls: 40,

    descriptor_size: 56,
    descriptor_op: 0,
    descriptor_slot: 4,
    descriptor_generation: 8,
    descriptor_fd: 12,
    descriptor_flags: 16,
    descriptor_link: 20,
    descriptor_arena_offset: 24,
    descriptor_length: 32,
    descriptor_file_offset: 40,
    descriptor_extra: 48,

    completion_size: 8,
    completion_slot: 0,
    completion_result: 4,

    staging_offset: 48,
    /** Staging holds two descriptors per slot: cancels take a descriptor but no slot. */
    staging_per_entry: 2,

    op_read: 1,
    op_write: 2,
    op_sync: 3,
    op_allocate: 4,
    op_accept: 5,
    op_connect: 6,
    op_recv: 7,
    op_send: 8,
    op_shutdown: 9,
    op_close: 10,
    op_timeout: 11,
    op_cancel: 12,

    entries_max: 32768,
    /** connect: descriptor `flags` holds the port in its low 16 bits and this bit for IPv6. */
    connect_flag_ipv6: 65536,
} as const;

export type EngineLayoutField = keyof typeof engine_layout;

export function engine_completions_offset(entries: number): number {
    return engine_layout.staging_offset +
        entries * engine_layout.staging_per_entry * engine_layout.descriptor_size;
}

export function engine_control_size(entries: number): number {
    return engine_completions_offset(entries) + entries * engine_layout.completion_size;
}
