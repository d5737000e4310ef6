/**
 * Parlor browser SDK.
 *
 * ```js
 * import { ParlorEngine } from '/sdk/parlor.js';
 * const engine = new ParlorEngine(1, 'ws://127.0.0.1:7700/v1/ws');
 * engine.on('roomStateChanged', (roomID, reason, errorCode) => console.log(roomID, reason, errorCode));
 * await engine.loginRoom('r1', token, { userID: 'u1', userName: 'Alice' });
 * ```
 *
 * @packageDocumentation
 */
export * from './types.js';
export * from './backoff.js';
export * from './decode.js';
export * from './core.js';
export * from './api.js';
export * from './engine.js';
