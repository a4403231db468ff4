// The package's ES module entry (`import { createClient } from 'ringledger'`): the same module
// instance as the CommonJS entry, re-exported, so a program that mixes import and require shares
// one client registry and one loaded addon.
export * from './index.js';
