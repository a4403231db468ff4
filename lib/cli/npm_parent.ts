// `npx ringledger start ... &` then `kill $!` signals npm, not the server: npm exec runs the bin
// under `sh -c`, and neither passes SIGTERM on, so the server was left serving, holding the port
// and the data file's lock, with nobody to stop it. When started by npm (exec, npx or a script),
// the server watches npm and the shell between, and stops as on SIGTERM once one of them is gone.
// Started in any other way (the bin run directly, nohup, systemd) nothing is watched, so a
// deliberately detached server keeps running.
import assert from 'node:assert/strict';
import fs from 'node:fs';

/** A process and its start time (field 22 of /proc/<pid>/stat), so a reused pid is not it. */
export interface ProcessIdentity {
    pid: number;
    start_ticks: string;
    command: string;
}

const ancestors_max = 6;
const watch_interval_ms = 500;

function process_identity(pid: number): ProcessIdentity | null {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        // The command name is in parentheses and may hold spaces: fields start after the last ')'.
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
        return { pid, start_ticks: fields[19]!, command: command.trim() };
    } catch {
        return null;
    }
}

function parent_of(pid: number): number {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

function is_npm(command: string): boolean {
    return /(^|\/)(npm|npx)(\s|$)|npm-cli\.js|npx-cli\.js|(^|\s)npm exec(\s|$)/.test(command);
}

/**
 * The processes from our parent up to the npm that started us (npm included), or [] when npm is
 * not among our nearest ancestors or the environment says npm did not start us.
 */
export function npm_ancestors(environment: NodeJS.ProcessEnv = process.env,
    self: number = process.pid): ProcessIdentity[] {
    if (environment.npm_command === undefined && environment.npm_lifecycle_event === undefined) {
        return [];
    }
    const chain: ProcessIdentity[] = [];
    let pid = self;
    for (let level = 0; level < ancestors_max; level++) {
        try {
            pid = parent_of(pid);
        } catch {
            return [];
        }
        if (pid <= 1) return [];
        const identity = process_identity(pid);
        if (identity === null) return [];
        chain.push(identity);
        if (is_npm(identity.command)) return chain;
    }
    return [];
}

/**
 * Whether `identity` still runs (same pid, same start time). Only a /proc entry that is gone
 * (ENOENT, ESRCH) or names another process says it ended: any other failure to read it (EMFILE
 * when the server is out of descriptors, seen in CI) says nothing, and the watch asks again.
 */
export function process_alive(identity: ProcessIdentity): boolean {
    let stat: string;
    try {
        stat = fs.readFileSync(`/proc/${identity.pid}/stat`, 'utf8');
    } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        return code !== 'ENOENT' && code !== 'ESRCH';
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] === identity.start_ticks;
}

/**
 * Calls `on_gone` once, with the first process of `chain` that ended. Returns the function that
 * stops watching. The timer does not keep the process alive.
 */
export function ancestors_watch(chain: readonly ProcessIdentity[],
    on_gone: (gone: ProcessIdentity) => void): () => void {
    if (chain.length === 0) return () => undefined;
    assert(chain.every((identity) => identity.pid > 1));
    const timer = setInterval(() => {
        const gone = chain.find((identity) => !process_alive(identity));
        if (gone === undefined) return;
        clearInterval(timer);
        on_gone(gone);
    }, watch_interval_ms);
    timer.unref();
    return () => clearInterval(timer);
}
