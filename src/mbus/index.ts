// Public surface of the Mbus core (RFC 3259 transport, guidelines RPC); no Node-RED imports below src/.
export * from './address';
export * from './codec';
export * from './security';
export * from './transport';
export * from './entity';
export * from './rpc';
export * from './settings';
export { desCbc } from './des';
