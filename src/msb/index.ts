// The MSB protocol core, usable without Node-RED: client, self-description compiler, validators, emulator.
export * from './framing';
export * from './event-message';
export * from './selfdescription';
export * from './validate';
export * from './client';
export * from './emulator';
export * from './demo';
