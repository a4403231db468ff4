// The state image: the ledger's persistent state as checkpoints and snapshots see it. The state
// is seven segments (accounts, transfers, per-transfer status and history row, burnt ids,
// history rows, change events), each a typed array the ledger owns over its whole capacity; a
// segment's used part is a prefix sized by one of five counts. Everything else the ledger keeps
// (id tables, per-account transfer lists, the expiry heap) is derived and rebuilt on load.
//
// * `segments` / `used_bytes`: what a checkpoint stores (lib/ledger/checkpoint.ts), in place.
// * `snapshot` / `snapshot_load`: the same prefixes behind a header of the five counts, as one
//   buffer (tests and tools).
// * `checksum`: a deterministic digest of the used prefixes.
// * `DirtyChunks`: which chunks of a record store changed since the last checkpoint, so that
//   an incremental checkpoint writes only those (append-only segments need no tracking: their
//   new bytes are those past the last checkpoint's used bytes).
import assert from 'node:assert/strict';

/** The persistent state segments, in order: name, bytes per element, and what tracks their
 * changes between checkpoints: a record store's dirty chunks, or appends only. */
export const state_segment_layout: readonly (readonly [string, number, string])[] = [
    ['accounts', 128, 'accounts'], ['transfers', 128, 'transfers'],
    ['transfer_status', 1, 'transfers'], ['transfer_history_row', 4, 'transfers'],
    ['orphans', 16, 'append'], ['history', 128, 'append'], ['change_events', 160, 'append'],
];

// The five counts, and which of them sizes each segment (in layout order).
const count_accounts = 0, count_transfers = 1, count_orphans = 2, count_history = 3;
const count_change_events = 4, counts_total = 5;
const segment_count_index: readonly number[] = [
    count_accounts, count_transfers, count_transfers, count_transfers, count_orphans,
    count_history, count_change_events,
];
const segments_total = state_segment_layout.length;
/** A snapshot starts with the five counts, u32 little-endian. */
const snapshot_header_size = counts_total * 4;
assert.equal(segment_count_index.length, segments_total);
assert.equal(state_segment_layout[count_accounts][0], 'accounts');
assert.equal(state_segment_layout[count_transfers][0], 'transfers');
// The checksum reads the word-sized segments as u32 words, and transfer_status as bytes.
const segment_transfer_status = 2, segment_transfer_history_row = 3;
assert.equal(state_segment_layout[segment_transfer_status][1], 1);
assert.equal(state_segment_layout[segment_transfer_history_row][1], 4);

export class StateImage {
    /** Byte views over the whole capacity of each segment, in layout order (made once). */
    private readonly segment_bytes: readonly Uint8Array[];
    /** The same as u32 words (transfer_status, one byte per element, has none). */
    private readonly segment_words: readonly Uint32Array[];
    private readonly capacity: Float64Array = new Float64Array(counts_total);
    /** The counts read by `counts_read` or `snapshot_load`. */
    accounts_count = 0;
    transfers_count = 0;
    orphans_count = 0;
    history_count = 0;
    change_events_count = 0;
    /** The used bytes per segment of the last `snapshot_load`, for `Ledger.state_load_finish`. */
    readonly used = new Float64Array(segments_total);

    /**
     * `segments` are the ledger's arrays in layout order; `capacities` the five counts' maxima
     * (accounts, transfers, orphans, history, change events), which size each array exactly.
     */
    constructor(segments: readonly (Uint8Array | Uint32Array)[], capacities: readonly number[]) {
        assert.equal(segments.length, segments_total, 'state_image: segment count');
        assert.equal(capacities.length, counts_total, 'state_image: capacity count');
        this.segment_bytes = segments.map((array) =>
            new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
        this.segment_words = segments.map((array, segment) => segment ===
            segment_transfer_status ? new Uint32Array(0) :
            new Uint32Array(array.buffer, array.byteOffset, array.byteLength >>> 2));
        for (let count = 0; count < counts_total; count++) {
            assert(Number.isInteger(capacities[count]) && capacities[count] >= 0);
            this.capacity[count] = capacities[count];
        }
        for (let segment = 0; segment < segments_total; segment++) {
            const bytes_per_element = state_segment_layout[segment][1];
            const elements = this.capacity[segment_count_index[segment]];
            assert.equal(this.segment_bytes[segment].byteLength, elements * bytes_per_element,
                `state_image: ${state_segment_layout[segment][0]} is not sized by its count`);
        }
    }

    /** Byte views over each segment's whole capacity, in layout order. */
    segments(): Uint8Array[] {
        const segments = this.segment_bytes.slice();
        assert.equal(segments.length, segments_total);
        return segments;
    }

    /** Writes the used bytes of each segment, for the given counts, into `out`. */
    used_bytes(out: Float64Array, accounts: number, transfers: number, orphans: number,
        history: number, change_events: number): void {
        assert(out.length >= segments_total);
        assert(accounts <= this.capacity[count_accounts]);
        assert(transfers <= this.capacity[count_transfers]);
        assert(orphans <= this.capacity[count_orphans] && history <= this.capacity[count_history]);
        assert(change_events <= this.capacity[count_change_events]);
        const counts = [accounts, transfers, orphans, history, change_events];
        for (let segment = 0; segment < segments_total; segment++) {
            out[segment] = counts[segment_count_index[segment]] *
                state_segment_layout[segment][1];
        }
    }

    /**
     * Reads the counts back from a segment's used bytes (after a checkpoint loaded them in
     * place), checking that they are whole elements, agree where segments share a count, and fit.
     */
    counts_read(used: Float64Array): void {
        assert(used.length >= segments_total);
        const counts = [-1, -1, -1, -1, -1];
        for (let segment = 0; segment < segments_total; segment++) {
            const elements = used[segment] / state_segment_layout[segment][1];
            const index = segment_count_index[segment];
            assert(Number.isInteger(elements) && elements >= 0,
                `state_image: ${state_segment_layout[segment][0]} holds a partial element`);
            assert(counts[index] === -1 || counts[index] === elements,
                `state_image: ${state_segment_layout[segment][0]} disagrees with its count`);
            assert(elements <= this.capacity[index], 'state_image: a count exceeds its maximum');
            counts[index] = elements;
        }
        this.accounts_count = counts[count_accounts];
        this.transfers_count = counts[count_transfers];
        this.orphans_count = counts[count_orphans];
        this.history_count = counts[count_history];
        this.change_events_count = counts[count_change_events];
    }

    /** Serialises the used prefixes behind a header of the counts (allocates: not hot). */
    snapshot(accounts: number, transfers: number, orphans: number, history: number,
        change_events: number): Uint8Array {
        const used = new Float64Array(segments_total);
        this.used_bytes(used, accounts, transfers, orphans, history, change_events);
        let size = snapshot_header_size;
        for (let segment = 0; segment < segments_total; segment++) size += used[segment];
        const bytes = new Uint8Array(size);
        const view = new DataView(bytes.buffer);
        const counts = [accounts, transfers, orphans, history, change_events];
        for (let count = 0; count < counts_total; count++) {
            view.setUint32(count * 4, counts[count], true);
        }
        let at = snapshot_header_size;
        for (let segment = 0; segment < segments_total; segment++) {
            bytes.set(this.segment_bytes[segment].subarray(0, used[segment]), at);
            at += used[segment];
        }
        assert.equal(at, size);
        return bytes;
    }

    /**
     * Loads a snapshot into the segments in place, zero beyond each used prefix, and sets the
     * counts and `used`: the ledger then rebuilds what is derived (`Ledger.state_load_finish`).
     */
    snapshot_load(bytes: Uint8Array): void {
        assert(bytes.length >= snapshot_header_size, 'state_image: snapshot too short');
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const counts: number[] = [];
        for (let count = 0; count < counts_total; count++) {
            counts.push(view.getUint32(count * 4, true));
            assert(counts[count] <= this.capacity[count], 'state_image: snapshot too large');
        }
        this.used_bytes(this.used, counts[0], counts[1], counts[2], counts[3], counts[4]);
        let at = snapshot_header_size;
        for (let segment = 0; segment < segments_total; segment++) at += this.used[segment];
        assert.equal(bytes.length, at, 'state_image: snapshot size does not match its counts');
        at = snapshot_header_size;
        for (let segment = 0; segment < segments_total; segment++) {
            const target = this.segment_bytes[segment], used = this.used[segment];
            target.set(bytes.subarray(at, at + used));
            target.fill(0, used);
            at += used;
        }
        this.counts_read(this.used);
        assert.equal(this.accounts_count, counts[count_accounts]);
        assert.equal(this.change_events_count, counts[count_change_events]);
    }

    /** A deterministic 64-bit digest of the used prefixes and the counts. */
    checksum(accounts: number, transfers: number, orphans: number, history: number,
        change_events: number): bigint {
        const used = new Float64Array(segments_total);
        this.used_bytes(used, accounts, transfers, orphans, history, change_events);
        let low = 0x811c9dc5 | 0, high = 0x01000193 | 0;
        // Accounts, transfers, orphans, history, change events: every word segment but the
        // per-transfer history rows, which follow from the order of the transfers.
        for (const segment of [0, 1, 4, 5, 6]) {
            const words = this.segment_words[segment], count = used[segment] >>> 2;
            for (let word = 0; word < count; word++) {
                low = Math.imul(low ^ words[word], 0x01000193);
                high = Math.imul(high ^ words[word] ^ (low >>> 13), 0x5bd1e995);
            }
        }
        const status = this.segment_bytes[segment_transfer_status];
        for (let slot = 0; slot < transfers; slot++) low = Math.imul(low ^ status[slot], 31);
        low = Math.imul(low ^ accounts, 0x9e3779b1);
        high = Math.imul(high ^ transfers, 0x85ebca77);
        return (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
    }
}

/**
 * Dirty tracking for incremental checkpoints: the chunks of `chunk_records` records a record
 * store changed since `clear`, as flags and as a list, so that a checkpoint visits only what
 * changed. Off (`chunk_records` 0) until `track` is called.
 */
export class DirtyChunks {
    chunk_records = 0;
    flags: Uint8Array = new Uint8Array(0);
    list: Uint32Array = new Uint32Array(0);
    count = 0;

    /** Startup: turns tracking on for `records_max` records in chunks of `chunk_records`. */
    track(chunk_records: number, records_max: number): void {
        assert(Number.isInteger(chunk_records) && chunk_records > 0);
        assert(Number.isInteger(records_max) && records_max > 0);
        const chunks = Math.ceil(records_max / chunk_records);
        assert(chunks * chunk_records >= records_max && chunks <= 0xffffffff);
        this.chunk_records = chunk_records;
        this.flags = new Uint8Array(chunks);
        this.list = new Uint32Array(chunks);
        this.count = 0;
    }

    mark(slot: number): void {
        if (this.chunk_records === 0) return;
        const chunk = Math.floor(slot / this.chunk_records);
        if (this.flags[chunk] === 1) return;
        // A store beyond the flags would be dropped silently: a slot beyond records_max.
        if (chunk >= this.flags.length) assert.fail('dirty: slot beyond the tracked records');
        this.flags[chunk] = 1;
        this.list[this.count++] = chunk;
    }

    clear(): void {
        assert(this.count <= this.list.length);
        for (let index = 0; index < this.count; index++) this.flags[this.list[index]] = 0;
        this.count = 0;
    }
}
