// Flexible quorums (docs/vsr.md §1, internals.md §9). Replication happens on every op and a view
// change rarely, so the replication quorum is kept small (the primary waits for the fastest
// backups) and the view-change quorum is made large enough to intersect every replication quorum:
// quorum_replication + quorum_view_change > replica_count. A nack quorum proves an op was never
// committed: with that many replicas denying it, fewer than quorum_replication can hold it.
import assert from 'node:assert/strict';

import { replicas_max } from './constants';

/** Replication quorum, counting the primary. */
export function quorum_replication(replica_count: number): number {
    assert(Number.isInteger(replica_count));
    assert(replica_count >= 1 && replica_count <= replicas_max);
    // Two replicas replicate to both: one copy would be lost with either disk.
    const quorum = replica_count === 2 ? 2 : Math.min(3, Math.ceil(replica_count / 2));
    assert(quorum >= 1 && quorum <= replica_count);
    return quorum;
}

/** View-change quorum: intersects every replication quorum (of any earlier view). */
export function quorum_view_change(replica_count: number): number {
    const replication = quorum_replication(replica_count);
    // Two replicas: both, so that a view change never happens on one replica's word alone.
    const quorum = replica_count === 2 ? 2 : replica_count - replication + 1;
    assert(quorum >= 1 && quorum <= replica_count);
    assert(quorum + replication > replica_count, 'view change must intersect replication');
    // A view change hears at least as many replicas as any op was replicated to.
    assert(quorum >= replication);
    return quorum;
}

/** Replicas that must deny an op (never prepared it) before a view change may drop it. */
export function quorum_nack_prepare(replica_count: number): number {
    const quorum = replica_count - quorum_replication(replica_count) + 1;
    assert(quorum >= 1 && quorum <= replica_count);
    // Any nack quorum and any replication quorum share a replica.
    assert(quorum + quorum_replication(replica_count) > replica_count);
    // A view-change quorum can always gather enough denials.
    assert(quorum <= quorum_view_change(replica_count));
    return quorum;
}

// The table of internals.md §9, checked once at load for every replica count.
const expected = [
    // replicas, replication, view change, nack
    [1, 1, 1, 1], [2, 2, 2, 1], [3, 2, 2, 2], [4, 2, 3, 3], [5, 3, 3, 3], [6, 3, 4, 4],
] as const;
assert.equal(expected.length, replicas_max);
for (const [replicas, replication, view_change, nack] of expected) {
    assert.equal(quorum_replication(replicas), replication);
    assert.equal(quorum_view_change(replicas), view_change);
    assert.equal(quorum_nack_prepare(replicas), nack);
}
