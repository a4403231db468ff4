// Test helper: formats a data file under .test-data/ and runs `ringledger start` on it as a child
// process, the way a user would (tests only; allocates freely).
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const root = path.resolve(__dirname, '..', '..');
export const cli_main = path.join(root, 'dist', 'lib', 'cli', 'main.js');
export const test_data = path.join(root, '.test-data');

// Every child a test starts is killed when the test process exits, also when a test timed out
// and its finally block never ran: a leftover server would keep the runner waiting forever.
const children_running = new Set<child_process.ChildProcess>();
process.on('exit', () => {
    for (const child of children_running) child.kill('SIGKILL');
});

export function children_track<Child extends child_process.ChildProcess>(child: Child): Child {
    children_running.add(child);
    child.once('exit', () => children_running.delete(child));
    return child;
}

/** A port that was free a moment ago (bound to 0, then released). */
export async function port_free(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
}

/** A fresh data file path under .test-data/ (removed first, with its lock). */
export function data_file_path(name: string): string {
    fs.mkdirSync(test_data, { recursive: true });
    const file = path.join(test_data, `${name}-${process.pid}.ringledger`);
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.lock`, { force: true });
    return file;
}

/** Runs the CLI to its end; `node_args` go before the script (e.g. `-r` a preload). */
export function cli_run(args: string[], node_args: string[] = []):
    { status: number; stdout: string; stderr: string } {
    const result = child_process.spawnSync(process.execPath, [...node_args, cli_main, ...args],
        { encoding: 'utf8', timeout: 60_000 });
    return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

export function format_data_file(file: string, extra: string[] = []): void {
    const result = cli_run(['format', '--cluster=0', '--replica=0', '--replica-count=1',
        ...extra, file]);
    assert.equal(result.status, 0, result.stderr);
}

export class ServerProcess {
    readonly child: child_process.ChildProcess;
    readonly port: number;
    stdout = '';
    stderr = '';
    private readonly exited: Promise<number | null>;

    private constructor(child: child_process.ChildProcess, port: number) {
        this.child = child;
        this.port = port;
        child.stdout!.setEncoding('utf8');
        child.stderr!.setEncoding('utf8');
        child.stdout!.on('data', (chunk: string) => { this.stdout += chunk; });
        child.stderr!.on('data', (chunk: string) => { this.stderr += chunk; });
        this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    }

    /**
     * Starts `ringledger start` and waits for it to listen; with descriptors_max, under that
     * `ulimit -n` (set by a shell that then execs the server, so the pid is the server's).
     */
    static async start(file: string, port: number, extra: string[] = [],
        descriptors_max = 0): Promise<ServerProcess> {
        return ServerProcess.start_addresses(file, String(port), extra, descriptors_max);
    }

    /** As `start`, with `--addresses` as given (a host name, an [IPv6]:port, ...). */
    static async start_addresses(file: string, addresses: string, extra: string[] = [],
        descriptors_max = 0): Promise<ServerProcess> {
        // A cluster's list: the port of the first address (only for tests that use one).
        const first = addresses.split(',')[0]!;
        const port = Number(first.slice(first.lastIndexOf(':') + 1));
        const args = [cli_main, 'start', `--addresses=${addresses}`, ...extra, file];
        const child = children_track(descriptors_max === 0 ?
            child_process.spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }) :
            child_process.spawn('/bin/sh', ['-c', `ulimit -n ${descriptors_max} && exec "$0" "$@"`,
                process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
        const server = new ServerProcess(child, port);
        const deadline = Date.now() + 60_000;
        while (!server.stdout.includes('listening on')) {
            if (child.exitCode !== null || Date.now() > deadline) {
                throw new Error(`server did not start:\n${server.stdout}\n${server.stderr}`);
            }
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        return server;
    }

    /** SIGTERM (or another signal) and the exit code. */
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
        if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
        return this.exited;
    }

    async kill(): Promise<void> {
        this.child.kill('SIGKILL');
        await this.exited;
    }
}

/** Runs a script of the official client against a port; resolves with its output and code. */
export function official_client_run(script: string, port: number, timeout_ms: number,
    addresses = String(port)): Promise<{ code: number | null; output: string }> {
    const client_dir = path.join(root, 'node_modules', 'tigerbeetle-node', 'dist');
    return new Promise((resolve) => {
        const child = children_track(child_process.spawn(process.execPath,
            [path.join(client_dir, script)], {
                env: { ...process.env, TB_ADDRESS: addresses },
                stdio: ['ignore', 'pipe', 'pipe'],
            }));
        let output = '';
        child.stdout.setEncoding('utf8');
        child.stderr.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => { output += chunk; });
        child.stderr.on('data', (chunk: string) => { output += chunk; });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeout_ms);
        child.once('exit', (code) => {
            clearTimeout(timer);
            resolve({ code, output });
        });
    });
}

/**
 * Starts test/official_load.ts (the official client under load) as a child process. The load
 * stops at duration_ms or at transfers_max transfers, whichever comes first.
 */
export function load_start(port: number, duration_ms: number, base: number, transfers_max: number,
    addresses = String(port), pause_ms = 0):
    { done: Promise<{ code: number | null; output: string }>; child: child_process.ChildProcess } {
    const child = children_track(child_process.spawn(process.execPath,
        [path.join(root, 'dist', 'test', 'official_load.js'), addresses, String(duration_ms),
            String(base), String(transfers_max), String(pause_ms)],
        { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => { output += chunk; });
    child.stderr!.resume(); // The client logs reconnection warnings while the server is down.
    const done = new Promise<{ code: number | null; output: string }>((resolve) =>
        child.once('exit', (code) => resolve({ code, output })));
    return { done, child };
}
