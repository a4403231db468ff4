// Shared-memory layouts between the io_uring engine (native/engine.cc) and lib/io/layout.ts.
// TypeScript writes operation descriptors into a staging area of a control buffer; native submits
// them in one go, drains completions into a completion area of the same buffer and keeps the
// counters in its header. These structs and enums are the only statement of the layout: the addon
// exports every offset, size and code from them (`engine_layout`, see layout_export in engine.cc)
// and lib/io/layout.ts reads that at load. The static_asserts below state only real constraints.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ringledger {

// Operation codes. The numbers are part of the layout contract with TypeScript.
enum EngineOp : int32_t {
    engine_op_read = 1,
    engine_op_write = 2,
    engine_op_sync = 3,
    engine_op_allocate = 4,
    engine_op_accept = 5,
    engine_op_connect = 6,
    engine_op_recv = 7,
    engine_op_send = 8,
    engine_op_shutdown = 9,
    engine_op_close = 10,
    engine_op_timeout = 11,
    engine_op_cancel = 12,
};
constexpr int32_t engine_op_count_max = 13;
// connect: descriptor `flags` holds the port in its low 16 bits and this bit for IPv6.
constexpr int32_t engine_connect_flag_ipv6 = 1 << 16;
// The most ring entries (operation slots) an engine may have.
constexpr uint32_t engine_entries_max = 1 << 15;

// The control buffer's header. Counters are doubles so TypeScript reads them without BigInt.
struct EngineHeader {
    int32_t staged_count;      // Descriptors TypeScript has staged and native has not submitted.
    int32_t completion_count;  // Completion records written by the last drain.
    int32_t polling;           // 1 while the uv_poll handle is started (event-loop mode).
    int32_t reserved;
    double enter_calls;
    double submitted;
    double completed;
    double js_calls;
};
// TypeScript reads the counters through a Float64Array over the whole buffer: 8-aligned doubles,
// and a header that keeps the descriptors after it 8-aligned. No padding anywhere.
static_assert(offsetof(EngineHeader, enter_calls) % alignof(double) == 0);
static_assert(offsetof(EngineHeader, submitted) % alignof(double) == 0);
static_assert(offsetof(EngineHeader, completed) % alignof(double) == 0);
static_assert(offsetof(EngineHeader, js_calls) % alignof(double) == 0);
static_assert(sizeof(EngineHeader) % alignof(double) == 0);
static_assert(sizeof(EngineHeader) == 4 * sizeof(int32_t) + 4 * sizeof(double));

// One staged operation. Sizes and offsets are doubles so that arena and file offsets beyond 4 GiB
// are exact (TypeScript numbers are exact integers up to 2^53).
struct EngineDescriptor {
    int32_t op;          // EngineOp.
    int32_t slot;        // Operation slot (cancel: the slot of the operation to cancel).
    int32_t generation;  // Slot generation, so a late cancel never hits the slot's next user.
    int32_t fd;
    int32_t flags;       // sync: 1 = data only. connect: the port.
    int32_t link;        // 1: the next descriptor starts only once this one succeeds in full.
    double arena_offset;
    double length;
    double file_offset;
    // timeout: duration in milliseconds. connect: the IPv4 address (host order), or word 0 of the
    // IPv6 address (words 1..3 in arena_offset, length, file_offset).
    double extra;
};
// Descriptors sit back to back in the staging area, read by TypeScript as Int32Array and
// Float64Array elements: 8-aligned doubles, a size that keeps the next descriptor 8-aligned, and
// no padding (so TypeScript's index arithmetic is offset / 4 and offset / 8).
static_assert(offsetof(EngineDescriptor, arena_offset) % alignof(double) == 0);
static_assert(offsetof(EngineDescriptor, length) % alignof(double) == 0);
static_assert(offsetof(EngineDescriptor, file_offset) % alignof(double) == 0);
static_assert(offsetof(EngineDescriptor, extra) % alignof(double) == 0);
static_assert(sizeof(EngineDescriptor) % alignof(double) == 0);
static_assert(sizeof(EngineDescriptor) == 6 * sizeof(int32_t) + 4 * sizeof(double));

struct EngineCompletion {
    int32_t slot;
    int32_t result;  // >= 0 or -errno.
};
// Completions follow the descriptors (an 8-aligned offset) and TypeScript reads them as pairs of
// Int32Array elements.
static_assert(sizeof(EngineCompletion) == 2 * sizeof(int32_t));

// The control buffer is: header, then `staging_capacity` descriptors, then `entries` completions.
// Staging holds twice the slot count because cancels take a descriptor but no slot.
constexpr size_t engine_staging_offset = sizeof(EngineHeader);
constexpr uint32_t engine_staging_per_entry = 2;

inline size_t engine_completions_offset(uint32_t entries) {
    return engine_staging_offset +
           static_cast<size_t>(entries) * engine_staging_per_entry * sizeof(EngineDescriptor);
}

inline size_t engine_control_size(uint32_t entries) {
    return engine_completions_offset(entries) +
           static_cast<size_t>(entries) * sizeof(EngineCompletion);
}

}  // namespace ringledger
