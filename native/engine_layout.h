// Shared-memory layouts between the io_uring engine (native/engine.cc) and lib/io/layout.ts.
// TypeScript writes operation descriptors into a staging area of a control buffer; native submits
// them in one go, drains completions into a completion area of the same buffer and keeps the
// counters in its header. The offsets below are checked at compile time here and compared against
// the TypeScript table by test/layout.test.ts through the `layout_*` exports.
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
constexpr int32_t connect_flag_ipv6 = 1 << 16;

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
static_assert(sizeof(EngineHeader) == 48);
static_assert(offsetof(EngineHeader, staged_count) == 0);
static_assert(offsetof(EngineHeader, completion_count) == 4);
static_assert(offsetof(EngineHeader, polling) == 8);
static_assert(offsetof(EngineHeader, enter_calls) == 16);
static_assert(offsetof(EngineHeader, submitted) == 24);
static_assert(offsetof(EngineHeader, completed) == 32);
static_assert(offsetof(EngineHeader, js_calls) == 40);

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
static_assert(sizeof(EngineDescriptor) == 56);
static_assert(offsetof(EngineDescriptor, op) == 0);
static_assert(offsetof(EngineDescriptor, slot) == 4);
static_assert(offsetof(EngineDescriptor, generation) == 8);
static_assert(offsetof(EngineDescriptor, fd) == 12);
static_assert(offsetof(EngineDescriptor, flags) == 16);
static_assert(offsetof(EngineDescriptor, link) == 20);
static_assert(offsetof(EngineDescriptor, arena_offset) == 24);
static_assert(offsetof(EngineDescriptor, length) == 32);
static_assert(offsetof(EngineDescriptor, file_offset) == 40);
static_assert(offsetof(EngineDescriptor, extra) == 48);

struct EngineCompletion {
    int32_t slot;
    int32_t result;  // >= 0 or -errno.
};
static_assert(sizeof(EngineCompletion) == 8);
static_assert(offsetof(EngineCompletion, slot) == 0);
static_assert(offsetof(EngineCompletion, result) == 4);

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
