// Finds out, before anything depends on it, whether io_uring and O_DIRECT work here, and turns each
// way they fail into an error that names the cause and the fix. Callers catch
// ERR_IO_URING_UNAVAILABLE to fall back to the libuv engine.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { binding } from './binding';
import type { Binding } from './binding';
import { errno_name } from './errors';

export const io_uring_feature_ext_arg = 1 << 8;
const io_uring_disabled_path = '/proc/sys/kernel/io_uring_disabled';

export class ProbeError extends Error {
    readonly code: string;
    readonly errno: number;

    constructor(code: string, errno: number, message: string) {
        super(message);
        this.name = 'ProbeError';
        this.code = code;
        this.errno = errno;
    }
}

/**
 * The addon calls the probes make. Tests pass their own to simulate hosts where io_uring or
 * O_DIRECT fails (a seccomp profile, an old kernel, a filesystem without O_DIRECT).
 */
export type ProbeBinding = Pick<Binding, 'engine_probe' | 'engine_probe_direct_io'>;

function probe_binding(): ProbeBinding {
    return binding();
}

/** Reads kernel.io_uring_disabled (Linux 6.6+): 0 on, 1 group-restricted, 2 off; null absent. */
export function io_uring_disabled_sysctl(): number | null {
    try {
        const value = Number.parseInt(fs.readFileSync(io_uring_disabled_path, 'utf8').trim(), 10);
        return Number.isNaN(value) ? null : value;
    } catch {
        return null;
    }
}

/** [major, minor] of a kernel release string such as '6.18.44-fc' or '5.10.0-28-amd64'. */
export function kernel_version(release: string): [number, number] {
    const match = /^(\d+)\.(\d+)/.exec(release);
    return match === null ? [0, 0] : [Number(match[1]), Number(match[2])];
}

/**
 * Why a ring's memory could not be had: before Linux 5.12 rings are charged to RLIMIT_MEMLOCK,
 * from 5.12 on to the memory cgroup, so the cause and the fix depend on the running kernel.
 */
function ring_memory_cause(release: string): string {
    const [major, minor] = kernel_version(release);
    if (major < 5 || (major === 5 && minor < 12)) {
        return `the locked-memory limit is too small for the ring (Linux ${release} charges ` +
            'rings to RLIMIT_MEMLOCK, as kernels before 5.12 do). Fix: raise `ulimit -l`, or ' +
            'LimitMEMLOCK= in the systemd unit.';
    }
    return `the kernel could not allocate the ring's memory (Linux ${release} charges rings ` +
        'to the memory cgroup, not to the locked-memory limit): this machine or this ' +
        'container is out of memory. Fix: free memory, or raise the container\'s memory limit.';
}

/**
 * Explains an io_uring_queue_init failure (`result` is -errno) with its cause and fix.
 * `disabled` is kernel.io_uring_disabled (read from /proc unless given), `release` the running
 * kernel's (os.release() unless given).
 */
export function io_uring_setup_error(result: number,
    disabled: number | null = io_uring_disabled_sysctl(),
    release: string = os.release()): ProbeError {
    assert(Number.isInteger(result) && result < 0);
    const errno = -result;
    const name = errno_name(errno);
    const prefix = `io_uring is not available (io_uring_setup: ${name}): `;
    let cause: string;
    if (name === 'EPERM' || name === 'EACCES') {
        if (disabled === 2) {
            cause = 'it is disabled by sysctl (kernel.io_uring_disabled = 2). Fix: ' +
                '`sysctl -w kernel.io_uring_disabled=0`.';
        } else if (disabled === 1) {
            cause = 'kernel.io_uring_disabled = 1 restricts it to CAP_SYS_ADMIN and the group ' +
                'in kernel.io_uring_group. Fix: `sysctl -w kernel.io_uring_disabled=0` or add ' +
                'this user to that group.';
        } else {
            cause = 'the syscall is most likely blocked by seccomp (Docker\'s default profile ' +
                'blocks io_uring). Fix: run the container with `--security-opt ' +
                'seccomp=unconfined` or a custom profile that allows io_uring_setup, ' +
                'io_uring_enter and io_uring_register.';
        }
    } else if (name === 'ENOSYS') {
        cause = 'the kernel is too old or was built without CONFIG_IO_URING, or a seccomp ' +
            'profile answers ENOSYS for io_uring_setup. Fix: Linux 5.11 or newer with ' +
            'io_uring enabled, and a seccomp profile that allows io_uring_setup, ' +
            'io_uring_enter and io_uring_register.';
    } else if (name === 'ENOMEM') {
        cause = ring_memory_cause(release);
    } else {
        cause = 'unexpected error from the kernel.';
    }
    return new ProbeError('ERR_IO_URING_UNAVAILABLE', errno,
        prefix + cause + ' Or use the libuv engine.');
}

export function io_uring_features_error(features: number): ProbeError | null {
    if ((features & io_uring_feature_ext_arg) !== 0) return null;
    return new ProbeError('ERR_IO_URING_UNAVAILABLE', 0,
        'io_uring is too old here: IORING_FEAT_EXT_ARG (Linux 5.11) is missing, and the engine ' +
            'needs it to wait with a timeout in one io_uring_enter. Fix: Linux 5.11 or newer, ' +
            'or use the libuv engine.');
}

/** Throws ProbeError (code ERR_IO_URING_UNAVAILABLE) unless a usable ring can be created. */
export function probe_io_uring(native: ProbeBinding = probe_binding(),
    disabled: number | null = io_uring_disabled_sysctl(), release: string = os.release()): void {
    const [result, features] = native.engine_probe();
    if (result < 0) throw io_uring_setup_error(result, disabled, release);
    const error = io_uring_features_error(features);
    if (error !== null) throw error;
}

export interface DirectIoProbe {
    supported: boolean;
    /** Why not, with the fix; empty when supported. */
    message: string;
}

/**
 * Why an O_DIRECT open or write fails with EINVAL, and the fix. tmpfs before Linux 6.6, ramfs and
 * some overlayfs setups refuse O_DIRECT with EINVAL. Both engines' file_open use it too.
 */
export const direct_io_unsupported_hint = 'the filesystem does not support O_DIRECT (ramfs, ' +
    'tmpfs before Linux 6.6 and some overlayfs setups do not). Fix: put the data file on ext4, ' +
    'xfs or btrfs, e.g. a host volume in a container.';

/**
 * A filesystem without O_DIRECT (ramfs) creates the file before it refuses the flag with EINVAL.
 * After an O_CREAT | O_EXCL open, the file can only be the one this open made: remove it, so
 * that a retry on a suitable filesystem or without O_DIRECT does not meet EEXIST.
 */
export function direct_io_refused_unlink(file_path: string): void {
    fs.rmSync(file_path, { force: true });
}

/** Tells whether O_DIRECT works on the filesystem holding `path_dir`. */
export function probe_direct_io(path_dir: string,
    native: ProbeBinding = probe_binding()): DirectIoProbe {
    const file_path = path.join(path_dir, `.ringledger-direct-io-probe-${process.pid}`);
    const [result, step] = native.engine_probe_direct_io(file_path);
    assert(Number.isInteger(result) && result <= 0);
    if (result === 0) return { supported: true, message: '' };
    return { supported: false, message: direct_io_message(path_dir, result, step) };
}

/** Explains a failed O_DIRECT probe step (`result` is -errno) with its fix. */
export function direct_io_message(path_dir: string, result: number, step: string): string {
    const name = errno_name(-result);
    const hint = name === 'EINVAL' ? direct_io_unsupported_hint
        : 'check that the directory exists and is writable.';
    return `O_DIRECT ${step} in ${path_dir}: ${name}: ${hint}`;
}
