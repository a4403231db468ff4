// `ringledger recover --cluster=<id> --replica=<index> --replica-count=<n> --addresses=<a,b,c>
// <path>`: rebuilds the data file of a replica whose file was lost, so that it can rejoin.
//
// `format` is wrong for this: a freshly formatted replica would deny, in a view change, ops
// that its lost file had acknowledged, and with that denial a committed op could be cut
// (internals.md §8.3). So recover first has a pipeline's worth of requests committed by the
// other replicas (it registers and sends read-only lookups: each one is an op all the same).
// Every op the lost file may have acknowledged came before them, so it is committed now, and no
// later view change looks at it. Then it formats the file with the cluster's view as the
// replica's, and records view + 2 as the first view it may vote in: the lost replica may have
// voted in view + 1 and cannot remember what it promised (superblock.ts FormatRecovery). The
// rebuilt replica started with `start` waits for the primary's start_view and catches up from
// its peers.
import { existsSync } from 'node:fs';

import { createClient } from '../client/index';
import type { Client } from '../client/client';
import { pipeline_prepare_queue_max } from '../vsr/pipeline';
import { addresses_parse } from '../server/config';
import { args_parse, capacity_flags, flag_integer, flag_required, path_single } from './args';
import type { CliCommand } from './command';
import { UsageError } from './command';
import { data_file_create, replica_identity_parse } from './format';
import { error_text } from './format_text';

const usage = 'ringledger recover --cluster=<id> --replica=<index> --replica-count=<n> ' +
    '--addresses=<port | host:port>[,...] [--timeout-ms=<n>] [capacity flags as at format] ' +
    '[--io=io_uring|libuv] <path>';

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['cluster', 'replica', 'replica-count', 'addresses', 'io',
        'timeout-ms', ...capacity_flags]);
    const identity = replica_identity_parse(parsed);
    const addresses_text = flag_required(parsed, 'addresses');
    const addresses = addresses_parse(addresses_text);
    if (typeof addresses === 'string') throw new UsageError(`--addresses: ${addresses}`);
    if (addresses.length !== identity.replica_count) {
        throw new UsageError(`--addresses lists ${addresses.length} replica(s); ` +
            `--replica-count is ${identity.replica_count}: list every replica, in index order`);
    }
    const timeout_ms = flag_integer(parsed, 'timeout-ms', 60_000, 1000, 3_600_000);
    const path = path_single(parsed);
    if (identity.replica_count < 3) {
        process.stderr.write(`ringledger recover: a cluster of ${identity.replica_count} ` +
            'cannot commit without this replica, so nothing can vouch for what its lost file ' +
            'held. Restore the file from a backup instead (recover needs 3 or more replicas).\n');
        return 1;
    }
    if (existsSync(path)) {
        process.stderr.write(`ringledger recover: ${path} exists: recover rebuilds a lost ` +
            'data file and never overwrites one. If this replica\'s file is intact, `start` it; ' +
            'if it is damaged, `start` it too (it repairs itself from its peers).\n');
        return 1;
    }
    const client = createClient({
        cluster_id: identity.cluster,
        replica_addresses: addresses_text.split(','),
        request_timeout_ms: timeout_ms,
    });
    let view: number;
    try {
        view = await commit_pipeline(client);
    } catch (error) {
        process.stderr.write(`ringledger recover: the other replicas did not commit the ` +
            `recovery's requests within ${timeout_ms} ms: ${error_text(error)}\n  Nothing was ` +
            'written. A majority of the other replicas must be running and reachable at ' +
            '--addresses, with this --cluster.\n');
        return 1;
    } finally {
        client.destroy();
    }
    process.stdout.write(`ringledger: the cluster committed ${pipeline_prepare_queue_max} ` +
        `requests in view ${view}; writing the data file (votes from view ${view + 2})\n`);
    const code = await data_file_create('recover', parsed, identity, { view });
    if (code === 0) {
        process.stdout.write(`ringledger: start it with \`ringledger start ` +
            `--addresses=${addresses_text} ${path}\`: it follows the cluster's view and fetches ` +
            'what it lacks from its peers.\n');
    }
    return code;
}

/** Registers and has pipeline_prepare_queue_max requests committed; returns the view seen. */
async function commit_pipeline(client: Client): Promise<number> {
    // One at a time: each is committed after every op before it.
    for (let request = 0; request < pipeline_prepare_queue_max; request++) {
        await client.lookupAccounts([1n]);
    }
    return client.view_known;
}

export const command_recover: CliCommand = {
    summary: 'rebuild a replica whose data file was lost (never `format` for that)', usage, run,
};
