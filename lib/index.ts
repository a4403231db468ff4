// Public entry point of the ringledger package.
export { Arena } from './io/arena';
export type { Engine, EngineKind, EngineOptions, IoCompletionTarget } from './io/engine';
export { IoError } from './io/errors';
