// The cost of replication, in one run: `ringledger benchmark` (10,000 accounts, then a fixed count
// of transfers in batches of 8189, one batch in flight, no queries) against (a) a single replica
// and (b) a cluster of 3 on loopback, each on fresh data files in one temporary directory. Every
// replica is a `ringledger start` child under perf (bench/syscall_counter.ts), counting only while
// the benchmark runs: its client's connection and registration, the account batches and the
// transfer batches, and the replicas' 10 ms ticks meanwhile. Reported per setup and as
// cluster/single: throughput, batch latency p50 and p99, bytes the replicas sent per committed
// transfer (each bus's bytes_sent from its "stopped at op" line, summed over the replicas, from
// startup to stop) and syscalls per batch (account + transfer batches) on each replica.
// Every process is stopped and every file removed at the end, also on failure or Ctrl-C.
//
//   node dist/bench/cluster.js                    3,000,000 transfers per setup
//   node dist/bench/cluster.js --transfers=100000 a quick run
//   node dist/bench/cluster.js --logs             and every replica's log after the table
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { process_rss_bytes } from '../lib/cli/benchmark';
import { batch_events_max } from '../lib/ledger/constants';
import {
    perf_available, syscall_count_parse, syscall_counter_gated_command,
} from './syscall_counter';

const main_path = path.join(__dirname, '..', 'lib', 'cli', 'main.js');
const account_count = 10_000;
const account_batches = Math.ceil(account_count / batch_events_max);
const startup_timeout_ms = 120_000;
const control_timeout_ms = 10_000;
const cluster_settle_ms = 3_000;
/** The primary's pipeline: a backup this many ops behind at stop is merely in flight. */
const pipeline_ops_max = 8;
const clock_ticks_per_second = Number(child_process.execFileSync('getconf', ['CLK_TCK'],
    { encoding: 'utf8' }).trim());
assert.ok(Number.isInteger(clock_ticks_per_second) && clock_ticks_per_second > 0);
/** lib/cli/start.ts's last line: commits, requests dropped and the bus's bytes_sent. */
const stopped_pattern = new RegExp('stopped at op \\d+ \\((\\d+) commits, \\d+ replies, ' +
    '(\\d+) requests dropped, (\\d+) bytes sent\\)');

/** One `ringledger start` under perf: perf is our child, the replica perf's. */
class ReplicaProcess {
    readonly lines: string[] = [];
    readonly exited: Promise<void>;
    /** The replica's own pid (perf's child), once it listens; signals go there. */
    replica_pid = -1;
    private acks_pending = 0;
    private ack_waiter: (() => void) | null = null;

    constructor(readonly index: number, readonly counter: child_process.ChildProcess,
        readonly count_file: string) {
        this.exited = new Promise((resolve) => counter.once('close', () => resolve()));
        line_reader(counter.stdout!, (line) => this.lines.push(line));
        line_reader(counter.stderr!, (line) => this.lines.push(line));
        // perf writes "ack\n" with its C string's NUL: the next line starts with it.
        line_reader(counter.stdio[4] as NodeJS.ReadableStream, (line) => {
            assert.equal(line.replace(/^\0/, ''), 'ack', `perf answered "${line}"`);
            assert(this.acks_pending > 0);
            this.acks_pending -= 1;
            this.ack_waiter?.();
        });
    }

    get running(): boolean {
        return this.counter.exitCode === null && this.counter.signalCode === null;
    }

    /** Sends perf `enable` or `disable` and waits for its ack. */
    async control(command: 'enable' | 'disable'): Promise<void> {
        assert(this.running && this.acks_pending === 0);
        this.acks_pending = 1;
        const acked = new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(
                `replica ${this.index}: perf did not acknowledge ${command}`)), control_timeout_ms);
            this.ack_waiter = () => {
                clearTimeout(timer);
                resolve();
            };
        });
        (this.counter.stdio[3] as NodeJS.WritableStream).write(`${command}\n`);
        await acked;
        this.ack_waiter = null;
    }

    /** SIGKILL to the replica and to perf, for cleanup after a failure (synchronous). */
    kill(): void {
        // Before it listened, the replica's pid is only in perf's children: an orphaned replica
        // would hold its port and data file.
        if (this.replica_pid === -1 && this.running) this.replica_pid = perf_child_of(this.counter);
        for (const pid of [this.replica_pid, this.counter.pid ?? -1]) {
            if (pid <= 0) continue;
            try {
                process.kill(pid, 'SIGKILL');
            } catch {
                // Already gone.
            }
        }
    }
}

interface ReplicaFigures {
    index: number;
    primary: boolean;
    syscalls: number;
    bytes_sent: number;
    commits: number;
    requests_dropped: number;
    rss_peak_bytes: number;
    /** CPU seconds (user + system) while the benchmark ran. */
    cpu_seconds: number;
    /** A cluster replica's replication counters (lib/cli/start.ts), or ''. */
    cluster_counters: string;
    /** Every line the replica (and perf) printed. */
    lines: readonly string[];
}

interface SetupRow {
    name: string;
    replica_count: number;
    transfers_per_second: number;
    batch_count: number;
    transfer_seconds: number;
    /** The benchmark child's wall time: connection, registration, accounts, transfers. */
    benchmark_seconds: number;
    machine_busy_cores: number;
    p50_ms: number;
    p99_ms: number;
    replicas: ReplicaFigures[];
}

/** What is running or on disk, for cleanup on every path out (also exit and signals). */
const live = {
    directory: '',
    replicas: new Set<ReplicaProcess>(),
    benchmark: null as child_process.ChildProcess | null,
};

function cleanup_sync(): void {
    for (const replica of live.replicas) replica.kill();
    live.replicas.clear();
    if (live.benchmark !== null && live.benchmark.exitCode === null) live.benchmark.kill('SIGKILL');
    live.benchmark = null;
    if (live.directory !== '') fs.rmSync(live.directory, { recursive: true, force: true });
    live.directory = '';
}

function line_reader(stream: NodeJS.ReadableStream, on_line: (line: string) => void): void {
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
        pending += chunk.toString();
        let newline = pending.indexOf('\n');
        while (newline !== -1) {
            on_line(pending.slice(0, newline));
            pending = pending.slice(newline + 1);
            newline = pending.indexOf('\n');
        }
    });
}

/** A port that was free a moment ago (bound to 0, then released). */
async function port_free(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}

function format(file: string, replica: number, replica_count: number,
    transfer_count: number): void {
    const run = child_process.spawnSync(process.execPath, [main_path, 'format', '--cluster=0',
        `--replica=${replica}`, `--replica-count=${replica_count}`,
        `--accounts-max=${Math.max(100_000, account_count)}`,
        `--transfers-max=${Math.max(1_000_000, transfer_count)}`, file], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`format ${file} failed:\n${run.stdout}${run.stderr}`);
}

/** Polls `done` every 20 ms until it holds; throws `what` after timeout_ms. */
async function until(done: () => boolean, timeout_ms: number, what: () => string) {
    const deadline = Date.now() + timeout_ms;
    while (!done()) {
        if (Date.now() > deadline) throw new Error(what());
        await new Promise((resolve) => setTimeout(resolve, 20));
    }
}

/** Starts `ringledger start` under the gated counter (replica_listening waits for it). */
function replica_start(index: number, addresses: string, file: string): ReplicaProcess {
    const count_file = `${file}.syscalls`;
    const counter_args = syscall_counter_gated_command(count_file);
    const counter = child_process.spawn(counter_args[0]!, [...counter_args.slice(1),
        process.execPath, main_path, 'start', `--addresses=${addresses}`, file],
    { stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] });
    const replica = new ReplicaProcess(index, counter, count_file);
    live.replicas.add(replica);
    return replica;
}

/** Waits for the replica to listen; learns its pid (perf's only child). */
async function replica_listening(replica: ReplicaProcess): Promise<void> {
    const counter = replica.counter;
    const log = (): string => `replica ${replica.index}:\n${replica.lines.join('\n')}`;
    await until(() => !replica.running ||
        replica.lines.some((line) => line.includes('listening on')), startup_timeout_ms,
    () => `did not start listening in time: ${log()}`);
    if (!replica.running) throw new Error(`exited before listening: ${log()}`);
    replica.replica_pid = perf_child_of(counter);
    assert(replica.replica_pid > 0, 'perf runs one child: the replica');
}

/** perf's one child (the replica), or -1 when it has none (yet, or any more). */
function perf_child_of(counter: child_process.ChildProcess): number {
    let text: string;
    try {
        text = fs.readFileSync(`/proc/${counter.pid}/task/${counter.pid}/children`, 'utf8');
    } catch {
        return -1; // perf has exited.
    }
    const children = text.trim().split(/\s+/).filter((word) => word !== '').map(Number);
    assert(children.length <= 1, 'perf runs one child: the replica');
    return children.length === 1 ? children[0]! : -1;
}

/**
 * Until the cluster can run the workload on all its replicas: a primary, every replica
 * connected to every other, then a settle of 3 ping periods (1 s each), in which a replica that
 * came up after the others formed a view hears of it from their pings and joins it at op 0.
 * (It logs nothing when it does.) A replica that joins behind the log must repair first, and
 * under load it may never catch up: the table would then show a cluster of 2 dragging a third.
 */
async function cluster_ready(replicas: readonly ReplicaProcess[]): Promise<void> {
    const peers = replicas.length - 1;
    const dialled = (replica: ReplicaProcess): number =>
        replica.lines.filter((line) => line.includes('bus: connected to replica')).length;
    await until(() => primary_of(replicas) !== -1 &&
        replicas.every((replica) => dialled(replica) >= peers), startup_timeout_ms,
    () => `no primary, or a replica not connected to every other, in time:\n` +
        replicas.map((replica) => replica.lines.join('\n')).join('\n'));
    await new Promise((resolve) => setTimeout(resolve, cluster_settle_ms));
}

/** The replica that last logged becoming primary, of the highest view; -1 when none did. */
function primary_of(replicas: readonly ReplicaProcess[]): number {
    let primary = -1;
    let primary_view = -1;
    for (const replica of replicas) {
        for (const line of replica.lines) {
            const match = /primary of view (\d+)/.exec(line);
            if (match !== null && Number(match[1]) > primary_view) {
                primary_view = Number(match[1]);
                primary = replica.index;
            }
        }
    }
    return primary;
}

/** Runs `ringledger benchmark` against the addresses; returns its stdout. */
async function benchmark_child(addresses: string, transfer_count: number): Promise<string> {
    const child = child_process.spawn(process.execPath, [main_path, 'benchmark',
        `--addresses=${addresses}`, `--account-count=${account_count}`,
        `--transfer-count=${transfer_count}`, '--query-count=0'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
    live.benchmark = child;
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    live.benchmark = null;
    if (code !== 0) throw new Error(`ringledger benchmark exited with ${code}:\n${output}`);
    return output;
}

/** The benchmark's output, or an error as soon as a replica exits (the client would wait). */
async function benchmark_or_replica_lost(replicas: readonly ReplicaProcess[], addresses: string,
    transfer_count: number): Promise<string> {
    let measuring = true;
    const replica_lost = new Promise<never>((_, reject) => {
        for (const replica of replicas) {
            void replica.exited.then(() => {
                if (!measuring) return;
                reject(new Error(`replica ${replica.index} exited during the benchmark:\n` +
                    replica.lines.join('\n')));
            });
        }
    });
    try {
        return await Promise.race([benchmark_child(addresses, transfer_count), replica_lost]);
    } finally {
        measuring = false;
    }
}

/** A number from the first line of `text` that `pattern` matches (group 1). */
function figure(text: string, pattern: RegExp, what: string): number {
    const match = pattern.exec(text);
    assert.ok(match !== null, `no ${what} in:\n${text}`);
    const value = Number(match[1]);
    assert.ok(Number.isFinite(value), `${what}: ${match[1]}`);
    return value;
}

/** SIGTERM, the exit, and what the replica and perf reported. */
async function replica_stop(replica: ReplicaProcess, primary: number,
    cpu_seconds: number): Promise<ReplicaFigures> {
    const rss_peak_bytes = process_rss_bytes(replica.replica_pid).peak;
    process.kill(replica.replica_pid, 'SIGTERM');
    await Promise.race([replica.exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    if (replica.running) throw new Error(`replica ${replica.index} did not stop on SIGTERM`);
    live.replicas.delete(replica);
    const log = replica.lines.join('\n');
    const stopped = stopped_pattern.exec(log);
    assert.ok(stopped !== null, `replica ${replica.index} did not report its stop:\n${log}`);
    const syscalls = syscall_count_parse(fs.readFileSync(replica.count_file, 'utf8'));
    return {
        index: replica.index, primary: replica.index === primary, syscalls,
        commits: Number(stopped[1]), requests_dropped: Number(stopped[2]),
        bytes_sent: Number(stopped[3]), rss_peak_bytes, cpu_seconds, lines: replica.lines,
        cluster_counters: /ringledger: cluster: (.*)$/m.exec(log)?.[1] ?? '',
    };
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
function cpu_seconds(pid: number): number {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command name's ")": field 3 (state) on, so utime (14) and stime (15) are 11, 12.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    assert.ok(Number.isInteger(ticks) && ticks >= 0, `/proc/${pid}/stat: ${stat}`);
    return ticks / clock_ticks_per_second;
}

/** The machine's CPU time so far, busy (not idle, not waiting for I/O) and in all, in ticks. */
function machine_ticks(): { busy: number; total: number } {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const ticks = line.trim().split(/\s+/).slice(1).map(Number);
    const total = ticks.reduce((sum, value) => sum + value, 0);
    // user nice system idle iowait ...: idle and iowait are the CPU doing nothing.
    return { busy: total - ticks[3]! - ticks[4]!, total };
}

interface Window {
    output: string;
    seconds: number;
    /** Per replica index, the CPU seconds it used in the window. */
    cpu_seconds: number[];
    /** Cores busy on average in the window, whatever ran on them (the machine is shared). */
    machine_busy_cores: number;
}

/** Counts syscalls and CPU on every replica while `ringledger benchmark` runs. */
async function window_measure(replicas: readonly ReplicaProcess[], addresses: string,
    transfer_count: number): Promise<Window> {
    for (const replica of replicas) await replica.control('enable');
    const cpu_before = replicas.map((replica) => cpu_seconds(replica.replica_pid));
    const machine_before = machine_ticks();
    const started_ms = Date.now();
    const output = await benchmark_or_replica_lost(replicas, addresses, transfer_count);
    const seconds = (Date.now() - started_ms) / 1000;
    const machine_after = machine_ticks();
    const cpu = replicas.map((replica, index) =>
        cpu_seconds(replica.replica_pid) - cpu_before[index]!);
    for (const replica of replicas) await replica.control('disable');
    const cores = os.cpus().length;
    const machine_busy_cores = cores * (machine_after.busy - machine_before.busy) /
        Math.max(1, machine_after.total - machine_before.total);
    return { output, seconds, cpu_seconds: cpu, machine_busy_cores };
}

/** Formats, starts, waits for a primary, counts the benchmark, stops: one row of the table. */
async function setup_run(name: string, replica_count: number,
    transfer_count: number): Promise<SetupRow> {
    const directory = path.join(live.directory, `replicas_${replica_count}`);
    fs.mkdirSync(directory);
    const files: string[] = [];
    const ports: number[] = [];
    for (let index = 0; index < replica_count; index++) {
        files.push(path.join(directory, `0_${index}.ringledger`));
        format(files[index]!, index, replica_count, transfer_count);
        ports.push(await port_free());
    }
    const addresses = ports.map((port) => `127.0.0.1:${port}`).join(',');
    const replicas: ReplicaProcess[] = [];
    try {
        // All at once, so that every replica is there when the first view forms.
        for (let index = 0; index < replica_count; index++) {
            replicas.push(replica_start(index, addresses, files[index]!));
        }
        for (const replica of replicas) await replica_listening(replica);
        // A single replica serves as soon as it listens.
        if (replica_count > 1) await cluster_ready(replicas);
        const window = await window_measure(replicas, addresses, transfer_count);
        const output = window.output;
        const primary = replica_count === 1 ? 0 : primary_of(replicas);
        const figures: ReplicaFigures[] = [];
        for (const replica of replicas) {
            figures.push(await replica_stop(replica, primary, window.cpu_seconds[replica.index]!));
        }
        return {
            name, replica_count, replicas: figures, benchmark_seconds: window.seconds,
            machine_busy_cores: window.machine_busy_cores,
            batch_count: figure(output, /^(\d+) batches in/m, 'batch count'),
            transfer_seconds: figure(output, /batches in ([\d.]+) s/, 'transfer seconds'),
            transfers_per_second: figure(output, /load accepted = (\d+) tx\/s/, 'throughput'),
            p50_ms: figure(output, /batch latency p50 = (\d+) ms/, 'p50'),
            p99_ms: figure(output, /batch latency p99 = (\d+) ms/, 'p99'),
        };
    } finally {
        // On success every replica has stopped; after a failure the rest are killed.
        for (const replica of replicas) {
            if (!live.replicas.has(replica)) continue;
            replica.kill();
            live.replicas.delete(replica);
            await replica.exited;
        }
        fs.rmSync(directory, { recursive: true, force: true });
    }
}

function bytes_per_transfer(row: SetupRow, transfer_count: number): number {
    return row.replicas.reduce((sum, replica) => sum + replica.bytes_sent, 0) / transfer_count;
}

function syscalls_per_batch(row: SetupRow, replica: ReplicaFigures): number {
    return replica.syscalls / (row.batch_count + account_batches);
}

function syscalls_per_batch_all(row: SetupRow): number {
    return row.replicas.reduce((sum, replica) => sum + syscalls_per_batch(row, replica), 0);
}

function ratio(cluster: number, single: number): string {
    return single > 0 ? `${(cluster / single).toFixed(2)}×` : 'n/a';
}

function replica_name(replica: ReplicaFigures, replica_count: number): string {
    if (replica_count === 1) return `r${replica.index}`;
    return `r${replica.index}${replica.primary ? ' (primary)' : ''}`;
}

function table_print(transfer_count: number, single: SetupRow, cluster: SetupRow): void {
    console.log(`${transfer_count} transfers in batches of ${batch_events_max} after ` +
        `${account_count} accounts (${account_batches} batches), one batch in flight, ` +
        'io_uring, loopback; replica syscalls counted by perf while the benchmark runs\n');
    console.log('| setup | tx/s | batch p50 | batch p99 | bytes sent/transfer (all replicas) | ' +
        'syscalls/batch (all replicas) | syscalls/batch per replica |');
    console.log('|---|---|---|---|---|---|---|');
    for (const row of [single, cluster]) {
        const each = row.replicas.map((replica) => `${replica_name(replica, row.replica_count)} ` +
            syscalls_per_batch(row, replica).toFixed(1)).join(', ');
        console.log(`| ${row.name} | ${row.transfers_per_second} | ${row.p50_ms} ms | ` +
            `${row.p99_ms} ms | ${bytes_per_transfer(row, transfer_count).toFixed(2)} | ` +
            `${syscalls_per_batch_all(row).toFixed(1)} | ${each} |`);
    }
    const primary = cluster.replicas.find((replica) => replica.primary)!;
    console.log(`| cluster / single | ` +
        `${ratio(cluster.transfers_per_second, single.transfers_per_second)} | ` +
        `${ratio(cluster.p50_ms, single.p50_ms)} | ${ratio(cluster.p99_ms, single.p99_ms)} | ` +
        `${ratio(bytes_per_transfer(cluster, transfer_count),
            bytes_per_transfer(single, transfer_count))} | ` +
        `${ratio(syscalls_per_batch_all(cluster), syscalls_per_batch_all(single))} | ` +
        `primary ${ratio(syscalls_per_batch(cluster, primary),
            syscalls_per_batch(single, single.replicas[0]!))} |`);
    console.log('');
    for (const row of [single, cluster]) {
        console.log(`${row.name}: ${row.batch_count} transfer batches in ` +
            `${row.transfer_seconds} s; the benchmark (connect, register, accounts, transfers) ` +
            `${row.benchmark_seconds.toFixed(2)} s, the machine ` +
            `${row.machine_busy_cores.toFixed(2)} of ${os.cpus().length} cores busy meanwhile`);
        for (const replica of row.replicas) {
            const busy = replica.cpu_seconds / row.benchmark_seconds;
            console.log(`  ${replica_name(replica, row.replica_count)}: ` +
                `${replica.bytes_sent} bytes sent, ${replica.commits} commits, ` +
                `${replica.requests_dropped} requests dropped, ${replica.syscalls} syscalls ` +
                `(${(replica.syscalls / row.benchmark_seconds).toFixed(0)}/s), cpu ` +
                `${replica.cpu_seconds.toFixed(2)} s (${(busy * 100).toFixed(0)}% of a core), ` +
                `rss peak ${(replica.rss_peak_bytes / 2 ** 20).toFixed(0)} MiB`);
            if (replica.cluster_counters !== '') console.log(`    ${replica.cluster_counters}`);
        }
    }
}

/** A backup further behind the primary at stop than a pipeline (8 ops) did not keep up. */
function lag_notes(row: SetupRow): void {
    const primary = row.replicas.find((replica) => replica.primary)!;
    for (const replica of row.replicas) {
        if (replica.primary || replica.commits + pipeline_ops_max >= primary.commits) continue;
        const acks = /(\d+) prepare_oks sent/.exec(replica.cluster_counters)?.[1] ?? '?';
        console.log(`note: ${replica_name(replica, row.replica_count)} had committed ` +
            `${replica.commits} of the primary's ${primary.commits} ops at stop and sent ${acks} ` +
            'prepare_oks: it fell behind (repairing), and the others made the quorum without it');
    }
}

function logs_print(rows: readonly SetupRow[]): void {
    for (const row of rows) {
        for (const replica of row.replicas) {
            console.log(`\n--- ${row.name}, ${replica_name(replica, row.replica_count)}`);
            for (const line of replica.lines) console.log(line);
        }
    }
}

function flag_number(name: string, fallback: number): number {
    const flag = process.argv.find((argument) => argument.startsWith(`--${name}=`));
    if (flag === undefined) return fallback;
    const value = Number(flag.slice(name.length + 3));
    assert.ok(Number.isInteger(value) && value > 0, `--${name} must be a positive integer`);
    return value;
}

async function main(): Promise<void> {
    assert.ok(perf_available, 'bench/cluster needs perf (Debian: linux-perf) to count syscalls');
    for (const argument of process.argv.slice(2)) {
        assert.ok(argument.startsWith('--transfers=') || argument === '--logs',
            `unknown argument ${argument}; usage: node dist/bench/cluster.js [--transfers=<n>] ` +
            '[--logs]');
    }
    const transfer_count = flag_number('transfers', 3_000_000);
    live.directory = fs.mkdtempSync(path.join(os.tmpdir(), 'ringledger-bench-cluster-'));
    process.once('exit', cleanup_sync);
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        process.once(signal, () => {
            cleanup_sync();
            process.exit(130);
        });
    }
    try {
        const single = await setup_run('single replica', 1, transfer_count);
        const cluster = await setup_run('cluster of 3', 3, transfer_count);
        table_print(transfer_count, single, cluster);
        lag_notes(cluster);
        if (process.argv.includes('--logs')) logs_print([single, cluster]);
    } finally {
        cleanup_sync();
    }
}

main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
});
