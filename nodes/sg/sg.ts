// The Secure Gateway node set: sg-broker, sg-resource, sg-app (one palette entry per bus; type names never change).
import type { NodeAPI } from '../lib/red';
import sgBroker = require('./sg-broker');
import sgResource = require('./sg-resource');
import sgApp = require('./sg-app');

export = function (RED: NodeAPI): void {
  sgBroker(RED);
  sgResource(RED);
  sgApp(RED);
};
