// Reply repair (docs/vsr.md §5, issue #13 item 6): a session's latest reply that a cluster
// replica could not read back from its client replies zone at startup (bit rot, a latent sector
// error, a lost or misdirected write) and that the WAL replay did not rebuild is fetched from a
// peer, so that a retried request gets the same reply from whichever replica is primary.
//
// The session table (in the checkpoint) still holds the reply's header, so the replica knows the
// exact checksum it needs: it asks the peers in turn with request_reply (client, op, checksum);
// a peer answers only with the reply its own session holds under that checksum, sent as it is
// (a reply is byte-identical on every replica). The answer is accepted only when the slot still
// wants it and its header checksum is the one the session expects (the validator has checked
// both checksums, so the body is the original too); it then goes back into the session and is
// written to its slot. Meanwhile a retry of that request is dropped, never executed again: the
// client keeps retrying, as tigerbeetle-node does, until the reply is back.
//
// Bounded: one request_reply per wanted slot per round, at most clients_max slots; a round runs
// when the repair timeout fires, which backs off while slots stay missing. One write back per
// slot at a time (a newer reply of the session queues behind it in ClientReplies). No allocation
// after construction.
import assert from 'node:assert/strict';

import { header_size } from './constants';
import type { ClientReplies } from './client_replies';
import type { ClientSessions } from './client_sessions';
import { HeaderView, header_init, seal_empty_body } from './header';
import { Command, frame, offsets } from './header_layout';
import type { MessagePool } from './message_pool';
import { Timeout } from './timeout';
import type { TimeoutRandom } from './timeout';

/** Ticks before the first round of fetches, and the base of the backoff. */
export const reply_repair_ticks = 10;
/** The period backs off to reply_repair_ticks × 2^4 (1.6 s plus jitter) while slots are missing. */
const backoff_exponent_max = 4;

const reply_at = offsets.reply;
const request_reply_at = offsets.request_reply;

/**
 * What the repair needs of its replica: the session table and its slots, the pool, the random
 * source for the backoff, frames for the messages it builds, and a network.
 */
export interface ReplyRepairHost {
    readonly pool: MessagePool;
    readonly sessions: ClientSessions;
    readonly client_replies: ClientReplies;
    readonly random: TimeoutRandom;
    readonly replica: number;
    readonly replica_count: number;
    readonly release: number;
    /** Fills the frame of a message being built: cluster, view, our replica index. */
    reply_repair_frame(header: HeaderView): void;
    /** Sends a sealed message to a peer; the network takes its own reference. */
    reply_repair_send(replica: number, message: number): void;
    /** Where the repair says what it did (the replica's log). */
    reply_repair_log(line: string): void;
}

export interface ReplyRepairStats {
    replies_requested: number;
    replies_served: number;
    replies_refused: number;
}

export class ReplyRepair {
    private readonly host: ReplyRepairHost;
    private readonly pool: MessagePool;
    private readonly sessions: ClientSessions;
    private readonly client_replies: ClientReplies;
    private readonly replica: number;
    private readonly replica_count: number;
    private readonly release: number;
    readonly timeout: Timeout;
    /** Per session entry: 1 while its reply is missing here and fetched from peers. */
    private readonly wanted: Uint8Array;
    wanted_count = 0;
    /** Per session entry: the repaired reply being written back to its slot (-1: none). */
    private readonly writing: Int32Array;
    /** Rounds of fetches so far: each round asks the next peer. */
    private rounds = 0;
    private readonly build_view = new HeaderView();
    private readonly check_view = new HeaderView();

    /** Built by the replica's constructor, once its session table exists. */
    constructor(host: ReplyRepairHost) {
        assert(host.replica_count >= 1 && host.replica >= 0 &&
            host.replica < host.replica_count);
        assert.equal(host.client_replies.slot_count, host.sessions.capacity,
            'one client replies slot per session entry');
        this.host = host;
        this.pool = host.pool;
        this.sessions = host.sessions;
        this.client_replies = host.client_replies;
        this.replica = host.replica;
        this.replica_count = host.replica_count;
        this.release = host.release;
        this.timeout = new Timeout('reply_repair', reply_repair_ticks, host.random,
            backoff_exponent_max);
        this.wanted = new Uint8Array(host.sessions.capacity);
        this.writing = new Int32Array(host.sessions.capacity).fill(-1);
    }

    /** Whether the reply of a session entry is being fetched. */
    is_wanted(entry: number): boolean {
        assert(entry >= 0 && entry < this.wanted.length);
        return this.wanted[entry] === 1;
    }

    /** Wanted slots whose session still expects the reply (tests and the simulator). */
    get missing(): number {
        let count = 0;
        for (let entry = 0; entry < this.wanted.length; entry++) {
            if (this.wanted[entry] === 0) continue;
            if (this.sessions.session(entry) === 0) continue;
            if (this.sessions.reply_message(entry) === -1) count += 1;
        }
        assert(count <= this.wanted_count);
        return count;
    }

    /** Startup: the reply of `entry` is missing here (the session is kept); fetch it. */
    want(entry: number): void {
        assert(this.replica_count > 1, 'a single replica has no peer to fetch a reply from');
        assert(this.sessions.session(entry) > 0 && this.sessions.reply_message(entry) === -1);
        assert.equal(this.wanted[entry], 0);
        this.wanted[entry] = 1;
        this.wanted_count += 1;
        assert(this.wanted_count <= this.wanted.length);
        if (!this.timeout.ticking) this.timeout.start();
    }

    /** Called every tick of a serving cluster replica: runs a round when the timeout fires. */
    tick(stats: ReplyRepairStats): void {
        this.timeout.tick();
        if (!this.timeout.fired) return;
        this.timeout.backoff();
        this.rounds += 1;
        for (let entry = 0; entry < this.wanted.length; entry++) {
            if (this.wanted[entry] === 0) continue;
            if (this.settled(entry)) continue;
            if (!this.request_send(entry)) break; // No free message: the next round retries.
            stats.replies_requested += 1;
        }
        if (this.wanted_count === 0) this.timeout.stop();
        assert(this.wanted_count > 0 || !this.timeout.ticking);
    }

    /**
     * A slot that no longer needs its fetch: the session was evicted (its entry freed or taken
     * by another client), or a newer reply of the session committed here since. Returns whether
     * the slot was let go.
     */
    private settled(entry: number): boolean {
        assert.equal(this.wanted[entry], 1);
        if (this.sessions.session(entry) !== 0 && this.sessions.reply_message(entry) === -1) {
            return false;
        }
        this.wanted[entry] = 0;
        this.wanted_count -= 1;
        assert(this.wanted_count >= 0);
        return true;
    }

    /** request_reply for the reply the session of `entry` expects, to this round's peer. */
    private request_send(entry: number): boolean {
        assert(this.replica_count > 1);
        const message = this.pool.acquire();
        if (message === -1) return false;
        const header = header_init(this.build_view, this.pool.bytes, this.pool.offset(message),
            Command.request_reply, header_size, this.release);
        this.host.reply_repair_frame(header);
        const expected = entry * header_size;
        const headers = this.sessions.reply_headers;
        header.copy16_from(request_reply_at.reply_checksum, headers, expected + frame.checksum);
        header.copy16_from(request_reply_at.reply_client, headers, expected + reply_at.client);
        header.set_u64(request_reply_at.reply_op, this.sessions.reply_commit(entry));
        seal_empty_body(header);
        // Entries spread over the peers, and each round moves every entry to the next peer.
        const peer = (this.replica + 1 + (this.rounds + entry) % (this.replica_count - 1)) %
            this.replica_count;
        assert(peer !== this.replica && peer >= 0 && peer < this.replica_count);
        this.host.reply_repair_send(peer, message);
        this.pool.unref(message);
        return true;
    }

    /**
     * A peer's request_reply: answers with the reply our session holds under exactly that
     * checksum, or says nothing (we hold another one, or lost it too: the asker tries the next).
     */
    on_request_reply(request: HeaderView, stats: ReplyRepairStats): void {
        assert.equal(request.command, Command.request_reply);
        const at = request_reply_at.reply_client;
        const entry = this.sessions.find(request.limb(at, 0), request.limb(at, 1),
            request.limb(at, 2), request.limb(at, 3));
        if (entry === -1) return;
        const message = this.sessions.reply_message(entry);
        if (message === -1) return;
        if (!this.sessions.reply_checksum_matches(entry, request.bytes,
            request.offset + request_reply_at.reply_checksum)) return;
        const reply = this.check_view.attach(this.pool.bytes, this.pool.offset(message));
        assert.equal(reply.command, Command.reply);
        assert(reply.equal16(frame.checksum, request.bytes,
            request.offset + request_reply_at.reply_checksum));
        stats.replies_served += 1;
        this.host.reply_repair_send(request.replica, message);
    }

    /**
     * A reply from a peer (the answer to our request_reply; validated, checksums included).
     * Returns whether it was taken into the session; a reply not wanted, or not the one the
     * session expects (stale, newer, forged), changes nothing.
     */
    on_reply(message: number, stats: ReplyRepairStats): boolean {
        const reply = this.check_view.attach(this.pool.bytes, this.pool.offset(message));
        assert.equal(reply.command, Command.reply);
        const at = reply_at.client;
        const entry = this.sessions.find(reply.limb(at, 0), reply.limb(at, 1),
            reply.limb(at, 2), reply.limb(at, 3));
        if (entry === -1 || this.wanted[entry] === 0 || this.settled(entry) ||
            !this.sessions.reply_checksum_matches(entry, reply.bytes,
                reply.offset + frame.checksum)) {
            stats.replies_refused += 1;
            return false;
        }
        assert.equal(this.sessions.request(entry), reply.u32(reply_at.request));
        assert.equal(this.sessions.reply_commit(entry), reply.u64(reply_at.commit));
        this.pool.ref(message);
        this.sessions.reply_message_set(entry, message);
        this.wanted[entry] = 0;
        this.wanted_count -= 1;
        assert(this.wanted_count >= 0);
        if (this.wanted_count === 0) this.timeout.stop();
        this.write_back(entry, message);
        return true;
    }

    /** Writes a repaired reply to its slot, so that the next restart reads it back. */
    private write_back(entry: number, message: number): void {
        // A slot is wanted only while its session has no reply, so no write back is in flight.
        assert.equal(this.writing[entry], -1);
        this.pool.ref(message);
        this.writing[entry] = message;
        this.client_replies.write(this.write_tag(entry), entry, this.pool.offset(message));
    }

    /** ClientReplies tags: the checkpoint's writes use the entry, ours the entry + capacity. */
    write_tag(entry: number): number {
        assert(entry >= 0 && entry < this.writing.length);
        return this.writing.length + entry;
    }

    is_write_tag(tag: number): boolean {
        return tag >= this.writing.length;
    }

    /** The write back of a repaired reply completed (0 or -errno). */
    written(tag: number, result: number): void {
        assert(this.is_write_tag(tag) && tag < 2 * this.writing.length && result <= 0);
        const entry = tag - this.writing.length;
        const message = this.writing[entry]!;
        assert(message !== -1, 'reply repair: a write completion with none in flight');
        this.writing[entry] = -1;
        this.pool.unref(message);
        if (result < 0) {
            // The reply is in memory and answers retries; only a restart before the next
            // checkpoint rewrites the slot would lose it again, and fetch it again.
            this.host.reply_repair_log(`replica ${this.replica}: warning: writing back the ` +
                `repaired reply of session slot ${entry} failed (errno ${-result})`);
        }
    }
}
