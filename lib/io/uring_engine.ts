// UringEngine: the Engine interface over the addon's io_uring ring.
//
// Each operation takes a slot from a preallocated table (size `entries`) and is written as a
// descriptor into the staging area of a control buffer shared with native (lib/io/layout.ts).
// Nothing is allocated per operation: no closure, Promise, object or array. Native submits the
// whole staging area with one io_uring_enter — at run_once() in loop mode, or from a uv_prepare
// hook once per loop turn in event-loop mode — and drains completions into the same buffer, after
// which `deliver` hands each to its target. The CQE's user_data is (slot generation, slot), and
// the slot table maps it back to the caller's (target, tag).
import assert from 'node:assert/strict';

import type { Arena } from './arena';
import { binding } from './binding';
import type { Binding, EngineHandle } from './binding';
import type {
    Engine, EngineKind, EngineOptions, EngineStats, FileOpenOptions, IoCompletionTarget,
} from './engine';
import { ipv4_parse, ipv6_words } from './address';
import { IoError, errno_name } from './errors';
import { engine_completions_offset, engine_control_size, engine_layout as L } from './layout';
import {
    ProbeError, direct_io_refused_unlink, direct_io_unsupported_hint, io_uring_features_error,
    io_uring_setup_error,
} from './probe';

const int32_max = 0x7fffffff;
/** One operation's length is capped well below the kernel's ~2 GiB MAX_RW_COUNT. */
const operation_length_max = 1 << 30;


export class UringEngine implements Engine {
    readonly kind: EngineKind = 'io_uring';
    readonly arena: Arena;
    readonly buffers_registered: boolean;
    /** Why the arena is not registered ('' when it is). */
    readonly buffers_reason: string;
    readonly entries: number;

    private readonly native: Binding;
    private readonly handle: EngineHandle;
    private readonly control_int32: Int32Array;
    private readonly control_float64: Float64Array;
    private readonly completions_int32_index: number;
    private readonly staging_capacity: number;
    /** An IPv6 connect's address words, parsed here before staging (dials are rare: the parse
     * allocates, the staging does not). */
    private readonly connect_words = new Uint32Array(4);
    private readonly targets: IoCompletionTarget[] = [];
    private readonly slot_target: Int32Array;
    private readonly slot_tag: Int32Array;
    private readonly slot_generation: Int32Array;
    private readonly slot_busy: Uint8Array;
    private readonly slot_free: Int32Array;
    private slot_free_count: number;
    private readonly deliver_bound: () => void;
    private started = false;
    private destroyed = false;
    /** A write was staged with `link`: the next staged operation is its follower. */
    private link_open = false;

    constructor(options: EngineOptions) {
        assert(Number.isInteger(options.entries));
        assert(options.entries >= 1 && options.entries <= L.entries_max);
        this.native = binding();
        this.arena = options.arena;
        this.entries = options.entries;
        const control = new Uint8Array(new ArrayBuffer(engine_control_size(options.entries)));
        this.control_int32 = new Int32Array(control.buffer);
        this.control_float64 = new Float64Array(control.buffer);
        this.completions_int32_index = engine_completions_offset(options.entries) / 4;
        this.staging_capacity = options.entries * L.staging_per_entry;
        this.slot_target = new Int32Array(options.entries);
        this.slot_tag = new Int32Array(options.entries);
        this.slot_generation = new Int32Array(options.entries);
        this.slot_busy = new Uint8Array(options.entries);
        this.slot_free = new Int32Array(options.entries);
        for (let slot = 0; slot < options.entries; slot++) {
            this.slot_free[slot] = options.entries - 1 - slot;
        }
        this.slot_free_count = options.entries;
        this.deliver_bound = () => {
            this.deliver();
        };

        const [register, skip_reason] = this.registration_decide(options);
        const [handle, setup_result, features, register_result] = this.native.engine_create(
            this.arena.bytes, control, options.entries, options.sqpoll === true, register);
        if (handle === null) throw io_uring_setup_error(setup_result);
        this.handle = handle;
        const features_error = io_uring_features_error(features);
        if (features_error !== null) {
            this.native.engine_destroy(handle);
            throw features_error;
        }
        this.buffers_registered = register_result === 0;
        this.buffers_reason = this.registration_reason(register, skip_reason, register_result);
        if (this.buffers_reason !== '' && options.log !== undefined) {
            options.log(`io_uring: running with unregistered buffers: ${this.buffers_reason}`);
        }
    }

    private registration_decide(options: EngineOptions): [boolean, string] {
        if (options.register_buffers === false) return [false, 'disabled by options'];
        const limit = this.native.engine_memlock_limit();
        const privileged = process.getuid !== undefined && process.getuid() === 0;
        if (limit >= 0 && limit < this.arena.size_bytes && !privileged) {
            return [false, `RLIMIT_MEMLOCK is ${limit} bytes, less than the ` +
                `${this.arena.size_bytes}-byte arena; raise \`ulimit -l\` or systemd ` +
                'LimitMEMLOCK= to register it'];
        }
        return [true, ''];
    }

    private registration_reason(register: boolean, skip_reason: string, result: number): string {
        if (!register) return skip_reason;
        if (result === 0) return '';
        const limit = this.native.engine_memlock_limit();
        return `io_uring_register_buffers failed with ${errno_name(-result)} ` +
            `(RLIMIT_MEMLOCK ${limit < 0 ? 'unlimited' : `${limit} bytes`}, ` +
            `arena ${this.arena.size_bytes} bytes); raise \`ulimit -l\` or systemd LimitMEMLOCK=`;
    }

    get in_flight(): number {
        return this.entries - this.slot_free_count;
    }

    target_register(target: IoCompletionTarget): number {
        assert(typeof target.io_complete === 'function');
        assert(this.targets.length < int32_max);
        this.targets.push(target);
        return this.targets.length - 1;
    }

    file_open(path: string, options: FileOpenOptions): number {
        const fd = this.native.engine_file_open(path, options.direct, options.dsync,
            options.create, options.read_only === true);
        if (fd < 0) {
            const refused = fd === -22 && options.direct;
            if (refused && options.create) direct_io_refused_unlink(path);
            throw new IoError(fd, 'open', path, refused ? direct_io_unsupported_hint : undefined);
        }
        return fd;
    }

    socket_listen(host: string, port: number, backlog: number): number {
        assert(Number.isInteger(port) && port >= 0 && port <= 65535);
        assert(Number.isInteger(backlog) && backlog > 0);
        return socket_listen_native(this.native, host, port, backlog);
    }

    socket_local_port(fd: number): number {
        const port = this.native.engine_socket_local_port(fd);
        if (port < 0) throw new IoError(port, 'getsockname', `fd ${fd}`);
        return port;
    }

    socket_create(family: 4 | 6 = 4): number {
        const fd = this.native.engine_socket_create(family);
        if (fd < 0) throw new IoError(fd, 'socket', family === 6 ? 'AF_INET6 stream' :
            'AF_INET stream');
        return fd;
    }

    file_read(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number): void {
        this.assert_range(arena_offset, length);
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        this.stage(L.op_read, target, tag, fd, 0, arena_offset, length, file_offset, 0);
    }

    file_write(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number, link = false): void {
        this.assert_range(arena_offset, length);
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        this.stage(L.op_write, target, tag, fd, 0, arena_offset, length, file_offset, 0);
        // Set after staging: the write itself may be the follower of an earlier link.
        if (link) this.link_descriptor_set();
    }

    file_sync(target: number, tag: number, fd: number, data_only: boolean): void {
        this.stage(L.op_sync, target, tag, fd, data_only ? 1 : 0, 0, 0, 0, 0);
    }

    file_allocate(target: number, tag: number, fd: number, file_offset: number,
        length: number): void {
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        assert(Number.isSafeInteger(length) && length > 0);
        this.stage(L.op_allocate, target, tag, fd, 0, 0, length, file_offset, 0);
    }

    socket_accept(target: number, tag: number, listen_fd: number): void {
        this.stage(L.op_accept, target, tag, listen_fd, 0, 0, 0, 0, 0);
    }

    socket_connect(target: number, tag: number, fd: number, host: string, port: number): void {
        assert(Number.isInteger(port) && port > 0 && port <= 65535);
        const address = ipv4_parse(host);
        if (address >= 0) return this.stage(L.op_connect, target, tag, fd, port, 0, 0, 0, address);
        const words = this.connect_words;
        assert(ipv6_words(host, words), 'socket_connect: host must be an IP address');
        // The IPv6 words ride in extra, arena_offset, length and file_offset (engine_layout.h).
        this.stage(L.op_connect, target, tag, fd, port | L.connect_flag_ipv6, words[1]!,
            words[2]!, words[3]!, words[0]!);
    }

    socket_recv(target: number, tag: number, fd: number, arena_offset: number,
        length: number): void {
        this.assert_range(arena_offset, length);
        this.stage(L.op_recv, target, tag, fd, 0, arena_offset, length, 0, 0);
    }

    socket_send(target: number, tag: number, fd: number, arena_offset: number,
        length: number): void {
        this.assert_range(arena_offset, length);
        this.stage(L.op_send, target, tag, fd, 0, arena_offset, length, 0, 0);
    }

    socket_shutdown(target: number, tag: number, fd: number): void {
        this.stage(L.op_shutdown, target, tag, fd, 0, 0, 0, 0, 0);
    }

    close(target: number, tag: number, fd: number): void {
        this.stage(L.op_close, target, tag, fd, 0, 0, 0, 0, 0);
    }

    timeout(target: number, tag: number, duration_ms: number): void {
        assert(Number.isFinite(duration_ms) && duration_ms >= 0);
        this.stage(L.op_timeout, target, tag, -1, 0, 0, 0, 0, duration_ms);
    }

    cancel(target: number, tag: number): void {
        assert(!this.destroyed);
        assert(!this.link_open, 'cancel: a linked write is waiting for its follower');
        // A linear scan keeps the slot table free of maps; cancellation is rare and the table
        // is bounded by `entries`.
        for (let slot = 0; slot < this.entries; slot++) {
            if (this.slot_busy[slot] === 1 && this.slot_target[slot] === target &&
                this.slot_tag[slot] === tag) {
                this.descriptor_write(L.op_cancel, slot, -1, 0, 0, 0, 0, 0);
                this.arm_if_idle();
                return;
            }
        }
    }

    start(): void {
        assert(!this.started && !this.destroyed);
        this.started = true;
        this.native.engine_start(this.handle, this.deliver_bound);
    }

    /**
     * `min_complete` (default 1) lets a caller that has a whole batch in flight wait for more of
     * it in the same io_uring_enter; it is clamped to the operations in flight.
     */
    run_once(timeout_ms: number, min_complete = 1): number {
        assert(!this.started, 'run_once: the engine was started in event-loop mode');
        assert(!this.destroyed);
        assert(Number.isInteger(timeout_ms) && timeout_ms >= 0);
        assert(Number.isInteger(min_complete) && min_complete >= 1);
        assert(!this.link_open, 'run_once: a linked write is waiting for its follower');
        const wait_count = Math.max(1, Math.min(min_complete, this.in_flight));
        this.native.engine_run_once(this.handle, timeout_ms, wait_count);
        return this.deliver();
    }

    /**
     * Tests only: the next `count` submitting io_uring_enter calls fail with EBUSY, as a kernel
     * whose completion queue overflowed does. Returns how many submissions were deferred so far
     * (the queue was full and the kernel refused: the rest stayed staged for the next turn).
     * Loop mode only: in event-loop mode a refused submission is retried when completions wake
     * the loop, which a fault with nothing in flight would never do.
     */
    fault_enter_busy(count: number): number {
        assert(!this.destroyed && !this.started);
        assert(Number.isInteger(count) && count >= 0);
        return this.native.engine_fault_enter_busy(this.handle, count);
    }

    /** Submits what is staged now, without waiting (normally the per-turn hook does this). */
    flush(): void {
        assert(!this.destroyed);
        assert(!this.link_open, 'flush: a linked write is waiting for its follower');
        this.native.engine_submit(this.handle);
    }

    stats(): EngineStats {
        const f = this.control_float64;
        return {
            enter_calls: f[L.header_enter_calls / 8]!,
            submitted: f[L.header_submitted / 8]!,
            completed: f[L.header_completed / 8]!,
            js_calls: f[L.header_js_calls / 8]!,
        };
    }

    destroy(): void {
        assert(!this.destroyed);
        this.destroyed = true;
        // Operations still in flight are cancelled by the kernel when the ring is torn down;
        // their completions are never delivered.
        this.native.engine_destroy(this.handle);
    }

    private assert_range(arena_offset: number, length: number): void {
        assert(Number.isSafeInteger(arena_offset) && arena_offset >= 0);
        assert(Number.isSafeInteger(length) && length >= 0 && length <= operation_length_max);
        assert(arena_offset + length <= this.arena.size_bytes, 'operation outside the arena');
    }

    private stage(op: number, target: number, tag: number, fd: number, flags: number,
        arena_offset: number, length: number, file_offset: number, extra: number): void {
        assert(!this.destroyed);
        assert(target >= 0 && target < this.targets.length, 'unregistered target');
        assert(Number.isInteger(tag) && tag >= 0 && tag <= int32_max);
        assert(Number.isInteger(fd) && fd >= -1);
        assert(this.slot_free_count > 0, 'engine: more operations in flight than `entries`');
        if (this.link_open) {
            assert(op === L.op_read || op === L.op_write || op === L.op_sync ||
                op === L.op_allocate, 'a linked write must be followed by a file operation');
            this.link_open = false;
        }
        this.slot_free_count -= 1;
        const slot = this.slot_free[this.slot_free_count]!;
        assert(this.slot_busy[slot] === 0);
        this.slot_busy[slot] = 1;
        this.slot_target[slot] = target;
        this.slot_tag[slot] = tag;
        this.slot_generation[slot] = (this.slot_generation[slot]! + 1) & int32_max;
        this.descriptor_write(op, slot, fd, flags, arena_offset, length, file_offset, extra);
        this.arm_if_idle();
    }

    private descriptor_write(op: number, slot: number, fd: number, flags: number,
        arena_offset: number, length: number, file_offset: number, extra: number): void {
        const index = this.control_int32[L.header_staged_count / 4]!;
        assert(index >= 0 && index < this.staging_capacity, 'engine: staging area full');
        const base = L.staging_offset + index * L.descriptor_size;
        const i = this.control_int32;
        const f = this.control_float64;
        i[(base + L.descriptor_op) / 4] = op;
        i[(base + L.descriptor_slot) / 4] = slot;
        i[(base + L.descriptor_generation) / 4] = this.slot_generation[slot]!;
        i[(base + L.descriptor_fd) / 4] = fd;
        i[(base + L.descriptor_flags) / 4] = flags;
        f[(base + L.descriptor_arena_offset) / 8] = arena_offset;
        f[(base + L.descriptor_length) / 8] = length;
        f[(base + L.descriptor_file_offset) / 8] = file_offset;
        f[(base + L.descriptor_extra) / 8] = extra;
        i[(base + L.descriptor_link) / 4] = 0;
        i[L.header_staged_count / 4] = index + 1;
    }

    /** Links the descriptor staged last to the next one (IOSQE_IO_LINK in native). */
    private link_descriptor_set(): void {
        const index = this.control_int32[L.header_staged_count / 4]! - 1;
        assert(index >= 0);
        assert(!this.link_open);
        const base = L.staging_offset + index * L.descriptor_size;
        this.control_int32[(base + L.descriptor_link) / 4] = 1;
        this.link_open = true;
    }

    /** Event-loop mode: a stopped poll handle must be started so the loop waits for this op. */
    private arm_if_idle(): void {
        if (this.started && this.control_int32[L.header_polling / 4] === 0) {
            this.native.engine_arm(this.handle);
        }
    }

    /** Hands every completion native drained to its target; returns how many. */
    private deliver(): number {
        const i = this.control_int32;
        const count = i[L.header_completion_count / 4]!;
        assert(count >= 0 && count <= this.entries);
        i[L.header_completion_count / 4] = 0;
        for (let index = 0; index < count; index++) {
            const record = this.completions_int32_index + index * (L.completion_size / 4);
            const slot = i[record + L.completion_slot / 4]!;
            const result = i[record + L.completion_result / 4]!;
            assert(slot >= 0 && slot < this.entries && this.slot_busy[slot] === 1);
            const target = this.slot_target[slot]!;
            const tag = this.slot_tag[slot]!;
            // The slot is free before the target runs, so the target may reuse it at once.
            this.slot_busy[slot] = 0;
            this.slot_free[this.slot_free_count] = slot;
            this.slot_free_count += 1;
            this.targets[target]!.io_complete(tag, result);
        }
        return count;
    }
}

export { ProbeError };

/**
 * Listens on an IP literal through the addon (both engines create listeners this way): IPv4, or
 * IPv6 only for an IPv6 literal. Startup only.
 */
export function socket_listen_native(native: Binding, host: string, port: number,
    backlog: number): number {
    const words = new Uint32Array(4);
    const ipv4 = ipv4_parse(host);
    const family = ipv4 >= 0 ? 4 : ipv6_words(host, words) ? 6 : 0;
    if (family === 0) {
        throw new IoError(-22, 'listen', `${host}:${port}`, 'not an IP address (resolve names ' +
            'first: addresses_resolve)');
    }
    if (family === 4) words[0] = ipv4;
    const fd = native.engine_socket_listen(family, words[0]!, words[1]!, words[2]!, words[3]!,
        port, backlog);
    if (fd < 0) throw new IoError(fd, 'listen', family === 6 ? `[${host}]:${port}` :
        `${host}:${port}`);
    return fd;
}
