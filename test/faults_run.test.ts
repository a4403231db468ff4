// A short fault run in CI (needs root, for network namespaces): a 3-replica cluster, one replica
// per namespace, under every fault kind drawn from a fixed seed, through both clients. Bounded by
// time (25 s of faults) and by an operation count. The run must inject faults, acknowledge work,
// and find no violation; its report is printed. Longer runs: README § Fault testing.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fault_kinds, fault_run, report_text } from './faults/runner';

test('faults: 3 replicas in namespaces under kills, pauses, partitions, slow and flaky links ' +
    'and zone damage: no violation', { timeout: 180_000 }, async () => {
    const report = await fault_run({
        seed: 7, replicas: 3, duration_s: 25, faults: fault_kinds, ops_max: 3_000,
        log: () => undefined,
    });
    process.stdout.write(`${report_text(report)}\n`);
    assert.deepEqual(report.violations, [], report_text(report));
    assert(report.faults.length >= 4, `only ${report.faults.length} faults injected`);
    assert(new Set(report.faults.map((fault) => fault.kind)).size >= 3);
    assert(report.ops.acknowledged >= 100, `only ${report.ops.acknowledged} acknowledged`);
    assert(report.check.reads_checked > 0 && report.check.resubmits_checked > 0);
    assert.equal(report.replicas_end.length, 3 - report.refusals.length);
    assert(report.wall_ms < 170_000);
});
