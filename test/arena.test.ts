// The arena: aligned, bounded, sealed after startup.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';

test('arena: slices are aligned and allocation stops at seal', () => {
    const arena = new Arena(64 * 4096);
    const a = arena.allocate(100);
    const b = arena.allocate(5000);
    const c = arena.allocate(16, 16);
    assert.equal(a, 0);
    assert.equal(b % 4096, 0);
    assert.ok(b >= 4096);
    assert.equal(c % 16, 0);
    assert.ok(c >= b + 5000);
    assert.throws(() => arena.allocate(64 * 4096), /out of memory at startup/);
    arena.seal();
    assert.throws(() => arena.allocate(16), /allocation after seal/);
});
