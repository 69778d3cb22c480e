// What the MSB node adapters share: the editor properties -> declaration mapping and the config node's user contract.
import type {
  DataFormatDeclaration,
  EventDeclaration,
  FunctionDeclaration,
  SimpleType,
} from '../../src/msb/selfdescription';
import { isSimpleType } from '../../src/msb/selfdescription';
import type { ConfigurationChange, FunctionCall, PublishOutcome, PublishRequest } from '../../src/msb/client';
import { BusConfigNode, BusUser, isBusConfigNode } from '../lib/config-node';

/** The editor properties that describe a payload (msb-event-out and msb-function-in). */
export interface DataFormatProps {
  /** `none`, a simple type, or `complex` (JSON schema in `schema`). */
  dataType?: string;
  isArray?: boolean;
  schema?: string;
}

export function dataFormatFromProps(props: DataFormatProps): DataFormatDeclaration {
  const type = props.dataType ?? 'string';
  if (type === 'none') return { kind: 'none' };
  if (type === 'complex') return { kind: 'complex', schema: props.schema ?? '', isArray: props.isArray === true };
  if (isSimpleType(type)) return { kind: 'simple', type: type, isArray: props.isArray === true };
  return { kind: 'simple', type: type as SimpleType }; // the compiler names the bad type
}

/** A node using an msb-config: declares one event or one function (or only listens to configuration changes). */
export interface MsbUser extends BusUser {
  readonly event?: EventDeclaration;
  readonly function?: FunctionDeclaration;
  onCall?(call: FunctionCall): void;
  onConfiguration?(change: ConfigurationChange): void;
}

/** The msb-config runtime node as its users see it. */
export interface MsbConfigNode extends BusConfigNode<MsbUser> {
  /** Resolves once the MSB acknowledged the event or it is held in the event cache; rejects when it failed. */
  publish(req: PublishRequest): Promise<PublishOutcome>;
  /** Current configuration parameter values (declared, overridden by the MSB's K messages). */
  readonly parameters: Record<string, unknown>;
}

export function isMsbConfigNode(node: unknown): node is MsbConfigNode {
  return isBusConfigNode(node, 'msb-config');
}
