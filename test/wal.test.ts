// The WAL: prepares written to their slot then their redundant header, recovery classifying every
// slot per docs/data-file.md §6.3, and each fault kind in each WAL zone ending in an exact
// recovery or a refusal naming zone and op, never a silently wrong log.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { StartupWaiter, storage_format } from '../lib/vsr/data_file';
import { Decision, Journal } from '../lib/vsr/journal';
import type { JournalListener } from '../lib/vsr/journal';
import {
    header_empty_write, header_op, header_operation, operation_reserved,
} from '../lib/vsr/prepare_header';
import { CrashMode, WriteFault } from '../lib/storage/simulator_storage';
import type { SimulatorStorage } from '../lib/storage/simulator_storage';
import { PrepareBuilder, cluster_test, simulator_make } from '../lib/testing/simulator_fixture';
import { StorageRefusal, storage_run_until } from '../lib/storage/storage';
import type { Storage, StorageCompletionTarget } from '../lib/storage/storage';
import { Zone, config_test, header_size, sector_size } from '../lib/storage/zones';

const slot_count = config_test.slot_count;
const message_size_max = config_test.message_size_max;

interface Log {
    storage: SimulatorStorage;
    journal: Journal;
    waiter: StartupWaiter;
    builder: PrepareBuilder;
    /** op → the header written for it. */
    written: Map<number, Uint8Array>;
}

async function log_make(seed: number, replica_count: number, ops: number): Promise<Log> {
    const storage = simulator_make(seed);
    await storage_format(storage, { cluster: 0x0707070707070707_0707070707070707n, replica: 0,
        replica_count });
    const { journal, waiter } = await recovered(storage, replica_count);
    const builder = new PrepareBuilder(storage.arena, message_size_max,
        journal.headers.subarray(0, 16));
    const log: Log = { storage, journal, waiter, builder, written: new Map() };
    for (let op = 1; op <= ops; op++) await prepare_write(log, op);
    return log;
}

async function prepare_write(log: Log, op: number): Promise<void> {
    // Bodies of varied size, some spanning two sectors.
    const body_size = (op * 977) % (message_size_max - header_size);
    log.written.set(op, log.builder.build(op, 1, body_size));
    log.journal.write_prepare(log.builder.offset);
    await log.waiter.wait(log.storage);
    assert.equal(log.waiter.written_op, op);
    assert.equal(log.waiter.written_result, 0);
}

async function recovered(storage: SimulatorStorage, replica_count: number):
    Promise<{ journal: Journal; waiter: StartupWaiter }> {
    const waiter = new StartupWaiter();
    const journal = new Journal(storage, waiter, cluster_test, replica_count);
    journal.recover();
    await waiter.wait(storage);
    return { journal, waiter };
}

/** Every op still in the ring is exactly what was written; returns the head op. */
function assert_exact(log: Log, journal: Journal, op_last: number, op_cut: number = -1): void {
    for (let op = Math.max(1, op_last - slot_count + 1); op <= op_last; op++) {
        const slot = op % slot_count;
        const header = journal.headers.subarray(slot * header_size, (slot + 1) * header_size);
        if (op === op_cut) {
            assert.equal(journal.decisions[slot], Decision.cut_torn, `op ${op} cut`);
            continue;
        }
        assert.deepEqual(header, log.written.get(op), `op ${op} recovered exactly`);
        assert.equal(journal.faulty[slot], 0);
    }
    assert.equal(journal.op_max, op_cut === op_last ? op_last - 1 : op_last);
}

/** Recovery outcome: exact, or a refusal that names the zone and an op that was written. */
async function recover_checked(log: Log, replica_count: number, op_last: number,
    expect: 'exact' | 'refused' | 'faulty', suspect_ops: readonly number[],
    zone: string = 'wal_prepares'): Promise<Journal | null> {
    try {
        const { journal } = await recovered(log.storage, replica_count);
        if (expect === 'refused') assert.fail(`expected a refusal naming op ${suspect_ops}`);
        if (expect === 'exact') assert_exact(log, journal, op_last);
        if (expect === 'faulty') {
            for (let slot = 0; slot < slot_count; slot++) {
                if (journal.faulty[slot] === 0) continue;
                assert(suspect_ops.includes(journal.faulty_op[slot]!),
                    `faulty op ${journal.faulty_op[slot]} expected among ${suspect_ops}`);
            }
            assert(journal.faulty.includes(1), 'a damaged slot must be faulty, never absent');
        }
        return journal;
    } catch (error) {
        if (!(error instanceof StorageRefusal)) throw error;
        assert.equal(expect, 'refused', `unexpected refusal: ${error.message}`);
        assert.equal(error.zone, zone, error.message);
        assert(suspect_ops.includes(error.op), `${error.message}: op not in ${suspect_ops}`);
        return null;
    }
}

test('wal: a clean log recovers exactly across a wrap, and again after reopening', async () => {
    const log = await log_make(1, 1, 45);
    const { journal } = await recovered(log.storage, 1);
    assert_exact(log, journal, 45);
    for (let slot = 0; slot < slot_count; slot++) {
        assert.equal(journal.decisions[slot], Decision.eql);
    }
    assert.equal(journal.op_max, 45);
});

test('wal: a fresh log is root plus reserved slots, none faulty', async () => {
    const log = await log_make(2, 1, 3);
    const { journal } = await recovered(log.storage, 1);
    assert.equal(journal.decisions[0], Decision.eql);
    for (let slot = 4; slot < slot_count; slot++) {
        assert.equal(journal.decisions[slot], Decision.nil);
        assert.equal(header_op(journal.headers, slot * header_size), slot);
    }
    assert.equal(journal.op_max, 3);
});

test('wal: a damaged root prepare (slot 0 before the ring wraps) is restored, never faulty',
    async () => {
        for (const replica_count of [1, 3]) {
            const log = await log_make(21, replica_count, 5);
            const root = log.journal.headers.slice(0, header_size);
            log.storage.latent_error_set(Zone.wal_prepares, 0);
            log.storage.flip_bit(Zone.wal_headers, 100);
            const { journal } = await recovered(log.storage, replica_count);
            assert.deepEqual(journal.headers.subarray(0, header_size), root);
            assert.equal(journal.faulty[0], 0);
            assert.equal(journal.slot_status(0), 'repaired');
            assert_exact(log, journal, 5);
            // The fix is written: the header ring's copy reads back intact.
            const again = await recovered(log.storage, replica_count);
            assert.deepEqual(again.journal.headers.subarray(0, header_size), root);
        }
    });

for (const replica_count of [1, 3]) {
    const cluster = replica_count === 1 ? 'solo' : 'cluster';
    const damaged = replica_count === 1 ? 'refused' : 'faulty';

    test(`wal (${cluster}): corrupt prepares are never treated as absent`, async () => {
        for (const op of [40, 33, 45]) {
            const log = await log_make(10 + op, replica_count, 45);
            const slot = op % slot_count;
            log.storage.flip_bit(Zone.wal_prepares, slot * message_size_max + 300, 3);
            await recover_checked(log, replica_count, 45, damaged, [op]);
        }
    });

    test(`wal (${cluster}): unreadable prepare sectors are refused or faulty`, async () => {
        const log = await log_make(20, replica_count, 45);
        log.storage.latent_error_set(Zone.wal_prepares, (44 % slot_count) * message_size_max);
        await recover_checked(log, replica_count, 45, damaged, [44]);
    });

    test(`wal (${cluster}): a corrupt or unreadable header sector`, async () => {
        for (const fault of ['bit_flip', 'latent_error']) {
            const log = await log_make(30, replica_count, 45);
            // Sector 0 holds slots 0..15: ops 32..45 and 16..17 wrapped... all intact prepares.
            if (fault === 'bit_flip') log.storage.flip_bit(Zone.wal_headers, 5 * header_size + 9);
            else log.storage.latent_error_set(Zone.wal_headers, 0);
            // Solo: fixed from the intact prepares. Cluster: fixed only for the head (@F); the
            // others (@E) are repaired from peers, since the prepare may be a misdirected read.
            if (replica_count === 1) {
                const journal = await recover_checked(log, 1, 45, 'exact', []);
                assert(journal !== null);
                const again = await recovered(log.storage, 1);
                assert_exact(log, again.journal, 45);
            } else {
                const ops = fault === 'bit_flip' ? [37] : [32, 33, 34, 35, 36, 37, 38, 39, 40,
                    41, 42, 43, 44, 45, 14, 15];
                await recover_checked(log, 3, 45, 'faulty', ops);
            }
        }
    });

    test(`wal (${cluster}): lost and misdirected prepare writes`, async () => {
        for (const fault of [WriteFault.lost, WriteFault.misdirect, WriteFault.bit_flip]) {
            const log = await log_make(40 + fault, replica_count, 44);
            const target = (20 % slot_count) * message_size_max;
            log.storage.fault_next_write(Zone.wal_prepares, fault, target);
            await prepare_write(log, 45);
            // The slot's header names op 45; the prepare there is stale, so 45 is suspect, and a
            // misdirected copy clobbered op 20's slot, so 20 is suspect too.
            await recover_checked(log, replica_count, 45, damaged, [45, 20]);
        }
    });

    test(`wal (${cluster}): lost and misdirected header writes`, async () => {
        for (const fault of [WriteFault.lost, WriteFault.misdirect]) {
            const log = await log_make(50 + fault, replica_count, 44);
            log.storage.fault_next_write(Zone.wal_headers, fault, sector_size);
            await prepare_write(log, 45);
            if (replica_count === 1 || fault === WriteFault.lost) {
                // The prepare is intact and newer than its stale header (@J): fixed locally.
                // A misdirected sector clobbers slots 16..31, whose prepares are intact (@E).
                await recover_checked(log, replica_count, 45, 'exact', []);
            } else {
                const ops: number[] = [];
                for (let op = 16; op < 32; op++) ops.push(op);
                await recover_checked(log, replica_count, 45, 'faulty', ops);
            }
        }
    });
}

test('wal: a crash mid-prepare truncates the torn head or keeps the whole op', async () => {
    for (const mode of [CrashMode.lost, CrashMode.torn, CrashMode.applied]) {
        const log = await log_make(60 + mode, 1, 44);
        log.written.set(45, log.builder.build(45, 1, 3000));
        log.journal.write_prepare(log.builder.offset);
        log.storage.crash(mode);
        const { journal } = await recovered(log.storage, 1);
        // Applied: op 45 is whole (@J, header fixed). Lost: the slot still holds op 13 intact and
        // op 45 never existed. Torn: the half-written prepare is truncated (cut), not repaired.
        if (mode === CrashMode.applied) assert_exact(log, journal, 45);
        if (mode === CrashMode.lost) assert_exact(log, journal, 44);
        if (mode === CrashMode.torn) assert_exact(log, journal, 45, 45);
        // The log can go on from the recovered head.
        const again = await recovered(log.storage, 1);
        assert.equal(again.journal.op_max, journal.op_max);
    }
});

test('wal: a crash mid-header-write is fixed from the intact prepares', async () => {
    for (const mode of [CrashMode.torn, CrashMode.lost]) {
        const log = await log_make(70 + mode, 1, 44);
        log.written.set(45, log.builder.build(45, 1, 100));
        log.journal.write_prepare(log.builder.offset);
        for (let ticks = 0; ticks < 100 && log.storage.in_flight > 0; ticks++) {
            if (log.journal.redundant()[(45 % slot_count) * header_size] ===
                log.written.get(45)![0]) break;
            log.storage.tick();
        }
        // The prepare is durable and the header sector write is in flight: crash now.
        log.storage.crash(mode);
        const { journal } = await recovered(log.storage, 1);
        assert_exact(log, journal, 45);
    }
});

test('wal: seeded random faults in both rings never yield a silently wrong log', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 400 : 40;
    let refusals = 0;
    let exact = 0;
    for (let seed = 0; seed < seeds; seed++) {
        const log = await log_make(1000 + seed, 1, 30);
        const storage = log.storage;
        for (const zone of [Zone.wal_headers, Zone.wal_prepares]) {
            for (const fault of [WriteFault.bit_flip, WriteFault.misdirect, WriteFault.lost,
                WriteFault.latent_error]) {
                storage.fault_probability_set(zone, fault, 0.02);
            }
        }
        for (let op = 31; op <= 50; op++) await prepare_write(log, op);
        try {
            const { journal } = await recovered(storage, 1);
            // Accepted: every op still in the ring must be exactly what was written.
            assert_exact(log, journal, 50);
            exact += 1;
        } catch (error) {
            if (!(error instanceof StorageRefusal)) throw error;
            assert.match(error.zone, /^wal_(headers|prepares)$/);
            assert(error.slot >= 0 && error.slot < slot_count);
            refusals += 1;
        }
    }
    assert.equal(refusals + exact, seeds);
    assert(refusals > 0 && exact > 0, `refusals ${refusals} exact ${exact}`);
});

test('wal: seeded random crashes mid-write recover exactly, cutting only a torn head', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 300 : 30;
    const outcomes = [0, 0, 0];
    for (let seed = 0; seed < seeds; seed++) {
        const op = 30 + (seed % 12);
        const log = await log_make(2000 + seed, 1, op - 1);
        log.written.set(op, log.builder.build(op, 1, (seed * 1013) % 7000));
        log.journal.write_prepare(log.builder.offset);
        const ticks = log.storage.random_below(8);
        for (let tick = 0; tick < ticks; tick++) log.storage.tick();
        if (!log.journal.busy) continue;
        log.storage.crash(CrashMode.random);
        const { journal } = await recovered(log.storage, 1);
        if (journal.op_max === op) {
            assert_exact(log, journal, op);
            outcomes[0]! += 1;
        } else if (journal.decisions[op % slot_count] === Decision.cut_torn) {
            assert_exact(log, journal, op, op);
            outcomes[1]! += 1;
        } else {
            assert_exact(log, journal, op - 1);
            outcomes[2]! += 1;
        }
    }
    assert(outcomes[0]! > 0 && outcomes[1]! + outcomes[2]! > 0, `outcomes ${outcomes}`);
});

test('wal (cluster): seeded random faults leave every slot exact or faulty', async () => {
    const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 300 : 30;
    let faulty = 0;
    for (let seed = 0; seed < seeds; seed++) {
        const log = await log_make(3000 + seed, 3, 30);
        for (const zone of [Zone.wal_headers, Zone.wal_prepares]) {
            for (const fault of [WriteFault.bit_flip, WriteFault.misdirect, WriteFault.lost,
                WriteFault.latent_error]) {
                log.storage.fault_probability_set(zone, fault, 0.02);
            }
        }
        for (let op = 31; op <= 50; op++) await prepare_write(log, op);
        const { journal } = await recovered(log.storage, 3);
        for (let op = 19; op <= 50; op++) {
            const slot = op % slot_count;
            if (journal.faulty[slot] === 1) {
                // Faulty names the op an intact copy claimed, or none: never a made-up op.
                const named = journal.faulty_op[slot]!;
                assert(named === -1 || log.written.has(named), `slot ${slot} named ${named}`);
                faulty += 1;
                continue;
            }
            const header = journal.headers.subarray(slot * header_size, (slot + 1) * header_size);
            assert.deepEqual(header, log.written.get(op), `seed ${seed} op ${op}`);
        }
    }
    assert(faulty > 0);
});

test('wal (solo): a lost prepare under an unreadable newer header is refused', async () => {
    // Op 34's prepare write is lost (slot 2 keeps op 2), then its header sector becomes
    // unreadable. The table alone (@E) would accept op 2; the contiguity of a solo log refuses.
    const log = await log_make(90, 1, 33);
    log.storage.fault_next_write(Zone.wal_prepares, WriteFault.lost);
    await prepare_write(log, 34);
    await prepare_write(log, 35);
    log.storage.latent_error_set(Zone.wal_headers, 0);
    await recover_checked(log, 1, 35, 'refused', [34]);
});

test('wal: write_prepare asserts a recovered journal and the same-view hash chain', async () => {
    const log = await log_make(95, 1, 5);
    const unchained = new PrepareBuilder(log.storage.arena, message_size_max,
        new Uint8Array(16));
    unchained.build(6, 1, 10);
    assert.throws(() => log.journal.write_prepare(unchained.offset), /does not chain/);
    // The same op chained correctly is accepted.
    await prepare_write(log, 6);
    const waiter = new StartupWaiter();
    const fresh = new Journal(log.storage, waiter, cluster_test, 1);
    log.builder.build(7, 1, 10);
    assert.throws(() => fresh.write_prepare(log.builder.offset), /before format or recovery/);
});

// ------------------------------------------------------------------ concurrent writes

/** Follows a journal's reports the way the replica does: op_written advances in op order. */
class WriteTracker implements JournalListener {
    done = false;
    error: StorageRefusal | null = null;
    op_written = 0;
    readonly durable = new Set<number>();
    readonly failed: number[] = [];
    /** Every op reported written, in report order (to see completions out of op order). */
    readonly reported: number[] = [];

    journal_done(error: StorageRefusal | null): void {
        this.done = true;
        this.error = error;
    }

    journal_prepare_written(op: number, result: number): void {
        assert(op > this.op_written, `op ${op} reported twice`);
        if (result < 0) {
            this.failed.push(op);
            return;
        }
        assert(!this.durable.has(op));
        this.durable.add(op);
        this.reported.push(op);
        while (this.durable.has(this.op_written + 1)) this.op_written += 1;
    }
}

/** Writes ops first..last with up to `depth` in flight, each from its own arena buffer. */
class ConcurrentWriter {
    readonly log: Log;
    readonly journal: Journal;
    readonly tracker: WriteTracker;
    private readonly buffers: number[] = [];
    next: number;
    readonly last: number;

    constructor(log: Log, journal: Journal, tracker: WriteTracker, first: number, last: number,
        depth: number = journal.writes_max) {
        this.log = log;
        this.journal = journal;
        this.tracker = tracker;
        this.next = first;
        this.last = last;
        for (let index = 0; index < depth; index++) {
            this.buffers.push(log.storage.arena.allocate(message_size_max));
        }
        tracker.op_written = first - 1;
    }

    /** Starts writes while write slots are free, retrying failed ops first. */
    submit(): void {
        const bytes = this.log.storage.arena.bytes;
        while (this.journal.writes_available > 0) {
            let op = this.tracker.failed.shift() ?? -1;
            if (op === -1) {
                if (this.next > this.last || this.next > this.tracker.op_written +
                    this.buffers.length) return;
                op = this.next++;
                // Bodies of varied size, some spanning two sectors.
                const body_size = (op * 977 + 131) % (message_size_max - header_size);
                this.log.written.set(op, this.log.builder.build(op, 1, body_size));
                const buffer = this.buffers[op % this.buffers.length]!;
                bytes.copyWithin(buffer, this.log.builder.offset,
                    this.log.builder.offset + message_size_max);
            }
            this.journal.write_prepare(this.buffers[op % this.buffers.length]!);
        }
    }

    get finished(): boolean {
        return this.tracker.op_written === this.last && !this.journal.busy;
    }

    /** One simulator tick; returns the most writes that were in flight at once during it. */
    step(): number {
        this.submit();
        const in_flight = this.journal.writes_in_flight;
        this.log.storage.tick();
        this.submit();
        return in_flight;
    }
}

async function tracked(storage: SimulatorStorage, replica_count: number):
    Promise<{ journal: Journal; tracker: WriteTracker }> {
    const tracker = new WriteTracker();
    const journal = new Journal(storage, tracker, cluster_test, replica_count);
    journal.verify_bodies = true;
    journal.recover();
    await storage_run_until(storage, () => tracker.done);
    if (tracker.error !== null) throw tracker.error;
    return { journal, tracker };
}

/** Recovery after a crash: a prefix of the written ops, holding every op acknowledged. */
function assert_prefix(log: Log, journal: Journal, acknowledged: number, submitted: number):
    void {
    assert(journal.op_max >= acknowledged, `op_max ${journal.op_max} < acked ${acknowledged}`);
    assert(journal.op_max < submitted, `op_max ${journal.op_max} >= next ${submitted}`);
    for (let op = Math.max(1, journal.op_max - slot_count + 1); op <= journal.op_max; op++) {
        const slot = op % slot_count;
        const header = journal.headers.subarray(slot * header_size, (slot + 1) * header_size);
        // An older op whose slot a cut write overwrote is gone (the replica writes op N only
        // once op N - slot_count is checkpointed); the slot must then be empty, not stale.
        if (op + slot_count < submitted &&
            header_operation(header, 0) === operation_reserved) continue;
        assert.deepEqual(header, log.written.get(op), `op ${op} recovered exactly`);
        assert.equal(journal.faulty[slot], 0);
    }
    // Nothing above the head survives: the ring holds a prefix, not ops past a gap.
    for (let op = journal.op_max + 1; op < submitted; op++) {
        const slot = op % slot_count;
        const reserved = header_operation(journal.headers, slot * header_size) ===
            operation_reserved;
        assert(reserved || header_op(journal.headers, slot * header_size) !== op, `op ${op} kept`);
        assert.equal(journal.faulty[slot], 0);
    }
}

test('wal: concurrent writes complete out of order, coalesce header sectors, ack in order',
    async () => {
        const log = await log_make(100, 1, 20);
        const { journal, tracker } = await tracked(log.storage, 1);
        const writer = new ConcurrentWriter(log, journal, tracker, 21, 60);
        let in_flight_max = 0;
        const header_writes_before = log.storage.in_flight;
        assert.equal(header_writes_before, 0);
        for (let tick = 0; tick < 10_000 && !writer.finished; tick++) {
            in_flight_max = Math.max(in_flight_max, writer.step());
        }
        assert(writer.finished);
        assert.equal(in_flight_max, journal.writes_max);
        let out_of_order = 0;
        for (let index = 1; index < tracker.reported.length; index++) {
            if (tracker.reported[index]! < tracker.reported[index - 1]!) out_of_order += 1;
        }
        assert(out_of_order > 0, 'the simulator completes writes out of order');
        // On disk, the headers ring is exactly the journal's view: no stale sector won.
        assert.deepEqual(log.storage.peek(Zone.wal_headers, 0, slot_count * header_size),
            journal.redundant());
        const again = await recovered(log.storage, 1);
        assert_exact(log, again.journal, 60);
    });

test('wal: a crash at every point with 8 writes in flight recovers an acknowledged prefix',
    async () => {
        const seeds = process.env.RINGLEDGER_TEST_LONG === '1' ? 40 : 6;
        const cuts = [0, 0];
        for (let seed = 0; seed < seeds; seed++) {
            // How many ticks the run takes without a crash: every tick before it is a crash point.
            let ticks_total = 0;
            {
                const log = await log_make(4000 + seed, 1, 24);
                const { journal, tracker } = await tracked(log.storage, 1);
                const writer = new ConcurrentWriter(log, journal, tracker, 25, 44);
                while (!writer.finished) {
                    writer.step();
                    ticks_total += 1;
                }
            }
            for (let crash_tick = 0; crash_tick <= ticks_total; crash_tick++) {
                const log = await log_make(4000 + seed, 1, 24);
                const { journal, tracker } = await tracked(log.storage, 1);
                const writer = new ConcurrentWriter(log, journal, tracker, 25, 44);
                for (let tick = 0; tick < crash_tick && !writer.finished; tick++) writer.step();
                const acknowledged = tracker.op_written;
                log.storage.crash(CrashMode.random);
                const first = await tracked(log.storage, 1);
                assert_prefix(log, first.journal, acknowledged, writer.next);
                cuts[first.journal.decisions.includes(Decision.cut_torn) ? 1 : 0]! += 1;
                // The cut is durable: a second recovery finds the same prefix.
                const second = await tracked(log.storage, 1);
                assert_prefix(log, second.journal, first.journal.op_max, writer.next);
                // The log goes on from the recovered head, and a cut op never comes back.
                const head = first.journal.op_max;
                const head_at = (head % slot_count) * header_size;
                log.builder = new PrepareBuilder(log.storage.arena, message_size_max,
                    second.journal.headers.subarray(head_at, head_at + 16));
                const on = new ConcurrentWriter(log, second.journal, second.tracker, head + 1,
                    head + 12);
                for (let tick = 0; tick < 10_000 && !on.finished; tick++) on.step();
                assert(on.finished);
                const third = await tracked(log.storage, 1);
                assert_exact(log, third.journal, head + 12);
            }
        }
        assert(cuts[0]! > 0 && cuts[1]! > 0, `recoveries without and with a cut: ${cuts}`);
    });

test('wal: torn and absent writes at the head are cut; an acknowledged lost one is refused',
    async () => {
        // Ops 25..32 in flight; 26 and 28 torn, 27 and 29..32 whole, 25 whole: the head is 25.
        const log = await log_make(110, 1, 24);
        const { journal, tracker } = await tracked(log.storage, 1);
        const writer = new ConcurrentWriter(log, journal, tracker, 25, 32);
        writer.submit();
        assert.equal(journal.writes_in_flight, 8);
        for (let tick = 0; tick < 1000 && tracker.op_written < 32; tick++) writer.step();
        // Tear ops 26 and 28 after the fact, as if their writes had not completed.
        for (const op of [26, 28]) {
            log.storage.flip_bit(Zone.wal_prepares, (op % slot_count) * message_size_max + 3);
            // Their redundant headers still name the previous wrap (reserved: first wrap).
        }
        const headers = log.storage.peek(Zone.wal_headers, 0, slot_count * header_size);
        const restore = (op: number): void => {
            const at = (op % slot_count) * header_size;
            // Put back the reserved header of the first wrap, as before the op's header write.
            const fresh = new Uint8Array(header_size);
            header_empty_write(fresh, 0, cluster_test, op % slot_count, operation_reserved);
            headers.set(fresh, at);
        };
        restore(26);
        restore(28);
        log.storage.memory.set(headers, log.storage.layout.starts[Zone.wal_headers]!);
        const { journal: cut } = await tracked(log.storage, 1);
        assert.equal(cut.op_max, 25);
        for (let op = 26; op <= 32; op++) {
            assert.equal(cut.decisions[op % slot_count], Decision.cut_torn, `op ${op} cut`);
        }
        assert_exact(log, cut, 25);
        // Same shape, but op 26's header names it: it was written whole, then lost. Refused.
        const lost = await log_make(111, 1, 24);
        const lost_tracked = await tracked(lost.storage, 1);
        const lost_writer = new ConcurrentWriter(lost, lost_tracked.journal, lost_tracked.tracker,
            25, 32);
        for (let tick = 0; tick < 1000 && lost_tracked.tracker.op_written < 32; tick++) {
            lost_writer.step();
        }
        lost.storage.flip_bit(Zone.wal_prepares, (26 % slot_count) * message_size_max + 3);
        await assert.rejects(tracked(lost.storage, 1), (error: unknown) =>
            error instanceof StorageRefusal && error.op === 26);
    });

/** Fails the n-th write of a zone with -EIO (reported, nothing written), else the simulator. */
class FailingStorage implements Storage {
    readonly inner: SimulatorStorage;
    fail_zone = -1;
    fail_countdown = -1;
    private readonly failing = new Set<string>();

    constructor(inner: SimulatorStorage) { this.inner = inner; }
    get arena(): Storage['arena'] { return this.inner.arena; }
    get layout(): Storage['layout'] { return this.inner.layout; }
    get in_flight(): number { return this.inner.in_flight; }
    get event_loop_driven(): boolean { return false; }

    target_register(target: StorageCompletionTarget): number {
        const id = this.inner.target_register({
            storage_complete: (tag: number, result: number): void => {
                const key = `${id}:${tag}`;
                const failed = this.failing.delete(key);
                target.storage_complete(tag, failed ? -5 : result);
            },
        });
        return id;
    }

    read(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        this.inner.read(target, tag, zone, zone_offset, arena_offset, length);
    }

    write(target: number, tag: number, zone: Zone, zone_offset: number, arena_offset: number,
        length: number): void {
        if (zone === this.fail_zone && this.fail_countdown >= 0 && this.fail_countdown-- === 0) {
            // An EIO write: the medium keeps its old bytes, the completion reports the error.
            // (A sync stands in for it: it completes in turn and changes nothing.)
            this.failing.add(`${target}:${tag}`);
            this.inner.sync(target, tag);
            return;
        }
        this.inner.write(target, tag, zone, zone_offset, arena_offset, length);
    }

    sync(target: number, tag: number): void { this.inner.sync(target, tag); }
    tick(): number { return this.inner.tick(); }
}

test('wal: a failed write is retried and nothing above it is acknowledged meanwhile',
    async () => {
        for (const zone of [Zone.wal_prepares, Zone.wal_headers]) {
            const log = await log_make(120 + zone, 1, 24);
            const failing = new FailingStorage(log.storage);
            const tracker = new WriteTracker();
            const journal = new Journal(failing, tracker, cluster_test, 1);
            journal.recover();
            await storage_run_until(failing, () => tracker.done);
            failing.fail_zone = zone;
            failing.fail_countdown = 2;
            const writer = new ConcurrentWriter(log, journal, tracker, 25, 40);
            let retried = -1;
            for (let tick = 0; tick < 10_000 && !writer.finished; tick++) {
                writer.submit();
                failing.tick();
                if (tracker.failed.length > 0) {
                    retried = tracker.failed[0]!;
                    assert(tracker.op_written < retried, 'acknowledged past a failed op');
                    assert.equal(journal.faulty[retried % slot_count], 1);
                }
            }
            assert(writer.finished && retried > 0, `zone ${zone}: retried op ${retried}`);
            assert.equal(journal.faulty[retried % slot_count], 0);
            assert_exact(log, (await recovered(log.storage, 1)).journal, 40);
        }
    });

test('wal: write_prepare bounds writes in flight and one write per slot', async () => {
    const log = await log_make(130, 1, 4);
    const { journal, tracker } = await tracked(log.storage, 1);
    const writer = new ConcurrentWriter(log, journal, tracker, 5, 20);
    writer.submit();
    assert.equal(journal.writes_available, 0);
    const probe = new PrepareBuilder(log.storage.arena, message_size_max, new Uint8Array(16));
    probe.build(13, 1, 10);
    assert.throws(() => journal.write_prepare(probe.offset), /every write slot is busy/);
    for (let tick = 0; tick < 10_000 && !writer.finished; tick++) writer.step();
    // A second write of a slot while the first is in flight.
    const again = new ConcurrentWriter(log, journal, tracker, 21, 21, 2);
    again.submit();
    assert.throws(() => journal.write_prepare(log.builder.offset), /is being written/);
    // A corrupted body is caught at debug level (verify_bodies) before it reaches the disk.
    for (let tick = 0; tick < 100 && journal.busy; tick++) log.storage.tick();
    log.builder.build(22, 1, 100);
    log.storage.arena.bytes[log.builder.offset + header_size + 5]! ^= 1;
    assert.throws(() => journal.write_prepare(log.builder.offset), /prepare body checksum/);
});
