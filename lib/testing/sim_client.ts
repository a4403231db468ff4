// The simulated client of the deterministic simulators (test/replica_harness.ts for one replica,
// lib/testing/cluster.ts for a cluster; tests only, allocates freely). It speaks the protocol of
// docs/wire-protocol.md §5 the way tigerbeetle-node 0.17.9 does: register first, one request in
// flight, byte-identical retransmits with exponential backoff and jitter, the parent chain, and
// the client-side checks of every reply (§5.4), each of which would abort the real client's
// process. In a cluster (§5.5) it keeps the highest view it has heard of, sends each request and
// retransmit to that view's primary plus one random backup, and pings every replica.
import assert from 'node:assert/strict';

import { Prng } from '../prng';
import { header_size, release_0_17_9 } from '../vsr/constants';
import { HeaderView, header_init, seal, seal_empty_body } from '../vsr/header';
import { Command, frame, offsets } from '../vsr/header_layout';
import { Reason, reply_matches_request } from '../vsr/validate';
import type { ReplicaTime } from '../vsr/replica';

/** Simulated time: ticks of 10 ms, advanced by the simulator's loop. */
export class SimTime implements ReplicaTime {
    ticks = 0;
    /** The wall clock starts where LedgerWorkload's clock starts (1.7e18 ns). */
    realtime_base_us = 1_700_000_000_000_000;
    monotonic_ns(): number { return this.ticks * 10_000_000; }
    realtime_us(): number { return this.realtime_base_us + this.ticks * 10_000; }
}

/** What a client sends through: the simulator's network. */
export interface ClientNetwork {
    /** The current tick. */
    readonly ticks: number;
    /**
     * Client `client` sends `bytes` (copied: the caller keeps them) to replica `replica`. A
     * network of one replica, or one that sends everything to every replica, may ignore it.
     */
    client_send(client: number, bytes: Uint8Array, replica: number): void;
}

/** One client's view of one committed request, for checking against the model. */
export interface Exchange {
    op: number;
    operation: number;
    request_body: Uint8Array;
    reply_body: Uint8Array;
    timestamp: bigint;
    request: number;
}

export interface SimClientOptions {
    cluster: bigint;
    replica_count: number;
    /** Seeds the client's own PRNG (backup choice, retransmit jitter). */
    seed: number;
    /** Ticks before the first retransmit; later ones add the backoff. */
    retry_ticks_min?: number;
    /** Pings every replica this often (0: only when `ping()` is called). */
    ping_ticks?: number;
}

/** The backoff's jitter grows to this bound (tigerbeetle-node: 1..1000 ticks, vsr.zig:711). */
const backoff_ticks_max = 1000;
const operation_register = 2;

/**
 * A client like tigerbeetle-node: registers, then sends one request at a time (queued bodies),
 * retransmitting byte-identically until the reply arrives. Every reply is checked as the real
 * client checks it, and a reply seen before must come back byte for byte the same.
 */
export class SimClient<Network extends ClientNetwork = ClientNetwork> {
    readonly index: number;
    readonly id: bigint;
    network: Network;
    readonly cluster: bigint;
    readonly replica_count: number;
    release = release_0_17_9;
    session = 0n;
    request_number = 0;
    /** The highest view heard of (replies, pongs): never lowered (§5.5). */
    view = 0;
    readonly parent = new Uint8Array(16);
    inflight: Uint8Array | null = null;
    inflight_operation = 0;
    inflight_body: Uint8Array = new Uint8Array(0);
    sent_tick = 0;
    /** Retransmits of the request in flight; the backoff doubles with each. */
    attempt = 0;
    timeout_ticks: number;
    readonly retry_ticks_min: number;
    readonly ping_ticks: number;
    private ping_tick_last = 0;
    readonly pending: Array<{ operation: number; body: Uint8Array }> = [];
    readonly exchanges: Exchange[] = [];
    /** Request bytes by request number, as first sent. */
    readonly sent = new Map<number, Uint8Array>();
    /** Reply bytes by request number: a repeated reply must be byte-identical. */
    readonly replies = new Map<number, Uint8Array>();
    evicted = 0;
    /** Register replies of a second commit of our register (see reply_repeated). */
    reregistrations = 0;
    pongs = 0;
    retransmits = 0;
    /** Scratch for building requests and pings. */
    private readonly header = new HeaderView();
    private readonly prng: Prng;

    constructor(index: number, id: bigint, network: Network, options: SimClientOptions) {
        assert(Number.isInteger(index) && index >= 0);
        assert(id > 0n && id < 1n << 128n, 'a client id is a non-zero u128');
        assert(options.replica_count >= 1 && options.replica_count <= 6);
        this.index = index;
        this.id = id;
        this.network = network;
        this.cluster = options.cluster;
        this.replica_count = options.replica_count;
        this.prng = new Prng(options.seed);
        this.retry_ticks_min = options.retry_ticks_min ?? 40;
        this.ping_ticks = options.ping_ticks ?? 0;
        assert(this.retry_ticks_min >= 1 && this.ping_ticks >= 0);
        this.timeout_ticks = this.retry_ticks_min;
    }

    get idle(): boolean {
        return this.inflight === null && this.pending.length === 0;
    }

    /** Requests waiting for their reply (the one in flight and those queued). */
    get outstanding(): number {
        return (this.inflight === null ? 0 : 1) + this.pending.length;
    }

    /** The primary of the highest view heard of. */
    get primary(): number {
        return this.view % this.replica_count;
    }

    register(): void {
        assert(this.inflight === null && this.request_number === 0);
        this.send_new(operation_register, new Uint8Array(256));
        if (this.ping_ticks > 0) this.ping();
    }

    submit(operation: number, body: Uint8Array): void {
        assert(operation !== operation_register, 'register() registers');
        this.pending.push({ operation, body });
        this.next();
    }

    /** A ping_client to every replica: a pong tells the view (§5.6). */
    ping(): void {
        const bytes = new Uint8Array(header_size);
        const view = header_init(this.header, bytes, 0, Command.ping_client, header_size,
            this.release);
        view.set_u128_bigint(frame.cluster, this.cluster);
        view.set_u128_bigint(offsets.ping_client.client, this.id);
        view.set_u64_bigint(offsets.ping_client.ping_timestamp_monotonic,
            BigInt(this.network.ticks + 1));
        view.set_u64_bigint(offsets.ping_client.session, this.session);
        seal_empty_body(view);
        this.ping_tick_last = this.network.ticks;
        for (let replica = 0; replica < this.replica_count; replica++) {
            this.network.client_send(this.index, bytes, replica);
        }
    }

    /** Builds a request with the current chain; `raw` lets tests corrupt it before sealing. */
    build(operation: number, body: Uint8Array, raw?: (view: HeaderView) => void): Uint8Array {
        const bytes = new Uint8Array(header_size + body.length);
        bytes.set(body, header_size);
        const view = header_init(this.header, bytes, 0, Command.request, bytes.length,
            this.release);
        view.set_u128_bigint(frame.cluster, this.cluster);
        // The view is fixed at the first send: a retransmit is the same bytes (§5.3).
        view.view = this.view;
        const at = offsets.request;
        view.copy16_from(at.parent, this.parent, 0);
        view.set_u128_bigint(at.client, this.id);
        view.set_u64_bigint(at.session, this.session);
        view.set_u32(at.request, this.request_number);
        view.set_u8(at.operation, operation);
        if (raw !== undefined) raw(view);
        seal(view);
        return bytes;
    }

    private send_new(operation: number, body: Uint8Array): void {
        assert(this.inflight === null);
        this.inflight = this.build(operation, body);
        this.sent.set(this.request_number, this.inflight);
        this.inflight_operation = operation;
        this.inflight_body = body;
        this.sent_tick = this.network.ticks;
        this.attempt = 0;
        this.timeout_ticks = this.retry_ticks_min;
        this.send_inflight();
    }

    /** To the primary, and in a cluster to one random backup too (client.zig:734-744). */
    private send_inflight(): void {
        assert(this.inflight !== null);
        const primary = this.primary;
        this.network.client_send(this.index, this.inflight, primary);
        if (this.replica_count === 1) return;
        const backup = (primary + 1 + this.prng.int(this.replica_count - 1)) %
            this.replica_count;
        assert(backup !== primary);
        this.network.client_send(this.index, this.inflight, backup);
    }

    private next(): void {
        if (this.inflight !== null || this.pending.length === 0 || this.session === 0n ||
            this.evicted !== 0) return;
        const { operation, body } = this.pending.shift()!;
        this.request_number += 1;
        this.send_new(operation, body);
    }

    tick(): void {
        if (this.evicted !== 0) return;
        if (this.ping_ticks > 0 && this.network.ticks - this.ping_tick_last >= this.ping_ticks) {
            this.ping();
        }
        if (this.inflight === null) return;
        if (this.network.ticks - this.sent_tick < this.timeout_ticks) return;
        this.sent_tick = this.network.ticks;
        this.retransmits += 1;
        this.attempt += 1;
        this.timeout_ticks = this.retry_ticks_min + this.backoff_jitter_ticks();
        this.send_inflight();
    }

    /** Exponential backoff with full jitter: 0 .. min(2^attempt, 1000) ticks. */
    private backoff_jitter_ticks(): number {
        assert(this.attempt >= 1);
        const range = Math.min(backoff_ticks_max, 2 ** Math.min(this.attempt, 10));
        const jitter = this.prng.int(range + 1);
        assert(jitter >= 0 && jitter <= backoff_ticks_max);
        return jitter;
    }

    on_message(bytes: Uint8Array): void {
        const view = new HeaderView().attach(bytes, 0);
        if (view.command === Command.pong_client) {
            this.pongs += 1;
            this.view_raise(view.view);
            return;
        }
        if (view.command === Command.eviction) {
            assert.equal(view.u128_bigint(offsets.eviction.client), this.id);
            this.evicted = view.u8(offsets.eviction.reason);
            return;
        }
        assert.equal(view.command, Command.reply, 'a client receives reply, pong or eviction');
        assert.equal(view.u128_bigint(offsets.reply.client), this.id);
        const number = view.u32(offsets.reply.request);
        const seen = this.replies.get(number);
        if (seen !== undefined) return this.reply_repeated(number, bytes, seen);
        if (this.inflight === null) return;
        assert(number <= this.request_number, 'reply for a request not yet sent');
        if (number < this.request_number) return;
        this.accept(bytes, view);
    }

    /**
     * A reply seen before must be byte-identical: the reply to one commit never changes, whichever
     * replica sends it. The one exception is a register committed again (a new op): the session
     * its first commit opened was evicted before a retransmit or a replayed packet of the
     * register arrived, and that registers anew (as in TigerBeetle, where the real client ignores
     * the late reply).
     */
    private reply_repeated(number: number, bytes: Uint8Array, seen: Uint8Array): void {
        const differ = bytes_differ_at(bytes, seen);
        if (differ === -1) return;
        const op = new HeaderView().attach(bytes, 0).u64_bigint(offsets.reply.op);
        const op_seen = new HeaderView().attach(seen, 0).u64_bigint(offsets.reply.op);
        if (number === 0 && op !== op_seen) {
            this.reregistrations += 1;
            return;
        }
        assert.fail(`the reply to request ${number} (op ${op}) changed at byte ${differ} ` +
            `(${bytes.length} bytes, ${seen.length} before): a reply must stay byte-identical`);
    }

    private view_raise(view: number): void {
        assert(Number.isInteger(view) && view >= 0);
        if (view > this.view) this.view = view;
    }

    private accept(bytes: Uint8Array, reply: HeaderView): void {
        const request = new HeaderView().attach(this.inflight!, 0);
        assert.equal(reply_matches_request(reply, request), Reason.ok);
        const body = bytes.slice(header_size);
        if (this.inflight_operation === operation_register) {
            assert.equal(body.length, 64);
            this.session = reply.u64_bigint(offsets.reply.commit);
            assert(this.session > 0n);
        }
        this.replies.set(this.request_number, bytes);
        this.exchanges.push({
            op: Number(reply.u64_bigint(offsets.reply.op)),
            operation: this.inflight_operation,
            request_body: this.inflight_body,
            reply_body: body,
            timestamp: reply.u64_bigint(offsets.reply.timestamp),
            request: this.request_number,
        });
        this.parent.set(bytes.subarray(offsets.reply.context, offsets.reply.context + 16));
        this.view_raise(reply.view);
        this.inflight = null;
        this.next();
    }
}

/** The first offset where two byte strings differ (a length difference counts), or -1. */
function bytes_differ_at(a: Uint8Array, b: Uint8Array): number {
    const length = Math.min(a.length, b.length);
    for (let index = 0; index < length; index++) {
        if (a[index] !== b[index]) return index;
    }
    return a.length === b.length ? -1 : length;
}
