// The server's configuration: what `format` and `start` agree on (the data file's shape) and
// what only `start` decides (ledger capacity, connections). Every pool and table is sized from
// here at startup; nothing grows afterwards.
import assert from 'node:assert/strict';

import type { LedgerConfig } from '../ledger/ledger';
import { clients_max_default } from '../constants';
import { address_parse } from '../io/address';
import type { Address } from '../io/address';
import { engine_layout } from '../io/layout';
import { bus_operations_per_connection, listener_operations_max } from '../vsr/message_bus';
import { pipeline_prepare_queue_max } from '../vsr/pipeline';
import { replica_storage_config, replica_storage_operations_max } from './replica_open';
import type { StorageConfig } from '../storage/zones';
import { config_production } from '../storage/zones';

export { clients_max_default };
export const accounts_max_default = 100_000;
export const transfers_max_default = 1_000_000;

/** What sizes the data file: `format` and `start` must be given the same. */
export interface Capacity {
    clients_max: number;
    accounts_max: number;
    transfers_max: number;
}

export function ledger_config(capacity: Capacity): LedgerConfig {
    return { accounts_max: capacity.accounts_max, transfers_max: capacity.transfers_max };
}

/**
 * The data file's shape: production WAL and message sizes; clients_max sizes the client replies
 * zone; the ledger capacity sizes the grid (room for two full checkpoints).
 */
export function data_file_config(capacity: Capacity): StorageConfig {
    assert(Number.isInteger(capacity.clients_max) && capacity.clients_max >= 1);
    return replica_storage_config({ ...config_production, clients_max: capacity.clients_max },
        capacity.clients_max, ledger_config(capacity));
}

export type { Address };

/**
 * Parses the comma-separated replica addresses (io/address.ts: a bare port, IPv4, [IPv6]:port
 * or host:port); the error text when one is not an address.
 */
export function addresses_parse(text: string): Address[] | string {
    const addresses: Address[] = [];
    for (const part of text.split(',')) {
        const address = address_parse(part);
        if (typeof address === 'string') return address;
        addresses.push(address);
    }
    if (addresses.length === 0 || addresses.length > 6) return 'give 1 to 6 addresses';
    return addresses;
}

/** Pool and connection sizing derived from clients_max. */
export interface ServerSizing {
    connections_max: number;
    /** Requests waiting while the pipeline is full: one per client at most. */
    request_queue_max: number;
    messages_count: number;
    engine_entries: number;
    send_queue_max: number;
}

/** The most connections `start` accepts: their engine operations must fit the ring. */
export const connections_max_limit = 8000;

/**
 * Engine operations in flight at once, by construction: each connection's bound (asserted by
 * the bus), the listener's, the storage budget (asserted by each storage user), and the close
 * of the data file at stop. The server runs no engine timers of its own.
 */
export function engine_entries_for(connections_max: number): number {
    const entries = connections_max * bus_operations_per_connection + listener_operations_max +
        replica_storage_operations_max + 1;
    assert(entries <= engine_layout.entries_max, 'engine: connections_max exceeds the ring');
    return entries;
}

export function server_sizing(clients_max: number, connections_max?: number): ServerSizing {
    const connections = connections_max ?? clients_max + 32;
    assert(connections >= 1 && connections <= connections_max_limit);
    const request_queue_max = clients_max;
    // Every connection holds a receive buffer; each session caches its latest reply; the pipeline
    // and the request queue hold requests; the rest is for replies being built, pongs,
    // evictions and the replay buffer.
    const messages_count = connections + clients_max + pipeline_prepare_queue_max +
        request_queue_max + 16;
    return {
        connections_max: connections,
        request_queue_max,
        messages_count,
        engine_entries: engine_entries_for(connections),
        send_queue_max: 8,
    };
}
