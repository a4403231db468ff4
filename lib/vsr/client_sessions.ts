// The client session table (docs/vsr.md §5, docs/wire-protocol.md §5): one entry per registered
// client, holding its session number (the op that committed its register) and the header of its
// latest reply, plus the reply message itself (a pool message) so that a retried request is
// answered from it rather than executed twice. Entries change only when a prepare commits, so the
// table is a deterministic function of the committed log: replaying the WAL rebuilds it exactly.
//
// When the table is full, registering a new client evicts the entry whose latest reply has the
// lowest commit (the least recently served client), as TigerBeetle does.
//
// Fixed capacity (clients_max), typed arrays only; a client id is four u32 words. Lookup is a
// linear scan: clients_max is small (64 by default) and the scan touches one Uint32Array.
import assert from 'node:assert/strict';

import { header_size } from './constants';
import { Command, offsets, frame } from './header_layout';
import type { MessagePool } from './message_pool';

const reply_at = offsets.reply;

// The checkpointed form (a blob in the checkpoint): a 16-byte preamble {magic u32, capacity u32,
// count u32, reserved u32}, then per entry {session u64, reserved u64, latest reply header}.
// Entry i's reply body lives in slot i of the client_replies zone.
const blob_magic = 0x53534c52; // "RLSS"
const blob_preamble_size = 16;
const blob_entry_size = 16 + header_size;

/** The blob size for a table of `capacity` entries (the checkpoint reserves this much). */
export function sessions_size_max(capacity: number): number {
    return blob_preamble_size + capacity * blob_entry_size;
}

export class ClientSessions {
    readonly capacity: number;
    private readonly pool: MessagePool;
    /** Client id words (little-endian u32 limbs); all zero marks a free entry. */
    private readonly clients: Uint32Array;
    private readonly sessions: Float64Array;
    /** The latest reply header of each entry (the durable part of an entry, as in TigerBeetle). */
    readonly reply_headers: Uint8Array;
    /** The latest reply message (pool index), or -1 when the body is not in memory. */
    private readonly reply_messages: Int32Array;
    /** The connection the client was last heard on, or -1. */
    private readonly connections: Int32Array;
    count = 0;

    constructor(capacity: number, pool: MessagePool) {
        assert(Number.isInteger(capacity) && capacity >= 1);
        this.capacity = capacity;
        this.pool = pool;
        this.clients = new Uint32Array(capacity * 4);
        this.sessions = new Float64Array(capacity);
        this.reply_headers = new Uint8Array(capacity * header_size);
        this.reply_messages = new Int32Array(capacity).fill(-1);
        this.connections = new Int32Array(capacity).fill(-1);
    }

    /** The entry of client (c0..c3), or -1. */
    find(c0: number, c1: number, c2: number, c3: number): number {
        assert((c0 | c1 | c2 | c3) !== 0, 'client 0 has no session');
        const clients = this.clients;
        for (let entry = 0; entry < this.capacity; entry++) {
            const at = entry * 4;
            if (clients[at] === c0 && clients[at + 1] === c1 && clients[at + 2] === c2 &&
                clients[at + 3] === c3) return entry;
        }
        return -1;
    }

    session(entry: number): number {
        assert(entry >= 0 && entry < this.capacity);
        return this.sessions[entry]!;
    }

    /** The latest request number answered for this entry. */
    request(entry: number): number {
        const at = entry * header_size + reply_at.request;
        const bytes = this.reply_headers;
        return (bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 | bytes[at + 3]! << 24) >>>
            0;
    }

    /** The release of the latest request (the reply echoes it). */
    release(entry: number): number {
        const at = entry * header_size + frame.release;
        const bytes = this.reply_headers;
        return (bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 | bytes[at + 3]! << 24) >>>
            0;
    }

    /** Whether the latest reply answered the request whose checksum is bytes[at, +16). */
    reply_answers(entry: number, bytes: Uint8Array, at: number): boolean {
        return equal16(this.reply_headers, entry * header_size + reply_at.request_checksum,
            bytes, at);
    }

    /** Whether bytes[at, +16) is the latest reply's own header checksum. */
    reply_checksum_matches(entry: number, bytes: Uint8Array, at: number): boolean {
        assert(entry >= 0 && entry < this.capacity && this.sessions[entry]! > 0);
        return equal16(this.reply_headers, entry * header_size + frame.checksum, bytes, at);
    }

    /** Whether bytes[at, +16) is the latest reply's context (the expected next `parent`). */
    context_matches(entry: number, bytes: Uint8Array, at: number): boolean {
        return equal16(this.reply_headers, entry * header_size + reply_at.context, bytes, at);
    }

    reply_message(entry: number): number {
        assert(entry >= 0 && entry < this.capacity);
        return this.reply_messages[entry]!;
    }

    connection(entry: number): number {
        assert(entry >= 0 && entry < this.capacity);
        return this.connections[entry]!;
    }

    connection_set(entry: number, connection: number): void {
        assert(entry >= 0 && entry < this.capacity && this.sessions[entry]! > 0);
        this.connections[entry] = connection;
    }

    /** Forgets a closed connection wherever it is recorded. */
    connection_closed(connection: number): void {
        assert(connection >= 0);
        for (let entry = 0; entry < this.capacity; entry++) {
            if (this.connections[entry] === connection) this.connections[entry] = -1;
        }
    }

    /**
     * The entry a new registration takes: a free one, else the one whose latest reply committed
     * earliest (deterministic: commits are unique). The caller evicts it first.
     */
    evictee(): number {
        let oldest = -1;
        let oldest_commit = Infinity;
        for (let entry = 0; entry < this.capacity; entry++) {
            if (this.sessions[entry] === 0) return entry;
            const commit = this.reply_commit(entry);
            if (commit < oldest_commit) {
                oldest = entry;
                oldest_commit = commit;
            }
        }
        // No free entry: the table is full.
        assert(oldest >= 0 && this.count === this.capacity);
        return oldest;
    }

    /** Client id word `word` (0..3) of an entry, to address its eviction message. */
    client_word(entry: number, word: number): number {
        assert(word >= 0 && word < 4 && this.sessions[entry]! > 0);
        return this.clients[entry * 4 + word]!;
    }

    /** Empties an entry, releasing its reply message. */
    remove(entry: number): void {
        assert(this.sessions[entry]! > 0, 'remove: entry is free');
        this.clients.fill(0, entry * 4, entry * 4 + 4);
        this.sessions[entry] = 0;
        this.reply_headers.fill(0, entry * header_size, (entry + 1) * header_size);
        this.message_release(entry);
        this.connections[entry] = -1;
        this.count -= 1;
        assert(this.count >= 0);
    }

    /** Takes a free entry for a client registered by the prepare at `session` (its op). */
    insert(entry: number, c0: number, c1: number, c2: number, c3: number, session: number): void {
        assert(entry >= 0 && entry < this.capacity);
        assert(this.sessions[entry] === 0, 'insert: entry is taken');
        assert(session > 0 && this.find(c0, c1, c2, c3) === -1);
        const at = entry * 4;
        this.clients[at] = c0;
        this.clients[at + 1] = c1;
        this.clients[at + 2] = c2;
        this.clients[at + 3] = c3;
        this.sessions[entry] = session;
        this.count += 1;
        assert(this.count <= this.capacity);
    }

    /**
     * Records the latest reply of an entry: copies its header and keeps a reference to the
     * message (dropping the previous one). Commits must increase.
     */
    reply_store(entry: number, message: number): void {
        assert(this.sessions[entry]! > 0);
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        const commit = u64_number(bytes, offset + reply_at.commit);
        assert(commit > this.reply_commit(entry) || this.reply_commit(entry) === 0);
        // The caller's reference; the entry takes its own below.
        assert(this.pool.references_of(message) >= 1);
        assert.equal(bytes[offset + frame.command], Command.reply);
        assert(this.client_matches(entry, bytes, offset + reply_at.client),
            'sessions: a reply stored under another client');
        this.reply_headers.set(bytes.subarray(offset, offset + header_size), entry * header_size);
        this.pool.ref(message);
        this.message_release(entry);
        this.reply_messages[entry] = message;
    }

    /** Whether bytes[at, +16) is the entry's client id (four little-endian u32 words). */
    private client_matches(entry: number, bytes: Uint8Array, at: number): boolean {
        for (let word = 0; word < 4; word++) {
            const w = at + word * 4;
            const value = (bytes[w]! | bytes[w + 1]! << 8 | bytes[w + 2]! << 16 |
                bytes[w + 3]! << 24) >>> 0;
            if (value !== this.clients[entry * 4 + word]) return false;
        }
        return true;
    }

    /** The commit (op) of the entry's latest reply. */
    reply_commit(entry: number): number {
        return u64_number(this.reply_headers, entry * header_size + reply_at.commit);
    }

    /** Writes the checkpointed form into `blob`; returns its size. */
    encode(blob: Uint8Array): number {
        const size = sessions_size_max(this.capacity);
        assert(blob.length >= size);
        const view = new DataView(blob.buffer, blob.byteOffset, size);
        view.setUint32(0, blob_magic, true);
        view.setUint32(4, this.capacity, true);
        view.setUint32(8, this.count, true);
        view.setUint32(12, 0, true);
        let used = 0;
        for (let entry = 0; entry < this.capacity; entry++) {
            const at = blob_preamble_size + entry * blob_entry_size;
            const session = this.sessions[entry]!;
            if (session > 0) used += 1;
            view.setUint32(at, session % 0x1_0000_0000, true);
            view.setUint32(at + 4, Math.floor(session / 0x1_0000_0000), true);
            view.setUint32(at + 8, 0, true);
            view.setUint32(at + 12, 0, true);
            blob.set(this.reply_headers.subarray(entry * header_size, (entry + 1) * header_size),
                at + 16);
        }
        // The blob's count is the number of entries it holds.
        assert.equal(used, this.count);
        return size;
    }

    /**
     * Loads the checkpointed form (startup; the table must be empty). Returns null, or why the
     * blob cannot be this table's (a checkpoint of another clients_max, or damage).
     */
    decode(blob: Uint8Array): string | null {
        assert.equal(this.count, 0);
        if (blob.length === 0) return null; // Checkpoint 0: no sessions yet.
        if (blob.length !== sessions_size_max(this.capacity)) {
            return `the sessions blob is ${blob.length} bytes, clients_max ${this.capacity} ` +
                `needs ${sessions_size_max(this.capacity)}`;
        }
        const view = new DataView(blob.buffer, blob.byteOffset, blob.length);
        if (view.getUint32(0, true) !== blob_magic) return 'the sessions blob has no magic';
        if (view.getUint32(4, true) !== this.capacity) return 'the sessions blob capacity differs';
        for (let entry = 0; entry < this.capacity; entry++) {
            const at = blob_preamble_size + entry * blob_entry_size;
            const session = view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
            if (session === 0) continue;
            const header = entry * header_size;
            this.reply_headers.set(blob.subarray(at + 16, at + 16 + header_size), header);
            for (let word = 0; word < 4; word++) {
                this.clients[entry * 4 + word] = view.getUint32(at + 16 + reply_at.client +
                    word * 4, true);
            }
            this.sessions[entry] = session;
            this.count += 1;
        }
        assert(this.count <= this.capacity);
        if (this.count !== view.getUint32(8, true)) return 'the sessions blob count differs';
        return null;
    }

    /** Startup: the reply message read back from the client_replies zone for an entry. */
    reply_message_set(entry: number, message: number): void {
        assert(this.sessions[entry]! > 0 && this.reply_messages[entry] === -1);
        assert(this.pool.references_of(message) >= 1);
        this.reply_messages[entry] = message;
    }

    /** Drops every reply reference (shutdown), so that the pool can be checked for leaks. */
    release_all(): void {
        for (let entry = 0; entry < this.capacity; entry++) this.message_release(entry);
    }

    private message_release(entry: number): void {
        const message = this.reply_messages[entry]!;
        if (message === -1) return;
        this.reply_messages[entry] = -1;
        this.pool.unref(message);
    }
}

function equal16(a: Uint8Array, a_at: number, b: Uint8Array, b_at: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (a[a_at + index] !== b[b_at + index]) return false;
    }
    return true;
}

function u64_number(bytes: Uint8Array, at: number): number {
    const low = (bytes[at]! | bytes[at + 1]! << 8 | bytes[at + 2]! << 16 | bytes[at + 3]! << 24) >>>
        0;
    const high = (bytes[at + 4]! | bytes[at + 5]! << 8 | bytes[at + 6]! << 16 |
        bytes[at + 7]! << 24) >>> 0;
    assert(high < 0x200000);
    return high * 0x1_0000_0000 + low;
}
