// MQTT plumbing shared by the sg and ApiGear nodes: the embedded broker and connection-settings resolution.
export * from './embedded-broker';
export * from './endpoint';
