// msb-event-out: declares one event of its msb-config's service and publishes msg.payload as that event.
import type { NodeStatus } from '../lib/status';
import { parsePostDate, parsePriority } from '../../src/msb/client';
import { EventTemplate } from '../../src/msb/event-message';
import { compileDataFormat, DataFormat, EventDeclaration } from '../../src/msb/selfdescription';
import { PayloadValidator, validatorFor, wireConverter } from '../../src/msb/validate';
import { dataFormatFromProps, DataFormatProps, isMsbConfigNode, MsbConfigNode, MsbUser } from './msb-api';
import { asError, configNode, DoneFunction, Node, NodeAPI, NodeDef, NodeMessage, SendFunction } from '../lib/red';

interface EventOutDef extends NodeDef, DataFormatProps {
  service?: string;
  eventId?: string;
  description?: string;
  priority?: string;
  cached?: boolean;
}

export = function (RED: NodeAPI) {
  RED.nodes.registerType('msb-event-out', function (this: Node, def: EventOutDef) {
    RED.nodes.createNode(this, def);
    const node = this;
    const service = configNode(RED, def.service, isMsbConfigNode);
    const eventId = String(def.eventId ?? '').trim();
    const defaultPriority = parsePriority(def.priority ?? 'LOW') ?? 0;
    const defaultCached = def.cached === true;
    if (!service) {
      node.status({ fill: 'red', shape: 'ring', text: 'msb.status.noService' });
      node.on('input', (_msg: NodeMessage, _send: SendFunction, done: DoneFunction) =>
        done(new Error(RED._('msb-event-out.error.noService'))),
      );
      return;
    }
    const config: MsbConfigNode = service;
    let format: DataFormat | undefined;
    let validate: PayloadValidator | undefined;
    let declaration: EventDeclaration | undefined;
    let definitionError: string | undefined;
    try {
      if (!eventId) throw new Error(RED._('msb-event-out.error.noEventId'));
      declaration = {
        eventId,
        name: def.name || undefined,
        description: def.description ?? '',
        dataFormat: dataFormatFromProps(def),
      };
      format = compileDataFormat(declaration.dataFormat, `events[${eventId}].dataFormat`);
      validate = format ? validatorFor(format) : undefined;
    } catch (err) {
      definitionError = asError(err).message;
      node.error(definitionError);
      node.status({ fill: 'red', shape: 'ring', text: 'msb.status.invalid' });
    }

    // eventId and the priorities serialised once; each msg adds only its date, payload and correlationId.
    const template = new EventTemplate(eventId);
    const toWire = wireConverter(format);
    const user: MsbUser = { id: node.id, event: declaration, status: (s: NodeStatus) => node.status(s) };
    if (!definitionError) config.register(user);

    node.on('input', (msg: NodeMessage, _send: SendFunction, done: DoneFunction) => {
      if (definitionError) {
        done(new Error(definitionError));
        return;
      }
      const priority = msg.priority === undefined ? defaultPriority : parsePriority(msg.priority);
      if (priority === undefined) {
        done(new Error(RED._('msb-event-out.error.priority', { value: JSON.stringify(msg.priority) })));
        return;
      }
      // Absent: the client stamps it when it builds the message (formatted once per millisecond).
      const postDate = msg.postDate === undefined ? undefined : parsePostDate(msg.postDate);
      if (postDate === undefined && msg.postDate !== undefined) {
        done(new Error(RED._('msb-event-out.error.postDate', { value: JSON.stringify(msg.postDate) })));
        return;
      }
      if (msg.cached !== undefined && typeof msg.cached !== 'boolean') {
        done(new Error(RED._('msb-event-out.error.cached')));
        return;
      }
      let dataObject: unknown;
      if (format) {
        dataObject = toWire(msg.payload);
        const invalid = validate?.(dataObject);
        if (invalid) {
          done(new Error(`${eventId}: ${invalid.message}`));
          return;
        }
      }
      const correlationId =
        typeof msg.correlationId === 'string' || typeof msg.correlationId === 'number'
          ? String(msg.correlationId)
          : undefined;
      // done() only once the event is acknowledged by the MSB or held in the event cache (on disk when durable),
      // done(err) when it failed: the callback is done itself, no promise and no closure per msg.
      config.publishEvent(
        template,
        { dataObject, priority, postDate, correlationId, cached: msg.cached ?? defaultCached },
        done,
      );
    });

    node.on('close', (removed: boolean, done: () => void) => {
      if (definitionError) {
        done();
        return;
      }
      // A failed deregistration is reported, not swallowed; done() either way.
      config.deregister(user, removed).then(done, (err: unknown) => {
        node.error(asError(err).message);
        done();
      });
    });
  });
};
