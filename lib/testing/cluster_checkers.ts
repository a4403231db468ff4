// What the cluster simulator checks (tests only; allocates freely), each independent of the
// replica's own assertions:
//
// - CommitChecker: no two replicas commit different prepares at one op. As each replica's
//   commit_min advances, the header it committed is read from its journal; the first replica to
//   commit an op fixes that op's canonical checksum, and every later commit of the op (by any
//   replica, or by the same one replaying after a restart) must be the same prepare, chained to
//   the canonical op before it. Each newly canonical op's timestamp is above the op before it
//   and not beyond `timestamp_max` (the true time plus what cluster time allows).
// - CheckpointChecker: at each checkpoint op, every replica's durable checkpoint_id (superblock
//   vsr_state) is the same.
// - Durability (Cluster.op_holders): when a client accepts a reply for an op, at least
//   quorum_replication replicas' disks hold that op's canonical prepare (both WAL rings, or a
//   durable checkpoint at or past it): nothing is replied before a replication quorum has it.
// - ledger_check: the canonical log, re-executed on the reference LedgerModel with the bytes the
//   clients sent, gives exactly the replies the clients accepted, at the ops and timestamps the
//   log says; no request is applied twice and timestamps strictly increase.
// - (The clients check that a reply, once seen, comes back byte-identical: sim_client.ts.)
// - session_replies_check: a reply never changes on the replicas either: every session reply a
//   replica holds (executed, read back from its client replies zone, or fetched from a peer by
//   reply repair) is byte for byte the reply the client accepted for that request, if it did.
//
// A broken rule is a Violation naming what broke and the op.
import assert from 'node:assert/strict';

import { checksum } from '../vsr/checksum';
import { Operation, header_size } from '../vsr/constants';
import { HeaderView, bytes_le_bigint } from '../vsr/header';
import { Command, frame, offsets } from '../vsr/header_layout';
import type { VsrState } from '../vsr/superblock';
import { LedgerModel, Op } from './ledger_model';
import { request_check } from './ledger_requests';
import type { Exchange } from './sim_client';

export const ViolationKind = {
    /** An exception in replica or client code (a failed assertion, most often). */
    assertion: 'assertion',
    /** A replica could not open over its own storage after a crash. */
    replica_failed: 'replica_failed',
    commit_divergence: 'commit_divergence',
    /** An op was committed but no replica's commit of it could be read. */
    commit_gap: 'commit_gap',
    /** A client rejected a reply (a changed reply, a mismatch the real client asserts on). */
    reply: 'reply',
    checkpoint_divergence: 'checkpoint_divergence',
    /** A client got a reply for an op fewer than quorum_replication replicas' disks hold. */
    durability: 'durability',
    ledger_model: 'ledger_model',
    liveness: 'liveness',
    /** A message on the wire failed validation: its sender built it wrong. */
    invalid_message: 'invalid_message',
    /** Committed timestamps out of order, or beyond what cluster time allows. */
    timestamp: 'timestamp',
} as const;
export type ViolationKindName = (typeof ViolationKind)[keyof typeof ViolationKind];

/** A rule the run broke; `op` is the op at stake (-1: none in particular). */
export class Violation extends Error {
    readonly kind: ViolationKindName;
    readonly op: number;
    /** The replica involved (-1: none in particular). */
    readonly replica: number;
    /** The tick it was found at (set by the simulator's loop). */
    tick = -1;

    constructor(kind: ViolationKindName, op: number, replica: number, message: string,
        cause?: unknown) {
        super(message, cause === undefined ? undefined : { cause });
        assert(Number.isInteger(op) && op >= -1);
        assert(Number.isInteger(replica) && replica >= -1);
        this.name = 'Violation';
        this.kind = kind;
        this.op = op;
        this.replica = replica;
    }
}

/** A running checksum of what a run did: same seed, same digest. */
export class RunDigest {
    private readonly state = new Uint8Array(16);
    /** state (16) | value u128 (16) | number u64 (8) | tag u32 (4) | zero (4). */
    private readonly scratch = new Uint8Array(48);
    private readonly scratch_view = new DataView(this.scratch.buffer);
    items = 0;

    add(tag: number, number: number, value: bigint): void {
        assert(Number.isInteger(tag) && tag >= 0 && tag < 2 ** 32);
        assert(Number.isSafeInteger(number) && number >= 0);
        assert(value >= 0n && value < 1n << 128n);
        this.scratch.set(this.state, 0);
        this.scratch_view.setBigUint64(16, value & 0xffff_ffff_ffff_ffffn, true);
        this.scratch_view.setBigUint64(24, value >> 64n, true);
        this.scratch_view.setBigUint64(32, BigInt(number), true);
        this.scratch_view.setUint32(40, tag, true);
        checksum(this.scratch, 0, this.scratch.length, this.state, 0);
        this.items += 1;
    }

    get hex(): string {
        return Buffer.from(this.state).toString('hex');
    }
}

/** RunDigest tags. */
export const DigestTag = { commit: 1, reply: 2, checkpoint: 3 } as const;

/** One op of the canonical log, from the header of its prepare. */
export interface CommittedOp {
    op: number;
    checksum: bigint;
    parent: bigint;
    operation: number;
    timestamp: bigint;
    client: bigint;
    request: number;
    request_checksum: bigint;
    /** The first replica seen to commit it. */
    replica: number;
}

export interface JournalHeaders {
    readonly headers: Uint8Array;
    readonly slot_count: number;
}

export class CommitChecker {
    /** Index = op; op 0 is the root prepare (not recorded). */
    readonly canonical: Array<CommittedOp | undefined> = [undefined];
    /** Committed ops whose header the journal no longer held when looked at. */
    headers_skipped = 0;
    /** The latest prepare timestamp (ns) an op committed now may carry (the cluster sets it). */
    timestamp_max = 1n << 64n;
    private readonly digest: RunDigest;
    private readonly header = new HeaderView();

    constructor(digest: RunDigest) {
        this.digest = digest;
    }

    /** The highest op any replica was seen to commit. */
    get op_max(): number {
        return this.canonical.length - 1;
    }

    /**
     * Checks the ops `replica` committed in (from, commit_min] against the canonical log (and
     * records those it is the first to commit). Returns the new high-water mark.
     */
    observe(replica: number, journal: JournalHeaders, from: number, commit_min: number): number {
        assert(from >= 0 && commit_min >= 0);
        if (commit_min <= from) return from;
        // Older slots may already hold newer ops: only the last slot_count can still be read.
        const first = Math.max(from + 1, commit_min - journal.slot_count + 1, 1);
        for (let op = first; op <= commit_min; op++) this.observe_op(replica, journal, op);
        return commit_min;
    }

    private observe_op(replica: number, journal: JournalHeaders, op: number): void {
        const header = this.header.attach(journal.headers, (op % journal.slot_count) *
            header_size);
        // A slot whose newer prepare was torn by a crash and cut from the head is rewritten as a
        // reserved header naming the slot's older op: no prepare to compare.
        if (header.command !== Command.prepare || header.u64(offsets.prepare.op) !== op ||
            header.u8(offsets.prepare.operation) === Operation.reserved) {
            this.headers_skipped += 1;
            return;
        }
        const checksum_value = header.u128_bigint(frame.checksum);
        const parent = header.u128_bigint(offsets.prepare.parent);
        const known = this.canonical[op];
        if (known !== undefined) {
            if (known.checksum !== checksum_value) {
                throw new Violation(ViolationKind.commit_divergence, op, replica,
                    `replica ${replica} committed prepare ${hex(checksum_value)} at op ${op}, ` +
                    `replica ${known.replica} committed ${hex(known.checksum)} there`);
            }
            return;
        }
        const previous = this.canonical[op - 1];
        if (previous !== undefined && previous.checksum !== parent) {
            throw new Violation(ViolationKind.commit_divergence, op, replica,
                `replica ${replica} committed op ${op} with parent ${hex(parent)}, but op ` +
                `${op - 1} is ${hex(previous.checksum)}: the hash chain is broken`);
        }
        const timestamp = header.u64_bigint(offsets.prepare.timestamp);
        timestamp_check_op(this, replica, op, timestamp);
        while (this.canonical.length <= op) this.canonical.push(undefined);
        this.canonical[op] = {
            op, checksum: checksum_value, parent, operation: header.u8(offsets.prepare.operation),
            timestamp,
            client: header.u128_bigint(offsets.prepare.client),
            request: header.u32(offsets.prepare.request),
            request_checksum: header.u128_bigint(offsets.prepare.request_checksum), replica,
        };
        this.digest.add(DigestTag.commit, op, checksum_value);
    }
}

/** Timestamps strictly increase along the log, and no clock ran them far ahead of time. */
function timestamp_check_op(checker: CommitChecker, replica: number, op: number,
    timestamp: bigint): void {
    const previous = checker.canonical[op - 1];
    if (previous !== undefined && timestamp <= previous.timestamp) {
        throw new Violation(ViolationKind.timestamp, op, replica, `op ${op} committed with ` +
            `timestamp ${timestamp}, not above op ${op - 1}'s ${previous.timestamp}`);
    }
    const next = checker.canonical[op + 1];
    if (next !== undefined && timestamp >= next.timestamp) {
        throw new Violation(ViolationKind.timestamp, op, replica, `op ${op} committed with ` +
            `timestamp ${timestamp}, not below op ${op + 1}'s ${next.timestamp}`);
    }
    if (timestamp > checker.timestamp_max) {
        throw new Violation(ViolationKind.timestamp, op, replica, `op ${op} committed with ` +
            `timestamp ${timestamp}, ${timestamp - checker.timestamp_max} ns beyond the true ` +
            'time plus what cluster time allows: a clock running ahead was not outvoted');
    }
}

/**
 * Why replicas of the same state write different checkpoint_ids with today's checkpointer
 * (lib/ledger/checkpoint.ts). A checkpoint_id is the checksum of the root block, which names
 * manifest and chunk blocks by (address, checksum), and addresses follow each replica's own
 * history: `trickle` pre-writes sealed transfer and history chunks to fresh blocks after each
 * batch of live commits (Replica.commit_pipeline, with a block budget per call) and never during
 * a WAL replay, so replicas that committed the same ops in different batches, or one that
 * replayed after a restart, allocate different addresses for the same chunks. (Shown alone with
 * two checkpointers over the same ledger state, one of which trickled between checkpoints: the
 * ledgers are equal, the ids are not.) A cluster of one never meets it: each checkpoint op is
 * written once, by one replica. Until the allocation is a function of the state (or the id
 * excludes addresses), this check holds only for one replica.
 */
export const checkpoint_id_divergence_causes = 'none known: since trickle_op every replica ' +
    'reserves grid addresses per executed op, so equal logs give equal grids; turning the check ' +
    'off is for diagnosing something else';

/** Whether, and why not, checkpoint_ids must agree across replicas. */
export interface CheckpointCheckMode {
    enabled: boolean;
    /** Why it is off (printed with the summary). */
    reason: string;
}

export class CheckpointChecker {
    /** Checkpoint op -> its checkpoint_id (hex) and the first replica seen at it. */
    readonly ids = new Map<number, { id: string; replica: number }>();
    /** Disagreements seen while the check is off (the first few). */
    readonly mismatches: string[] = [];
    mismatch_count = 0;
    readonly mode: CheckpointCheckMode;
    private readonly digest: RunDigest;

    constructor(mode: CheckpointCheckMode, digest: RunDigest) {
        assert(mode.enabled || mode.reason.length > 0, 'a check turned off says why');
        this.mode = mode;
        this.digest = digest;
    }

    /** `state` is `replica`'s durable superblock state, at a checkpoint op not seen before. */
    observe(replica: number, state: VsrState): void {
        const op = state.checkpoint_op;
        assert(Number.isInteger(op) && op >= 0);
        const id = Buffer.from(state.checkpoint_id).toString('hex');
        const known = this.ids.get(op);
        if (known === undefined) {
            this.ids.set(op, { id, replica });
            this.digest.add(DigestTag.checkpoint, op, bytes_le_bigint(state.checkpoint_id, 0, 16));
            return;
        }
        if (known.id === id) return;
        const text = `replica ${replica} checkpointed op ${op} as ${id}, replica ` +
            `${known.replica} as ${known.id}`;
        if (this.mode.enabled) {
            throw new Violation(ViolationKind.checkpoint_divergence, op, replica, text);
        }
        this.mismatch_count += 1;
        if (this.mismatches.length < 4) this.mismatches.push(text);
    }
}

/** A simulated client as the model check sees it. */
export interface CheckedClient {
    readonly index: number;
    readonly id: bigint;
    readonly sent: ReadonlyMap<number, Uint8Array>;
    readonly exchanges: readonly Exchange[];
    /** Reply bytes by request number, as accepted. */
    readonly replies: ReadonlyMap<number, Uint8Array>;
}

/** The session table of one replica, as session_replies_check reads it. */
export interface CheckedSessions {
    readonly capacity: number;
    session(entry: number): number;
    reply_message(entry: number): number;
}

/**
 * Every session reply `replica` holds in its pool equals, byte for byte, the reply its client
 * accepted for that request (when it accepted one). A register committed again at another op
 * (its first session evicted meanwhile) is a new reply of request 0, as SimClient allows.
 */
export function session_replies_check(replica: number, sessions: CheckedSessions,
    pool: { readonly bytes: Uint8Array; offset(message: number): number },
    clients: readonly CheckedClient[]): void {
    const header = new HeaderView();
    for (let entry = 0; entry < sessions.capacity; entry++) {
        if (sessions.session(entry) === 0) continue;
        const message = sessions.reply_message(entry);
        if (message === -1) continue;
        header.attach(pool.bytes, pool.offset(message));
        assert.equal(header.command, Command.reply);
        const id = header.u128_bigint(offsets.reply.client);
        const request = header.u32(offsets.reply.request);
        const accepted = clients.find((client) => client.id === id)?.replies.get(request);
        if (accepted === undefined) continue;
        const held = pool.bytes.subarray(header.offset, header.offset + header.size);
        const op = Number(header.u64_bigint(offsets.reply.op));
        const op_accepted = Number(new HeaderView().attach(accepted, 0)
            .u64_bigint(offsets.reply.op));
        if (request === 0 && op !== op_accepted) continue;
        if (held.length === accepted.length && held.every((byte, at) => byte === accepted[at])) {
            continue;
        }
        throw new Violation(ViolationKind.reply, op, replica, `replica ${replica} holds a ` +
            `reply to request ${request} (op ${op}) of client 0x${id.toString(16)} that differs ` +
            'from the one the client accepted: a reply must never change');
    }
}

/**
 * Re-executes the canonical log on the reference model (pulses at their timestamps, each client
 * request batch by batch) and compares every reply a client accepted; each accepted reply must
 * be for the op the log holds for that (client, request). Throws a Violation.
 */
export function ledger_check(log: readonly (CommittedOp | undefined)[],
    clients: readonly CheckedClient[]): void {
    const by_id = new Map<bigint, { client: CheckedClient; exchanges: Map<number, Exchange> }>();
    for (const client of clients) {
        by_id.set(client.id, {
            client, exchanges: new Map(client.exchanges.map((e) => [e.request, e])),
        });
    }
    exchanges_check(log, clients);
    const model = new LedgerModel();
    const applied = new Set<string>();
    let previous = 0n;
    for (let op = 1; op < log.length; op++) {
        const entry = log[op];
        if (entry === undefined) {
            throw new Violation(ViolationKind.commit_gap, op, -1, `op ${op} was committed (a ` +
                'later op was) but no replica\'s commit of it could be read');
        }
        model_check_op(model, entry, previous, applied, by_id);
        previous = entry.timestamp;
    }
}

function model_check_op(model: LedgerModel, entry: CommittedOp, previous: bigint,
    applied: Set<string>, by_id: Map<bigint, { client: CheckedClient;
        exchanges: Map<number, Exchange>; }>): void {
    const op = entry.op;
    const fail = (text: string): Violation =>
        new Violation(ViolationKind.ledger_model, op, entry.replica, `op ${op}: ${text}`);
    if (entry.timestamp <= previous) throw fail('prepare timestamps do not strictly increase');
    if (entry.operation === Operation.pulse) {
        model.execute(Op.pulse, entry.timestamp, new Uint8Array(0));
        return;
    }
    const key = `${entry.client}/${entry.request}`;
    // A register retransmitted after its session was evicted (the client saw neither the reply
    // nor the eviction) registers again: it changes no ledger state. Any other request twice is
    // a double application.
    if (applied.has(key) && entry.operation !== Operation.register) {
        throw fail(`request ${key} was applied twice`);
    }
    applied.add(key);
    const owner = by_id.get(entry.client);
    if (owner === undefined) throw fail(`client ${hex(entry.client)} is none of ours`);
    const bytes = owner.client.sent.get(entry.request);
    if (bytes === undefined) throw fail(`client ${owner.client.index} never sent request ` +
        `${entry.request}`);
    if (bytes_le_bigint(bytes, frame.checksum, 16) !== entry.request_checksum) {
        throw fail(`the prepare is not the request client ${owner.client.index} sent as ` +
            `number ${entry.request}`);
    }
    if (entry.operation === Operation.register) return;
    const exchange = owner.exchanges.get(entry.request);
    try {
        request_check(model, op, entry.operation, entry.timestamp, bytes.subarray(header_size),
            exchange === undefined ? null : exchange.reply_body);
    } catch (error) {
        throw fail(`client ${owner.client.index} request ${entry.request}: ` +
            `${(error as Error).message}`);
    }
}

/** Every reply a client accepted names the op the log holds for its request, at its timestamp. */
function exchanges_check(log: readonly (CommittedOp | undefined)[],
    clients: readonly CheckedClient[]): void {
    for (const client of clients) {
        for (const exchange of client.exchanges) {
            const entry = log[exchange.op];
            const text = `client ${client.index} accepted a reply to request ` +
                `${exchange.request} for op ${exchange.op}`;
            if (entry === undefined) {
                throw new Violation(ViolationKind.ledger_model, exchange.op, -1,
                    `${text}, which no replica was seen to commit`);
            }
            if (entry.client !== client.id || entry.request !== exchange.request ||
                entry.timestamp !== exchange.timestamp || entry.operation !== exchange.operation) {
                throw new Violation(ViolationKind.ledger_model, exchange.op, entry.replica,
                    `${text}, but the log holds client ${hex(entry.client)} request ` +
                    `${entry.request} (operation ${entry.operation}) there`);
            }
        }
    }
}

/**
 * What a thrown error says, on one line, with where it was thrown (the first frame of its
 * stack): "The expression evaluated to a falsy value" alone names nothing.
 */
export function error_text(error: unknown): string {
    if (!(error instanceof Error)) return String(error);
    const text = error.message.replace(/\s+/g, ' ').trim();
    const frame_line = (error.stack ?? '').split('\n').find((line) => /^\s+at /.test(line));
    if (frame_line === undefined) return text;
    // "at Replica.cache_put (/path/dist/lib/vsr/replica.js:2122:34)" -> the function and file.
    const where = frame_line.trim().replace(/^at /, '').replace(/\(.*[\\/]/, '(');
    return `${text} (at ${where})`;
}

/** A message's header checksum, for the digest. */
export function bytes_digest_value(message: Uint8Array): bigint {
    assert(message.length >= header_size);
    return bytes_le_bigint(message, frame.checksum, 16);
}

export function hex(value: bigint): string {
    return `0x${value.toString(16).padStart(32, '0')}`;
}
