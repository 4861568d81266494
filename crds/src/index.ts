export * from './meta.js';
export * from './modelroute.js';
export * from './budget.js';
export * from './secret.js';
export * from './snapshot.js';
export * from './documents.js';
export * from './protocol.js';
export * from './catalog.js';
