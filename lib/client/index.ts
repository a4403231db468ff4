// The client's public surface: `import { createClient, id, ... } from 'ringledger'` offers what
// `tigerbeetle-node` 0.17.9 offers, with the same names, types and values.
import { Client } from './client';
import type { ClientInitArgs } from './client';

export * from './bindings';
export { Client } from './client';
export type {
    AccountID, ClientEvents, ClientInitArgs, RequestOptions, TransferID,
} from './client';
export type { Result } from './codec';
export { ErrorCodes, RequestError } from './errors';
export type { RequestDiagnosis, RequestDiagnosisKind } from './errors';
export { id } from './id';

export type Event = import('./bindings').Account | import('./bindings').Transfer | bigint |
    import('./bindings').AccountFilter | import('./bindings').QueryFilter;

/** Type-level compatibility with tigerbeetle-node's exports. */
export type Context = object;
export type ResultCallback =
    (error: Error | null, results: import('./codec').Result[] | null) => void;

/** The largest amount: amounts are u128. */
export const amount_max: bigint = (1n << 128n) - 1n;

/** Connects to a cluster (one address per replica) and registers a session. */
export function createClient(args: ClientInitArgs): Client {
    return new Client(args);
}
