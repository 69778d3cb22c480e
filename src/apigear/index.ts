// ApiGear interface-over-MQTT v5: module IDL, compiled topic plan and validators, service and client adapters.
export * from './module';
export * from './plan';
export * from './service';
export * from './client';
export { decodeJson, encodeJson } from './wire';
