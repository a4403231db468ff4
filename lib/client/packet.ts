// A packet is one API call in flight through the client: its operation, its input until encoded,
// its promise's settle functions, and its deadline. Packets are preallocated (concurrency_max of
// them) and linked into intrusive lists, so a call allocates nothing but its promise and results.
import assert from 'node:assert/strict';

import { Operation } from './bindings';
import type { Result } from './codec';
import { ErrorCodes, RequestError } from './errors';

/** What a packet needs from its client when its AbortSignal fires. */
export interface PacketOwner {
    abandon(packet: Packet, error: Error): void;
}

export class Packet {
    operation: Operation = Operation.pulse;
    /** The events array (or filter) until the packet is encoded. */
    source: unknown = null;
    /** Events in the call's batch. */
    count = 0;
    /** The most results the reply may hold for this batch (events, or a query's limit). */
    result_max = 0;
    /** performance.now() after which the call fails; 0: no deadline. */
    deadline_ms = 0;
    settled = true;
    next: Packet | null = null;
    previous: Packet | null = null;
    list: PacketList | null = null;
    private owner: PacketOwner | null = null;
    private signal: AbortSignal | null = null;
    private resolve_function: ((results: Result[]) => void) | null = null;
    private reject_function: ((error: unknown) => void) | null = null;
    // Bound once per packet, so that starting a call creates no closure.
    private readonly executor = (
        resolve: (results: Result[]) => void, reject: (error: unknown) => void,
    ): void => {
        this.resolve_function = resolve;
        this.reject_function = reject;
    };

    start(owner: PacketOwner, operation: Operation, source: unknown, count: number):
        Promise<Result[]> {
        assert.ok(this.settled && this.list === null && this.owner === null);
        this.owner = owner;
        this.operation = operation;
        this.source = source;
        this.count = count;
        this.result_max = 0;
        this.deadline_ms = 0;
        this.settled = false;
        return new Promise(this.executor);
    }

    listen(signal: AbortSignal): void {
        assert.equal(this.signal, null);
        this.signal = signal;
        signal.addEventListener('abort', this);
    }

    /** The AbortSignal's listener (EventTarget calls handleEvent on listener objects). */
    handleEvent(): void {
        if (this.settled || this.owner === null || this.signal === null) return;
        this.owner.abandon(this, new RequestError(ErrorCodes.ERR_REQUEST_ABORTED,
            { cause: this.signal.reason }));
    }

    resolve(results: Result[]): void {
        assert.ok(!this.settled);
        const resolve = this.resolve_function!;
        this.settle();
        resolve(results);
    }

    reject(error: unknown): void {
        assert.ok(!this.settled);
        const reject = this.reject_function!;
        this.settle();
        reject(error);
    }

    private settle(): void {
        this.settled = true;
        this.resolve_function = null;
        this.reject_function = null;
        this.source = null;
        if (this.signal !== null) this.signal.removeEventListener('abort', this);
        this.signal = null;
    }

    /** Back to the free pool state; the packet must be settled and unlinked. */
    reset(): void {
        assert.ok(this.settled && this.list === null);
        this.owner = null;
        this.source = null;
        this.count = 0;
        this.result_max = 0;
        this.deadline_ms = 0;
    }
}

/** A doubly linked FIFO of packets through their own fields: push, shift and remove are O(1). */
export class PacketList {
    head: Packet | null = null;
    tail: Packet | null = null;
    count = 0;

    push(packet: Packet): void {
        assert.ok(packet.list === null && packet.next === null && packet.previous === null);
        packet.list = this;
        packet.previous = this.tail;
        if (this.tail === null) this.head = packet;
        else this.tail.next = packet;
        this.tail = packet;
        this.count += 1;
    }

    shift(): Packet | null {
        const packet = this.head;
        if (packet !== null) this.remove(packet);
        return packet;
    }

    remove(packet: Packet): void {
        assert.equal(packet.list, this);
        if (packet.previous === null) this.head = packet.next;
        else packet.previous.next = packet.next;
        if (packet.next === null) this.tail = packet.previous;
        else packet.next.previous = packet.previous;
        packet.next = null;
        packet.previous = null;
        packet.list = null;
        this.count -= 1;
        assert.ok(this.count >= 0);
    }
}
