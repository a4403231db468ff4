// The fault runner: hosts (network namespaces), one replica per host, the workload through both
// clients, and faults on a schedule drawn from the seed; then everything healed, the history
// checked, every replica's state compared, and a report. Tests only (allocates freely).
//
// A fault episode is one fault, or with one chance in four two at once, held for a drawn time
// and then healed together: SIGKILL (restart at the heal), SIGSTOP (SIGCONT at the heal), a
// partition (the primary isolated, a minority from a majority, or a bridge host that alone sees
// both sides), a slow link (a token bucket: delay and tail drops), a flaky link (a route to the
// peers flapped on and off: bursts of loss), and damage to one zone of a killed replica's data
// file (restarted at the heal: it must repair, or refuse naming the zone, never serve wrong data).
// Two kinds came later and draw from a stream of their own, so that a seed's schedule of the six
// first kinds stays as it was: damage to the grid blocks of a killed replica's durable checkpoint,
// and per-packet loss and duplication between a host and its peers (nftables).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import { Prng } from '../../lib/prng';
import {
    Zone, header_size, sector_size, superblock_copies, superblock_copy_size, zone_names,
} from '../../lib/storage/zones';
import { history_check } from './checker';
import type { CheckResult, Violation } from './checker';
import type { History } from './history';
import { Hosts } from './hosts';
import { Replicas, sleep } from './replicas';
import type { CorruptRegion, ReplicaExit, ReplicaStatus } from './replicas';
import { Workload } from './workload';

export const fault_kinds = [
    'kill', 'stop', 'partition', 'slow', 'flaky', 'corrupt', 'grid', 'loss',
] as const;
export type FaultKind = typeof fault_kinds[number];
/** The kinds drawn from the run's own stream (the others' draws are as before they existed). */
export const extra_kinds: readonly FaultKind[] = ['grid', 'loss'];
/** The extra kinds' stream: seed_stream-like, apart from the schedule's Prng(seed). */
const extra_stream = 0x15;

export interface RunOptions {
    seed: number;
    replicas: 3 | 5;
    duration_s: number;
    faults: readonly FaultKind[];
    /** The workload stops at this many operations even if time remains. */
    ops_max: number;
    log: (line: string) => void;
}

export interface FaultRecord {
    kind: FaultKind;
    target: string;
    start_ms: number;
    heal_ms: number;
    /** From the heal to the first write invoked after it being acknowledged (-1: none was). */
    recovery_ms: number;
    /**
     * Damage only (corrupt, grid): the pattern (zone and scope) and, per damaged replica, where
     * its log stood when it was restarted, to classify it at the end (served, repaired, refused).
     */
    pattern: string;
    damaged: Array<{ replica: number; log_at: number }>;
    outcome: string;
}

export interface Report {
    seed: number;
    replicas: number;
    duration_s: number;
    faults: FaultRecord[];
    ops: {
        total: number; acknowledged: number; timed_out: number; unfinished: number;
        events_rejected: number;
    };
    check: Omit<CheckResult, 'violations'>;
    violations: Violation[];
    /** After the final heal: until the cluster answered the final reads. */
    final_answer_ms: number;
    /** After the final reads: until every replica reached the same commit. */
    converge_ms: number;
    /** Replicas left a whole WAL behind: state sync (not built) is their only way back. */
    needs_state_sync: number[];
    replicas_end: ReplicaExit[];
    /** Replicas that refused to start after their data file was damaged, with the reason. */
    refusals: string[];
    /**
     * The cluster stopped answering and every replica named the damaged zone that stops it
     * ('' when it answered): damage beyond what VSR recovers here, refused explicitly.
     */
    halted: string;
    /** Per damage pattern (zone, scope): how many damaged replicas served, repaired, refused. */
    damage: Array<{ pattern: string; served: number; repaired: number; refused: number }>;
    wall_ms: number;
}

const final_answer_max_ms = 60_000;
const converge_max_ms = 60_000;
const converge_poll_ms = 500;
const corrupt_zones = [Zone.superblock, Zone.wal_headers, Zone.wal_prepares, Zone.client_replies];
const damage_scopes = ['one replica', 'minority', 'helical'] as const;

/** One run of the runner's state (one per `fault_run`). */
class Run {
    readonly options: RunOptions;
    readonly prng: Prng;
    /** The extra kinds' draws (grid, loss): when they come and their shape. */
    readonly extra_prng: Prng;
    readonly hosts: Hosts;
    readonly replicas: Replicas;
    workload!: Workload;
    readonly faults: FaultRecord[] = [];
    readonly refusals: string[] = [];
    /** Replicas that refused their damaged data file: they stay down. */
    readonly refused = new Set<number>();
    private flapping: NodeJS.Timeout | null = null;
    /** Why the cluster stopped answering, if every replica said why (halt_explained). */
    halted = '';

    constructor(options: RunOptions, hosts: Hosts) {
        this.options = options;
        this.prng = new Prng(options.seed);
        this.extra_prng = new Prng((options.seed * 32 + extra_stream) >>> 0);
        this.hosts = hosts;
        this.replicas = new Replicas(hosts, `${options.seed}`);
    }

    /**
     * Starts every replica, then the clients: a client created before the replicas listen backs
     * off its reconnection attempts for seconds.
     */
    async start(): Promise<void> {
        await this.replicas.format();
        for (let replica = 0; replica < this.replicas.count; replica++) {
            assert(await this.replicas.start(replica), this.replicas.logs[replica]);
        }
        this.workload = new Workload({
            seed: this.options.seed + 1, addresses: this.hosts.addresses, workers: 4,
            ops_max: this.options.ops_max, pause_ms_max: 60,
        });
    }

    live(): number[] {
        return this.replicas.states.flatMap((state, replica) =>
            state === 'running' && !this.refused.has(replica) ? [replica] : []);
    }

    /** Applies one fault; false when the cluster's state leaves no target for it. */
    async fault_apply(kind: FaultKind, record: FaultRecord): Promise<boolean> {
        const live = this.live();
        // Keep a majority's worth of hosts that can be brought back: never fault the last one.
        if (live.length <= 1) return false;
        const victim = this.prng.pick(live);
        record.target = `replica ${victim}`;
        switch (kind) {
            case 'kill': await this.replicas.kill(victim); break;
            case 'stop': this.replicas.pause(victim); break;
            case 'partition': record.target = this.partition(); break;
            case 'slow': this.hosts.slow(victim, 256 + this.prng.int(2048),
                50 + this.prng.int(400)); break;
            case 'flaky': this.flaky(victim); break;
            case 'corrupt': record.target = await this.corrupt(victim, record); break;
            case 'grid':
                // Grid damage is aimed at a checkpoint's blocks: none before the first one.
                if (!this.replicas.checkpointed(victim)) return false;
                record.target = await this.grid_damage(victim, record);
                break;
            case 'loss': {
                if (!Hosts.nft_available()) return false;
                const loss_percent = 2 + this.extra_prng.int(24);
                const duplicate_percent = this.extra_prng.int(3) === 0 ? 0 :
                    1 + this.extra_prng.int(10);
                this.hosts.lossy(victim, loss_percent, duplicate_percent);
                record.target += `: ${loss_percent}% of packets to or from its peers lost, ` +
                    `${duplicate_percent}% duplicated`;
                break;
            }
        }
        return true;
    }

    /** The replicas a damage of `scope` reaches: the victim, a minority, or every one. */
    victims(victim: number, scope: number): number[] {
        assert(scope >= 0 && scope < damage_scopes.length);
        const count = this.hosts.count;
        const others = Array.from({ length: count }, (_, replica) => replica)
            .filter((replica) => replica !== victim && !this.refused.has(replica));
        return scope === 0 ? [victim] : scope === 1 ?
            [victim, ...others].slice(0, Math.floor((count - 1) / 2)) : [victim, ...others];
    }

    /**
     * Kills and damages grid blocks of each victim's durable checkpoint (its root, manifests,
     * chunks: blocks its restore reads): one replica, a minority, or every replica helically
     * (each in another block of the list, so that every block keeps intact copies elsewhere).
     * Before the first checkpoint there is no such block: the victim is only killed.
     */
    async grid_damage(victim: number, record: FaultRecord): Promise<string> {
        const scope = this.extra_prng.int(3);
        const victims = this.victims(victim, scope);
        const base = this.extra_prng.u32();
        const damage: string[] = [];
        for (let index = 0; index < victims.length; index++) {
            const replica = victims[index]!;
            await this.replicas.kill(replica);
            const blocks = this.replicas.grid_live_blocks(replica);
            if (blocks.length === 0) {
                damage.push(`replica ${replica}: no checkpoint yet, killed only`);
                continue;
            }
            const address = blocks[(base + index) % blocks.length]!;
            const block_size = Replicas.layout().config.block_size;
            // The block's header: its checksum covers it, so any flipped byte is caught.
            const where = this.replicas.corrupt(replica, Zone.grid,
                { start: (address - 1) * block_size, size: header_size },
                1 + this.extra_prng.int(16), this.extra_prng);
            record.damaged.push({ replica, log_at: -1 });
            damage.push(`replica ${replica}: block ${address} of ${blocks.length} live, ${where}`);
        }
        record.pattern = `grid, ${damage_scopes[scope]}`;
        return `${damage_scopes[scope]}; ${damage.join('; ')}`;
    }

    /**
     * Kills and damages one zone of one replica, of a minority, or of every replica ("helical":
     * each in another slot, or superblock copy, so that every slot keeps intact copies on all
     * but one replica). Client replies are damaged on one replica or a minority only: with two
     * client sessions, every replica's damage could not land in a different slot.
     */
    async corrupt(victim: number, record: FaultRecord): Promise<string> {
        const scope = this.prng.int(3);
        const zone = this.prng.pick(scope === 2 ? corrupt_zones.slice(0, 3) : corrupt_zones);
        const victims = this.victims(victim, scope);
        const slot_base = this.prng.int(Replicas.layout().config.slot_count);
        const damage: string[] = [];
        for (let index = 0; index < victims.length; index++) {
            const replica = victims[index]!;
            await this.replicas.kill(replica);
            damage.push(`replica ${replica}: ${this.replicas.corrupt(replica, zone,
                this.corrupt_region(zone, slot_base + index), 1 + this.prng.int(16),
                this.prng)}`);
            record.damaged.push({ replica, log_at: -1 });
        }
        record.pattern = `${zone_names[zone]}, ${damage_scopes[scope]}`;
        return `${damage_scopes[scope]}; ${damage.join('; ')}`;
    }

    /**
     * Where damage matters: one superblock copy's fields; the header of one slot written so far
     * (in the headers ring, or at the head of its prepare); the head of a client's reply slot.
     * Bytes drawn over a whole zone would mostly land past the end of short messages.
     */
    corrupt_region(zone: Zone, slot_drawn: number): CorruptRegion {
        const layout = Replicas.layout();
        const slots_written = Math.min(layout.config.slot_count,
            Math.max(1, this.workload.ops.length));
        const slot = slot_drawn % slots_written;
        switch (zone) {
            case Zone.superblock:
                return { start: (slot_drawn % superblock_copies) * superblock_copy_size,
                    size: sector_size };
            case Zone.wal_headers: return { start: slot * header_size, size: header_size };
            case Zone.wal_prepares:
                return { start: slot * layout.config.message_size_max, size: sector_size };
            case Zone.client_replies:
                return { start: (slot_drawn % 2) * layout.config.message_size_max,
                    size: sector_size };
            default: throw new Error(`no damage region for zone ${zone}`);
        }
    }

    /** The primary isolated, a minority from the majority, or a bridge between two sides. */
    partition(): string {
        const count = this.hosts.count;
        const primary = this.replicas.primary();
        const shape = this.prng.int(3);
        const hosts = Array.from({ length: count }, (_, host) => host);
        if (shape === 0 && primary !== -1) {
            this.hosts.partition([[primary], hosts.filter((host) => host !== primary)]);
            return `primary ${primary} isolated`;
        }
        const shuffled = hosts.map((host) => [this.prng.u32(), host] as const)
            .sort((a, b) => a[0] - b[0]).map(([, host]) => host);
        const minority = shuffled.slice(0, Math.floor((count - 1) / 2));
        const majority = shuffled.slice(minority.length);
        if (shape === 1 || majority.length < 3) {
            this.hosts.partition([minority, majority]);
            return `minority [${minority}] | majority [${majority}]`;
        }
        // A bridge: two sides that cannot reach each other, and one host that reaches both.
        const bridge = majority[0]!;
        const left = [...minority, majority[1]!];
        const right = majority.slice(2);
        for (const a of left) for (const b of right) {
            this.hosts.block(a, b);
            this.hosts.block(b, a);
        }
        return `bridge ${bridge} between [${left}] and [${right}]`;
    }

    /** Every ~100-400 ms the host's routes to its peers go away or come back. */
    flaky(host: number): void {
        assert(this.flapping === null);
        let blocked = false;
        const flap = (): void => {
            blocked = !blocked;
            for (let peer = 0; peer < this.hosts.count; peer++) {
                if (peer === host) continue;
                if (blocked) this.hosts.block(host, peer);
                else this.hosts.unblock(host, peer);
            }
            this.flapping = setTimeout(flap, 100 + this.prng.int(300));
        };
        flap();
    }

    /** Every fault undone: links, paused and killed replicas (a refusal is recorded). */
    async heal(episode: readonly FaultRecord[] = []): Promise<void> {
        for (const record of episode) {
            for (const damaged of record.damaged) {
                damaged.log_at = this.replicas.logs[damaged.replica]!.length;
            }
        }
        if (this.flapping !== null) clearTimeout(this.flapping);
        this.flapping = null;
        this.hosts.heal();
        for (let replica = 0; replica < this.replicas.count; replica++) {
            this.replicas.resume(replica);
            if (this.replicas.states[replica] !== 'down' || this.refused.has(replica)) continue;
            if (!(await this.replicas.start(replica))) {
                const lines = this.replicas.logs[replica]!.trim().split('\n');
                this.refused.add(replica);
                this.refusals.push(`replica ${replica}: ${lines.slice(-2).join(' / ')}`);
                this.options.log(`replica ${replica} refused to start: ${lines.slice(-2)}`);
            }
        }
    }

    async schedule(deadline_ms: number): Promise<void> {
        if (this.options.faults.length === 0) {
            await sleep(Math.max(0, deadline_ms - this.workload.now_ms()));
            return;
        }
        const legacy = this.options.faults.filter((kind) => !extra_kinds.includes(kind));
        const extras = this.options.faults.filter((kind) => extra_kinds.includes(kind));
        if (legacy.length === 0) legacy.push(...extras);
        const order = fault_order(legacy, this.options.seed);
        let episode_count = 0;
        while (this.workload.now_ms() < deadline_ms) {
            await sleep(500 + this.prng.int(1500));
            if (this.workload.now_ms() >= deadline_ms) break;
            // Every kind once first, in an order from the seed, so a short run covers them all.
            const kinds = [episode_count < order.length ? order[episode_count]! :
                this.prng.pick(legacy)];
            if (this.prng.chance(1, 4)) kinds.push(this.prng.pick(legacy));
            // One flaky link at a time: the flapping timer is the run's only one.
            if (kinds[0] === 'flaky' && kinds[1] === 'flaky') kinds.pop();
            // The extra kinds: each once in the first episodes, then one time in three.
            if (extras.length > 0 && (episode_count < extras.length ||
                this.extra_prng.chance(1, 3))) {
                kinds.push(episode_count < extras.length ? extras[episode_count]! :
                    this.extra_prng.pick(extras));
            }
            episode_count += 1;
            const episode: FaultRecord[] = [];
            for (const kind of kinds) {
                const record: FaultRecord = {
                    kind, target: '', start_ms: this.workload.now_ms(), heal_ms: -1,
                    recovery_ms: -1, pattern: '', damaged: [], outcome: '',
                };
                if (!(await this.fault_apply(kind, record))) continue;
                episode.push(record);
                this.options.log(`${record.start_ms.toFixed(0)} ms: ${kind} ${record.target}`);
            }
            await sleep(800 + this.prng.int(2200));
            await this.heal(episode);
            for (const record of episode) record.heal_ms = this.workload.now_ms();
            this.faults.push(...episode);
        }
    }
}

/** The fault kinds in the order a run first injects each (a shuffle drawn from the seed). */
export function fault_order(faults: readonly FaultKind[], seed: number): FaultKind[] {
    const prng = new Prng(seed);
    return faults.map((kind) => [prng.u32(), kind] as const).sort((a, b) => a[0] - b[0])
        .map(([, kind]) => kind);
}

/** Runs the cluster under faults and checks it; always tears the hosts down. */
export async function fault_run(options: RunOptions): Promise<Report> {
    assert(options.duration_s > 0 && options.faults.length <= fault_kinds.length);
    const started_ms = Date.now();
    const hosts = Hosts.create(options.replicas);
    let run: Run | null = null;
    // Death by a signal emits no 'exit': the replicas are killed here, or they would outlive
    // the run inside namespaces whose names are gone.
    const teardown_on_signal = (signal: NodeJS.Signals): void => {
        for (const child of run?.replicas.children ?? []) child?.kill('SIGKILL');
        hosts.destroy();
        if (run !== null) fs.rmSync(run.replicas.directory, { recursive: true, force: true });
        process.kill(process.pid, signal);
    };
    process.once('SIGINT', teardown_on_signal);
    process.once('SIGTERM', teardown_on_signal);
    try {
        run = new Run(options, hosts);
        await run.start();
        return await run_and_check(run, started_ms);
    } finally {
        process.off('SIGINT', teardown_on_signal);
        process.off('SIGTERM', teardown_on_signal);
        run?.workload?.close();
        await run?.replicas.close();
        hosts.destroy();
    }
}

async function run_and_check(run: Run, started_ms: number): Promise<Report> {
    const options = run.options;
    const workload_done = run.workload.run();
    await run.schedule(options.duration_s * 1000);
    await run.heal();
    const healed_ms = run.workload.now_ms();
    run.workload.stop();
    await Promise.race([workload_done, sleep(final_answer_max_ms)]);
    const ops = run.workload.ops.map((op) => ({ ...op }));
    const reads = await Promise.race([run.workload.final_reads(), sleep(final_answer_max_ms)]);
    const final_answer_ms = run.workload.now_ms() - healed_ms;
    let history: History;
    const violations: Violation[] = [];
    if (reads === undefined) {
        history = { ops, accounts_final: [], transfers_final: [] };
        // Halted: no final reads, so the history up to here cannot be checked either.
        run.halted = halt_explained(run);
        // A halt every replica explains by a damaged zone is a refusal, not a silent hang.
        if (run.halted === '') {
            violations.push({ kind: 'unavailable', op: -1, detail: 'the cluster did not ' +
                `answer within ${final_answer_max_ms} ms of the heal` });
        }
    } else {
        history = { ...reads, ops };
    }
    const check = reads === undefined ? null : history_check(history);
    if (check !== null) violations.push(...check.violations);
    for (const record of run.faults) record.recovery_ms = recovery_ms(history, record.heal_ms);
    run.workload.close(); // Before the replicas stop: the official client would log each retry.
    const converged = await converge(run, violations);
    if (violations.length > 0 || converged.behind.length > 0) logs_keep(run);
    return report_make(run, history, check, violations, final_answer_ms, converged,
        Date.now() - started_ms);
}

/** The line a replica logs when a faulty WAL slot above its head leaves that head uncertain. */
const head_uncertain_pattern = /zone wal slot (-?\d+) above op (\d+) is faulty/;

/**
 * Why the cluster stopped answering, when every replica running says so: each cannot prove its
 * WAL head (a faulty slot above it, named), so none can deny an op above any head and no view
 * can form (internals.md §10; the simulator's core_missing_quorum). '' when any replica is
 * silent about it: an unexplained halt, a violation.
 */
function halt_explained(run: Run): string {
    const reasons: string[] = [];
    let stuck = '';
    for (let replica = 0; replica < run.replicas.count; replica++) {
        if (run.refused.has(replica)) continue;
        const output = run.replicas.output(replica);
        const match = head_uncertain_pattern.exec(output);
        if (match !== null) {
            reasons.push(`replica ${replica}: head ${match[2]}, zone wal slot ${match[1]} faulty`);
        }
        // A new primary that cannot decide an op past the certain logs says so (view_change).
        if (view_change_stuck_pattern.test(output)) stuck = `replica ${replica} as primary`;
    }
    if (reasons.length === run.replicas.count - run.refused.size) {
        return `every replica's WAL head is uncertain, no view can form: ${reasons.join('; ')}`;
    }
    if (reasons.length > 0 && stuck !== '') {
        return `${stuck}: an op past the certain logs has no intact copy among the votes and no ` +
            `nack quorum; ${reasons.join('; ')}`;
    }
    return '';
}

const view_change_stuck_pattern = /no intact copy among the do_view_change votes and no nack/;

/**
 * Polls every replica's commit until all equal the highest, bounded; then stops each (it logs
 * its commit and state checksum) and compares them. A replica whose commit is a whole WAL behind
 * the highest op cannot catch up until state sync is built (README: Limits): it is reported as
 * such, not as a violation, and the others must converge without it.
 */
async function converge(run: Run, violations: Violation[]): Promise<Converged> {
    const started_ms = run.workload.now_ms();
    const slot_count = Replicas.layout().config.slot_count;
    let converged = false;
    let behind: number[] = [];
    while (!converged && run.workload.now_ms() - started_ms < converge_max_ms) {
        await sleep(converge_poll_ms);
        const statuses: Array<ReplicaStatus | null> = [];
        for (let replica = 0; replica < run.replicas.count; replica++) {
            statuses.push(run.refused.has(replica) ? null : await run.replicas.status(replica));
        }
        const op_max = Math.max(...statuses.map((status) => status?.op ?? -1));
        behind = statuses.flatMap((status, replica) =>
            status !== null && status.commit + slot_count <= op_max ? [replica] : []);
        const commits = new Set(statuses.flatMap((status, replica) =>
            run.refused.has(replica) || behind.includes(replica) ? [] : [status?.commit ?? -1]));
        converged = commits.size === 1 && !commits.has(-1);
    }
    const converge_ms = run.workload.now_ms() - started_ms;
    const exits: ReplicaExit[] = [];
    for (let replica = 0; replica < run.replicas.count; replica++) {
        if (!run.refused.has(replica)) exits.push(await run.replicas.stop(replica));
    }
    const caught_up = exits.filter((exit) => !behind.includes(exit.replica));
    const commits = new Set(caught_up.map((exit) => exit.commit));
    const checksums = new Set(caught_up.map((exit) => exit.checksum));
    const text = exits.map((exit) => `${exit.replica}@${exit.commit}:${exit.checksum}`).join(' ');
    // A halted cluster (halt_explained) cannot converge: its report says why instead.
    if (run.halted !== '') {
        run.halted += `; replicas stopped at ${text}`;
    } else if (!converged || caught_up.length <= run.replicas.count / 2) {
        violations.push({ kind: 'not_converged', op: -1, detail: `replicas did not reach one ` +
            `commit within ${converge_max_ms} ms of the final reads: ${text}` });
    } else if (commits.size !== 1 || checksums.size !== 1) {
        violations.push({ kind: 'diverged', op: -1, detail: `replicas at one commit hold ` +
            `different states: ${text}` });
    }
    return { exits, converge_ms, behind };
}

interface Converged {
    exits: ReplicaExit[];
    /** From the final reads until every replica reached the same commit. */
    converge_ms: number;
    /** Replicas a whole WAL behind: they need state sync, which is not built. */
    behind: number[];
}

/** Every replica's output, kept beside the data files' directory for a run that failed. */
function logs_keep(run: Run): void {
    const directory = `${run.replicas.directory}-logs`;
    fs.mkdirSync(directory, { recursive: true });
    run.replicas.logs.forEach((log, replica) => {
        fs.writeFileSync(path.join(directory, `replica-${replica}.log`), log);
    });
    run.options.log(`replica logs kept in ${directory}`);
}

/** From a heal to the first write invoked after it that was acknowledged. */
function recovery_ms(history: History, heal_ms: number): number {
    let best = -1;
    for (const op of history.ops) {
        if (op.kind !== 'create_transfers' || op.outcome !== 'ok' || op.invoke_ms < heal_ms) {
            continue;
        }
        if (best === -1 || op.complete_ms - heal_ms < best) best = op.complete_ms - heal_ms;
    }
    return best;
}

/**
 * What each damaged replica did after its restart, from its log since then: refused (a line
 * naming the zone), repaired (it reported damage and fetched from a peer or rewrote), or served
 * (started and nothing it read was found damaged: the damage landed where nothing reads, or was
 * overwritten first). Wrong data served would be a violation of the checker, not an outcome.
 */
function damage_classify(run: Run, violations: Violation[]): Report['damage'] {
    const table = new Map<string, { served: number; repaired: number; refused: number }>();
    for (const record of run.faults) {
        const outcomes: string[] = [];
        for (const { replica, log_at } of record.damaged) {
            if (log_at < 0) continue;
            const log = run.replicas.logs[replica]!.slice(log_at);
            const counts = table.get(record.pattern) ?? { served: 0, repaired: 0, refused: 0 };
            table.set(record.pattern, counts);
            if (run.refused.has(replica) && !log.includes('listening on')) {
                // A refusal must name the zone it found damaged beyond repair, and say why.
                const refusal = /storage refused: zone (\w+)[^\n]*/.exec(log);
                counts.refused += 1;
                outcomes.push(`replica ${replica} refused: ` +
                    (refusal === null ? 'without naming a zone' : refusal[0].slice(0, 120)));
                if (refusal === null) {
                    violations.push({ kind: 'refusal_unnamed', op: -1, detail: `replica ` +
                        `${replica} refused to start after ${record.pattern} damage without ` +
                        `naming a zone: ${log.trim().split('\n').slice(-2).join(' / ')}` });
                }
            } else if (run.halted !== '' && head_uncertain_pattern.test(log)) {
                counts.refused += 1;
                outcomes.push(`replica ${replica} refused: ` +
                    head_uncertain_pattern.exec(log)![0]);
            } else if (damage_repair_pattern.test(log)) {
                counts.repaired += 1;
                outcomes.push(`replica ${replica} repaired`);
            } else {
                counts.served += 1;
                outcomes.push(`replica ${replica} served`);
            }
        }
        record.outcome = outcomes.join('; ');
    }
    return [...table].map(([pattern, counts]) => ({ pattern, ...counts }))
        .sort((a, b) => a.pattern.localeCompare(b.pattern));
}

/**
 * Log lines by which a running replica reports damage it found and repairs: a grid block or WAL
 * prepare fetched from a peer, a prepare rewritten, a faulty slot waited on, a client reply
 * refetched, a refusal it got past. (Not the stop's counters line: "repairs requested".)
 */
const damage_repair_pattern = new RegExp(['fetching it from a peer', 'fetched from a peer',
    'rewriting the damaged', 'is faulty', 'storage refused: zone', 'warning: zone'].join('|'));

function report_make(run: Run, history: History, check: CheckResult | null,
    violations: Violation[], final_answer_ms: number, converged: Converged,
    wall_ms: number): Report {
    const ops = history.ops;
    let events_rejected = 0;
    for (const op of ops) {
        if (op.kind !== 'create_transfers' || op.outcome !== 'ok') continue;
        events_rejected += op.statuses.filter((status) => status !== 0xffffffff).length;
    }
    const { violations: _, ...check_counts } = check ?? {
        violations: [], writes_acknowledged: 0, writes_indeterminate: 0,
        indeterminate_committed: 0, indeterminate_not_committed: 0, reads_checked: 0,
        resubmits_checked: 0, transfers_committed: 0,
    };
    return {
        seed: run.options.seed, replicas: run.options.replicas,
        duration_s: run.options.duration_s, faults: run.faults,
        ops: {
            total: ops.length,
            acknowledged: ops.filter((op) => op.outcome === 'ok').length,
            timed_out: ops.filter((op) => op.outcome !== 'ok' && op.error !== '').length,
            unfinished: ops.filter((op) => op.outcome !== 'ok' && op.error === '').length,
            events_rejected,
        },
        check: check_counts, violations, final_answer_ms,
        converge_ms: converged.converge_ms, replicas_end: converged.exits,
        needs_state_sync: converged.behind,
        refusals: run.refusals, damage: damage_classify(run, violations), halted: run.halted,
        wall_ms,
    };
}

/** The report as text, one fact a line. */
export function report_text(report: Report): string {
    const lines = [`fault run: seed ${report.seed}, ${report.replicas} replicas, ` +
        `${report.duration_s} s, ${(report.wall_ms / 1000).toFixed(1)} s wall`];
    for (const fault of report.faults) {
        lines.push(`  ${fault.start_ms.toFixed(0).padStart(6)} ms ${fault.kind.padEnd(9)} ` +
            `${fault.target}; healed at ${fault.heal_ms.toFixed(0)} ms, recovered in ` +
            (fault.recovery_ms < 0 ? '(no write after)' : `${fault.recovery_ms.toFixed(0)} ms`) +
            (fault.outcome === '' ? '' : `; ${fault.outcome}`));
    }
    const ops = report.ops;
    lines.push(`ops: ${ops.total} (${ops.acknowledged} acknowledged, ${ops.timed_out} timed out, ` +
        `${ops.unfinished} unfinished; ${ops.events_rejected} events rejected by status)`);
    const check = report.check;
    lines.push(`checked: ${check.writes_acknowledged} writes acknowledged, ` +
        `${check.writes_indeterminate} indeterminate (${check.indeterminate_committed} ` +
        `committed, ${check.indeterminate_not_committed} not), ${check.reads_checked} reads, ` +
        `${check.resubmits_checked} resubmissions, ${check.transfers_committed} transfers`);
    lines.push(`final reads ${report.final_answer_ms.toFixed(0)} ms after the heal, replicas ` +
        `converged ${report.converge_ms.toFixed(0)} ms later: ` +
        report.replicas_end.map((exit) => `${exit.replica}@${exit.commit}:${exit.checksum}`)
            .join(' '));
    lines.push('WAL repair since each replica\'s last start: ' + report.replicas_end.map((exit) =>
        `${exit.replica}: ${exit.repairs_requested} requests for ${exit.prepares_repaired} ` +
        'ops').join(', '));
    for (const refusal of report.refusals) lines.push(`refused: ${refusal}`);
    if (report.halted !== '') lines.push(`halted: ${report.halted}`);
    for (const damage of report.damage) {
        lines.push(`damage ${damage.pattern}: ${damage.served} served, ${damage.repaired} ` +
            `repaired, ${damage.refused} refused`);
    }
    for (const replica of report.needs_state_sync) {
        lines.push(`replica ${replica}: a whole WAL behind, needs state sync (not built)`);
    }
    lines.push(`violations: ${report.violations.length}`);
    for (const violation of report.violations.slice(0, 20)) {
        lines.push(`  ${violation.kind} (op ${violation.op}): ${violation.detail}`);
    }
    return lines.join('\n');
}

