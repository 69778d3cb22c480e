// busbar-sidebar: the editor plugin that adds the Busbar sidebar tab; the runtime side installs the admin endpoints
// the tab reads (the config nodes install them too, so the endpoints exist whichever loads first).
import type { NodeAPI } from './lib/red';
import { installBusbarAdmin } from './lib/busbar-admin';

interface PluginAPI {
  plugins?: { registerPlugin(id: string, definition: { type: string }): void };
}

export = function (RED: NodeAPI & PluginAPI): void {
  installBusbarAdmin(RED);
  RED.plugins?.registerPlugin('busbar-sidebar', { type: 'busbar-sidebar' });
};
