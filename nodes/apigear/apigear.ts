// The ApiGear node set: apigear-service, apigear-client (one palette entry per bus; type names never change).
import type { NodeAPI } from '../lib/red';
import apigearService = require('./apigear-service');
import apigearClient = require('./apigear-client');

export = function (RED: NodeAPI): void {
  apigearService(RED);
  apigearClient(RED);
};
