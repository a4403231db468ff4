// Checksum throughput for each implementation at message-sized and block-sized inputs, next to
// Node's SHA-256 on the same bytes as a familiar baseline. Run: node dist/bench/checksum.js
import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
    checksum,
    checksum_aes_ni_supported,
    checksum_select,
    ChecksumImplementation,
} from '../lib/vsr/checksum';

const sizes_bytes: readonly number[] = [256, 4096, 1 << 20];
const measure_duration_ns = 300_000_000n;
const batch_bytes = 1 << 22;
const bytes_per_gib = 1024 ** 3;

// Calls run() in batches of about 4 MiB until the duration has passed; returns GiB/s.
function throughput_gib_per_second(size_bytes: number, run: () => void): number {
    const batch_count = Math.max(1, Math.floor(batch_bytes / size_bytes));
    for (let i = 0; i < batch_count; i++) run(); // Warm up the JIT and the caches.
    let calls = 0;
    const start = process.hrtime.bigint();
    let elapsed_ns = 0n;
    for (let batch = 0; batch < 1_000_000 && elapsed_ns < measure_duration_ns; batch++) {
        for (let i = 0; i < batch_count; i++) run();
        calls += batch_count;
        elapsed_ns = process.hrtime.bigint() - start;
    }
    assert.ok(calls > 0 && elapsed_ns > 0n);
    return (calls * size_bytes) / bytes_per_gib / (Number(elapsed_ns) / 1e9);
}

function main(): void {
    const source = new Uint8Array((1 << 20) + 64);
    crypto.randomFillSync(source);
    const target = new Uint8Array(16);
    const implementations: ChecksumImplementation[] = checksum_aes_ni_supported()
        ? ['aes-ni', 'portable']
        : ['portable'];
    console.log('size_bytes  implementation  GiB/s    sha256 GiB/s  ratio');
    for (const size_bytes of sizes_bytes) {
        const view = source.subarray(0, size_bytes);
        const sha256 = throughput_gib_per_second(size_bytes, () => {
            crypto.createHash('sha256').update(view).digest();
        });
        for (const name of implementations) {
            checksum_select(name);
            const aegis = throughput_gib_per_second(size_bytes, () => {
                checksum(source, 0, size_bytes, target, 0);
            });
            console.log(
                `${String(size_bytes).padStart(10)}  ${name.padEnd(14)}  ` +
                    `${aegis.toFixed(3).padStart(7)}  ${sha256.toFixed(3).padStart(12)}  ` +
                    `${(aegis / sha256).toFixed(1).padStart(5)}x`,
            );
        }
    }
    checksum_select('auto');
}

main();
