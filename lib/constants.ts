// The configuration constants, each defined here once, with the relations between them asserted
// once at load beside the reason for each. Every layer imports them from here (this module
// imports nothing of ours, so it sits below every layer). Per-run settings that a data file
// records (slot_count, clients_max, capacity) have their production defaults here; the file's own
// values win at `start`.
import assert from 'node:assert/strict';

/** O_DIRECT's unit: every disk I/O offset and length is a multiple of it. */
export const sector_size = 4096;

/** Every message starts with a 256-byte header (two cache-line halves: frame, command part). */
export const header_size = 256;
export const headers_per_sector = sector_size / header_size;

/** The largest message, header included: a request of 8189 transfers fits (TigerBeetle's). */
export const message_size_max = 1024 * 1024;
export const message_body_size_max = message_size_max - header_size;

/** Release 0.17.9 as the u32 {patch u8, minor u8, major u16}: bytes 09 11 00 00. */
export const release_0_17_9 = 0x00001109;
/** The release this server runs and answers with. */
export const release_server = release_0_17_9;
/** The oldest client release 0.17.9 serves: 0.16.4. */
export const release_client_min = 0x00001004;

/** One tick of the replica's and the client's clocks. */
export const tick_ms = 10;

/** Client sessions a replica keeps by default (one client replies slot each). */
export const clients_max_default = 64;

/** WAL slots in production: op N lives in slot N mod slot_count. */
export const slot_count_production = 1024;

/**
 * Prepares the primary has in flight at once; the journal writes that many in parallel (one
 * write slot per prepare), so the two are one number.
 */
export const pipeline_prepare_queue_max = 8;
export const journal_writes_max = pipeline_prepare_queue_max;

/** 2^32, for splitting numbers into 32-bit limbs. */
export const two_32 = 0x1_0000_0000;

/** get_change_events answers at most this many 384-byte events: what one reply body holds. */
export const change_event_size = 384;
export const change_events_reply_max = Math.floor(message_body_size_max / change_event_size);

// The relations, asserted once at load.
// O_DIRECT: whole messages and header sectors are written in place from the arena.
assert.equal(message_size_max % sector_size, 0);
assert.equal(sector_size % header_size, 0);
// A prepare's WAL write slot exists for every prepare the pipeline can hold.
assert(journal_writes_max >= pipeline_prepare_queue_max);
// The WAL holds the pipeline twice over beyond a checkpoint interval (storage/checkpoint.ts).
assert(slot_count_production > 4 * pipeline_prepare_queue_max);
// The change-event reply bound is the one the client and the state machine agree on.
assert.equal(change_events_reply_max, 2730);
