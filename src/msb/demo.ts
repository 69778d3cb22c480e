// The integration flows the bundled MSB examples expect: load them into the emulator (`--demo`, or `demoFlows`).
import type { IntegrationFlow } from './emulator';
import flows from './demo-flows.json';

/** Routes for examples/msb: sensor TEMPERATURE -> controller CHECK_TEMPERATURE, controller CHECKED -> sensor RESULT. */
export const demoFlows: IntegrationFlow[] = flows;
