// The io_uring engine. TypeScript stages operation descriptors in a control buffer it owns
// (layout in engine_layout.h); this file turns them into SQEs, submits a whole batch with one
// io_uring_enter, and drains CQEs into the same buffer. Buffers are (offset, length) pairs in the
// arena, a SharedArrayBuffer view whose pointer is taken once and pinned with a strong reference.
// Completions reach JavaScript either as the return value of run_once (loop mode) or through one
// callback per drain from a uv_poll on the ring fd (event-loop mode).
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <csignal>
#include <cerrno>
#include <cstring>
#include <string>

#include "addon.h"
#include "engine_layout.h"

namespace ringledger {

namespace {

// The kernel caps one registered buffer at 1 GiB, so a larger arena registers as several chunks.
constexpr size_t fixed_chunk_size = size_t{1} << 30;
constexpr uint32_t fixed_chunks_max = 64;
constexpr uint64_t user_data_cancel = uint64_t{1} << 63;

struct Slot {
    int32_t op;
    int32_t fd;
    // connect: the kernel may read it after submission returns. IPv4 or IPv6 by sa_family.
    union {
        sockaddr_in v4;
        sockaddr_in6 v6;
    } address;
    __kernel_timespec timespec;
};

struct Engine {
    io_uring ring;
    bool ring_ready = false;
    uint32_t entries = 0;
    Slot* slots = nullptr;
    uint8_t* arena = nullptr;
    size_t arena_size = 0;
    napi_ref arena_ref = nullptr;
    uint8_t* control = nullptr;
    napi_ref control_ref = nullptr;
    uint32_t fixed_chunks = 0;
    int32_t in_flight = 0;  // Submitted or staged operations (not cancels) without a completion.
    unsigned sq_wakeup_tail = 0;  // SQPOLL: the SQ tail when the thread was last woken.
    // A fault hook for tests: the next this many submitting enters fail with -EBUSY without
    // entering the kernel, as a ring whose completion queue overflowed does.
    uint32_t fault_enter_busy = 0;
    // Times a submission found the queue full and the kernel refused to take more (-EBUSY or
    // -EAGAIN): the rest stayed staged for the next turn.
    uint32_t submit_deferrals = 0;
    // Event-loop mode.
    napi_env env = nullptr;
    bool started = false;
    uv_poll_t poll;
    uv_prepare_t prepare;
    int32_t handles_open = 0;
    napi_ref deliver_ref = nullptr;
    napi_async_context async_context = nullptr;
    napi_async_cleanup_hook_handle cleanup_handle = nullptr;
    bool destroyed = false;
    bool finalized = false;

    EngineHeader* header() { return reinterpret_cast<EngineHeader*>(control); }
    EngineDescriptor* descriptors() {
        return reinterpret_cast<EngineDescriptor*>(control + engine_staging_offset);
    }
    EngineCompletion* completions() {
        return reinterpret_cast<EngineCompletion*>(control + engine_completions_offset(entries));
    }
};

Engine* engine_from(const Napi::Value& value) {
    RL_ASSERT(value.IsExternal());
    Engine* engine = value.As<Napi::External<Engine>>().Data();
    RL_ASSERT(engine != nullptr);
    RL_ASSERT(!engine->destroyed);
    return engine;
}

uint8_t* arena_pointer(Engine* engine, double offset, double length) {
    RL_ASSERT(offset >= 0 && length >= 0);
    RL_ASSERT(offset + length <= static_cast<double>(engine->arena_size));
    return engine->arena + static_cast<size_t>(offset);
}

// The fixed-buffer index covering [offset, offset + length), or -1 when the arena is not
// registered or the range straddles two 1 GiB chunks (then the plain read/write is used).
int fixed_index(Engine* engine, size_t offset, size_t length) {
    if (engine->fixed_chunks == 0) return -1;
    size_t first = offset / fixed_chunk_size;
    size_t last = length == 0 ? first : (offset + length - 1) / fixed_chunk_size;
    if (first != last) return -1;
    RL_ASSERT(first < engine->fixed_chunks);
    return static_cast<int>(first);
}

// Publishes the SQEs filled since the last call by moving the kernel's SQ tail (what liburing's
// submit does before entering); returns how many SQEs the kernel has not consumed yet.
unsigned sq_publish(io_uring* ring) {
    io_uring_sq* sq = &ring->sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    return tail - io_uring_smp_load_acquire(sq->khead);
}

// The engine's only io_uring_enter, so that `enter_calls` counts syscalls exactly: it enters only
// when there is something to submit (or, with SQPOLL, a sleeping thread to wake) or fewer than
// `wait_count` completions are ready. Returns 0 without a syscall when there is nothing to do.
int ring_enter(Engine* engine, uint32_t wait_count, __kernel_timespec* timespec) {
    io_uring* ring = &engine->ring;
    unsigned to_submit = sq_publish(ring);
    bool sqpoll = (ring->flags & IORING_SETUP_SQPOLL) != 0;
    unsigned flags = 0;
    bool submit_needs_enter = to_submit > 0;
    if (sqpoll && to_submit > 0) {
        io_uring_smp_mb();  // Order the tail store before reading the thread's flags.
        // The thread clears NEED_WAKEUP only once it runs again, so a caller polling in a loop
        // would see it set many times for one wake-up: wake it once per newly published tail.
        // (No SQE is lost: the thread checks the queue again after it sets the flag.)
        unsigned tail = ring->sq.sqe_tail;
        submit_needs_enter =
            (IO_URING_READ_ONCE(*ring->sq.kflags) & IORING_SQ_NEED_WAKEUP) != 0 &&
            tail != engine->sq_wakeup_tail;
        if (submit_needs_enter) {
            flags |= IORING_ENTER_SQ_WAKEUP;
            engine->sq_wakeup_tail = tail;
        }
    }
    bool wait = wait_count > 0 && io_uring_cq_ready(ring) < wait_count;
    if (!submit_needs_enter && !wait) return 0;
    if (engine->fault_enter_busy > 0 && to_submit > 0) {
        engine->fault_enter_busy -= 1;
        return -EBUSY;
    }
    engine->header()->enter_calls += 1;
    if (!wait) return io_uring_enter(ring->ring_fd, to_submit, 0, flags, nullptr);
    RL_ASSERT(timespec != nullptr);
    io_uring_getevents_arg argument;
    std::memset(&argument, 0, sizeof(argument));
    argument.sigmask_sz = _NSIG / 8;
    argument.ts = reinterpret_cast<uint64_t>(timespec);
    flags |= IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    return io_uring_enter2(ring->ring_fd, to_submit, wait_count, flags,
                           reinterpret_cast<sigset_t*>(&argument), sizeof(argument));
}

// The kernel takes every SQE queued in the ring; a full completion queue (-EBUSY) or a transient
// shortage (-EAGAIN) leaves them queued for the next turn, which is not an error of any operation.
void assert_enter_result(int result) {
    RL_ASSERT(result >= 0 || result == -ETIME || result == -EINTR || result == -EBUSY ||
              result == -EAGAIN);
}

// Makes room for `count` SQEs in the submission queue; false when the kernel would not take the
// queued ones. A linked chain must sit whole in one submission (the kernel ends a chain at the
// submission's boundary), so a chain's head reserves room for all of it. Bounded: the first pass
// submits what fills the queue; with SQPOLL the thread may need a moment to consume it, so wait
// for space. A kernel that refuses (-EBUSY: its completion queue overflowed; -EAGAIN: it is short
// of memory) needs its completions drained first, which the caller's turn does next.
bool sq_reserve(Engine* engine, uint32_t count) {
    RL_ASSERT(count >= 1 && count <= engine->entries);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (io_uring_sq_space_left(&engine->ring) >= count) return true;
        int result = ring_enter(engine, 0, nullptr);
        assert_enter_result(result);
        if (result == -EBUSY || result == -EAGAIN) return false;
        if ((engine->ring.flags & IORING_SETUP_SQPOLL) != 0) {
            engine->header()->enter_calls += 1;
            assert_enter_result(io_uring_sqring_wait(&engine->ring));
        }
    }
    return io_uring_sq_space_left(&engine->ring) >= count;
}

io_uring_sqe* sqe_acquire(Engine* engine) {
    io_uring_sqe* sqe = io_uring_get_sqe(&engine->ring);
    RL_ASSERT(sqe != nullptr);  // stage_to_sqes reserved room for it.
    return sqe;
}

void prepare_transfer(Engine* engine, const EngineDescriptor& d, io_uring_sqe* sqe) {
    uint8_t* data = arena_pointer(engine, d.arena_offset, d.length);
    unsigned length = static_cast<unsigned>(d.length);
    uint64_t file_offset = static_cast<uint64_t>(d.file_offset);
    int index = fixed_index(engine, static_cast<size_t>(d.arena_offset), length);
    switch (d.op) {
        case engine_op_read:
            if (index >= 0) io_uring_prep_read_fixed(sqe, d.fd, data, length, file_offset, index);
            else io_uring_prep_read(sqe, d.fd, data, length, file_offset);
            break;
        case engine_op_write:
            if (index >= 0) io_uring_prep_write_fixed(sqe, d.fd, data, length, file_offset, index);
            else io_uring_prep_write(sqe, d.fd, data, length, file_offset);
            break;
        case engine_op_recv: io_uring_prep_recv(sqe, d.fd, data, length, 0); break;
        // MSG_NOSIGNAL: a peer that went away is an EPIPE result, never a process-killing signal.
        case engine_op_send: io_uring_prep_send(sqe, d.fd, data, length, MSG_NOSIGNAL); break;
        default: RL_ASSERT(false);
    }
}

// An IPv6 address from four 32-bit words in network order (word 0 holds bytes 0..3).
void address_words_write(in6_addr* address, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
    const uint32_t words[4] = {htonl(w0), htonl(w1), htonl(w2), htonl(w3)};
    std::memcpy(address->s6_addr, words, sizeof(words));
}

void prepare_one(Engine* engine, const EngineDescriptor& d) {
    RL_ASSERT(d.slot >= 0 && static_cast<uint32_t>(d.slot) < engine->entries);
    RL_ASSERT(d.generation >= 0);
    uint64_t user_data = (static_cast<uint64_t>(d.generation) << 32) | uint32_t(d.slot);
    io_uring_sqe* sqe = sqe_acquire(engine);
    if (d.op == engine_op_cancel) {
        io_uring_prep_cancel64(sqe, user_data, 0);
        io_uring_sqe_set_data64(sqe, user_data_cancel | user_data);
        return;
    }
    Slot& slot = engine->slots[d.slot];
    slot.op = d.op;
    slot.fd = d.fd;
    switch (d.op) {
        case engine_op_read:
        case engine_op_write:
        case engine_op_recv:
        case engine_op_send: prepare_transfer(engine, d, sqe); break;
        case engine_op_sync:
            io_uring_prep_fsync(sqe, d.fd, d.flags == 1 ? IORING_FSYNC_DATASYNC : 0);
            break;
        case engine_op_allocate:
            io_uring_prep_fallocate(sqe, d.fd, 0, static_cast<off_t>(d.file_offset),
                                    static_cast<off_t>(d.length));
            break;
        case engine_op_accept:
            io_uring_prep_accept(sqe, d.fd, nullptr, nullptr, SOCK_CLOEXEC);
            break;
        case engine_op_connect: {
            // flags: the port, and bit 16 for IPv6. The address's 32-bit words (network order,
            // word 0 first) ride in extra, arena_offset, length and file_offset.
            std::memset(&slot.address, 0, sizeof(slot.address));
            uint16_t port = htons(static_cast<uint16_t>(d.flags & 0xffff));
            socklen_t length = sizeof(slot.address.v4);
            if ((d.flags & engine_connect_flag_ipv6) != 0) {
                slot.address.v6.sin6_family = AF_INET6;
                slot.address.v6.sin6_port = port;
                address_words_write(&slot.address.v6.sin6_addr, static_cast<uint32_t>(d.extra),
                                    static_cast<uint32_t>(d.arena_offset),
                                    static_cast<uint32_t>(d.length),
                                    static_cast<uint32_t>(d.file_offset));
                length = sizeof(slot.address.v6);
            } else {
                slot.address.v4.sin_family = AF_INET;
                slot.address.v4.sin_port = port;
                slot.address.v4.sin_addr.s_addr = htonl(static_cast<uint32_t>(d.extra));
            }
            io_uring_prep_connect(sqe, d.fd, reinterpret_cast<sockaddr*>(&slot.address), length);
            break;
        }
        case engine_op_shutdown: io_uring_prep_shutdown(sqe, d.fd, SHUT_RDWR); break;
        case engine_op_close: io_uring_prep_close(sqe, d.fd); break;
        case engine_op_timeout: {
            int64_t duration_ns = static_cast<int64_t>(d.extra * 1e6);
            slot.timespec.tv_sec = duration_ns / 1000000000;
            slot.timespec.tv_nsec = duration_ns % 1000000000;
            io_uring_prep_timeout(sqe, &slot.timespec, 0, 0);
            break;
        }
        default: RL_ASSERT(false);
    }
    io_uring_sqe_set_data64(sqe, user_data);
    if (d.link == 1) sqe->flags |= IOSQE_IO_LINK;
}

// Moves the staged descriptors into the submission queue (entering the kernel only to make room).
// When the kernel will not take more, the rest stay staged, in order, for the next turn: that
// turn drains completions first, which is what a refusing kernel waits for.
uint32_t stage_to_sqes(Engine* engine) {
    EngineHeader* header = engine->header();
    int32_t count = header->staged_count;
    RL_ASSERT(count >= 0);
    RL_ASSERT(static_cast<uint32_t>(count) <= engine->entries * engine_staging_per_entry);
    EngineDescriptor* descriptors = engine->descriptors();
    int32_t chain_end = 0;  // The first descriptor after the current linked chain.
    for (int32_t index = 0; index < count; index++) {
        RL_ASSERT(descriptors[index].link == 0 || descriptors[index].link == 1);
        if (index >= chain_end) {
            chain_end = index + 1;
            while (chain_end < count && descriptors[chain_end - 1].link == 1) chain_end += 1;
            // TypeScript never stages a link without its follower in the same batch.
            RL_ASSERT(descriptors[chain_end - 1].link == 0);
            if (!sq_reserve(engine, static_cast<uint32_t>(chain_end - index))) {
                engine->submit_deferrals += 1;
                int32_t rest = count - index;
                std::memmove(descriptors, descriptors + index,
                             static_cast<size_t>(rest) * sizeof(EngineDescriptor));
                header->staged_count = rest;
                RL_ASSERT(engine->in_flight <= static_cast<int32_t>(engine->entries));
                return static_cast<uint32_t>(index);
            }
        }
        prepare_one(engine, descriptors[index]);
        if (descriptors[index].op != engine_op_cancel) {
            engine->in_flight += 1;
            header->submitted += 1;
        }
    }
    RL_ASSERT(engine->in_flight <= static_cast<int32_t>(engine->entries));
    header->staged_count = 0;
    return static_cast<uint32_t>(count);
}

void set_no_delay(int fd) {
    int one = 1;
    // Best effort: a failure here leaves a working (if slower) connection, so it is ignored.
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Drains every available CQE into the completion area; returns how many records it wrote.
int32_t drain(Engine* engine) {
    EngineHeader* header = engine->header();
    EngineCompletion* completions = engine->completions();
    int32_t count = 0;
    unsigned seen = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&engine->ring, head, cqe) {
        seen += 1;
        uint64_t user_data = io_uring_cqe_get_data64(cqe);
        if ((user_data & user_data_cancel) != 0) continue;  // A cancel reports nothing.
        uint32_t slot_index = static_cast<uint32_t>(user_data & 0xffffffffu);
        RL_ASSERT(slot_index < engine->entries);
        RL_ASSERT(static_cast<uint32_t>(count) < engine->entries);
        const Slot& slot = engine->slots[slot_index];
        int32_t result = cqe->res;
        if (slot.op == engine_op_timeout && result == -ETIME) result = 0;
        if (slot.op == engine_op_accept && result >= 0) set_no_delay(result);
        if (slot.op == engine_op_connect && result == 0) set_no_delay(slot.fd);
        completions[count].slot = static_cast<int32_t>(slot_index);
        completions[count].result = result;
        count += 1;
    }
    io_uring_cq_advance(&engine->ring, seen);
    engine->in_flight -= count;
    RL_ASSERT(engine->in_flight >= 0);
    header->completed += count;
    header->completion_count = count;
    return count;
}


void submit_queued(Engine* engine) {
    stage_to_sqes(engine);
    assert_enter_result(ring_enter(engine, 0, nullptr));
}

// Loop mode: submit everything staged and wait for `wait_count` completions (or the timeout), in
// one io_uring_enter. With SQPOLL and a zero timeout it only polls: the kernel thread submits and
// completes on its own, so there is nothing to enter for unless the thread has gone to sleep.
int32_t run_once(Engine* engine, int64_t timeout_ms, uint32_t wait_count) {
    RL_ASSERT(timeout_ms >= 0);
    RL_ASSERT(wait_count >= 1 && wait_count <= engine->entries);
    stage_to_sqes(engine);
    bool poll_only = timeout_ms == 0 && (engine->ring.flags & IORING_SETUP_SQPOLL) != 0;
    __kernel_timespec timespec;
    timespec.tv_sec = timeout_ms / 1000;
    timespec.tv_nsec = (timeout_ms % 1000) * 1000000;
    assert_enter_result(ring_enter(engine, poll_only ? 0 : wait_count, &timespec));
    return drain(engine);
}

void cleanup_hook_remove(Engine* engine);

void on_close(uv_handle_t* handle) {
    Engine* engine = static_cast<Engine*>(handle->data);
    RL_ASSERT(engine->handles_open > 0);
    engine->handles_open -= 1;
    if (engine->handles_open > 0) return;
    cleanup_hook_remove(engine);
    if (engine->finalized) delete engine;
}

void on_poll(uv_poll_t* handle, int status, int events);

void poll_arm(Engine* engine) {
    RL_ASSERT(engine->started);
    if (engine->header()->polling == 1) return;
    RL_ASSERT(uv_poll_start(&engine->poll, UV_READABLE, on_poll) == 0);
    engine->header()->polling = 1;
}

bool engine_idle(Engine* engine) {
    return engine->in_flight == 0 && engine->header()->staged_count == 0 &&
           io_uring_sq_ready(&engine->ring) == 0;
}

// One native→JS call per drain. An exception thrown by a completion target is a programmer error
// in JavaScript: it is reported as an uncaught exception, like any other callback's.
void deliver_to_js(Engine* engine) {
    napi_env env = engine->env;
    napi_handle_scope scope;
    RL_ASSERT(napi_open_handle_scope(env, &scope) == napi_ok);
    napi_value deliver;
    napi_value receiver;
    RL_ASSERT(napi_get_reference_value(env, engine->deliver_ref, &deliver) == napi_ok);
    RL_ASSERT(napi_get_global(env, &receiver) == napi_ok);
    engine->header()->js_calls += 1;
    napi_value result;
    napi_status status = napi_make_callback(env, engine->async_context, receiver, deliver, 0,
                                            nullptr, &result);
    // A worker being terminated can no longer run JavaScript (the call then fails without an
    // exception): there is nobody left to deliver to, and the environment's cleanup hook
    // releases the ring next.
    if (status == napi_cannot_run_js || status == napi_generic_failure) {
        RL_ASSERT(napi_close_handle_scope(env, scope) == napi_ok);
        return;
    }
    RL_ASSERT(status == napi_ok || status == napi_pending_exception);
    if (status == napi_pending_exception) {
        napi_value exception;
        RL_ASSERT(napi_get_and_clear_last_exception(env, &exception) == napi_ok);
        napi_fatal_exception(env, exception);
    }
    RL_ASSERT(napi_close_handle_scope(env, scope) == napi_ok);
}

void on_poll(uv_poll_t* handle, int status, int events) {
    Engine* engine = static_cast<Engine*>(handle->data);
    if (engine->destroyed) return;
    int32_t count = drain(engine);
    if (count > 0) deliver_to_js(engine);
    if (engine->destroyed) return;  // The completion target destroyed the engine.
    if (engine_idle(engine)) {
        // Stopping the handle un-refs it, so an idle engine never keeps the process alive.
        uv_poll_stop(&engine->poll);
        engine->header()->polling = 0;
    }
}

// Runs once per loop turn, just before libuv blocks: every SQE JavaScript queued during the turn
// goes to the kernel in one io_uring_enter.
void on_prepare(uv_prepare_t* handle) {
    Engine* engine = static_cast<Engine*>(handle->data);
    if (engine->destroyed) return;
    if (engine->header()->staged_count == 0 && io_uring_sq_ready(&engine->ring) == 0) return;
    submit_queued(engine);
}

void start(Engine* engine, napi_value deliver) {
    RL_ASSERT(!engine->started);
    napi_env env = engine->env;
    uv_loop_t* loop = nullptr;
    RL_ASSERT(napi_get_uv_event_loop(env, &loop) == napi_ok);
    RL_ASSERT(uv_poll_init(loop, &engine->poll, engine->ring.ring_fd) == 0);
    RL_ASSERT(uv_prepare_init(loop, &engine->prepare) == 0);
    engine->poll.data = engine;
    engine->prepare.data = engine;
    engine->handles_open = 2;
    RL_ASSERT(uv_prepare_start(&engine->prepare, on_prepare) == 0);
    uv_unref(reinterpret_cast<uv_handle_t*>(&engine->prepare));
    RL_ASSERT(napi_create_reference(env, deliver, 1, &engine->deliver_ref) == napi_ok);
    napi_value name;
    RL_ASSERT(napi_create_string_utf8(env, "ringledger.io_uring", NAPI_AUTO_LENGTH, &name) ==
              napi_ok);
    RL_ASSERT(napi_async_init(env, nullptr, name, &engine->async_context) == napi_ok);
    engine->started = true;
    if (!engine_idle(engine)) poll_arm(engine);
}

void cleanup_hook_remove(Engine* engine) {
    if (engine->cleanup_handle == nullptr) return;
    RL_ASSERT(napi_remove_async_cleanup_hook(engine->cleanup_handle) == napi_ok);
    engine->cleanup_handle = nullptr;
}

void release(Engine* engine) {
    RL_ASSERT(!engine->destroyed);
    engine->destroyed = true;
    napi_env env = engine->env;
    if (engine->started) {
        uv_poll_stop(&engine->poll);
        uv_close(reinterpret_cast<uv_handle_t*>(&engine->poll), on_close);
        uv_close(reinterpret_cast<uv_handle_t*>(&engine->prepare), on_close);
        napi_delete_reference(env, engine->deliver_ref);
        napi_async_destroy(env, engine->async_context);
    }
    if (engine->ring_ready) io_uring_queue_exit(&engine->ring);
    engine->ring_ready = false;
    delete[] engine->slots;
    engine->slots = nullptr;
    napi_delete_reference(env, engine->arena_ref);
    napi_delete_reference(env, engine->control_ref);
    if (engine->handles_open == 0) cleanup_hook_remove(engine);
}

// When a worker thread (or the process) tears its environment down, the ring and the uv handles
// must be released while the loop still runs close callbacks and before the addon is unloaded;
// finalizers run too late. The asynchronous hook holds the teardown until the handles are closed.
void cleanup_hook(napi_async_cleanup_hook_handle handle, void* data) {
    Engine* engine = static_cast<Engine*>(data);
    RL_ASSERT(engine->cleanup_handle == handle);
    if (!engine->destroyed) release(engine);
    if (engine->handles_open == 0) cleanup_hook_remove(engine);
}

void finalize(Napi::Env env, Engine* engine) {
    if (!engine->destroyed) release(engine);
    engine->finalized = true;
    if (engine->handles_open == 0) delete engine;
}

int ring_setup(Engine* engine, uint32_t entries, bool sqpoll, uint32_t* features) {
    io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER;
    params.cq_entries = entries * 2;
    if (sqpoll) {
        params.flags |= IORING_SETUP_SQPOLL;
        params.sq_thread_idle = 10;
    } else {
        // Task-running hints only make sense without a polling thread (the kernel refuses both).
        params.flags |= IORING_SETUP_COOP_TASKRUN;
    }
    int result = io_uring_queue_init_params(entries, &engine->ring, &params);
    if (result == -EINVAL) {
        // Kernels older than 6.0 refuse the newer flags: retry with only what is required.
        uint32_t required = IORING_SETUP_CQSIZE | (sqpoll ? IORING_SETUP_SQPOLL : 0);
        params.flags &= required;
        result = io_uring_queue_init_params(entries, &engine->ring, &params);
    }
    *features = params.features;
    if (result == 0) engine->ring_ready = true;
    return result;
}

int register_arena(Engine* engine) {
    size_t chunks = (engine->arena_size + fixed_chunk_size - 1) / fixed_chunk_size;
    if (chunks > fixed_chunks_max) return -E2BIG;
    iovec iovecs[fixed_chunks_max];
    for (size_t index = 0; index < chunks; index++) {
        size_t offset = index * fixed_chunk_size;
        size_t remaining = engine->arena_size - offset;
        iovecs[index].iov_base = engine->arena + offset;
        iovecs[index].iov_len = remaining < fixed_chunk_size ? remaining : fixed_chunk_size;
    }
    int result = io_uring_register_buffers(&engine->ring, iovecs, static_cast<unsigned>(chunks));
    if (result == 0) engine->fixed_chunks = static_cast<uint32_t>(chunks);
    return result;
}

}  // namespace

namespace {

// engine_create(arena: Uint8Array, control: Uint8Array, entries, sqpoll, register_buffers)
// returns [handle | null, setup_result, features, register_result]. The arena and control views
// are pinned with strong references for the engine's whole life: the kernel writes into them.
Napi::Value binding_create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint8_t* arena = nullptr;
    size_t arena_size = 0;
    uint8_t* control = nullptr;
    size_t control_size = 0;
    if (!typed_array_span(env, info[0], &arena, &arena_size)) return env.Undefined();
    if (!typed_array_span(env, info[1], &control, &control_size)) return env.Undefined();
    uint32_t entries = info[2].As<Napi::Number>().Uint32Value();
    bool sqpoll = info[3].As<Napi::Boolean>().Value();
    bool register_buffers = info[4].As<Napi::Boolean>().Value();
    RL_ASSERT(entries > 0 && entries <= engine_entries_max);
    RL_ASSERT(control_size == engine_control_size(entries));
    RL_ASSERT(reinterpret_cast<uintptr_t>(control) % alignof(double) == 0);
    RL_ASSERT(reinterpret_cast<uintptr_t>(arena) % 4096 == 0);

    Engine* engine = new Engine();
    engine->env = env;
    engine->entries = entries;
    engine->arena = arena;
    engine->arena_size = arena_size;
    engine->control = control;
    uint32_t features = 0;
    int setup_result = ring_setup(engine, entries, sqpoll, &features);
    Napi::Array result = Napi::Array::New(env, 4);
    result.Set(1u, Napi::Number::New(env, setup_result));
    result.Set(2u, Napi::Number::New(env, features));
    if (setup_result != 0) {
        delete engine;
        result.Set(0u, env.Null());
        result.Set(3u, Napi::Number::New(env, 0));
        return result;
    }
    int register_result = register_buffers ? register_arena(engine) : 1;
    engine->slots = new Slot[entries]();
    RL_ASSERT(napi_create_reference(env, info[0], 1, &engine->arena_ref) == napi_ok);
    RL_ASSERT(napi_create_reference(env, info[1], 1, &engine->control_ref) == napi_ok);
    RL_ASSERT(napi_add_async_cleanup_hook(env, cleanup_hook, engine, &engine->cleanup_handle) ==
              napi_ok);
    result.Set(0u, Napi::External<Engine>::New(env, engine, finalize));
    result.Set(3u, Napi::Number::New(env, register_result));
    return result;
}

Napi::Value binding_run_once(const Napi::CallbackInfo& info) {
    Engine* engine = engine_from(info[0]);
    RL_ASSERT(!engine->started);
    int64_t timeout_ms = info[1].As<Napi::Number>().Int64Value();
    uint32_t wait_count = info[2].As<Napi::Number>().Uint32Value();
    return Napi::Number::New(info.Env(), run_once(engine, timeout_ms, wait_count));
}

Napi::Value binding_submit(const Napi::CallbackInfo& info) {
    submit_queued(engine_from(info[0]));
    return info.Env().Undefined();
}

// Tests only: makes the next `count` submitting enters fail with -EBUSY; returns the submissions
// deferred so far (each time the queue was full and the kernel refused).
Napi::Value binding_fault_enter_busy(const Napi::CallbackInfo& info) {
    Engine* engine = engine_from(info[0]);
    engine->fault_enter_busy = info[1].As<Napi::Number>().Uint32Value();
    return Napi::Number::New(info.Env(), engine->submit_deferrals);
}

Napi::Value binding_start(const Napi::CallbackInfo& info) {
    Engine* engine = engine_from(info[0]);
    RL_ASSERT(info[1].IsFunction());
    start(engine, info[1]);
    return info.Env().Undefined();
}

// Event-loop mode: called by TypeScript when it stages an operation while the poll handle is
// stopped, so that the loop stays alive until the operation completes.
Napi::Value binding_arm(const Napi::CallbackInfo& info) {
    poll_arm(engine_from(info[0]));
    return info.Env().Undefined();
}

Napi::Value binding_destroy(const Napi::CallbackInfo& info) {
    release(engine_from(info[0]));
    return info.Env().Undefined();
}

Napi::Value binding_file_open(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    bool direct = info[1].As<Napi::Boolean>().Value();
    bool dsync = info[2].As<Napi::Boolean>().Value();
    bool create = info[3].As<Napi::Boolean>().Value();
    bool read_only = info[4].As<Napi::Boolean>().Value();
    int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (direct) flags |= O_DIRECT;
    if (dsync) flags |= O_DSYNC;
    if (create) flags |= O_CREAT | O_EXCL;
    int fd = openat(AT_FDCWD, path.c_str(), flags, 0644);
    return Napi::Number::New(info.Env(), fd >= 0 ? fd : -errno);
}

// socket_listen(family, w0, w1, w2, w3, port, backlog) returns the fd or -errno. Family 4 takes the
// address in w0 (host order); family 6 takes four words in network order (word 0 first) and
// listens on IPv6 only (IPV6_V6ONLY), so that `[::]` and `0.0.0.0` mean what they say.
Napi::Value binding_socket_listen(const Napi::CallbackInfo& info) {
    uint32_t family = info[0].As<Napi::Number>().Uint32Value();
    uint32_t w[4];
    for (uint32_t index = 0; index < 4; index++) {
        w[index] = info[1 + index].As<Napi::Number>().Uint32Value();
    }
    uint32_t port = info[5].As<Napi::Number>().Uint32Value();
    int32_t backlog = info[6].As<Napi::Number>().Int32Value();
    RL_ASSERT(port <= 65535);
    RL_ASSERT(family == 4 || family == 6);
    int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Napi::Number::New(info.Env(), -errno);
    int one = 1;
    sockaddr_in v4;
    sockaddr_in6 v6;
    std::memset(&v4, 0, sizeof(v4));
    std::memset(&v6, 0, sizeof(v6));
    sockaddr* address = reinterpret_cast<sockaddr*>(&v4);
    socklen_t length = sizeof(v4);
    if (family == 6) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(static_cast<uint16_t>(port));
        address_words_write(&v6.sin6_addr, w[0], w[1], w[2], w[3]);
        address = reinterpret_cast<sockaddr*>(&v6);
        length = sizeof(v6);
    } else {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(static_cast<uint16_t>(port));
        v4.sin_addr.s_addr = htonl(w[0]);
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (family == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, address, length) != 0 || listen(fd, backlog) != 0) {
        int error = errno;
        close(fd);
        return Napi::Number::New(info.Env(), -error);
    }
    return Napi::Number::New(info.Env(), fd);
}

// socket_create(family) returns a new unconnected TCP socket's fd or -errno.
Napi::Value binding_socket_create(const Napi::CallbackInfo& info) {
    uint32_t family = info.Length() > 0 ? info[0].As<Napi::Number>().Uint32Value() : 4;
    RL_ASSERT(family == 4 || family == 6);
    int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return Napi::Number::New(info.Env(), fd >= 0 ? fd : -errno);
}

Napi::Value binding_socket_local_port(const Napi::CallbackInfo& info) {
    int fd = info[0].As<Napi::Number>().Int32Value();
    sockaddr_storage socket_address;
    socklen_t length = sizeof(socket_address);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&socket_address), &length) != 0) {
        return Napi::Number::New(info.Env(), -errno);
    }
    uint16_t port = socket_address.ss_family == AF_INET6
        ? reinterpret_cast<sockaddr_in6*>(&socket_address)->sin6_port
        : reinterpret_cast<sockaddr_in*>(&socket_address)->sin_port;
    return Napi::Number::New(info.Env(), ntohs(port));
}

Napi::Value binding_memlock_limit(const Napi::CallbackInfo& info) {
    rlimit limit;
    if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return Napi::Number::New(info.Env(), -errno);
    if (limit.rlim_cur == RLIM_INFINITY) return Napi::Number::New(info.Env(), -1);
    return Napi::Number::New(info.Env(), static_cast<double>(limit.rlim_cur));
}

// Creates and tears down a tiny ring: [setup_result, features].
Napi::Value binding_probe(const Napi::CallbackInfo& info) {
    io_uring ring;
    io_uring_params params;
    std::memset(&params, 0, sizeof(params));
    int result = io_uring_queue_init_params(2, &ring, &params);
    if (result == 0) io_uring_queue_exit(&ring);
    Napi::Array array = Napi::Array::New(info.Env(), 2);
    array.Set(0u, Napi::Number::New(info.Env(), result));
    array.Set(1u, Napi::Number::New(info.Env(), params.features));
    return array;
}

// probe_direct_io(file_path) creates the file with O_DIRECT, writes one aligned 4096-byte block
// and removes it: [0 | -errno, step]. tmpfs refuses O_DIRECT at open; some filesystems at write.
Napi::Value binding_probe_direct_io(const Napi::CallbackInfo& info) {
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Napi::Array array = Napi::Array::New(info.Env(), 2);
    int result = 0;
    const char* step = "open";
    int fd = openat(AT_FDCWD, path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC,
                    0644);
    if (fd < 0) {
        result = -errno;
        // A filesystem without O_DIRECT (ramfs) creates the file before refusing the flag;
        // O_EXCL means the file is ours to remove.
        if (result == -EINVAL) unlink(path.c_str());
    } else {
        void* block = nullptr;
        RL_ASSERT(posix_memalign(&block, 4096, 4096) == 0);
        std::memset(block, 0, 4096);
        step = "write";
        ssize_t written = pwrite(fd, block, 4096, 0);
        if (written < 0) result = -errno;
        else if (written != 4096) result = -EIO;
        std::free(block);
        close(fd);
        unlink(path.c_str());
    }
    array.Set(0u, Napi::Number::New(info.Env(), result));
    array.Set(1u, Napi::String::New(info.Env(), step));
    return array;
}

void layout_set(Napi::Env env, Napi::Object layout, const char* name, size_t value) {
    layout.Set(name, Napi::Number::New(env, static_cast<double>(value)));
}

// Each export names its struct field, enum value or constant once; the macro derives the exported
// name from it (`RL_LAYOUT_OFFSET(header, EngineHeader, staged_count)` is `header_staged_count`),
// so no offset or code is ever written down a second time. lib/io/layout.ts lists the names it
// expects and refuses to load without every one.
#define RL_LAYOUT_SIZE(prefix, type) layout_set(env, layout, #prefix "_size", sizeof(type))
#define RL_LAYOUT_OFFSET(prefix, type, field) \
    layout_set(env, layout, #prefix "_" #field, offsetof(type, field))
#define RL_LAYOUT_OP(name) layout_set(env, layout, "op_" #name, engine_op_##name)
#define RL_LAYOUT_CONSTANT(name) layout_set(env, layout, #name, engine_##name)

Napi::Object layout_export(Napi::Env env) {
    Napi::Object layout = Napi::Object::New(env);
    RL_LAYOUT_SIZE(header, EngineHeader);
    RL_LAYOUT_OFFSET(header, EngineHeader, staged_count);
    RL_LAYOUT_OFFSET(header, EngineHeader, completion_count);
    RL_LAYOUT_OFFSET(header, EngineHeader, polling);
    RL_LAYOUT_OFFSET(header, EngineHeader, enter_calls);
    RL_LAYOUT_OFFSET(header, EngineHeader, submitted);
    RL_LAYOUT_OFFSET(header, EngineHeader, completed);
    RL_LAYOUT_OFFSET(header, EngineHeader, js_calls);
    RL_LAYOUT_SIZE(descriptor, EngineDescriptor);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, op);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, slot);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, generation);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, fd);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, flags);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, link);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, arena_offset);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, length);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, file_offset);
    RL_LAYOUT_OFFSET(descriptor, EngineDescriptor, extra);
    RL_LAYOUT_SIZE(completion, EngineCompletion);
    RL_LAYOUT_OFFSET(completion, EngineCompletion, slot);
    RL_LAYOUT_OFFSET(completion, EngineCompletion, result);
    RL_LAYOUT_CONSTANT(staging_offset);
    RL_LAYOUT_CONSTANT(staging_per_entry);
    RL_LAYOUT_OP(read);
    RL_LAYOUT_OP(write);
    RL_LAYOUT_OP(sync);
    RL_LAYOUT_OP(allocate);
    RL_LAYOUT_OP(accept);
    RL_LAYOUT_OP(connect);
    RL_LAYOUT_OP(recv);
    RL_LAYOUT_OP(send);
    RL_LAYOUT_OP(shutdown);
    RL_LAYOUT_OP(close);
    RL_LAYOUT_OP(timeout);
    RL_LAYOUT_OP(cancel);
    RL_LAYOUT_CONSTANT(entries_max);
    RL_LAYOUT_CONSTANT(connect_flag_ipv6);
    return layout;
}

#undef RL_LAYOUT_SIZE
#undef RL_LAYOUT_OFFSET
#undef RL_LAYOUT_OP
#undef RL_LAYOUT_CONSTANT

}  // namespace

void engine_register(Napi::Env env, Napi::Object exports) {
    exports.Set("engine_create", Napi::Function::New(env, binding_create));
    exports.Set("engine_run_once", Napi::Function::New(env, binding_run_once));
    exports.Set("engine_submit", Napi::Function::New(env, binding_submit));
    exports.Set("engine_start", Napi::Function::New(env, binding_start));
    exports.Set("engine_fault_enter_busy", Napi::Function::New(env, binding_fault_enter_busy));
    exports.Set("engine_arm", Napi::Function::New(env, binding_arm));
    exports.Set("engine_destroy", Napi::Function::New(env, binding_destroy));
    exports.Set("engine_file_open", Napi::Function::New(env, binding_file_open));
    exports.Set("engine_socket_listen", Napi::Function::New(env, binding_socket_listen));
    exports.Set("engine_socket_create", Napi::Function::New(env, binding_socket_create));
    exports.Set("engine_socket_local_port", Napi::Function::New(env, binding_socket_local_port));
    exports.Set("engine_memlock_limit", Napi::Function::New(env, binding_memlock_limit));
    exports.Set("engine_probe", Napi::Function::New(env, binding_probe));
    exports.Set("engine_probe_direct_io", Napi::Function::New(env, binding_probe_direct_io));
    exports.Set("engine_layout", layout_export(env));
}

}  // namespace ringledger
