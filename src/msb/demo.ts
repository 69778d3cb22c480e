// The integration flows the bundled MSB examples expect: load them into the emulator (`--demo`, or `demoFlows`).
import type { IntegrationFlow } from './emulator';
import flows from './demo-flows.json';

/** Routes for examples/msb: sensor TEMPERATURE -> controller CHECK_TEMPERATURE, controller CHECKED -> sensor RESULT. */
export const demoFlows: IntegrationFlow[] = flows;

/** The uuids the example services register with. */
export const DEMO_SENSOR_UUID = '5d0b7c1e-3a2f-4c6d-9e8b-1f2a3b4c5d01';
export const DEMO_CONTROLLER_UUID = '5d0b7c1e-3a2f-4c6d-9e8b-1f2a3b4c5d02';
