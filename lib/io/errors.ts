// I/O errors. An operation completes with a result >= 0 or with -errno; only when a caller decides
// that a failure must surface does it build an IoError (allocation on the error path only).
import os from 'node:os';

const errno_names: Map<number, string> = new Map(
    Object.entries(os.constants.errno).map(([name, value]) => [value, name]),
);

export function errno_name(errno: number): string {
    return errno_names.get(errno) ?? `E${errno}`;
}

export class IoError extends Error {
    /** Positive errno, as the kernel numbers it. */
    readonly errno: number;
    /** The errno's symbolic name, e.g. `ENOSPC`. */
    readonly code: string;
    /** The operation that failed, e.g. `write`. */
    readonly operation: string;
    /** The file path or socket address the operation was on. */
    readonly subject: string;

    constructor(result: number, operation: string, subject: string, hint?: string) {
        const errno = -result;
        const code = errno_name(errno);
        super(`${operation} ${subject}: ${code} (errno ${errno})` +
            (hint === undefined ? '' : `: ${hint}`));
        this.name = 'IoError';
        this.errno = errno;
        this.code = code;
        this.operation = operation;
        this.subject = subject;
    }
}
