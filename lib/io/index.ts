// Engine construction: one place that maps an EngineKind to its implementation, so callers (the
// server, tests, benchmarks) never import an engine class directly.
import type { Engine, EngineKind, EngineOptions } from './engine';
import { LibuvEngine } from './libuv_engine';
import { UringEngine } from './uring_engine';

export type { Engine, EngineKind, EngineOptions } from './engine';

export const engine_kinds: readonly EngineKind[] = ['io_uring', 'libuv'];

/** Builds the engine of `kind`; io_uring throws a ProbeError naming the cause when unavailable. */
export function create_engine(kind: EngineKind, options: EngineOptions): Engine {
    switch (kind) {
        case 'io_uring':
            return new UringEngine(options);
        case 'libuv':
            return new LibuvEngine(options);
    }
}
