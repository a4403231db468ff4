// How the replica sends (docs/vsr.md §2): the message bus over sockets, or the simulator's packet
// network. The replica names destinations, never sockets: a replica by its index, a client by the
// id its message header carries. Every call queues a pool message (the network takes its own
// reference) and returns whether it was queued; a destination with no connection yet drops it,
// and the protocol's timeouts resend.
export interface ReplicaNetwork {
    /** To the connection a message arrived on (pong_client answers the ping's socket). */
    send(connection: number, message: number): boolean;
    /**
     * A reply or an eviction: to the client its header names (reply.client, eviction.client),
     * on the connection that client last sent from to this replica.
     */
    send_to_client(message: number): boolean;
    /** To replica `replica` (0 .. replica_count - 1, never ourselves). */
    send_to_replica(replica: number, message: number): boolean;
}

/** The connection argument of on_message for a message that did not come from a socket. */
export const connection_none = -1;
