// The primary's pipeline (docs/vsr.md §4): a queue of up to
// pipeline_prepare_queue_max prepares in flight, ops commit_min+1 .. op in order, each with the set
// of replicas that acknowledged it; and behind it a bounded queue of requests that arrived while
// the prepare queue was full (or the WAL had to wait for a checkpoint). Both are rings over typed
// arrays holding pool message indices; the pipeline holds one reference to each message.
import assert from 'node:assert/strict';

import { pipeline_prepare_queue_max } from '../constants';

export { pipeline_prepare_queue_max };

export class Pipeline {
    readonly prepare_max: number;
    readonly request_max: number;

    // Prepares: ring of prepare_max, oldest (lowest op) at prepare_head.
    private readonly prepare_messages: Int32Array;
    private readonly prepare_connections: Int32Array;
    private readonly prepare_ops: Float64Array;
    /** The reply of a prepare executed ahead of its commit (-1: none yet, or a pulse). */
    private readonly prepare_replies: Int32Array;
    /** Bit r: replica r has the prepare durably in its WAL (prepare_ok). */
    private readonly prepare_oks: Uint8Array;
    private prepare_head = 0;
    prepare_count = 0;

    // Requests waiting for room, in arrival order.
    private readonly request_messages: Int32Array;
    private readonly request_connections: Int32Array;
    private request_head = 0;
    request_count = 0;

    constructor(prepare_max: number, request_max: number) {
        assert(prepare_max >= 1 && prepare_max <= 64);
        assert(request_max >= 0);
        this.prepare_max = prepare_max;
        this.request_max = request_max;
        this.prepare_messages = new Int32Array(prepare_max).fill(-1);
        this.prepare_connections = new Int32Array(prepare_max).fill(-1);
        this.prepare_ops = new Float64Array(prepare_max);
        this.prepare_oks = new Uint8Array(prepare_max);
        this.prepare_replies = new Int32Array(prepare_max).fill(-1);
        this.request_messages = new Int32Array(Math.max(1, request_max)).fill(-1);
        this.request_connections = new Int32Array(Math.max(1, request_max)).fill(-1);
    }

    get prepare_full(): boolean { return this.prepare_count === this.prepare_max; }
    get request_full(): boolean { return this.request_count === this.request_max; }

    prepare_push(op: number, message: number, connection: number): void {
        assert(!this.prepare_full);
        assert(message >= 0 && op >= 1);
        if (this.prepare_count > 0) assert.equal(op, this.prepare_op(this.prepare_count - 1) + 1);
        const index = (this.prepare_head + this.prepare_count) % this.prepare_max;
        assert.equal(this.prepare_messages[index], -1, 'pipeline: the ring slot is taken');
        this.prepare_messages[index] = message;
        this.prepare_connections[index] = connection;
        this.prepare_ops[index] = op;
        this.prepare_oks[index] = 0;
        this.prepare_replies[index] = -1;
        this.prepare_count += 1;
        assert(this.prepare_count <= this.prepare_max);
    }

    /** The i-th prepare from the oldest: its op, message, connection and acknowledgements. */
    prepare_op(i: number): number { return this.prepare_ops[this.index(i)]!; }
    prepare_message(i: number): number { return this.prepare_messages[this.index(i)]!; }
    prepare_connection(i: number): number { return this.prepare_connections[this.index(i)]!; }
    prepare_ok_count(i: number): number {
        let bits = this.prepare_oks[this.index(i)]!;
        let count = 0;
        for (let bit = 0; bit < 8; bit++, bits >>>= 1) count += bits & 1;
        return count;
    }

    /** Whether replica `replica` acknowledged the i-th prepare. */
    prepare_ok_has(i: number, replica: number): boolean {
        assert(replica >= 0 && replica < 8);
        return (this.prepare_oks[this.index(i)]! & (1 << replica)) !== 0;
    }

    /** Records replica `replica`'s acknowledgement of `op`; false when op is not in flight. */
    prepare_ok(op: number, replica: number): boolean {
        assert(replica >= 0 && replica < 8);
        if (this.prepare_count === 0) return false;
        const i = op - this.prepare_op(0);
        if (i < 0 || i >= this.prepare_count) return false;
        const index = this.index(i);
        assert.equal(this.prepare_ops[index], op);
        this.prepare_oks[index] = this.prepare_oks[index]! | (1 << replica);
        return true;
    }

    /** Records the reply of the i-th prepare, executed (the reference passes to the pipeline). */
    reply_set(i: number, reply: number): void {
        // A reply message, or -1 for a pulse (never "no message was free").
        assert(reply >= -1);
        const index = this.index(i);
        assert.equal(this.prepare_replies[index], -1);
        this.prepare_replies[index] = reply;
    }

    /** Takes the i-th prepare's reply (-1 for a pulse); the reference passes to the caller. */
    reply_take(i: number): number {
        const index = this.index(i);
        const reply = this.prepare_replies[index]!;
        this.prepare_replies[index] = -1;
        return reply;
    }

    /** Removes the oldest prepare (committed); returns its message, whose reference passes on. */
    prepare_pop(): number {
        assert(this.prepare_count > 0);
        const index = this.prepare_head;
        assert.equal(this.prepare_replies[index], -1, 'pop: the reply was not taken');
        const message = this.prepare_messages[index]!;
        assert(message >= 0);
        this.prepare_messages[index] = -1;
        this.prepare_connections[index] = -1;
        this.prepare_head = (this.prepare_head + 1) % this.prepare_max;
        this.prepare_count -= 1;
        return message;
    }

    request_push(message: number, connection: number): void {
        assert(!this.request_full);
        assert(message >= 0);
        const index = (this.request_head + this.request_count) % this.request_messages.length;
        assert.equal(this.request_messages[index], -1, 'pipeline: the queue slot is taken');
        this.request_messages[index] = message;
        this.request_connections[index] = connection;
        this.request_count += 1;
    }

    request_message(i: number): number {
        assert(i >= 0 && i < this.request_count);
        return this.request_messages[(this.request_head + i) % this.request_messages.length]!;
    }

    request_connection(i: number): number {
        assert(i >= 0 && i < this.request_count);
        return this.request_connections[(this.request_head + i) % this.request_messages.length]!;
    }

    /** Removes the oldest queued request; returns its message (the reference passes on). */
    request_pop(): number {
        assert(this.request_count > 0);
        const index = this.request_head;
        const message = this.request_messages[index]!;
        assert(message >= 0);
        this.request_messages[index] = -1;
        this.request_connections[index] = -1;
        this.request_head = (this.request_head + 1) % this.request_messages.length;
        this.request_count -= 1;
        return message;
    }

    /** Forgets a closed connection: replies for its requests then have nowhere to go. */
    connection_closed(connection: number): void {
        assert(connection >= 0);
        for (let i = 0; i < this.prepare_max; i++) {
            if (this.prepare_connections[i] === connection) this.prepare_connections[i] = -1;
        }
        for (let i = 0; i < this.request_connections.length; i++) {
            if (this.request_connections[i] === connection) this.request_connections[i] = -1;
        }
    }

    /** A newer connection for a client whose request is in flight (it reconnected). */
    connection_update(i: number, connection: number): void {
        assert(connection >= 0);
        this.prepare_connections[this.index(i)] = connection;
    }

    request_connection_update(i: number, connection: number): void {
        assert(i >= 0 && i < this.request_count);
        assert(connection >= 0);
        this.request_connections[(this.request_head + i) % this.request_messages.length] =
            connection;
    }

    private index(i: number): number {
        assert(i >= 0 && i < this.prepare_count);
        return (this.prepare_head + i) % this.prepare_max;
    }
}
