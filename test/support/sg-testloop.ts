// tests/test_framework_resource.py::testLoop of the sgframework: its data and command registrations, as observed in
// spec §4.2. The plan compiler test and the sg-resource node test both declare exactly this resource; each call
// returns fresh objects, so no test can see another's changes.
import type { CommandDeclaration, DataDeclaration } from '../../src/sg/plan';

export const testLoopData = (): DataDeclaration[] => [
  { signal: 'teststate3', defaultValue: null, retained: false },
  { signal: 'teststate4', defaultValue: '101', retained: false },
  { signal: 'teststate7', defaultValue: null, retained: true },
];

export const testLoopCommands = (): CommandDeclaration[] => [
  { signal: 'teststate2', echo: true, echoRetained: false, defaultValue: '222', changeOnly: true },
  { signal: 'teststate5', echo: true, echoRetained: false, defaultValue: null, changeOnly: false },
  { signal: 'teststate6', echo: false, echoRetained: false, defaultValue: '666', changeOnly: false },
];
