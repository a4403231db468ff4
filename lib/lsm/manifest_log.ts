// The manifest log: how a forest persists its trees' manifests without rewriting them. Every
// change to a manifest (a table inserted into a level, or removed from one) is an event of 128
// bytes; a checkpoint appends the events since the last one to new log blocks, so what it writes
// grows with the changes, not with the state. Restoring a manifest replays the log from its
// oldest block to its newest.
//
// The log is kept bounded by compacting its oldest blocks at checkpoints: an oldest block is
// dropped once the inserts it holds that are still live (a table whose insert is in that block,
// as each manifest row remembers) are appended again at the log's head. Its removes are dropped
// with it: they cancel inserts that are in that block or in blocks dropped before. A remove whose
// insert was dropped thus finds no table on replay, and is skipped.
//
// Event: kind u8 | level u8 | tree_id u16 | data_block_count u32 | entry_count u32 | zero u32 |
//   snapshot u64 | zero u64 | index reference [32] | key_min [32] | key_max [32] (keys of up to
//   8 words, zero-padded). A remove carries the level, tree, reference and key_min only.
import assert from 'node:assert/strict';

import { reference_copy, reference_size } from '../vsr/grid';
import { u32_read, u32_write, u64_read, u64_write } from '../vsr/prepare_header';
import { key_copy, key_words_max } from './key';
import type { Manifest } from './manifest';

export const manifest_event_size = 128;
export const event_insert = 1;
export const event_remove = 2;

const e_kind = 0;
const e_level = 1;
const e_tree_id = 2;
const e_data_block_count = 4;
const e_entry_count = 8;
const e_snapshot = 16;
const e_reference = 32;
const e_key_min = 64;
const e_key_max = 96;
assert(e_key_max + key_words_max * 4 === manifest_event_size);

/** Events recorded since the last checkpoint (and live ones appended again), in order. */
export class ManifestLog {
    readonly events_max: number;
    /**
     * The changes trees may record between two checkpoints; the room above it is the log
     * compaction's, for the live inserts it appends again (`limit` is raised while it does).
     */
    readonly changes_max: number;
    limit: number;
    readonly bytes: Uint8Array;
    readonly words: Uint32Array;
    count = 0;

    constructor(changes_max: number, events_max: number) {
        assert(Number.isSafeInteger(events_max) && changes_max >= 1);
        assert(changes_max <= events_max);
        this.events_max = events_max;
        this.changes_max = changes_max;
        this.limit = changes_max;
        this.bytes = new Uint8Array(events_max * manifest_event_size);
        this.words = new Uint32Array(this.bytes.buffer);
    }

    /** Records the table at `position` of `level`, inserted there or about to be removed. */
    record(kind: number, tree_id: number, manifest: Manifest, level: number,
        position: number): void {
        assert(kind === event_insert || kind === event_remove);
        assert(this.limit <= this.events_max);
        if (this.count >= this.limit) {
            assert.fail(`lsm: more than ${this.limit} manifest changes between two checkpoints`);
        }
        assert(position >= 0 && position < manifest.counts[level]!);
        const offset = this.count * manifest_event_size;
        const key_words = manifest.key_words;
        const bytes = this.bytes;
        bytes.fill(0, offset, offset + manifest_event_size);
        bytes[offset + e_kind] = kind;
        bytes[offset + e_level] = level;
        bytes[offset + e_tree_id] = tree_id & 0xff;
        bytes[offset + e_tree_id + 1] = tree_id >>> 8;
        reference_copy(bytes, offset + e_reference, manifest.references[level]!,
            position * reference_size);
        key_copy(this.words, (offset + e_key_min) / 4, manifest.key_min[level]!,
            position * key_words, key_words);
        if (kind === event_insert) {
            u32_write(bytes, offset + e_data_block_count,
                manifest.data_block_count[level]![position]!);
            u32_write(bytes, offset + e_entry_count, manifest.entry_count[level]![position]!);
            u64_write(bytes, offset + e_snapshot, manifest.snapshot_min[level]![position]!);
            key_copy(this.words, (offset + e_key_max) / 4, manifest.key_max[level]!,
                position * key_words, key_words);
        }
        this.count += 1;
    }

    clear(): void {
        assert(this.count <= this.events_max);
        this.count = 0;
        this.limit = this.changes_max;
    }
}

export function event_kind(bytes: Uint8Array, offset: number): number {
    return bytes[offset + e_kind]!;
}

export function event_tree_id(bytes: Uint8Array, offset: number): number {
    return bytes[offset + e_tree_id]! | (bytes[offset + e_tree_id + 1]! << 8);
}

export function event_level(bytes: Uint8Array, offset: number): number {
    return bytes[offset + e_level]!;
}

/** The table an event names, in the manifest now: its position, or -1. */
export function event_find(words: Uint32Array, bytes: Uint8Array, offset: number,
    manifest: Manifest): number {
    // `words` views the same bytes: word w is bytes[4w, 4w + 4).
    assert(offset % 4 === 0 && words.buffer === bytes.buffer);
    assert(words.byteOffset === bytes.byteOffset);
    const level = event_level(bytes, offset);
    assert(level < manifest.level_count);
    return manifest.find_reference(level, words, (offset + e_key_min) / 4,
        bytes, offset + e_reference);
}

/**
 * Whether an event read from disk is one this manifest can apply (the block verified, so this
 * guards against a log written for another shape of tree, never against rot).
 */
export function event_valid(bytes: Uint8Array, offset: number, manifest: Manifest): boolean {
    const kind = event_kind(bytes, offset);
    if (kind !== event_insert && kind !== event_remove) return false;
    if (event_level(bytes, offset) >= manifest.level_count) return false;
    if (kind === event_remove) return true;
    const data_block_count = u32_read(bytes, offset + e_data_block_count);
    return data_block_count >= 1 && u32_read(bytes, offset + e_entry_count) >= data_block_count;
}

/** Applies an event to the manifest; an insert's table remembers the log block `sequence`. */
export function event_apply(words: Uint32Array, bytes: Uint8Array, offset: number,
    manifest: Manifest, sequence: number): void {
    assert(event_valid(bytes, offset, manifest) && sequence >= 1);
    const level = event_level(bytes, offset);
    if (event_kind(bytes, offset) === event_remove) {
        const position = event_find(words, bytes, offset, manifest);
        // Its insert was in a dropped block: the table was never restored.
        if (position !== -1) manifest.remove(level, position);
        return;
    }
    assert(words.byteOffset === bytes.byteOffset && offset % 4 === 0);
    const word = offset / 4;
    const position = manifest.insert(level, words, word + e_key_min / 4, words,
        word + e_key_max / 4, bytes, offset + e_reference, u64_read(bytes, offset + e_snapshot),
        u32_read(bytes, offset + e_data_block_count), u32_read(bytes, offset + e_entry_count));
    manifest.log_block[level]![position] = sequence;
}
