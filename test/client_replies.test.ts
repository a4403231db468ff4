// The client replies zone: replies read back exactly when intact; every fault kind (bit flip,
// lost, misdirected, latent error, crash tearing or losing a write) is reported as corrupt or
// unreadable, never handed out as the reply; and a checkpoint waits for reply writes in flight.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';
import { storage_config_for } from '../lib/ledger/checkpoint';
import { ClientReplies, ClientReplyResult } from '../lib/vsr/client_replies';
import type { ClientRepliesListener } from '../lib/vsr/client_replies';
import { storage_format } from '../lib/vsr/data_file';
import {
    body_checksum_set, header_checksum_set, u32_write, u64_write,
} from '../lib/vsr/prepare_header';
import { CrashMode, SimulatorStorage, WriteFault } from '../lib/storage/simulator_storage';
import type { Storage, StorageCompletionTarget } from '../lib/storage/storage';
import { storage_run_until } from '../lib/storage/storage';
import { Zone, ZoneLayout, config_test } from '../lib/storage/zones';
import { Command, frame, offsets } from '../lib/vsr/header_layout';
import { LedgerFiller, checkpoint_node_boot } from '../lib/testing/checkpoint_fixture';

const ledger_config = { accounts_max: 64, transfers_max: 128 };
const config = storage_config_for(config_test, ledger_config, 0);
const message_size = config.message_size_max;

class Replies implements ClientRepliesListener {
    readonly written: number[] = [];
    readonly read: Map<number, number> = new Map();
    client_reply_written(tag: number, result: number): void {
        assert.equal(result, 0);
        this.written.push(tag);
    }
    client_reply_read(tag: number, result: number): void {
        this.read.set(tag, result);
    }
}

function simulator(seed: number, dsync = true): SimulatorStorage {
    return new SimulatorStorage(new Arena(8 << 20), new ZoneLayout(config), {
        seed, latency_ticks_min: 0, latency_ticks_max: 3, operations_max: 32, dsync,
    });
}

/** Builds reply `op` of `body_size` bytes at arena offset `at`; returns a copy of its header. */
function reply_build(arena: Arena, at: number, op: number, body_size: number): Uint8Array {
    const bytes = arena.bytes;
    bytes.fill(0, at, at + 256);
    u32_write(bytes, at + frame.size, 256 + body_size);
    bytes[at + frame.command] = Command.reply;
    u64_write(bytes, at + offsets.reply.op, op);
    for (let index = 0; index < body_size; index++) {
        bytes[at + 256 + index] = (op * 7 + index) & 0xff;
    }
    body_checksum_set(bytes, at);
    header_checksum_set(bytes, at);
    return bytes.slice(at, at + 256);
}

interface Setup {
    storage: SimulatorStorage;
    replies: ClientReplies;
    events: Replies;
    write_at: number;
    read_at: number;
}

function setup(seed: number, dsync = true): Setup {
    const storage = simulator(seed, dsync);
    const events = new Replies();
    const replies = new ClientReplies(storage, events, 8);
    return {
        storage, replies, events,
        write_at: storage.arena.allocate(2 * message_size),
        read_at: storage.arena.allocate(message_size),
    };
}

async function write(s: Setup, slot: number, op: number, body_size: number,
    at: number = s.write_at): Promise<Uint8Array> {
    const header = reply_build(s.storage.arena, at, op, body_size);
    const count = s.events.written.length;
    s.replies.write(op, slot, at);
    await storage_run_until(s.storage, () => s.events.written.length > count);
    return header;
}

async function read(s: Setup, slot: number, header: Uint8Array): Promise<number> {
    const tag = 1000 + s.events.read.size;
    s.replies.read(tag, slot, header, 0, s.read_at);
    await storage_run_until(s.storage, () => s.events.read.has(tag));
    return s.events.read.get(tag)!;
}

test('client replies: each slot reads back its latest reply exactly', async () => {
    const s = setup(1);
    const headers: Uint8Array[] = [];
    for (let slot = 0; slot < config.clients_max; slot++) {
        headers.push(await write(s, slot, 10 + slot, 100 + slot * 1000));
    }
    for (let slot = 0; slot < config.clients_max; slot++) {
        assert.equal(await read(s, slot, headers[slot]!), ClientReplyResult.ok);
        const size = 256 + 100 + slot * 1000;
        const expected = reply_build(new Arena(8192), 0, 10 + slot, 100 + slot * 1000);
        assert.deepEqual(s.storage.arena.bytes.slice(s.read_at, s.read_at + 256), expected);
        assert.equal(s.storage.arena.bytes[s.read_at + size - 1], (10 + slot) * 7 +
            size - 257 & 0xff);
    }
    // A header the slot does not hold (an older reply) is never answered with the newer one.
    const older = reply_build(new Arena(8192), 0, 9, 100);
    assert.equal(await read(s, 0, older), ClientReplyResult.corrupt);
});

test('client replies: every write fault is detected, never handed out as the reply', async () => {
    const kinds = [WriteFault.bit_flip, WriteFault.lost, WriteFault.misdirect,
        WriteFault.latent_error];
    for (const fault of kinds) {
        for (let seed = 1; seed <= 6; seed++) {
            const s = setup(seed);
            const old = await write(s, 1, 5, 3840);
            // A body that fills whole sectors: a bit flip cannot hide in padding.
            s.storage.fault_next_write(Zone.client_replies, fault, 2 * message_size);
            const fresh = await write(s, 1, 6, 3840);
            const result = await read(s, 1, fresh);
            const expected = fault === WriteFault.latent_error ? ClientReplyResult.unreadable
                : ClientReplyResult.corrupt;
            assert.equal(result, expected, `${WriteFault[fault]} seed ${seed}`);
            const refusal = s.replies.refusal(1, fresh, 0, result);
            assert.equal(refusal.zone, 'client_replies');
            assert.equal(refusal.op, 6);
            assert.equal(refusal.slot, 1);
            if (fault === WriteFault.lost || fault === WriteFault.misdirect) {
                // The slot still holds the older reply intact: exactly that, nothing else.
                assert.equal(await read(s, 1, old), ClientReplyResult.ok);
                if (fault === WriteFault.misdirect) {
                    // It landed on slot 2, which is never mistaken for slot 2's own reply.
                    const other = await write(s, 3, 7, 100);
                    assert.equal(await read(s, 3, other), ClientReplyResult.ok);
                    assert.equal(await read(s, 2, other), ClientReplyResult.corrupt);
                }
            }
        }
    }
});

test('client replies: a crash mid-write leaves the old reply or the new one, never a mix',
    async () => {
        let torn = 0;
        for (let seed = 1; seed <= 30; seed++) {
            const s = setup(seed, seed % 2 === 0);
            const old = await write(s, 0, 5, 6000);
            const fresh = reply_build(s.storage.arena, s.write_at, 6, 6000);
            s.replies.write(6, 0, s.write_at);
            s.storage.crash(seed % 3 === 0 ? CrashMode.torn : CrashMode.random);
            const after = setup_reopen(s);
            const old_result = await read(after, 0, old);
            const new_result = await read(after, 0, fresh);
            // At most one of them reads back as ok, and each ok is byte-exact by its checksums.
            assert(old_result !== ClientReplyResult.ok || new_result !== ClientReplyResult.ok);
            if (old_result !== ClientReplyResult.ok && new_result !== ClientReplyResult.ok) {
                torn += 1;
            }
        }
        assert(torn > 0, 'some crash tore a write');
    });

/** A fresh ClientReplies over the same medium (the process restarted). */
function setup_reopen(s: Setup): Setup {
    const events = new Replies();
    const replies = new ClientReplies(s.storage, events, 8);
    return { ...s, replies, events };
}

test('client replies: a second write to a slot waits for the first; the last one wins',
    async () => {
        const s = setup(3);
        reply_build(s.storage.arena, s.write_at, 20, 500);
        const second_at = s.write_at + message_size;
        const second = reply_build(s.storage.arena, second_at, 21, 700);
        s.replies.write(20, 2, s.write_at);
        s.replies.write(21, 2, second_at);
        assert.equal(s.replies.writes_in_flight, 2);
        assert(s.replies.write_in_flight(2));
        await storage_run_until(s.storage, () => s.events.written.length === 2);
        assert.deepEqual(s.events.written, [20, 21]);
        assert.equal(await read(s, 2, second), ClientReplyResult.ok);
    });

/** Holds client-replies writes until released, to test what waits for them. */
class HoldingStorage implements Storage {
    readonly inner: SimulatorStorage;
    readonly held: number[][] = [];
    constructor(inner: SimulatorStorage) { this.inner = inner; }
    get arena() { return this.inner.arena; }
    get layout() { return this.inner.layout; }
    get in_flight() { return this.inner.in_flight + this.held.length; }
    readonly event_loop_driven = false;
    target_register(target: StorageCompletionTarget): number {
        return this.inner.target_register(target);
    }
    read(target: number, tag: number, zone: Zone, offset: number, at: number, length: number) {
        this.inner.read(target, tag, zone, offset, at, length);
    }
    write(target: number, tag: number, zone: Zone, offset: number, at: number, length: number) {
        if (zone === Zone.client_replies) this.held.push([target, tag, zone, offset, at, length]);
        else this.inner.write(target, tag, zone, offset, at, length);
    }
    sync(target: number, tag: number): void { this.inner.sync(target, tag); }
    tick(): number { return this.inner.tick(); }
    release(): void {
        for (const [target, tag, zone, offset, at, length] of this.held.splice(0)) {
            this.inner.write(target!, tag!, zone!, offset!, at!, length!);
        }
    }
}

test('client replies: a checkpoint is named only after reply writes in flight landed',
    async () => {
        const inner = simulator(4);
        await storage_format(inner, { cluster: 4n, replica: 0, replica_count: 1 });
        const storage = new HoldingStorage(inner);
        const events = new Replies();
        const replies = new ClientReplies(storage, events, 8);
        const node = await checkpoint_node_boot(storage, ledger_config, 0, replies);
        new LedgerFiller(4).create_accounts(node.ledger, 5);
        const at = storage.arena.allocate(message_size);
        const header = reply_build(storage.arena, at, 24, 300);
        replies.write(24, 0, at);
        node.events.done = false;
        node.checkpointer.checkpoint_start(24, 24, new Uint8Array(16), 0, new Uint8Array(0), 0);
        for (let tick = 0; tick < 500; tick++) storage.tick();
        assert(!node.events.done, 'the checkpoint must wait for the reply write');
        assert.equal(node.superblock.sequence, 1);
        storage.release();
        await storage_run_until(storage, () => node.events.done);
        assert.equal(node.events.error, null);
        assert.deepEqual(events.written, [24]);
        assert.equal(node.superblock.sequence, 2);
        const read_at = storage.arena.allocate(message_size);
        replies.read(99, 0, header, 0, read_at);
        await storage_run_until(storage, () => events.read.has(99));
        assert.equal(events.read.get(99), ClientReplyResult.ok);
    });
