// `ringledger simulate`: the deterministic cluster simulator (lib/testing/simulator.ts) over the
// real ledger replica. One seed replays one run exactly: a summary, a violation if any (the seed,
// the tick, the op and what broke), and the run's checksum as the last line; exit 0 iff nothing
// was violated. `--swarm` runs seed after seed (from --seed's sequence, or random) until
// --seeds=<count> or SIGINT. --no-storage-faults turns the seed's storage faults off (the rest of
// its run is drawn as before: they have PRNG streams of their own), to tell whether a failure
// needs them.
//
// The replica is wired here, because its wiring over the ledger (lib/server/replica_open.ts)
// sits above lib/testing, which takes it as a ReplicaFactory.
import crypto from 'node:crypto';

import { Ledger } from '../ledger/ledger';
import { Prng } from '../prng';
import { write_fault_count } from '../storage/simulator_storage';
import {
    replica_create, replica_storage_arena_size, replica_storage_config, replica_storage_open,
    replica_storage_operations_max,
} from '../server/replica_open';
import type { ClusterReplica, ReplicaFactory, ReplicaFactoryOptions } from '../testing/cluster';
import { checkpoint_id_divergence_causes } from '../testing/cluster_checkers';
import type { CheckpointCheckMode } from '../testing/cluster_checkers';
import { partition_mode_names } from '../testing/packet_simulator';
import {
    liveness_ticks_max_default, replica_count_max, seed_stream, simulate, storage_faults_on,
    ticks_default, write_fault_names,
} from '../testing/simulator';
import type { SimulationOptions, SimulationSummary } from '../testing/simulator';
import { args_parse, flag_integer } from './args';
import type { CliCommand } from './command';
import { UsageError } from './command';

/** The ledger replica of lib/server/replica_open.ts, over a simulated disk. */
export const replica_factory_ledger: ReplicaFactory = {
    storage_config: (base, ledger) => replica_storage_config(base, base.clients_max, ledger),
    arena_size_per_open: replica_storage_arena_size,
    storage_operations_max: replica_storage_operations_max,
    async create(options: ReplicaFactoryOptions): Promise<ClusterReplica> {
        const { listener, superblock, journal } = await replica_storage_open(options.storage);
        const replica = replica_create({
            pool: options.pool, time: options.time, random: options.random,
            storage: options.storage, superblock, journal, storage_listener: listener,
            ledger: new Ledger(options.ledger), clients_max: options.clients_max,
            log: options.log,
        });
        return replica;
    },
};

/**
 * --skip-checkpoint-check: replicas that commit the same log may still write different
 * checkpoints today (checkpoint_id_divergence_causes), a matter for the checkpointer and the
 * replica, not for the simulator; this keeps the other checks running meanwhile.
 */
export const checkpoint_check_skipped: CheckpointCheckMode = {
    enabled: false,
    reason: `--skip-checkpoint-check (${checkpoint_id_divergence_causes})`,
};

const flags = ['seed', 'replicas', 'ticks', 'liveness-ticks', 'swarm', 'seeds',
    'skip-checkpoint-check', 'log', 'no-storage-faults'] as const;

export const command_simulate: CliCommand = {
    summary: 'run the deterministic cluster simulator (faults, checkers, liveness)',
    usage: 'ringledger simulate --seed=<n> [--replicas=<1-6>] [--ticks=<n>] ' +
        '[--liveness-ticks=<n>] [--swarm [--seeds=<count>]] [--skip-checkpoint-check] [--log] ' +
        '[--no-storage-faults]',
    async run(args: readonly string[]): Promise<number> {
        const parsed = args_parse(args, flags);
        if (parsed.positional.length > 0) throw new UsageError('simulate takes no paths');
        const swarm = parsed.flags.has('swarm');
        if (!swarm && !parsed.flags.has('seed')) throw new UsageError('--seed=<n> is required');
        if (!swarm && parsed.flags.has('seeds')) throw new UsageError('--seeds needs --swarm');
        for (const name of ['swarm', 'skip-checkpoint-check', 'log', 'no-storage-faults']) {
            const value = parsed.flags.get(name);
            if (value !== undefined && value !== '') {
                throw new UsageError(`--${name} takes no value`);
            }
        }
        const seed = flag_integer(parsed, 'seed', -1, 0, Number.MAX_SAFE_INTEGER);
        const replicas = flag_integer(parsed, 'replicas', 0, 1, replica_count_max);
        const options = {
            replica_count: replicas === 0 ? undefined : replicas,
            ticks: flag_integer(parsed, 'ticks', ticks_default, 0, 100_000_000),
            liveness_ticks_max: flag_integer(parsed, 'liveness-ticks',
                liveness_ticks_max_default, 1, 100_000_000),
            checkpoint_check: parsed.flags.has('skip-checkpoint-check') ?
                checkpoint_check_skipped : undefined,
            log: parsed.flags.has('log') ?
                (line: string) => process.stderr.write(`${line}\n`) : undefined,
            swarm: parsed.flags.has('no-storage-faults') ? {
                wal_fault_per_million: new Array<number>(write_fault_count).fill(0),
                reply_fault_per_million: new Array<number>(write_fault_count).fill(0),
            } : undefined,
        };
        if (!swarm) {
            const summary = await simulate({ ...options, seed }, replica_factory_ledger);
            for (const line of summary_lines(summary)) process.stdout.write(`${line}\n`);
            return summary.violation === null ? 0 : 1;
        }
        const count = flag_integer(parsed, 'seeds', 0, 1, Number.MAX_SAFE_INTEGER);
        return swarm_run(seed, count, options);
    },
};

/** Seeds one after another until `count` (0: until SIGINT); exit 0 iff none violated. */
async function swarm_run(seed: number, count: number,
    options: Omit<SimulationOptions, 'seed'>): Promise<number> {
    // A given --seed makes the sequence of seeds reproducible too.
    const seeds = seed >= 0 ? new Prng(seed_stream(seed, 2)) : null;
    let stop = false;
    const on_signal = (): void => { stop = true; };
    process.once('SIGINT', on_signal);
    const violated: number[] = [];
    const excused: number[] = [];
    let runs = 0;
    let replies_lost = 0;
    let replies_repaired = 0;
    let grid_rotted = 0;
    let grid_repaired = 0;
    let syncs = 0;
    let syncs_seeds = 0;
    let behind_wal = 0;
    try {
        for (; !stop && (count === 0 || runs < count); runs++) {
            const next = seeds === null ? crypto.randomInt(0, 2 ** 32) : seeds.u32();
            const summary = await simulate({ ...options, seed: next }, replica_factory_ledger);
            const lines = summary_lines(summary);
            replies_lost += summary.replies_lost;
            replies_repaired += summary.replies_repaired;
            grid_rotted += summary.grid_blocks_rotted;
            grid_repaired += summary.grid_blocks_repaired;
            syncs += summary.syncs;
            if (summary.syncs > 0) syncs_seeds += 1;
            behind_wal += summary.behind_wal;
            if (summary.liveness_excused !== null) excused.push(next);
            if (summary.violation === null && summary.liveness_excused === null) {
                const replies = summary.replies_lost === 0 ? '' : ` (session replies: ` +
                    `${summary.replies_lost} lost at startup, ${summary.replies_repaired} ` +
                    'repaired from a peer)';
                const grid = summary.grid_blocks_rotted === 0 ? '' : ` (grid blocks: ` +
                    `${summary.grid_blocks_rotted} rotted, ${summary.grid_blocks_repaired} ` +
                    'repaired from a peer)';
                const synced = summary.syncs === 0 ? '' : ` (${summary.syncs} state sync(s))`;
                process.stdout.write(`${lines[0]!}\n  checksum ${summary.checksum}${replies}` +
                    `${grid}${synced}\n`);
            } else if (summary.violation === null) {
                for (const line of lines) process.stdout.write(`${line}\n`);
            } else {
                violated.push(next);
                for (const line of lines) process.stdout.write(`${line}\n`);
            }
            // Lets SIGINT in between seeds.
            await new Promise<void>((resolve) => setImmediate(resolve));
        }
    } finally {
        process.removeListener('SIGINT', on_signal);
    }
    process.stdout.write(`swarm: ${runs} seed(s) run, ${violated.length} violated` +
        (violated.length === 0 ? '' : `: ${violated.join(' ')}`) + `, ${excused.length} ` +
        `excused (core_missing_quorum)${excused.length === 0 ? '' : `: ${excused.join(' ')}`}` +
        `; session replies: ${replies_lost} lost at startup, ${replies_repaired} repaired from ` +
        `a peer; grid blocks: ${grid_rotted} rotted, ${grid_repaired} repaired from a peer; ` +
        `state syncs: ${syncs} in ${syncs_seeds} seed(s); replicas excused with no intact copy ` +
        `of their next op left: ${behind_wal}\n`);
    return violated.length === 0 ? 0 : 1;
}

/** The storage-fault rates the seed drew, per write to a WAL zone and to the client replies. */
function storage_faults_text(summary: SimulationSummary): string {
    const swarm = summary.swarm;
    if (!storage_faults_on(swarm)) {
        return swarm.replica_count === 1 ? 'no storage faults (one replica)' : 'no storage faults';
    }
    const rates = (per_million: readonly number[]): string => per_million.map((rate, fault) =>
        rate > 0 ? `${write_fault_names[fault]} ${rate / 10_000}%` : '').filter((text) =>
        text !== '').join(', ') || 'none';
    return `WAL faults per write: ${rates(swarm.wal_fault_per_million)}; client replies ` +
        `faults per write: ${rates(swarm.reply_fault_per_million)}`;
}

/** The clocks the seed drew, and the jumps they made. */
function clock_faults_text(summary: SimulationSummary): string {
    const faults = summary.swarm.clock_faults;
    if (faults.offset_us_max === 0 && faults.drift_ppm_max === 0 && faults.rogue_replica === -1 &&
        faults.jump_per_million === 0) return 'clocks: ideal';
    return `clocks: within ±${faults.offset_us_max / 1000} ms, drift ≤ ${faults.drift_ppm_max} ` +
        `ppm, ${summary.clock_jumps} jump(s)` + (faults.rogue_replica === -1 ? '' :
        `, replica ${faults.rogue_replica} rogue by ${faults.rogue_offset_us / 1e6} s`);
}

/** The storage faults injected, by kind. */
function storage_faults_injected_text(summary: SimulationSummary): string {
    const counts = summary.storage_faults;
    const total = counts.reduce((sum, count) => sum + count, 0);
    const kinds: string[] = [];
    counts.forEach((count, fault) => {
        if (count > 0) kinds.push(`${count} ${write_fault_names[fault]}`);
    });
    return `${total} fault(s) injected` + (total === 0 ? '' : ` (${kinds.join(', ')})`);
}

/** The run's summary; the checksum is the last line. */
export function summary_lines(summary: SimulationSummary): string[] {
    const swarm = summary.swarm;
    const network = swarm.network;
    const lines = [
        `seed ${summary.seed}: ${swarm.replica_count} replica(s), ${swarm.client_count} ` +
        `client(s) for ${swarm.clients_max} sessions, ${swarm.slot_count} WAL slots: ` +
        `${summary.requests_committed} requests committed (${summary.ops_committed} ops, ` +
        `${summary.replies} replies, ${summary.evicted_clients} client(s) evicted), ` +
        `${summary.checkpoints} checkpoint(s), ${summary.ticks} ticks ` +
        `(${summary.ticks_liveness} to converge), ${storage_faults_text(summary)}`,
        `  faults: ${summary.crashes} crash(es), ${summary.restarts} restart(s), ` +
        (summary.recoveries === 0 ? '' : `${summary.recoveries} data file(s) lost and ` +
            'rebuilt by recover, ') +
        `${summary.pauses} pause(s), ${summary.partitions} partition(s) ` +
        `(${partition_mode_names[network.partition_mode]}, ` +
        `${network.partition_symmetric ? 'symmetric' : 'asymmetric'}), ${summary.clogs} ` +
        `clog(s), ${summary.connection_resets} connection reset(s); packets: ` +
        `${summary.packets_sent} sent, ${summary.packets_dropped} dropped, ` +
        `${summary.packets_duplicated} duplicated; storage: ` +
        `${storage_faults_injected_text(summary)}, ${summary.replies_lost} session ` +
        `repl${summary.replies_lost === 1 ? 'y' : 'ies'} lost at startup (` +
        `${summary.replies_repaired} repaired from a peer); ${clock_faults_text(summary)}` +
        (swarm.grid_rot_blocks_max === 0 ? '' : `; grid rot: ${summary.grid_blocks_rotted} ` +
            `block(s) rotted while down, ${summary.grid_blocks_repaired} repaired from a peer`) +
        (swarm.power_loss ? '; power loss before the liveness phase' : ''),
    ];
    if (summary.syncs > 0) {
        lines.push(`  ${summary.syncs} state sync(s): a replica beyond the ${swarm.slot_count}` +
            '-slot WAL of its peers adopted a checkpoint and fetched its blocks');
    }
    if (summary.behind_wal > 0) {
        lines.push(`  ${summary.behind_wal} replica(s) whose next op no peer holds intact any ` +
            'more (each copy damaged, under a peer\'s checkpoint): the others converged without ' +
            'them');
    }
    if (!summary.checkpoint_check.enabled) {
        lines.push(`  checkpoint_id check off (${summary.checkpoint_check.reason}): ` +
            `${summary.checkpoint_mismatches.length === 0 ? 'no disagreement seen' :
                summary.checkpoint_mismatches.join('; ')}`);
    }
    if (summary.liveness_excused !== null) {
        lines.push(`  liveness excused as TigerBeetle's VOPR does (${summary.liveness_excused})`);
    }
    const violation = summary.violation;
    if (violation !== null) {
        lines.push(`VIOLATION seed=${summary.seed} tick=${violation.tick} op=${violation.op} ` +
            `replica=${violation.replica} ${violation.kind}: ${violation.message}`);
    }
    lines.push(`checksum ${summary.checksum}`);
    return lines;
}
