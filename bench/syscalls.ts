// Syscalls per operation, io_uring against libuv: the same work on both engines, each in a child
// process whose syscalls the kernel counts (perf's raw_syscalls:sys_enter tracepoint, or strace -f
// -c where perf is missing). A child with the same setup and zero work is the baseline subtracted
// from every count, so startup, addon loading, file creation and connection setup do not count.
//
// An "op" is one unit of work: a write + fdatasync pair, or one round trip. "Engine op" counts each
// submitted operation (a round trip is four: send and recv on each side; a disk op is two).
//
// Workloads: disk (1 MiB O_DIRECT write + fdatasync, 8 in flight), net (4 KiB request/response
// round trips over loopback TCP, client and server on the engine under test), and both at once.
//
//   node dist/bench/syscalls.js            1,000 disk ops (1 GiB written), 10,000 round trips
//   node dist/bench/syscalls.js --quick    200 disk ops, 10,000 round trips
//   node dist/bench/syscalls.js --event-loop   io_uring in event-loop mode instead of loop mode
//   node dist/bench/syscalls.js --engines libuv
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
const disk_depth = 8;
const disk_file_bytes = 64 << 20;
const connections = 16;
const message_bytes = 4096;
const root = path.resolve(__dirname, '..', '..');
const data_dir = path.join(root, '.test-data');

type Workload = 'disk' | 'net' | 'both';

/** --event-loop: io_uring in event-loop mode (embedding) rather than loop mode (the server). */
const event_loop_mode = process.env['RINGLEDGER_BENCH_EVENT_LOOP'] === '1';

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
    readonly client_bytes = new Int32Array(connections);
    readonly server_bytes = new Int32Array(connections);
    readonly client_trips_left = new Int32Array(connections);
    disk_issued = 0;
    disk_done = 0;
    trips_done = 0;
    setup_results: number[] = [];
    wake: (() => void) | null = null;
    /** At teardown, pending server recvs end with 0 or ECANCELED: not failures. */
    closing = false;
    /**
     * io_uring loop mode: how many completions one run_once waits for. The disk lanes are
     * independent, so waiting for all of them batches a whole round into one io_uring_enter; a
     * round trip depends on the peer's next submission, so network work waits for one.
     */
    wait_count = 1;

    constructor(readonly kind: EngineKind, readonly disk_ops: number,
        readonly round_trips: number) {
        this.arena = new Arena(disk_depth * disk_write_bytes + 4 * connections * message_bytes);
        this.engine = create_engine(kind, { arena: this.arena, entries: 256 });
        this.target = this.engine.target_register(this);
        if (kind === 'libuv' || event_loop_mode) this.engine.start();
        this.arena.bytes.fill(0x5c);
    }

    /** Region of lane `lane` of a kind: 0 disk, 1 client send, 2 client recv, 3 server. */
    region(kind: number, lane: number): number {
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
            e.file_sync(t, tag_disk_sync * 1000 + lane, this.file_fd, true);
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
            this.region(0, lane), disk_write_bytes, offset);
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
        if (this.kind === 'io_uring' && !event_loop_mode) {
            const engine = this.engine as UringEngine;
            while (!done()) engine.run_once(1000, this.wait_count);
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

    async work(workload: Workload): Promise<number> {
        const disk = workload !== 'net' ? this.disk_ops : 0;
        const trips = workload !== 'disk' ? this.round_trips : 0;
        if (workload === 'disk') this.wait_count = disk_depth;
        if (disk > 0) {
            for (let lane = 0; lane < disk_depth; lane++) this.disk_issue(lane);
        }
        if (trips > 0) {
            for (let lane = 0; lane < connections; lane++) {
                this.client_trips_left[lane] = Math.floor(trips / connections) +
                    (lane < trips % connections ? 1 : 0);
                this.server_recv(lane);
                this.client_send(lane);
            }
        }
        await this.until(() => this.disk_done === disk && this.trips_done === trips &&
            this.engine.in_flight === (trips > 0 ? connections : 0));
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

async function child_main(kind: EngineKind, workload: Workload | 'none', disk_ops: number,
    round_trips: number): Promise<void> {
    fs.mkdirSync(data_dir, { recursive: true });
    const file_path = path.join(data_dir, `bench-syscalls-${process.pid}.dat`);
    const child = new Child(kind, disk_ops, round_trips);
    try {
        await child.setup(file_path);
        const cpu_before = process.cpuUsage();
        const time_before = performance.now();
        const submitted_before = child.engine.stats().submitted;
        const operations = workload === 'none' ? 0 : await child.work(workload);
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
function child_run(kind: EngineKind, workload: Workload | 'none', disk_ops: number,
    round_trips: number): ChildResult & { syscalls: number } {
    const count_file = path.join(data_dir, `bench-syscalls-count-${process.pid}.txt`);
    const node_args = [__filename, '--child', kind, workload, String(disk_ops),
        String(round_trips)];
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

function main(): void {
    const args = process.argv.slice(2);
    const quick = args.includes('--quick');
    if (args.includes('--event-loop')) process.env['RINGLEDGER_BENCH_EVENT_LOOP'] = '1';
    const engines_index = args.indexOf('--engines');
    const engines = (engines_index >= 0 ? args[engines_index + 1]!.split(',')
        : ['io_uring', 'libuv']) as EngineKind[];
    const disk_ops = quick ? 200 : 1000;
    const round_trips = 10_000;
    console.log(`syscall counter: ${syscall_counter_name}` +
        `; io_uring in ${args.includes('--event-loop') ? 'event-loop' : 'loop (run_once)'} mode`);
    console.log(`disk: ${disk_ops} x (1 MiB O_DIRECT write + fdatasync), ${disk_depth} in ` +
        `flight; net: ${round_trips} x 4 KiB round trips over ${connections} connections`);
    const rows: Row[] = [];
    for (const kind of engines) {
        const unavailable = engine_available(kind);
        if (unavailable !== null) {
            console.log(`${kind}: not available: ${unavailable}`);
            continue;
        }
        const baseline = child_run(kind, 'none', disk_ops, round_trips).syscalls;
        for (const workload of ['disk', 'net', 'both'] as Workload[]) {
            const result = child_run(kind, workload, disk_ops, round_trips);
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
    const [kind, workload, disk_ops, round_trips] = process.argv.slice(3);
    child_main(kind as EngineKind, workload as Workload | 'none', Number(disk_ops),
        Number(round_trips)).catch((error: unknown) => {
        console.error(error);
        process.exit(1);
    });
} else {
    main();
}
