// The fault runner's command line (needs root, for network namespaces):
//   node dist/test/faults/main.js --seed=N [--replicas=3|5] [--duration-s=S] [--ops-max=N]
//       [--faults=kill,stop,partition,slow,flaky,corrupt] [--json=path]
// `npm run faults -- --seed=N ...` builds first. It lives under test/ rather than lib/cli: it
// drives the official client (a devDependency) and root-only namespaces, neither of which the
// published package may need. Exit 0 when the run found no violation, 1 otherwise, 2 on usage.
import fs from 'node:fs';

import { args_parse, flag_integer } from '../../lib/cli/args';
import { UsageError } from '../../lib/cli/command';
import { fault_kinds, fault_run, report_text } from './runner';
import type { FaultKind } from './runner';

const usage = 'node dist/test/faults/main.js --seed=<n> [--replicas=3|5] [--duration-s=<s>] ' +
    `[--ops-max=<n>] [--faults=${fault_kinds.join(',')}] [--json=<path>]`;

/**
 * `netem` is what the issue asks for; this kernel has no sch_netem (see hosts.ts), so it names
 * the two link faults that stand in for it. `clock` is refused: a replica reads the machine's
 * realtime clock, which no namespace on Linux can step for one process alone.
 */
function faults_parse(text: string): FaultKind[] {
    const kinds: FaultKind[] = [];
    for (const name of text.split(',').filter((name) => name !== '')) {
        if (name === 'netem') kinds.push('slow', 'flaky');
        else if ((fault_kinds as readonly string[]).includes(name)) kinds.push(name as FaultKind);
        else if (name === 'clock') {
            throw new UsageError('--faults: clock cannot be injected into one real process here ' +
                '(Linux time namespaces offset only the monotonic clocks, at process start)');
        } else throw new UsageError(`--faults: unknown fault "${name}"`);
    }
    return [...new Set(kinds)];
}

async function main(argv: readonly string[]): Promise<number> {
    const parsed = args_parse(argv,
        ['seed', 'replicas', 'duration-s', 'ops-max', 'faults', 'json']);
    const seed = flag_integer(parsed, 'seed', -1, 0, 2 ** 31);
    if (seed === -1) throw new UsageError('--seed=<n> is required');
    const replicas = flag_integer(parsed, 'replicas', 3, 3, 5);
    if (replicas !== 3 && replicas !== 5) throw new UsageError('--replicas must be 3 or 5');
    const report = await fault_run({
        seed, replicas,
        duration_s: flag_integer(parsed, 'duration-s', 30, 1, 24 * 3600),
        ops_max: flag_integer(parsed, 'ops-max', 1_000_000, 1, 100_000_000),
        faults: faults_parse(parsed.flags.get('faults') ?? fault_kinds.join(',')),
        log: (line) => process.stdout.write(`faults: ${line}\n`),
    });
    process.stdout.write(`${report_text(report)}\n`);
    const json = parsed.flags.get('json');
    if (json !== undefined && json !== '') {
        fs.writeFileSync(json, JSON.stringify(report, (_, value: unknown) =>
            typeof value === 'bigint' ? String(value) : value, 2));
    }
    return report.violations.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => {
    // The clients' sockets are closed, but the official client's thread may linger a moment.
    process.exit(code);
}, (error: unknown) => {
    if (error instanceof UsageError) {
        process.stderr.write(`faults: ${error.message}\nusage: ${usage}\n`);
        process.exit(2);
    }
    process.stderr.write(`faults: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
});
