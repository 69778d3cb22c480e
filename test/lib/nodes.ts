// The compiled node modules under test, typed for node-red-node-test-helper (whose Node-RED typings differ from ours).
import type { TestNodeInitializer } from 'node-red-node-test-helper';

export const sgBroker = require('../../nodes/sg/sg-broker') as TestNodeInitializer;

import helper from 'node-red-node-test-helper';

/** helper.load with plain flow objects (the helper's typings only allow the core NodeDef properties). */
export function load(nodes: TestNodeInitializer, flow: object[], credentials?: object): Promise<void> {
  return helper.load(
    nodes,
    flow as Parameters<typeof helper.load>[1],
    credentials as Parameters<typeof helper.load>[2],
  ) as unknown as Promise<void>;
}

export const sgResource = require('../../nodes/sg/sg-resource') as TestNodeInitializer;
export const sgApp = require('../../nodes/sg/sg-app') as TestNodeInitializer;
/** Every sg node type, for flows that use several of them. */
export const sgNodes = [sgBroker, sgResource, sgApp] as unknown as TestNodeInitializer;

/** Core Node-RED nodes the example flows use. */
export const coreInjectFunctionDebug = [
  require('@node-red/nodes/core/common/20-inject.js'),
  require('@node-red/nodes/core/function/10-function.js'),
  require('@node-red/nodes/core/common/21-debug.js'),
  require('@node-red/nodes/core/common/90-comment.js'),
] as TestNodeInitializer[];

export const coreTls = require('@node-red/nodes/core/network/05-tls.js') as TestNodeInitializer;
