// What the broker says about sgframework resources: presence, availability of each command and data signal, latest
// data values — read from the retained availability topics and data, for the Busbar sidebar and the sg-app dialog.

export interface SeenSignal {
  available?: boolean;
  /** Latest data value as text (cut to MAX_VALUE_CHARS). */
  value?: string;
  at?: number;
}

export interface SeenResource {
  name: string;
  presence?: boolean;
  commands: Record<string, SeenSignal>;
  data: Record<string, SeenSignal>;
  lastHeard: number;
}

/** Topics the watch subscribes to. */
export const WATCH_TOPICS = ['resourceavailable/+/+', 'commandavailable/+/+', 'dataavailable/+/+', 'data/+/+'];

const MAX_RESOURCES = 500;
const MAX_SIGNALS = 200;
const MAX_VALUE_CHARS = 200;

export class SgResourceWatch {
  private readonly resources = new Map<string, SeenResource>();

  /** Takes one message; anything that is not an sg topic is ignored. Returns whether it was taken. */
  take(topic: string, payload: Buffer | string, now = Date.now()): boolean {
    const parts = topic.split('/');
    if (parts.length !== 3) return false;
    const [kind, name, signal] = parts as [string, string, string];
    if (!name || !signal) return false;
    const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).trim();
    let resource = this.resources.get(name);
    if (!resource) {
      if (this.resources.size >= MAX_RESOURCES) return false;
      resource = {
        name,
        commands: Object.create(null) as Record<string, SeenSignal>,
        data: Object.create(null) as Record<string, SeenSignal>,
        lastHeard: now,
      };
      this.resources.set(name, resource);
    }
    resource.lastHeard = now;
    const flag = text === 'True' ? true : text === 'False' ? false : undefined;
    switch (kind) {
      case 'resourceavailable':
        if (signal === 'presence') resource.presence = flag;
        return true;
      case 'commandavailable':
        return this.signal(resource.commands, signal, (s) => (s.available = flag));
      case 'dataavailable':
        return this.signal(resource.data, signal, (s) => (s.available = flag));
      case 'data':
        return this.signal(resource.data, signal, (s) => {
          s.value = text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}…` : text;
          s.at = now;
        });
      default:
        return false;
    }
  }

  /** Resources by name, as plain data. */
  list(): SeenResource[] {
    return [...this.resources.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  clear(): void {
    this.resources.clear();
  }

  private signal(table: Record<string, SeenSignal>, name: string, set: (s: SeenSignal) => void): boolean {
    let entry = Object.prototype.hasOwnProperty.call(table, name) ? table[name] : undefined;
    if (!entry) {
      if (Object.keys(table).length >= MAX_SIGNALS) return false;
      entry = {};
      table[name] = entry;
    }
    set(entry);
    return true;
  }
}
