// Public entry point of the ringledger package.
export { Arena } from './io/arena';
export type { Engine, EngineKind, EngineOptions, IoCompletionTarget } from './io/engine';
export { IoError } from './io/errors';
// The client: the same API as tigerbeetle-node 0.17.9 (createClient, id, flags, statuses, ...).
export * from './client/index';
