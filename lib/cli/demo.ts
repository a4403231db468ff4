// `ringledger demo`: the README's first command. Formats a temporary data file, starts a replica
// on it, runs a short workload through the client with a progress line, prints a summary with a
// balance check (total debits equal total credits, and equal what was sent), then stops the
// replica and removes the file.
import { performance } from 'node:perf_hooks';

import { createClient, CreateAccountStatus, CreateTransferStatus } from '../client/index';
import type { Account, Client, Transfer } from '../client/index';
import { Prng } from '../prng';
import { args_parse, flag_integer } from './args';
import {
    bytes_mib, LatencyHistogram, process_rss_bytes, replica_spawn,
} from './benchmark';
import type { ReplicaChild } from './benchmark';
import type { CliCommand } from './command';
import { UsageError } from './command';

const batch_size = 8189;
const ledger = 1;

export interface DemoOptions {
    seconds: number;
    account_count: number;
    transfers_max: number;
    seed: number;
}

export interface DemoSummary {
    accounts: number;
    transfers: number;
    seconds: number;
    amount_sent: bigint;
    debits_posted: bigint;
    credits_posted: bigint;
    latency: LatencyHistogram;
}

/** The workload: accounts, then full batches of transfers until time or capacity runs out. */
export async function demo_run(
    client: Client, options: DemoOptions, progress: (summary: DemoSummary) => void,
): Promise<DemoSummary> {
    const prng = new Prng(options.seed);
    const accounts: Account[] = [];
    for (let index = 0; index < options.account_count; index++) {
        accounts.push({
            id: BigInt(index + 1), debits_pending: 0n, debits_posted: 0n, credits_pending: 0n,
            credits_posted: 0n, user_data_128: 0n, user_data_64: 0n, user_data_32: 0,
            reserved: 0, ledger, code: 1, flags: 0, timestamp: 0n,
        });
    }
    for (let first = 0; first < accounts.length; first += batch_size) {
        const results = await client.createAccounts(accounts.slice(first, first + batch_size));
        const failed = results.find((result) => result.status !== CreateAccountStatus.created);
        if (failed !== undefined) throw new Error(`create_accounts failed: ${failed.status}`);
    }
    const summary: DemoSummary = {
        accounts: accounts.length, transfers: 0, seconds: 0, amount_sent: 0n,
        debits_posted: 0n, credits_posted: 0n, latency: new LatencyHistogram(),
    };
    const started_ms = performance.now();
    let progress_ms = started_ms;
    while (performance.now() - started_ms < options.seconds * 1000 &&
        summary.transfers + batch_size <= options.transfers_max) {
        const batch: Transfer[] = [];
        for (let index = 0; index < batch_size; index++) {
            const debit = prng.int(accounts.length);
            const credit = (debit + 1 + prng.int(accounts.length - 1)) % accounts.length;
            const amount = BigInt(1 + prng.int(1000));
            summary.amount_sent += amount;
            batch.push({
                id: BigInt(summary.transfers + index + 1), debit_account_id: BigInt(debit + 1),
                credit_account_id: BigInt(credit + 1), amount, pending_id: 0n,
                user_data_128: 0n, user_data_64: 0n, user_data_32: 0, timeout: 0, ledger,
                code: 1, flags: 0, timestamp: 0n,
            });
        }
        const sent_ms = performance.now();
        const results = await client.createTransfers(batch);
        summary.latency.record(performance.now() - sent_ms);
        const failed = results.find((result) => result.status !== CreateTransferStatus.created);
        if (failed !== undefined) throw new Error(`create_transfers failed: ${failed.status}`);
        summary.transfers += batch.length;
        summary.seconds = (performance.now() - started_ms) / 1000;
        if (performance.now() - progress_ms >= 250) {
            progress_ms = performance.now();
            progress(summary);
        }
    }
    summary.seconds = (performance.now() - started_ms) / 1000;
    for (let first = 0; first < accounts.length; first += batch_size) {
        const ids = accounts.slice(first, first + batch_size).map((account) => account.id);
        for (const account of await client.lookupAccounts(ids)) {
            summary.debits_posted += account.debits_posted;
            summary.credits_posted += account.credits_posted;
        }
    }
    return summary;
}

function rate(summary: DemoSummary): number {
    return summary.seconds > 0 ? Math.floor(summary.transfers / summary.seconds) : 0;
}

function number_text(value: number | bigint): string {
    return value.toLocaleString('en-US');
}

const usage = 'ringledger demo [--seconds=<n>] [--accounts=<n>] [--io=io_uring|libuv] ' +
    '[--verbose]';

/** The summary, each figure with what it means for someone who has not seen ringledger before. */
export function summary_lines(summary: DemoSummary, balanced: boolean,
    memory: { replica_bytes: number; client_bytes: number }): string[] {
    const latency = summary.latency;
    return [
        '',
        'summary',
        `  accounts             ${number_text(summary.accounts)} (created first, one ledger)`,
        `  transfers            ${number_text(summary.transfers)} in ` +
            `${summary.seconds.toFixed(2)} s, each moving an amount from one random account ` +
            'to another',
        `  throughput           ${number_text(rate(summary))} tx/s (transfers committed per ` +
            'second: written to the replica\'s log on disk and applied before the reply)',
        `  batch latency        p50 ${latency.percentile_ms(50)} ms, ` +
            `p99 ${latency.percentile_ms(99)} ms, max ${latency.percentile_ms(100)} ms`,
        `                       (from sending a batch of ${number_text(batch_size)} transfers ` +
            'to its reply: half the batches took at most p50, 99 in 100 at most p99)',
        `  balance check        debits ${number_text(summary.debits_posted)} ` +
            `${summary.debits_posted === summary.credits_posted ? '=' : '≠'} credits ` +
            `${number_text(summary.credits_posted)} (sent ` +
            `${number_text(summary.amount_sent)}): ${balanced ? 'ok' : 'MISMATCH'}`,
        '                       (double entry: every transfer debits one account and credits ' +
            'another by the same amount)',
        `  memory               replica ${bytes_mib(memory.replica_bytes)}, client ` +
            `${bytes_mib(memory.client_bytes)} (the replica allocates its memory at startup)`,
        '',
        'Figures depend on the machine (cores, disk); compare runs on one machine.',
        'Try next:',
        '  npx ringledger format --cluster=0 --replica=0 --replica-count=1 ./0_0.ringledger',
        '  npx ringledger start --addresses=3000 ./0_0.ringledger      # your own replica',
        '  npx ringledger repl --cluster=0 --addresses=3000            # statements against it',
        '  npx ringledger benchmark                                    # a longer measurement',
        '  and from code: createClient, createAccounts, createTransfers (README, "Using it")',
    ];
}

/**
 * The replica's own log speaks to operators (ops, views, message pools): kept back unless asked
 * for (--verbose), and shown whole when something fails.
 */
function replica_log(verbose: boolean, out: (line: string) => void):
    { on_line: (line: string) => void; log_show: () => void } {
    const lines: string[] = [];
    const on_line = (line: string): void => {
        lines.push(line);
        if (verbose) out(`  replica | ${line}`);
    };
    const log_show = (): void => {
        if (verbose) return;
        for (const line of lines) process.stderr.write(`  replica | ${line}\n`);
    };
    return { on_line, log_show };
}

async function run(args: readonly string[]): Promise<number> {
    const parsed = args_parse(args, ['seconds', 'accounts', 'io', 'seed', 'verbose']);
    if (parsed.positional.length > 0) throw new UsageError('no positional arguments expected');
    const options: DemoOptions = {
        seconds: flag_integer(parsed, 'seconds', 5, 1, 600),
        account_count: flag_integer(parsed, 'accounts', 10_000, 2, 100_000),
        transfers_max: 1_000_000,
        seed: flag_integer(parsed, 'seed', 1, 0, 2 ** 32 - 1),
    };
    const out = (line: string): void => { process.stdout.write(`${line}\n`); };
    out('ringledger demo: formatting a temporary data file and starting a replica on it ...');
    const { on_line, log_show } = replica_log(parsed.flags.has('verbose'), out);
    let replica: ReplicaChild;
    try {
        replica = await replica_spawn({ io: parsed.flags.get('io'), accounts_max: 100_000,
            transfers_max: options.transfers_max, on_line });
    } catch (error) {
        log_show();
        process.stderr.write(`ringledger demo: ${(error as Error).message}\n`);
        return 1;
    }
    out(`a replica (pid ${replica.pid}) is listening on ${replica.address}; its log is shown ` +
        'with --verbose');
    const client = createClient({ cluster_id: 0n, replica_addresses: [replica.address] });
    const tty = process.stdout.isTTY === true;
    // Ctrl-C ends the run (outstanding calls fail) so that `finally` still stops the replica
    // and removes the temporary data file.
    let interrupted = false;
    const interrupt = (): void => {
        interrupted = true;
        client.destroy();
    };
    process.once('SIGINT', interrupt);
    try {
        out(`running for ${options.seconds} s or until ` +
            `${number_text(options.transfers_max)} transfers (the data file's transfers_max), ` +
            `whichever comes first: ${number_text(options.account_count)} accounts, ` +
            `batches of ${batch_size} transfers, one batch in flight ...`);
        const summary = await demo_run(client, options, (now) => {
            const line = `  ${now.seconds.toFixed(1)} s  ${number_text(now.transfers)} ` +
                `transfers  ${number_text(rate(now))} tx/s`;
            if (tty) process.stdout.write(`\r${line}   `);
            else out(line);
        });
        if (tty) process.stdout.write('\n');
        const balanced = summary.debits_posted === summary.credits_posted &&
            summary.debits_posted === summary.amount_sent;
        const memory = { replica_bytes: replica.rss_bytes().current,
            client_bytes: process_rss_bytes(process.pid).current };
        for (const line of summary_lines(summary, balanced, memory)) out(line);
        return balanced ? 0 : 1;
    } catch (error) {
        if (tty) process.stdout.write('\n');
        const message = interrupted ? 'interrupted' : (error as Error).message;
        if (!interrupted) log_show();
        process.stderr.write(`ringledger demo: ${message}\n`);
        return 1;
    } finally {
        process.off('SIGINT', interrupt);
        client.destroy();
        await replica.stop();
        out('replica stopped, temporary data file removed');
    }
}

export const command_demo: CliCommand = {
    summary: 'start a replica on a temporary file, run a short workload, print a summary',
    usage,
    run,
};
