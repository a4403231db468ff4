// Protocol constants shared by the header, validation and multi-batch code. Values follow
// TigerBeetle 0.17.9 production settings (docs/wire-protocol.md §1-§3).

import {
    header_size, message_body_size_max, message_size_max, release_0_17_9,
} from '../constants';

export { header_size, message_body_size_max, message_size_max, release_0_17_9 };
/** The command-specific part of the header starts here and runs to the end of the frame. */
export const header_command_offset = 128;
export const header_command_size = 128;


/** Clients index an array of this size with `pong_client.replica` (docs/wire-protocol.md §3.5). */
export const replicas_max = 6;

/** `vsr.Version`: the only protocol value accepted (docs/wire-protocol.md §2). */
export const protocol_version = 0;


/** Headers in a `headers` body (docs/vsr.md §9) and in a view-change suffix. */
export const headers_count_max = 64;
export const view_change_headers_max = 11;

/** `request_blocks` carries up to this many block requests (docs/vsr.md §9). */
export const block_requests_max = 4;
export const block_request_size = 32;

/** Checksum of the empty input, in wire byte order (docs/wire-protocol.md §4). */
export const checksum_body_empty = Uint8Array.from([
    0x83, 0xcc, 0x60, 0x0d, 0xc4, 0xe3, 0xe7, 0xe6,
    0x2d, 0x40, 0x55, 0x82, 0x61, 0x74, 0xf1, 0x49,
]);

/** `RegisterRequest` and `RegisterResult` body sizes (docs/wire-protocol.md §5.2). */
export const register_request_body_size = 256;
export const register_result_body_size = 64;

/** Multi-batch `batch_count` is 1..65534; 0xFFFF is reserved (docs/wire-protocol.md §6.2). */
export const multi_batch_count_max = 0xFFFF - 1;

/** The state machine's operations that clients send (docs/wire-protocol.md §6.1). */
export const client_operations = {
    lookup_accounts: 140,
    lookup_transfers: 141,
    get_account_transfers: 142,
    get_account_balances: 143,
    query_accounts: 144,
    query_transfers: 145,
    create_accounts: 146,
    create_transfers: 147,
} as const;

/** Operations (docs/wire-protocol.md §6.1). */
export const Operation = {
    reserved: 0,
    root: 1,
    register: 2,
    reconfigure: 3,
    pulse: 4,
    upgrade: 5,
    noop: 6,
    /** Codes below this are VSR control-plane operations. */
    vsr_operations_reserved: 128,
    ...client_operations,
} as const;

/** Eviction reasons (docs/wire-protocol.md §3.6); 0 is invalid. */
export const EvictionReason = {
    no_session: 1,
    client_release_too_low: 2,
    client_release_too_high: 3,
    invalid_request_operation: 4,
    invalid_request_body: 5,
    invalid_request_body_size: 6,
    session_too_low: 7,
    session_release_mismatch: 8,
} as const;
export const eviction_reason_max = 8;

/**
 * Why a replica refuses a request for good, by code: the ledger's capacity limits, and a disk that
 * keeps refusing writes. The code travels in a ringledger eviction to clients that ask for
 * details (header_layout.ts, request `features`) with a value (the limit's, or the errno), so the
 * numbers are part of our wire extension: append only.
 */
export const Limit = {
    none: 0,
    accounts_max: 1,
    transfers_max: 2,
    orphans_max: 3,
    history_max: 4,
    /** The replica's disk keeps failing writes; the value is the errno. */
    writes_failing: 5,
} as const;
export const limit_count = 6;

/** The name of a limit code ("limit 9" for a code this release does not know). */
export function limit_name(limit: number): string {
    for (const [name, value] of Object.entries(Limit)) if (value === limit) return name;
    return `limit ${limit}`;
}
