// The sg plan compiler: from the declarations of every node sharing one resource/app name to the MQTT artefacts of
// sgframework 0.2.3 — client id, last will, subscriptions in registration order, and the startup publications.
import { pythonStrip } from './python';

export type SgQos = 0 | 1 | 2;

export const PAYLOAD_TRUE = 'True';
export const PAYLOAD_FALSE = 'False';

export type MessageType = 'command' | 'data' | 'commandavailable' | 'dataavailable' | 'resourceavailable';
export type AvailabilityPrefix = 'commandavailable' | 'dataavailable' | 'resourceavailable';
export const AVAILABILITY_PREFIXES: readonly AvailabilityPrefix[] = [
  'commandavailable',
  'dataavailable',
  'resourceavailable',
];

/** sgframework `register_incoming_command`. */
export interface CommandDeclaration {
  signal: string;
  echo: boolean;
  /** `send_echo_as_retained` */
  echoRetained: boolean;
  /** Sent at every connect (after echo availability) when echo is on; null = none. */
  defaultValue: string | null;
  /** `callback_on_change_only` */
  changeOnly: boolean;
  /** Echo the flow's answer instead of the stripped command payload. */
  echoAnswer?: boolean;
  /** Milliseconds to wait for the flow's answer. */
  answerTimeout?: number;
}

/** sgframework `register_outgoing_data`. */
export interface DataDeclaration {
  signal: string;
  defaultValue: string | null;
  /** `send_data_as_retained` */
  retained: boolean;
}

/** sgframework `register_incoming_data` / `register_incoming_availability`. */
export type SubscriptionDeclaration =
  | { kind: 'data'; service: string; signal: string; changeOnly: boolean }
  | { kind: 'availability'; prefix: AvailabilityPrefix; service: string; signal: string };

/** What one node declares. Resources publish presence and availability; apps only listen and send commands. */
export interface SgDeclaration {
  owner: string;
  role: 'resource' | 'app';
  commands?: CommandDeclaration[];
  data?: DataDeclaration[];
  subscriptions?: SubscriptionDeclaration[];
}

export type InputKind = 'command' | 'data' | 'availability';

export interface InputEntry {
  topic: string;
  kind: InputKind;
  messagetype: MessageType;
  service: string;
  signal: string;
  echo: boolean;
  echoRetained: boolean;
  echoAnswer: boolean;
  answerTimeout: number;
  changeOnly: boolean;
  defaultValue: string | null;
  owners: string[];
}

export interface OutputEntry {
  topic: string;
  signal: string;
  retained: boolean;
  defaultValue: string | null;
  owners: string[];
}

export interface SgPlan {
  name: string;
  /** True when any declaring node is a resource: last will, presence and availability are then published. */
  resource: boolean;
  /** In registration order; one SUBSCRIBE each. */
  inputs: InputEntry[];
  outputs: OutputEntry[];
  /** Declarations that were skipped or merged with a conflict, in words a user can act on. */
  warnings: string[];
  /** The same warnings, one for one, as catalog keys and arguments, so an editor can show them in its language. */
  issues: PlanIssue[];
}

export interface PlanIssue {
  key: string;
  args: Record<string, string>;
}

export interface Publication {
  topic: string;
  payload: string;
  qos: SgQos;
  retain: boolean;
}

export const DEFAULT_ANSWER_TIMEOUT = 1000;

/** Why a resource/service/signal name cannot be used, or undefined. Names are Python-stripped first. */
export function nameProblem(name: string, what: string): string | undefined {
  if (name.length === 0) return `${what} is empty`;
  if (/[/+#]/.test(name)) return `${what} "${name}" contains "/", "+" or "#", which would change the topic structure`;
  if (name.includes('\u0000')) return `${what} "${name}" contains a NUL character`;
  return undefined;
}

export function topicOf(messagetype: MessageType, service: string, signal: string): string {
  return `${messagetype}/${service}/${signal}`;
}

export function presenceTopic(name: string): string {
  return topicOf('resourceavailable', name, 'presence');
}

/** sgframework's client id: `<name>-<pid>` with a clean session, `<name>` with a persistent one. */
export function clientIdFor(name: string, clean: boolean, pid: number = process.pid): string {
  return clean ? `${name}-${pid}` : name;
}

/** The last will of a resource; apps have none. */
export function willFor(plan: SgPlan, qos: SgQos): Publication | undefined {
  return plan.resource ? { topic: presenceTopic(plan.name), payload: PAYLOAD_FALSE, qos, retain: true } : undefined;
}

/** What a clean stop publishes before DISCONNECT (QoS 1 regardless of the configured QoS, as sgframework does). */
export function stopPublication(plan: SgPlan): Publication | undefined {
  return plan.resource ? { topic: presenceTopic(plan.name), payload: PAYLOAD_FALSE, qos: 1, retain: true } : undefined;
}

function sameSettings(a: InputEntry, b: InputEntry): boolean {
  return (
    a.kind === b.kind &&
    a.echo === b.echo &&
    a.echoRetained === b.echoRetained &&
    a.echoAnswer === b.echoAnswer &&
    a.changeOnly === b.changeOnly &&
    a.defaultValue === b.defaultValue
  );
}

/** Merges the declarations of every node using one name into one plan (later registrations overwrite in place). */
export function compilePlan(rawName: string, declarations: SgDeclaration[]): SgPlan {
  const name = pythonStrip(rawName);
  const warnings: string[] = [];
  const issues: PlanIssue[] = [];
  const plan: SgPlan = { name, resource: false, inputs: [], outputs: [], warnings, issues };
  const warn = (text: string, key: string, args: Record<string, string>): void => {
    warnings.push(text);
    issues.push({ key, args });
  };
  const nameIssue = nameProblem(name, 'name');
  if (nameIssue) {
    warn(nameIssue, name ? 'name-bad' : 'name-empty', { name });
    return plan;
  }
  const inputs = new Map<string, InputEntry>();
  const outputs = new Map<string, OutputEntry>();

  const addInput = (entry: InputEntry): void => {
    const existing = inputs.get(entry.topic);
    if (!existing) {
      inputs.set(entry.topic, entry);
      plan.inputs.push(entry);
      return;
    }
    if (!sameSettings(existing, entry))
      warn(`${entry.topic} is declared twice with different settings; the later declaration wins`, 'twice', {
        topic: entry.topic,
      });
    const [owner] = entry.owners;
    const owners =
      owner !== undefined && existing.owners.includes(owner) ? existing.owners : [...existing.owners, ...entry.owners];
    Object.assign(existing, entry, { owners });
  };

  for (const decl of declarations) {
    if (decl.role === 'resource') plan.resource = true;
    for (const raw of decl.data ?? []) {
      const signal = pythonStrip(raw.signal);
      const issue = nameProblem(signal, 'data signal');
      if (issue) {
        warn(`${issue}; skipped`, 'data-bad', { signal });
        continue;
      }
      const topic = topicOf('data', name, signal);
      const existing = outputs.get(topic);
      const entry: OutputEntry = {
        topic,
        signal,
        retained: raw.retained,
        defaultValue: raw.defaultValue,
        owners: [decl.owner],
      };
      if (!existing) {
        outputs.set(topic, entry);
        plan.outputs.push(entry);
      } else {
        if (existing.retained !== entry.retained || existing.defaultValue !== entry.defaultValue) {
          warn(`${topic} is declared twice with different settings; the later declaration wins`, 'twice', { topic });
        }
        Object.assign(existing, entry, {
          owners: existing.owners.includes(decl.owner) ? existing.owners : [...existing.owners, decl.owner],
        });
      }
    }
    for (const raw of decl.commands ?? []) {
      const signal = pythonStrip(raw.signal);
      const issue = nameProblem(signal, 'command signal');
      if (issue) {
        warn(`${issue}; skipped`, 'command-bad', { signal });
        continue;
      }
      addInput({
        topic: topicOf('command', name, signal),
        kind: 'command',
        messagetype: 'command',
        service: name,
        signal,
        echo: raw.echo,
        echoRetained: raw.echoRetained,
        echoAnswer: raw.echo && raw.echoAnswer === true,
        answerTimeout: raw.answerTimeout && raw.answerTimeout > 0 ? raw.answerTimeout : DEFAULT_ANSWER_TIMEOUT,
        changeOnly: raw.changeOnly,
        defaultValue: raw.defaultValue,
        owners: [decl.owner],
      });
    }
    for (const sub of decl.subscriptions ?? []) {
      const service = pythonStrip(sub.service);
      // sgframework replaces the signal of a resourceavailable registration with "presence".
      const signal =
        sub.kind === 'availability' && sub.prefix === 'resourceavailable' ? 'presence' : pythonStrip(sub.signal);
      const issue = nameProblem(service, 'service') ?? nameProblem(signal, 'signal');
      if (issue) {
        warn(`${issue}; subscription skipped`, 'subscription-bad', { service, signal });
        continue;
      }
      if (sub.kind === 'availability' && !AVAILABILITY_PREFIXES.includes(sub.prefix)) {
        warn(
          `availability prefix "${String(sub.prefix)}" must be one of ${AVAILABILITY_PREFIXES.join(', ')}; subscription skipped`,
          'prefix-bad',
          { prefix: String(sub.prefix) },
        );
        continue;
      }
      const messagetype: MessageType = sub.kind === 'data' ? 'data' : sub.prefix;
      addInput({
        topic: topicOf(messagetype, service, signal),
        kind: sub.kind,
        messagetype,
        service,
        signal,
        echo: false,
        echoRetained: false,
        echoAnswer: false,
        answerTimeout: DEFAULT_ANSWER_TIMEOUT,
        changeOnly: sub.kind === 'data' ? sub.changeOnly : false,
        defaultValue: null,
        owners: [decl.owner],
      });
    }
  }
  for (const input of plan.inputs) {
    if (input.kind === 'command' && input.echo && outputs.has(topicOf('data', name, input.signal))) {
      const topic = topicOf('data', name, input.signal);
      warn(
        `${topic} is both an echoed command and a data signal; sgframework peers expect one or the other`,
        'echo-and-data',
        { topic },
      );
    }
  }
  return plan;
}

/** Topics to subscribe on every connect, in registration order. */
export function subscriptionsOf(plan: SgPlan): string[] {
  return plan.inputs.map((input) => input.topic);
}

/**
 * sgframework's `_publish_capablities_and_defaultvalues` (spec §4.2): presence, then per data signal its
 * availability and default, then per command its availability and, with echo, the echo's availability and default.
 * `current` gives the latest value that replaces a configured default after a send or an echo.
 */
export function startupSequence(
  plan: SgPlan,
  qos: SgQos,
  current: (topic: string, registeredDefault: string) => string | undefined = () => undefined,
): Publication[] {
  if (!plan.resource) return [];
  const out: Publication[] = [{ topic: presenceTopic(plan.name), payload: PAYLOAD_TRUE, qos, retain: true }];
  const valueOf = (topic: string, registered: string): string => current(topic, registered) ?? registered;
  for (const data of plan.outputs) {
    out.push({ topic: topicOf('dataavailable', plan.name, data.signal), payload: PAYLOAD_TRUE, qos, retain: true });
    if (data.defaultValue !== null)
      out.push({ topic: data.topic, payload: valueOf(data.topic, data.defaultValue), qos, retain: data.retained });
  }
  for (const command of plan.inputs) {
    if (command.kind !== 'command') continue;
    out.push({
      topic: topicOf('commandavailable', plan.name, command.signal),
      payload: PAYLOAD_TRUE,
      qos,
      retain: true,
    });
    if (!command.echo) continue;
    out.push({ topic: topicOf('dataavailable', plan.name, command.signal), payload: PAYLOAD_TRUE, qos, retain: true });
    if (command.defaultValue !== null) {
      const topic = topicOf('data', plan.name, command.signal);
      out.push({ topic, payload: valueOf(topic, command.defaultValue), qos, retain: command.echoRetained });
    }
  }
  return out;
}

/** A one-line-per-artefact description of a plan, for the editor and logs. */
export function describePlan(plan: SgPlan, qos: SgQos, clean: boolean): string[] {
  const lines = [`client id: ${clientIdFor(plan.name, clean, 0).replace(/-0$/, '-<pid>')}`];
  const will = willFor(plan, qos);
  lines.push(will ? `will: ${will.topic} = ${will.payload} (QoS ${will.qos}, retained)` : 'will: none');
  for (const topic of subscriptionsOf(plan)) lines.push(`SUBSCRIBE ${topic} (QoS ${qos})`);
  for (const p of startupSequence(plan, qos))
    lines.push(`PUBLISH ${p.topic} = ${p.payload} (QoS ${p.qos}${p.retain ? ', retained' : ''})`);
  return lines;
}
