// A short fault run in CI (needs root, for network namespaces): a 3-replica cluster, one replica
// per namespace, under every fault kind drawn from a fixed seed, through both clients. Bounded by
// time (30 s of faults) and by an operation count. The run must inject faults, acknowledge work,
// and find no violation; its report is printed. Longer runs: README § Fault testing.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { extra_kinds, fault_kinds, fault_order, fault_run, report_text } from './faults/runner';
import type { Report } from './faults/runner';

const long = process.env.RINGLEDGER_TEST_LONG === '1';

async function run(seed: number): Promise<Report> {
    const report = await fault_run({
        seed, replicas: 3, duration_s: 30, faults: fault_kinds, ops_max: 3_000,
        log: () => undefined,
    });
    process.stdout.write(`${report_text(report)}\n`);
    assert.deepEqual(report.violations, [], report_text(report));
    assert.equal(report.replicas_end.length, 3 - report.refusals.length);
    assert(report.wall_ms < 170_000);
    return report;
}

// Seed 9: when its run reaches the first checkpoint in time, its helical grid damage lands on
// two replicas' live checkpoint blocks (both repaired from a peer in one run here); seed 7 is
// the flagged case below.
test('faults: 3 replicas in namespaces under kills, pauses, partitions, slow, flaky and lossy ' +
    'links, zone and grid damage: no violation', { timeout: 180_000 }, async () => {
    const report = await run(9);
    assert.equal(report.halted, '', report_text(report));
    // Each kind comes once first, in the seed's order: at least the first four got their turn,
    // and loss, of the two kinds of their own stream, in the first two episodes.
    const kinds = new Set(report.faults.map((fault) => fault.kind));
    const legacy = fault_kinds.filter((kind) => !extra_kinds.includes(kind));
    // Grid damage waits for the first checkpoint (op ~1,008), which 30 s may not reach.
    for (const kind of [...fault_order(legacy, 9).slice(0, 4), 'loss' as const]) {
        assert(kinds.has(kind), `${kind} was not injected`);
    }
    assert(report.ops.acknowledged >= 100, `only ${report.ops.acknowledged} acknowledged`);
    assert(report.check.reads_checked > 0 && report.check.resubmits_checked > 0);
    // A replica left a whole WAL behind is in the report (needs_state_sync), not a failure.
    assert(report.needs_state_sync.length <= 1);
});

// Seed 7 under every kind once left all three replicas with a faulty WAL slot above their
// heads (helical wal_headers damage at the head): none can prove its head, no view forms, the
// cluster halts. That must be explicit: every replica names the zone and slot, the report says
// halted, and nothing is a violation (above all, no wrong data). RINGLEDGER_TEST_LONG=1 only:
// the halt costs two 60 s waits; timing decides whether a run of the seed halts.
if (long) {
    test('faults: seed 7 halts only with every replica naming its faulty WAL slot',
        { timeout: 180_000 }, async () => {
            const report = await run(7);
            if (report.halted !== '') {
                assert.match(report.halted, /^every replica's WAL head is uncertain/);
                assert.equal(report.halted.match(/zone wal slot \d+ faulty/g)?.length,
                    3 - report.refusals.length, report.halted);
            } else {
                assert(report.check.reads_checked > 0);
            }
        });
}
