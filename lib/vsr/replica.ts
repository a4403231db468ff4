// The replica: Viewstamped Replication for 1 to 6 replicas (docs/vsr.md): a view, op numbers, a
// pipeline of prepares each with the set of replicas that acknowledged it, commit_max (highest op
// a replication quorum holds) and commit_min (highest op executed), a primary that needs
// quorum_replication(replica_count) prepare_oks of which its own WAL write is one; backups that
// append in op order and acknowledge what is durable; view change, repair of a log from the
// view's, and restart (the "cluster:" sections below, docs/vsr.md §10-§14).
//
// The data path of a request (ARCHITECTURE.md): the bus hands over a pool message; the replica
// checks it (docs/wire-protocol.md §7: release, operation, body, session, request number, parent),
// turns it into a prepare IN THE SAME BUFFER (op, parent checksum, commit, timestamp; only the
// 256-byte header is re-checksummed, the body and its checksum are unchanged), and the journal
// writes it to the WAL. When a quorum holds it, prepares commit in op order: the state machine
// executes the body into a reply message from the pool, the reply is sealed, stored in the
// client's session and sent. A single replica executes while the WAL write is still in flight
// (`execute_ahead`: the reply waits in the pipeline until the op is durable), so that the disk
// and the ledger work at the same time; with backups execution waits for the commit.
//
// Time, randomness, the network and storage come in through interfaces, so the deterministic
// simulators (lib/testing/simulator.ts for clusters, test/replica_simulator.test.ts for one
// replica) drive this same code.
//
// Startup: the superblock and WAL are opened by the caller; `open()` restores the checkpoint
// (ledger state and session table from the grid, each session's latest reply from the
// client_replies zone), then replays the WAL from checkpoint+1 to the head (a cluster replica:
// only up to the commit number its superblock recorded), re-executing each prepare at its stored
// timestamp, which rebuilds the ledger, the sessions and their replies. Only then does it serve.
//
// Checkpoints: committing a trigger op (CheckpointSchedule) writes the replies that changed since
// the last checkpoint to the client_replies zone and starts the Checkpointer. Commits wait until
// it is durable (the ledger must not change meanwhile); prepares continue up to op_prepare_max,
// after which the primary waits rather than overwrite a WAL slot the checkpoint still needs.
import assert from 'node:assert/strict';

import type { Journal, JournalListener } from './journal';
import type { Storage, StorageCompletionTarget } from '../storage/storage';
import { StorageRefusal } from '../storage/storage';
import type { SuperBlock, SuperBlockListener } from './superblock';
import { VsrState } from './superblock';
import { Zone, sector_ceil } from '../storage/zones';
import { header_empty_write, operation_root } from './prepare_header';
import { StartupWaiter } from './data_file';
import { CheckpointSchedule, GridRefusal } from './checkpoint_schedule';
import type { CheckpointListener, StateCheckpointer } from './checkpoint_schedule';
import { ClientReplyResult } from './client_replies';
import type { ClientReplies, ClientRepliesListener } from './client_replies';
import { release_client_min, release_server, tick_ms, two_32 } from '../constants';
import { errno_name } from '../io/errors';
import { checksum_equal } from './checksum';
import {
    EvictionReason, Limit, Operation, eviction_reason_max, header_size, headers_count_max,
    limit_count, limit_name, register_request_body_size, register_result_body_size, replicas_max,
    view_change_headers_max,
} from './constants';
import type { ReplicaNetwork } from './network';
import { connection_none } from './network';
import { quorum_nack_prepare, quorum_replication, quorum_view_change } from './quorums';
import { Timeout } from './timeout';
import { HeaderView, header_init, seal, seal_empty_body, set_checksum } from './header';
import { Command, frame, offsets, request_feature_limit_details } from './header_layout';
import type { MessagePool } from './message_pool';
import { Pipeline, pipeline_prepare_queue_max } from './pipeline';
import { Clock } from './clock';
import { ClientSessions, sessions_size_max } from './client_sessions';
import { ReplyRepair } from './reply_repair';
import { GridRepair } from './grid_repair';
import type { ReplyRepairHost } from './reply_repair';
import { StateMachineCapacityError } from './state_machine';
import type { StateMachine } from './state_machine';

export { release_client_min, release_server, tick_ms };
/** A pulse is considered every 100 ms (docs/vsr.md §8). */
export const pulse_ticks = 10;


/** Wall clock and monotonic clock. */
export interface ReplicaTime {
    /** Monotonic nanoseconds (timeouts, round trips); never goes backwards. */
    monotonic_ns(): number;
    /** Wall-clock microseconds since the Unix epoch (prepare timestamps). */
    realtime_us(): number;
}

export interface ReplicaRandom {
    u32(): number;
}

export type { ReplicaNetwork };
export { quorum_nack_prepare, quorum_replication, quorum_view_change };

/**
 * opening .. replaying: startup. normal: serving (a primary prepares, a backup appends and
 * acknowledges). view_change: leaving a view, collecting do_view_change (the new primary) or
 * waiting for start_view. recovering_head: a restarted replica whose WAL cannot prove its head
 * (a faulty slot above its commit): it may have acknowledged what it cannot read, so it takes no
 * part in view changes until a start_view brings its log back (internals.md §10).
 */
export const Status = {
    opening: 0, restoring: 1, replaying: 2, normal: 3, failed: 4, view_change: 5,
    recovering_head: 6,
} as const;

/** Timeouts in ticks of tick_ms (internals.md §7). */
export const timeouts_ticks = {
    ping: 100,
    prepare: 25,
    commit_heartbeat: 50,
    /** A backup that hears nothing from its primary this long votes to leave the view. */
    normal_heartbeat: 150,
    view_change_status: 300,
    view_change_message: 50,
    request_start_view: 100,
    repair: 10,
} as const;

export interface ReplicaOptions {
    pool: MessagePool;
    time: ReplicaTime;
    random: ReplicaRandom;
    storage: Storage;
    superblock: SuperBlock;
    journal: Journal;
    /** Receives the journal's and superblock's completions (it routes them to us once open). */
    storage_listener: ReplicaStorageListener;
    /** The state machine the replica replicates (the ledger's, lib/ledger/state_machine.ts). */
    state_machine: StateMachine;
    /** Built over the same storage and superblock, with this replica as its listener. */
    checkpointer: StateCheckpointer;
    client_replies: ClientReplies;
    clients_max: number;
    /** Requests waiting while the prepare queue is full; default clients_max. */
    request_queue_max?: number;
    release?: number;
    log?: (line: string) => void;
    /**
     * Submits queued I/O now. Called before executing prepares (milliseconds of computation),
     * so that the next WAL write is already on its way to the disk meanwhile (Engine.flush: a
     * no-op for libuv); absent where submission is immediate anyway (the simulator).
     */
    io_flush?: () => void;
}


/** Counters of the cluster protocol, for logs and tests. */
export class ClusterStats {
    prepares_sent = 0;
    prepares_retransmitted = 0;
    prepare_oks_sent = 0;
    commits_sent = 0;
    view_changes = 0;
    start_views_installed = 0;
    repairs_requested = 0;
    prepares_repaired = 0;
    /** WAL prepares found damaged on a read back (not served, repaired from a peer). */
    prepares_damaged = 0;
    /** Damaged WAL prepares written back from a peer's copy. */
    holes_rewritten = 0;
    /** Uncommitted ops a view change cut because a nack quorum never prepared them. */
    ops_nacked = 0;
    requests_to_backup = 0;
    messages_stale = 0;
    /** Times a primary did not prepare (or dropped a request) for want of cluster time. */
    clock_waits = 0;
    /** request_reply messages sent (a session reply missing here), and answered for peers. */
    replies_requested = 0;
    replies_served = 0;
    /** Replies from peers refused: not wanted, or not the bytes the session expects. */
    replies_refused = 0;
    /** Retries dropped because their reply is still being fetched (the client retries). */
    retries_reply_missing = 0;
    /** State syncs started: a peer's checkpoint adopted because its WAL no longer reaches ours. */
    syncs = 0;
}

/** Status failed for a restart: the superblock names a peer's checkpoint (state sync). */
export class StateSyncRestart extends Error {
    readonly checkpoint_op: number;

    constructor(checkpoint_op: number) {
        super(`state sync: restart to restore checkpoint ${checkpoint_op} from peers`);
        this.name = 'StateSyncRestart';
        this.checkpoint_op = checkpoint_op;
    }
}

/** Counters for logs and tests (typed, fixed: nothing is allocated when one is bumped). */
export class ReplicaStats {
    requests_received = 0;
    requests_dropped = 0;
    replies_sent = 0;
    replies_resent = 0;
    prepares = 0;
    commits = 0;
    pulses = 0;
    pongs = 0;
    messages_ignored = 0;
    /** Evictions sent, by reason (index = EvictionReason). */
    readonly evictions = new Uint32Array(eviction_reason_max + 1);
    /** Times the primary waited because the WAL would overwrite an op not yet checkpointed. */
    wal_stalls = 0;
    /** Times a commit waited for a free pool message. */
    commit_stalls = 0;
    checkpoints = 0;
    /**
     * Session replies lost at startup: unreadable or corrupt in the client_replies zone and not
     * rebuilt by the WAL replay. A retry of such a request is evicted (never executed twice).
     */
    replies_lost = 0;
    /** Of those, replies fetched from a peer (request_reply) and written back to their slot. */
    replies_repaired = 0;
    /** Create requests refused for a capacity limit, by limit (index = Limit code). */
    readonly limit_refusals = new Uint32Array(limit_count);
    /** Times the request queue was full and a request was dropped (the client retries). */
    overload_drops = 0;
}

/**
 * The journal and superblock were built with one listener; during startup it collects their
 * outcomes (StartupWaiter), afterwards it forwards them to the replica.
 */
export class ReplicaStorageListener implements JournalListener, SuperBlockListener {
    readonly startup = new StartupWaiter();
    replica: Replica | null = null;

    journal_done(error: StorageRefusal | null): void {
        if (this.replica === null) this.startup.journal_done(error);
        else if (!this.replica.sync_pending) this.replica.journal_done(error);
    }
    journal_prepare_written(op: number, result: number): void {
        assert(this.replica !== null, 'journal write before the replica exists');
        if (this.replica.sync_pending) return;
        this.replica.journal_prepare_written(op, result);
    }
    superblock_done(error: StorageRefusal | null): void {
        if (this.replica === null) this.startup.superblock_done(error);
        else if (!this.replica.sync_restart_wanted) this.replica.superblock_done(error);
    }
}

const request_at = offsets.request;
const prepare_at = offsets.prepare;
const reply_at = offsets.reply;

/** The listener the Checkpointer and ClientReplies are built with, before the replica exists. */
export class ReplicaCheckpointListener implements CheckpointListener, ClientRepliesListener {
    replica: Replica | null = null;

    checkpoint_done(op: number, error: StorageRefusal | null): void {
        assert(this.replica !== null, 'checkpoint before the replica exists');
        // A replica that adopted a peer's checkpoint waits to be restarted over it.
        if (this.replica.sync_pending) return;
        this.replica.checkpoint_done(op, error);
    }
    checkpoint_restored(error: StorageRefusal | null): void {
        assert(this.replica !== null, 'restore before the replica exists');
        // A replica that adopted a peer's checkpoint waits to be restarted over it.
        if (this.replica.sync_pending) return;
        this.replica.checkpoint_restored(error);
    }
    client_reply_written(tag: number, result: number): void {
        assert(this.replica !== null, 'client reply write before the replica exists');
        // A replica that adopted a peer's checkpoint waits to be restarted over it.
        if (this.replica.sync_pending) return;
        this.replica.client_reply_written(tag, result);
    }
    client_reply_read(tag: number, result: number): void {
        assert(this.replica !== null, 'client reply read before the replica exists');
        // A replica that adopted a peer's checkpoint waits to be restarted over it.
        if (this.replica.sync_pending) return;
        this.replica.client_reply_read(tag, result);
    }
}

/** The sessions blob size for clients_max (the Checkpointer reserves it in the grid). */
export { sessions_size_max };

export class Replica implements StorageCompletionTarget, ReplyRepairHost {
    readonly pool: MessagePool;
    readonly time: ReplicaTime;
    readonly random: ReplicaRandom;
    readonly storage: Storage;
    readonly superblock: SuperBlock;
    readonly journal: Journal;
    readonly checkpointer: StateCheckpointer;
    readonly client_replies: ClientReplies;
    readonly schedule: CheckpointSchedule;
    readonly state_machine: StateMachine;
    readonly sessions: ClientSessions;
    /** Fetches session replies lost at startup from peers (cluster only). */
    readonly reply_repair: ReplyRepair;
    /** Fetches grid blocks restore finds corrupt from peers, and serves theirs (cluster only). */
    readonly grid_repair: GridRepair | null;
    readonly pipeline: Pipeline;
    readonly stats = new ReplicaStats();
    readonly release: number;
    readonly replica: number;
    readonly replica_count: number;
    readonly quorum_replication: number;
    readonly quorum_view_change: number;
    readonly cluster: Uint8Array;
    readonly message_size_max: number;
    /** Headers one `headers` message carries: the protocol's limit, or what a message holds. */
    private readonly headers_per_message: number;
    private readonly log: (line: string) => void;
    private readonly io_flush: (() => void) | null;
    private network: ReplicaNetwork | null = null;
    private readonly storage_target: number;

    status: number = Status.opening;
    /** Why opening failed (status failed). */
    failure: Error | null = null;
    view = 0;
    log_view = 0;
    /** The head: the highest op prepared. */
    op = 0;
    /** The highest op executed. */
    commit_min = 0;
    /** The highest op known committed (held by a replication quorum). */
    commit_max = 0;
    /** The highest op executed: commit_min, or ahead of it on a single replica. */
    op_executed = 0;
    checkpoint_op = 0;
    private readonly checkpoint_id = new Uint8Array(16);
    /** The durable checkpoint's root block (a peer that state-syncs fetches the tree from it). */
    private checkpoint_root_address = 0;
    /** State sync (docs/vsr.md §12.2): the superblock update naming a peer's checkpoint is out. */
    private sync_writing = false;
    /** The superblock names a peer's checkpoint: this process stops until restarted over it. */
    sync_restart_wanted = false;

    /** A state sync stopped this process (status failed): its superblock write, or a restart. */
    get sync_pending(): boolean {
        return this.sync_writing || this.sync_restart_wanted;
    }

    /** The superblock update of a state sync is still out (the process must wait for it). */
    get sync_writing_pending(): boolean {
        return this.sync_writing;
    }
    /** Checksum of the checkpoint op's prepare header: what op checkpoint+1 chains to on
     * replay, kept apart because the WAL may already have overwritten that prepare. */
    private readonly checkpoint_prepare_checksum = new Uint8Array(16);
    /** Checksum of the head prepare's header: the next prepare's parent. */
    private readonly head_checksum = new Uint8Array(16);
    /** Timestamp of the head prepare, as (hi, lo) u32 limbs. */
    private timestamp_hi = 0;
    private timestamp_lo = 0;
    /** The wall clock read by realtime_read(), as (hi, lo) nanoseconds. */
    private now_hi = 0;
    private now_lo = 0;
    /**
     * Our own WAL: every op up to op_written is durable; ops op_written+1 .. op_writing were
     * handed to the journal (up to a pipeline of them at once), each with its write_states
     * entry (by op % pipeline size): writing, durable (waiting for a lower op) or failed.
     */
    private op_written = 0;
    private op_writing = 0;
    private readonly write_states = new Uint8Array(pipeline_prepare_queue_max);
    /** Attempts made to write each op in write_states (reset when it is durable). */
    private readonly write_attempts = new Uint8Array(pipeline_prepare_queue_max);
    /** Ticks until failed WAL writes are retried (the delay doubles per attempt). */
    private write_retry_ticks = 0;
    /**
     * Set when the disk refused a write past its retries: no request is accepted from then on
     * (each is answered with an eviction naming it) while replies already made, pings and
     * retries of replied requests are still answered. Only a restart clears it.
     */
    writes_refused: StorageRefusal | null = null;
    private write_retry = false;
    private commit_stalled = false;
    /** Create events in uncommitted prepares, by operation (capacity accounting). */
    /** Limits the operator was told of (bit = Limit code): once per limit per process. */
    private limits_reported = 0;
    private writes_refused_errno = 0;
    /** Set from the first overload drop until the request queue is empty again. */
    private overloaded = false;
    private pending_accounts = 0;
    private pending_transfers = 0;
    private ticks = 0;
    private pulse_tick = 0;
    private wal_stalled = false;

    private readonly request_view = new HeaderView();
    private readonly prepare_view = new HeaderView();
    private readonly reply_view = new HeaderView();
    private readonly other_view = new HeaderView();
    private readonly request_checksum = new Uint8Array(16);
    private replay_message = -1;
    /** Startup: the op the replay commits up to, and the log head found in the WAL. */
    private replay_op_max = 0;
    private open_op_head = 0;
    /**
     * A hole: a committed op of our log whose WAL prepare is damaged (its header is known, or
     * its checksum from the parent of the op above). hole_op is the one being fetched from a
     * peer by (op, checksum), 0 when none; it is executed from memory once it comes.
     */
    private hole_op = 0;
    /** How many times a primary asked its backups for its hole (pipeline_hole_retry). */
    private pipeline_hole_asks = 0;
    private readonly hole_checksum = new Uint8Array(16);
    /** The canonical checksum of an op whose retransmitted prepare may heal a hole. */
    private readonly hole_expected = new Uint8Array(16);
    /** A hole being rewritten in place (one at a time): its op and the message written. */
    private hole_write_op = 0;
    private hole_write_message = -1;
    private readonly solo: boolean;
    /** Startup: the session entry whose reply is being read back (-1: none). */
    private restore_entry = -1;
    /** Startup: per session entry, the ClientReplyResult of reading its reply back. */
    private readonly restore_reply_result: Int8Array;
    /** The sessions blob written with each checkpoint. */
    private readonly sessions_blob: Uint8Array;
    /** Per session entry: the reply message being written to client_replies (-1: none). */
    private readonly reply_writing: Int32Array;
    /** The checkpoint being written (-1: none), and its prepare's header checksum. */
    private checkpoint_op_next = -1;
    private readonly checkpoint_prepare_checksum_next = new Uint8Array(16);
    private readonly vsr_state = new VsrState();

    // ---- cluster (docs/vsr.md §10-§14)
    private readonly timeout_ping: Timeout;
    private readonly timeout_prepare: Timeout;
    private readonly timeout_commit_heartbeat: Timeout;
    private readonly timeout_normal_heartbeat: Timeout;
    private readonly timeout_view_change_status: Timeout;
    private readonly timeout_view_change_message: Timeout;
    private readonly timeout_request_start_view: Timeout;
    private readonly timeout_repair: Timeout;
    /**
     * Prepares in memory by op (ring of cache_size, op % cache_size): the ops appended and not
     * yet committed, so that a backup commits without reading its WAL back. Each entry holds one
     * reference. An entry whose WAL write is in flight is never evicted (op - op_written is at
     * most a pipeline, the ring two).
     */
    private readonly cache_ops = new Float64Array(cache_size).fill(-1);
    private readonly cache_messages = new Int32Array(cache_size).fill(-1);
    /** Votes to leave the view: bit r for replica r's start_view_change for view svc_view. */
    private svc_view = 0;
    private svc_votes = 0;
    /** The new primary's do_view_change quorum for `view` (bit r: replica r's arrived). */
    private dvc_votes = 0;
    private readonly dvc_log_view = new Uint32Array(replicas_max);
    private readonly dvc_op = new Float64Array(replicas_max);
    private readonly dvc_commit_max = new Float64Array(replicas_max);
    private readonly dvc_header_count = new Uint8Array(replicas_max);
    /**
     * Per replica, bit i of its suffix header i: present, it holds that prepare (can serve it);
     * nack, it never wrote it, so it never acknowledged it (§8.3).
     */
    private readonly dvc_present = new Uint32Array(replicas_max);
    private readonly dvc_nack = new Uint32Array(replicas_max);
    /**
     * 1 for a voter that cannot prove its head (§10), or that sent no headers: its log is never
     * chosen, and it denies no op up to dvc_acknowledged_max.
     */
    private readonly dvc_head_uncertain = new Uint8Array(replicas_max);
    /**
     * The highest op each voter may have acknowledged: its op, or with an uncertain head what
     * its do_view_change says (op_acknowledged_max): above that it denies.
     */
    private readonly dvc_acknowledged_max = new Float64Array(replicas_max);
    /**
     * The view this process led (primary_start), or -1. After a restart our log is what was
     * durable, possibly short of what that view's backups acknowledged: no longer that view's.
     */
    private view_led = -1;
    /**
     * While the log is not clean: the highest op we may have acknowledged and no longer hold
     * (what a restart's WAL could hold past the checkpoint, or our head before a cut whose
     * log we have not yet whole). Our do_view_change denies nothing up to it.
     */
    private uncertain_op_max = 0;
    /** The view whose do_view_change quorum was reported unable to choose a log (logged once). */
    private dvc_undecided_view = -1;
    /** Per replica, its do_view_change suffix headers (newest first). */
    private readonly dvc_headers: Uint8Array;
    /**
     * The log this replica is repairing toward: ops op+1 .. repair_op_max, with the canonical
     * header of each op that is known so far in repair_headers (slot op % slot_count), fetched
     * from repair_source (the current primary, or the replica whose log a view change chose).
     */
    private readonly repair_headers: Uint8Array;
    private repair_op_max = 0;
    private repair_source = -1;
    /** Repair timeouts so far: a view change asks the next holder of a prepare on each. */
    private repair_rounds = 0;
    /**
     * Whether the log may be offered in a view change: every op up to `op` is intact and chains
     * (false in recovering_head, until a start_view brings the log back).
     */
    private log_clean = true;
    /** Whether our log may lack ops we acknowledged (TigerBeetle would be in recovering_head). */
    get head_uncertain(): boolean { return !this.log_clean; }
    /** The view and log_view the superblock holds (what may be acted on). */
    private view_durable = 0;
    private log_view_durable = 0;
    private superblock_updating = false;
    /** The new primary chose its log and is repairing toward it (status view_change). */
    private view_change_adopting = false;
    /** A start_view to install once the journal has no write in flight (-1: none). */
    private start_view_pending = -1;
    /** Our random nonce of request_start_view (recovering_head accepts only its echo). */
    private readonly nonce = new Uint8Array(16);
    /** The WAL read that serves a peer's request_prepare (-1: none in flight). */
    private serve_message = -1;
    private serve_replica = -1;
    /** The op being read back to serve, and its header checksum (to judge a bad read). */
    private serve_op = 0;
    private readonly serve_checksum = new Uint8Array(16);
    /** A backup's commit read from the WAL is in flight. */
    private commit_reading = false;
    readonly stats_cluster = new ClusterStats();
    /** Cluster time (clock.ts): fed by pongs, ticked with the cluster; unused when solo. */
    readonly clock: Clock;
    /** A primary without cluster time said so (once per episode). */
    private clock_waiting = false;
    /** The highest op in the primary's pipeline (below op only while a new view refills it). */
    private pipeline_op_loaded = 0;
    private pipeline_loading = false;
    private pipeline_filling = false;
    /** Bumped when the pipeline is dropped, so that a refill read in flight is discarded. */
    private pipeline_generation = 0;
    private pipeline_load_generation = 0;
    private pipeline_load_message = -1;
    private readonly request_start_view_sent_tick = new Float64Array(replicas_max);
    private superblock_again = false;
    private superblock_view_writing = 0;
    private superblock_log_view_writing = 0;
    private readonly build_view = new HeaderView();
    private readonly peer_view = new HeaderView();
    private readonly repair_view = new HeaderView();
    /** For cache_entry_check only (its callers may hold any other view attached). */
    private readonly check_view = new HeaderView();
    /** The highest op whose prepare repair asked for since the last repair timeout. */
    private repair_requested_max = 0;
    private readonly timeouts: Timeout[];
    /** Per replica, the tick we last heard from it in our view (primary_current). */
    private readonly heard_tick = new Float64Array(replicas_max).fill(-1e9);
    /** The op this primary's view began at: sessions are current once it is committed. */
    private primary_since_op = 0;
    /** An empty input for the pulse (the ledger reads nothing from it). */
    private readonly pulse_scratch = new Uint8Array(16);

    constructor(options: ReplicaOptions) {
        this.pool = options.pool;
        this.time = options.time;
        this.random = options.random;
        this.storage = options.storage;
        this.superblock = options.superblock;
        this.journal = options.journal;
        this.checkpointer = options.checkpointer;
        this.client_replies = options.client_replies;
        this.schedule = new CheckpointSchedule(this.journal.slot_count,
            pipeline_prepare_queue_max);
        this.release = options.release ?? release_server;
        this.log = options.log ?? (() => undefined);
        this.io_flush = options.io_flush ?? null;
        assert(this.superblock.is_open, 'the superblock must be open before the replica');
        assert(this.pool.message_size_max === this.journal.message_size_max,
            'pool messages and WAL slots must have the same size');
        this.replica = this.superblock.replica;
        this.replica_count = this.superblock.replica_count;
        assert(this.replica >= 0 && this.replica < this.replica_count);
        this.quorum_replication = quorum_replication(this.replica_count);
        this.quorum_view_change = quorum_view_change(this.replica_count);
        this.solo = this.replica_count === 1;
        this.clock = new Clock({ replica: this.replica, replica_count: this.replica_count,
            quorum: this.quorum_replication, time: this.time });
        // Star replication waits for quorum - 1 backups; a replica's bit fits a byte.
        assert(this.replica_count <= replicas_max && replicas_max <= 8);
        assert(quorum_nack_prepare(this.replica_count) >= 1);
        this.timeout_ping = new Timeout('ping', timeouts_ticks.ping, this.random);
        // Retransmissions back off to 16 periods (4 s), a stuck view change to 4 (12 s): long
        // enough to stop a storm, short enough that a healed network is used soon.
        this.timeout_prepare = new Timeout('prepare', timeouts_ticks.prepare, this.random, 4);
        this.timeout_commit_heartbeat = new Timeout('commit_heartbeat',
            timeouts_ticks.commit_heartbeat, this.random);
        this.timeout_normal_heartbeat = new Timeout('normal_heartbeat',
            timeouts_ticks.normal_heartbeat, this.random);
        this.timeout_view_change_status = new Timeout('view_change_status',
            timeouts_ticks.view_change_status, this.random, 2);
        this.timeout_view_change_message = new Timeout('view_change_message',
            timeouts_ticks.view_change_message, this.random);
        this.timeout_request_start_view = new Timeout('request_start_view',
            timeouts_ticks.request_start_view, this.random);
        this.timeout_repair = new Timeout('repair', timeouts_ticks.repair, this.random);
        this.timeouts = [this.timeout_ping, this.timeout_prepare, this.timeout_commit_heartbeat,
            this.timeout_normal_heartbeat, this.timeout_view_change_status,
            this.timeout_view_change_message, this.timeout_request_start_view,
            this.timeout_repair];
        this.repair_headers = new Uint8Array(this.journal.slot_count * header_size);
        this.dvc_headers = new Uint8Array(replicas_max * view_change_headers_max * header_size);
        this.cluster = Uint8Array.from(this.superblock.cluster_bytes());
        assert.equal(this.cluster.length, 16);
        this.message_size_max = this.pool.message_size_max;
        this.headers_per_message = Math.min(headers_count_max,
            this.message_size_max / header_size - 1);
        assert(this.headers_per_message >= view_change_headers_max);
        this.state_machine = options.state_machine;
        this.sessions = new ClientSessions(options.clients_max, this.pool);
        this.restore_reply_result = new Int8Array(options.clients_max);
        this.sessions_blob = new Uint8Array(sessions_size_max(options.clients_max));
        this.reply_writing = new Int32Array(options.clients_max).fill(-1);
        this.reply_repair = new ReplyRepair(this);
        this.grid_repair = this.solo ? null : this.grid_repair_create();
        this.pipeline = new Pipeline(pipeline_prepare_queue_max,
            options.request_queue_max ?? options.clients_max);
        // write_states is indexed by op modulo its length: it covers a pipeline of writes.
        assert(this.write_states.length >= this.pipeline.prepare_max);
        assert(this.pipeline.prepare_max <= this.journal.writes_max);
        this.storage_target = this.storage.target_register(this);
        options.storage_listener.replica = this;
    }

    /** A cluster replica's grid repair, attached to the checkpointer before it restores. */
    private grid_repair_create(): GridRepair {
        assert(!this.solo && this.status === Status.opening);
        const repair = new GridRepair(this, this.storage);
        this.checkpointer.grid_repair_attach(repair);
        return repair;
    }

    /** The network arrives after construction (the bus needs the replica as its owner). */
    network_attach(network: ReplicaNetwork): void {
        assert(this.network === null);
        this.network = network;
    }

    /**
     * Startup cannot finish on the disk alone: the restore waits for grid blocks from peers,
     * so the caller must start the network (and the ticks) before the replica serves.
     */
    get startup_waits_for_peers(): boolean {
        return this.status === Status.restoring && this.grid_repair !== null &&
            this.grid_repair.wanted_count > 0;
    }

    /** Session replies lost at startup and not yet fetched back from a peer (reply_repair.ts). */
    get replies_missing(): number {
        return this.reply_repair.missing;
    }

    get is_primary(): boolean {
        return this.view % this.replica_count === this.replica;
    }

    /** The highest op the WAL may hold now: beyond it a slot of an op not checkpointed would be
     * overwritten (docs/data-file.md §6.4), so the primary waits. */
    get op_prepare_max(): number {
        return this.schedule.op_prepare_max(this.checkpoint_op);
    }

    // ------------------------------------------------------------------ opening and replay

    /**
     * Starts recovery from the opened superblock and WAL: restores the checkpoint, reads back
     * the sessions' replies, replays ops checkpoint+1 .. head. Progress is driven by storage
     * completions; status becomes normal (or failed, with `failure` saying why).
     */
    open(): void {
        assert(this.status === Status.opening);
        assert(!this.journal.busy && this.journal.op_max >= 0);
        assert(this.op === 0 && this.commit_min === 0 && this.op_executed === 0);
        this.superblock.vsr_state_read(this.vsr_state);
        this.view = this.vsr_state.view;
        this.log_view = this.vsr_state.log_view;
        this.status = Status.restoring;
        this.checkpointer.restore();
    }

    checkpoint_restored(error: StorageRefusal | null): void {
        assert(this.status === Status.restoring);
        if (error !== null) return this.fail(error);
        this.checkpoint_op = this.checkpointer.op_checkpoint;
        assert.equal(this.checkpoint_op, this.vsr_state.checkpoint_op);
        this.checkpoint_id.set(this.vsr_state.checkpoint_id);
        this.checkpoint_root_address = this.vsr_state.checkpoint_root_address;
        if (this.vsr_state.sync_op_max === this.checkpoint_op && this.checkpoint_op > 0) {
            this.sync_headers_forget();
        }
        if (this.checkpoint_op === 0) {
            // Checkpoint 0 is the format: op 0 is the root prepare, a function of the cluster.
            const root = new Uint8Array(header_size);
            header_empty_write(root, 0, this.cluster, 0, operation_root);
            this.checkpoint_prepare_checksum.set(root.subarray(0, 16));
        } else {
            this.checkpoint_prepare_checksum.set(this.checkpointer.prepare_checksum());
        }
        const refusal = this.sessions.decode(this.checkpointer.sessions());
        if (refusal !== null) {
            return this.fail(new StorageRefusal('grid', this.checkpoint_op, -1, refusal));
        }
        this.commit_min = this.checkpoint_op;
        this.op_executed = this.checkpoint_op;
        assert(this.checkpoint_op <= this.vsr_state.commit_max);
        this.restore_entry = -1;
        this.restore_reply_next();
    }

    /** Reads the latest reply of each session back from the client_replies zone. */
    private restore_reply_next(): void {
        assert(this.status === Status.restoring && this.replay_message === -1);
        for (let entry = this.restore_entry + 1; entry < this.sessions.capacity; entry++) {
            if (this.sessions.session(entry) === 0) continue;
            const message = this.pool.acquire();
            assert(message !== -1, 'restore: the pool is smaller than clients_max');
            assert.equal(this.sessions.reply_message(entry), -1, 'restore: a reply read twice');
            this.restore_entry = entry;
            this.replay_message = message;
            this.client_replies.read(entry, entry, this.sessions.reply_headers,
                entry * header_size, this.pool.offset(message));
            return;
        }
        this.restore_entry = this.sessions.capacity;
        this.replay_start();
    }

    client_reply_read(entry: number, result: number): void {
        assert(this.status === Status.restoring && entry === this.restore_entry);
        const message = this.replay_message;
        assert(message !== -1);
        assert(result <= ClientReplyResult.ok && result >= ClientReplyResult.corrupt);
        this.replay_message = -1;
        this.restore_reply_result[entry] = result;
        if (result === ClientReplyResult.ok) {
            this.sessions.reply_message_set(entry, message);
        } else {
            // Not lost yet: a crash after a checkpoint's reply writes but before its superblock
            // leaves a newer reply in the slot, and the replay re-executes that op and rebuilds
            // it. replies_lost_report decides once the replay is done.
            this.pool.unref(message);
        }
        this.restore_reply_next();
    }

    /**
     * After the replay: a session whose reply neither the zone nor the WAL could give back has
     * truly lost it (a single replica has no peer to repair from). The session stays (the table
     * is a function of the committed log, and the header still chains the client's next
     * request); only a retry of that very request is refused, by eviction, so that the client
     * gets a clear error instead of retrying forever, and the request never executes twice.
     */
    private replies_lost_report(): void {
        assert.equal(this.status, Status.replaying);
        for (let entry = 0; entry < this.sessions.capacity; entry++) {
            if (this.sessions.session(entry) === 0) continue;
            if (this.sessions.reply_message(entry) !== -1) continue;
            const result = this.restore_reply_result[entry]!;
            assert(result !== ClientReplyResult.ok, 'a session without its reply');
            this.stats.replies_lost += 1;
            let client = '';
            for (let word = 3; word >= 0; word--) {
                client += this.sessions.client_word(entry, word).toString(16).padStart(8, '0');
            }
            if (!this.solo) {
                this.reply_repair.want(entry);
                this.log(`replica ${this.replica}: warning: zone client_replies slot ${entry} op ` +
                    `${this.sessions.reply_commit(entry)}: reply ` +
                    `${result === ClientReplyResult.unreadable ? 'unreadable' : 'corrupt'}: ` +
                    'fetching it from a peer (request_reply); until then a retry of request ' +
                    `${this.sessions.request(entry)} by client 0x${client} is dropped, not run`);
                continue;
            }
            const refusal = this.client_replies.refusal(entry, this.sessions.reply_headers,
                entry * header_size, result);
            this.log(`replica: warning: ${refusal.message}: client 0x${client} is evicted ` +
                `(no_session) if it retries request ${this.sessions.request(entry)}, rather ` +
                'than left retrying or answered twice');
        }
        this.restore_reply_result.fill(ClientReplyResult.ok);
    }

    private replay_start(): void {
        assert.equal(this.status, Status.restoring);
        assert.equal(this.restore_entry, this.sessions.capacity);
        assert.equal(this.commit_min, this.checkpoint_op);
        if (this.journal.op_max < this.checkpoint_op) {
            if (this.solo) {
                return this.fail(new StorageRefusal('wal', this.journal.op_max, -1,
                    `the WAL ends before checkpoint ${this.checkpoint_op}`));
            }
            // The state holds every op up to the checkpoint; the slots above the highest intact
            // op are faulty (seed 4248358357/5). Our head is the checkpoint, and unprovable:
            // we may have acknowledged ops past it, which the cluster's log brings back.
            this.log_uncertain(this.op_prepare_max);
        }
        if (this.journal.op_max > this.op_prepare_max) {
            return this.fail(new StorageRefusal('wal', this.journal.op_max, -1,
                'the WAL head is beyond what the checkpoint covers'));
        }
        this.open_op_head = this.solo ? this.journal.op_max
            : this.log_clean ? this.log_head_find() : this.checkpoint_op;
        // A replication quorum of one is our own WAL: every op in it was committed when it was
        // written. With peers the WAL head is not known committed; what the superblock recorded
        // is, and the rest is learned from the cluster (start_view, commit heartbeats).
        this.replay_op_max = this.solo ? this.open_op_head
            : Math.min(this.open_op_head, Math.max(this.vsr_state.commit_max, this.checkpoint_op));
        assert(this.replay_op_max >= this.checkpoint_op);
        this.status = Status.replaying;
        this.commit_max = this.replay_op_max;
        this.replay_message = this.pool.acquire();
        assert(this.replay_message !== -1, 'replay: the pool is empty at startup');
        this.replay_next();
    }

    /**
     * A cluster replica's log head at startup: the highest op up to which the WAL chains from
     * the checkpoint. A faulty slot on the way means an op we may have acknowledged is unreadable:
     * the log stops below it and is not clean (recovering_head, internals.md §10). A clean break
     * (an intact header that does not chain) is a tail a start_view was replacing when we
     * crashed: never acknowledged, so it is cut.
     */
    private log_head_find(): number {
        assert(!this.solo && this.log_clean);
        const headers = this.journal.headers;
        let op = this.checkpoint_op;
        for (let pass = 0; pass < this.journal.slot_count && op < this.journal.op_max; pass++) {
            const next = op + 1;
            const slot = next % this.journal.slot_count;
            const header = this.other_view.attach(headers, slot * header_size);
            const command = header.u8(frame.command);
            const parent_ok = op === this.checkpoint_op
                ? header.equal16(prepare_at.parent, this.checkpoint_prepare_checksum, 0)
                : header.equal16(prepare_at.parent, headers,
                    (op % this.journal.slot_count) * header_size + frame.checksum);
            // Above the head our log_view began with, only that view's prepares are ours.
            const chained = command === Command.prepare && header.u64(prepare_at.op) === next &&
                parent_ok && (next <= this.vsr_state.log_view_op ||
                    header.view === this.vsr_state.log_view);
            // A faulty slot whose header recovery kept (its redundant copy intact) and that
            // chains is a hole, fetched when committed (hole_fetch). One whose header is
            // unknown or does not chain hides what we may have acknowledged: recovering_head.
            if (this.journal.slot_faulty(slot) && !chained) {
                this.log_uncertain(this.op_prepare_max);
                break;
            }
            if (!chained) break;
            op = next;
        }
        assert(op >= this.checkpoint_op && op <= this.journal.op_max);
        if (this.log_clean && !this.log_head_provable(op)) this.log_uncertain(this.op_prepare_max);
        return op;
    }

    /**
     * Whether no faulty slot can hide an op above `head` that we acknowledged: every faulty
     * slot holds an op of our log (checkpoint, head] (a hole, fetched when committed) or one
     * recovery names as checkpointed. Any other may have held an op in (head, prepare_max],
     * whose header is gone with it (internals.md §10: such a replica denies nothing above).
     */
    private log_head_provable(head: number): boolean {
        const slot_count = this.journal.slot_count;
        for (let slot = 0; slot < slot_count; slot++) {
            if (!this.journal.slot_faulty(slot)) continue;
            const op = head - ((head - slot) % slot_count + slot_count) % slot_count;
            assert(op <= head && ((op % slot_count) + slot_count) % slot_count === slot);
            if (op > this.checkpoint_op) continue;
            const named = this.journal.faulty_op[slot]!;
            if (named >= 0 && named <= this.checkpoint_op) continue;
            return false;
        }
        return true;
    }

    private fail(error: Error): void {
        // Serving, a failure refuses writes instead (writes_refuse): fail() is for startup.
        assert(this.status !== Status.normal);
        this.status = Status.failed;
        this.failure = error;
        if (this.replay_message !== -1) this.pool.unref(this.replay_message);
        this.replay_message = -1;
        this.log(`replica: ${error.message}`);
    }

    private replay_next(): void {
        assert(this.status === Status.replaying);
        if (this.checkpoint_op_next !== -1) return; // Resumes at checkpoint_done.
        if (this.commit_min === this.replay_op_max) return this.replay_done();
        assert(this.commit_min < this.replay_op_max && this.op_executed === this.commit_min);
        assert(this.replay_message !== -1);
        const op = this.commit_min + 1;
        const slot = op % this.journal.slot_count;
        const headers = this.journal.headers;
        const at = slot * header_size;
        const header = this.other_view.attach(headers, at);
        if (header.u8(frame.command) !== Command.prepare || header.u64(prepare_at.op) !== op) {
            return this.fail(new StorageRefusal('wal', op, slot, 'missing from the WAL'));
        }
        // Recovery bounded every header it kept: the read stays inside the slot and the message.
        assert(header.size >= header_size && header.size <= this.message_size_max);
        this.storage.read(this.storage_target, slot, Zone.wal_prepares,
            slot * this.message_size_max, this.pool.offset(this.replay_message),
            sector_ceil(header.size));
    }

    /** Tags: a WAL slot for a commit read (replay, or a backup), slot_count + slot to serve a
     * peer, 2 * slot_count + slot to refill a new primary's pipeline. */
    storage_complete(tag: number, result: number): void {
        assert(tag >= 0 && tag < 3 * this.journal.slot_count);
        if (this.sync_pending) return;
        if (tag >= 2 * this.journal.slot_count) {
            return this.pipeline_read_done(tag - 2 * this.journal.slot_count, result);
        }
        if (tag >= this.journal.slot_count) {
            return this.serve_read_done(tag - this.journal.slot_count, result);
        }
        if (this.status !== Status.replaying) return this.commit_read_done(tag, result);
        const slot = tag;
        const op = this.commit_min + 1;
        assert.equal(slot, op % this.journal.slot_count);
        const refusal = result < 0 ? new StorageRefusal('wal_prepares', op, slot,
            `read failed with errno ${-result}`) : this.replay_check(slot, op);
        if (refusal !== null) {
            if (this.solo) return this.fail(refusal);
            // Peers hold it: the replay ends here, and the op is fetched when committed.
            this.log(`replica ${this.replica}: ${refusal.message}: the replay stops below it`);
            this.stats_cluster.prepares_damaged += 1;
            this.journal.slot_damaged(slot, op);
            this.replay_op_max = this.commit_min;
            return this.replay_next();
        }
        try {
            const reply = this.execute_prepare(this.replay_message);
            assert(reply !== reply_unavailable, 'replay: no pool message for a reply at startup');
            this.commit_reply(this.replay_message, reply, -1);
            assert.equal(this.commit_min, op);
            this.checkpoint_maybe(op, this.replay_message);
        } catch (error) {
            if (!(error instanceof StateMachineCapacityError)) throw error;
            return this.fail(new Error(`${error.message} while replaying op ${op}: start ` +
                'with larger --accounts-max/--transfers-max than the data needs'));
        }
        this.replay_next();
    }

    /** The prepare read back must be the one the journal's header names, chained to its parent. */
    private replay_check(slot: number, op: number): StorageRefusal | null {
        assert(op > this.checkpoint_op && op === this.commit_min + 1);
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(this.replay_message);
        const expected = slot * header_size;
        const header = this.prepare_view.attach(bytes, offset);
        const intact = checksum_equal(bytes, offset + 16, header_size - 16, bytes, offset) &&
            header.equal16(frame.checksum, this.journal.headers, expected) &&
            header.size <= this.message_size_max &&
            checksum_equal(bytes, offset + header_size, header.size - header_size, bytes,
                offset + frame.checksum_body);
        if (!intact) return new StorageRefusal('wal_prepares', op, slot, 'corrupt on replay');
        const chained = op === this.checkpoint_op + 1
            ? header.equal16(prepare_at.parent, this.checkpoint_prepare_checksum, 0)
            : header.equal16(prepare_at.parent, this.journal.headers,
                ((op - 1) % this.journal.slot_count) * header_size + frame.checksum);
        if (!chained) {
            return new StorageRefusal('wal_prepares', op, slot, 'does not chain to its parent');
        }
        return null;
    }

    private replay_done(): void {
        assert.equal(this.status, Status.replaying);
        assert.equal(this.op_executed, this.commit_min);
        assert(this.pipeline.prepare_count === 0 && this.pipeline.request_count === 0);
        const op = this.open_op_head;
        assert(op >= this.replay_op_max);
        if (op === this.checkpoint_op) {
            this.head_checksum.set(this.checkpoint_prepare_checksum);
            const head = (op % this.journal.slot_count) * header_size;
            const header = this.other_view.attach(this.journal.headers, head);
            if (header.u64(prepare_at.op) === op && header.u8(frame.command) === Command.prepare) {
                this.timestamp_lo = header.limb(prepare_at.timestamp, 0);
                this.timestamp_hi = header.limb(prepare_at.timestamp, 1);
            }
        } else {
            const head = (op % this.journal.slot_count) * header_size;
            const header = this.other_view.attach(this.journal.headers, head);
            assert.equal(header.u64(prepare_at.op), op);
            this.head_checksum.set(this.journal.headers.subarray(head, head + 16));
            this.timestamp_lo = header.limb(prepare_at.timestamp, 0);
            this.timestamp_hi = header.limb(prepare_at.timestamp, 1);
        }
        this.op = op;
        this.op_written = op;
        this.op_writing = op;
        this.commit_max = this.solo ? op : Math.max(this.vsr_state.commit_max, this.commit_min);
        assert.equal(this.commit_min, this.replay_op_max);
        this.pool.unref(this.replay_message);
        this.replay_message = -1;
        this.replies_lost_report();
        this.view_durable = this.view;
        this.log_view_durable = this.log_view;
        this.pipeline_op_loaded = this.commit_min;
        this.status = Status.normal;
        if (!this.solo) this.open_cluster();
        if (this.status === Status.normal) this.invariants();
        this.log(`replica: replayed to op ${this.commit_min} (checkpoint ${this.checkpoint_op}), ` +
            `log head ${this.op}, view ${this.view}, ${this.sessions.count} client session(s)`);
    }

    // ------------------------------------------------------------------ messages in

    /** A message from the bus (validated: checksums, cluster, frame). */
    on_message(connection: number, message: number): void {
        assert(connection >= connection_none);
        // The bus (or the simulator's network) holds a reference during the call.
        assert(this.pool.references_of(message) >= 1);
        const bytes = this.pool.bytes;
        const command = bytes[this.pool.offset(message) + frame.command];
        if (command === Command.request) return this.on_request(connection, message);
        if (command === Command.ping_client) return this.on_ping_client(connection, message);
        // Clients send only the two above; everything else is a peer's (ignored when solo).
        this.on_peer_message(message);
    }

    on_close(connection: number): void {
        assert(connection >= 0);
        this.sessions.connection_closed(connection);
        this.pipeline.connection_closed(connection);
    }

    private on_request(connection: number, message: number): void {
        this.stats.requests_received += 1;
        if (this.status === Status.normal && !this.is_primary) {
            // As TigerBeetle: a backup passes a request on to its primary, which answers the
            // client directly (a client that knows an old view still reaches the new primary).
            assert(!this.solo, 'a single replica is always the primary');
            this.stats_cluster.requests_to_backup += 1;
            const request = this.request_view.attach(this.pool.bytes, this.pool.offset(message));
            if (request.view <= this.view) this.send_replica(this.primary_of(this.view), message);
            return this.drop();
        }
        if (this.status !== Status.normal || !this.is_primary) return this.drop();
        // Sessions answer for the cluster only when ours are the view's latest state.
        if (!this.solo && !this.primary_current()) return this.drop();
        const request = this.request_view.attach(this.pool.bytes, this.pool.offset(message));
        if (request.view > this.view) return this.drop();
        const reason = this.request_invalid(request);
        if (reason !== 0) return this.evict(request, frame_client, reason);
        if (request.u8(request_at.operation) === Operation.register) {
            return this.on_register(connection, message, request);
        }
        const entry = this.sessions.find(request.limb(request_at.client, 0),
            request.limb(request_at.client, 1), request.limb(request_at.client, 2),
            request.limb(request_at.client, 3));
        if (entry === -1) {
            return this.evict(request, frame_client, EvictionReason.no_session);
        }
        const session = u64_saturating(request, request_at.session);
        if (session < this.sessions.session(entry)) {
            return this.evict(request, frame_client, EvictionReason.session_too_low);
        }
        if (session > this.sessions.session(entry)) {
            return this.evict(request, frame_client, EvictionReason.no_session);
        }
        if (request.release !== this.sessions.release(entry)) {
            return this.evict(request, frame_client,
                EvictionReason.session_release_mismatch);
        }
        this.sessions.connection_set(entry, connection);
        this.on_request_in_session(connection, message, request, entry);
    }

    /** A session's request-number and parent checks (docs/wire-protocol.md §5.3, §7 step 7). */
    private on_request_in_session(connection: number, message: number, request: HeaderView,
        entry: number): void {
        assert(this.sessions.session(entry) > 0);
        const number = request.u32(request_at.request);
        const latest = this.sessions.request(entry);
        if (number === latest) return this.resend_reply(connection, request, entry);
        if (number !== latest + 1) return this.drop();
        if (!this.sessions.context_matches(entry, request.bytes,
            request.offset + request_at.parent)) return this.drop();
        if (this.in_flight(connection, request)) return this.drop();
        this.accept(connection, message);
    }

    /** Register: a new client, or a retransmit of a register we already answered. */
    private on_register(connection: number, message: number, request: HeaderView): void {
        assert(this.primary_normal || this.solo, 'only the primary registers sessions');
        assert.equal(request.u8(request_at.operation), Operation.register);
        assert(this.pool.references_of(message) >= 1);
        const entry = this.sessions.find(request.limb(request_at.client, 0),
            request.limb(request_at.client, 1), request.limb(request_at.client, 2),
            request.limb(request_at.client, 3));
        if (entry !== -1) {
            this.sessions.connection_set(entry, connection);
            if (this.sessions.request(entry) === 0) {
                return this.resend_reply(connection, request, entry);
            }
            return this.drop();
        }
        if (this.in_flight(connection, request)) return this.drop();
        this.accept(connection, message);
    }

    /**
     * The checks that evict (docs/wire-protocol.md §7 steps 2-6), in TigerBeetle's order; 0 when
     * the request passes. Oversized messages never get here: the bus refuses anything above
     * message_size_max.
     */
    private request_invalid(request: HeaderView): number {
        // The bus validated the frame: the size covers at least the header.
        assert(request.size >= header_size);
        const release = request.release;
        if (release < release_client_min) return EvictionReason.client_release_too_low;
        if (release > this.release) return EvictionReason.client_release_too_high;
        if (request.size > this.message_size_max) return EvictionReason.invalid_request_body_size;
        const operation = request.u8(request_at.operation);
        const body_size = request.size - header_size;
        if (operation === Operation.register) {
            if (body_size === 0) return EvictionReason.invalid_request_body_size;
            return this.register_body_valid(request, body_size) ? 0
                : EvictionReason.invalid_request_body;
        }
        if (!this.state_machine.operation_supported(operation)) {
            return EvictionReason.invalid_request_operation;
        }
        const valid = this.state_machine.input_valid(operation, request.bytes,
            request.offset + header_size, body_size);
        return valid ? 0 : EvictionReason.invalid_request_body;
    }

    /** RegisterRequest: batch_size_limit within our limit (0: "the server's"), reserved zero. */
    private register_body_valid(request: HeaderView, body_size: number): boolean {
        if (body_size !== register_request_body_size) return false;
        const limit = request.u32(header_size);
        if (limit > this.message_size_max - header_size) return false;
        return request.zero(header_size + 4, register_request_body_size - 4);
    }

    /** Whether this client already has a request in the pipeline or the request queue. */
    private in_flight(connection: number, request: HeaderView): boolean {
        const bytes = this.pool.bytes;
        const client_at = request.offset + request_at.client;
        const pipeline = this.pipeline;
        assert(pipeline.prepare_count <= pipeline.prepare_max);
        for (let i = 0; i < pipeline.prepare_count; i++) {
            const other = this.pool.offset(pipeline.prepare_message(i));
            if (equal16(bytes, other + prepare_at.client, bytes, client_at)) {
                if (connection >= 0) pipeline.connection_update(i, connection);
                return true;
            }
        }
        for (let i = 0; i < pipeline.request_count; i++) {
            const other = this.pool.offset(pipeline.request_message(i));
            if (equal16(bytes, other + request_at.client, bytes, client_at)) {
                if (connection >= 0) pipeline.request_connection_update(i, connection);
                return true;
            }
        }
        return false;
    }

    private drop(): void {
        this.stats.requests_dropped += 1;
    }

    /**
     * Overload is back-pressure, as in TigerBeetle: the dropped request is retransmitted by its
     * client with backoff and gets in once the queue drains, so it is answered, later. The
     * operator hears of each episode once (it ends when the queue is empty again).
     */
    private overload_drop(): void {
        this.stats.overload_drops += 1;
        if (!this.overloaded) {
            this.overloaded = true;
            this.log(`replica: overloaded: the pipeline and the request queue ` +
                `(${this.pipeline.request_max} requests) are full; new requests are dropped and ` +
                'their clients retry until there is room (told once per episode; counted in ' +
                'overload_drops). Sustained, it means more clients than the disk keeps up with.');
        }
        this.drop();
    }

    /**
     * A duplicate of the latest request: answered from the cached reply, never re-executed. If
     * that reply was lost at startup (replies_lost_report), a single replica evicts the client;
     * a cluster replica drops the retry while it fetches the reply from a peer (reply_repair.ts),
     * and the client's next retry gets it.
     */
    private resend_reply(connection: number, request: HeaderView, entry: number): void {
        if (!this.sessions.reply_answers(entry, request.bytes, request.offset + frame.checksum)) {
            return this.drop();
        }
        const reply = this.sessions.reply_message(entry);
        if (reply === -1 && !this.solo) {
            assert(this.reply_repair.is_wanted(entry), 'a missing reply nobody fetches');
            this.stats_cluster.retries_reply_missing += 1;
            return this.drop();
        }
        if (reply === -1) {
            return this.evict(request, frame_client, EvictionReason.no_session);
        }
        this.stats.replies_resent += 1;
        this.send_client(reply);
    }

    private accept(connection: number, message: number): void {
        assert(this.status === Status.normal && this.is_primary);
        const pipeline = this.pipeline;
        if (this.writes_refused !== null) {
            return this.writes_refused_evict(connection,
                this.request_view.attach(this.pool.bytes, this.pool.offset(message)));
        }
        // Dropped, not queued: the wait may be long, and a full queue would read as overload.
        if (!this.clock_ready()) return this.drop();
        if (pipeline.request_count > 0 || !this.prepare_possible()) {
            if (pipeline.request_full) return this.overload_drop();
            this.pool.ref(message);
            pipeline.request_push(message, connection);
            return;
        }
        this.pool.ref(message);
        this.primary_prepare(message, connection);
    }

    private on_ping_client(connection: number, message: number): void {
        const ping = this.request_view.attach(this.pool.bytes, this.pool.offset(message));
        const release = ping.release;
        const at = offsets.ping_client;
        if (release < release_client_min) {
            return this.evict(ping, at.client, EvictionReason.client_release_too_low);
        }
        if (release > this.release) {
            return this.evict(ping, at.client, EvictionReason.client_release_too_high);
        }
        assert(release >= release_client_min && release <= this.release);
        const session = u64_saturating(ping, at.session);
        if (session !== 0 && this.status === Status.normal) {
            const entry = this.sessions.find(ping.limb(at.client, 0), ping.limb(at.client, 1),
                ping.limb(at.client, 2), ping.limb(at.client, 3));
            if (entry === -1 && this.commit_min >= session) {
                return this.evict(ping, at.client, EvictionReason.no_session);
            }
            if (entry !== -1) this.sessions.connection_set(entry, connection);
            assert(entry !== -1 || this.commit_min < session);
        }
        this.pong(connection, ping);
    }

    // ------------------------------------------------------------------ cluster: messages in

    /** A replica-to-replica message (validated by the bus or the simulator's network). */
    private on_peer_message(message: number): void {
        const header = this.peer_view.attach(this.pool.bytes, this.pool.offset(message));
        const from = header.replica;
        // A prepare or a reply names its author (the primary that made it), not its sender: a
        // repair answer or retransmission may carry our own index, or anyone's.
        const authored = header.command === Command.prepare || header.command === Command.reply ||
            header.command === Command.block;
        if (this.solo || from >= this.replica_count || (from === this.replica && !authored)) {
            this.stats.messages_ignored += 1;
            return;
        }
        if (this.status === Status.failed) return;
        // The grid is ours to serve, and to repair, from startup on: a restoring replica waits
        // for the blocks it lacks, and may hold those another restoring replica lacks.
        if (header.command === Command.request_blocks) {
            return this.grid_repair!.on_request_blocks(header);
        }
        if (header.command === Command.block) return this.grid_repair!.on_block(message);
        // A restore waiting for blocks no peer may hold any more takes a newer checkpoint.
        if (header.command === Command.commit && this.status === Status.restoring) {
            return this.sync_check(header);
        }
        // Startup (the log is not yet ours to speak for) hears nobody else.
        if (this.status < Status.normal) return;
        assert(from < this.replica_count && (from !== this.replica || authored));
        assert(header.equal16(frame.cluster, this.cluster, 0), 'the bus admits our cluster only');
        this.cluster_invariants();
        if (header.view === this.view && !authored) this.heard_tick[from] = this.ticks;
        switch (header.command) {
            case Command.ping: return this.on_ping(header);
            case Command.pong: return this.on_pong(header);
            case Command.prepare: return this.on_prepare(message, header);
            case Command.prepare_ok: return this.on_prepare_ok_message(header);
            case Command.commit: return this.on_commit(header);
            case Command.start_view_change: return this.on_start_view_change(header);
            case Command.do_view_change: return this.on_do_view_change(header);
            case Command.start_view: return this.on_start_view(message, header);
            case Command.request_start_view: return this.on_request_start_view(header);
            case Command.request_headers: return this.on_request_headers(header);
            case Command.headers: return this.on_headers(header);
            case Command.request_prepare: return this.on_request_prepare(header);
            case Command.request_reply: return this.on_request_reply(header);
            case Command.reply: return this.on_reply_repaired(message);
            default:
                this.stats.messages_ignored += 1;
        }
    }

    /** One line of the replica's protocol state, for logs and the simulator's reports. */
    describe(): string {
        return `view ${this.view}/${this.log_view} (durable ${this.view_durable}/` +
            `${this.log_view_durable}) op ${this.op} written ${this.op_written} commit ` +
            `${this.commit_min}/${this.commit_max} repair ${this.repair_op_max} from ` +
            `${this.repair_source} pipeline ${this.pipeline.prepare_count}+` +
            `${this.pipeline.request_count} loaded ${this.pipeline_op_loaded} clean ` +
            `${this.log_clean ? 1 : 0} superblock ${this.superblock_updating ? 1 : 0} votes ` +
            `${this.svc_view}:${this.svc_votes.toString(2)} dvc ${this.dvc_votes.toString(2)} ` +
            `timeouts ` +
            this.timeouts.map((timeout) => timeout.ticking ? `${timeout.name}:` +
                `${timeout.ticks}/${timeout.period_ticks}` : '').filter((text) => text !== '')
                .join(',');
    }

    /**
     * What holds in every status a cluster replica serves in (normal, view_change and
     * recovering_head): the op numbers' order, durable state behind (never ahead of) the state
     * in memory, and view-change bookkeeping within the cluster. Checked as each peer message
     * and each tick comes in, and after each state transition.
     */
    private cluster_invariants(): void {
        assert(this.status === Status.normal || this.status === Status.view_change ||
            this.status === Status.recovering_head);
        assert(!this.solo);
        assert(this.checkpoint_op <= this.commit_min);
        assert(this.commit_min <= this.commit_max);
        assert(this.commit_min <= this.op, 'a cut never reaches below the commit');
        assert(this.op_written <= this.op_writing);
        assert(this.op_writing <= this.op);
        assert(this.op <= this.op_prepare_max);
        assert(this.log_view <= this.view);
        assert(this.view_durable <= this.view);
        assert(this.log_view_durable <= this.log_view);
        assert(this.svc_votes < 1 << this.replica_count);
        assert(this.dvc_votes < 1 << this.replica_count);
        assert(this.repair_source >= -1 && this.repair_source < this.replica_count);
        assert(this.repair_source !== this.replica, 'a replica never repairs from itself');
        // Only the new primary adopts a log; it serves only in the view its log is of.
        if (this.view_change_adopting) assert(this.is_primary);
        if (this.primary_normal) assert.equal(this.log_view, this.view);
        if (this.backup_normal) {
            assert(this.pipeline.prepare_count === 0 && this.pipeline.request_count === 0);
        }
        if (this.start_view_pending !== -1) {
            assert(this.pool.references_of(this.start_view_pending) >= 1);
        }
    }

    /** The primary of a view: no election, a rotation (docs/vsr.md §1). */
    primary_of(view: number): number {
        assert(Number.isSafeInteger(view) && view >= 0);
        return view % this.replica_count;
    }

    /**
     * Whether this primary's session table is the cluster's latest: it committed every op it
     * inherited with the view, and a replication quorum heard from it lately (a primary cut off
     * by a partition, whose backups moved on, must not evict a client registered meanwhile).
     */
    private primary_current(): boolean {
        assert(this.primary_normal && !this.solo);
        if (this.commit_min < this.primary_since_op) return false;
        return this.quorum_heard();
    }

    /** The view a vote to leave this one proposes: the next, or a higher one others proposed. */
    private get view_next(): number {
        return Math.max(this.view + 1, this.svc_view);
    }

    /** Whether a replication quorum (us included) was heard from lately in our view. */
    private quorum_heard(): boolean {
        let heard = 1;
        for (let replica = 0; replica < this.replica_count; replica++) {
            if (replica === this.replica) continue;
            if (this.ticks - this.heard_tick[replica]! <= heard_window_ticks) heard += 1;
        }
        return heard >= this.quorum_replication;
    }

    private get primary_normal(): boolean {
        return this.status === Status.normal && this.is_primary;
    }

    private get backup_normal(): boolean {
        return this.status === Status.normal && !this.is_primary;
    }

    private on_ping(ping: HeaderView): void {
        // on_peer_message lets in only the other replicas of our cluster (the pong's target).
        assert(ping.replica < this.replica_count && ping.replica !== this.replica);
        // A peer in a later view: ours is over, ask that view's primary for it.
        if (ping.view > this.view) this.request_start_view_send(this.primary_of(ping.view));
        const message = this.message_new(Command.pong, header_size);
        if (message === -1) return;
        const pong = this.build_view;
        const echo = offsets.ping.ping_timestamp_monotonic;
        pong.set_limb(offsets.pong.ping_timestamp_monotonic, 0, ping.limb(echo, 0));
        pong.set_limb(offsets.pong.ping_timestamp_monotonic, 1, ping.limb(echo, 1));
        this.realtime_read();
        pong.set_limb(offsets.pong.pong_timestamp_wall, 0, this.now_lo === 0 ? 1 : this.now_lo);
        pong.set_limb(offsets.pong.pong_timestamp_wall, 1, this.now_hi);
        this.seal_send(message, ping.replica);
    }

    /** A pong: a clock sample (our ping's monotonic stamp echoed, the peer's wall clock). */
    private on_pong(pong: HeaderView): void {
        assert(pong.replica < this.replica_count && pong.replica !== this.replica);
        assert(!this.solo && pong.command === Command.pong);
        const at = offsets.pong;
        // The echo should be our own stamp; a garbled one beyond 2^53 is none of ours.
        if (pong.limb(at.ping_timestamp_monotonic, 1) > 0x1F_FFFF) return;
        this.clock.learn(pong.replica, pong.u64(at.ping_timestamp_monotonic),
            pong.limb(at.pong_timestamp_wall, 1), pong.limb(at.pong_timestamp_wall, 0));
    }

    /**
     * A prepare: a new one from our primary, a retransmission, or a repair answer (any replica
     * may send one; its header names the primary that made it, not the sender).
     */
    private on_prepare(message: number, prepare: HeaderView): void {
        if (this.hole_op !== 0 && prepare.u64(prepare_at.op) === this.hole_op &&
            prepare.equal16(frame.checksum, this.hole_checksum, 0)) {
            return this.hole_fill(message, prepare);
        }
        const view = prepare.view;
        if (view > this.view) return this.request_start_view_send(this.primary_of(view));
        const ours = view === this.view && this.status === Status.normal;
        if (ours && !this.is_primary) {
            // Our primary is alive: no vote to leave its view.
            this.timeout_normal_heartbeat.reset();
            this.commit_learn(prepare.u64(prepare_at.commit));
        }
        if (view === this.view && this.status === Status.view_change &&
            prepare.replica === this.primary_of(view) && !this.is_primary) {
            // The view's primary prepares: it went normal and we missed its start_view.
            return this.request_start_view_send(prepare.replica);
        }
        const accepting = this.backup_normal ||
            (this.status === Status.view_change && this.view_change_adopting);
        if (!accepting) {
            this.stats_cluster.messages_stale += 1;
            return;
        }
        // A backup of our view, or the new primary taking the log it chose.
        assert(view <= this.view);
        if (this.status === Status.normal) assert(!this.is_primary);
        else assert(this.status === Status.view_change && this.is_primary);
        this.append_maybe(message, prepare);
    }

    /** Appends op+1 when it is the prepare our log needs; otherwise notes a gap or an ack due. */
    private append_maybe(message: number, prepare: HeaderView): void {
        assert(this.backup_normal || this.view_change_adopting);
        const op = prepare.u64(prepare_at.op);
        assert(op >= 0);
        if (op <= this.op) return this.prepare_ok_resend(op, message, prepare);
        this.repair_learn(prepare, op);
        // Validated on receipt: above op 0 (the root) a prepare's commit is below its op.
        assert(prepare.u64(prepare_at.commit) < op);
        if (op > this.op + 1) {
            if (this.repair_stash(message, prepare, op)) return;
            return this.gap_note(prepare, op);
        }
        if (!this.append_canonical(prepare, op)) {
            this.stats_cluster.messages_stale += 1;
            return;
        }
        if (!this.append_room(op)) {
            // Writes are full: keep it for when they land (repair_unstash) rather than drop it
            // and wait a whole timeout for it to come again.
            this.append_later(message, op);
            return;
        }
        this.cache_put(op, message);
        this.head_checksum.set(prepare.bytes.subarray(prepare.offset, prepare.offset + 16));
        this.timestamp_lo = prepare.limb(prepare_at.timestamp, 0);
        this.timestamp_hi = prepare.limb(prepare_at.timestamp, 1);
        this.op = op;
        assert(this.op <= this.op_prepare_max);
        if (prepare.view === this.view && this.backup_normal) {
            this.commit_learn(prepare.u64(prepare_at.commit));
        }
        this.journal_write_next();
        assert(this.op - this.op_written <= this.write_states.length);
        this.repair_unstash();
        this.repair_continue();
    }

    /**
     * A repaired prepare that arrived ahead of op + 1 (repair asks for a window at once): kept
     * in the cache when its checksum is the canonical one, appended when its turn comes.
     */
    private repair_stash(message: number, prepare: HeaderView, op: number): boolean {
        assert(op > this.op + 1);
        if (op > this.op + repair_window || !this.repair_known(op)) return false;
        if (!prepare.equal16(frame.checksum, this.repair_headers,
            (op % this.journal.slot_count) * header_size)) return false;
        const entry = op % cache_size;
        const held = this.cache_ops[entry]!;
        if (held === op) return true;
        // Within the window no unwritten op shares the entry (cache_size = 2 × window).
        if (held !== -1 && held > this.op_written) return true;
        this.cache_put(op, message);
        return true;
    }

    /**
     * A prepare whose header repair did not know yet, but which the known header above names
     * as its parent: its header is canonical too (asked of any peer by repair_request_parent,
     * when the repair source's own copy is a hole and it cannot send the header).
     */
    private repair_learn(prepare: HeaderView, op: number): void {
        if (op <= this.op || op >= this.repair_op_max || this.repair_known(op)) return;
        if (!this.repair_known(op + 1)) return;
        const slot_count = this.journal.slot_count;
        // Its slot in repair_headers would be the target's or one above (seed 968592442/5).
        if (this.repair_op_max - op >= slot_count) return;
        const above = this.check_view.attach(this.repair_headers, ((op + 1) % slot_count) *
            header_size);
        if (!above.equal16(prepare_at.parent, prepare.bytes, prepare.offset)) return;
        this.repair_headers.set(prepare.bytes.subarray(prepare.offset,
            prepare.offset + header_size), (op % slot_count) * header_size);
        assert(this.repair_known(op), 'a header its known child names is known');
    }

    /**
     * On a repair timeout, when the next op's header is still unknown: the prepare just below
     * the lowest known header is asked of the next peer in turn by (op, the parent checksum),
     * since the repair source may hold that op as a hole (it would then never send its header).
     */
    private repair_request_parent(): void {
        if (this.repair_op_max <= this.op + 1 || this.repair_known(this.op + 1)) return;
        let known = this.op + 2;
        while (known < this.repair_op_max && !this.repair_known(known)) known += 1;
        if (!this.repair_known(known)) return;
        const slot_count = this.journal.slot_count;
        const header = this.check_view.attach(this.repair_headers, (known % slot_count) *
            header_size);
        const message = this.message_new(Command.request_prepare, header_size);
        if (message === -1) return;
        this.build_view.copy16_from(offsets.request_prepare.prepare_checksum, header.bytes,
            header.offset + prepare_at.parent);
        this.build_view.set_u64(offsets.request_prepare.prepare_op, known - 1);
        const peer = (this.replica + 1 + (this.repair_rounds % (this.replica_count - 1))) %
            this.replica_count;
        assert(peer !== this.replica && known - 1 > this.op);
        this.stats_cluster.repairs_requested += 1;
        this.seal_send(message, peer);
    }

    /** Caches op + 1 (canonical, no write room yet) when its entry is free of unwritten ops. */
    private append_later(message: number, op: number): void {
        assert(op === this.op + 1);
        if (op > this.op_prepare_max || this.start_view_pending !== -1) return;
        const entry = op % cache_size;
        const held = this.cache_ops[entry]!;
        if (held === op || (held !== -1 && held > this.op_written)) return;
        this.cache_put(op, message);
    }

    /** Appends the stashed prepares that now follow our head. */
    private repair_unstash(): void {
        assert(this.backup_normal || this.view_change_adopting);
        for (let pass = 0; pass < repair_window; pass++) {
            const next = this.op + 1;
            const message = this.cache_get(next);
            if (message === -1 || !this.append_room_stashed(next)) return;
            const prepare = this.repair_view.attach(this.pool.bytes, this.pool.offset(message));
            if (!this.append_canonical(prepare, next)) {
                this.cache_release(next);
                return;
            }
            this.head_checksum.set(prepare.bytes.subarray(prepare.offset, prepare.offset + 16));
            this.timestamp_lo = prepare.limb(prepare_at.timestamp, 0);
            this.timestamp_hi = prepare.limb(prepare_at.timestamp, 1);
            this.op = next;
            this.stats_cluster.prepares_repaired += 1;
            this.journal_write_next();
            // append_room_stashed's bounds: the WAL slot and a write slot were free.
            assert(this.op <= this.op_prepare_max && this.op_writing <= this.op);
            assert(this.op - this.op_written <= this.write_states.length);
        }
    }

    /** append_room for a prepare already in its cache entry. */
    private append_room_stashed(op: number): boolean {
        assert.equal(op, this.op + 1);
        assert(this.cache_get(op) !== -1, 'a stashed prepare is in the cache');
        if (op > this.op_prepare_max) return false;
        if (this.start_view_pending !== -1 || this.writes_refused !== null) return false;
        if (op - this.op_written > this.write_states.length) return false;
        return this.write_states[op % this.write_states.length] === write_none;
    }

    /**
     * Whether `prepare` (at op + 1) belongs in our log: it must chain to our head, and be either
     * the header a repair expects, or made in our view by its primary (whose log never loses an
     * op within its view, so anything it prepared in this view is the view's log).
     */
    private append_canonical(prepare: HeaderView, op: number): boolean {
        assert.equal(op, this.op + 1);
        if (!prepare.equal16(prepare_at.parent, this.head_checksum, 0)) return false;
        if (this.repair_known(op)) {
            return prepare.equal16(frame.checksum, this.repair_headers,
                (op % this.journal.slot_count) * header_size);
        }
        return prepare.view === this.view && this.status === Status.normal;
    }

    /** Room to append op: the WAL slot is reusable, a write slot and a cache entry are free. */
    private append_room(op: number): boolean {
        assert.equal(op, this.op + 1);
        if (op > this.op_prepare_max) return false;
        if (this.start_view_pending !== -1 || this.writes_refused !== null) return false;
        if (op - this.op_written > this.write_states.length) return false;
        if (this.write_states[op % this.write_states.length] !== write_none) return false;
        const entry = op % cache_size;
        const held = this.cache_ops[entry]!;
        // An entry still being written stays (op_written below it).
        return held === -1 || held <= this.op_written;
    }

    /** A prepare beyond op + 1: keep its header when it is the view's (it bounds the repair). */
    private gap_note(prepare: HeaderView, op: number): void {
        assert(op > this.op + 1);
        if (prepare.view !== this.view || this.status !== Status.normal) return;
        if (op - this.op >= this.journal.slot_count) return; // Beyond the WAL: state sync.
        assert(this.backup_normal);
        const at = (op % this.journal.slot_count) * header_size;
        this.repair_headers.set(prepare.bytes.subarray(prepare.offset,
            prepare.offset + header_size), at);
        if (op > this.repair_op_max) this.repair_op_max = op;
        this.repair_source = this.primary_of(this.view);
        assert(this.repair_known(op), 'the header noted bounds the repair');
        this.repair_continue();
    }

    /** A prepare we hold: acknowledge it again (the first prepare_ok may have been lost). */
    private prepare_ok_resend(op: number, message: number, prepare: HeaderView): void {
        assert(op <= this.op);
        // Committed or not: a new primary refilling its pipeline needs our word on each op.
        if (!this.backup_normal || op > this.op_written || op === 0) return;
        if (this.op - op >= this.journal.slot_count) return;
        if (this.journal.slot_faulty(op % this.journal.slot_count)) {
            // A hole of ours: the primary's copy heals it (acknowledged once rewritten).
            if (this.hole_checksum_find(op, this.hole_expected) &&
                prepare.equal16(frame.checksum, this.hole_expected, 0)) {
                this.hole_rewrite(message, op);
            }
            return;
        }
        const at = (op % this.journal.slot_count) * header_size;
        if (!prepare.equal16(frame.checksum, this.journal.headers, at)) return;
        this.prepare_ok_send(op);
    }

    /** Sends prepare_ok for op, durable in our WAL, to the primary of our view. */
    private prepare_ok_send(op: number): void {
        assert(this.backup_normal && op <= this.op_written);
        // We speak for our log in this view only once that view is durable as our log_view.
        if (this.log_view_durable !== this.view || this.view_durable !== this.view) return;
        // Durable state lags the state in memory, never leads it.
        assert.equal(this.log_view, this.view);
        assert(op >= 1 && op > this.op - this.journal.slot_count);
        // A hole (its prepare damaged): we no longer hold it, so we do not vouch for it.
        if (this.journal.slot_faulty(op % this.journal.slot_count)) return;
        const message = this.message_new(Command.prepare_ok, header_size);
        if (message === -1) return;
        const ok = this.build_view;
        const source = this.other_view.attach(this.journal.headers,
            (op % this.journal.slot_count) * header_size);
        assert.equal(source.u64(prepare_at.op), op);
        assert.equal(source.u8(frame.command), Command.prepare);
        const at = offsets.prepare_ok;
        ok.copy16_from(at.parent, source.bytes, source.offset + prepare_at.parent);
        ok.copy16_from(at.prepare_checksum, source.bytes, source.offset + frame.checksum);
        ok.copy16_from(at.checkpoint_id, this.checkpoint_id, 0);
        ok.copy16_from(at.client, source.bytes, source.offset + prepare_at.client);
        ok.set_u64(at.op, op);
        ok.set_u64(at.commit_min, this.commit_min);
        ok.set_limb(at.timestamp, 0, source.limb(prepare_at.timestamp, 0));
        ok.set_limb(at.timestamp, 1, source.limb(prepare_at.timestamp, 1));
        ok.set_u32(at.request, source.u32(prepare_at.request));
        ok.set_u8(at.operation, source.u8(prepare_at.operation));
        this.stats_cluster.prepare_oks_sent += 1;
        this.seal_send(message, this.primary_of(this.view));
    }

    /** The primary counts an acknowledgement of a prepare in its pipeline (same checksum). */
    private on_prepare_ok_message(ok: HeaderView): void {
        if (!this.primary_normal || ok.view !== this.view) {
            this.stats_cluster.messages_stale += 1;
            return;
        }
        const op = ok.u64(offsets.prepare_ok.op);
        const pipeline = this.pipeline;
        if (pipeline.prepare_count === 0 || op <= this.commit_max) return;
        const i = op - pipeline.prepare_op(0);
        if (i < 0 || i >= pipeline.prepare_count) return;
        const prepare = this.pool.offset(pipeline.prepare_message(i));
        if (!ok.equal16(offsets.prepare_ok.prepare_checksum, this.pool.bytes, prepare)) return;
        assert(this.primary_normal && ok.replica !== this.replica);
        assert.equal(pipeline.prepare_op(i), op);
        assert(op > this.commit_max && op <= this.op);
        this.on_prepare_ok(op, ok.replica);
    }

    /** A backup hears the commit number from its primary (the heartbeat that keeps the view). */
    private on_commit(commit: HeaderView): void {
        this.sync_check(commit);
        if (this.sync_restart_wanted || this.sync_writing) return;
        if (commit.view > this.view) return this.request_start_view_send(commit.replica);
        if (commit.view < this.view || commit.replica !== this.primary_of(this.view)) return;
        if (this.status === Status.view_change && !this.is_primary) {
            return this.request_start_view_send(commit.replica);
        }
        if (!this.backup_normal) return;
        assert.equal(commit.view, this.view);
        assert(commit.replica !== this.replica, 'a backup hears its primary');
        this.timeout_normal_heartbeat.reset();
        const op = commit.u64(offsets.commit.commit);
        assert(this.backup_normal && op >= 0);
        // Committed beyond our head with no prepare on its way: ask how far the view's log goes.
        if (op > this.op && op > this.repair_op_max) this.request_start_view_send(commit.replica);
        this.commit_learn(op);
    }

    /**
     * A commit number from our view's primary: ops up to it are committed cluster-wide. Only a
     * log that is the view's (a backup in normal status) may take it; commits wait for our copy.
     */
    private commit_learn(commit: number): void {
        assert(this.status === Status.normal && !this.is_primary);
        if (commit > this.commit_max) this.commit_max = commit;
        this.commit_journal();
        assert(this.commit_min <= this.commit_max);
    }

    // ------------------------------------------------------------------ cluster: view change

    /**
     * Our vote to leave the view for `view_new` (start_view_change). Votes alone change nothing:
     * a replica moves only with a view-change quorum of them, so one that can send but not hear
     * (an asymmetric partition) cannot unseat a primary the others still hear.
     */
    private svc_vote(view_proposed: number): void {
        assert(view_proposed > this.view || (view_proposed === this.view &&
            this.status === Status.view_change));
        // A recovered replica's first vote is for the first view it may vote in.
        const view_new = Math.max(view_proposed, this.vsr_state.view_vote_min);
        if (view_new > this.svc_view) {
            this.svc_view = view_new;
            this.svc_votes = 0;
        }
        if (view_new === this.svc_view) this.svc_votes |= 1 << this.replica;
        // view_next: never below a vote already seen, so ours counts with theirs.
        assert.equal(this.svc_view, view_new);
        this.svc_broadcast(view_new);
        this.svc_check();
    }

    /** Broadcasts our vote for `view_new` with every vote for it we have seen. */
    private svc_broadcast(view_new: number): void {
        assert(view_new === this.svc_view && (this.svc_votes & (1 << this.replica)) !== 0);
        const joined = this.status === Status.view_change && view_new === this.view;
        this.svc_send(view_new, this.svc_votes, joined);
    }

    private svc_send(view_new: number, votes: number, joined: boolean): void {
        assert(view_new >= this.view && (votes & (1 << this.replica)) !== 0);
        assert(!this.solo && votes < 1 << this.replica_count);
        const message = this.message_new(Command.start_view_change, header_size);
        if (message === -1) return;
        this.build_view.view = view_new;
        this.build_view.set_u8(offsets.start_view_change.votes, votes);
        this.build_view.set_u8(offsets.start_view_change.joined, joined ? 1 : 0);
        this.seal_broadcast(message);
    }

    private on_start_view_change(svc: HeaderView): void {
        const view_new = svc.view;
        if (view_new <= this.view) return;
        assert(svc.replica < this.replica_count); assert(svc.replica !== this.replica);
        if (svc.u8(offsets.start_view_change.joined) === 1 && this.vote_allowed(view_new)) {
            // Its sender saw a view-change quorum for view_new: follow it there, or it (with any
            // others that moved) waits forever for do_view_changes from replicas still in ours.
            // A replica in recovering_head follows too: its vote says what it cannot deny.
            return this.view_change_start(view_new);
        }
        if (view_new > this.svc_view) {
            this.svc_view = view_new;
            this.svc_votes = 0;
        }
        if (view_new === this.svc_view) {
            // Votes are genuine (no replica lies): those the sender saw count as seen here.
            const votes = svc.u8(offsets.start_view_change.votes) & ((1 << this.replica_count) - 1);
            this.svc_votes |= (1 << svc.replica) | votes;
            assert(this.svc_votes < 1 << this.replica_count);
        }
        assert(this.svc_view >= view_new && view_new > this.view);
        this.svc_check();
    }

    /**
     * Whether we can vote in a view change: always with a proven head; with an uncertain one
     * (recovering_head) only when the head's header is in the journal to send. A head at the
     * checkpoint whose slot is faulty has none: that replica waits for a start_view.
     */
    private get view_change_possible(): boolean {
        if (this.status !== Status.recovering_head) return true;
        assert(!this.log_clean);
        return this.vote_possible;
    }

    /** Whether we may take part in the view change to `view_new` (see open_recovered). */
    private vote_allowed(view_new: number): boolean {
        assert(view_new > this.view);
        return view_new >= this.vsr_state.view_vote_min && this.view_change_possible;
    }

    /**
     * Whether our head's header is in the journal, as a do_view_change or start_view sends it.
     * Not so for a head at the checkpoint whose slot is faulty (at startup, or after a
     * start_view cut our log back to the checkpoint): such a replica sends no log of its own.
     */
    private get head_in_journal(): boolean {
        const header = this.other_view.attach(this.journal.headers,
            (this.op % this.journal.slot_count) * header_size);
        return header.u64(prepare_at.op) === this.op &&
            header.u8(frame.command) === Command.prepare;
    }

    private svc_check(): void {
        if (this.svc_view <= this.view) return;
        if (bits_count(this.svc_votes) < this.quorum_view_change) return;
        if (!this.vote_allowed(this.svc_view)) return;
        // Every serving status moves with a quorum: recovering_head votes with an uncertain head.
        assert(this.status === Status.normal || this.status === Status.view_change ||
            this.status === Status.recovering_head);
        this.view_change_start(this.svc_view);
    }

    /**
     * Leaves the view for `view_new`: the pipeline is dropped (its clients retry; the ops are in
     * the WAL and the next view decides them), the view is made durable before a do_view_change
     * may leave (docs/vsr.md §11), and our vote goes out so that others count it.
     */
    private view_change_start(view_new: number): void {
        assert(view_new > this.view && !this.solo);
        assert(this.status === Status.normal || this.status === Status.view_change ||
            this.status === Status.recovering_head);
        if (this.status === Status.normal && this.is_primary) this.pipeline_clear();
        this.start_view_pending_release();
        this.view = view_new;
        this.status = Status.view_change;
        this.cache_trim();
        this.dvc_votes = 0;
        this.view_change_adopting = false;
        this.repair_reset();
        if (this.svc_view < view_new) {
            this.svc_view = view_new;
            this.svc_votes = 0;
        }
        // Our vote for this view (unless votes for a later one were seen already).
        if (this.svc_view === view_new) this.svc_votes |= 1 << this.replica;
        this.timeouts_for_status();
        this.stats_cluster.view_changes += 1;
        this.log(`replica ${this.replica}: view change to view ${view_new} (primary ` +
            `${this.primary_of(view_new)}), log op ${this.op}, commit ${this.commit_min}`);
        this.superblock_view_update();
        if (this.svc_view === view_new) this.svc_broadcast(view_new);
        this.dvc_send();
        assert.equal(this.status, Status.view_change);
        assert.equal(this.view, view_new);
        assert(this.svc_view >= view_new);
        assert(this.log_view < this.view, 'the log_view is of a view we left');
        assert(!this.view_change_adopting && this.repair_op_max === 0);
        assert.equal(this.start_view_pending, -1);
        assert(this.pipeline.prepare_count === 0 && this.pipeline.request_count === 0);
        // Our do_view_change is at most ours alone: a quorum needs others'.
        assert((this.dvc_votes & ~(1 << this.replica)) === 0);
        this.cluster_invariants();
    }

    /** Our do_view_change for the view, once the view is durable (ours is kept, not sent). */
    private dvc_send(): void {
        if (this.status !== Status.view_change || this.view_durable !== this.view) return;
        if (!this.vote_possible) return; // It waits for the start_view of the view.
        const primary = this.primary_of(this.view);
        if (primary === this.replica) {
            if ((this.dvc_votes & (1 << this.replica)) !== 0) return;
            this.dvc_record_own();
            assert((this.dvc_votes & (1 << this.replica)) !== 0);
            return this.view_change_quorum_check();
        }
        // A backup's log_view is of an earlier view (only a new primary adopts in a view change).
        assert(this.log_view < this.view && this.log_view_durable <= this.log_view);
        assert(this.op_committed_known <= this.op && this.op >= this.checkpoint_op);
        const count = this.vote_suffix_count();
        const message = this.message_new(Command.do_view_change, header_size * (1 + count));
        if (message === -1) return;
        const dvc = this.build_view;
        const at = offsets.do_view_change;
        dvc.set_u64(at.op, this.op);
        dvc.set_u64(at.commit, this.op_committed_known);
        dvc.set_u64(at.checkpoint_op, this.checkpoint_op);
        dvc.set_u32(at.log_view, this.log_view_durable);
        dvc.set_u8(at.head_uncertain, this.log_clean ? 0 : 1);
        dvc.set_u64(at.op_acknowledged_max, this.op_acknowledged_max);
        if (count > 0) {
            this.suffix_write(dvc, count);
            // count <= view_change_headers_max < 32: the bits fit the bitsets' first limb.
            dvc.set_limb(at.present_bitset, 0, this.suffix_bits(count, false));
            dvc.set_limb(at.nack_bitset, 0, this.suffix_bits(count, true));
        }
        seal(dvc);
        this.send_replica(primary, message);
        this.pool.unref(message);
    }

    /** The first faulty WAL slot after our head's (-1: none; the log is uncertain otherwise). */
    private faulty_slot_above_head(): number {
        const slot_count = this.journal.slot_count;
        assert(!this.log_clean, 'only an uncertain log has a faulty slot to name');
        for (let distance = 1; distance < slot_count; distance++) {
            const slot = (this.op + distance) % slot_count;
            if (this.journal.slot_faulty(slot)) return slot;
        }
        return -1;
    }

    /** The highest op we may have acknowledged: our head, or more while the log is not clean. */
    private get op_acknowledged_max(): number {
        return this.log_clean ? this.op : Math.max(this.op, this.uncertain_op_max);
    }

    /** Our log may lack ops up to `op_max` that we acknowledged: it is not clean until whole. */
    private log_uncertain(op_max: number): void {
        this.uncertain_op_max = this.log_clean ? op_max : Math.max(op_max, this.uncertain_op_max);
        this.log_clean = false;
        assert(this.uncertain_op_max >= op_max);
    }

    /**
     * Installs a view's log over ours: a cut of ops we held (our log did not meet the installed
     * suffix, or differed from it) leaves our log uncertain up to our old head until the view's
     * log is whole here (repair_done, adopt_check): a cut op may be one of the view's, which we
     * acknowledged and must not deny meanwhile (seed 3360365673/2).
     */
    private log_install_truncate(): void {
        const acknowledged_max = this.op_acknowledged_max;
        this.log_anchor_truncate();
        if (this.op < acknowledged_max) this.log_uncertain(acknowledged_max);
        else this.log_clean = true;
        assert(this.log_clean || this.uncertain_op_max >= acknowledged_max);
    }

    /** The highest op of our log known committed: everything up to it is in every later log. */
    private get op_committed_known(): number {
        return Math.max(this.commit_min, Math.min(this.op, this.commit_max));
    }

    /** Headers in a do_view_change or start_view: our head down, as many as the WAL holds. */
    private suffix_count(): number {
        const lowest = Math.max(0, this.op - view_change_headers_max + 1,
            this.op - this.journal.slot_count + 1);
        let count = 0;
        for (let op = this.op; op >= lowest; op--) {
            const header = this.other_view.attach(this.journal.headers,
                (op % this.journal.slot_count) * header_size);
            if (header.u64(prepare_at.op) !== op || header.u8(frame.command) !== Command.prepare) {
                break;
            }
            count += 1;
        }
        assert(count >= 1, 'the head is always in the journal');
        assert(count <= view_change_headers_max);
        return count;
    }

    /**
     * Bit i for suffix header i (op - i): with `nack`, whether we never wrote that prepare (above
     * op_written: a prepare_ok is sent only for what is durable, so we never acknowledged it);
     * else whether we can serve it (written and not found faulty, or in memory).
     */
    private suffix_bits(count: number, nack: boolean): number {
        assert(count >= 1 && count <= view_change_headers_max && view_change_headers_max < 32);
        let bits = 0;
        for (let index = 0; index < count; index++) {
            const op = this.op - index;
            const faulty = this.journal.slot_faulty(op % this.journal.slot_count);
            const written = op <= this.op_written;
            const bit = nack ? !written && !faulty :
                (written && !faulty) || (op >= 1 && this.cache_get(op) !== -1);
            if (bit) bits |= 1 << index;
        }
        assert(bits >>> 0 < 2 ** count);
        return bits >>> 0;
    }

    /** Writes `count` suffix headers (newest first) as the body of `message`. */
    private suffix_write(message: HeaderView, count: number): void {
        assert(count >= 1 && message.size === header_size * (1 + count));
        assert(count <= view_change_headers_max);
        for (let index = 0; index < count; index++) {
            const from = ((this.op - index) % this.journal.slot_count) * header_size;
            // suffix_count counted only headers of ops op, op - 1, ... in their slots.
            assert.equal(this.other_view.attach(this.journal.headers, from).u64(prepare_at.op),
                this.op - index);
            message.bytes.set(this.journal.headers.subarray(from, from + header_size),
                message.offset + header_size * (1 + index));
        }
    }

    private dvc_record_own(): void {
        assert(this.status === Status.view_change && this.is_primary);
        assert((this.dvc_votes & (1 << this.replica)) === 0, 'our do_view_change is recorded once');
        const count = this.vote_suffix_count();
        const base = this.replica * view_change_headers_max * header_size;
        for (let index = 0; index < count; index++) {
            const from = ((this.op - index) % this.journal.slot_count) * header_size;
            this.dvc_headers.set(this.journal.headers.subarray(from, from + header_size),
                base + index * header_size);
        }
        this.dvc_store(this.replica, this.log_view_durable, this.op, this.op_committed_known,
            count, this.op_acknowledged_max);
        if (count === 0) return;
        this.dvc_present[this.replica] = this.suffix_bits(count, false);
        this.dvc_nack[this.replica] = this.suffix_bits(count, true);
    }

    /**
     * Whether we can send a do_view_change: with our head's header in the journal, or with an
     * uncertain head at the checkpoint, whose header is gone (its slot faulty) but which needs
     * none: every op up to it is committed, and the vote says only what we cannot deny.
     */
    private get vote_possible(): boolean {
        return this.head_in_journal || (!this.log_clean && this.op === this.checkpoint_op);
    }

    /** The headers our do_view_change carries: the suffix, or none (head at the checkpoint). */
    private vote_suffix_count(): number {
        assert(this.vote_possible);
        return this.head_in_journal ? this.suffix_count() : 0;
    }

    /** Records a do_view_change (its headers are in dvc_headers already; bits: none yet). */
    private dvc_store(replica: number, log_view: number, op: number, commit: number,
        count: number, acknowledged_max: number): void {
        assert(log_view <= this.view && commit <= op && acknowledged_max >= op);
        // A vote without headers (an uncertain head at its checkpoint) is never the chosen log.
        this.dvc_head_uncertain[replica] = acknowledged_max > op || count === 0 ? 1 : 0;
        this.dvc_acknowledged_max[replica] = acknowledged_max;
        this.dvc_present[replica] = 0;
        this.dvc_nack[replica] = 0;
        assert(replica >= 0 && replica < this.replica_count);
        assert(count <= view_change_headers_max && op >= count - 1);
        this.dvc_log_view[replica] = log_view;
        this.dvc_op[replica] = op;
        this.dvc_commit_max[replica] = commit;
        this.dvc_header_count[replica] = count;
        this.dvc_votes |= 1 << replica;
    }

    private on_do_view_change(dvc: HeaderView): void {
        const view = dvc.view;
        if (this.primary_of(view) !== this.replica || view < this.view) return;
        if (view === this.view && this.primary_normal) {
            return this.start_view_send(dvc.replica, null); // It missed our start_view.
        }
        if (view > this.view) {
            // Its sender saw a view-change quorum for `view`: we may move there too.
            if (this.status !== Status.normal && this.status !== Status.view_change &&
                this.status !== Status.recovering_head) return;
            if (!this.vote_allowed(view)) return;
            this.view_change_start(view);
        }
        if (this.status !== Status.view_change || this.view_change_adopting) return;
        assert.equal(view, this.view);
        assert(this.is_primary && dvc.replica !== this.replica);
        const at = offsets.do_view_change;
        const op = dvc.u64(at.op);
        const count = (dvc.size - header_size) / header_size;
        // Validated on receipt: whole headers (none only with an uncertain head), commit <= op,
        // log_view <= view.
        assert(Number.isInteger(count) && count >= 0 && count <= view_change_headers_max);
        assert(count >= 1 || dvc.u8(at.head_uncertain) === 1);
        assert(dvc.u64(at.commit) <= op && dvc.u32(at.log_view) <= view);
        if (count > 0 && !this.suffix_valid(dvc, op, count)) {
            this.stats.messages_ignored += 1;
            return;
        }
        const base = dvc.replica * view_change_headers_max * header_size;
        this.dvc_headers.set(dvc.bytes.subarray(dvc.offset + header_size,
            dvc.offset + header_size * (1 + count)), base);
        const acknowledged_max = dvc.u8(at.head_uncertain) === 0 ? op
            : Math.max(op, dvc.u64(at.op_acknowledged_max));
        this.dvc_store(dvc.replica, dvc.u32(at.log_view), op, dvc.u64(at.commit), count,
            acknowledged_max);
        // Bits beyond the body's headers mean nothing: masked off.
        const mask = 2 ** count - 1;
        this.dvc_present[dvc.replica] = (dvc.limb(at.present_bitset, 0) & mask) >>> 0;
        this.dvc_nack[dvc.replica] = (dvc.limb(at.nack_bitset, 0) & mask) >>> 0;
        this.view_change_quorum_check();
    }

    /** Suffix headers in a message body: intact prepares of ops op, op-1, ... of our cluster. */
    private suffix_valid(message: HeaderView, op: number, count: number): boolean {
        if (count < 1 || count > view_change_headers_max || op < count - 1) return false;
        assert(message.size >= header_size * (1 + count), 'the suffix lies within the message');
        const bytes = message.bytes;
        for (let index = 0; index < count; index++) {
            const at = message.offset + header_size * (1 + index);
            const header = this.other_view.attach(bytes, at);
            if (!checksum_equal(bytes, at + 16, header_size - 16, bytes, at)) return false;
            if (header.u64(prepare_at.op) !== op - index) return false;
            if (header.u8(frame.command) !== Command.prepare) return false;
            if (!header.equal16(frame.cluster, this.cluster, 0)) return false;
            if (index > 0 && !this.other_view.attach(bytes, at - header_size)
                .equal16(prepare_at.parent, bytes, at)) return false;
        }
        return true;
    }

    /**
     * With a view-change quorum of do_view_change (ours among them) the new primary takes the
     * log with the highest (log_view, op): any op committed in an earlier view is in it, since
     * the quorum shares a replica with every replication quorum of the views before (§9).
     */
    private view_change_quorum_check(): void {
        assert(this.status === Status.view_change && this.is_primary);
        if ((this.dvc_votes & (1 << this.replica)) === 0) return;
        if (bits_count(this.dvc_votes) < this.quorum_view_change) return;
        // Adopting may cut our log: not while a write of ours is in flight (a tick retries).
        if (!this.journal_quiet) return;
        let best = -1;
        let commit = this.commit_max;
        for (let replica = 0; replica < this.replica_count; replica++) {
            if ((this.dvc_votes & (1 << replica)) === 0) continue;
            commit = Math.max(commit, this.dvc_commit_max[replica]!);
            // A log whose head is uncertain is never chosen: it may lack ops it acknowledged.
            if (this.dvc_head_uncertain[replica] === 1) continue;
            const log_view = this.dvc_log_view[replica]!;
            const op = this.dvc_op[replica]!;
            if (best === -1 || log_view > this.dvc_log_view[best]! ||
                (log_view === this.dvc_log_view[best]! && op > this.dvc_op[best]!)) best = replica;
        }
        if (best === -1) return this.view_change_undecided();
        const op_best = this.dvc_op[best]!;
        // A voter that cannot prove its head may know of commits beyond the chosen log: wait.
        if (commit > op_best) return this.view_change_undecided();
        // Our own do_view_change was of our log as it still is (nothing appends meanwhile).
        if (best === this.replica) assert.equal(op_best, this.op);
        const op_head = this.view_change_head(best, commit);
        if (op_head === -1) return this.view_change_undecided();
        if (op_head === op_best && !this.view_change_above_denied(best)) {
            return this.view_change_undecided();
        }
        assert(op_head >= commit && op_head <= op_best);
        this.view_change_adopting = true;
        this.repair_reset();
        const cut = op_best - op_head;
        this.stats_cluster.ops_nacked += cut;
        const base = (best * view_change_headers_max + cut) * header_size;
        this.repair_install(this.dvc_headers, base, op_head, this.dvc_header_count[best]! - cut);
        this.repair_source = best === this.replica ? -1 : best;
        this.log_install_truncate();
        assert.equal(this.repair_op_max, op_head);
        assert(this.op <= op_head, 'what we kept is within the chosen log');
        // After the truncation: the commit number speaks of the chosen log, ours from now on.
        this.commit_max = commit;
        this.log(`replica ${this.replica}: view ${this.view}: do_view_change quorum ` +
            `${bits_count(this.dvc_votes)}, log of replica ${best} (log_view ` +
            `${this.dvc_log_view[best]}, op ${op_best}), commit ${commit}` + (cut === 0 ? '' :
                `; ops ${op_head + 1}..${op_best} cut (a nack quorum never prepared them)`));
        this.repair_continue();
        this.commit_journal();
        this.adopt_check();
    }

    /**
     * The head of the log the view takes: the chosen log, cut below its lowest uncommitted op
     * that no voter holds and that a nack quorum denies (§8.3: fewer than a replication quorum
     * can have acknowledged it, so it was never committed and no client saw it). -1 when an op
     * has neither a copy nor a nack quorum: replicas yet to vote may hold it, or, with every
     * vote in, only a replica that lost it did (the view waits rather than guess).
     */
    private view_change_head(best: number, commit: number): number {
        const op_best = this.dvc_op[best]!;
        const lowest = op_best - this.dvc_header_count[best]! + 1;
        const quorum_nack = quorum_nack_prepare(this.replica_count);
        for (let op = Math.max(commit + 1, lowest); op <= op_best; op++) {
            const canonical = (best * view_change_headers_max + op_best - op) * header_size;
            let copies = 0;
            let nacks = 0;
            let unknown = 0;
            for (let replica = 0; replica < this.replica_count; replica++) {
                if ((this.dvc_votes & (1 << replica)) === 0) continue;
                const index = this.dvc_op[replica]! - op;
                if (index < 0) {
                    // Its log ends below op: a nack, unless it lost its head and op is within
                    // what it may have acknowledged.
                    if (op > this.dvc_acknowledged_max[replica]!) nacks += 1;
                    else unknown += 1;
                    continue;
                }
                if (index >= this.dvc_header_count[replica]!) continue; // Not in its suffix.
                const at = (replica * view_change_headers_max + index) * header_size;
                const bit = 1 << index;
                // A different header at op: it never prepared this one (an implicit nack).
                if (!equal16(this.dvc_headers, at, this.dvc_headers, canonical)) nacks += 1;
                else if ((this.dvc_nack[replica]! & bit) !== 0) nacks += 1;
                if ((this.dvc_present[replica]! & bit) !== 0 &&
                    equal16(this.dvc_headers, at, this.dvc_headers, canonical)) copies += 1;
            }
            assert(copies <= bits_count(this.dvc_votes) && nacks <= bits_count(this.dvc_votes));
            if (copies > 0) continue;
            // The cut keeps at least one header of the chosen suffix to anchor the repair.
            if (nacks >= quorum_nack && op > lowest) return op - 1;
            // A voter that lost its head may hold it past its head: the op is kept (keeping is
            // always safe) and asked of every peer by its checksum; the view change's timeout
            // moves on if nobody has it. Else the view waits for votes that may hold it.
            if (unknown === 0) return -1;
        }
        return op_best;
    }

    /**
     * Whether no op above the chosen log's head can have been committed. Without uncertain
     * voters this is the quorum intersection of §9 (every voter denies op_best + 1). An uncertain
     * voter may be the one voter a commit quorum shares with ours, so it is counted out: what
     * remains must be a nack quorum. Voters whose log_view is below the chosen one deny it too:
     * an op committed in an earlier view is in the chosen log, and they acknowledged nothing
     * in a later one, and so do those whose WAL could not hold op_best + 1. Commits go in op
     * order, so op_best + 1 decides every op above it.
     */
    private view_change_above_denied(best: number): boolean {
        assert(this.dvc_head_uncertain[best] === 0 && (this.dvc_votes & (1 << best)) !== 0);
        let nacks = 0;
        for (let replica = 0; replica < this.replica_count; replica++) {
            if ((this.dvc_votes & (1 << replica)) === 0) continue;
            if (this.dvc_head_uncertain[replica] === 0 ||
                this.dvc_log_view[replica]! < this.dvc_log_view[best]! ||
                this.dvc_op[best]! + 1 > this.dvc_acknowledged_max[replica]!) nacks += 1;
        }
        assert(nacks >= 1 && nacks <= bits_count(this.dvc_votes));
        return nacks >= quorum_nack_prepare(this.replica_count);
    }

    /** A view-change quorum that cannot choose a log yet: said once per view. */
    private view_change_undecided(): void {
        assert(this.status === Status.view_change && !this.view_change_adopting);
        if (this.dvc_undecided_view === this.view) return;
        this.dvc_undecided_view = this.view;
        const all = bits_count(this.dvc_votes) === this.replica_count;
        this.log(`replica ${this.replica}: view ${this.view}: an uncommitted op has no intact ` +
            'copy among the do_view_change votes and no nack quorum; ' + (all ?
                'every replica voted: the view waits for a copy (a replica with it to return)' :
                'waiting for the other replicas\' votes'));
    }

    /**
     * The new primary has the chosen log whole and durable: log_view = view goes to the
     * superblock; once it is there (superblock_done), the primary goes normal.
     */
    private adopt_check(): void {
        if (this.status !== Status.view_change || !this.view_change_adopting) return;
        assert(this.is_primary);
        if (this.op < this.repair_op_max || this.op_written < this.op) return;
        this.log_clean = true; // The chosen log, whole: nothing above it was committed.
        if (this.log_view !== this.view) {
            this.log_view = this.view;
            this.superblock_view_update();
        }
        if (this.log_view_durable !== this.view || this.view_durable !== this.view) return;
        if (this.commit_min < this.commit_max || this.checkpoint_op_next !== -1) return;
        this.primary_start();
    }

    /** The new primary serves: its pipeline refills from its log, backups get start_view. */
    private primary_start(): void {
        assert(this.status === Status.view_change && this.is_primary);
        assert(this.commit_min === this.commit_max && this.op_written === this.op);
        this.status = Status.normal;
        this.view_change_adopting = false;
        this.repair_reset();
        this.pipeline_op_loaded = this.commit_min;
        this.primary_since_op = this.op;
        this.view_led = this.view;
        this.timeouts_for_status();
        this.log(`replica ${this.replica}: primary of view ${this.view}: op ${this.op}, commit ` +
            `${this.commit_min}`);
        assert.equal(this.log_view, this.view);
        assert(this.view_durable === this.view && this.log_view_durable === this.view);
        assert(this.pipeline.prepare_count === 0 && this.pipeline.request_count === 0);
        assert(this.repair_op_max === 0 && !this.timeout_repair.ticking);
        assert(this.commit_max <= this.op);
        this.start_view_send(-1, null);
        this.pipeline_fill();
        this.invariants();
    }

    /** Sends start_view to one replica (with its nonce), or to every backup (replica -1). */
    private start_view_send(replica: number, request: HeaderView | null): void {
        assert(this.primary_normal || this.led_view_left);
        assert(replica === -1 || (replica < this.replica_count && replica !== this.replica));
        assert(this.commit_max <= this.op && this.primary_of(this.log_view) === this.replica);
        assert(this.log_view_durable === this.log_view);
        const count = this.suffix_count();
        const message = this.message_new(Command.start_view, header_size * (1 + count));
        if (message === -1) return;
        const sv = this.build_view;
        // Of the view whose log this is: ours, or the one we led and left (led_view_left).
        sv.view = this.log_view;
        const at = offsets.start_view;
        sv.set_u64(at.op, this.op);
        sv.set_u64(at.commit_max, this.commit_max);
        sv.set_u64(at.checkpoint_op, this.checkpoint_op);
        if (request !== null) {
            sv.copy16_from(at.nonce, request.bytes,
                request.offset + offsets.request_start_view.nonce);
        }
        this.suffix_write(sv, count);
        seal(sv);
        if (replica === -1) this.broadcast(message);
        else this.send_replica(replica, message);
        this.pool.unref(message);
    }

    private on_request_start_view(request: HeaderView): void {
        if (request.view > this.view) return;
        assert(request.replica !== this.replica && request.replica < this.replica_count);
        assert(request.view <= this.view && this.status >= Status.normal);
        if (this.primary_normal) return this.start_view_send(request.replica, request);
        // A replica in recovering_head may be asking for the view we led and have left: when
        // its vote is needed for the next view (2 replicas: both), only our log can unblock it.
        if (this.led_view_left && request.view === this.log_view) {
            this.start_view_send(request.replica, request);
        }
    }

    /**
     * We led log_view and are changing views without having touched our log since (not the
     * new primary adopting): it is still exactly the log that view's start_view carried, so it
     * may be sent again, as of that view. A replica that installs it takes part in the new view.
     * Not after a restart: what was durable may be short of what that view's backups
     * acknowledged, and a replica installing it would cut those ops (seed 2203986002/4).
     */
    private get led_view_left(): boolean {
        return this.status === Status.view_change && !this.view_change_adopting &&
            this.log_view < this.view && this.view_led === this.log_view &&
            this.log_view_durable === this.log_view && this.log_clean && this.head_in_journal;
    }

    /** Asks `replica` (a view's primary) for its start_view; at most once per timeout. */
    private request_start_view_send(replica: number): void {
        if (replica === this.replica) return;
        assert(!this.solo && replica >= 0 && replica < this.replica_count);
        // Per destination: asking a dead view's primary must not silence asking the live one.
        const last = this.request_start_view_sent_tick[replica]!;
        if (last !== 0 && last + timeouts_ticks.request_start_view > this.ticks) return;
        this.request_start_view_sent_tick[replica] = this.ticks;
        const message = this.message_new(Command.request_start_view, header_size);
        if (message === -1) return;
        this.build_view.copy16_from(offsets.request_start_view.nonce, this.nonce, 0);
        this.seal_send(message, replica);
    }

    // ------------------------------------------------------------------ cluster: start_view

    private on_start_view(message: number, sv: HeaderView): void {
        const view = sv.view;
        if (sv.replica !== this.primary_of(view) || view < this.view) return;
        if (this.status === Status.recovering_head && view === this.view &&
            !sv.equal16(offsets.start_view.nonce, this.nonce, 0)) {
            return; // Not provably newer than our crash (internals.md §10).
        }
        if (view === this.view && this.is_primary) return;
        const op = sv.u64(offsets.start_view.op);
        const count = (sv.size - header_size) / header_size;
        if (!this.suffix_valid(sv, op, count) || op < this.commit_min) {
            this.stats.messages_ignored += 1;
            return;
        }
        assert(view >= this.view && sv.replica !== this.replica);
        assert(view > this.view || !this.is_primary);
        // Validated on receipt: the commit number is within the log sent.
        assert(sv.u64(offsets.start_view.commit_max) <= op);
        if (view === this.view && this.backup_normal) return this.start_view_extend(sv, op, count);
        if (!this.journal_quiet) {
            // A truncation must not race a write of the slots it gives up: wait for them.
            this.start_view_pending_release();
            this.pool.ref(message);
            this.start_view_pending = message;
            return;
        }
        this.start_view_install(sv);
    }

    /**
     * Installs a start_view: our log is cut back to the last op it shares with the view's log,
     * and what is missing is repaired from the primary. log_view becomes the view only once the
     * log is whole (repair_done): until then we neither acknowledge nor offer our log as the
     * view's, so that no op we hold is ever denied by a log we only partly have.
     */
    private start_view_install(sv: HeaderView): void {
        assert(this.journal_quiet);
        const view = sv.view;
        assert(view >= this.view && this.primary_of(view) !== this.replica);
        if (this.status === Status.normal && this.is_primary) this.pipeline_clear();
        this.view = view;
        this.status = Status.normal;
        this.cache_trim();
        this.view_change_adopting = false;
        this.dvc_votes = 0;
        this.repair_reset();
        const op = sv.u64(offsets.start_view.op);
        const count = (sv.size - header_size) / header_size;
        this.repair_install(sv.bytes, sv.offset + header_size, op, count);
        this.repair_source = this.primary_of(view);
        this.log_install_truncate();
        assert.equal(this.repair_op_max, op);
        // What we kept is the view's log (up to its head), or known committed.
        assert(this.op <= op || this.op <= this.op_committed_known);
        // After the truncation (which may trust only what we knew committed before).
        const commit = Math.min(sv.u64(offsets.start_view.commit_max), op);
        if (commit > this.commit_max) this.commit_max = commit;
        this.timeouts_for_status();
        this.stats_cluster.start_views_installed += 1;
        this.superblock_view_update();
        this.repair_continue();
        this.commit_journal();
        assert(this.status === Status.normal && this.view === view && !this.is_primary);
        assert(this.start_view_pending === -1 && !this.view_change_adopting);
        this.cluster_invariants();
    }

    /**
     * A start_view of the view we are in: our log is already the view's, the suffix only tells
     * how far it goes (we asked because commits went past our head). Its headers above our
     * head become the repair target.
     */
    private start_view_extend(sv: HeaderView, op: number, count: number): void {
        assert(this.backup_normal && sv.view === this.view);
        assert(count >= 1 && op >= this.commit_min);
        if (op > this.op && op > this.repair_op_max) {
            for (let index = 0; index < count && op - index > this.op; index++) {
                const at = ((op - index) % this.journal.slot_count) * header_size;
                this.repair_headers.set(sv.bytes.subarray(sv.offset + header_size * (1 + index),
                    sv.offset + header_size * (2 + index)), at);
            }
            this.repair_op_max = op;
            this.repair_source = this.primary_of(this.view);
            assert(this.repair_known(op), 'the view\'s head bounds the repair');
            this.repair_continue();
        }
        this.commit_learn(Math.min(sv.u64(offsets.start_view.commit_max), op));
    }

    private start_view_pending_release(): void {
        if (this.start_view_pending === -1) return;
        this.pool.unref(this.start_view_pending);
        this.start_view_pending = -1;
    }

    /** A start_view that waited for the journal's writes to land. */
    private start_view_pending_resume(): void {
        if (this.start_view_pending === -1 || !this.journal_quiet) return;
        const message = this.start_view_pending;
        this.start_view_pending = -1;
        assert(this.pool.references_of(message) >= 1, 'a waiting start_view holds a reference');
        const sv = this.peer_view.attach(this.pool.bytes, this.pool.offset(message));
        if (sv.view >= this.view && this.status !== Status.failed) this.start_view_install(sv);
        this.pool.unref(message);
    }

    // ------------------------------------------------------------------ cluster: repair

    private repair_reset(): void {
        this.hole_op = 0; // Asked again, if still needed, by the next commit_journal.
        this.repair_requested_max = 0;
        this.repair_headers.fill(0);
        this.repair_op_max = 0;
        this.repair_source = -1;
        this.timeout_repair.stop();
    }

    /** Takes `count` suffix headers (newest first, op down) as the log to repair toward. */
    private repair_install(bytes: Uint8Array, offset: number, op: number, count: number): void {
        assert(count >= 1 && op >= count - 1);
        assert(count <= view_change_headers_max);
        for (let index = 0; index < count; index++) {
            const at = ((op - index) % this.journal.slot_count) * header_size;
            // suffix_valid (or suffix_count for our own) checked each header's op.
            assert.equal(this.other_view.attach(bytes, offset + index * header_size)
                .u64(prepare_at.op), op - index);
            this.repair_headers.set(bytes.subarray(offset + index * header_size,
                offset + (index + 1) * header_size), at);
        }
        this.repair_op_max = op;
    }

    /**
     * Known headers of adjacent ops chain: all are of the one log the view took (a start_view's
     * or the chosen do_view_change's suffix, each validated as a chain, and what the view's
     * primary prepared or sent down the chain from them since). Checked over the window that
     * repair asks prepares for next (bounded: repair_continue runs on every append).
     */
    private repair_chain_check(): void {
        const slot_count = this.journal.slot_count;
        const highest = Math.min(this.repair_op_max, this.op + repair_window);
        for (let op = this.op + 1; op < highest; op++) {
            if (!this.repair_known(op) || !this.repair_known(op + 1)) continue;
            const above = this.check_view.attach(this.repair_headers,
                ((op + 1) % slot_count) * header_size);
            assert(above.equal16(prepare_at.parent, this.repair_headers,
                (op % slot_count) * header_size + frame.checksum), 'repair: known headers chain');
        }
    }

    /** Whether the canonical header of `op` is known (in repair_headers). */
    private repair_known(op: number): boolean {
        if (op > this.repair_op_max || op <= this.op_committed_known) return false;
        const header = this.other_view.attach(this.repair_headers,
            (op % this.journal.slot_count) * header_size);
        return header.u8(frame.command) === Command.prepare && header.u64(prepare_at.op) === op;
    }

    /**
     * Cuts our log back to the highest op it shares with the log being installed: an op whose
     * header equals the canonical one (the hash chain makes everything below equal too), or
     * an op known committed. What is cut was never committed (a committed op is in every later
     * log at its place), so giving it up loses nothing acknowledged to a client.
     */
    private log_anchor_truncate(): void {
        assert(this.journal_quiet);
        const committed = this.op_committed_known;
        assert(committed >= this.commit_min && committed <= this.op);
        let anchor = committed;
        const top = Math.min(this.op, this.repair_op_max);
        for (let op = top; op > committed && top - op < this.journal.slot_count; op--) {
            if (!this.repair_known(op)) continue;
            const at = (op % this.journal.slot_count) * header_size;
            if (this.other_view.attach(this.journal.headers, at).equal16(frame.checksum,
                this.repair_headers, at)) {
                anchor = op;
                break;
            }
        }
        if (anchor === committed) anchor = Math.max(anchor, this.log_anchor_parent(committed));
        assert(anchor >= this.commit_min && anchor <= this.op);
        if (anchor < this.op) this.log_truncate(anchor);
    }

    /**
     * The op below the lowest known canonical header, when our header there is the one that
     * header names as its parent: the hash chain makes our log equal to the canonical one up to
     * it (a short suffix, cut at a sender's hole, would otherwise cut ours back to `committed`).
     * Else `committed`.
     */
    private log_anchor_parent(committed: number): number {
        let lowest = this.repair_op_max;
        if (!this.repair_known(lowest)) return committed;
        while (lowest - 1 > committed && this.repair_known(lowest - 1)) lowest -= 1;
        const below = lowest - 1;
        if (below <= committed || below > this.op) return committed;
        const slot_count = this.journal.slot_count;
        const ours = this.other_view.attach(this.journal.headers, (below % slot_count) *
            header_size);
        if (ours.u8(frame.command) !== Command.prepare || ours.u64(prepare_at.op) !== below) {
            return committed;
        }
        const known = this.check_view.attach(this.repair_headers, (lowest % slot_count) *
            header_size);
        if (!known.equal16(prepare_at.parent, this.journal.headers,
            (below % slot_count) * header_size + frame.checksum)) return committed;
        assert(below > committed && below <= this.op);
        return below;
    }

    private log_truncate(anchor: number): void {
        assert(anchor >= this.commit_min && anchor < this.op);
        // A commit read in flight is of an op known committed, which no cut reaches.
        assert(this.journal_quiet && (!this.commit_reading || anchor > this.commit_min));
        this.log(`replica ${this.replica}: view ${this.view}: log cut from op ${this.op} back ` +
            `to ${anchor} (ops above were not in the view's log)`);
        this.write_states.fill(write_none);
        this.write_attempts.fill(0);
        this.write_retry = false;
        if (this.hole_op > anchor) this.hole_op = 0;
        this.op = anchor;
        if (this.op_written > anchor) this.op_written = anchor;
        if (this.op_writing > anchor) this.op_writing = anchor;
        this.cache_trim();
        this.head_from_log();
        assert.equal(this.op, anchor);
        assert(this.op_written <= this.op && this.op_writing <= this.op);
        assert(this.commit_min <= this.op && this.checkpoint_op <= this.op);
        assert.equal(this.cache_get(anchor + 1), -1, 'nothing cached above the head');
    }

    /** head_checksum and the timestamp from the header of op (the head). */
    private head_from_log(): void {
        assert(this.op >= this.checkpoint_op);
        const at = (this.op % this.journal.slot_count) * header_size;
        const header = this.other_view.attach(this.journal.headers, at);
        if (header.u64(prepare_at.op) === this.op && header.u8(frame.command) ===
            Command.prepare) {
            this.head_checksum.set(this.journal.headers.subarray(at, at + 16));
            this.timestamp_lo = header.limb(prepare_at.timestamp, 0);
            this.timestamp_hi = header.limb(prepare_at.timestamp, 1);
            return;
        }
        // The WAL slot of the checkpoint's op was reused: its checksum was kept apart.
        assert.equal(this.op, this.checkpoint_op, 'the head is in the journal');
        this.head_checksum.set(this.checkpoint_prepare_checksum);
    }

    /**
     * The next step toward repair_op_max: take ops our WAL already holds with the canonical
     * checksum, else ask repair_source for the next prepare (its header known) or for the
     * headers below the lowest known one. One request at a time, resent on the repair timeout.
     */
    private repair_continue(): void {
        if (this.repair_source === -1 && this.repair_op_max <= this.op) return this.repair_done();
        if (this.op >= this.repair_op_max) return this.repair_done();
        if (this.start_view_pending !== -1) return;
        this.repair_adopt_written();
        // Answers that arrived early may follow the ops just taken (seed 1228265887).
        if (this.backup_normal || this.view_change_adopting) this.repair_unstash();
        if (this.op >= this.repair_op_max) return this.repair_done();
        this.repair_chain_check();
        if (!this.timeout_repair.ticking) this.timeout_repair.start();
        const next = this.op + 1;
        if (this.repair_known(next)) return this.repair_request_prepares(next);
        if (this.repair_source === -1) return;
        const message = this.message_new(Command.request_headers, header_size);
        if (message === -1) return;
        // Headers are verified down the chain from a known one: ask for those just below the
        // lowest known header above `next`.
        let known = next + 1;
        while (known < this.repair_op_max && !this.repair_known(known)) known += 1;
        assert(this.repair_known(known), 'the repair target header is known');
        const op_min = Math.max(next, known - this.headers_per_message);
        assert(op_min < known && known <= this.repair_op_max);
        assert(known - op_min <= this.headers_per_message);
        this.build_view.set_u64(offsets.request_headers.op_min, op_min);
        this.build_view.set_u64(offsets.request_headers.op_max, known - 1);
        this.stats_cluster.repairs_requested += 1;
        this.seal_send(message, this.repair_source);
    }

    /**
     * Asks repair_source for the prepares of the known headers from `next`, a window at once
     * (answers that arrive early wait in the cache); each op once per repair timeout.
     */
    private repair_request_prepares(next: number): void {
        assert(this.repair_known(next));
        if (this.repair_requested_max < next) this.repair_requested_max = next - 1;
        const last = Math.min(this.repair_op_max, next + repair_window - 1);
        for (let op = this.repair_requested_max + 1; op <= last; op++) {
            if (!this.repair_known(op)) break;
            assert(op > this.op && op <= this.repair_op_max);
            if (this.cache_get(op) !== -1) continue;
            const source = this.repair_source_of(op);
            if (source === -1) break; // Nobody to ask: the view change's timeout moves on.
            const message = this.message_new(Command.request_prepare, header_size);
            if (message === -1) return;
            const at = (op % this.journal.slot_count) * header_size;
            this.build_view.copy16_from(offsets.request_prepare.prepare_checksum,
                this.repair_headers, at);
            this.build_view.set_u64(offsets.request_prepare.prepare_op, op);
            this.stats_cluster.repairs_requested += 1;
            this.repair_requested_max = op;
            this.seal_send(message, source);
        }
    }

    /**
     * Whom to ask for op's prepare: in a view change, a voter whose do_view_change holds the
     * canonical prepare (the next such one on each repair timeout, so that one whose copy turns
     * out unreadable is not asked forever); else, or when none says so, repair_source.
     */
    private repair_source_of(op: number): number {
        assert(this.repair_known(op));
        // A backup knows the view's headers: any peer holding the prepare can serve it, and the
        // primary's own copy may be damaged (it serves no damaged slot).
        if (this.backup_normal && this.repair_source === this.primary_of(this.view)) {
            return this.repair_peer(this.repair_source);
        }
        if (this.status !== Status.view_change || !this.view_change_adopting) {
            return this.repair_source;
        }
        const canonical = (op % this.journal.slot_count) * header_size;
        for (let step = 0; step < this.replica_count; step++) {
            const replica = (this.repair_rounds + step) % this.replica_count;
            if (replica === this.replica || (this.dvc_votes & (1 << replica)) === 0) continue;
            const index = this.dvc_op[replica]! - op;
            if (index < 0 || index >= this.dvc_header_count[replica]!) continue;
            if ((this.dvc_present[replica]! & (1 << index)) === 0) continue;
            const at = (replica * view_change_headers_max + index) * header_size;
            if (equal16(this.dvc_headers, at, this.repair_headers, canonical)) return replica;
        }
        // No voter said it holds the op: each peer in turn (one past its head may have it).
        return this.repair_peer(this.repair_source === -1 ? (this.replica + 1) %
            this.replica_count : this.repair_source);
    }

    /** The peer to ask this repair round: `first`, then each other peer in turn, round by round. */
    private repair_peer(first: number): number {
        assert(first >= 0 && first < this.replica_count && first !== this.replica);
        const step = this.repair_rounds % (this.replica_count - 1);
        let peer = first;
        for (let index = 0; index < step; index++) {
            peer = (peer + 1) % this.replica_count;
            if (peer === this.replica) peer = (peer + 1) % this.replica_count;
        }
        assert(peer !== this.replica && peer >= 0 && peer < this.replica_count);
        return peer;
    }

    /** Ops our WAL holds already with the canonical header: taken without a write. */
    private repair_adopt_written(): void {
        assert.equal(this.start_view_pending, -1);
        for (let pass = 0; pass < this.journal.slot_count && this.op < this.repair_op_max;
            pass++) {
            const next = this.op + 1;
            if (this.op_written !== this.op || this.op_writing !== this.op) return;
            if (!this.repair_known(next)) return;
            const at = (next % this.journal.slot_count) * header_size;
            if (!this.other_view.attach(this.journal.headers, at).equal16(frame.checksum,
                this.repair_headers, at)) return;
            if (this.journal.slot_faulty(next % this.journal.slot_count)) return;
            this.op = next;
            this.op_written = next;
            this.op_writing = next;
            this.head_from_log();
            assert(this.op <= this.repair_op_max);
        }
    }

    /** The log is whole up to the target: it becomes our log_view's (durably) and is acked. */
    private repair_done(): void {
        assert(this.op >= this.repair_op_max);
        if (this.hole_op === 0) this.timeout_repair.stop(); // Else it asks for the hole again.
        if (this.status === Status.view_change) return this.adopt_check();
        if (!this.backup_normal || this.op_written < this.op) return;
        assert(this.op_written === this.op && this.op_writing === this.op);
        this.log_clean = true; // The view's log, whole: nothing above it was committed.
        if (this.log_view !== this.view) {
            this.log_view = this.view;
            this.superblock_view_update();
        }
    }

    private on_request_headers(request: HeaderView): void {
        if (request.view !== this.view || !this.log_clean) return;
        const op_min = request.u64(offsets.request_headers.op_min);
        const op_max = Math.min(request.u64(offsets.request_headers.op_max), this.op,
            op_min + this.headers_per_message - 1);
        if (op_max < op_min || this.op - op_min >= this.journal.slot_count) return;
        assert(op_max <= this.op && op_max - op_min < this.headers_per_message);
        assert(request.replica !== this.replica); assert(op_min >= 0 && op_min <= op_max);
        let count = 0;
        for (let op = op_max; op >= op_min; op--) {
            const header = this.other_view.attach(this.journal.headers,
                (op % this.journal.slot_count) * header_size);
            if (header.u64(prepare_at.op) !== op || header.u8(frame.command) !== Command.prepare) {
                break;
            }
            count += 1;
        }
        if (count === 0) return;
        assert(count <= op_max - op_min + 1);
        const message = this.message_new(Command.headers, header_size * (1 + count));
        if (message === -1) return;
        for (let index = 0; index < count; index++) {
            const from = ((op_max - index) % this.journal.slot_count) * header_size;
            this.build_view.bytes.set(this.journal.headers.subarray(from, from + header_size),
                this.build_view.offset + header_size * (1 + index));
        }
        seal(this.build_view);
        this.send_replica(request.replica, message);
        this.pool.unref(message);
    }

    /** Headers from repair_source: kept when intact and chained to the known ones above. */
    private on_headers(headers: HeaderView): void {
        if (headers.view !== this.view || headers.replica !== this.repair_source) return;
        assert(this.repair_source >= 0 && headers.replica !== this.replica);
        const count = (headers.size - header_size) / header_size;
        // Validated on receipt: whole headers, 1 .. headers_count_max.
        assert(Number.isInteger(count) && count >= 1 && count <= headers_count_max);
        const bytes = headers.bytes;
        for (let index = 0; index < count; index++) {
            const at = headers.offset + header_size * (1 + index);
            const header = this.other_view.attach(bytes, at);
            const op = header.u64(prepare_at.op);
            if (!checksum_equal(bytes, at + 16, header_size - 16, bytes, at)) return;
            if (header.u8(frame.command) !== Command.prepare) return;
            if (op <= this.op || op > this.repair_op_max || this.repair_known(op)) continue;
            // The one above (known) must name this one as its parent.
            if (!this.repair_known(op + 1)) continue;
            const above = ((op + 1) % this.journal.slot_count) * header_size;
            if (!this.other_view.attach(this.repair_headers, above).equal16(prepare_at.parent,
                bytes, at)) continue;
            this.repair_headers.set(bytes.subarray(at, at + header_size),
                (op % this.journal.slot_count) * header_size);
            assert(this.repair_known(op), 'a header chained to a known one is known');
        }
        this.repair_continue();
    }

    /** Serves one prepare by (op, checksum): from memory, else read back from our WAL. */
    private on_request_prepare(request: HeaderView): void {
        const op = request.u64(offsets.request_prepare.prepare_op);
        // Above our head, a slot may still hold the prepare asked for by its checksum (a replica
        // that lost its head keeps what lies past it): served when no write is in flight there.
        const past_head = op > this.op && this.op_writing === this.op_written;
        if ((op > this.op_written && !past_head) || op === 0 ||
            this.op - op >= this.journal.slot_count) return;
        const at = (op % this.journal.slot_count) * header_size;
        const header = this.other_view.attach(this.journal.headers, at);
        if (header.u64(prepare_at.op) !== op || !request.equal16(
            offsets.request_prepare.prepare_checksum, this.journal.headers, at)) return;
        assert(request.replica !== this.replica);
        const cached = this.cache_get(op);
        if (cached !== -1) {
            this.send_replica(request.replica, cached); // Checked whole when it came in.
            return;
        }
        const slot = op % this.journal.slot_count;
        if (this.journal.slot_faulty(slot)) return; // Known damaged: others may hold it.
        // Peers are heard only once the replay is done (on_peer_message).
        assert(this.status !== Status.replaying);
        if (this.serve_message !== -1) return; // One at a time.
        const message = this.pool.acquire();
        if (message === -1) return;
        this.serve_message = message;
        this.serve_replica = request.replica;
        this.serve_op = op;
        this.serve_checksum.set(this.journal.headers.subarray(at, at + 16));
        assert(header.size >= header_size && header.size <= this.message_size_max);
        this.storage.read(this.storage_target, this.journal.slot_count + slot, Zone.wal_prepares,
            slot * this.message_size_max, this.pool.offset(message), sector_ceil(header.size));
    }

    private serve_read_done(slot: number, result: number): void {
        const message = this.serve_message;
        assert(message !== -1);
        assert(slot >= 0 && slot < this.journal.slot_count);
        assert(this.serve_replica >= 0 && this.serve_replica !== this.replica);
        this.serve_message = -1;
        if (result >= 0 && this.prepare_read_intact(this.pool.offset(message), slot)) {
            this.send_replica(this.serve_replica, message);
        } else {
            this.serve_damaged(slot);
        }
        this.pool.unref(message);
    }

    /** A prepare read back into the pool at `offset` is whole, and the one its slot names. */
    private prepare_read_intact(offset: number, slot: number): boolean {
        assert(slot >= 0 && slot < this.journal.slot_count);
        const bytes = this.pool.bytes;
        if (!checksum_equal(bytes, offset + 16, header_size - 16, bytes, offset)) return false;
        if (!equal16(bytes, offset, this.journal.headers, slot * header_size)) return false;
        const size = this.prepare_view.attach(bytes, offset).size;
        if (size < header_size || size > this.message_size_max) return false;
        return checksum_equal(bytes, offset + header_size, size - header_size, bytes,
            offset + frame.checksum_body);
    }

    /**
     * A read back of a prepare we hold came back wrong: the slot is marked damaged, unless it
     * no longer holds that prepare (the head wrapped, or a truncation rewrote it meanwhile).
     */
    private serve_damaged(slot: number): void {
        const op = this.serve_op;
        assert(op >= 1 && op % this.journal.slot_count === slot);
        if (op > this.op_written || this.op - op >= this.journal.slot_count) return;
        const at = slot * header_size;
        if (!equal16(this.journal.headers, at, this.serve_checksum, 0)) return;
        this.stats_cluster.prepares_damaged += 1;
        this.log(`replica ${this.replica}: the WAL prepare of op ${op} (slot ${slot}) reads ` +
            'back damaged: not served until rewritten');
        this.journal.slot_damaged(slot, op);
    }

    // ------------------------------------------------------------------ cluster: commits

    /**
     * Commits what is known committed and held in our WAL, in op order, from memory or read
     * back: a backup, or a new primary before it serves. Replies go into the sessions (a client
     * that retries with the next primary gets the same reply), never to a client from here.
     */
    private commit_journal(): void {
        if (this.primary_normal || this.solo) return;
        for (let pass = 0; pass < this.journal.slot_count; pass++) {
            if (this.commit_min >= Math.min(this.commit_max, this.op_written)) break;
            if (this.checkpoint_op_next !== -1 || this.commit_reading) return;
            if (this.writes_refused !== null) return;
            const op = this.commit_min + 1;
            assert(op <= this.commit_max && op <= this.op_written);
            const message = this.cache_get(op);
            if (message === -1) {
                if (this.journal.slot_faulty(op % this.journal.slot_count)) {
                    return this.hole_fetch(op);
                }
                return this.commit_read_start(op);
            }
            if (!this.commit_execute(message)) return;
        }
        assert(this.commit_min <= this.commit_max);
        if (this.status === Status.view_change) this.adopt_check();
    }

    /** Executes committed op commit_min + 1 from `message`; false if no reply message is free. */
    private commit_execute(message: number): boolean {
        assert(!this.primary_normal && !this.solo);
        const op = this.commit_min + 1;
        // Known committed, and in our own WAL: a backup commits only what it holds.
        assert(op <= this.commit_max && op <= this.op_written);
        const reply = this.execute_prepare(message);
        if (reply === reply_unavailable) {
            this.commit_stalled = true;
            this.stats.commit_stalls += 1;
            return false;
        }
        this.commit_reply(message, reply, -1);
        assert.equal(this.commit_min, op);
        this.checkpoint_maybe(op, message);
        this.cache_release(op);
        return true;
    }

    private commit_read_start(op: number): void {
        assert(!this.commit_reading && op === this.commit_min + 1 && op <= this.op_written);
        if (this.replay_message === -1) this.replay_message = this.pool.acquire();
        if (this.replay_message === -1) {
            this.commit_stalled = true;
            return;
        }
        const slot = op % this.journal.slot_count;
        const header = this.other_view.attach(this.journal.headers, slot * header_size);
        assert.equal(header.u64(prepare_at.op), op, 'a durable op is in the journal');
        assert(header.size >= header_size && header.size <= this.message_size_max);
        this.commit_reading = true;
        this.storage.read(this.storage_target, slot, Zone.wal_prepares,
            slot * this.message_size_max, this.pool.offset(this.replay_message),
            sector_ceil(header.size));
    }

    private commit_read_done(slot: number, result: number): void {
        assert(this.commit_reading);
        this.commit_reading = false;
        const op = this.commit_min + 1;
        assert.equal(slot, op % this.journal.slot_count);
        assert(this.replay_message !== -1);
        // log_truncate never cuts below a commit being read.
        assert(op <= this.op_written && op <= this.commit_max);
        const refusal = result < 0 ? new StorageRefusal('wal_prepares', op, slot,
            `read failed with errno ${-result}`) : this.replay_check(slot, op);
        if (refusal !== null) {
            // Our copy of a committed op is damaged: a peer's copy is fetched and executed.
            this.log(`replica ${this.replica}: ${refusal.message}: fetched from a peer`);
            this.stats_cluster.prepares_damaged += 1;
            this.journal.slot_damaged(slot, op);
            return this.hole_fetch(op);
        }
        if (this.commit_execute(this.replay_message)) this.commit_journal();
    }

    /**
     * Asks a peer for committed op `op` (or the lowest op above it whose checksum we know: the
     * parent of the op above each hole pins it). The repair timeout asks again, of the next
     * peer; hole_fill takes the answer.
     */
    private hole_fetch(op: number): void {
        assert(op === this.commit_min + 1 && op <= this.commit_max && op <= this.op);
        // Consecutive holes: the lowest whose checksum is pinned first (a cache's worth at most).
        let target = op;
        while (target < this.op && target - op < cache_size - 1 &&
            !this.hole_checksum_find(target, this.hole_checksum)) target += 1;
        if (!this.hole_checksum_find(target, this.hole_checksum)) {
            this.commit_stalled = true; // Nothing pins it yet: looked at again on a tick.
            return;
        }
        assert(target >= op && target <= this.op);
        if (this.hole_op === target) return; // Asked already: the repair timeout asks again.
        this.hole_op = target;
        this.hole_request();
        if (!this.timeout_repair.ticking) this.timeout_repair.start();
    }

    /** Sets `into` to op's header checksum when our log knows it; false if not. */
    private hole_checksum_find(op: number, into: Uint8Array): boolean {
        assert(op >= 1 && op <= this.op && into.length === 16);
        const slot_count = this.journal.slot_count;
        const own = this.other_view.attach(this.journal.headers, (op % slot_count) * header_size);
        if (own.u8(frame.command) === Command.prepare && own.u64(prepare_at.op) === op) {
            into.set(own.bytes.subarray(own.offset, own.offset + 16));
            return true;
        }
        if (op >= this.op) return false;
        const cached = this.cache_get(op + 1);
        const above = cached !== -1
            ? this.other_view.attach(this.pool.bytes, this.pool.offset(cached))
            : this.other_view.attach(this.journal.headers, ((op + 1) % slot_count) * header_size);
        if (above.u8(frame.command) !== Command.prepare || above.u64(prepare_at.op) !== op + 1) {
            return false;
        }
        into.set(above.bytes.subarray(above.offset + prepare_at.parent,
            above.offset + prepare_at.parent + 16));
        return true;
    }

    /** request_prepare for hole_op: to the primary, else to each peer in turn. */
    private hole_request(): void {
        assert(this.hole_op >= 1 && this.hole_op <= this.op);
        const primary = this.primary_of(this.view);
        const peer = this.backup_normal ? this.repair_peer(primary)
            : (this.replica + 1 + (this.repair_rounds % (this.replica_count - 1))) %
                this.replica_count;
        assert(peer !== this.replica);
        const message = this.message_new(Command.request_prepare, header_size);
        if (message === -1) return;
        this.build_view.copy16_from(offsets.request_prepare.prepare_checksum,
            this.hole_checksum, 0);
        this.build_view.set_u64(offsets.request_prepare.prepare_op, this.hole_op);
        this.stats_cluster.repairs_requested += 1;
        this.seal_send(message, peer);
    }

    /** The prepare of hole_op came: kept in the cache, from which the commit executes it. */
    private hole_fill(message: number, prepare: HeaderView): void {
        const op = this.hole_op;
        assert(op >= 1 && prepare.u64(prepare_at.op) === op);
        assert(prepare.equal16(frame.checksum, this.hole_checksum, 0));
        const held = this.cache_ops[op % cache_size]!;
        // An entry still being written stays; the repair timeout asks again. An answer stashed
        // above our head gives way: it is asked again later, while the hole is needed now (a
        // log at its write limit appends only after the checkpoint this commit leads to; seed
        // 4258405623/3 waited forever on a stash that could not be written).
        if (held !== -1 && held > this.op) this.cache_release(held);
        else if (held !== -1 && held > this.op_written) return;
        assert(this.cache_ops[op % cache_size] === -1 || this.cache_ops[op % cache_size]! <=
            this.op_written);
        this.hole_op = 0;
        this.cache_put(op, message);
        this.stats_cluster.prepares_repaired += 1;
        this.hole_rewrite(message, op);
        if (this.primary_normal) return this.pipeline_fill(); // pipeline_hole's answer.
        this.commit_journal();
    }

    /**
     * Writes the canonical prepare of a hole back into its slot, so that it is durable again
     * (a restart replays it; a peer may fetch it; a backup may acknowledge it once written).
     * One at a time, when the journal has room; else a later copy (retransmission) does it.
     */
    private hole_rewrite(message: number, op: number): void {
        assert(op >= 1 && op <= this.op_written);
        const slot = op % this.journal.slot_count;
        assert(this.journal.slot_faulty(slot));
        if (this.hole_write_message !== -1 || this.journal.writes_available === 0) return;
        if (this.journal.reporting || this.op - op >= this.journal.slot_count) return;
        this.pool.ref(message);
        this.hole_write_message = message;
        this.hole_write_op = op;
        this.journal.write_prepare(this.pool.offset(message));
    }

    /** The rewrite of a hole landed (the journal cleared the slot's fault) or failed. */
    private hole_written(op: number, result: number): void {
        assert(op === this.hole_write_op && this.hole_write_message !== -1);
        this.pool.unref(this.hole_write_message);
        this.hole_write_message = -1;
        this.hole_write_op = 0;
        if (result < 0) {
            this.log(`replica ${this.replica}: rewriting the damaged WAL prepare of op ${op} ` +
                `failed with errno ${-result}: it stays a hole`);
            return;
        }
        assert(!this.journal.slot_faulty(op % this.journal.slot_count), 'a rewritten hole');
        this.stats_cluster.holes_rewritten += 1;
        if (this.backup_normal && op > this.commit_min) this.prepare_ok_send(op);
        if (this.primary_normal && op > this.commit_min && op <= this.pipeline_op_loaded) {
            this.on_prepare_ok(op, this.replica); // pipeline_hole's copy is durable again.
        }
    }

    // ------------------------------------------------------------------ cluster: pipeline

    /** The old primary's pipeline goes (its clients retry); the ops stay in the WAL. */
    private pipeline_clear(): void {
        assert(this.primary_normal && !this.solo);
        const pipeline = this.pipeline;
        while (pipeline.prepare_count > 0) {
            const reply = pipeline.reply_take(0);
            if (reply >= 0) this.pool.unref(reply);
            this.pool.unref(pipeline.prepare_pop());
        }
        while (pipeline.request_count > 0) this.pool.unref(pipeline.request_pop());
        this.pending_accounts = 0;
        this.pending_transfers = 0;
        this.pipeline_op_loaded = this.commit_min;
        this.pipeline_generation += 1;
        this.timeout_prepare.stop();
    }

    /**
     * A new primary's log may hold more uncommitted ops than a pipeline: they enter the pipeline
     * in op order as room frees up (from memory, else read back), each sent to the backups, and
     * new requests wait until the whole log is in it (prepare_possible).
     */
    private pipeline_fill(): void {
        if (!this.primary_normal || this.pipeline_loading || this.pipeline_filling) return;
        assert.equal(this.log_view, this.view);
        assert(this.pipeline_op_loaded >= this.commit_min && this.pipeline_op_loaded <= this.op);
        const pipeline = this.pipeline;
        const loaded_before = this.pipeline_op_loaded;
        this.pipeline_filling = true;
        for (let pass = 0; pass < pipeline.prepare_max && this.pipeline_op_loaded < this.op;
            pass++) {
            if (pipeline.prepare_full) break;
            const op = this.pipeline_op_loaded + 1;
            const message = this.cache_get(op);
            if (message === -1) {
                // A hole waits for a backup's copy (pipeline_hole), not for our WAL again.
                if (this.hole_op !== op) this.pipeline_read_start(op);
                break;
            }
            this.pool.ref(message);
            this.pipeline_load(op, message);
        }
        this.pipeline_filling = false;
        assert.equal(pipeline.prepare_count, this.pipeline_op_loaded - this.commit_min);
        assert(this.pipeline_op_loaded <= this.op);
        // Our own acknowledgements of what was loaded may complete a quorum (two replicas).
        if (this.pipeline_op_loaded > loaded_before) this.commit_quorum_check();
    }

    private pipeline_load(op: number, message: number): void {
        assert(op === this.pipeline_op_loaded + 1 && op <= this.op_written);
        assert(this.primary_normal && !this.pipeline.prepare_full);
        const header = this.prepare_view.attach(this.pool.bytes, this.pool.offset(message));
        assert.equal(header.u64(prepare_at.op), op);
        const operation = header.u8(prepare_at.operation);
        if (this.state_machine.operation_is_create(operation)) {
            const events = this.state_machine.events_count(operation, header.bytes,
                header.offset + header_size, header.size - header_size);
            if (operation === Operation.create_accounts) this.pending_accounts += events;
            else this.pending_transfers += events;
        }
        this.pipeline.prepare_push(op, message, -1);
        this.pipeline_op_loaded = op;
        assert.equal(this.pipeline.prepare_count, op - this.commit_min);
        // Durable in our WAL, unless it is a hole being rewritten (hole_written acks it then).
        if (!this.journal.slot_faulty(op % this.journal.slot_count)) {
            this.pipeline.prepare_ok(op, this.replica);
        }
        this.cache_put(op, message);
        this.broadcast(message);
        this.stats_cluster.prepares_sent += this.replica_count - 1;
        if (!this.timeout_prepare.ticking) this.timeout_prepare.start();
    }

    private pipeline_read_start(op: number): void {
        assert(this.primary_normal && !this.pipeline_loading);
        assert(op === this.pipeline_op_loaded + 1 && op <= this.op_written);
        assert.equal(this.pipeline_load_message, -1);
        const message = this.pool.acquire();
        if (message === -1) return; // Retried on a tick.
        const slot = op % this.journal.slot_count;
        const header = this.other_view.attach(this.journal.headers, slot * header_size);
        assert.equal(header.u64(prepare_at.op), op);
        this.pipeline_loading = true;
        this.pipeline_load_message = message;
        this.pipeline_load_generation = this.pipeline_generation;
        this.storage.read(this.storage_target, 2 * this.journal.slot_count + slot,
            Zone.wal_prepares, slot * this.message_size_max, this.pool.offset(message),
            sector_ceil(header.size));
    }

    private pipeline_read_done(slot: number, result: number): void {
        assert(this.pipeline_loading);
        this.pipeline_loading = false;
        const message = this.pipeline_load_message;
        this.pipeline_load_message = -1;
        assert(message !== -1 && slot >= 0 && slot < this.journal.slot_count);
        const op = this.pipeline_op_loaded + 1;
        // A read from before the pipeline was last dropped (a view change) is stale.
        const current = this.pipeline_load_generation === this.pipeline_generation;
        // The body too: a prepare sent on must be whole (seed 1172917496/6 sent a bad body).
        const intact = current && result >= 0 && slot === op % this.journal.slot_count &&
            this.prepare_read_intact(this.pool.offset(message), slot);
        if (!this.primary_normal || !intact) {
            this.pool.unref(message);
            if (this.primary_normal && current) this.pipeline_hole(op, slot);
            return;
        }
        assert(op <= this.op); assert.equal(op, this.pipeline_op_loaded + 1);
        this.pipeline_load(op, message);
        this.on_prepare_ok(op, this.replica);
        this.pipeline_fill();
    }

    /**
     * An op of our log whose WAL prepare reads back damaged while it enters the pipeline: a hole,
     * fetched from a backup by (op, checksum) like a backup's (a peer may hold it past its own
     * head). Giving up our log instead lost every copy of committed ops when the backup's log had
     * been cut (seed 3360365673/2). Our acknowledgement waits for the rewrite (hole_written).
     */
    private pipeline_hole(op: number, slot: number): void {
        assert(this.primary_normal && !this.solo && op === this.pipeline_op_loaded + 1);
        assert(op <= this.op);
        assert.equal(slot, op % this.journal.slot_count);
        if (!this.journal.slot_faulty(slot)) {
            this.log(`replica ${this.replica}: op ${op} unreadable in our WAL while refilling ` +
                'the pipeline: fetching it from a backup');
            this.stats_cluster.prepares_damaged += 1;
            this.journal.slot_damaged(slot, op);
        }
        const found = this.hole_checksum_find(op, this.hole_checksum);
        assert(found, 'a primary knows the header of every op in its log');
        if (this.hole_op === op) return; // Asked already: the repair timeout asks again.
        this.hole_op = op;
        this.pipeline_hole_asks = 0;
        this.hole_request();
        if (!this.timeout_repair.ticking) this.timeout_repair.start();
        assert(this.hole_op === op && this.timeout_repair.ticking);
    }

    /**
     * The repair timeout of a primary's hole: no backup answered. After every peer was asked
     * twice, the view is left: the do_view_change votes then say that our copy is gone, and the
     * view change finds a copy or a nack quorum (the op was then never committed).
     */
    private pipeline_hole_retry(): void {
        assert(this.primary_normal && this.hole_op !== 0);
        this.pipeline_hole_asks += 1;
        if (this.pipeline_hole_asks < 2 * (this.replica_count - 1)) return this.hole_request();
        this.log(`replica ${this.replica}: no backup holds op ${this.hole_op}, which our WAL ` +
            'lost: leaving the view');
        this.svc_vote(this.view_next);
    }

    /** A primary whose hole rewrite could not start (journal full) tries again on a tick. */
    private pipeline_hole_rewrite(): void {
        if (!this.primary_normal || this.hole_write_message !== -1) return;
        const pipeline = this.pipeline;
        for (let i = 0; i < pipeline.prepare_count; i++) {
            const op = pipeline.prepare_op(i);
            assert.equal(op, this.commit_min + 1 + i, 'the pipeline holds ops in order');
            if (op > this.op_written) return; // A new prepare, its own write still to land.
            if (!this.journal.slot_faulty(op % this.journal.slot_count)) continue;
            if (pipeline.prepare_ok_has(i, this.replica)) continue;
            assert(this.pool.references_of(pipeline.prepare_message(i)) >= 1);
            return this.hole_rewrite(pipeline.prepare_message(i), op);
        }
    }

    // ------------------------------------------------------------------ cluster: cache

    private cache_put(op: number, message: number): void {
        assert(op >= 1 && this.pool.references_of(message) >= 1);
        const entry = op % cache_size;
        this.cache_entry_check(entry);
        const held = this.cache_messages[entry]!;
        if (held === message && this.cache_ops[entry] === op) return;
        if (held !== -1) {
            assert(this.cache_ops[entry]! <= this.op_written, 'cache: an unwritten op evicted');
            this.pool.unref(held);
        }
        this.pool.ref(message);
        this.cache_messages[entry] = message;
        this.cache_ops[entry] = op;
        this.cache_entry_check(entry);
        assert.equal(this.cache_get(op), message);
    }

    /**
     * A cache entry is free (op and message both -1) or holds one reference to the prepare of
     * an op that maps to it. check_view: callers may hold any other view attached.
     */
    private cache_entry_check(entry: number): void {
        assert(entry >= 0 && entry < cache_size);
        const op = this.cache_ops[entry]!;
        const message = this.cache_messages[entry]!;
        assert.equal(op === -1, message === -1, 'cache: an op without its message');
        if (op === -1) return;
        assert.equal(op % cache_size, entry);
        assert(this.pool.references_of(message) >= 1, 'cache: the entry holds a reference');
        const prepare = this.check_view.attach(this.pool.bytes, this.pool.offset(message));
        assert.equal(prepare.command, Command.prepare);
        assert.equal(prepare.u64(prepare_at.op), op, 'cache: the prepare of its op');
    }

    /**
     * Drops cached prepares above our head (a repair's early answers): after a view change or a
     * truncation they may belong to a log that is no longer ours. Writes in flight are at or
     * below the head, so none of these is being written.
     */
    private cache_trim(): void {
        assert(this.op_writing <= this.op);
        for (let entry = 0; entry < cache_size; entry++) {
            const op = this.cache_ops[entry]!;
            if (op > this.op) this.cache_release(op);
            assert(this.cache_ops[entry]! <= this.op);
            this.cache_entry_check(entry);
        }
    }

    private cache_get(op: number): number {
        assert(op >= 1);
        const entry = op % cache_size;
        if (this.cache_ops[entry] !== op) return -1;
        const message = this.cache_messages[entry]!;
        assert(message !== -1, 'cache: an op without its message');
        return message;
    }

    private cache_release(op: number): void {
        assert(op >= 1);
        const entry = op % cache_size;
        if (this.cache_ops[entry] !== op) return;
        this.cache_entry_check(entry);
        this.pool.unref(this.cache_messages[entry]!);
        this.cache_messages[entry] = -1;
        this.cache_ops[entry] = -1;
    }

    // ------------------------------------------------------------------ cluster: superblock

    /**
     * Makes view, log_view and the commit number durable (docs/vsr.md §11): a replica acts on a
     * view (a do_view_change, acknowledgements in it) only once the superblock holds it. One
     * update at a time; a later change waits and is written after. The commit number recorded
     * is one our own log holds, so that a restart never replays an op it only heard of.
     */
    private superblock_view_update(): void {
        if (this.superblock_updating || this.superblock.busy) {
            this.superblock_again = true;
            return;
        }
        this.superblock_again = false;
        this.superblock.vsr_state_read(this.vsr_state);
        // The superblock holds what we made durable: behind the state in memory, never ahead.
        assert(this.vsr_state.view <= this.view && this.vsr_state.log_view <= this.log_view);
        assert(this.log_view <= this.view);
        if (this.vsr_state.view === this.view && this.vsr_state.log_view === this.log_view) {
            this.view_durable = this.view;
            this.log_view_durable = this.log_view;
            return this.view_durable_act();
        }
        if (this.vsr_state.log_view !== this.log_view) this.vsr_state.log_view_op = this.op;
        this.vsr_state.view = this.view;
        this.vsr_state.log_view = this.log_view;
        this.vsr_state.commit_max = Math.max(this.vsr_state.commit_max, this.op_committed_known);
        assert(this.vsr_state.log_view <= this.vsr_state.view);
        this.superblock_updating = true;
        this.superblock_view_writing = this.view;
        this.superblock_log_view_writing = this.log_view;
        this.superblock.update(this.vsr_state, false);
    }

    superblock_done(error: StorageRefusal | null): void {
        if (this.sync_writing) return this.sync_written(error);
        assert(this.superblock_updating, 'superblock: an update we did not start');
        this.superblock_updating = false;
        this.checkpointer.superblock_resume();
        if (error !== null) {
            return this.writes_refuse(error, errno_io);
        }
        this.view_durable = this.superblock_view_writing;
        this.log_view_durable = this.superblock_log_view_writing;
        // What was written was the state in memory then: views only grow.
        assert(this.view_durable <= this.view && this.log_view_durable <= this.log_view);
        assert(this.log_view_durable <= this.view_durable);
        if (this.superblock_again) this.superblock_view_update();
        this.view_durable_act();
    }

    /** What waited for the view to be durable. */
    private view_durable_act(): void {
        if (this.status === Status.view_change) {
            this.dvc_send();
            return this.adopt_check();
        }
        if (!this.backup_normal || this.log_view_durable !== this.view) return;
        assert.equal(this.log_view, this.view);
        // Our log is the view's now: acknowledge what the primary may still wait for (its
        // pipeline holds at most a pipeline of ops above the commit; retransmissions of later
        // ones are acknowledged as they come).
        const op_last = Math.min(this.op_written, this.commit_max + this.pipeline.prepare_max);
        for (let op = this.commit_max + 1; op <= op_last; op++) this.prepare_ok_send(op);
    }

    // ------------------------------------------------------------------ cluster: startup, time

    /**
     * After the replay, a cluster replica takes up its durable view: a backup whose log is the
     * view's resumes as a backup and asks the primary for the view (commit number, log); one
     * that crashed during a view change goes on with it; a restarted primary, whose pipeline is
     * gone, starts a view change; a log that cannot prove its head waits (recovering_head).
     */
    private open_cluster(): void {
        assert(!this.solo && this.status === Status.normal);
        for (let word = 0; word < 4; word++) {
            const value = this.random.u32();
            for (let byte = 0; byte < 4; byte++) this.nonce[word * 4 + byte] =
                (value >>> (byte * 8)) & 0xff;
        }
        this.pipeline_op_loaded = this.commit_min;
        if (this.view < this.vsr_state.view_vote_min) return this.open_recovered();
        if (!this.log_clean && (this.view === this.log_view || !this.head_in_journal)) {
            this.status = Status.recovering_head;
            // Named by zone and slot: if every replica is left here, no view can form (each
            // denies nothing up to op_prepare_max) and the cluster halts; this line says why.
            this.log(`replica ${this.replica}: zone wal slot ${this.faulty_slot_above_head()} ` +
                `above op ${this.op} is faulty: waiting for the primary's view, voting with an ` +
                'uncertain head if a view change needs it');
        } else if (this.view > this.log_view) {
            // In a view change at the crash: it goes on (with an uncertain head if not clean:
            // waiting in recovering_head, no vote for a view it is already in would ever count).
            if (!this.log_clean) {
                this.log(`replica ${this.replica}: zone wal slot ` +
                    `${this.faulty_slot_above_head()} above op ${this.op} is faulty: the view ` +
                    `change to view ${this.view} goes on with an uncertain head`);
            }
            this.status = Status.view_change;
            this.svc_view = this.view;
            this.svc_votes = 1 << this.replica;
        } else if (this.is_primary) {
            // Never resume as the view's primary: a prepare we made before the crash may have
            // reached a backup and not our own disk, and preparing that op again in the same
            // view would give one (view, op) two prepares. The next view decides our log.
            this.timeouts_for_status();
            return this.view_change_start(this.view + 1);
        }
        this.timeouts_for_status();
        assert(this.log_view <= this.view);
        if (this.status === Status.view_change) {
            assert(this.svc_view === this.view && this.log_view < this.view);
            return this.dvc_send();
        }
        // A restarted primary started a view change above; one that cannot prove its head waits.
        assert(this.status === Status.normal || this.status === Status.recovering_head);
        if (this.status === Status.normal) assert(!this.is_primary);
        this.request_start_view_send(this.primary_of(this.view));
    }

    /**
     * A data file rebuilt by `ringledger recover`: whatever the lost file acknowledged was
     * committed before the rebuild (the recovery's requests came after it), but the views up to
     * the recorded one + 1 may hold votes it cannot recall. So it waits for a start_view like a
     * replica that cannot prove its head (it may deny nothing it never held: its head is op 0,
     * acknowledged up to op 0), and votes only from view_vote_min on (svc_vote, vote_allowed).
     */
    private open_recovered(): void {
        assert(this.view < this.vsr_state.view_vote_min && this.log_view <= this.view);
        assert(this.status === Status.normal);
        // Fresh from recover (op 0), or restarted before reaching view_vote_min: either way it
        // waits for a start_view (a do_view_change for a view below the minimum must not go).
        this.log_uncertain(0);
        // A state sync may have left it uncertain up to the adopted checkpoint's prepare_max.
        assert(!this.log_clean && this.op_acknowledged_max >= this.op);
        this.status = Status.recovering_head;
        this.timeouts_for_status();
        const vote_min = this.vsr_state.view_vote_min;
        this.log(`replica ${this.replica}: rebuilt by recover: following view ${this.view} once ` +
            `its primary answers, voting in view changes from view ${vote_min}`);
        this.request_start_view_send(this.primary_of(this.view));
    }

    /** Starts the timeouts the status runs and stops the others. */
    private timeouts_for_status(): void {
        assert(!this.solo);
        const primary = this.primary_normal;
        const backup = this.backup_normal;
        const changing = this.status === Status.view_change;
        const waiting = this.status === Status.recovering_head || changing;
        timeout_set(this.timeout_ping, !this.solo);
        timeout_set(this.timeout_commit_heartbeat, primary);
        timeout_set(this.timeout_prepare, primary && this.pipeline.prepare_count > 0);
        timeout_set(this.timeout_normal_heartbeat, backup || primary);
        timeout_set(this.timeout_view_change_status, changing);
        timeout_set(this.timeout_view_change_message, changing);
        timeout_set(this.timeout_request_start_view, waiting);
        if (!backup && !changing) this.timeout_repair.stop();
    }

    /** The cluster's share of a tick: each timeout that fired does its one thing. */
    private cluster_tick(): void {
        assert(!this.solo);
        this.cluster_invariants();
        this.clock.tick();
        for (const timeout of this.timeouts) timeout.tick();
        if (this.timeout_ping.fired) {
            this.timeout_ping.reset();
            this.ping_send();
        }
        if (this.timeout_commit_heartbeat.fired) {
            this.timeout_commit_heartbeat.reset();
            this.commit_heartbeat_send();
        }
        if (this.timeout_prepare.fired) this.prepare_retransmit();
        if (this.timeout_normal_heartbeat.fired) {
            this.timeout_normal_heartbeat.reset();
            // A backup that hears no primary, or a primary that hears no quorum, votes to
            // leave; for the highest view proposed, so that votes meet.
            if (!this.primary_normal || !this.quorum_heard()) this.svc_vote(this.view_next);
        }
        if (this.timeout_view_change_status.fired) {
            this.timeout_view_change_status.backoff();
            this.svc_vote(this.view_next);
        }
        if (this.timeout_view_change_message.fired) {
            this.timeout_view_change_message.reset();
            this.view_change_resend();
        }
        if (this.timeout_request_start_view.fired) {
            this.timeout_request_start_view.reset();
            this.request_start_view_send(this.primary_of(this.view));
            // No start_view came and a peer proposed leaving the view: our vote (with an
            // uncertain head) may be the one the view change lacks (2 replicas: always). A
            // recovered replica votes for the first view it may vote in (svc_vote).
            if (this.status === Status.recovering_head && this.svc_view > this.view &&
                this.vote_allowed(Math.max(this.svc_view, this.vsr_state.view_vote_min))) {
                this.svc_vote(this.svc_view);
            }
        }
        if (this.timeout_repair.fired) {
            this.timeout_repair.reset();
            this.repair_rounds += 1;
            this.repair_requested_max = 0; // Lost requests or answers: ask again.
            if (this.hole_op !== 0 && this.primary_normal) this.pipeline_hole_retry();
            else if (this.hole_op !== 0) this.hole_request();
            this.repair_request_parent();
            this.repair_continue();
        }
        if (this.commit_stalled && !this.primary_normal) {
            this.commit_stalled = false;
            if (this.status === Status.recovering_head) return;
            if (this.commit_min < this.commit_max && this.op > this.commit_min) {
                this.commit_journal();
            }
        }
        this.pipeline_fill();
        this.pipeline_hole_rewrite();
        this.start_view_pending_resume();
        if (this.status === Status.view_change && this.is_primary && !this.view_change_adopting) {
            this.view_change_quorum_check();
        }
    }

    /**
     * No journal write in flight or being reported: the log may be cut (a write of a slot we
     * give up must not land after the cut, nor be reported for an op we no longer hold).
     */
    private get journal_quiet(): boolean {
        return this.journal.writes_in_flight === 0 && !this.journal.reporting;
    }

    /** In view_change: our vote and our do_view_change again (either may have been lost). */
    private view_change_resend(): void {
        assert.equal(this.status, Status.view_change);
        assert(this.svc_view >= this.view);
        // The do_view_change first: on a path that holds two packets, the votes behind it must
        // not crowd it out every time (seed 1129827370).
        if (this.primary_of(this.view) !== this.replica) this.dvc_send();
        // That we are in this view (so replicas still in an older one follow), and our vote for
        // a later one if we cast it.
        if (this.svc_view === this.view) {
            this.svc_broadcast(this.view);
        } else {
            this.svc_send(this.view, 1 << this.replica, true);
            if ((this.svc_votes & (1 << this.replica)) !== 0) this.svc_broadcast(this.svc_view);
        }
    }

    private ping_send(): void {
        assert(!this.solo);
        const message = this.message_new(Command.ping, header_size);
        if (message === -1) return;
        const ping = this.build_view;
        const at = offsets.ping;
        ping.copy16_from(at.checkpoint_id, this.checkpoint_id, 0);
        ping.set_u64(at.checkpoint_op, this.checkpoint_op);
        ping.set_u64(at.ping_timestamp_monotonic, this.clock.ping_timestamp());
        this.seal_broadcast(message);
    }

    /** The primary's heartbeat: its commit number, so backups commit and keep the view. */
    private commit_heartbeat_send(): void {
        assert(this.primary_normal);
        assert(this.commit_max <= this.op && this.log_view === this.view);
        const message = this.message_new(Command.commit, header_size);
        if (message === -1) return;
        const commit = this.build_view;
        const at = offsets.commit;
        const slot = (this.commit_max % this.journal.slot_count) * header_size;
        if (this.other_view.attach(this.journal.headers, slot).u64(prepare_at.op) ===
            this.commit_max) {
            commit.copy16_from(at.commit_checksum, this.journal.headers, slot);
        }
        commit.copy16_from(at.checkpoint_id, this.checkpoint_id, 0);
        commit.set_u64(at.checkpoint_op, this.checkpoint_op);
        commit.set_u64(at.commit, this.commit_max);
        commit.set_u64(at.timestamp_monotonic, this.ticks + 1);
        commit.set_u64(at.checkpoint_root_address, this.checkpoint_root_address);
        this.stats_cluster.commits_sent += 1;
        this.seal_broadcast(message);
    }

    /** Resends each uncommitted prepare to the backups that have not acknowledged it. */
    private prepare_retransmit(): void {
        assert(this.primary_normal);
        const pipeline = this.pipeline;
        if (pipeline.prepare_count === 0) return this.timeout_prepare.stop();
        this.timeout_prepare.backoff();
        for (let i = 0; i < pipeline.prepare_count; i++) {
            const message = pipeline.prepare_message(i);
            assert.equal(pipeline.prepare_op(i), this.commit_min + 1 + i);
            for (let replica = 0; replica < this.replica_count; replica++) {
                if (replica === this.replica || pipeline.prepare_ok_has(i, replica)) continue;
                this.send_replica(replica, message);
                this.stats_cluster.prepares_retransmitted += 1;
            }
        }
    }

    // ------------------------------------------------------------------ cluster: sending

    /** A new message of `command` from us (frame set), built in build_view; -1 if none free. */
    private message_new(command: number, size: number): number {
        assert(size >= header_size && size <= this.message_size_max);
        const message = this.pool.acquire();
        if (message === -1) return -1;
        header_init(this.build_view, this.pool.bytes, this.pool.offset(message), command, size,
            this.release);
        this.frame_set(this.build_view);
        return message;
    }

    /** Seals build_view's message (empty body) and sends it to one replica. */
    private seal_send(message: number, replica: number): void {
        seal_empty_body(this.build_view);
        this.send_replica(replica, message);
        this.pool.unref(message);
    }

    private seal_broadcast(message: number): void {
        seal_empty_body(this.build_view);
        this.broadcast(message);
        this.pool.unref(message);
    }

    private send_replica(replica: number, message: number): void {
        assert(replica >= 0 && replica < this.replica_count && replica !== this.replica);
        if (this.network === null) return;
        this.network.send_to_replica(replica, message);
    }

    /** To every other replica (star replication: the primary sends each prepare to all). */
    private broadcast(message: number): void {
        assert(!this.solo && this.pool.references_of(message) >= 1);
        for (let replica = 0; replica < this.replica_count; replica++) {
            if (replica !== this.replica) this.send_replica(replica, message);
        }
    }

    // ------------------------------------------------------------------ cluster: reply repair

    /** A peer fetches a session reply it lost (reply_repair.ts answers, or stays silent). */
    private on_request_reply(header: HeaderView): void {
        assert.equal(header.command, Command.request_reply);
        this.reply_repair.on_request_reply(header, this.stats_cluster);
    }

    /** A peer's answer to our request_reply: taken into the session if it is the one we want. */
    private on_reply_repaired(message: number): void {
        if (!this.reply_repair.on_reply(message, this.stats_cluster)) return;
        this.stats.replies_repaired += 1;
        const reply = this.other_view.attach(this.pool.bytes, this.pool.offset(message));
        this.log(`replica ${this.replica}: reply of client 0x` +
            `${reply.u128_bigint(reply_at.client).toString(16).padStart(32, '0')} request ` +
            `${reply.u32(reply_at.request)} (op ${reply.u64(reply_at.op)}) repaired from a peer`);
    }

    reply_repair_frame(header: HeaderView): void {
        this.frame_set(header);
    }

    reply_repair_send(replica: number, message: number): void {
        this.send_replica(replica, message);
    }

    reply_repair_log(line: string): void {
        this.log(line);
    }

    // ------------------------------------------------------------------ messages out

    private send(connection: number, message: number): void {
        if (connection < 0 || this.network === null || this.status !== Status.normal) return;
        // The caller holds a reference; the network takes its own.
        assert(this.pool.references_of(message) >= 1);
        this.network.send(connection, message);
    }

    /**
     * A reply or eviction goes to the client its header names, on the connection that client
     * last used (a request may have come forwarded by a backup, or on a connection since closed).
     */
    private send_client(message: number): void {
        if (this.network === null || this.status !== Status.normal) return;
        assert(this.pool.references_of(message) >= 1);
        this.network.send_to_client(message);
    }

    private pong(connection: number, ping: HeaderView): void {
        const message = this.pool.acquire();
        if (message === -1) return; // Pongs are optional: the client pings again.
        const pong = header_init(this.other_view, this.pool.bytes, this.pool.offset(message),
            Command.pong_client, header_size, this.release);
        this.frame_set(pong);
        const at = offsets.pong_client.ping_timestamp_monotonic;
        const from = ping.offset + offsets.ping_client.ping_timestamp_monotonic;
        for (let index = 0; index < 8; index++) pong.bytes[pong.offset + at + index] =
            ping.bytes[from + index]!;
        seal_empty_body(pong);
        this.stats.pongs += 1;
        this.send(connection, message);
        this.pool.unref(message);
    }

    /**
     * Sends `eviction` to the client named at `client_at` of `source` (a request or ping, or -1
     * with `source` null to use the session entry's id).
     */
    private evict(source: HeaderView, client_at: number,
        reason: number, limit = 0, limit_value = 0): void {
        assert(reason >= 1 && reason <= eviction_reason_max);
        assert(limit >= 0 && limit < limit_count && limit_value >= 0);
        this.stats.evictions[reason] += 1;
        const message = this.pool.acquire();
        if (message === -1) return this.drop(); // The client retries and is evicted then.
        const eviction = header_init(this.other_view, this.pool.bytes,
            this.pool.offset(message), Command.eviction, header_size, this.release);
        this.frame_set(eviction);
        eviction.copy16_from(offsets.eviction.client, source.bytes, source.offset +
            (client_at === frame_client ? request_at.client : client_at));
        eviction.set_u8(offsets.eviction.reason, reason);
        if (limit !== 0) {
            eviction.set_u8(offsets.eviction.limit, limit);
            eviction.set_u64(offsets.eviction.limit_value, limit_value);
        }
        seal_empty_body(eviction);
        this.send_client(message);
        this.pool.unref(message);
    }

    /** Evicts a session entry to make room (no_session), telling the client if it is here. */
    private evict_entry(entry: number): void {
        assert(this.sessions.session(entry) > 0, 'evict: the entry is free');
        this.stats.evictions[EvictionReason.no_session] += 1;
        const message = this.primary_normal ? this.pool.acquire() : -1;
        if (message !== -1) {
            const eviction = header_init(this.other_view, this.pool.bytes,
                this.pool.offset(message), Command.eviction, header_size, this.release);
            this.frame_set(eviction);
            for (let word = 0; word < 4; word++) {
                eviction.set_limb(offsets.eviction.client, word,
                    this.sessions.client_word(entry, word));
            }
            eviction.set_u8(offsets.eviction.reason, EvictionReason.no_session);
            seal_empty_body(eviction);
            this.send_client(message);
            this.pool.unref(message);
        }
        this.sessions.remove(entry);
    }

    /** Cluster, view and replica index: the frame fields every message from us carries. */
    private frame_set(header: HeaderView): void {
        header.copy16_from(frame.cluster, this.cluster, 0);
        header.view = this.view;
        header.replica = this.replica;
    }

    // ------------------------------------------------------------------ preparing

    private prepare_possible(): boolean {
        assert(this.op <= this.op_prepare_max);
        if (this.pipeline.prepare_full) return false;
        if (!this.clock_ready()) return false;
        // A new view's primary takes requests once its whole log is in the pipeline.
        if (this.pipeline_op_loaded !== this.op || this.pipeline_loading) return false;
        // Backups alone can make a replication quorum (2 of 4) while our own writes lag: the
        // pipeline frees up, but our write slots do not (seed 1218067564). The next tick or
        // write completion prepares it.
        if (this.op + 1 - this.op_written > this.write_states.length) return false;
        if (this.op + 1 > this.op_prepare_max) {
            if (!this.wal_stalled) {
                this.wal_stalled = true;
                this.stats.wal_stalls += 1;
                this.log(`replica: WAL full at op ${this.op}: waiting for a checkpoint`);
            }
            return false;
        }
        this.wal_stalled = false;
        return true;
    }

    /** Moves queued requests into the pipeline while there is room. */
    private prepare_queued(): void {
        const pipeline = this.pipeline;
        for (let pass = 0; pass < pipeline.request_max && pipeline.request_count > 0; pass++) {
            if (!this.prepare_possible()) return;
            const connection = pipeline.request_connection(0);
            this.primary_prepare(pipeline.request_pop(), connection);
        }
        if (pipeline.request_count === 0) this.overloaded = false;
    }

    /**
     * Turns the request in `message` (ours: one reference) into prepare op+1 in place and starts
     * its WAL write. A create batch the ledger has no room for is dropped here, before it is
     * logged, so that a logged prepare always executes.
     */
    private primary_prepare(message: number, connection: number): void {
        assert(this.prepare_possible());
        assert.equal(this.status, Status.normal);
        assert(this.pool.references_of(message) >= 1);
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        const header = this.prepare_view.attach(bytes, offset);
        const operation = header.u8(request_at.operation);
        const events = operation === Operation.register ? 0 : this.state_machine.events_count(
            operation, bytes, offset + header_size, header.size - header_size);
        assert(Number.isInteger(events) && events >= 0);
        const limit = this.capacity_reserve(operation, events);
        if (limit !== 0) {
            this.limit_refuse(connection, header, operation, events, limit);
            this.pool.unref(message);
            return;
        }
        const c0 = header.limb(request_at.client, 0);
        const c1 = header.limb(request_at.client, 1);
        const c2 = header.limb(request_at.client, 2);
        const c3 = header.limb(request_at.client, 3);
        const request = header.u32(request_at.request);
        this.request_checksum.set(bytes.subarray(offset, offset + 16));
        header.fill_zero(offsets.prepare.parent, 128);
        header.copy16_from(prepare_at.request_checksum, this.request_checksum, 0);
        header.set_limb(prepare_at.client, 0, c0);
        header.set_limb(prepare_at.client, 1, c1);
        header.set_limb(prepare_at.client, 2, c2);
        header.set_limb(prepare_at.client, 3, c3);
        header.set_u32(prepare_at.request, request);
        // Release, size, cluster and the body with its checksum stay as the client sent them.
        this.prepare_seal(header, operation, events);
        this.prepare_start(message, connection);
    }

    /** A prepare just sealed as op: to the pipeline and the cache, every backup, the WAL. */
    private prepare_start(message: number, connection: number): void {
        this.pipeline.prepare_push(this.op, message, connection);
        this.pipeline_op_loaded = this.op;
        // The pipeline holds exactly the ops prepared and not yet committed.
        assert.equal(this.pipeline.prepare_count, this.op - this.commit_min);
        this.cache_put(this.op, message);
        this.stats.prepares += 1;
        if (!this.solo) {
            this.broadcast(message);
            this.stats_cluster.prepares_sent += this.replica_count - 1;
            if (!this.timeout_prepare.ticking) this.timeout_prepare.start();
        }
        this.journal_write_next();
        this.execute_ahead();
    }

    /** Fills the VSR fields of a prepare as op+1 and checksums its header (the body is done). */
    private prepare_seal(header: HeaderView, operation: number, events: number): void {
        const op = this.op + 1;
        assert(op <= this.op_prepare_max, 'prepare: the WAL slot is not checkpointed yet');
        // A prepare's commit is below its op (the validator's prepare rule).
        assert(this.commit_max < op);
        header.command = Command.prepare;
        header.view = this.view;
        header.replica = this.replica;
        header.copy16_from(prepare_at.parent, this.head_checksum, 0);
        header.copy16_from(prepare_at.checkpoint_id, this.checkpoint_id, 0);
        header.set_u64(prepare_at.op, op);
        header.set_u64(prepare_at.commit, this.commit_max);
        header.set_u8(prepare_at.operation, operation);
        this.timestamp_advance(events);
        header.set_limb(prepare_at.timestamp, 0, this.timestamp_lo);
        header.set_limb(prepare_at.timestamp, 1, this.timestamp_hi);
        set_checksum(header);
        this.head_checksum.set(header.bytes.subarray(header.offset, header.offset + 16));
        this.op = op;
    }

    /**
     * Capacity accounting over committed state plus uncommitted prepares (docs/vsr.md §6.1):
     * reserves room for the batch and returns 0, or returns the limit it would exceed.
     */
    private capacity_reserve(operation: number, events: number): number {
        if (!this.state_machine.operation_is_create(operation)) return 0;
        const accounts = operation === Operation.create_accounts;
        const pending = accounts ? this.pending_accounts : this.pending_transfers;
        const limit = this.state_machine.capacity_limit(operation, pending + events);
        if (limit !== 0) return limit;
        if (accounts) this.pending_accounts += events;
        else this.pending_transfers += events;
        return 0;
    }

    /**
     * A create batch that does not fit a capacity limit is refused before it is logged, so
     * nothing of it is applied. A dropped request would be retried forever, so the client is
     * evicted instead: TigerBeetle 0.17.9's protocol has no "limit" answer, and eviction is the
     * one message that makes tigerbeetle-node stop waiting. The reason is invalid_request_body:
     * this body cannot be accepted and a retry of it would fail the same way, while the session
     * itself is sound (no_session would send the user looking for a session limit). A client
     * that asked for limit details (ours) gets the limit and its value in the eviction too. The
     * operator hears of each limit once, with the fix.
     */
    private limit_refuse(connection: number, request: HeaderView, operation: number,
        events: number, limit: number): void {
        assert(limit > 0 && limit < limit_count);
        this.stats.limit_refusals[limit] += 1;
        const value = this.state_machine.limit_value(limit);
        if ((this.limits_reported & (1 << limit)) === 0) {
            this.limits_reported |= 1 << limit;
            this.log(`replica: capacity limit reached: ${limit_name(limit)}=${value} (` +
                `${this.state_machine.limit_used(limit)} used, ${events} more asked by ` +
                `${operation === Operation.create_accounts ? 'create_accounts' :
                    'create_transfers'}). Batches that do not fit are refused whole and their ` +
                'clients evicted (invalid_request_body; ringledger clients get ' +
                'ERR_LIMIT_REACHED); lookups and queries go on. Fix: `ringledger format` a data ' +
                `file with a larger --${limit_name(limit).replace('_', '-')} and load the ` +
                'data into it. (Told once per limit; counted in limit_refusals.)');
        }
        const details = (request.u8(request_at.features) & request_feature_limit_details) !== 0;
        this.evict(request, frame_client, EvictionReason.invalid_request_body,
            details ? limit : 0, details ? value : 0);
    }

    private capacity_release(operation: number, events: number): void {
        assert(events >= 0);
        if (operation === Operation.create_accounts) this.pending_accounts -= events;
        if (operation === Operation.create_transfers) this.pending_transfers -= events;
        assert(this.pending_accounts >= 0 && this.pending_transfers >= 0);
    }

    /**
     * Whether we may stamp prepares: solo with our own clock, else only with cluster time, so
     * that one clock running far ahead cannot pin every later timestamp to its future
     * (docs/vsr.md §10). A primary without it says so once per episode, and again on resuming.
     */
    private clock_ready(): boolean {
        assert.equal(this.clock.quorum, this.quorum_replication);
        if (this.solo || this.clock.synchronized) {
            if (this.clock_waiting) {
                this.clock_waiting = false;
                this.log(`replica ${this.replica}: cluster time agreed again: preparing`);
            }
            return true;
        }
        assert(!this.solo && this.status === Status.normal);
        this.stats_cluster.clock_waits += 1;
        if (!this.clock_waiting) {
            this.clock_waiting = true;
            this.log(`replica ${this.replica}: no cluster time (fewer than ` +
                `${this.quorum_replication} clocks, ours included, agree within the tolerance, ` +
                'or too few pongs came back): not preparing, requests are dropped until they ' +
                'do (told once per episode; counted in clock_waits)');
        }
        return false;
    }

    /** What a prepare is stamped from: our wall clock when solo, else cluster time. */
    private prepare_time_read(): void {
        if (this.solo) return this.realtime_read();
        const synchronized = this.clock.realtime_synchronized();
        assert(synchronized, 'a primary prepares only with cluster time');
        assert(this.primary_normal);
        this.now_hi = this.clock.now_hi;
        this.now_lo = this.clock.now_lo;
        assert(this.now_lo >= 0 && this.now_lo < two_32);
    }

    /**
     * The next prepare timestamp (docs/vsr.md §3): max(previous + 1, wall clock), then plus
     * the events of a create batch, which take the nanoseconds just below it
     * (docs/wire-protocol.md §6.6).
     */
    private timestamp_advance(events: number): void {
        this.prepare_time_read();
        let hi = this.timestamp_hi;
        let lo = this.timestamp_lo + 1;
        if (lo === two_32) { lo = 0; hi += 1; }
        if (this.now_hi > hi || (this.now_hi === hi && this.now_lo > lo)) {
            hi = this.now_hi;
            lo = this.now_lo;
        }
        lo += events;
        while (lo >= two_32) { lo -= two_32; hi += 1; }
        assert(hi < 0x8000_0000, 'timestamp beyond 2^63');
        assert(lo >= 0 && lo < two_32);
        // Strictly increasing: every prepare is timestamped after the one before it.
        assert(hi > this.timestamp_hi || (hi === this.timestamp_hi && lo > this.timestamp_lo));
        this.timestamp_hi = hi;
        this.timestamp_lo = lo;
    }

    /** Wall-clock nanoseconds as (hi, lo) limbs, exactly: µs × 1000 without rounding. */
    private realtime_read(): void {
        const us = this.time.realtime_us();
        assert(Number.isSafeInteger(us) && us > 0);
        const us_hi = Math.floor(us / two_32);
        const product = (us - us_hi * two_32) * 1000;
        const carry = Math.floor(product / two_32);
        this.now_lo = product - carry * two_32;
        this.now_hi = us_hi * 1000 + carry;
        assert(this.now_lo >= 0 && this.now_lo < two_32);
    }

    // ------------------------------------------------------------------ journal and commit

    /** Starts the WAL writes of the pipeline's unwritten prepares while the journal has room. */
    private journal_write_next(): void {
        assert(this.journal.writes_max >= this.pipeline.prepare_max);
        for (let pass = 0; pass < this.pipeline.prepare_max && this.op_writing < this.op; pass++) {
            if (this.journal.writes_available === 0) return;
            this.op_writing += 1;
            this.journal_write(this.op_writing);
        }
        assert(this.op_writing <= this.op);
    }

    /**
     * Not durable, so nothing is acknowledged. The write is retried after a delay that doubles
     * (1, 2, 4, ... ticks) and at most wal_write_attempts_max times in all; then the disk is
     * taken to refuse writes and the replica stops accepting requests.
     */
    private journal_write_failed(op: number, state: number, result: number): void {
        assert(result < 0 && state === op % this.write_states.length);
        this.write_states[state] = write_failed;
        this.write_attempts[state] += 1;
        const attempts = this.write_attempts[state]!;
        if (attempts >= wal_write_attempts_max) {
            return this.writes_refuse(new StorageRefusal(this.journal.failed_zone, op,
                op % this.journal.slot_count, `the write of op ${op} at offset ` +
                `${this.journal.failed_offset} failed ${attempts} times with ` +
                `${errno_name(-result)}`), -result);
        }
        this.log(`replica: WAL write of op ${op} failed with ${errno_name(-result)} (attempt ` +
            `${attempts} of ${wal_write_attempts_max}); retrying in ${2 ** (attempts - 1)} ` +
            'tick(s)');
        this.write_retry = true;
        this.write_retry_ticks = Math.max(this.write_retry_ticks, 2 ** (attempts - 1));
    }

    /**
     * The disk refuses writes: tell the operator once, with the zone, offset and errno, and stop
     * accepting requests. The clients of requests not yet replied to are evicted now (their
     * requests may or may not have landed: a later lookup tells), so none waits forever.
     */
    private writes_refuse(refusal: StorageRefusal, errno: number): void {
        assert(errno > 0);
        if (this.writes_refused !== null) return;
        this.writes_refused = refusal;
        this.writes_refused_errno = errno;
        this.log(`replica: the disk refuses writes: ${refusal.message}. This replica accepts no ` +
            'more requests (clients are evicted; ringledger clients get ERR_WRITES_FAILING) and ' +
            'keeps answering pings and retries of requests it replied to. Nothing acknowledged ' +
            'is lost. Fix: check the device (dmesg, SMART) or free space (ENOSPC), then restart.');
        const bytes = this.pool.bytes;
        // Not other_view: evict() builds the eviction in it while reading the client from here.
        const view = this.request_view;
        for (let i = 0; i < this.pipeline.prepare_count; i++) {
            const message = this.pipeline.prepare_message(i);
            const operation = bytes[this.pool.offset(message) + prepare_at.operation];
            if (operation === Operation.pulse) continue;
            view.attach(bytes, this.pool.offset(message));
            this.stats.limit_refusals[Limit.writes_failing] += 1;
            this.evict(view, prepare_at.client,
                EvictionReason.no_session);
        }
        for (let i = 0; i < this.pipeline.request_count; i++) {
            view.attach(bytes, this.pool.offset(this.pipeline.request_message(i)));
            this.writes_refused_evict(this.pipeline.request_connection(i), view);
        }
    }

    /**
     * A request while writes are refused: evicted with no_session (the replica cannot keep the
     * session going), with the errno for clients that ask for details.
     */
    private writes_refused_evict(connection: number, request: HeaderView): void {
        assert(this.writes_refused !== null);
        this.stats.limit_refusals[Limit.writes_failing] += 1;
        const details = (request.u8(request_at.features) & request_feature_limit_details) !== 0;
        this.evict(request, frame_client, EvictionReason.no_session,
            details ? Limit.writes_failing : 0, details ? this.writes_refused_errno : 0);
    }

    /** Retries the failed writes (on a tick, not at once: the disk just refused one). */
    private journal_write_retry(): void {
        assert(this.writes_refused === null);
        for (let op = this.op_written + 1; op <= this.op_writing; op++) {
            if (this.write_states[op % this.write_states.length] !== write_failed) continue;
            if (this.journal.writes_available === 0) {
                this.write_retry = true;
                return;
            }
            this.journal_write(op);
        }
    }

    private journal_write(op: number): void {
        const message = this.cache_get(op);
        assert(message !== -1, 'an op being written is in the cache');
        assert(op > this.op_written && op <= this.op_writing);
        assert(op - this.op_written <= this.write_states.length);
        this.write_states[op % this.write_states.length] = write_writing;
        this.journal.write_prepare(this.pool.offset(message));
    }

    journal_prepare_written(op: number, result: number): void {
        if (this.hole_write_op !== 0 && op === this.hole_write_op && op <= this.op_written) {
            return this.hole_written(op, result);
        }
        assert(op > this.op_written && op <= this.op_writing);
        const state = op % this.write_states.length;
        assert.equal(this.write_states[state], write_writing);
        if (result < 0) return this.journal_write_failed(op, state, result);
        this.write_states[state] = write_durable;
        this.write_attempts[state] = 0;
        // Acknowledged in op order only: op_written stops below any op not yet durable.
        const op_first = this.op_written + 1;
        while (this.op_written < this.op_writing &&
            this.write_states[(this.op_written + 1) % this.write_states.length] === write_durable) {
            this.op_written += 1;
            this.write_states[this.op_written % this.write_states.length] = write_none;
        }
        const op_last = this.op_written;
        assert(op_last >= op_first - 1 && this.op_written <= this.op_writing);
        // The next writes first: the disk works on them while these ops execute.
        this.journal_write_next();
        if (this.primary_normal) {
            for (let ok = op_first; ok <= op_last; ok++) this.on_prepare_ok(ok, this.replica);
        } else if (!this.solo) {
            this.journal_written_cluster(op_first, op_last);
        }
        if (this.status === Status.normal) this.invariants();
    }

    /** A backup acknowledges what is durable; repairs, commits and a waiting view go on. */
    private journal_written_cluster(op_first: number, op_last: number): void {
        assert(!this.solo && !this.primary_normal);
        assert(op_first >= 1 && op_last <= this.op_written);
        if (this.backup_normal) {
            for (let ok = op_first; ok <= op_last; ok++) this.prepare_ok_send(ok);
        }
        this.start_view_pending_resume();
        if (this.backup_normal || this.view_change_adopting) this.repair_unstash();
        this.repair_continue();
        this.commit_journal();
        this.adopt_check();
    }

    journal_done(error: StorageRefusal | null): void {
        assert.fail(`journal: unexpected format/recovery outcome: ${error?.message ?? 'ok'}`);
    }

    /** A replica holds `op` durably; with a replication quorum the pipeline head commits. */
    private on_prepare_ok(op: number, replica: number): void {
        assert(replica >= 0 && replica < this.replica_count);
        assert(this.primary_normal);
        if (!this.pipeline.prepare_ok(op, replica)) return;
        this.commit_quorum_check();
    }

    /** Advances commit_max over the prepares with a replication quorum, and commits them. */
    private commit_quorum_check(): void {
        assert(this.primary_normal);
        const pipeline = this.pipeline;
        if (pipeline.prepare_count === 0) return;
        assert(pipeline.prepare_count <= pipeline.prepare_max);
        // The pipeline holds ops commit_min + 1 .. in order (pipeline_load, prepare_start).
        assert.equal(pipeline.prepare_op(0), this.commit_min + 1);
        for (let i = this.commit_max - pipeline.prepare_op(0) + 1; i < pipeline.prepare_count;
            i++) {
            if (pipeline.prepare_ok_count(i) < this.quorum_replication) break;
            this.commit_max = pipeline.prepare_op(i);
        }
        assert(this.commit_max <= this.op && this.commit_min <= this.commit_max);
        // Ops are acknowledged in op order: a single replica commits only what it wrote.
        assert(this.replica_count > 1 || this.commit_max <= this.op_written);
        this.commit_pipeline();
    }

    /** Commits prepares in op order (executing those not executed ahead), replying to each. */
    private commit_pipeline(): void {
        const pipeline = this.pipeline;
        const committed_before = this.commit_min;
        this.commit_stalled = false;
        if (this.op_executed < this.commit_max && this.io_flush !== null) this.io_flush();
        // Once the disk refuses writes nothing more commits: a checkpoint that failed is not
        // there to execute past, and a reply could not be made durable.
        while (this.commit_min < this.commit_max && this.checkpoint_op_next === -1 &&
            this.writes_refused === null) {
            assert(pipeline.prepare_count > 0);
            assert.equal(pipeline.prepare_op(0), this.commit_min + 1);
            if (this.op_executed === this.commit_min) {
                const reply = this.execute_prepare(pipeline.prepare_message(0));
                if (reply === reply_unavailable) {
                    this.commit_stalled = true;
                    this.stats.commit_stalls += 1;
                    return;
                }
                pipeline.reply_set(0, reply);
            }
            const reply = pipeline.reply_take(0);
            this.commit_reply(pipeline.prepare_message(0), reply, pipeline.prepare_connection(0));
            const message = pipeline.prepare_pop();
            this.checkpoint_maybe(this.commit_min, message);
            this.pool.unref(message);
            // Committed on the backups' word, our own write of it may not have started yet:
            // the cache keeps it until written (a later put evicts it then).
            if (this.commit_min <= this.op_written) this.cache_release(this.commit_min);
        }
        if (!this.solo && committed_before < this.commit_min) {
            // Progress: retransmissions start again from the shortest period.
            timeout_set(this.timeout_prepare, false);
            timeout_set(this.timeout_prepare, pipeline.prepare_count > 0);
        }
        this.pipeline_fill();
        this.prepare_queued();
        this.execute_ahead();
        this.invariants();
    }

    // ------------------------------------------------------------------ checkpoints

    /**
     * After committing `op` (its prepare in `message`): at a trigger op, the replies that changed
     * since the last checkpoint go to the client_replies zone and the checkpoint starts. Commits
     * wait for checkpoint_done: the ledger must not change while it is written.
     */
    private checkpoint_maybe(op: number, message: number): void {
        if (!this.schedule.op_is_trigger(op, this.checkpoint_op)) return;
        assert(this.checkpoint_op_next === -1 && !this.checkpointer.busy);
        // A checkpoint is of the state right after its op: committed, nothing beyond executed.
        assert(op === this.commit_min && op === this.op_executed && op > this.checkpoint_op);
        this.checkpoint_op_next = op;
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        for (let index = 0; index < 16; index++) {
            this.checkpoint_prepare_checksum_next[index] = bytes[offset + index]!;
        }
        this.replies_write();
        const size = this.sessions.encode(this.sessions_blob);
        // A commit number our own log holds (a restart replays up to it: superblock_view_update).
        this.checkpointer.checkpoint_start(op, this.op_committed_known,
            this.checkpoint_prepare_checksum_next, 0, this.sessions_blob, size);
    }

    /** Writes each session's reply committed after the durable checkpoint to its slot. */
    private replies_write(): void {
        assert(this.checkpoint_op_next !== -1);
        for (let entry = 0; entry < this.sessions.capacity; entry++) {
            if (this.sessions.session(entry) === 0) continue;
            if (this.sessions.reply_commit(entry) <= this.checkpoint_op) continue;
            const message = this.sessions.reply_message(entry);
            assert(message !== -1, 'a reply newer than the checkpoint is in memory');
            assert.equal(this.reply_writing[entry], -1);
            this.pool.ref(message);
            this.reply_writing[entry] = message;
            this.client_replies.write(entry, entry, this.pool.offset(message));
        }
    }

    client_reply_written(tag: number, result: number): void {
        if (this.reply_repair.is_write_tag(tag)) return this.reply_repair.written(tag, result);
        const entry = tag;
        assert(entry >= 0 && entry < this.sessions.capacity);
        assert(result <= 0);
        const message = this.reply_writing[entry]!;
        assert(message !== -1);
        this.reply_writing[entry] = -1;
        this.pool.unref(message);
        if (result < 0) {
            // Only a retry of this client's latest request would need the reply after a
            // restart; the client would then be evicted (replies_lost_report), not answered
            // twice. Nothing else is lost.
            this.log(`replica: warning: writing the reply of session slot ${entry} failed ` +
                `(errno ${-result})`);
        }
    }

    checkpoint_done(op: number, error: StorageRefusal | null): void {
        assert.equal(op, this.checkpoint_op_next);
        this.checkpoint_op_next = -1;
        if (error !== null) {
            // At startup a failed checkpoint stops the replica; while serving, the disk refused
            // it past its retries: stop accepting writes and keep answering what we can.
            if (this.status !== Status.normal) return this.fail(error);
            return this.writes_refuse(error, error instanceof GridRefusal && error.errno !== 0 ?
                error.errno : errno_io);
        }
        assert(op > this.checkpoint_op && op <= this.commit_min);
        this.checkpoint_op = op;
        this.checkpoint_prepare_checksum.set(this.checkpoint_prepare_checksum_next);
        this.superblock.vsr_state_read(this.vsr_state);
        assert.equal(this.vsr_state.checkpoint_op, op);
        this.checkpoint_id.set(this.vsr_state.checkpoint_id);
        this.checkpoint_root_address = this.vsr_state.checkpoint_root_address;
        this.stats.checkpoints += 1;
        if (this.status === Status.replaying) return this.replay_next();
        if (this.superblock_again) this.superblock_view_update();
        if (this.primary_normal) return this.commit_pipeline();
        this.commit_journal();
    }

    /**
     * Executes one prepare (from the pipeline, or read back from the WAL on replay) and, unless
     * it is a pulse, builds and seals its reply. Returns the reply message, `reply_none` for a
     * pulse, or `reply_unavailable` when no pool message is free (nothing was executed).
     */
    private execute_prepare(message: number): number {
        const bytes = this.pool.bytes;
        const offset = this.pool.offset(message);
        const prepare = this.prepare_view.attach(bytes, offset);
        const op = prepare.u64(prepare_at.op);
        const operation = prepare.u8(prepare_at.operation);
        assert.equal(prepare.command, Command.prepare);
        assert.equal(op, this.op_executed + 1);
        assert(this.status === Status.replaying || op <= this.op);
        assert(this.execute_allowed(op), 'no execution past a checkpoint not yet written');
        const hi = prepare.limb(prepare_at.timestamp, 1);
        const lo = prepare.limb(prepare_at.timestamp, 0);
        if (operation === Operation.pulse) {
            this.state_machine.pulse(hi, lo, this.pulse_scratch);
            this.stats.pulses += 1;
            this.op_executed = op;
            // Every replica reserves the grid blocks an op sealed at the same op, on every path
            // (commit, execute-ahead, a backup's commit, replay): byte-identical grids.
            this.checkpointer.trickle_op(op);
            return reply_none;
        }
        const reply = this.pool.acquire();
        if (reply === -1) return reply_unavailable;
        const reply_offset = this.pool.offset(reply);
        const body_size = this.execute(prepare, operation, hi, lo, reply_offset + header_size);
        assert(body_size >= 0 && header_size + body_size <= this.message_size_max);
        const header = header_init(this.reply_view, bytes, reply_offset, Command.reply,
            header_size + body_size, prepare.release);
        // Every replica builds the same reply, byte for byte (its context is the next request's
        // parent, whichever primary that request reaches): the prepare's view and primary.
        header.copy16_from(frame.cluster, this.cluster, 0);
        header.view = prepare.view;
        header.replica = prepare.replica;
        header.copy16_from(reply_at.request_checksum, bytes, offset + prepare_at.request_checksum);
        header.copy16_from(reply_at.client, bytes, offset + prepare_at.client);
        header.set_u64(reply_at.op, op);
        header.set_u64(reply_at.commit, op);
        header.set_limb(reply_at.timestamp, 0, lo);
        header.set_limb(reply_at.timestamp, 1, hi);
        header.set_u32(reply_at.request, prepare.u32(prepare_at.request));
        header.set_u8(reply_at.operation, operation);
        seal(header);
        this.op_executed = op;
        this.checkpointer.trickle_op(op);
        return reply;
    }

    /**
     * Commits an executed prepare: the reply (ours: one reference) goes into the client's
     * session and to the client. Only now, with the op durable on a quorum, may anyone see it.
     */
    private commit_reply(message: number, reply: number, connection: number): void {
        const prepare = this.prepare_view.attach(this.pool.bytes, this.pool.offset(message));
        const op = prepare.u64(prepare_at.op);
        assert.equal(op, this.commit_min + 1);
        assert(op <= this.op_executed);
        if (reply !== reply_none) {
            const session = this.session_commit(prepare, prepare.u8(prepare_at.operation), op,
                reply, connection);
            // A client evicted while its request was in the pipeline was told so already. Only
            // the primary answers clients; a backup keeps the reply in the session.
            if (session && this.primary_normal) {
                this.stats.replies_sent += 1;
                this.send_client(reply);
            }
            this.pool.unref(reply);
        }
        this.committed(op);
    }

    /**
     * Whether op may execute: never while a checkpoint is written, nor beyond the next
     * checkpoint's op before that checkpoint exists (its state is the ledger right after it).
     */
    private execute_allowed(op: number): boolean {
        if (this.checkpoint_op_next !== -1) return false;
        return op <= this.schedule.op_checkpoint_next(this.checkpoint_op);
    }

    /**
     * A single replica executes prepares while their WAL writes are in flight, so that the
     * ledger's work overlaps the disk's: nothing is visible until commit (the reply waits in the
     * pipeline), and no other replica can make a durable op disappear, so executing it early
     * cannot be undone. With backups this waits for the commit, as VSR requires: a new view may
     * truncate an op its primary prepared.
     */
    private execute_ahead(): void {
        if (this.replica_count !== 1 || this.status !== Status.normal) return;
        if (this.writes_refused !== null) return;
        const pipeline = this.pipeline;
        let flushed = false;
        for (let pass = 0; pass < pipeline.prepare_max && this.op_executed < this.op; pass++) {
            const op = this.op_executed + 1;
            if (!this.execute_allowed(op)) return;
            if (!flushed && this.io_flush !== null) this.io_flush();
            flushed = true;
            const i = op - pipeline.prepare_op(0);
            const reply = this.execute_prepare(pipeline.prepare_message(i));
            if (reply === reply_unavailable) return;
            pipeline.reply_set(i, reply);
        }
        assert(this.op_executed <= this.op);
    }

    private committed(op: number): void {
        // Only what a replication quorum holds commits.
        assert(op <= this.commit_max);
        this.commit_min = op;
        this.stats.commits += 1;
    }

    /** Runs the state machine (or register) for a prepare; returns the reply body size. */
    private execute(prepare: HeaderView, operation: number, hi: number, lo: number,
        output_offset: number): number {
        assert(operation !== Operation.pulse && prepare.size >= header_size);
        const bytes = this.pool.bytes;
        if (operation === Operation.register) {
            // RegisterResult: batch_size_limit u32, then zeros (docs/wire-protocol.md §5.2).
            bytes.fill(0, output_offset, output_offset + register_result_body_size);
            const limit = this.message_size_max - header_size;
            bytes[output_offset] = limit & 0xff;
            bytes[output_offset + 1] = (limit >>> 8) & 0xff;
            bytes[output_offset + 2] = (limit >>> 16) & 0xff;
            bytes[output_offset + 3] = limit >>> 24;
            return register_result_body_size;
        }
        const body_size = prepare.size - header_size;
        const events = this.state_machine.events_count(operation, bytes,
            prepare.offset + header_size, body_size);
        if (this.primary_normal) this.capacity_release(operation, events);
        return this.state_machine.execute(operation, hi, lo, bytes, prepare.offset + header_size,
            body_size, bytes, output_offset);
    }

    /**
     * The session table after a commit: register creates (maybe evicting), others update.
     * Returns whether the client has a session (false: it was evicted meanwhile).
     */
    private session_commit(prepare: HeaderView, operation: number, op: number,
        reply: number, connection: number): boolean {
        const at = prepare_at.client;
        const c0 = prepare.limb(at, 0);
        const c1 = prepare.limb(at, 1);
        const c2 = prepare.limb(at, 2);
        const c3 = prepare.limb(at, 3);
        let entry = this.sessions.find(c0, c1, c2, c3);
        if (operation === Operation.register && entry === -1) {
            entry = this.sessions.evictee();
            if (this.sessions.session(entry) !== 0) this.evict_entry(entry);
            this.sessions.insert(entry, c0, c1, c2, c3, op);
        }
        // A client evicted while its request was in the pipeline gets no session back.
        if (entry === -1) return false;
        assert(entry < this.sessions.capacity && this.sessions.session(entry) > 0);
        this.sessions.reply_store(entry, reply);
        if (connection >= 0) this.sessions.connection_set(entry, connection);
        return true;
    }

    // ------------------------------------------------------------------ time

    /** Called every tick_ms by the loop (or the simulator). */
    tick(): void {
        this.ticks += 1;
        if (this.status === Status.failed) return;
        if (this.grid_repair !== null) this.grid_repair.tick();
        if (this.status < Status.normal) return;
        if (this.write_retry && this.writes_refused === null) {
            if (this.write_retry_ticks > 0) this.write_retry_ticks -= 1;
            if (this.write_retry_ticks === 0) {
                this.write_retry = false;
                this.journal_write_retry();
            }
        }
        if (!this.solo) this.cluster_tick();
        if (!this.solo) this.reply_repair.tick(this.stats_cluster);
        if (!this.primary_normal) {
            if (this.status === Status.normal) this.invariants();
            return;
        }
        if (this.commit_stalled) this.commit_pipeline();
        if (this.pipeline.request_count > 0) this.prepare_queued();
        this.pulse_tick += 1;
        if (this.pulse_tick >= pulse_ticks) {
            this.pulse_tick = 0;
            this.pulse_maybe();
        }
        this.invariants();
    }

    /**
     * The order of the op numbers (internals.md §7) and the pipeline's match with them, in
     * normal status (during replay `op` is 0 while commit_max is the WAL head already).
     */
    private invariants(): void {
        assert.equal(this.status, Status.normal);
        assert(this.checkpoint_op <= this.commit_min);
        assert(this.commit_min <= this.commit_max);
        assert(this.commit_min <= this.op_executed && this.op_executed <= this.op);
        assert(this.op_written <= this.op_writing && this.op_writing <= this.op);
        assert(this.op <= this.op_prepare_max);
        assert(this.pending_accounts >= 0 && this.pending_transfers >= 0);
        assert(this.view_durable <= this.view && this.log_view_durable <= this.log_view);
        assert(this.log_view <= this.view);
        if (!this.solo) this.cluster_invariants();
        if (!this.is_primary) {
            // A backup commits only what its log holds; it may know of more commits.
            assert(this.pipeline.prepare_count === 0 && this.pipeline.request_count === 0);
            assert.equal(this.op_executed, this.commit_min);
            return;
        }
        assert(this.commit_max <= this.op && this.log_view === this.view);
        assert(this.pipeline_op_loaded >= this.commit_min && this.pipeline_op_loaded <= this.op);
        assert.equal(this.pipeline.prepare_count, this.pipeline_op_loaded - this.commit_min);
        assert(this.pipeline.prepare_count === 0 ||
            this.pipeline.prepare_op(0) === this.commit_min + 1);
    }

    /**
     * The primary injects a pulse prepare when a pending transfer is due, so that expiry happens
     * on time even with no traffic; one pulse in the pipeline at a time.
     */
    private pulse_maybe(): void {
        if (!this.is_primary || this.pipeline.request_count > 0 || !this.prepare_possible()) return;
        const bytes = this.pool.bytes;
        for (let i = 0; i < this.pipeline.prepare_count; i++) {
            const at = this.pool.offset(this.pipeline.prepare_message(i)) + prepare_at.operation;
            if (bytes[at] === Operation.pulse) return;
        }
        this.prepare_time_read();
        let hi = this.timestamp_hi;
        let lo = this.timestamp_lo + 1;
        if (lo === two_32) { lo = 0; hi += 1; }
        if (this.now_hi > hi || (this.now_hi === hi && this.now_lo > lo)) {
            hi = this.now_hi;
            lo = this.now_lo;
        }
        if (!this.state_machine.pulse_needed(hi, lo)) return;
        const message = this.pool.acquire();
        if (message === -1) return;
        const header = header_init(this.prepare_view, bytes, this.pool.offset(message),
            Command.prepare, header_size, this.release);
        header.copy16_from(frame.cluster, this.cluster, 0);
        seal_empty_body(header); // Sets checksum_body; the header checksum is redone below.
        this.prepare_seal(header, Operation.pulse, 0);
        this.prepare_start(message, -1);
    }

    // ------------------------------------------------------------------ shutdown

    /** Whether a WAL write is in flight (shutdown waits for it). */
    get busy(): boolean {
        return this.journal.busy || this.checkpointer.busy ||
            this.checkpoint_op_next !== -1 || this.client_replies.writes_in_flight > 0 ||
            this.commit_reading || this.serve_message !== -1 || this.pipeline_loading ||
            this.superblock_updating;
    }

    /** Releases every pool message the replica holds (after the bus is shut down). */
    release_messages(): void {
        assert(!this.busy);
        while (this.pipeline.prepare_count > 0) {
            const reply = this.pipeline.reply_take(0);
            if (reply >= 0) this.pool.unref(reply);
            this.pool.unref(this.pipeline.prepare_pop());
        }
        while (this.pipeline.request_count > 0) this.pool.unref(this.pipeline.request_pop());
        this.sessions.release_all();
        if (this.replay_message !== -1) this.pool.unref(this.replay_message);
        this.replay_message = -1;
        for (let entry = 0; entry < cache_size; entry++) {
            if (this.cache_messages[entry] !== -1) this.pool.unref(this.cache_messages[entry]!);
            this.cache_messages[entry] = -1;
            this.cache_ops[entry] = -1;
        }
        this.start_view_pending_release();
    }

    // ------------------------------------------------------------------ cluster: state sync

    /**
     * State sync (docs/vsr.md §12.2). A commit heartbeat names its primary's durable checkpoint
     * (op, root checksum, root address). We adopt it when the WAL repair cannot reach us any
     * more: the next op we lack is older than the primary's WAL holds (its head is at least the
     * commit it sends, and a WAL holds one ring of ops below the head), or our restore waits for
     * grid blocks of a checkpoint the cluster moved two checkpoints past (their addresses may
     * be reused). The checkpoint names only committed state, the same on every replica.
     */
    private sync_check(commit: HeaderView): void {
        if (this.sync_writing || this.sync_restart_wanted) return;
        if (commit.replica !== this.primary_of(commit.view) || commit.replica === this.replica) {
            return;
        }
        const at = offsets.commit;
        const target_op = commit.u64(at.checkpoint_op);
        const root = commit.u64(at.checkpoint_root_address);
        if (target_op === 0 || root === 0) return;
        if (root > this.storage.layout.config.grid_block_count) return;
        this.superblock.vsr_state_read(this.vsr_state);
        if (target_op <= this.vsr_state.checkpoint_op) return;
        if (this.status === Status.restoring) {
            // Blocks of our checkpoint that its successor replaced are free on peers that hold
            // the successor durably: peers stop answering for them (stalled), and two
            // checkpoints on, any may have been reused.
            if (this.grid_repair === null || this.grid_repair.wanted_count === 0) return;
            const reach = this.schedule.op_prepare_max(this.vsr_state.checkpoint_op);
            if (target_op <= reach && !this.grid_repair.stalled) return;
        } else {
            if (this.status < Status.normal || this.status === Status.failed) return;
            if (this.primary_normal) return;
            if (commit.u64(at.commit) < this.op + 1 + this.journal.slot_count) return;
            // A checkpoint being written would update the superblock after us.
            if (this.checkpointer.busy || this.checkpoint_op_next !== -1) return;
        }
        if (this.superblock.busy || this.superblock_updating) return;
        this.sync_start(commit, target_op, root);
    }

    /**
     * Makes the target durable before anything else: the superblock names the peer's checkpoint
     * (commit_max no higher than the target, so that no restart replays a stale prepare of our
     * WAL above it) and the range of our own WAL headers that are not the cluster's log. Then
     * this process stops; restarted, it restores the target, fetching every block its grid lacks
     * by (address, checksum) from peers (grid repair), and the WAL above it is repaired.
     */
    private sync_start(commit: HeaderView, target_op: number, root: number): void {
        const state = this.vsr_state;
        assert(target_op > state.checkpoint_op && root > 0);
        const sync_op_min = Math.max(state.checkpoint_op,
            this.status === Status.restoring ? 0 : this.commit_min);
        if (sync_op_min >= target_op || state.commit_max > target_op) return;
        this.log(`replica ${this.replica}: state sync: op ${this.op} commit_min ` +
            `${this.commit_min} is beyond the cluster's WAL; adopting checkpoint ${target_op} ` +
            `of replica ${commit.replica} (root block ${root})`);
        const id_at = commit.offset + offsets.commit.checkpoint_id;
        state.checkpoint_id.set(commit.bytes.subarray(id_at, id_at + 16));
        state.checkpoint_op = target_op;
        state.checkpoint_root_address = root;
        state.commit_max = target_op;
        state.sync_op_min = sync_op_min;
        state.sync_op_max = target_op;
        assert(state.sync_op_min < state.sync_op_max);
        this.stats_cluster.syncs += 1;
        // Nothing more is heard, sent or executed: the grid and WAL are no longer ours.
        this.status = Status.failed;
        this.failure = new StateSyncRestart(target_op);
        this.sync_writing = true;
        this.superblock.update(state, true);
    }

    private sync_written(error: StorageRefusal | null): void {
        assert(this.sync_writing && this.status === Status.failed);
        this.sync_writing = false;
        if (error !== null) {
            this.failure = error;
            this.log(`replica ${this.replica}: state sync: ${error.message}`);
            return;
        }
        this.sync_restart_wanted = true;
        this.log(`replica ${this.replica}: state sync: checkpoint ` +
            `${this.vsr_state.checkpoint_op} is durable in the superblock: restart to restore it`);
    }

    /**
     * After a state sync: our WAL headers of ops (sync_op_min, sync_op_max] predate the
     * checkpoint we adopted and may be of views the cluster cut. They are forgotten, so never
     * served to a peer nor taken as the chain (seed 4274495347/6 broke on them).
     */
    private sync_headers_forget(): void {
        const state = this.vsr_state;
        assert(state.sync_op_max === this.checkpoint_op && state.sync_op_min < state.sync_op_max);
        const headers = this.journal.headers;
        let forgotten = 0;
        for (let slot = 0; slot < this.journal.slot_count; slot++) {
            const header = this.other_view.attach(headers, slot * header_size);
            if (header.u8(frame.command) !== Command.prepare) continue;
            const op = header.u64(prepare_at.op);
            if (op <= state.sync_op_min || op > state.sync_op_max) continue;
            headers.fill(0, slot * header_size, (slot + 1) * header_size);
            forgotten += 1;
        }
        assert(forgotten <= this.journal.slot_count);
    }

}

/** A primary counts a replica as heard within this window (three pings). */
const heard_window_ticks = 3 * timeouts_ticks.ping;

/** Prepares a repair asks for at once (and keeps when they arrive ahead of their turn). */
const repair_window = pipeline_prepare_queue_max;

/** Prepares kept in memory by op: two pipelines (a backup appends up to one ahead of its WAL). */
const cache_size = 2 * pipeline_prepare_queue_max;

// The timeouts' relations: a primary counts a replica heard across more than one ping period,
// and a backup votes to leave only after missing several commit heartbeats.
assert(heard_window_ticks > timeouts_ticks.ping);
assert(timeouts_ticks.normal_heartbeat > 2 * timeouts_ticks.commit_heartbeat);
// A stashed repair answer (up to a window above the head) never shares a cache entry with an op
// whose write is in flight (up to a pipeline at or below the head).
assert(cache_size >= repair_window + pipeline_prepare_queue_max);

/** write_states: an op handed to the journal is being written, durable, or failed (retry). */
const write_none = 0;
const write_writing = 1;
const write_durable = 2;
const write_failed = 3;
const errno_io = 5;
/** A WAL write is tried this many times (with a doubling delay) before the disk is given up on. */
export const wal_write_attempts_max = 6;

/** execute_prepare results besides a reply message: a pulse (no reply), no free message. */
const reply_none = -1;
const reply_unavailable = -2;

/** `evict` marker: the client id is the request's `client` field. */
const frame_client = -1;

/** A u64 field from a client, which may hold anything: values above 2^53 read as 2^53. */
function u64_saturating(header: HeaderView, at: number): number {
    const high = header.limb(at, 1);
    if (high > 0x1FFFFF) return Number.MAX_SAFE_INTEGER;
    return high * two_32 + header.limb(at, 0);
}

function bits_count(bits: number): number {
    assert(bits >= 0 && bits < 256);
    let count = 0;
    for (let bit = 0; bit < 8; bit++) count += (bits >>> bit) & 1;
    return count;
}

/** Starts a stopped timeout that should run; stops one that should not. */
function timeout_set(timeout: Timeout, running: boolean): void {
    if (running && !timeout.ticking) timeout.start();
    if (!running && timeout.ticking) timeout.stop();
}

function equal16(a: Uint8Array, a_at: number, b: Uint8Array, b_at: number): boolean {
    for (let index = 0; index < 16; index++) {
        if (a[a_at + index] !== b[b_at + index]) return false;
    }
    return true;
}
