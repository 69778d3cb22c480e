// The package's `main`: every protocol core, usable without Node-RED, one namespace per bus.
export * as msb from './msb';
export * as sg from './sg';
export * as mbus from './mbus';
export * as apigear from './apigear';
export * as mqtt from './mqtt';
export { ConnectionPool } from './common/pool';
export type { PoolUser, PoolHooks } from './common/pool';
