// Syscalls per operation, io_uring against libuv: the same work on both engines, each in a child
// process whose syscalls the kernel counts (perf's raw_syscalls:sys_enter tracepoint, or strace -f
// -c where perf is missing). A child with the same setup and zero work is the baseline subtracted
// from every count, so startup, addon loading, file creation and connection setup do not count.
//
// An "op" is one unit of work: a write + fdatasync pair, or one round trip. "Engine op" counts each
// submitted operation (a round trip is four: send and recv on each side; a disk op is two).
//
// Workloads: disk (1 MiB O_DIRECT write + fdatasync, `--depth` in flight, default 16), net (4 KiB
// request/response round trips over loopback TCP, `--connections` of them, default 64; client and
// server on the engine under test), and both at once. The defaults are a replica under load: 16
// writes in flight is the pipeline's 8 prepares plus their 8 header-sector writes (TigerBeetle
// allows up to journal_iops_write_max = 32), and 64 connections is clients_max, each client with
// one request in flight. Each write is linked to its fdatasync (one submission, no JavaScript in
// between); `--no-link` submits the fdatasync from the write's completion instead.
//
//   node dist/bench/syscalls.js                 1,000 disk ops (1 GiB written), 10,000 round trips
//   node dist/bench/syscalls.js --quick         200 disk ops, 10,000 round trips
//   node dist/bench/syscalls.js --event-loop    io_uring in event-loop mode instead of loop mode
//   node dist/bench/syscalls.js --sqpoll        io_uring with a kernel SQ polling thread; loop mode
//                                               then polls the completion queue without entering
//   node dist/bench/syscalls.js --depth 8 --connections 16 --no-link --engines libuv
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Arena } from '../lib/io/arena';
import type { Engine, EngineKind } from '../lib/io/engine';
import { create_engine } from '../lib/io/index';
import type { UringEngine } from '../lib/io/uring_engine';
import { node_run_counted, syscall_counter_name } from './syscall_counter';

const block = 4096;
const disk_write_bytes = 1 << 20;
const disk_file_bytes = 64 << 20;
const message_bytes = 4096;
/** Run by every child, the baseline included, before the measured work. */
const warmup_disk_ops = 64;
const warmup_round_trips = 2000;
const root = path.resolve(__dirname, '..', '..');
const data_dir = path.join(root, '.test-data');

type Workload = 'disk' | 'net' | 'both';

/** How a run is set up; the parent passes it to each child as JSON. */
interface Config {
    disk_ops: number;
    round_trips: number;
    disk_depth: number;
    connections: number;
    /** Link each write to its fdatasync (IOSQE_IO_LINK; the libuv engine chains them). */
    link: boolean;
    /** io_uring in event-loop mode (embedding) rather than loop mode (the server). */
    event_loop: boolean;
    /** io_uring with SQPOLL; loop mode then polls the completion queue (run_once(0)). */
    sqpoll: boolean;
}

interface ChildResult {
    operations: number;
    /** Engine operations submitted for the work (a round trip is 4: send, recv on each side). */
    io_operations: number;
    elapsed_s: number;
    cpu_s: number;
}

const tag_disk_write = 1;
const tag_disk_sync = 2;
const tag_client_send = 3;
const tag_client_recv = 4;
const tag_server_recv = 5;
const tag_server_send = 6;
const tag_setup = 7;

/** One child run: setup, then `disk_ops` disk operations and `round_trips` round trips. */
class Child {
    readonly arena: Arena;
    readonly engine: Engine;
    readonly target: number;
    file_fd = -1;
    listen_fd = -1;
    readonly client_fds: number[] = [];
    readonly server_fds: number[] = [];
    readonly client_bytes: Int32Array;
    readonly server_bytes: Int32Array;
    readonly client_trips_left: Int32Array;
    disk_issued = 0;
    disk_done = 0;
    /** Disk operations the current work() issues in all. */
    disk_ops = 0;
    trips_done = 0;
    /** Each connection keeps one server recv pending from its first round trip on. */
    server_armed = false;
    setup_results: number[] = [];
    wake: (() => void) | null = null;
    /** At teardown, pending server recvs end with 0 or ECANCELED: not failures. */
    closing = false;
    /** Round trips the current work() makes in all. */
    trips = 0;

    constructor(readonly kind: EngineKind, readonly config: Config) {
        const { disk_depth, connections } = config;
        this.client_bytes = new Int32Array(connections);
        this.server_bytes = new Int32Array(connections);
        this.client_trips_left = new Int32Array(connections);
        this.arena = new Arena(disk_depth * disk_write_bytes + 4 * connections * message_bytes);
        // Room for every lane's operations at once: two per disk lane, two per connection.
        const entries = Math.max(256, 2 * disk_depth + 2 * connections + 16);
        this.engine = create_engine(kind, { arena: this.arena, entries,
            sqpoll: kind === 'io_uring' && config.sqpoll });
        this.target = this.engine.target_register(this);
        if (kind === 'libuv' || config.event_loop) this.engine.start();
        this.arena.bytes.fill(0x5c);
    }

    /** Region of lane `lane` of a kind: 0 disk, 1 client send, 2 client recv, 3 server. */
    region(kind: number, lane: number): number {
        const { disk_depth, connections } = this.config;
        if (kind === 0) return lane * disk_write_bytes;
        return disk_depth * disk_write_bytes + ((kind - 1) * connections + lane) * message_bytes;
    }

    io_complete(tag: number, result: number): void {
        const operation = Math.floor(tag / 1000);
        const lane = tag % 1000;
        if (operation === tag_setup) {
            this.setup_results.push(result);
        } else if (!this.closing) {
            assert.ok(result >= 0, `operation ${operation} lane ${lane} failed: ${result}`);
            this.step(operation, lane, result);
        }
        if (this.wake !== null) this.wake();
    }

    step(operation: number, lane: number, result: number): void {
        const e = this.engine;
        const t = this.target;
        if (operation === tag_disk_write) {
            assert.equal(result, disk_write_bytes);
            // Linked: the fdatasync was submitted with the write and runs after it.
            if (!this.config.link) e.file_sync(t, tag_disk_sync * 1000 + lane, this.file_fd, true);
        } else if (operation === tag_disk_sync) {
            this.disk_done += 1;
            this.disk_issue(lane);
        } else if (operation === tag_client_send) {
            this.client_bytes[lane] = 0;
            this.client_recv(lane);
        } else if (operation === tag_client_recv) {
            assert.ok(result > 0, 'server closed early');
            this.client_bytes[lane]! += result;
            if (this.client_bytes[lane]! < message_bytes) return this.client_recv(lane);
            this.trips_done += 1;
            this.client_send(lane);
        } else if (operation === tag_server_recv) {
            assert.ok(result > 0, 'client closed early');
            this.server_bytes[lane]! += result;
            if (this.server_bytes[lane]! < message_bytes) return this.server_recv(lane);
            e.socket_send(t, tag_server_send * 1000 + lane, this.server_fds[lane]!,
                this.region(3, lane), message_bytes);
        } else if (operation === tag_server_send) {
            assert.equal(result, message_bytes);
            this.server_bytes[lane] = 0;
            this.server_recv(lane);
        }
    }

    disk_issue(lane: number): void {
        if (this.disk_issued === this.disk_ops) return;
        const offset = (this.disk_issued * disk_write_bytes) % disk_file_bytes;
        this.disk_issued += 1;
        this.engine.file_write(this.target, tag_disk_write * 1000 + lane, this.file_fd,
            this.region(0, lane), disk_write_bytes, offset, this.config.link);
        if (this.config.link) {
            this.engine.file_sync(this.target, tag_disk_sync * 1000 + lane, this.file_fd, true);
        }
    }

    client_send(lane: number): void {
        if (this.client_trips_left[lane] === 0) return;
        this.client_trips_left[lane]! -= 1;
        this.engine.socket_send(this.target, tag_client_send * 1000 + lane, this.client_fds[lane]!,
            this.region(1, lane), message_bytes);
    }

    client_recv(lane: number): void {
        this.engine.socket_recv(this.target, tag_client_recv * 1000 + lane, this.client_fds[lane]!,
            this.region(2, lane) + this.client_bytes[lane]!,
            message_bytes - this.client_bytes[lane]!);
    }

    server_recv(lane: number): void {
        this.engine.socket_recv(this.target, tag_server_recv * 1000 + lane, this.server_fds[lane]!,
            this.region(3, lane) + this.server_bytes[lane]!,
            message_bytes - this.server_bytes[lane]!);
    }

    /** Runs the engine until `done()`: run_once for io_uring (loop mode), the event loop else. */
    async until(done: () => boolean): Promise<void> {
        if (this.kind === 'io_uring' && !this.config.event_loop) {
            const engine = this.engine as UringEngine;
            // With SQPOLL the kernel thread submits and completes: poll the queue, never wait.
            const timeout_ms = this.config.sqpoll ? 0 : 1000;
            while (!done()) engine.run_once(timeout_ms, this.wait_count());
            return;
        }
        while (!done()) {
            await new Promise<void>((resolve) => {
                this.wake = resolve;
            });
            this.wake = null;
        }
    }

    async setup(file_path: string): Promise<void> {
        const e = this.engine;
        this.file_fd = e.file_open(file_path, { direct: true, dsync: false, create: true });
        e.file_allocate(this.target, tag_setup * 1000, this.file_fd, 0, disk_file_bytes);
        await this.until(() => this.setup_results.length === 1);
        const { connections } = this.config;
        this.listen_fd = e.socket_listen('127.0.0.1', 0, connections);
        const port = e.socket_local_port(this.listen_fd);
        for (let lane = 0; lane < connections; lane++) {
            this.client_fds.push(e.socket_create());
            e.socket_connect(this.target, tag_setup * 1000 + 1, this.client_fds[lane]!,
                '127.0.0.1', port);
            e.socket_accept(this.target, tag_setup * 1000 + 2, this.listen_fd);
            const before = this.setup_results.length;
            await this.until(() => this.setup_results.length === before + 2);
            const accepted = Math.max(...this.setup_results.slice(-2));
            assert.ok(Math.min(...this.setup_results.slice(-2)) === 0 && accepted >= 0);
            this.server_fds.push(accepted);
        }
    }

    /**
     * io_uring loop mode: how many completions one run_once waits for. While round trips are
     * outstanding, one: each depends on the peer's next submission, so waiting for more would
     * stall. Otherwise, every disk completion outstanding (write and fdatasync of each lane):
     * the lanes are independent, so a whole round costs one io_uring_enter.
     */
    wait_count(): number {
        if (this.trips_done < this.trips) return 1;
        const idle_recvs = this.server_armed ? this.config.connections : 0;
        return Math.max(1, this.engine.in_flight - idle_recvs);
    }

    /** Runs `disk` disk ops and `trips` round trips at once; returns how many ops in all. */
    async work(disk: number, trips: number): Promise<number> {
        const { disk_depth, connections } = this.config;
        this.disk_ops = disk;
        this.disk_issued = 0;
        this.disk_done = 0;
        this.trips_done = 0;
        this.trips = trips;
        if (disk > 0) {
            for (let lane = 0; lane < disk_depth; lane++) this.disk_issue(lane);
        }
        if (trips > 0) {
            for (let lane = 0; lane < connections; lane++) {
                this.client_trips_left[lane] = Math.floor(trips / connections) +
                    (lane < trips % connections ? 1 : 0);
                if (!this.server_armed) this.server_recv(lane);
                this.client_send(lane);
            }
            this.server_armed = true;
        }
        const in_flight_idle = this.server_armed ? connections : 0;
        await this.until(() => this.disk_done === disk && this.trips_done === trips &&
            this.engine.in_flight === in_flight_idle);
        return disk + trips;
    }

    async teardown(): Promise<void> {
        const fds = [this.file_fd, this.listen_fd, ...this.client_fds, ...this.server_fds];
        const before = this.setup_results.length;
        this.closing = true;
        for (const fd of fds) this.engine.close(this.target, tag_setup * 1000 + 3, fd);
        await this.until(() => this.setup_results.length === before + fds.length &&
            this.engine.in_flight === 0);
        this.engine.destroy();
    }
}

async function child_main(kind: EngineKind, workload: Workload | 'none',
    config: Config): Promise<void> {
    fs.mkdirSync(data_dir, { recursive: true });
    const file_path = path.join(data_dir, `bench-syscalls-${process.pid}.dat`);
    const child = new Child(kind, config);
    try {
        await child.setup(file_path);
        // Every child, the baseline too, warms up the same way, so that what V8 does once per
        // process as the code gets hot (compiling it: mprotect; its helper threads: futex) is
        // subtracted with the baseline rather than charged to the measured operations.
        await child.work(warmup_disk_ops, warmup_round_trips);
        const cpu_before = process.cpuUsage();
        const time_before = performance.now();
        const submitted_before = child.engine.stats().submitted;
        const disk = workload === 'disk' || workload === 'both' ? config.disk_ops : 0;
        const trips = workload === 'net' || workload === 'both' ? config.round_trips : 0;
        const operations = workload === 'none' ? 0 : await child.work(disk, trips);
        const elapsed_s = (performance.now() - time_before) / 1000;
        const cpu = process.cpuUsage(cpu_before);
        const result: ChildResult = {
            operations,
            io_operations: child.engine.stats().submitted - submitted_before,
            elapsed_s,
            cpu_s: (cpu.user + cpu.system) / 1e6,
        };
        await child.teardown();
        process.stdout.write(JSON.stringify(result) + '\n');
    } finally {
        fs.rmSync(file_path, { force: true });
    }
}

/** Runs one child under the syscall counter; returns its result and syscall count. */
function child_run(kind: EngineKind, workload: Workload | 'none',
    config: Config): ChildResult & { syscalls: number } {
    const count_file = path.join(data_dir, `bench-syscalls-count-${process.pid}.txt`);
    const node_args = [__filename, '--child', kind, workload, JSON.stringify(config)];
    const run = node_run_counted(node_args, count_file);
    return { ...JSON.parse(run.stdout.trim().split('\n').pop()!) as ChildResult,
        syscalls: run.syscalls };
}

interface Row {
    kind: EngineKind;
    workload: Workload;
    syscalls_per_op: number;
    syscalls_per_io_op: number;
    ops_per_s: number;
    cpu_s: number;
}

function engine_available(kind: EngineKind): string | null {
    try {
        create_engine(kind, { arena: new Arena(block), entries: 4 }).destroy();
        return null;
    } catch (error) {
        return (error as Error).message;
    }
}

function option_number(args: string[], name: string, fallback: number): number {
    const index = args.indexOf(name);
    if (index < 0) return fallback;
    const value = Number(args[index + 1]);
    assert.ok(Number.isInteger(value) && value > 0, `${name} needs a positive integer`);
    return value;
}

function main(): void {
    const args = process.argv.slice(2);
    const config: Config = {
        disk_ops: args.includes('--quick') ? 200 : 1000,
        round_trips: 10_000,
        disk_depth: option_number(args, '--depth', 16),
        connections: option_number(args, '--connections', 64),
        link: !args.includes('--no-link'),
        event_loop: args.includes('--event-loop'),
        sqpoll: args.includes('--sqpoll'),
    };
    assert.ok(config.connections < 1000 && config.disk_depth < 1000, 'lanes are tag % 1000');
    const engines_index = args.indexOf('--engines');
    const engines = (engines_index >= 0 ? args[engines_index + 1]!.split(',')
        : ['io_uring', 'libuv']) as EngineKind[];
    const mode = config.event_loop ? 'event-loop' : config.sqpoll
        ? 'loop mode polling the CQ (run_once(0))' : 'loop (run_once)';
    console.log(`syscall counter: ${syscall_counter_name}` +
        `; io_uring in ${mode} mode${config.sqpoll ? ' with SQPOLL' : ''}`);
    console.log(`disk: ${config.disk_ops} x (1 MiB O_DIRECT write + fdatasync` +
        `${config.link ? ', linked' : ''}), ${config.disk_depth} in flight; net: ` +
        `${config.round_trips} x 4 KiB round trips over ${config.connections} connections`);
    const rows: Row[] = [];
    for (const kind of engines) {
        const unavailable = engine_available(kind);
        if (unavailable !== null) {
            console.log(`${kind}: not available: ${unavailable}`);
            continue;
        }
        const baseline = child_run(kind, 'none', config).syscalls;
        for (const workload of ['disk', 'net', 'both'] as Workload[]) {
            const result = child_run(kind, workload, config);
            rows.push({
                kind, workload,
                syscalls_per_op: Math.max(0, result.syscalls - baseline) / result.operations,
                syscalls_per_io_op: Math.max(0, result.syscalls - baseline) /
                    result.io_operations,
                ops_per_s: result.operations / result.elapsed_s,
                cpu_s: result.cpu_s,
            });
        }
    }
    table_print(rows);
}

function table_print(rows: Row[]): void {
    const header = ['workload', 'engine', 'syscalls/op', 'syscalls/engine op', 'ops/s', 'CPU s',
        'syscall ratio'];
    console.log(header.join(' | '));
    console.log(header.map(() => '---').join(' | '));
    for (const row of rows) {
        const libuv = rows.find((other) => other.kind === 'libuv' &&
            other.workload === row.workload);
        const ratio = row.kind === 'io_uring' && libuv !== undefined && row.syscalls_per_op > 0
            ? `${(libuv.syscalls_per_op / row.syscalls_per_op).toFixed(1)}x fewer` : '';
        console.log([row.workload, row.kind, row.syscalls_per_op.toFixed(3),
            row.syscalls_per_io_op.toFixed(3),
            Math.round(row.ops_per_s).toString(), row.cpu_s.toFixed(2), ratio].join(' | '));
    }
}

if (process.argv[2] === '--child') {
    const [kind, workload, config] = process.argv.slice(3);
    child_main(kind as EngineKind, workload as Workload | 'none',
        JSON.parse(config!) as Config).catch((error: unknown) => {
        console.error(error);
        process.exit(1);
    });
} else {
    main();
}
