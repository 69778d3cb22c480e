// The Secure Gateway (sgframework) core without Node-RED: plan compiler, Python value formatting, connection.
export * from './plan';
export * from './python';
export * from './connection';
