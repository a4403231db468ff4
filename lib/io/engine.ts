// The engine interface: the only way ringledger reaches the kernel. Two implementations share it:
// `UringEngine` (lib/io/uring_engine.ts, the C++ addon over io_uring, the default on Linux) and
// `LibuvEngine` (lib/io/libuv_engine.ts, Node's own fs and net: the fallback where io_uring is not
// available, and the baseline every benchmark compares against).
//
// Shape of the interface, and why:
// - Buffers are never passed: every buffer is an (arena offset, length) pair in the engine's
//   arena, so the kernel reads and writes the same memory TypeScript views, and nothing can be
//   detached or collected while the kernel holds it.
// - Completions carry no closures or Promises. A caller registers a completion target once at
//   startup (an object with `io_complete(tag, result)`), and tags each operation with a small
//   integer of its own (a slot index, a connection index). Every operation completes exactly once,
//   with its tag and a result that is >= 0 or -errno. Failure is a value; the caller decides
//   whether to build an IoError.
// - Submission is queued and flushed once per turn of the loop, never per operation.
// - Synchronous calls (`file_open`, `socket_listen`, `socket_create`) are for startup and
//   connection setup, never for the data path; they throw IoError on failure.
import type { Arena } from './arena';

export type EngineKind = 'io_uring' | 'libuv';

export interface IoCompletionTarget {
    /** Called once per completed operation with the caller's tag and result (>= 0 or -errno). */
    io_complete(tag: number, result: number): void;
}

export interface EngineOptions {
    arena: Arena;
    /** Upper bound on operations in flight at once (io_uring: SQ entries; CQ is twice that). */
    entries: number;
    /** io_uring only: ask for a kernel submission-polling thread. Off by default. */
    sqpoll?: boolean;
    /** io_uring only: register the arena as fixed buffers if RLIMIT_MEMLOCK allows. Default on. */
    register_buffers?: boolean;
    /** Where to report once-only notices (e.g. "running with unregistered buffers because …"). */
    log?: (line: string) => void;
}

export interface FileOpenOptions {
    /** O_DIRECT: bypass the page cache. Requires 4096-aligned offsets, lengths and memory. */
    direct: boolean;
    /** O_DSYNC: every write is durable when it completes. */
    dsync: boolean;
    /** O_CREAT | O_EXCL when true: fail with EEXIST rather than open an existing file. */
    create: boolean;
    read_only?: boolean;
}

export interface EngineStats {
    /** io_uring_enter calls made by the engine (0 for libuv, whose syscalls are not seen here). */
    enter_calls: number;
    /** Operations submitted and completed since the engine started. */
    submitted: number;
    completed: number;
    /** Native→JS calls made to deliver completions. */
    js_calls: number;
}

export interface Engine {
    readonly kind: EngineKind;
    readonly arena: Arena;
    /** Operations submitted or queued whose completion has not been delivered yet. */
    readonly in_flight: number;
    /** Whether the arena is registered with the kernel as fixed buffers (io_uring only). */
    readonly buffers_registered: boolean;

    /** Startup only: registers a completion target; returns the id used in every submission. */
    target_register(target: IoCompletionTarget): number;

    // Synchronous setup calls (startup or connection setup; throw IoError).
    file_open(path: string, options: FileOpenOptions): number;
    /** A TCP socket bound and listening on host:port (port 0 picks one); returns its fd. */
    socket_listen(host: string, port: number, backlog: number): number;
    /** The local port of a bound socket (to learn the port picked for port 0). */
    socket_local_port(fd: number): number;
    /** A new unconnected TCP socket for `socket_connect`; returns its fd. */
    socket_create(family?: 4 | 6): number;

    // Asynchronous operations: each completes exactly once through target.io_complete(tag, result).
    file_read(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number): void;
    /**
     * With `link`, the operation called next on this engine (which must be a file operation:
     * read, write, sync or allocate) starts only after this write has written all `length`
     * bytes; if the write fails or is short, the next operation completes with -ECANCELED
     * instead. io_uring submits the pair as one linked chain (IOSQE_IO_LINK), so a write and
     * its fdatasync cost one submission and no round trip through JavaScript. Both still
     * complete, each once, with their own results.
     */
    file_write(target: number, tag: number, fd: number, arena_offset: number, length: number,
        file_offset: number, link?: boolean): void;
    /** fsync (data_only false) or fdatasync (data_only true). */
    file_sync(target: number, tag: number, fd: number, data_only: boolean): void;
    file_allocate(target: number, tag: number, fd: number,
        file_offset: number, length: number): void;
    /** Result: the accepted connection's fd. */
    socket_accept(target: number, tag: number, listen_fd: number): void;
    socket_connect(target: number, tag: number, fd: number, host: string, port: number): void;
    /** Result: bytes received; 0 means the peer closed. */
    socket_recv(target: number, tag: number, fd: number,
        arena_offset: number, length: number): void;
    /** Result: bytes sent (may be fewer than asked; the caller sends the rest). */
    socket_send(target: number, tag: number, fd: number,
        arena_offset: number, length: number): void;
    socket_shutdown(target: number, tag: number, fd: number): void;
    /** Closes a file or socket fd. */
    close(target: number, tag: number, fd: number): void;
    /** Completes with 0 after `duration_ms`, or with -ECANCELED when cancelled first. */
    timeout(target: number, tag: number, duration_ms: number): void;
    /**
     * Best effort: the in-flight operation with this (target, tag) completes with -ECANCELED,
     * unless it completed first, in which case it keeps its own result. The cancel itself reports
     * nothing.
     */
    cancel(target: number, tag: number): void;

    /** Event-loop mode: deliver completions from Node's event loop (embedding applications). */
    start(): void;
    /**
     * Loop mode (io_uring only; the server's main loop): submit what is queued, wait up to
     * `timeout_ms` for at least one completion, deliver all completions; returns how many.
     */
    run_once(timeout_ms: number): number;
    /**
     * Submits what is queued now, without waiting for completions, so that disk work can overlap
     * with CPU work before the next turn. io_uring: one io_uring_enter; libuv: a no-op (every
     * operation is handed to Node's thread pool as it is called).
     */
    flush(): void;
    stats(): EngineStats;
    /** Stops delivering completions and releases the ring. In-flight operations must be drained. */
    destroy(): void;
}
