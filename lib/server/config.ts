// The server's configuration: what `format` and `start` agree on (the data file's shape) and
// what only `start` decides (ledger capacity, connections). Every pool and table is sized from
// here at startup; nothing grows afterwards.
import assert from 'node:assert/strict';

import type { LedgerConfig } from '../ledger/ledger';
import { clients_max_default } from '../constants';
import { address_parse } from '../io/address';
import type { Address } from '../io/address';
import { engine_layout } from '../io/layout';
import { replicas_max } from '../vsr/constants';
import {
    bus_operations_per_connection, listener_operations_max, receive_reserve,
} from '../vsr/message_bus';
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

/** Pool and connection sizing derived from clients_max and the cluster's size. */
export interface ServerSizing {
    /** The bus's table: client connections and the replica connections. */
    connections_max: number;
    /** Connections with the other replicas: two per peer (ours to it, its to us). */
    replica_connections_max: number;
    /** Requests waiting while the pipeline is full: one per client at most. */
    request_queue_max: number;
    messages_count: number;
    engine_entries: number;
    send_queue_max: number;
}

/** The most client connections `start` accepts: their engine operations must fit the ring. */
export const connections_max_limit = 8000;

/** Messages queued per connection, a client's or a replica's. */
export const connection_send_queue_max = 8;

/**
 * Engine operations in flight at once, by construction: each connection's bound (asserted by
 * the bus), the listener's, the storage budget (asserted by each storage user), and the close
 * of the data file at stop. The server runs no engine timers of its own. `connections_max` is
 * the bus's whole table, replica connections included: a dialled one's connect or backoff
 * timeout is within its per-connection bound.
 */
export function engine_entries_for(connections_max: number): number {
    assert(Number.isInteger(connections_max) && connections_max >= 1);
    const entries = connections_max * bus_operations_per_connection + listener_operations_max +
        replica_storage_operations_max + 1;
    assert(entries <= engine_layout.entries_max, 'engine: connections_max exceeds the ring');
    return entries;
}

/**
 * `connections_max` is for clients (default clients_max + 32); each other replica adds two
 * connections, ours to it and its to us.
 */
export function server_sizing(clients_max: number, connections_max?: number,
    replica_count = 1): ServerSizing {
    assert(Number.isInteger(replica_count) && replica_count >= 1 && replica_count <= replicas_max);
    const client_connections = connections_max ?? clients_max + 32;
    assert(client_connections >= 1 && client_connections <= connections_max_limit);
    const peers = replica_count - 1;
    const replica_connections_max = 2 * peers;
    const connections = client_connections + replica_connections_max;
    const request_queue_max = clients_max;
    // Messages (each of message_size_max bytes: a replica's prepare may be that large):
    //   connections                 one receive buffer per connection, clients' and replicas'
    // + clients_max                 each session caches its latest reply
    // + pipeline + request queue    the requests being prepared or waiting
    // + peers * send queue          what waits in the queue of our connection to each replica
    // + 16                          replies being built, pongs, evictions, the replay buffer and
    //                               the bus's receive reserve
    // What the replica itself keeps of its peers' messages beyond its pipeline is its own to add.
    const messages_count = connections + clients_max + pipeline_prepare_queue_max +
        request_queue_max + peers * connection_send_queue_max + 16;
    assert(messages_count >= connections + receive_reserve + peers * connection_send_queue_max,
        'sizing: a receive buffer per connection, the reserve and every replica send queue');
    const engine_entries = engine_entries_for(connections);
    assert(engine_entries >= connections * bus_operations_per_connection);
    return {
        connections_max: connections,
        replica_connections_max,
        request_queue_max,
        messages_count,
        engine_entries,
        send_queue_max: connection_send_queue_max,
    };
}
