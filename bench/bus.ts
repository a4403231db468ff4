// Messages through the message bus on loopback, io_uring against libuv in the same run: one bus
// dials `connections` connections to another bus in the same process, and streams sealed request
// messages one way. Each message the receiving bus validates (both checksums) and delivers lets
// the sender queue one more on that connection, so every connection keeps `window` messages in
// flight. Every child runs under the syscall counter (bench/syscall_counter.ts); a child with the
// same setup and no messages is the baseline subtracted, so startup and connection setup do not
// count. io_uring also reports its own io_uring_enter count.
//
//   node dist/bench/bus.js               2,000 x 1 MiB and 200,000 x 256 B messages per engine
//   node dist/bench/bus.js --quick       200 x 1 MiB and 20,000 x 256 B
//   node dist/bench/bus.js --event-loop  io_uring in event-loop mode instead of loop mode
//   node dist/bench/bus.js --engines libuv
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Arena } from '../lib/io/arena';
import type { Engine, EngineKind } from '../lib/io/engine';
import { create_engine } from '../lib/io/index';
import type { UringEngine } from '../lib/io/uring_engine';
import { Operation, header_size, message_size_max, release_0_17_9 } from '../lib/vsr/constants';
import { HeaderView, header_init, seal } from '../lib/vsr/header';
import { Command, offsets } from '../lib/vsr/header_layout';
import { MessageBus, type MessageBusOwner, receive_reserve } from '../lib/vsr/message_bus';
import { MessagePool } from '../lib/vsr/message_pool';
import { HeaderValidator } from '../lib/vsr/validate';
import { node_run_counted, syscall_counter_name } from './syscall_counter';

const connections = 4;
const send_queue_max = 8;
/**
 * Messages in flight per connection. A delivery can be seen before the sender's completion of
 * the same message (both come back in one batch), so the sender's queue may hold window + 1.
 */
const window = send_queue_max - 1;
const cluster = 0n;
const root = path.resolve(__dirname, '..', '..');

const event_loop_mode = process.env['RINGLEDGER_BENCH_EVENT_LOOP'] === '1';

interface ChildResult {
    messages: number;
    bytes: number;
    elapsed_s: number;
    cpu_s: number;
    enter_calls: number;
}

const time = { monotonic_ns: () => Number(process.hrtime.bigint()) };
const random = { u32: () => 0 };

/** The receiving side: counts each delivery and lets the sender queue the next message. */
class Receiver implements MessageBusOwner {
    received = 0;
    bytes = 0;
    wake: (() => void) | null = null;
    constructor(readonly child: Child) {}

    on_message(_connection: number, message: number): void {
        const child = this.child;
        const offset = child.server_pool.offset(message);
        // The sender wrote its connection index into the low byte of the header's client id.
        const lane = child.server_pool.bytes[offset + offsets.request.client]! - 1;
        assert(lane >= 0 && lane < connections);
        this.received += 1;
        this.bytes += child.server.message_size(message);
        child.send_next(lane);
        if (this.received === child.total && this.wake !== null) this.wake();
    }
}

/** The sending side never receives (the receiver does not answer). */
const sender_owner: MessageBusOwner = {
    on_message(): void {
        assert.fail('bench: the sender received a message');
    },
};

class Child {
    readonly arena: Arena;
    readonly engine: Engine;
    readonly server_pool: MessagePool;
    readonly client_pool: MessagePool;
    readonly server: MessageBus;
    readonly client: MessageBus;
    readonly receiver: Receiver;
    readonly lanes: number[] = [];
    /** One sealed message per connection, queued again and again (send takes a reference). */
    readonly messages: number[] = [];
    issued = 0;

    constructor(readonly kind: EngineKind, readonly message_size: number, readonly total: number) {
        // Server: a receive buffer per connection, the reserve, and copies of coalesced small
        // messages (freed when delivered). Client: its receive buffers, the reserve, one message
        // per connection.
        const server_count = 2 * connections + receive_reserve + 1;
        const client_count = 2 * connections + receive_reserve;
        this.arena = new Arena((server_count + client_count) * message_size_max);
        this.engine = create_engine(kind, { arena: this.arena, entries: 256 });
        this.server_pool = new MessagePool(this.arena, server_count, message_size_max);
        this.client_pool = new MessagePool(this.arena, client_count, message_size_max);
        this.arena.seal();
        this.receiver = new Receiver(this);
        const common = { engine: this.engine, time, random, send_queue_max,
            connections_max: connections };
        this.server = new MessageBus({ ...common, pool: this.server_pool,
            validator: new HeaderValidator(cluster), owner: this.receiver });
        this.client = new MessageBus({ ...common, pool: this.client_pool,
            validator: new HeaderValidator(cluster), owner: sender_owner });
        for (let lane = 0; lane < connections; lane++) {
            this.messages.push(this.message_build(lane));
        }
        if (kind === 'libuv' || event_loop_mode) this.engine.start();
    }

    /** A sealed request of `message_size` bytes whose client id names its lane. */
    message_build(lane: number): number {
        const message = this.client_pool.acquire();
        assert(message !== -1);
        const view = header_init(new HeaderView(), this.client_pool.bytes,
            this.client_pool.offset(message), Command.request, this.message_size, release_0_17_9);
        view.set('client', BigInt(lane + 1));
        view.set('operation', Operation.create_transfers);
        view.set('session', 1n);
        view.set('request', 1);
        const body = this.client_pool.buffers[message]!.subarray(header_size, this.message_size);
        for (let index = 0; index < body.length; index++) body[index] = (index * 31 + lane) & 255;
        seal(view);
        return message;
    }

    send_next(lane: number): void {
        if (this.issued === this.total) return;
        this.issued += 1;
        assert(this.client.send(this.lanes[lane]!, this.messages[lane]!), 'bench: send refused');
    }

    /** Runs the engine until `done()`: run_once for io_uring (loop mode), the event loop else. */
    async until(done: () => boolean): Promise<void> {
        if (this.kind === 'io_uring' && !event_loop_mode) {
            const engine = this.engine as UringEngine;
            for (let turn = 0; !done(); turn++) {
                assert(turn < 100_000_000, 'bench: no progress');
                engine.run_once(1000);
            }
            return;
        }
        for (let turn = 0; !done(); turn++) {
            assert(turn < 100_000, 'bench: no progress');
            await new Promise<void>((resolve) => setTimeout(resolve, 1));
        }
    }

    async setup(): Promise<void> {
        const port = this.server.listen('127.0.0.1', 0);
        for (let lane = 0; lane < connections; lane++) {
            this.lanes.push(this.client.connect('127.0.0.1', port));
        }
        await this.until(() => this.lanes.every((lane) => this.client.connected(lane)) &&
            this.server.connections_open === connections);
    }

    async work(): Promise<void> {
        for (let lane = 0; lane < connections; lane++) {
            for (let slot = 0; slot < window; slot++) this.send_next(lane);
        }
        if (this.kind === 'io_uring' && !event_loop_mode) {
            await this.until(() => this.receiver.received === this.total);
            return;
        }
        if (this.receiver.received === this.total) return;
        await new Promise<void>((resolve) => { this.receiver.wake = resolve; });
    }

    async teardown(): Promise<void> {
        for (const message of this.messages) this.client_pool.unref(message);
        this.client.shutdown();
        this.server.shutdown();
        await this.until(() => this.client.idle && this.server.idle &&
            this.engine.in_flight === 0);
        this.server_pool.assert_no_leaks();
        this.client_pool.assert_no_leaks();
        this.engine.destroy();
    }
}

async function child_main(kind: EngineKind, message_size: number, total: number): Promise<void> {
    const child = new Child(kind, message_size, total);
    await child.setup();
    const enter_before = child.engine.stats().enter_calls;
    const cpu_before = process.cpuUsage();
    const time_before = performance.now();
    if (total > 0) await child.work();
    const elapsed_s = (performance.now() - time_before) / 1000;
    const cpu = process.cpuUsage(cpu_before);
    const result: ChildResult = {
        messages: child.receiver.received,
        bytes: child.receiver.bytes,
        elapsed_s,
        cpu_s: (cpu.user + cpu.system) / 1e6,
        enter_calls: child.engine.stats().enter_calls - enter_before,
    };
    assert.equal(result.messages, total);
    assert.equal(child.server.disconnects_invalid.reduce((sum, count) => sum + count, 0), 0);
    await child.teardown();
    process.stdout.write(JSON.stringify(result) + '\n');
}

function child_run(kind: EngineKind, message_size: number, total: number):
    ChildResult & { syscalls: number } {
    const count_file = path.join(root, '.test-data', `bench-bus-count-${process.pid}.txt`);
    const args = [__filename, '--child', kind, String(message_size), String(total)];
    const run = node_run_counted(args, count_file);
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!) as ChildResult;
    return { ...result, syscalls: run.syscalls };
}

interface Row {
    kind: EngineKind;
    message_size: number;
    messages_per_s: number;
    mib_per_s: number;
    syscalls_per_message: number;
    enters_per_message: number;
    cpu_s: number;
}

function engine_available(kind: EngineKind): string | null {
    try {
        create_engine(kind, { arena: new Arena(4096), entries: 4 }).destroy();
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
    const sizes: Array<[number, number]> = [
        [message_size_max, quick ? 200 : 2_000],
        [header_size, quick ? 20_000 : 200_000],
    ];
    fs.mkdirSync(path.join(root, '.test-data'), { recursive: true });
    console.log(`syscall counter: ${syscall_counter_name}; io_uring in ` +
        `${args.includes('--event-loop') ? 'event-loop' : 'loop (run_once)'} mode; ` +
        `${connections} connections, ${window} messages in flight each, one way`);
    const rows: Row[] = [];
    for (const kind of engines) {
        const unavailable = engine_available(kind);
        if (unavailable !== null) {
            console.log(`${kind}: not available: ${unavailable}`);
            continue;
        }
        const baseline = child_run(kind, header_size, 0);
        for (const [message_size, total] of sizes) {
            const result = child_run(kind, message_size, total);
            rows.push({
                kind, message_size,
                messages_per_s: result.messages / result.elapsed_s,
                mib_per_s: result.bytes / (1 << 20) / result.elapsed_s,
                syscalls_per_message: Math.max(0, result.syscalls - baseline.syscalls) / total,
                enters_per_message: result.enter_calls / total,
                cpu_s: result.cpu_s,
            });
        }
    }
    table_print(rows);
}

function table_print(rows: Row[]): void {
    const header = ['message', 'engine', 'messages/s', 'MiB/s', 'syscalls/msg',
        'io_uring_enter/msg', 'CPU s', 'io_uring vs libuv'];
    console.log(header.join(' | '));
    console.log(header.map(() => '---').join(' | '));
    for (const row of rows) {
        const libuv = rows.find((other) => other.kind === 'libuv' &&
            other.message_size === row.message_size);
        const ratio = row.kind === 'io_uring' && libuv !== undefined
            ? `${(row.messages_per_s / libuv.messages_per_s).toFixed(2)}x msg/s, ` +
                `${(libuv.syscalls_per_message / row.syscalls_per_message).toFixed(1)}x ` +
                'fewer syscalls'
            : '';
        const size = row.message_size === message_size_max ? '1 MiB' : `${row.message_size} B`;
        console.log([size, row.kind, Math.round(row.messages_per_s).toString(),
            row.mib_per_s.toFixed(1), row.syscalls_per_message.toFixed(3),
            row.kind === 'io_uring' ? row.enters_per_message.toFixed(3) : '-',
            row.cpu_s.toFixed(2), ratio].join(' | '));
    }
}

if (process.argv[2] === '--child') {
    const [kind, message_size, total] = process.argv.slice(3);
    child_main(kind as EngineKind, Number(message_size), Number(total)).catch(
        (error: unknown) => {
            console.error(error);
            process.exit(1);
        });
} else {
    main();
}
