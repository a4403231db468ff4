// LibuvEngine: the Engine interface over Node's own fs and net, which run on libuv. It is the
// fallback where io_uring is unavailable and the baseline every benchmark compares against, so it
// favours correctness over speed: each fs call is one libuv threadpool request, each socket write
// one uv_write, and data arrives through Node's stream machinery before it is copied into the
// arena.
//
// Differences from UringEngine that callers may notice:
// - Handles ("fds") are small integers indexing a table of this engine, not kernel fds: Node's
//   sockets do not expose theirs. Listening sockets are created by the addon (so `socket_listen`
//   can bind synchronously and report port 0's pick at once) and then adopted by a net.Server.
// - `file_allocate` cannot call fallocate(2) (Node has no binding for it): it extends the file with
//   ftruncate(2) when the range ends past the current size. The file is then sparse, so ENOSPC
//   surfaces at write time rather than at allocation time.
// - Cancellation reaches pending recv, accept and timeout operations; fs operations, sends and
//   connects already handed to libuv run to completion and keep their own result.
// - `run_once` (loop mode) is io_uring only: this engine always runs on Node's event loop.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';

import type { Arena } from './arena';
import { binding } from './binding';
import type {
    Engine, EngineKind, EngineOptions, EngineStats, FileOpenOptions, IoCompletionTarget,
} from './engine';
import { IoError } from './errors';
import { direct_io_refused_unlink, direct_io_unsupported_hint } from './probe';
import { ip_family } from './address';
import { socket_listen_native } from './uring_engine';

const errno = os.constants.errno;
const int32_max = 0x7fffffff;
/** Bounds the handle table: files, listeners and connections together. */
const handles_max = 65536;
/** Received bytes buffered per socket before it is paused (no recv pending to take them). */
const receive_queue_bytes_max = 256 * 1024;
/** Accepted connections waiting for a socket_accept, per listener; beyond this they are shut. */
const accept_queue_max = 1024;


/** Maps a Node error to -errno: by its code first (portable), then by its numeric errno. */
export function error_to_result(error: unknown): number {
    const code = (error as NodeJS.ErrnoException | null)?.code;
    if (typeof code === 'string') {
        const value = (errno as Record<string, number | undefined>)[code];
        if (value !== undefined) return -value;
    }
    const number = (error as NodeJS.ErrnoException | null)?.errno;
    if (typeof number === 'number' && number !== 0) return -Math.abs(number);
    return -errno.EIO;
}

const handle_kind_free = 0;
const handle_kind_file = 1;
const handle_kind_server = 2;
const handle_kind_socket = 3;

/** One handle-table entry. Preallocated; a connection reuses the entry of a closed one. */
class Handle {
    kind = handle_kind_free;
    file_fd = -1;
    server: net.Server | null = null;
    socket: net.Socket | null = null;
    // Socket receive state: a bounded queue of chunks, the read position in the first chunk.
    chunks: Buffer[] = [];
    chunk_position = 0;
    queued_bytes = 0;
    paused = false;
    ended = false;
    error_result = 0;
    /** Slots of the pending recv, connect and accept (-1 when none). */
    recv_slot = -1;
    connect_slot = -1;
    accept_slot = -1;
    /** Handles of accepted connections not yet taken by a socket_accept (listeners only). */
    accepted: number[] = [];
}

const slot_state_free = 0;
const slot_state_busy = 1;

// File operations, recorded in their slot so a linked follower can start later.
const file_op_read = 1;
const file_op_write = 2;
const file_op_sync = 3;
const file_op_allocate = 4;

/** One operation slot with its callbacks bound once, so no closure is made per operation. */
class Slot {
    state = slot_state_free;
    target = 0;
    tag = 0;
    handle = -1;
    arena_offset = 0;
    length = 0;
    /** File operations: which one, its file offset and (sync) whether data only. */
    file_op = 0;
    file_offset = 0;
    data_only = false;
    /** A linked write's follower: started when the write completes in full (-1 when none). */
    link_follower = -1;
    timer: NodeJS.Timeout | null = null;
    readonly on_result: (error: Error | null | undefined, value?: unknown) => void;
    readonly on_timer: () => void;
    readonly on_done: () => void;
    readonly on_sent: (error: Error | null | undefined) => void;
    readonly on_stat: (error: Error | null, stats: fs.Stats) => void;

    constructor(engine: LibuvEngine, index: number) {
        this.on_result = (error, value) => {
            engine.settle(index, error === null || error === undefined
                ? (typeof value === 'number' ? value : 0) : error_to_result(error));
        };
        this.on_sent = (error) => {
            engine.settle(index, error === null || error === undefined
                ? this.length : error_to_result(error));
        };
        this.on_stat = (error, stats) => {
            engine.allocate_continue(index, error, error === null ? stats.size : 0);
        };
        this.on_done = () => {
            engine.settle(index, 0);
        };
        this.on_timer = () => {
            this.timer = null;
            engine.settle(index, 0);
        };
    }
}

export class LibuvEngine implements Engine {
    readonly kind: EngineKind = 'libuv';
    readonly arena: Arena;
    readonly buffers_registered = false;
    readonly entries: number;

    private readonly arena_buffer: Buffer;
    private readonly targets: IoCompletionTarget[] = [];
    private readonly slots: Slot[] = [];
    private readonly slot_free: Int32Array;
    private slot_free_count: number;
    private readonly handles: Handle[] = [];
    private readonly handle_free: number[] = [];
    // Completions made synchronously (cancel, a recv satisfied from the queue) are delivered from
    // setImmediate, so that io_complete never runs inside the call that submitted the operation.
    private readonly deferred_slot: Int32Array;
    private readonly deferred_result: Int32Array;
    private deferred_count = 0;
    private deferred_scheduled = false;
    private readonly deferred_flush_bound: () => void;
    private submitted = 0;
    private completed = 0;
    private destroyed = false;
    /** The slot of a write staged with `link` whose follower has not been called yet. */
    private link_head = -1;

    constructor(options: EngineOptions) {
        assert(Number.isInteger(options.entries) && options.entries >= 1);
        assert(options.entries <= int32_max);
        this.arena = options.arena;
        this.entries = options.entries;
        this.arena_buffer = Buffer.from(this.arena.shared_buffer, this.arena.base_offset,
            this.arena.size_bytes);
        for (let index = 0; index < options.entries; index++) {
            this.slots.push(new Slot(this, index));
        }
        this.slot_free = new Int32Array(options.entries);
        for (let index = 0; index < options.entries; index++) {
            this.slot_free[index] = options.entries - 1 - index;
        }
        this.slot_free_count = options.entries;
        this.deferred_slot = new Int32Array(options.entries);
        this.deferred_result = new Int32Array(options.entries);
        this.deferred_flush_bound = () => {
            this.deferred_flush();
        };
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
        const c = fs.constants;
        let flags = (options.read_only === true ? c.O_RDONLY : c.O_RDWR);
        if (options.direct) flags |= c.O_DIRECT;
        if (options.dsync) flags |= c.O_DSYNC;
        if (options.create) flags |= c.O_CREAT | c.O_EXCL;
        let fd: number;
        try {
            fd = fs.openSync(path, flags, 0o644);
        } catch (error) {
            const result = error_to_result(error);
            const refused = result === -errno.EINVAL && options.direct;
            if (refused && options.create) direct_io_refused_unlink(path);
            throw new IoError(result, 'open', path, refused ? direct_io_unsupported_hint
                : undefined);
        }
        const handle = this.handle_allocate(handle_kind_file);
        this.handles[handle]!.file_fd = fd;
        return handle;
    }

    socket_listen(host: string, port: number, backlog: number): number {
        assert(Number.isInteger(port) && port >= 0 && port <= 65535);
        assert(Number.isInteger(backlog) && backlog > 0);
        const fd = socket_listen_native(binding(), host, port, backlog);
        const handle = this.handle_allocate(handle_kind_server);
        const entry = this.handles[handle]!;
        const server = net.createServer({ allowHalfOpen: true, noDelay: true });
        server.on('connection', (socket: net.Socket) => {
            this.server_connection(handle, socket);
        });
        server.on('error', () => {
            // Listener errors surface through the next accept, which stays pending; a listener
            // on a bound fd has no asynchronous failure mode we can report better.
        });
        server.listen({ fd, backlog });
        entry.server = server;
        entry.file_fd = fd;
        return handle;
    }

    socket_local_port(fd: number): number {
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind === handle_kind_free) {
            throw new IoError(-errno.EBADF, 'getsockname', `fd ${fd}`);
        }
        if (entry.kind === handle_kind_server) {
            const port = binding().engine_socket_local_port(entry.file_fd);
            if (port < 0) throw new IoError(port, 'getsockname', `fd ${fd}`);
            return port;
        }
        const port = entry.socket?.localPort;
        if (port === undefined) throw new IoError(-errno.ENOTCONN, 'getsockname', `fd ${fd}`);
        return port;
    }

    /** The family is for the io_uring engine's sake: a Node socket takes either on connect. */
    socket_create(_family: 4 | 6 = 4): number {
        const handle = this.handle_allocate(handle_kind_socket);
        this.socket_attach(handle, new net.Socket({ allowHalfOpen: true }));
        return handle;
    }

    file_read(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number): void {
        this.assert_range(arena_offset, length);
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        this.file_submit(target, tag, file_op_read, fd, arena_offset, length, file_offset, false);
    }

    file_write(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number, link = false): void {
        this.assert_range(arena_offset, length);
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        const slot = this.file_submit(target, tag, file_op_write, fd, arena_offset, length,
            file_offset, false);
        // Set after submitting: the write itself may be the follower of an earlier link.
        if (link) this.link_head = slot;
    }

    file_sync(target: number, tag: number, fd: number, data_only: boolean): void {
        this.file_submit(target, tag, file_op_sync, fd, 0, 0, 0, data_only);
    }

    /** ftruncate stands in for fallocate (see the header comment): the file becomes sparse. */
    file_allocate(target: number, tag: number, fd: number, file_offset: number,
        length: number): void {
        assert(Number.isSafeInteger(file_offset) && file_offset >= 0);
        assert(Number.isSafeInteger(length) && length > 0);
        this.file_submit(target, tag, file_op_allocate, fd, 0, length, file_offset, false);
    }

    /**
     * Records a file operation in its slot, then starts it, unless it follows a linked write:
     * then it waits in its slot until that write completes (see `settle`).
     */
    private file_submit(target: number, tag: number, op: number, fd: number,
        arena_offset: number, length: number, file_offset: number, data_only: boolean): number {
        const slot = this.slot_acquire(target, tag, true);
        const record = this.slots[slot]!;
        record.file_op = op;
        record.handle = fd;
        record.arena_offset = arena_offset;
        record.length = length;
        record.file_offset = file_offset;
        record.data_only = data_only;
        if (this.link_head === -1) {
            this.file_start(slot);
        } else {
            const head = this.slots[this.link_head]!;
            assert(head.state === slot_state_busy && head.link_follower === -1);
            head.link_follower = slot;
            this.link_head = -1;
        }
        return slot;
    }

    private file_start(slot: number): void {
        const record = this.slots[slot]!;
        const entry = this.handles[record.handle];
        if (entry === undefined || entry.kind !== handle_kind_file) {
            return this.defer(slot, -errno.EBADF);
        }
        const fd = entry.file_fd;
        switch (record.file_op) {
            case file_op_read:
                fs.read(fd, this.arena_buffer, record.arena_offset, record.length,
                    record.file_offset, record.on_result);
                break;
            case file_op_write:
                fs.write(fd, this.arena_buffer, record.arena_offset, record.length,
                    record.file_offset, record.on_result);
                break;
            case file_op_sync:
                if (record.data_only) fs.fdatasync(fd, record.on_result);
                else fs.fsync(fd, record.on_result);
                break;
            case file_op_allocate:
                // The size the file must reach; the current size comes back from fstat.
                record.length += record.file_offset;
                fs.fstat(fd, record.on_stat);
                break;
            default:
                assert.fail(`file_start: unknown file operation ${record.file_op}`);
        }
    }

    /** The second half of file_allocate: extend the file only if it is shorter than the range. */
    allocate_continue(slot: number, error: Error | null, size: number): void {
        const record = this.slots[slot]!;
        const entry = this.handles[record.handle];
        if (error !== null) return this.settle(slot, error_to_result(error));
        if (entry === undefined || entry.kind !== handle_kind_file) {
            return this.settle(slot, -errno.EBADF);
        }
        if (record.length <= size) return this.settle(slot, 0);
        fs.ftruncate(entry.file_fd, record.length, record.on_result);
    }

    socket_accept(target: number, tag: number, listen_fd: number): void {
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[listen_fd];
        if (entry === undefined || entry.kind !== handle_kind_server) {
            return this.defer(slot, -errno.EBADF);
        }
        assert(entry.accept_slot === -1, 'socket_accept: one accept at a time per listener');
        if (entry.accepted.length > 0) return this.defer(slot, entry.accepted.shift()!);
        entry.accept_slot = slot;
        this.slots[slot]!.handle = listen_fd;
    }

    socket_connect(target: number, tag: number, fd: number, host: string, port: number): void {
        assert(ip_family(host) !== 0, 'socket_connect: host must be an IP address');
        assert(Number.isInteger(port) && port > 0 && port <= 65535);
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind !== handle_kind_socket || entry.socket === null) {
            return this.defer(slot, -errno.EBADF);
        }
        assert(entry.connect_slot === -1);
        entry.connect_slot = slot;
        this.slots[slot]!.handle = fd;
        entry.socket.connect(port, host);
    }

    socket_recv(target: number, tag: number, fd: number, arena_offset: number,
        length: number): void {
        this.assert_range(arena_offset, length);
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind !== handle_kind_socket) {
            return this.defer(slot, -errno.EBADF);
        }
        assert(entry.recv_slot === -1, 'socket_recv: one recv at a time per socket');
        const record = this.slots[slot]!;
        record.handle = fd;
        record.arena_offset = arena_offset;
        record.length = length;
        entry.recv_slot = slot;
        if (entry.queued_bytes > 0 || entry.ended || entry.error_result !== 0) {
            this.defer(slot, this.recv_fill(fd));
        }
    }

    socket_send(target: number, tag: number, fd: number, arena_offset: number,
        length: number): void {
        this.assert_range(arena_offset, length);
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind !== handle_kind_socket || entry.socket === null) {
            return this.defer(slot, -errno.EBADF);
        }
        if (entry.error_result !== 0) return this.defer(slot, entry.error_result);
        if (entry.socket.writableEnded) return this.defer(slot, -errno.EPIPE);
        this.slots[slot]!.length = length;
        // The view aliases the arena without a copy; the slot completes only once libuv has
        // handed the bytes to the kernel, so the caller may not reuse them before that.
        entry.socket.write(this.arena_buffer.subarray(arena_offset, arena_offset + length),
            this.slots[slot]!.on_sent);
    }

    socket_shutdown(target: number, tag: number, fd: number): void {
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind !== handle_kind_socket || entry.socket === null) {
            return this.defer(slot, -errno.EBADF);
        }
        if (entry.socket.writableEnded) return this.defer(slot, 0);
        entry.socket.end(this.slots[slot]!.on_done);
    }

    close(target: number, tag: number, fd: number): void {
        const slot = this.slot_acquire(target, tag);
        const entry = this.handles[fd];
        if (entry === undefined || entry.kind === handle_kind_free) {
            return this.defer(slot, -errno.EBADF);
        }
        if (entry.kind === handle_kind_file) {
            const file_fd = entry.file_fd;
            this.handle_release(fd);
            fs.close(file_fd, this.slots[slot]!.on_result);
            return;
        }
        if (entry.kind === handle_kind_server) {
            entry.server!.close();
            if (entry.accept_slot !== -1) this.defer(entry.accept_slot, -errno.ECANCELED);
            for (const accepted of entry.accepted) {
                this.handles[accepted]!.socket!.destroy();
                this.handle_release(accepted);
            }
        } else {
            entry.socket!.destroy();
            if (entry.recv_slot !== -1) this.defer(entry.recv_slot, -errno.ECANCELED);
            if (entry.connect_slot !== -1) this.defer(entry.connect_slot, -errno.ECANCELED);
        }
        this.handle_release(fd);
        this.defer(slot, 0);
    }

    timeout(target: number, tag: number, duration_ms: number): void {
        assert(Number.isFinite(duration_ms) && duration_ms >= 0);
        const slot = this.slot_acquire(target, tag);
        const record = this.slots[slot]!;
        record.timer = setTimeout(record.on_timer, duration_ms);
    }

    cancel(target: number, tag: number): void {
        assert(!this.destroyed);
        assert(this.link_head === -1, 'cancel: a linked write is waiting for its follower');
        // A linear scan keeps the slot table free of maps; cancellation is rare and the table is
        // bounded by `entries`.
        for (let index = 0; index < this.entries; index++) {
            const record = this.slots[index]!;
            if (record.state !== slot_state_busy || record.target !== target ||
                record.tag !== tag) continue;
            if (record.timer !== null) {
                clearTimeout(record.timer);
                record.timer = null;
                this.defer(index, -errno.ECANCELED);
                return;
            }
            const entry = record.handle >= 0 ? this.handles[record.handle] : undefined;
            if (entry !== undefined && entry.recv_slot === index) {
                entry.recv_slot = -1;
                this.defer(index, -errno.ECANCELED);
            } else if (entry !== undefined && entry.accept_slot === index) {
                entry.accept_slot = -1;
                this.defer(index, -errno.ECANCELED);
            }
            return;
        }
    }

    /** A no-op: this engine always delivers completions from Node's event loop. */
    start(): void {
        assert(!this.destroyed);
    }

    run_once(_timeout_ms: number): number {
        throw new Error('LibuvEngine: loop mode (run_once) needs the io_uring engine; ' +
            'the libuv engine runs on Node\'s event loop (call start())');
    }

    /** A no-op: each operation already went to Node's thread pool or sockets when called. */
    flush(): void {
        assert(!this.destroyed);
        assert(this.link_head === -1, 'flush: a linked write is waiting for its follower');
    }

    stats(): EngineStats {
        return {
            enter_calls: 0,
            submitted: this.submitted,
            completed: this.completed,
            js_calls: this.completed,
        };
    }

    destroy(): void {
        assert(!this.destroyed);
        this.destroyed = true;
        for (let index = 0; index < this.entries; index++) {
            const record = this.slots[index]!;
            if (record.timer !== null) clearTimeout(record.timer);
            record.timer = null;
        }
        for (let handle = 0; handle < this.handles.length; handle++) {
            const entry = this.handles[handle]!;
            if (entry.kind === handle_kind_server) entry.server!.close();
            if (entry.kind === handle_kind_socket) entry.socket!.destroy();
            if (entry.kind === handle_kind_file) fs.closeSync(entry.file_fd);
            if (entry.kind !== handle_kind_free) this.handle_release(handle);
        }
    }

    /** Delivers one completion: called from libuv callbacks, timers and the deferred queue. */
    settle(slot: number, result: number): void {
        const record = this.slots[slot]!;
        if (record.state !== slot_state_busy) return;
        assert(Number.isInteger(result));
        const follower = record.link_follower;
        const follower_start = follower !== -1 && result === record.length;
        record.state = slot_state_free;
        record.handle = -1;
        record.timer = null;
        record.link_follower = -1;
        this.slot_free[this.slot_free_count] = slot;
        this.slot_free_count += 1;
        assert(this.slot_free_count <= this.entries);
        this.completed += 1;
        if (this.destroyed) return;
        this.targets[record.target]!.io_complete(record.tag, result);
        // As io_uring does with a linked chain: the follower runs only after the write completed
        // in full; a failed or short write cancels it.
        if (follower_start) this.file_start(follower);
        else if (follower !== -1) this.defer(follower, -errno.ECANCELED);
    }

    private slot_acquire(target: number, tag: number, file_op = false): number {
        assert(!this.destroyed);
        assert(this.link_head === -1 || file_op,
            'a linked write must be followed by a file operation');
        assert(target >= 0 && target < this.targets.length, 'unregistered target');
        assert(Number.isInteger(tag) && tag >= 0 && tag <= int32_max);
        assert(this.slot_free_count > 0, 'engine: more operations in flight than `entries`');
        this.slot_free_count -= 1;
        const slot = this.slot_free[this.slot_free_count]!;
        const record = this.slots[slot]!;
        assert(record.state === slot_state_free);
        record.state = slot_state_busy;
        record.target = target;
        record.tag = tag;
        record.handle = -1;
        this.submitted += 1;
        return slot;
    }

    private defer(slot: number, result: number): void {
        assert(this.deferred_count < this.entries);
        this.deferred_slot[this.deferred_count] = slot;
        this.deferred_result[this.deferred_count] = result;
        this.deferred_count += 1;
        if (!this.deferred_scheduled) {
            this.deferred_scheduled = true;
            setImmediate(this.deferred_flush_bound);
        }
    }

    private deferred_flush(): void {
        this.deferred_scheduled = false;
        // Completions deferred while these are delivered wait for the next flush, which bounds
        // this loop by the count taken now.
        const count = this.deferred_count;
        for (let index = 0; index < count; index++) {
            this.settle(this.deferred_slot[index]!, this.deferred_result[index]!);
        }
        this.deferred_slot.copyWithin(0, count, this.deferred_count);
        this.deferred_result.copyWithin(0, count, this.deferred_count);
        this.deferred_count -= count;
        if (this.deferred_count > 0 && !this.deferred_scheduled) {
            this.deferred_scheduled = true;
            setImmediate(this.deferred_flush_bound);
        }
    }

    private assert_range(arena_offset: number, length: number): void {
        assert(Number.isSafeInteger(arena_offset) && arena_offset >= 0);
        assert(Number.isSafeInteger(length) && length >= 0);
        assert(arena_offset + length <= this.arena.size_bytes, 'operation outside the arena');
    }

    private handle_allocate(kind: number): number {
        let handle: number;
        if (this.handle_free.length > 0) {
            handle = this.handle_free.pop()!;
        } else {
            if (this.handles.length >= handles_max) {
                throw new IoError(-errno.EMFILE, 'open', 'libuv engine handle table');
            }
            handle = this.handles.length;
            this.handles.push(new Handle());
        }
        const entry = this.handles[handle]!;
        assert(entry.kind === handle_kind_free);
        entry.kind = kind;
        return handle;
    }

    private handle_release(handle: number): void {
        const entry = this.handles[handle]!;
        assert(entry.kind !== handle_kind_free);
        entry.kind = handle_kind_free;
        entry.file_fd = -1;
        entry.server = null;
        entry.socket = null;
        entry.chunks = [];
        entry.chunk_position = 0;
        entry.queued_bytes = 0;
        entry.paused = false;
        entry.ended = false;
        entry.error_result = 0;
        entry.recv_slot = -1;
        entry.connect_slot = -1;
        entry.accept_slot = -1;
        entry.accepted = [];
        this.handle_free.push(handle);
    }

    private server_connection(listener: number, socket: net.Socket): void {
        const entry = this.handles[listener]!;
        if (entry.kind !== handle_kind_server || entry.accepted.length >= accept_queue_max ||
            this.handle_free.length === 0 && this.handles.length >= handles_max) {
            socket.destroy();
            return;
        }
        const handle = this.handle_allocate(handle_kind_socket);
        this.socket_attach(handle, socket);
        if (entry.accept_slot !== -1) {
            const slot = entry.accept_slot;
            entry.accept_slot = -1;
            this.settle(slot, handle);
        } else {
            entry.accepted.push(handle);
        }
    }

    /** Per-connection listeners (one set per connection, never per operation). */
    private socket_attach(handle: number, socket: net.Socket): void {
        const entry = this.handles[handle]!;
        entry.socket = socket;
        socket.setNoDelay(true);
        socket.on('connect', () => {
            if (entry.socket !== socket || entry.connect_slot === -1) return;
            const slot = entry.connect_slot;
            entry.connect_slot = -1;
            this.settle(slot, 0);
        });
        socket.on('data', (chunk: Buffer) => {
            if (entry.socket !== socket) return;
            entry.chunks.push(chunk);
            entry.queued_bytes += chunk.length;
            if (entry.recv_slot !== -1) this.settle(entry.recv_slot, this.recv_fill(handle));
            if (entry.queued_bytes >= receive_queue_bytes_max && !entry.paused) {
                entry.paused = true;
                socket.pause();
            }
        });
        socket.on('end', () => {
            if (entry.socket !== socket) return;
            entry.ended = true;
            if (entry.recv_slot !== -1) this.settle(entry.recv_slot, this.recv_fill(handle));
        });
        socket.on('error', (error: Error) => {
            if (entry.socket !== socket) return;
            entry.error_result = error_to_result(error);
            if (entry.connect_slot !== -1) {
                const slot = entry.connect_slot;
                entry.connect_slot = -1;
                this.settle(slot, entry.error_result);
            }
            if (entry.recv_slot !== -1) this.settle(entry.recv_slot, this.recv_fill(handle));
        });
    }

    /**
     * Copies queued bytes into the pending recv's arena range and clears the pending recv;
     * returns its result: bytes copied, 0 at end of stream, or the socket's error.
     */
    private recv_fill(handle: number): number {
        const entry = this.handles[handle]!;
        const record = this.slots[entry.recv_slot]!;
        entry.recv_slot = -1;
        if (entry.queued_bytes === 0) return entry.ended ? 0 : entry.error_result;
        let copied = 0;
        while (copied < record.length && entry.chunks.length > 0) {
            const chunk = entry.chunks[0]!;
            const take = Math.min(record.length - copied, chunk.length - entry.chunk_position);
            chunk.copy(this.arena_buffer, record.arena_offset + copied, entry.chunk_position,
                entry.chunk_position + take);
            copied += take;
            entry.chunk_position += take;
            if (entry.chunk_position === chunk.length) {
                entry.chunks.shift();
                entry.chunk_position = 0;
            }
        }
        entry.queued_bytes -= copied;
        assert(entry.queued_bytes >= 0);
        if (entry.paused && entry.queued_bytes < receive_queue_bytes_max) {
            entry.paused = false;
            entry.socket!.resume();
        }
        return copied;
    }
}
