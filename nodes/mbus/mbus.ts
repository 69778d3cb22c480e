// The Mbus node set: mbus-config, mbus-entity, mbus-rpc (one palette entry per bus; type names never change).
import type { NodeAPI } from '../lib/red';
import mbusConfig = require('./mbus-config');
import mbusEntity = require('./mbus-entity');
import mbusRpc = require('./mbus-rpc');

export = function (RED: NodeAPI): void {
  mbusConfig(RED);
  mbusEntity(RED);
  mbusRpc(RED);
};
