// `ringledger start --addresses=<port | host:port>[,...] [--io=io_uring|libuv] <path>`: opens a
// formatted data file and serves clients until SIGINT or SIGTERM (SIGUSR2 logs its view, op and
// commit). `--addresses` lists every replica of the cluster in index order: ours (the data
// file's replica) is where we listen, and the server dials each of the others.
import { ProbeError } from '../io/probe';
import { address_format, addresses_resolve } from '../io/address';
import type { Address } from '../io/address';
import { addresses_parse, connections_max_limit } from '../server/config';
import { Server } from '../server/server';
import { StorageRefusal } from '../storage/storage';
import { StateSyncRestart } from '../vsr/replica';
import {
    args_parse, capacity_flags, capacity_parse, flag_integer, flag_required, path_single,
} from './args';
import type { CliCommand } from './command';
import { UsageError } from './command';
import { error_text, io_kind_parse, io_uring_unavailable_advice } from './format_text';
import { ancestors_watch, npm_ancestors } from './npm_parent';

const usage = 'ringledger start --addresses=<port | host:port>[,...] [--io=io_uring|libuv] ' +
    '[--connections-max=<n>] <path>   (the capacity comes from the data file; --clients-max, ' +
    '--accounts-max and --transfers-max are accepted only when they agree with it)';

function log(line: string): void {
    process.stdout.write(`ringledger: ${line}\n`);
}

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['addresses', 'io', 'connections-max', ...capacity_flags]);
    const parsed_addresses = addresses_parse(flag_required(parsed, 'addresses'));
    if (typeof parsed_addresses === 'string') {
        throw new UsageError(`--addresses: ${parsed_addresses}`);
    }
    // Host names resolve once, here: the engines take IP literals only.
    let addresses: Address[];
    try {
        addresses = await addresses_resolve(parsed_addresses);
    } catch (error) {
        process.stderr.write(`ringledger start: --addresses: ${(error as Error).message}\n`);
        return 1;
    }
    // The capacity is the data file's (recorded at format); a flag given here is a check only.
    const capacity = capacity_parse(parsed);
    const options = {
        path: path_single(parsed),
        addresses,
        io: io_kind_parse(parsed.flags.get('io')),
        clients_max: parsed.flags.has('clients-max') ? capacity.clients_max : undefined,
        accounts_max: parsed.flags.has('accounts-max') ? capacity.accounts_max : undefined,
        transfers_max: parsed.flags.has('transfers-max') ? capacity.transfers_max : undefined,
        connections_max: parsed.flags.has('connections-max') ?
            flag_integer(parsed, 'connections-max', 0, 1, connections_max_limit) : undefined,
        log,
    };
    let server: Server;
    // Taken before the open, which can take a while: a `kill` of npm meanwhile is seen at once.
    const ancestors = npm_ancestors();
    try {
        server = await Server.open(options);
    } catch (error) {
        process.stderr.write(`ringledger start: ${error_text(error)}\n${advice(error)}\n`);
        return 1;
    }
    const replica = server.replica;
    startup_log(server, options.path);
    const signals_off = signals_handle(server);
    // Under npm exec or npx, `kill` reaches npm, which does not pass it on (lib/cli/npm_parent).
    const unwatch = ancestors_watch(ancestors, (gone) => {
        log(`npm, which started this server, has ended (pid ${gone.pid}, ${gone.command}): ` +
            'stopping');
        server.stop();
    });
    try {
        await server.run();
    } catch (error) {
        if (error instanceof StateSyncRestart) {
            // The superblock names the peer's checkpoint: started again, the replica restores
            // it, fetching the blocks it lacks from its peers (docs/vsr.md §12.2).
            log(`${error.message}: exiting with status ${exit_sync_restart}; start this ` +
                'replica again (a supervisor restarting on failure does)');
            return exit_sync_restart;
        }
        process.stderr.write(`ringledger start: stopped by an error: ${error_text(error)}\n`);
        return 1;
    } finally {
        unwatch();
        signals_off();
    }
    const stats = replica.stats;
    log(`stopped at op ${replica.op} (${stats.commits} commits, ${stats.replies_sent} replies, ` +
        `${stats.requests_dropped} requests dropped, ${server.bus.bytes_sent} bytes sent)`);
    if (replica.replica_count > 1) cluster_stats_log(server);
    // Replicas that committed the same op hold the same state: the fault runner compares these.
    log(`state at commit ${replica.commit_min}: checksum ` +
        `${server.ledger.checksum_state().toString(16).padStart(16, '0')}`);
    return 0;
}

/**
 * SIGINT and SIGTERM stop the server; SIGUSR2 logs where the replica is without stopping it (the
 * fault runner polls it to see replicas converge after a heal). Returns the undo.
 */
/** EX_TEMPFAIL: a state sync adopted a peer's checkpoint; start the replica again. */
export const exit_sync_restart = 75;

function signals_handle(server: Server): () => void {
    const stop = (signal: string): void => {
        log(`${signal}: stopping`);
        server.stop();
    };
    const status = (): void => {
        const replica = server.replica;
        log(`status: view ${replica.view}, op ${replica.op}, commit ${replica.commit_min}`);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGUSR2', status);
    return () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        process.off('SIGUSR2', status);
    };
}

/** A cluster replica's replication counters, for operators and bench/cluster.ts. */
function cluster_stats_log(server: Server): void {
    const stats = server.replica.stats_cluster;
    log(`cluster: ${stats.prepares_sent} prepares sent, ${stats.prepares_retransmitted} ` +
        `retransmitted, ${stats.prepare_oks_sent} prepare_oks sent, ${stats.commits_sent} ` +
        `commit heartbeats, ${stats.repairs_requested} repairs requested, ` +
        `${stats.prepares_repaired} prepares repaired, ${stats.requests_to_backup} requests ` +
        `to a backup, ${stats.view_changes} view changes, ${server.bus.replica_sends_dropped} ` +
        'replica sends dropped for a full queue');
}

/** What was opened, how it is sized, where it listens and, in a cluster, whom it dials. */
function startup_log(server: Server, path: string): void {
    const replica = server.replica;
    log(`opened ${path}: replica ${replica.replica} of ${replica.replica_count}, ` +
        `view ${replica.view}, op ${replica.op}, checkpoint ${replica.checkpoint_op}, ` +
        `${replica.sessions.count} client session(s), ${server.ledger.accounts_count} ` +
        `account(s), ${server.ledger.transfers_count} transfer(s)`);
    log(`${server.engine.kind} engine` +
        (server.engine.kind === 'io_uring' ? (server.engine.buffers_registered
            ? ' (registered buffers)' : ' (unregistered buffers)') : '') +
        `; clients_max ${replica.sessions.capacity}, connections_max ` +
        `${server.bus.connections_max}, accounts_max ${server.ledger.accounts_max}, ` +
        `transfers_max ${server.ledger.transfers_max}, ` +
        `${server.pool.count} messages of ${server.pool.message_size_max} bytes`);
    log(`listening on ${server.address.host}:${server.port}`);
    const addresses = server.options.addresses;
    if (addresses.length === 1) return;
    const peers = addresses.flatMap((address, index) => index === replica.replica ? []
        : [`replica ${index} at ${address_format(address.host, address.port)}`]);
    log(`cluster of ${addresses.length}: dialling ${peers.join(', ')} (a peer that cannot be ` +
        'reached is logged once, and again when it connects)');
}

/** What to do about a startup failure. */
function advice(error: unknown): string {
    if (error instanceof ProbeError) {
        return io_uring_unavailable_advice;
    }
    if (error instanceof StorageRefusal) {
        if (error.zone === 'data file') {
            return '  Another ringledger may be using this file; stop it, or remove a stale lock.';
        }
        return '  The data file cannot be trusted as it is; nothing was changed. Check the path ' +
            'and flags, or restore the file from a replica or backup.';
    }
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
        return '  No such data file: create it first with `ringledger format`.';
    }
    if (code === 'EADDRINUSE') return '  The port is in use: choose another with --addresses.';
    return '  See the message above; the data file was not modified.';
}

export const command_start: CliCommand = { summary: 'serve a data file', usage, run };
