// `ringledger format --cluster=<id> --replica=<index> --replica-count=<n> <path>`: creates and
// formats a data file (it never overwrites one), then prints what it wrote.
import { Arena, sector_size } from '../io/arena';
import type { Engine, EngineKind } from '../io/engine';
import { create_engine } from '../io/index';
import { ProbeError } from '../io/probe';
import { format, storage_arena_size } from '../vsr/data_file';
import { ZoneLayout } from '../storage/zones';
import { data_file_config } from '../server/config';
import { args_parse, capacity_flags, capacity_parse, flag_integer, flag_u128, path_single }
    from './args';
import type { ParsedArgs } from './args';
import type { FormatRecovery } from '../vsr/superblock';
import type { CliCommand } from './command';
import { UsageError } from './command';
import { bytes_text, error_text, io_kind_parse, io_uring_unavailable_advice }
    from './format_text';

const usage = 'ringledger format --cluster=<id> --replica=<index> --replica-count=<n> ' +
    '[--clients-max=<n>] [--accounts-max=<n>] [--transfers-max=<n>] [--io=io_uring|libuv] <path>';

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['cluster', 'replica', 'replica-count', 'io',
        ...capacity_flags]);
    return data_file_create('format', parsed, replica_identity_parse(parsed), null);
}

/** --cluster, --replica and --replica-count, as format and recover take them. */
export function replica_identity_parse(parsed: ParsedArgs): ReplicaIdentity {
    const cluster = flag_u128(parsed, 'cluster');
    const replica_count = flag_integer(parsed, 'replica-count', -1, 1, 6);
    if (replica_count === -1) throw new UsageError('--replica-count=<n> is required');
    const replica = flag_integer(parsed, 'replica', -1, 0, replica_count - 1);
    if (replica === -1) throw new UsageError('--replica=<index> is required');
    return { cluster, replica, replica_count };
}

export interface ReplicaIdentity {
    cluster: bigint;
    replica: number;
    replica_count: number;
}

/**
 * Creates and formats the data file (never over an existing one) and says what it wrote;
 * `recovery` for a file that `recover` rebuilds. Returns the exit code.
 */
export async function data_file_create(command: string, parsed: ParsedArgs,
    identity: ReplicaIdentity, recovery: FormatRecovery | null): Promise<number> {
    const capacity = capacity_parse(parsed);
    const io: EngineKind = io_kind_parse(parsed.flags.get('io'));
    const path = path_single(parsed);
    const config = data_file_config(capacity);
    const arena = new Arena(Math.ceil(storage_arena_size(config) / sector_size) * sector_size);
    let engine: Engine;
    try {
        engine = create_engine(io, { arena, entries: 64 });
    } catch (error) {
        // Expected on hosts without io_uring (seccomp, sysctl, old kernels): a cause, no trace.
        if (!(error instanceof ProbeError)) throw error;
        process.stderr.write(`ringledger format: ${error.message}\n` +
            `${io_uring_unavailable_advice} The data file was not created.\n`);
        return 1;
    }
    try {
        await format(path, { ...identity, capacity: {
            accounts_max: capacity.accounts_max, transfers_max: capacity.transfers_max,
        }, ...(recovery === null ? {} : { recovery }) }, engine, config);
    } catch (error) {
        process.stderr.write(`ringledger ${command}: ${error_text(error)}\n`);
        process.stderr.write('  The data file was not created. Choose a path that does not ' +
            'exist yet, in a directory that does.\n');
        return 1;
    } finally {
        engine.destroy();
    }
    const layout = new ZoneLayout(config);
    const { cluster, replica, replica_count } = identity;
    process.stdout.write(`ringledger: formatted ${path}: cluster ${cluster}, replica ${replica} ` +
        `of ${replica_count}, ${bytes_text(layout.total_size_bytes)} (WAL ` +
        `${config.slot_count} slots of ${bytes_text(config.message_size_max)}; clients_max ` +
        `${capacity.clients_max}, accounts_max ${capacity.accounts_max}, transfers_max ` +
        `${capacity.transfers_max}, recorded in the file: \`start\` takes them from there)\n`);
    return 0;
}

export const command_format: CliCommand = { summary: 'create and format a data file', usage, run };
