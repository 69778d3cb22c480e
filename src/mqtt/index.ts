// MQTT plumbing shared by the sg and ApiGear nodes: the embedded broker, connection settings, the managed client.
export * from './embedded-broker';
export * from './endpoint';
export * from './connection-state';
export * from './managed-client';
export * from './client-ids';
