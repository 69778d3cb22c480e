// What a managed MQTT connection reports about itself: a phase and, when it is not connected, the reason as data.
// nodes/ turns these into status dots and catalog text; nothing here knows about Node-RED.

import type { ConnectionState as BusConnectionState } from '../common/connection-state';

export type { ConnectionPhase } from '../common/connection-state';

/**
 * Why a connection is not up. `waiting` phases retry by themselves; `failed` ones (a configuration that cannot be
 * honoured, e.g. a TLS reference that does not resolve) do not, because retrying would not change the outcome.
 */
export type ConnectionReason =
  | 'unreachable' // TCP/TLS connect failed (refused, host unknown, timeout)
  | 'lost' // an established connection dropped (network loss, broker stopped, keepalive expired)
  | 'refused-protocol' // CONNACK 1 / 0x84
  | 'refused-client-id' // CONNACK 2 / 0x85
  | 'refused-unavailable' // CONNACK 3 / 0x88 / 0x89
  | 'refused-credentials' // CONNACK 4 / 0x86
  | 'refused-not-authorized' // CONNACK 5 / 0x87 / 0x8A banned
  | 'refused' // any other refusal (code in `code`)
  | 'taken-over' // the broker handed our client id to another connection
  | 'closed-early' // the broker closed a connection it had just accepted (v3: usually a client id in use elsewhere)
  | 'port-in-use' // the embedded broker's port is held by another program (port in `code`)
  | 'broker' // the broker endpoint could not be provided for another reason
  | 'config'; // the settings cannot be honoured (permanent until the next deploy)

/** The common connection state (src/common/connection-state.ts) with the MQTT reasons; `code` is a reason code. */
export type ConnectionState = BusConnectionState<ConnectionReason> & { code?: number };

/** The reasons a broker endpoint provider may name on its error (`reason`, and `code`), e.g. the embedded broker. */
export const ENDPOINT_REASONS: readonly ConnectionReason[] = ['port-in-use', 'broker'];

/** An error whose connection cannot succeed until the configuration changes: no retry. */
export class ConfigurationError extends Error {
  readonly permanent = true;
}

/** The reason for a CONNACK refusal, from its v3 return code (1..5) or v5 reason code (>= 0x80); they do not overlap. */
export function refusalReason(code: number): ConnectionReason {
  switch (code) {
    case 1:
    case 0x84:
      return 'refused-protocol';
    case 2:
    case 0x85:
      return 'refused-client-id';
    case 3:
    case 0x88:
    case 0x89:
      return 'refused-unavailable';
    case 4:
    case 0x86:
      return 'refused-credentials';
    case 5:
    case 0x87:
    case 0x8a:
      return 'refused-not-authorized';
    default:
      return 'refused';
  }
}

/** MQTT 5 DISCONNECT reason code: another connection took over the session (same client id). */
export const SESSION_TAKEN_OVER = 0x8e;
