// Counting a child process's syscalls, shared by the benchmarks: perf's raw_syscalls:sys_enter
// tracepoint where perf works, else `strace -f -c`. Both follow every thread of the child.
import assert from 'node:assert/strict';
import child_process from 'node:child_process';
import fs from 'node:fs';

export const perf_available = child_process.spawnSync('perf', ['--version']).status === 0;

export const syscall_counter_name = perf_available ? 'perf raw_syscalls:sys_enter' : 'strace -f';

/** The command prefix that runs a child under the counter, writing its count to `count_file`. */
export function syscall_counter_command(count_file: string): string[] {
    return perf_available
        ? ['perf', 'stat', '-e', 'raw_syscalls:sys_enter', '-x,', '-o', count_file, '--']
        : ['strace', '-f', '-c', '-o', count_file, '--'];
}

/**
 * The command prefix that runs a child under perf with counting off until told: the child gets
 * fds 3 (perf reads `enable` and `disable` lines there) and 4 (perf answers `ack`), so that the
 * caller counts a window (a workload) rather than the child's startup and shutdown. Spawn it with
 * stdio ['ignore', 'pipe', 'pipe', 'pipe', 'pipe']; perf only (strace cannot be switched).
 */
export function syscall_counter_gated_command(count_file: string): string[] {
    assert.ok(perf_available, 'a gated syscall count needs perf (Debian: linux-perf)');
    return ['perf', 'stat', '-e', 'raw_syscalls:sys_enter', '-x,', '-o', count_file,
        '--control=fd:3,4', '--delay=-1', '--'];
}

/** The syscall count from the counter's output file. */
export function syscall_count_parse(text: string): number {
    return perf_available ? perf_count(text) : strace_count(text);
}

/** Runs `node args` under the counter; returns the child's stdout and its syscall count. */
export function node_run_counted(args: string[], count_file: string):
    { stdout: string; syscalls: number } {
    const counter = syscall_counter_command(count_file);
    const run = child_process.spawnSync(counter[0]!, [...counter.slice(1), process.execPath,
        ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (run.status !== 0) throw new Error(`child ${args.join(' ')} failed: ${run.status}`);
    const text = fs.readFileSync(count_file, 'utf8');
    fs.rmSync(count_file, { force: true });
    return { stdout: run.stdout, syscalls: syscall_count_parse(text) };
}

function perf_count(text: string): number {
    const line = text.split('\n').find((candidate) => candidate.includes('raw_syscalls'));
    assert.ok(line !== undefined, `perf output without a count: ${text}`);
    const count = Number(line.split(',')[0]);
    assert.ok(Number.isInteger(count), `perf could not count syscalls: ${line}`);
    return count;
}

function strace_count(text: string): number {
    const line = text.split('\n').find((candidate) => /\btotal\s*$/.test(candidate));
    assert.ok(line !== undefined, `strace output without a total: ${text}`);
    const columns = line.trim().split(/\s+/);
    return Number(columns[columns.length - 3]);
}
