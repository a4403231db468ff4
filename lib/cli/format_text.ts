// Small shared helpers for what the CLI prints: sizes, errors, and the --io flag.
import type { EngineKind } from '../io/engine';
import { UsageError } from './command';

export function bytes_text(bytes: number): string {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit += 1;
    }
    return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

/** An error's message without a stack (the CLI shows causes, not traces, for expected errors). */
export function error_text(error: unknown): string {
    return error instanceof Error ? error.message : String(error);
}

/**
 * What `format` and `start` add below a ProbeError's message (which names the cause and the
 * kernel or container fix): the flag that works without io_uring.
 */
export const io_uring_unavailable_advice = '  To run without io_uring, add --io=libuv (the libuv ' +
    'engine: the same data file format and protocol, more syscalls per operation).';

export function io_kind_parse(text: string | undefined): EngineKind {
    if (text === undefined || text === 'io_uring') return 'io_uring';
    if (text === 'libuv') return 'libuv';
    throw new UsageError(`--io must be io_uring or libuv, not "${text}"`);
}
