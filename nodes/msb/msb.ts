// The MSB node set: msb-config, msb-event-out, msb-function-in (one palette entry per bus; type names never change).
import type { NodeAPI } from '../lib/red';
import msbConfig = require('./msb-config');
import msbEventOut = require('./msb-event-out');
import msbFunctionIn = require('./msb-function-in');

export = function (RED: NodeAPI): void {
  msbConfig(RED);
  msbEventOut(RED);
  msbFunctionIn(RED);
};
