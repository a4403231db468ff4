// MessagePool: fixed buffers from the arena, reference counts, exhaustion, double-free and leak
// assertions, and no allocation after startup (the arena is sealed).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Arena } from '../lib/io/arena';
import { MessagePool } from '../lib/vsr/message_pool';

test('message pool: acquire until exhausted, ref/unref, reuse', () => {
    const arena = new Arena(16 * 8192);
    const pool = new MessagePool(arena, 4, 8192);
    arena.seal();
    assert.equal(pool.free, 4);
    const taken = [pool.acquire(), pool.acquire(), pool.acquire(), pool.acquire()];
    assert.deepEqual(taken, [0, 1, 2, 3]);
    assert.equal(pool.acquire(), -1, 'exhausted pool answers -1, never allocates');
    assert.equal(pool.used_max, 4);
    // Buffers are disjoint, sector aligned and sized message_size_max.
    for (let index = 0; index < 4; index++) {
        assert.equal(pool.offset(index) % 4096, 0);
        assert.equal(pool.buffers[index]!.length, 8192);
        assert.equal(pool.buffers[index]!.byteOffset, arena.bytes.byteOffset + pool.offset(index));
        if (index > 0) assert.ok(pool.offset(index) >= pool.offset(index - 1) + 8192);
    }
    pool.ref(2);
    assert.equal(pool.references_of(2), 2);
    pool.unref(2);
    assert.equal(pool.free, 0, 'still referenced once');
    pool.unref(2);
    assert.equal(pool.free, 1);
    assert.equal(pool.acquire(), 2, 'a freed message is reused');
    for (const index of taken) pool.unref(index);
    pool.assert_no_leaks();
});

test('message pool: double free, ref of a free message and leaks are assertion failures', () => {
    const arena = new Arena(4 * 4096);
    const pool = new MessagePool(arena, 2, 4096);
    const index = pool.acquire();
    assert.throws(() => pool.assert_no_leaks(), /leaked/);
    pool.unref(index);
    assert.throws(() => pool.unref(index), /double free/);
    assert.throws(() => pool.ref(index), /ref of a free message/);
    assert.throws(() => pool.ref(7));
    pool.assert_no_leaks();
});

test('message pool: listener hears each release; sizes are validated at startup', () => {
    const arena = new Arena(8 * 4096);
    const pool = new MessagePool(arena, 2, 4096);
    let released = 0;
    pool.listener_set({ message_available: () => { released += 1; } });
    assert.throws(() => pool.listener_set({ message_available: () => {} }), /one listener/);
    const first = pool.acquire();
    pool.ref(first);
    pool.unref(first);
    assert.equal(released, 0);
    pool.unref(first);
    assert.equal(released, 1);
    arena.seal();
    assert.throws(() => new MessagePool(arena, 1, 4096), /after seal/);
    assert.throws(() => new MessagePool(new Arena(4096), 1, 100));
    assert.throws(() => new MessagePool(new Arena(4096), 2, 4096), /out of memory/);
});
