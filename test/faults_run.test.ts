// A short fault run in CI (needs root, for network namespaces): a 3-replica cluster, one replica
// per namespace, under every fault kind drawn from a fixed seed, through both clients. Bounded by
// time (30 s of faults) and by an operation count. The run must inject faults, acknowledge work,
// and find no violation; its report is printed. Longer runs: README § Fault testing.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fault_kinds, fault_order, fault_run, report_text } from './faults/runner';

test('faults: 3 replicas in namespaces under kills, pauses, partitions, slow and flaky links ' +
    'and zone damage: no violation', { timeout: 180_000 }, async () => {
    const report = await fault_run({
        seed: 7, replicas: 3, duration_s: 30, faults: fault_kinds, ops_max: 3_000,
        log: () => undefined,
    });
    process.stdout.write(`${report_text(report)}\n`);
    assert.deepEqual(report.violations, [], report_text(report));
    // Each kind comes once first, in the seed's order: at least the first four got their turn.
    const kinds = new Set(report.faults.map((fault) => fault.kind));
    for (const kind of fault_order(fault_kinds, 7).slice(0, 4)) {
        assert(kinds.has(kind), `${kind} was not injected`);
    }
    assert(report.ops.acknowledged >= 100, `only ${report.ops.acknowledged} acknowledged`);
    assert(report.check.reads_checked > 0 && report.check.resubmits_checked > 0);
    // A replica left a whole WAL behind is in the report (needs_state_sync), not a failure:
    // catching it up is open work (README § Fault runner); the others must have converged.
    assert.equal(report.replicas_end.length, 3 - report.refusals.length);
    assert(report.needs_state_sync.length <= 1);
    assert(report.wall_ms < 170_000);
});
