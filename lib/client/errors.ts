// Errors a request can fail with. The first five codes and their messages are tigerbeetle-node
// 0.17.9's; the others exist because this client can also give up on a request (a timeout or an
// AbortSignal), bounds its queue, and refuses a reply it cannot decode instead of aborting the
// process as the Zig client does (docs/wire-protocol.md §8).

import { errno_name } from '../io/errors';

export const ErrorCodes = {
    ERR_CLIENT_CLOSED: 'ERR_CLIENT_CLOSED',
    ERR_CLIENT_EVICTED: 'ERR_CLIENT_EVICTED',
    ERR_CLIENT_RELEASE_TOO_LOW: 'ERR_CLIENT_RELEASE_TOO_LOW',
    ERR_CLIENT_RELEASE_TOO_HIGH: 'ERR_CLIENT_RELEASE_TOO_HIGH',
    ERR_TOO_MUCH_DATA: 'ERR_TOO_MUCH_DATA',
    // Beyond tigerbeetle-node:
    ERR_REQUEST_TIMEOUT: 'ERR_REQUEST_TIMEOUT',
    ERR_REQUEST_ABORTED: 'ERR_REQUEST_ABORTED',
    ERR_CONCURRENCY_MAX_EXCEEDED: 'ERR_CONCURRENCY_MAX_EXCEEDED',
    ERR_INVALID_REPLY: 'ERR_INVALID_REPLY',
    ERR_LIMIT_REACHED: 'ERR_LIMIT_REACHED',
    ERR_WRITES_FAILING: 'ERR_WRITES_FAILING',
} as const;

export type ErrorCodes = typeof ErrorCodes[keyof typeof ErrorCodes];

const messages: Record<ErrorCodes, string> = {
    ERR_CLIENT_CLOSED: 'Client was closed.',
    ERR_CLIENT_EVICTED: 'Client was evicted.',
    ERR_CLIENT_RELEASE_TOO_LOW: 'Client was evicted: release too old.',
    ERR_CLIENT_RELEASE_TOO_HIGH: 'Client was evicted: release too new.',
    ERR_TOO_MUCH_DATA: 'Too much data was sent or requested in this batch.',
    ERR_REQUEST_TIMEOUT:
        'Request timed out; it may or may not have been executed (retry with the same ids).',
    ERR_REQUEST_ABORTED:
        'Request was aborted; it may or may not have been executed (retry with the same ids).',
    ERR_CONCURRENCY_MAX_EXCEEDED: 'Too many requests are outstanding on this client.',
    ERR_INVALID_REPLY: 'The cluster sent a reply that does not decode for this request.',
    ERR_LIMIT_REACHED: 'Client was evicted: the cluster reached a capacity limit; nothing of ' +
        'the batch was applied.',
    ERR_WRITES_FAILING: 'Client was evicted: the replica\'s disk refuses writes; the request ' +
        'may or may not have been applied (look it up once the replica is fixed and restarted).',
};

/**
 * Why a request that timed out got no reply, from what the client's connections
 * saw, so a program can tell the cases apart without reading the message:
 * - `connection_refused`: nothing listens at any replica address (every connect was refused);
 * - `unreachable`: no replica could be reached otherwise (no route, connect timeout, ...);
 * - `cluster_mismatch`: every replica reached closed the connection after our messages without
 *   answering, which is what a replica does to a client whose cluster_id is not its cluster's
 *   (the replica logs both ids);
 * - `no_reply`: connected, but a replica never answered (busy, stopped, no primary, no quorum);
 * - `reply_late`: every replica answered something, but not this request in time.
 * Either way the request may or may not have been executed (except that with
 * `connection_refused` and `unreachable` no replica ever received it).
 */
export type RequestDiagnosisKind =
    'connection_refused' | 'unreachable' | 'cluster_mismatch' | 'no_reply' | 'reply_late';

export interface RequestDiagnosis {
    readonly kind: RequestDiagnosisKind;
    /** The same in words, with the addresses and what to check. */
    readonly text: string;
}

export interface RequestErrorOptions {
    cause?: unknown;
    /** ERR_LIMIT_REACHED: the limit the cluster reached (`transfers_max`, ...) and its value. */
    limit?: string;
    limit_value?: bigint;
    /** ERR_REQUEST_TIMEOUT: what the connections saw (Client.diagnosis). */
    diagnosis?: RequestDiagnosis;
}

export class RequestError extends Error {
    code: ErrorCodes;
    /** ERR_LIMIT_REACHED only: which limit, and the value the cluster was formatted with. */
    limit: string | null;
    limit_value: bigint | null;
    /** ERR_REQUEST_TIMEOUT: why no reply came (Client.diagnosis); null for other errors. */
    diagnosis_kind: RequestDiagnosisKind | null;

    constructor(code: ErrorCodes, options?: RequestErrorOptions) {
        super(RequestError.detailed_message(code, options), options);
        this.name = 'RequestError';
        this.code = code;
        this.limit = options?.limit ?? null;
        this.limit_value = options?.limit_value ?? null;
        this.diagnosis_kind = options?.diagnosis?.kind ?? null;
    }

    private static detailed_message(code: ErrorCodes, options?: RequestErrorOptions): string {
        if (options?.diagnosis !== undefined) {
            return `${RequestError.errorMessage(code)} ${options.diagnosis.text}`;
        }
        if (options?.limit === undefined) return RequestError.errorMessage(code);
        if (code === ErrorCodes.ERR_WRITES_FAILING) {
            return 'Client was evicted: the replica\'s disk refuses writes ' +
                `(${errno_name(Number(options.limit_value))}); the request may or may not have ` +
                'been applied (look it up once the replica is fixed and restarted).';
        }
        return `Client was evicted: the cluster's ${options.limit} (${options.limit_value}) is ` +
            'reached; nothing of the batch was applied. Lookups and queries work from a new ' +
            `client; more room needs a data file formatted with a larger ${options.limit}.`;
    }

    static errorMessage(code: ErrorCodes): string {
        const message = messages[code];
        if (message === undefined) throw new Error('Unknown error code.');
        return message;
    }
}
