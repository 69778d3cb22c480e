// msb-function-in: declares one function of its msb-config's service and emits a msg for every call of it (or, in
// configuration mode, a msg with the service's configuration parameters at deploy and on every change).
import type { NodeStatus } from '../lib/status';
import type { ConfigurationChange, FunctionCall } from '../../src/msb/client';
import { compileDataFormat, FunctionDeclaration } from '../../src/msb/selfdescription';
import { PayloadValidator, validatorFor } from '../../src/msb/validate';
import { dataFormatFromProps, DataFormatProps, isMsbConfigNode, MsbConfigNode, MsbUser } from './msb-api';
import { closeWith } from '../lib/errors';
import { asError, configNode, Node, NodeAPI, NodeDef, NodeMessage } from '../lib/red';

interface FunctionInDef extends NodeDef, DataFormatProps {
  service?: string;
  mode?: 'function' | 'configuration';
  functionId?: string;
  description?: string;
  responseEvents?: string[];
  validateCalls?: boolean;
}

export = function (RED: NodeAPI) {
  RED.nodes.registerType('msb-function-in', function (this: Node, def: FunctionInDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const service = configNode(RED, def.service, isMsbConfigNode);
    if (!service) {
      node.status({ fill: 'red', shape: 'ring', text: 'msb.status.noService' });
      return;
    }
    const config: MsbConfigNode = service;
    const user: MsbUser & { function?: FunctionDeclaration } = {
      id: node.id,
      status: (s: NodeStatus) => node.status(s),
    };

    if (def.mode === 'configuration') {
      user.onConfiguration = (change: ConfigurationChange) => {
        node.send({ topic: 'configuration', payload: change.parameters, changed: change.changed });
      };
    } else {
      const functionId = String(def.functionId ?? '').trim();
      let validate: PayloadValidator | undefined;
      try {
        if (!functionId) throw new Error(RED._('msb-function-in.error.noFunctionId'));
        user.function = {
          functionId,
          name: def.name || undefined,
          description: def.description ?? '',
          dataFormat: dataFormatFromProps(def),
          responseEvents: Array.isArray(def.responseEvents)
            ? def.responseEvents.map(String).filter((e) => e !== '')
            : [],
        };
        const format = compileDataFormat(user.function.dataFormat, `functions[${functionId}].dataFormat`);
        if (format && def.validateCalls === true) validate = validatorFor(format);
      } catch (err) {
        const message = asError(err).message;
        node.error(message);
        node.status({ fill: 'red', shape: 'ring', text: 'msb.status.invalid' });
        return;
      }
      user.onCall = (call: FunctionCall) => {
        const params = call.functionParameters;
        const hasDataObject = Object.prototype.hasOwnProperty.call(params, 'dataObject');
        const msg: NodeMessage = {
          topic: functionId,
          payload: hasDataObject ? params.dataObject : params,
          correlationId: call.correlationId,
          msbCall: call,
        };
        if (validate && hasDataObject) {
          const invalid = validate(params.dataObject);
          if (invalid) {
            node.error(`${functionId}: ${invalid.message}`, msg);
            return;
          }
        }
        node.send(msg);
      };
    }

    config.register(user);
    closeWith(node, (removed) => config.deregister(user, removed));
  });
};
