// Loads the C++ addon. A missing or broken binary is reported with the loader's original error and
// the steps that fix it, never swallowed: users of native packages lose most time on exactly this.
import assert from 'node:assert/strict';
import path from 'node:path';

/** An io_uring engine created by `engine_create` (a napi External); opaque to TypeScript. */
export type EngineHandle = { readonly __engine_handle: unique symbol };

/** The checksum implementations native/aegis.cc carries. */
export type ChecksumImplementationName = 'aes-ni' | 'portable';

/**
 * Everything the addon exports, with the exact argument and result types of each function:
 * native/addon.cc (`init`), native/aegis.cc (`aegis_register`) and native/engine.cc
 * (`engine_register`). Every caller goes through this one interface.
 */
export interface Binding {
    // native/addon.cc

    /** Bytes from the start of `view` to its next `alignment` boundary (a power of two). */
    arena_alignment_offset(view: Uint8Array, alignment: number): number;
    /** An exclusive, non-blocking flock(2) on `fd`: 0, or -errno (-EWOULDBLOCK when held). */
    file_lock(fd: number): number;

    // native/aegis.cc: throws RangeError for a range outside its array, TypeError for bad types.

    /** Writes the checksum of source[offset, +length) to target[target_offset, +16). */
    checksum_into(source: Uint8Array, offset: number, length: number, target: Uint8Array,
        target_offset: number): void;
    /** Whether the checksum of source[offset, +length) is expected[expected_offset, +16). */
    checksum_equal(source: Uint8Array, offset: number, length: number, expected: Uint8Array,
        expected_offset: number): boolean;
    checksum_implementation(): ChecksumImplementationName;
    /** Process-wide; throws when `name` is not available on this CPU. */
    checksum_select(name: ChecksumImplementationName | 'auto'): ChecksumImplementationName;
    checksum_aes_ni_supported(): boolean;

    // native/engine.cc: results below 0 are -errno.

    /**
     * Sets up a ring of `entries` slots over `control` (engine_control_size(entries) bytes) and
     * `arena` (4096-aligned): [handle | null on failure, setup result, IORING_FEAT_* bits,
     * register result (0 registered, 1 not asked, else -errno)].
     */
    engine_create(arena: Uint8Array, control: Uint8Array, entries: number, sqpoll: boolean,
        register_buffers: boolean): [EngineHandle | null, number, number, number];
    /** Loop mode: submits what is staged, waits for `wait_count` completions; returns drained. */
    engine_run_once(handle: EngineHandle, timeout_ms: number, wait_count: number): number;
    engine_submit(handle: EngineHandle): void;
    /** Tests only: the next `count` submitting enters fail with -EBUSY; returns deferrals. */
    engine_fault_enter_busy(handle: EngineHandle, count: number): number;
    /** Event-loop mode: `deliver` runs once per drain that produced completions. */
    engine_start(handle: EngineHandle, deliver: () => void): void;
    engine_arm(handle: EngineHandle): void;
    engine_destroy(handle: EngineHandle): void;
    /** The fd or -errno. */
    engine_file_open(path: string, direct: boolean, dsync: boolean, create: boolean,
        read_only: boolean): number;
    /** IPv4: the address in w0 (host order); IPv6: four words in network order. fd or -errno. */
    engine_socket_listen(family: 4 | 6, w0: number, w1: number, w2: number, w3: number,
        port: number, backlog: number): number;
    /** A new unconnected TCP socket (IPv4 when `family` is left out): fd or -errno. */
    engine_socket_create(family?: 4 | 6): number;
    /** The port or -errno. */
    engine_socket_local_port(fd: number): number;
    /** RLIMIT_MEMLOCK's soft limit in bytes, -1 for unlimited, or -errno. */
    engine_memlock_limit(): number;
    /** Creates and tears down a tiny ring: [0 | -errno, IORING_FEAT_* bits]. */
    engine_probe(): [number, number];
    /** Creates `file_path` with O_DIRECT, writes a block, removes it: [0 | -errno, step]. */
    engine_probe_direct_io(file_path: string): [number, 'open' | 'write'];
    /**
     * The control buffer's layout from native/engine_layout.h: name → offset, size or code.
     * Read and checked by lib/io/layout.ts, which is what everything else uses.
     */
    readonly engine_layout: Readonly<Record<string, unknown>>;
}

type BindingFunctionName = {
    [name in keyof Binding]: Binding[name] extends (...args: never[]) => unknown ? name : never;
}[keyof Binding];

// Every function of Binding, checked at load so that a stale or partial build fails naming what it
// lacks rather than with "not a function" at the first call. The Record type makes TypeScript
// reject a name missing here or one that Binding does not declare.
const binding_functions: Readonly<Record<BindingFunctionName, true>> = {
    arena_alignment_offset: true,
    file_lock: true,
    checksum_into: true,
    checksum_equal: true,
    checksum_implementation: true,
    checksum_select: true,
    checksum_aes_ni_supported: true,
    engine_create: true,
    engine_run_once: true,
    engine_submit: true,
    engine_fault_enter_busy: true,
    engine_start: true,
    engine_arm: true,
    engine_destroy: true,
    engine_file_open: true,
    engine_socket_listen: true,
    engine_socket_create: true,
    engine_socket_local_port: true,
    engine_memlock_limit: true,
    engine_probe: true,
    engine_probe_direct_io: true,
};

function binding_assert(loaded: unknown, candidate: string): asserts loaded is Binding {
    const rebuild = 'rebuild it (`npm run build:native`)';
    assert(typeof loaded === 'object' && loaded !== null, `${candidate}: not an addon`);
    const fields = loaded as Record<string, unknown>;
    for (const name of Object.keys(binding_functions)) {
        if (typeof fields[name] !== 'function') {
            throw new Error(`ringledger: the native addon ${candidate} lacks the function ` +
                `${name}; ${rebuild}`);
        }
    }
    if (typeof fields.engine_layout !== 'object' || fields.engine_layout === null) {
        throw new Error(`ringledger: the native addon ${candidate} lacks engine_layout; ` +
            rebuild);
    }
}

let binding_loaded: Binding | null = null;

/** scripts/native_target.js, shared with the install script (which runs before tsc). */
interface NativeTarget {
    target_name(): string;
    prebuild_path(target?: string): string;
    /** Why this machine's prebuild cannot run here (its glibc floor), or null. */
    prebuild_refusal(): string | null;
    prebuild_targets(): string[];
    source_build_paths(): string[];
    source_build_missing(): string[];
    source_build_fix(): string;
}

function native_target(): NativeTarget {
    const root = path.resolve(__dirname, '..', '..', '..');
    return require(path.join(root, 'scripts', 'native_target.js')) as NativeTarget;
}

/**
 * The addon to load, in order: a source build (what `npm rebuild` or a clone's `npm ci` made,
 * so it wins over a prebuild it replaced), then the prebuild for this platform, arch and libc,
 * unless its glibc floor is above this machine's glibc: that one is left out before any dlopen,
 * and why is pushed to `refusals`.
 */
export function binding_candidates(target: NativeTarget, refusals: string[]): string[] {
    const override = process.env.RINGLEDGER_ADDON_PATH;
    if (override !== undefined && override !== '') return [path.resolve(override)];
    const prebuild = target.prebuild_path();
    const refusal = target.prebuild_refusal();
    if (refusal === null) return [...target.source_build_paths(), prebuild];
    refusals.push(`  ${prebuild}: not loaded: ${refusal}`);
    return target.source_build_paths();
}

export function binding(): Binding {
    if (binding_loaded !== null) return binding_loaded;
    const target = native_target();
    const errors: string[] = [];
    const candidates = binding_candidates(target, errors);
    for (const candidate of candidates) {
        let loaded: unknown;
        try {
            loaded = require(candidate);
        } catch (error) {
            const code = (error as NodeJS.ErrnoException).code;
            // A file that is not there is not an error worth showing; one that fails to load is.
            if (code !== 'MODULE_NOT_FOUND') {
                errors.push(`  ${candidate}: ${(error as Error).message}`);
            }
            continue;
        }
        binding_assert(loaded, candidate);
        binding_loaded = loaded;
        return loaded;
    }
    throw new Error(binding_missing_message(target, errors));
}

/** What failed, what is missing and the one command that fixes it. */
export function binding_missing_message(target: NativeTarget, errors: readonly string[]): string {
    const name = target.target_name();
    const shipped = target.prebuild_targets();
    const lines = ['ringledger: the native addon could not be loaded.'];
    if (errors.length > 0) lines.push('These failed to load:', ...errors);
    lines.push(shipped.includes(name)
        ? `The prebuilt addon for ${name} did not load (above), and there is no source build.`
        : `No prebuilt addon fits ${name} (this package has: ` +
            `${shipped.length === 0 ? 'none' : shipped.join(', ')}), and there is no source ` +
            `build (${target.source_build_paths()[0]}).`);
    const missing = target.source_build_missing();
    if (missing.length > 0) {
        lines.push(`A source build needs what is missing: ${missing.join(', ')}.`);
    }
    const fix = missing.length > 0 ? target.source_build_fix() : 'npm rebuild ringledger';
    lines.push(`Fix: \`${fix}\` (pnpm 10 and Bun skip install scripts unless the package ` +
        'is allowed to run them).');
    return lines.join('\n');
}
