// The cluster simulator's network as the replicas and clients see it: a ReplicaNetwork endpoint
// per replica incarnation (lib/vsr/network.ts) and the ClientNetwork of the simulated clients,
// over the PacketSimulator. A replica's send copies its pool message into the network; delivery
// validates the header (as the bus would: a message that fails is its sender's bug, so a
// violation here) and copies it into the receiving replica's own pool for on_message, or hands
// the bytes to the client.
//
// Connections: a client's connection index at every replica is its client index. It is open from
// the first packet of that client the replica receives until it resets (a fault: the replica is
// told on_close) or the replica restarts; replies and evictions go only over an open connection,
// like the bus's, and what is sent over a closed one is dropped (the client retransmits).
import assert from 'node:assert/strict';

import { Command, command_names, frame, offsets } from '../vsr/header_layout';
import { HeaderView } from '../vsr/header';
import type { MessagePool } from '../vsr/message_pool';
import type { ReplicaNetwork } from '../vsr/network';
import { connection_none } from '../vsr/network';
import { HeaderValidator, Reason, reason_text } from '../vsr/validate';
import { Violation, ViolationKind, error_text } from './cluster_checkers';
import type { PacketSimulator, PacketTarget } from './packet_simulator';
import type { ClientNetwork, SimClient } from './sim_client';

/** The part of a replica its network needs: its input and its position in the log. */
export interface NetworkReplica {
    readonly op: number;
    readonly commit_min: number;
    on_message(connection: number, message: number): void;
    on_close(connection: number): void;
}

/** Why the network dropped what it did (beyond the packet simulator's own faults). */
export class NetworkStats {
    /** Packets for a replica that was down (crashed) when they arrived. */
    dropped_down = 0;
    /** The receiving replica's pool had no free message (the bus would stop reading). */
    dropped_pool_empty = 0;
    /** Replica sends over a connection that was not open. */
    sends_unconnected = 0;
    /** Replies or evictions naming a client we do not know. */
    sends_unknown_client = 0;
}

/** One replica's way out, for one incarnation of it (a restart gets a new endpoint). */
export class ReplicaEndpoint implements ReplicaNetwork {
    readonly network: ClusterNetwork;
    readonly replica: number;
    readonly pool: MessagePool;
    readonly incarnation: number;

    constructor(network: ClusterNetwork, replica: number, pool: MessagePool,
        incarnation: number) {
        this.network = network;
        this.replica = replica;
        this.pool = pool;
        this.incarnation = incarnation;
    }

    send(connection: number, message: number): boolean {
        return this.network.replica_send_connection(this, connection, message);
    }

    send_to_client(message: number): boolean {
        return this.network.replica_send_client(this, message);
    }

    send_to_replica(replica: number, message: number): boolean {
        return this.network.replica_send_replica(this, replica, message);
    }
}

export class ClusterNetwork implements ClientNetwork, PacketTarget {
    readonly packets: PacketSimulator;
    readonly replica_count: number;
    readonly client_count: number;
    readonly stats = new NetworkStats();
    ticks = 0;
    clients: SimClient[] = [];
    private readonly client_by_id = new Map<bigint, number>();
    /** Per replica: the live incarnation (null while down) and its pool. */
    private readonly replicas: Array<NetworkReplica | null>;
    private readonly pools: Array<MessagePool | null>;
    private readonly incarnations: Uint32Array;
    /** Per replica * client_count + client: that client's connection to the replica is open. */
    private readonly connected: Uint8Array;
    private readonly validator: HeaderValidator;
    private readonly header = new HeaderView();

    constructor(packets: PacketSimulator, cluster: bigint, replica_count: number,
        client_count: number) {
        assert(packets.options.replica_count === replica_count);
        assert(packets.options.node_count === replica_count + client_count);
        this.packets = packets;
        this.replica_count = replica_count;
        this.client_count = client_count;
        this.replicas = new Array<NetworkReplica | null>(replica_count).fill(null);
        this.pools = new Array<MessagePool | null>(replica_count).fill(null);
        this.incarnations = new Uint32Array(replica_count);
        this.connected = new Uint8Array(replica_count * client_count);
        this.validator = new HeaderValidator(cluster);
    }

    clients_set(clients: SimClient[]): void {
        assert.equal(clients.length, this.client_count);
        this.clients = clients;
        for (const client of clients) this.client_by_id.set(client.id, client.index);
        assert.equal(this.client_by_id.size, clients.length, 'client ids are distinct');
    }

    /** A replica (re)starts: it gets a fresh endpoint over its new pool. */
    replica_attach(replica: number, instance: NetworkReplica, pool: MessagePool):
        ReplicaEndpoint {
        assert(this.replicas[replica] === null, `network: replica ${replica} is already up`);
        this.replicas[replica] = instance;
        this.pools[replica] = pool;
        this.incarnations[replica]! += 1;
        return new ReplicaEndpoint(this, replica, pool, this.incarnations[replica]!);
    }

    /** A replica's process dies: its connections and what they carried are gone. */
    replica_detach(replica: number): void {
        assert(this.replicas[replica] !== null, `network: replica ${replica} is already down`);
        this.replicas[replica] = null;
        this.pools[replica] = null;
        this.incarnations[replica]! += 1;
        this.connected.fill(0, replica * this.client_count, (replica + 1) * this.client_count);
        this.packets.node_reset(replica);
    }

    /** A fault: one client's connection to one replica resets, and the replica is told. */
    connection_reset(replica: number, client: number): void {
        assert(client >= 0 && client < this.client_count);
        const at = replica * this.client_count + client;
        if (this.connected[at] === 0) return;
        this.connected[at] = 0;
        this.packets.path_reset(replica, this.replica_count + client);
        const instance = this.replicas[replica];
        if (instance !== null && instance !== undefined) instance.on_close(client);
    }

    client_send(client: number, bytes: Uint8Array, replica: number): void {
        assert(client >= 0 && client < this.client_count);
        assert(replica >= 0 && replica < this.replica_count);
        this.packets.submit(this.replica_count + client, replica, bytes, 0, bytes.length);
    }

    replica_send_connection(endpoint: ReplicaEndpoint, connection: number,
        message: number): boolean {
        this.endpoint_check(endpoint, message);
        if (connection === connection_none) return false;
        assert(Number.isInteger(connection) && connection >= 0 &&
            connection < this.client_count, `replica ${endpoint.replica}: connection ` +
            `${connection} is none we gave it`);
        return this.replica_send_client_index(endpoint, connection, message);
    }

    replica_send_client(endpoint: ReplicaEndpoint, message: number): boolean {
        this.endpoint_check(endpoint, message);
        const header = this.header.attach(endpoint.pool.bytes, endpoint.pool.offset(message));
        const command = header.command;
        assert(command === Command.reply || command === Command.eviction,
            `replica ${endpoint.replica} sent ${command_names[command]} to a client`);
        const id = header.u128_bigint(command === Command.reply ? offsets.reply.client
            : offsets.eviction.client);
        const client = this.client_by_id.get(id);
        if (client === undefined) {
            this.stats.sends_unknown_client += 1;
            return false;
        }
        return this.replica_send_client_index(endpoint, client, message);
    }

    replica_send_replica(endpoint: ReplicaEndpoint, replica: number, message: number): boolean {
        this.endpoint_check(endpoint, message);
        assert(Number.isInteger(replica) && replica >= 0 && replica < this.replica_count,
            `replica ${endpoint.replica} sent to replica ${replica} of ${this.replica_count}`);
        assert(replica !== endpoint.replica, `replica ${replica} sent to itself`);
        const pool = endpoint.pool;
        return this.packets.submit(endpoint.replica, replica, pool.bytes, pool.offset(message),
            this.message_size(endpoint, message));
    }

    private replica_send_client_index(endpoint: ReplicaEndpoint, client: number,
        message: number): boolean {
        if (this.connected[endpoint.replica * this.client_count + client] === 0) {
            this.stats.sends_unconnected += 1;
            return false;
        }
        const pool = endpoint.pool;
        return this.packets.submit(endpoint.replica, this.replica_count + client, pool.bytes,
            pool.offset(message), this.message_size(endpoint, message));
    }

    /** The sender is the live incarnation, and it holds the message it sends. */
    private endpoint_check(endpoint: ReplicaEndpoint, message: number): void {
        assert(endpoint.network === this);
        assert.equal(endpoint.incarnation, this.incarnations[endpoint.replica],
            `replica ${endpoint.replica}: a crashed incarnation sent a message`);
        assert(endpoint.pool.references_of(message) >= 1, 'a replica sends a message it holds');
    }

    /** The size of a message a replica sends: it must fit the pool's buffers it was built in. */
    private message_size(endpoint: ReplicaEndpoint, message: number): number {
        const pool = endpoint.pool;
        const header = this.header.attach(pool.bytes, pool.offset(message));
        const size = header.size;
        if (size < 256 || size > pool.message_size_max) {
            throw new Violation(ViolationKind.invalid_message, -1, endpoint.replica,
                `replica ${endpoint.replica} sent ${command_names[header.command]} of ${size} ` +
                `bytes: outside 256 .. message_size_max (${pool.message_size_max}), so it was ` +
                'built past the end of its pool buffer');
        }
        return size;
    }

    packet_deliver(source: number, target: number, message: number): void {
        const pool = this.packets.pool;
        const offset = pool.offset(message);
        const reason = this.validator.message(pool.bytes, offset, pool.message_size_max);
        const header = this.header.attach(pool.bytes, offset);
        if (reason !== Reason.ok) {
            throw new Violation(ViolationKind.invalid_message, -1,
                source < this.replica_count ? source : -1, `${this.node_name(source)} sent ` +
                `${command_names[header.command] ?? header.command} to ` +
                `${this.node_name(target)}, which fails validation: ${reason_text[reason]}`);
        }
        const size = header.size;
        if (target < this.replica_count) return this.deliver_replica(source, target, offset, size);
        const client = this.clients[target - this.replica_count]!;
        const bytes = pool.bytes.slice(offset, offset + size);
        try {
            client.on_message(bytes);
        } catch (error) {
            throw new Violation(ViolationKind.reply, reply_op(header), source,
                `client ${client.index} rejected ${command_names[header.command]} from ` +
                `${this.node_name(source)}: ${error_text(error)}`, error);
        }
    }

    private deliver_replica(source: number, replica: number, offset: number,
        size: number): void {
        const instance = this.replicas[replica] ?? null;
        const pool = this.pools[replica] ?? null;
        if (instance === null || pool === null) {
            this.stats.dropped_down += 1;
            return;
        }
        const message = pool.acquire();
        if (message === -1) {
            this.stats.dropped_pool_empty += 1;
            return;
        }
        pool.bytes.set(this.packets.pool.bytes.subarray(offset, offset + size),
            pool.offset(message));
        let connection = connection_none;
        if (source >= this.replica_count) {
            connection = source - this.replica_count;
            this.connected[replica * this.client_count + connection] = 1;
        }
        const command = pool.bytes[pool.offset(message) + frame.command]!;
        try {
            instance.on_message(connection, message);
        } catch (error) {
            if (error instanceof Violation) throw error;
            throw new Violation(ViolationKind.assertion, instance.op, replica,
                `replica ${replica} (op ${instance.op}, commit_min ${instance.commit_min}) ` +
                `threw on ${command_names[command]} from ${this.node_name(source)}: ` +
                `${error_text(error)}`, error);
        }
        pool.unref(message);
    }

    node_name(node: number): string {
        return node < this.replica_count ? `replica ${node}`
            : `client ${node - this.replica_count}`;
    }
}

function reply_op(header: HeaderView): number {
    if (header.command !== Command.reply) return -1;
    const op = header.u64(offsets.reply.op);
    return Number.isSafeInteger(op) ? op : -1;
}
