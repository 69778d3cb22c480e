// Types shared by the Mbus nodes: the config node as its users see it.
import { BusConfigNode, BusUser, isBusConfigNode } from '../lib/config-node';
import type { Entity, RpcCall, RpcEndpoint, RpcReply, MbusCredentials } from '../../src/mbus';

/** A node that uses the entity; serving mbus-rpc nodes also declare procedures. */
export interface MbusUser extends BusUser {
  procedures?(): string[];
  serve?(call: RpcCall, handle: string): void;
}

export interface MbusConfigNode extends BusConfigNode<MbusUser, MbusCredentials> {
  entity?: Entity;
  rpc?: RpcEndpoint;
  configError?: Error;
  /** No hash key configured: the public RFC/UCL example key is in use. */
  exampleKey?: boolean;
  /** Why the last start failed (in the runtime's language), while the entity is retrying. */
  startFailure?: string;
  /** Sends the return of a served call; false when the handle is unknown or expired. */
  replyTo(handle: string, reply: RpcReply): Promise<boolean>;
}

export function isMbusConfigNode(node: unknown): node is MbusConfigNode {
  return isBusConfigNode(node, 'mbus-config');
}
