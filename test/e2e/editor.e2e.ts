/// <reference lib="dom" />
// Real-browser test: Debian's chromium, driven by playwright-core, against a live Node-RED (scripts/start.js: the
// package linked into a fresh userDir, the MSB emulator). For every example: import it through the Import dialog,
// open each of our nodes' edit dialogs (screenshot, fields, untranslated labels, validation messages), deploy with
// the Deploy button and wait for green status dots with translated text. A German pass opens one dialog per type.
// Screenshots and a per-type report go to test-artifacts/editor/ (not committed).
import assert from 'assert';
import fs from 'fs';
import os from 'os';
import path from 'path';
import { BrowserContext, Page, chromium } from 'playwright-core';
import { FlowNode, exampleFiles, nodeTypes, packageRoot } from '../lib/package-facts';
import { deployFlows, waitFor } from './lib';

// The editor's globals, as far as the page functions below use them.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const RED: any;
declare const $: any;

const { start, buildDemoFlows } = require(path.join(packageRoot, 'scripts', 'start.js')) as {
  start(o: Record<string, unknown>): Promise<{ url: string; stop(): Promise<void> }>;
  buildDemoFlows(): FlowNode[];
};

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARTIFACTS = path.join(packageRoot, 'test-artifacts', 'editor');
const ours = nodeTypes();
const ourTypes = new Set(ours.map((t) => t.type));
const configTypes = new Set(ours.filter((t) => t.definition?.category === 'config').map((t) => t.type));
// An i18n key shown instead of text, e.g. "msb-config.label.url" or "node-red:common.label.name": a namespace, or
// one of our type names or a usual catalog section, then dotted words.
const escapeRe = (x: string): string => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const I18N_KEY = new RegExp(
  `^(?:(?:[\\w@/-]+:)[\\w-]+(?:\\.[\\w-]+)+|(?:${[...ourTypes].map(escapeRe).join('|')}|common|label|labels|placeholder|status|errors?|tip|tips|help)(?:\\.[\\w-]+)+)$`,
);
// Values that many validators reject; whichever of them a field's validate() refuses is used to see the message.
const PROBES = ['', ' ', '-1', '0', '1.5', '70000', 'not valid!', 'a b/#+', '{', 'x'.repeat(300)];

interface FieldProbe {
  property: string;
  value: string;
  /** The message Node-RED shows next to the field, or null if the validator only answered false. */
  message: string | null;
  flagged: boolean;
  /** The validator returns a message but declares one parameter, so Node-RED 3+/4 treats the value as valid. */
  messageIgnored: boolean;
}

interface DialogReport {
  example: string;
  id: string;
  type: string;
  lang: string;
  screenshot: string;
  invalidScreenshot?: string;
  inputs: string[];
  defaultsWithoutInput: string[];
  untranslated: string[];
  probes: FieldProbe[];
  pageErrors: string[];
  consoleErrors: string[];
}

interface StatusReport {
  example: string;
  id: string;
  type: string;
  status?: { fill?: string; shape?: string; text?: string };
  shownText: string;
}

const dialogs: DialogReport[] = [];
const statuses: StatusReport[] = [];
const deployNotes: Array<{ example: string; note: string }> = [];

const slug = (s: string): string => s.replace(/\.json$/, '').replace(/[^A-Za-z0-9._-]+/g, '_');

function readExample(rel: string): FlowNode[] {
  return JSON.parse(fs.readFileSync(path.join(packageRoot, 'examples', rel), 'utf8')) as FlowNode[];
}

async function editorReady(page: Page): Promise<void> {
  await page.waitForFunction(
    () =>
      typeof RED !== 'undefined' &&
      RED.nodes &&
      RED.workspaces &&
      RED.workspaces.active() &&
      document.querySelector('#red-ui-palette .red-ui-palette-node') !== null &&
      $('#red-ui-main-container').is(':visible'),
    undefined,
    { timeout: 60000 },
  );
}

/** Import through the menu's Import dialog into a new flow tab, as a user pasting the example would. */
async function importThroughDialog(page: Page, flowJson: string): Promise<void> {
  await page.click('#red-ui-header-button-sidemenu');
  await page.click('#menu-item-import');
  await page.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'visible' });
  await page.fill('#red-ui-clipboard-dialog-import-text', flowJson);
  // The dialog validates the JSON on keyup before it enables Import.
  await page.press('#red-ui-clipboard-dialog-import-text', 'End');
  await page.click('#red-ui-clipboard-dialog-import-opt-new');
  await page.click('#red-ui-clipboard-dialog-ok');
  await page.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'hidden' });
  // Imported nodes hang on the pointer until dropped; a click on the canvas drops them.
  const chart = await page.$('#red-ui-workspace-chart');
  const box = await chart!.boundingBox();
  await page.mouse.move(box!.x + 60, box!.y + 60);
  await page.mouse.click(box!.x + 60, box!.y + 60);
}

/** Closes open notifications the editor's way (removing their elements makes the editor throw later). */
async function closeNotifications(page: Page): Promise<void> {
  const open = await page.evaluate(() => {
    const els = Array.from(document.querySelectorAll('.red-ui-notification')) as Array<
      HTMLElement & { close?: () => void }
    >;
    for (const el of els) if (typeof el.close === 'function') el.close();
    return els.length;
  });
  if (open) await page.waitForTimeout(400);
}

async function openDialog(page: Page, node: FlowNode): Promise<'node' | 'node-config'> {
  // Import/deploy notifications would cover the top of the tray in the screenshots.
  await closeNotifications(page);
  if (configTypes.has(node.type)) {
    await page.evaluate((n) => RED.editor.editConfig('', n.type, n.id), { id: node.id, type: node.type });
  } else {
    const onCanvas = await page.evaluate((id) => {
      const n = RED.nodes.node(id);
      if (!n) return false;
      RED.workspaces.show(n.z);
      RED.view.reveal(id);
      return true;
    }, node.id);
    assert.ok(onCanvas, `${node.type} ${node.id} is not in the workspace after import`);
    const target = page.locator(`#red-ui-workspace-chart g[id="${node.id}"] .red-ui-flow-node`).first();
    await target.dblclick({ timeout: 10000 });
  }
  const prefix = configTypes.has(node.type) ? 'node-config' : 'node';
  await page.waitForSelector(`#${prefix}-dialog-ok`, { state: 'visible', timeout: 15000 });
  // oneditprepare may fill lists asynchronously (admin endpoints); give it a moment to settle.
  await page.waitForTimeout(700);
  return prefix;
}

async function closeDialog(page: Page, prefix: string): Promise<void> {
  await page.click(`#${prefix}-dialog-cancel`);
  // Wait for the tray's closing animation to finish: opening the next dialog during it makes the editor itself
  // throw ("reading 'removeChild'"), which is not the node's fault.
  await page
    .waitForFunction(() => $('.red-ui-tray').length === 0 && RED.editor.getEditStack().length === 0, undefined, {
      timeout: 10000,
    })
    .catch(() => undefined);
  await page.waitForTimeout(300);
}

/** Visible texts in the open tray that look like i18n keys: a missing catalog entry or a wrong namespace. */
async function untranslatedTexts(page: Page): Promise<string[]> {
  return page.evaluate((src) => {
    const re = new RegExp(src);
    const tray = $('.red-ui-tray').last()[0] as HTMLElement;
    const out = new Set<string>();
    const walker = document.createTreeWalker(tray, NodeFilter.SHOW_TEXT);
    for (let t = walker.nextNode(); t; t = walker.nextNode()) {
      const s = (t.textContent || '').trim();
      const el = t.parentElement;
      if (
        !s ||
        !el ||
        el.closest('script,style,textarea,.red-ui-editableList-item-content input') ||
        !$(el).is(':visible')
      )
        continue;
      if (re.test(s)) out.add(s);
    }
    for (const el of Array.from(tray.querySelectorAll('[placeholder],[title]'))) {
      for (const a of ['placeholder', 'title']) {
        const s = (el.getAttribute(a) || '').trim();
        if (s && re.test(s)) out.add(`${a}: ${s}`);
      }
    }
    return [...out];
  }, I18N_KEY.source);
}

/** Inputs the dialog offers per default, and what its validators say to a set of bad values. */
async function probeFields(
  page: Page,
  id: string,
  prefix: string,
): Promise<{ inputs: string[]; missing: string[]; probes: FieldProbe[] }> {
  return page.evaluate(
    ({ id, prefix, probes }) => {
      // The node being edited (for "Add new config node" it is not in RED.nodes yet), as validators see it as `this`.
      const stack = RED.editor.getEditStack ? RED.editor.getEditStack() : [];
      const node = stack.length ? stack[stack.length - 1] : RED.nodes.node(id);
      const def = RED.nodes.getType(node.type);
      const defaults = def.defaults || {};
      const creds = def.credentials || {};
      const inputs: string[] = [];
      const missing: string[] = [];
      const results: any[] = [];
      const check = (props: Record<string, any>, isCred: boolean) => {
        for (const p of Object.keys(props)) {
          const el = $(`#${prefix}-input-${p}`);
          if (el.length === 0) {
            if (!isCred) missing.push(p);
            continue;
          }
          inputs.push(p);
          const spec = props[p];
          const isConfigRef =
            spec.type && RED.nodes.getType(spec.type) && RED.nodes.getType(spec.type).category === 'config';
          const tag = el[0].tagName;
          const textual =
            tag === 'INPUT' && ['text', 'hidden', 'number', 'password', ''].includes(el.attr('type') || '');
          if (isConfigRef || !textual || !(spec.required || spec.validate)) continue;
          const typed = !!el.data('noderedTypedInput');
          const original = typed ? el.typedInput('value') : el.val();
          // Required-but-empty first (Node-RED's own check), then the first non-empty value validate() refuses.
          const candidates = spec.required ? [''] : [];
          let refusedNonEmpty = false;
          for (const value of probes) {
            if (value === '' && spec.required) continue;
            candidates.push(value);
          }
          for (const value of candidates) {
            if (value !== '' && refusedNonEmpty) break;
            let message: string | null = null;
            let invalid = false;
            let messageIgnored = false;
            if (spec.required && value === '') {
              invalid = true;
              if (typeof spec.label === 'string')
                message = RED._('validator.errors.missing-required-prop', { prop: spec.label });
            } else if (spec.validate && !(spec.required === false && value === '')) {
              let r: unknown;
              try {
                r = spec.validate.call(node, value, {});
              } catch (err) {
                r = `validator threw: ${(err as Error).message}`;
              }
              if (typeof r === 'string' || Array.isArray(r)) {
                if (spec.validate.length === 2 || Array.isArray(r)) {
                  invalid = true;
                  message = Array.isArray(r) ? r.join('; ') : r;
                } else {
                  messageIgnored = true;
                  message = r;
                }
              } else {
                invalid = !r;
              }
            }
            if (!invalid && !messageIgnored) continue;
            if (typed) el.typedInput('value', value);
            else el.val(value);
            el.trigger('change');
            const flagged =
              el.hasClass('input-error') || el.next('.red-ui-typedInput-container').hasClass('input-error');
            results.push({
              property: p,
              value: value.length > 20 ? `${value.slice(0, 17)}...` : value,
              message,
              flagged,
              messageIgnored,
            });
            if (typed) el.typedInput('value', original);
            else el.val(original);
            el.trigger('change');
            if (value !== '') refusedNonEmpty = true;
          }
        }
      };
      check(defaults, false);
      check(creds, true);
      return { inputs, missing, probes: results };
    },
    { id, prefix, probes: PROBES },
  );
}

/** Puts every probed field into its refused value at once, for the "what does an error look like" screenshot. */
async function showInvalid(page: Page, prefix: string, probes: FieldProbe[]): Promise<void> {
  await page.evaluate(
    ({ prefix, probes }) => {
      for (const p of probes) {
        const el = $(`#${prefix}-input-${p.property}`);
        if (el.data('noderedTypedInput')) el.typedInput('value', p.value);
        else el.val(p.value);
        el.trigger('change');
      }
    },
    { prefix, probes: probes.filter((p) => !p.value.endsWith('...')) },
  );
  await page.waitForTimeout(200);
}

async function screenshotTray(page: Page, file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await page.locator('.red-ui-tray').last().screenshot({ path: file });
  // A dialog with its own tabs (connection, parameters, self-description preview …): one screenshot per tab.
  const tabs = page.locator('.red-ui-tray').last().locator('form .red-ui-tabs li a');
  const count = await tabs.count();
  if (count < 2) return;
  for (let i = 1; i < count; i++) {
    const label = ((await tabs.nth(i).textContent()) || `tab${i}`).trim().replace(/[^A-Za-z0-9]+/g, '_');
    await tabs.nth(i).click();
    await page.waitForTimeout(400);
    await page
      .locator('.red-ui-tray')
      .last()
      .screenshot({ path: file.replace(/\.png$/, `-tab${i}-${label}.png`) });
  }
  await tabs.nth(0).click();
  await page.waitForTimeout(200);
}

/**
 * Adds a node of `type` the way a user does (flow nodes dragged from the palette onto the canvas, config nodes
 * through "Add new …"), opens its dialog, screenshots it and inspects it. Returns the report (also recorded).
 */
async function inspectFresh(p: Page, type: string, index: number, lang: string): Promise<DialogReport> {
  pageErrors = [];
  consoleErrors = [];
  await closeNotifications(p);
  let prefix: string;
  let id: string;
  if (configTypes.has(type)) {
    await p.evaluate((tp) => RED.editor.editConfig('', tp, '_ADD_'), type);
    prefix = 'node-config';
    id = '_ADD_';
  } else {
    const before: string[] = await p.evaluate(() => RED.nodes.filterNodes({}).map((n: { id: string }) => n.id));
    const source = p.locator(`#red-ui-palette .red-ui-palette-node[data-palette-type="${type}"]`);
    await source.scrollIntoViewIfNeeded();
    const from = (await source.boundingBox())!;
    const chart = (await p.locator('#red-ui-workspace-chart').boundingBox())!;
    await p.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await p.mouse.down();
    await p.mouse.move(chart.x + 250 + 220 * (index % 3), chart.y + 80 + 70 * Math.floor(index / 3), { steps: 12 });
    await p.mouse.up();
    const added: string[] = await p.evaluate(
      (known) =>
        RED.nodes
          .filterNodes({})
          .map((n: { id: string }) => n.id)
          .filter((x: string) => !known.includes(x)),
      before,
    );
    assert.strictEqual(added.length, 1, `dragging ${type} from the palette added ${added.length} nodes`);
    id = added[0];
    await p.locator(`#red-ui-workspace-chart g[id="${id}"] .red-ui-flow-node`).first().dblclick();
    prefix = 'node';
  }
  await p.waitForSelector(`#${prefix}-dialog-ok`, { state: 'visible', timeout: 15000 });
  await p.waitForTimeout(700);
  const shot = path.join(ARTIFACTS, lang === 'en-US' ? 'new-from-palette' : `new-from-palette-${lang}`, `${type}.png`);
  await screenshotTray(p, shot);
  const untranslated = await untranslatedTexts(p);
  const fields = lang === 'en-US' ? await probeFields(p, id, prefix) : { inputs: [], missing: [], probes: [] };
  await closeDialog(p, prefix);
  const report: DialogReport = {
    example: '(new from palette)',
    id,
    type,
    lang,
    screenshot: path.relative(packageRoot, shot),
    inputs: fields.inputs,
    defaultsWithoutInput: fields.missing,
    untranslated,
    probes: fields.probes,
    pageErrors: [...pageErrors],
    consoleErrors: [...consoleErrors],
  };
  dialogs.push(report);
  return report;
}

/** What every English dialog must get right. */
function checkDialog(report: DialogReport): void {
  assert.deepStrictEqual(report.pageErrors, [], 'script errors while the dialog was open');
  assert.deepStrictEqual(report.untranslated, [], 'i18n keys shown instead of text');
  assert.ok(report.inputs.length > 0, 'the dialog has no inputs for any default');
  const ignored = report.probes.filter((p) => p.messageIgnored).map((p) => `${p.property}: "${p.message}"`);
  assert.deepStrictEqual(
    ignored,
    [],
    'validate(v) returns a message but declares one parameter, so Node-RED accepts the value; declare validate(v, opt)',
  );
  const keys = report.probes
    .filter((p) => p.message !== null && I18N_KEY.test(p.message))
    .map((p) => `${p.property}: ${p.message}`);
  assert.deepStrictEqual(keys, [], 'validation messages that are untranslated i18n keys');
  const unflagged = report.probes
    .filter((p) => !p.messageIgnored && !p.flagged)
    .map((p) => `${p.property}=${JSON.stringify(p.value)}`);
  assert.deepStrictEqual(unflagged, [], 'invalid values the dialog does not mark');
  const silent = report.probes
    .filter((p) => p.value !== '' && !p.messageIgnored && p.message === null)
    .map((p) => `${p.property}=${JSON.stringify(p.value)}`);
  assert.deepStrictEqual(silent, [], 'refused values without a message saying what is wrong');
}

let context: BrowserContext;
let page: Page;
let running: { url: string; stop(): Promise<void> } | undefined;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-chromium-'));
const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'busbar-e2e-userdir-'));
let pageErrors: string[] = [];
let consoleErrors: string[] = [];

async function newContext(locale: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(fs.mkdtempSync(path.join(profile, `${locale}-`)), {
    executablePath: CHROMIUM,
    headless: true,
    locale,
    viewport: { width: 1500, height: 1500 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

function watch(p: Page): void {
  // Reloading an edited workspace raises "leave site?"; the test always means yes.
  p.on('dialog', (d) => void d.accept().catch(() => undefined));
  p.on('pageerror', (err) => {
    // Keep the first frames so the report shows whose script threw (a node's .html or the editor itself).
    const frames = (err.stack || '')
      .split('\n')
      .slice(1, 3)
      .map((l) => l.trim().replace(/\(?https?:\/\/[^/]+\//, '('))
      .join(' ');
    pageErrors.push(`${err.message}${frames ? ` [${frames}]` : ''}`);
  });
  p.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
}

before(async function () {
  this.timeout(180000);
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} not found: apt-get install -y chromium`);
  fs.rmSync(ARTIFACTS, { recursive: true, force: true });
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  running = await start({ port: 0, userDir, demo: 'none', tours: false, logLevel: process.env.LOG_LEVEL || 'warn' });
  context = await newContext('en-US');
  page = context.pages()[0] ?? (await context.newPage());
  watch(page);
  await page.goto(running.url);
  await editorReady(page);
});

after(async function () {
  this.timeout(60000);
  writeReport();
  if (context) await context.close().catch(() => undefined);
  if (running) await running.stop();
  fs.rmSync(profile, { recursive: true, force: true });
  fs.rmSync(userDir, { recursive: true, force: true });
});

describe('editor in a real browser (chromium)', function () {
  this.timeout(120000);

  it('shows every node type of the package in the palette', async () => {
    const missing = await page.evaluate((types) => types.filter((t) => !RED.nodes.getType(t)), [...ourTypes]);
    assert.deepStrictEqual(missing, [], 'types the editor does not know');
    const palette = await page.evaluate(() =>
      Array.from(document.querySelectorAll('#red-ui-palette .red-ui-palette-node')).map((e) =>
        e.getAttribute('data-palette-type'),
      ),
    );
    const flowTypes = ours.filter((t) => t.definition?.category !== 'config').map((t) => t.type);
    assert.deepStrictEqual(
      flowTypes.filter((t) => !palette.includes(t)),
      [],
      'flow node types missing from the palette',
    );
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // One screenshot per palette category holding our nodes (labels, colours, icons as a user sees them).
    const categories: string[] = await page.evaluate((types) => {
      const ids = new Set<string>();
      for (const t of types) {
        const cat = $(`#red-ui-palette .red-ui-palette-node[data-palette-type="${t}"]`).closest(
          '.red-ui-palette-category',
        );
        if (cat.attr('id')) ids.add(cat.attr('id'));
      }
      return [...ids];
    }, flowTypes);
    for (const id of categories) {
      const cat = page.locator(`[id="${id}"]`);
      await cat.scrollIntoViewIfNeeded();
      await cat.screenshot({ path: path.join(ARTIFACTS, `palette-${id.replace(/^red-ui-palette-/, '')}.png`) });
    }
  });

  describe('every node type, fresh from the palette', () => {
    before(async function () {
      this.timeout(90000);
      await deployFlows(running!.url, []);
      await page.goto(running!.url);
      await editorReady(page);
    });

    ours.forEach((t, i) => {
      it(`${t.type}: a new node's dialog opens with valid defaults, labels and validation messages`, async () => {
        const report = await inspectFresh(page, t.type, i, 'en-US');
        checkDialog(report);
      });
    });
  });

  for (const rel of exampleFiles()) {
    const flow = readExample(rel);
    const mine = flow.filter((n) => ourTypes.has(n.type));
    describe(`example ${rel}`, () => {
      before(async function () {
        this.timeout(90000);
        // Start each example from an empty runtime and a freshly loaded editor.
        await deployFlows(running!.url, []);
        await page.goto(running!.url);
        await editorReady(page);
        pageErrors = [];
        consoleErrors = [];
        await importThroughDialog(page, JSON.stringify(flow));
      });

      it('imports as valid nodes', async () => {
        const state = await page.evaluate(
          (ids) =>
            ids.map((id) => {
              const n = RED.nodes.node(id);
              return {
                id,
                type: n ? n.type : null,
                valid: n ? n.valid !== false : false,
                errors: n && n.validationErrors,
              };
            }),
          mine.map((n) => n.id),
        );
        const bad = state
          .filter((s) => !s.valid)
          .map((s) => `${s.type} ${s.id}${s.errors ? ` (${s.errors.join(', ')})` : ''}`);
        assert.deepStrictEqual(bad, [], 'nodes imported as not properly configured');
        assert.deepStrictEqual(pageErrors, [], 'page errors while importing');
      });

      for (const node of mine) {
        it(`opens the ${node.type} dialog${node.name ? ` "${node.name}"` : ''}: fields, labels, validation messages`, async () => {
          pageErrors = [];
          consoleErrors = [];
          const prefix = await openDialog(page, node);
          const shot = path.join(ARTIFACTS, slug(rel), `${node.type}-${node.id}.png`);
          await screenshotTray(page, shot);
          const untranslated = await untranslatedTexts(page);
          const fields = await probeFields(page, node.id, prefix);
          let invalidShot: string | undefined;
          if (fields.probes.length > 0 && !dialogs.some((d) => d.type === node.type && d.invalidScreenshot)) {
            await showInvalid(page, prefix, fields.probes);
            invalidShot = shot.replace(/\.png$/, '-invalid.png');
            await screenshotTray(page, invalidShot);
          }
          await closeDialog(page, prefix);
          const report: DialogReport = {
            example: rel,
            id: node.id,
            type: node.type,
            lang: 'en-US',
            screenshot: path.relative(packageRoot, shot),
            invalidScreenshot: invalidShot && path.relative(packageRoot, invalidShot),
            inputs: fields.inputs,
            defaultsWithoutInput: fields.missing,
            untranslated,
            probes: fields.probes,
            pageErrors: [...pageErrors],
            consoleErrors: [...consoleErrors],
          };
          dialogs.push(report);
          checkDialog(report);
        });
      }

      it('deploys with the Deploy button and every node turns green with translated status text', async function () {
        this.timeout(90000);
        // Everything the runtime sends to the debug sidebar from now on (debug nodes, node.warn/node.error).
        await page.evaluate(() => {
          const w = window as unknown as { busbarDebug: unknown[]; busbarSubscribed?: boolean };
          w.busbarDebug = [];
          if (!w.busbarSubscribed) {
            RED.comms.subscribe('debug', (_topic: string, m: unknown) => w.busbarDebug.push(m));
            w.busbarSubscribed = true;
          }
        });
        await page.click('#red-ui-header-button-deploy');
        const outcome = await waitFor(
          'the deploy to finish',
          () =>
            page.evaluate(() => {
              const confirm = $('#red-ui-deploy-dialog-confirm-deploy-deploy:visible');
              if (confirm.length) {
                const text = confirm.closest('.red-ui-notification').text();
                confirm.trigger('click');
                return `confirmation asked: ${text}`;
              }
              return RED.nodes.dirty() ? undefined : 'deployed';
            }),
          30000,
        );
        if (outcome !== 'deployed') deployNotes.push({ example: rel, note: outcome });
        if (outcome !== 'deployed')
          await waitFor('the confirmed deploy', () => page.evaluate(() => !RED.nodes.dirty()), 30000);
        const flowNodes = mine.filter((n) => !configTypes.has(n.type));
        let last: StatusReport[] = [];
        try {
          await waitFor(
            'green status on every node',
            async () => {
              last = await page.evaluate(
                (nodes) =>
                  nodes.map((n) => {
                    const node = RED.nodes.node(n.id);
                    const label = document.querySelector(
                      `#red-ui-workspace-chart g[id="${n.id}"] .red-ui-flow-node-status-label`,
                    );
                    return {
                      example: '',
                      id: n.id,
                      type: n.type,
                      status: node && node.status,
                      shownText: label ? label.textContent || '' : '',
                    };
                  }),
                flowNodes.map((n) => ({ id: n.id, type: n.type })),
              );
              return last.every((s) => s.status && s.status.fill === 'green');
            },
            20000,
          );
        } finally {
          for (const s of last) statuses.push({ ...s, example: rel });
          await page.screenshot({ path: path.join(ARTIFACTS, slug(rel), 'deployed.png') }).catch(() => undefined);
        }
        assert.strictEqual(outcome, 'deployed', outcome);
        const untranslated = last
          .filter((s) => I18N_KEY.test(s.shownText.trim()))
          .map((s) => `${s.type}: ${s.shownText}`);
        assert.deepStrictEqual(untranslated, [], 'status texts shown as i18n keys');
      });

      // While the example runs by itself for a few seconds, none of our nodes may report an error or warning in the
      // debug sidebar. What the debug nodes show is recorded in the report (some examples wait for a peer or a click).
      it('runs for a few seconds without errors or warnings from our nodes', async function () {
        this.timeout(60000);
        interface DebugMsg {
          id?: string;
          name?: string;
          level?: number;
          msg?: string;
          format?: string;
        }
        const read = () =>
          page.evaluate(() => (window as unknown as { busbarDebug: unknown[] }).busbarDebug) as Promise<DebugMsg[]>;
        await page.waitForTimeout(4000);
        const msgs = await read();
        const ourIds = new Set(mine.map((n) => n.id));
        const problems = msgs
          .filter((m) => m.id && ourIds.has(m.id) && (m.level === 20 || m.level === 30))
          .map((m) => `${m.level === 20 ? 'error' : 'warn'} from ${m.name || m.id}: ${String(m.msg).slice(0, 200)}`);
        const shown = msgs.filter((m) => m.level === undefined || (m.level !== 20 && m.level !== 30)).length;
        deployNotes.push({
          example: rel,
          note: `debug sidebar after 4 s: ${shown} debug messages${problems.length ? `; ${problems.join(' | ')}` : ''}`,
        });
        assert.deepStrictEqual(problems, [], 'errors or warnings from our nodes in the debug sidebar');
      });
    });
  }
});

interface DebugMsg {
  id?: string;
  z?: string;
  name?: string;
  level?: number;
  msg?: string;
  format?: string;
}

/** From now on, collect everything the runtime sends to the debug sidebar (debug nodes, node.warn/node.error). */
async function collectDebug(p: Page): Promise<void> {
  await p.evaluate(() => {
    const w = window as unknown as { busbarDebug: unknown[]; busbarSubscribed?: boolean };
    w.busbarDebug = [];
    if (!w.busbarSubscribed) {
      RED.comms.subscribe('debug', (_topic: string, m: unknown) => w.busbarDebug.push(m));
      w.busbarSubscribed = true;
    }
  });
}

const readDebug = (p: Page): Promise<DebugMsg[]> =>
  p.evaluate(() => (window as unknown as { busbarDebug: unknown[] }).busbarDebug) as Promise<DebugMsg[]>;

/** Errors (and with `warnings`, warnings) in the debug sidebar, as readable lines. */
function problemsIn(msgs: DebugMsg[], warnings: boolean): string[] {
  return msgs
    .filter((m) => m.level === 20 || (warnings && m.level === 30))
    .map((m) => `${m.level === 20 ? 'error' : 'warn'} from ${m.name || m.id}: ${String(m.msg).slice(0, 200)}`);
}

/** Waits until the debug sidebar has had no new message for `quietMs` (the demo's periodic injects run once a minute). */
async function debugSettled(p: Page, quietMs = 3000, maxMs = 30000): Promise<void> {
  let count = -1;
  let since = Date.now();
  await waitFor(
    'the debug sidebar to settle',
    async () => {
      const now = (await readDebug(p)).length;
      if (now !== count) {
        count = now;
        since = Date.now();
      }
      return Date.now() - since >= quietMs;
    },
    maxMs,
    250,
  );
}

/** Clicks Deploy and confirms a confirmation Node-RED may ask for; resolves once the workspace is clean. */
async function deployWithButton(p: Page): Promise<string> {
  await p.click('#red-ui-header-button-deploy');
  const outcome = await waitFor(
    'the deploy to finish',
    () =>
      p.evaluate(() => {
        const confirm = $('#red-ui-deploy-dialog-confirm-deploy-deploy:visible');
        if (confirm.length) {
          const text = confirm.closest('.red-ui-notification').text();
          confirm.trigger('click');
          return `confirmation asked: ${text}`;
        }
        return RED.nodes.dirty() ? undefined : 'deployed';
      }),
    30000,
  );
  if (outcome !== 'deployed') await waitFor('the confirmed deploy', () => p.evaluate(() => !RED.nodes.dirty()), 30000);
  return outcome;
}

/** Every one of our flow nodes in the workspace (demo and imported copies) with its status. */
async function ourStatuses(
  p: Page,
): Promise<Array<{ id: string; type: string; name: string; tab: string; fill?: string; text?: string }>> {
  return p.evaluate(
    ({ flowTypes }) => {
      const out: Array<{ id: string; type: string; name: string; tab: string; fill?: string; text?: string }> = [];
      RED.nodes.eachNode((n: any) => {
        if (!flowTypes.includes(n.type)) return;
        const ws = RED.nodes.workspace(n.z);
        out.push({
          id: n.id,
          type: n.type,
          name: n.name || '',
          tab: ws ? ws.label : n.z,
          fill: n.status?.fill,
          text: n.status?.text,
        });
      });
      return out;
    },
    { flowTypes: ours.filter((t) => !configTypes.has(t.type)).map((t) => t.type) },
  );
}

async function waitAllGreen(p: Page, what: string): Promise<void> {
  let last: Awaited<ReturnType<typeof ourStatuses>> = [];
  try {
    await waitFor(
      what,
      async () => {
        last = await ourStatuses(p);
        return last.length > 0 && last.every((s) => s.fill === 'green');
      },
      40000,
    );
  } catch (err) {
    const red = last
      .filter((s) => s.fill !== 'green')
      .map((s) => `${s.tab} / ${s.type} "${s.name}": ${s.fill ?? 'no status'} ${s.text ?? ''}`);
    throw new Error(`${(err as Error).message}; not green: ${red.join(' | ')}`);
  }
}

/** The demo as `npm start` deploys it, loaded into a fresh editor. */
async function deployDemo(p: Page): Promise<FlowNode[]> {
  const demo = buildDemoFlows();
  await deployFlows(running!.url, demo);
  await p.goto(running!.url);
  await editorReady(p);
  return demo;
}

// The answer the README gives for Node-RED's "Some of the nodes you are importing already exist" notification:
// "Import copy". The demo holds the examples under their own ids, so the copy reuses the demo's config nodes (one
// broker, one MSB connection per uuid) and adds a copy of the flow nodes.
const IMPORT_ANSWER = 'Import copy';

/** Imports an example through the Import dialog into the running workspace, answering the conflict notification. */
async function importIntoRunning(p: Page, flowJson: string): Promise<string> {
  await closeNotifications(p);
  await p.click('#red-ui-header-button-sidemenu');
  await p.click('#menu-item-import');
  await p.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'visible' });
  await p.fill('#red-ui-clipboard-dialog-import-text', flowJson);
  await p.press('#red-ui-clipboard-dialog-import-text', 'End');
  await p.click('#red-ui-clipboard-dialog-import-opt-new');
  await p.click('#red-ui-clipboard-dialog-ok');
  await p.waitForSelector('#red-ui-clipboard-dialog-import-text', { state: 'hidden' });
  // Node-RED asks when ids exist already; the README says which button to press.
  const answer = p.locator('.red-ui-notification button', { hasText: IMPORT_ANSWER }).first();
  let asked = 'no question';
  const shown = await answer.waitFor({ state: 'visible', timeout: 5000 }).then(
    () => true,
    () => false,
  );
  if (shown) {
    asked = await answer.evaluate(
      (b) => ((b.closest('.red-ui-notification') as HTMLElement | null)?.innerText ?? '').split('\n')[0],
    );
    await answer.click();
  }
  const chart = await p.$('#red-ui-workspace-chart');
  const box = await chart!.boundingBox();
  await p.mouse.move(box!.x + 60, box!.y + 60);
  await p.mouse.click(box!.x + 60, box!.y + 60);
  return asked;
}

describe('the npm start demo (every example in one runtime)', function () {
  this.timeout(300000);
  let demo: FlowNode[] = [];

  before(async function () {
    this.timeout(120000);
    demo = await deployDemo(page);
    await collectDebug(page);
  });

  after(async function () {
    this.timeout(60000);
    await deployFlows(running!.url, []);
  });

  it('deploys, and every one of our nodes turns green', async () => {
    try {
      await waitAllGreen(page, 'green status on every node of the demo');
      deployNotes.push({ example: '(npm start demo)', note: 'all green' });
    } finally {
      await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png') }).catch(() => undefined);
    }
  });

  it('clicking every inject once puts no error or warning into the debug sidebar', async () => {
    await collectDebug(page);
    const injects = demo.filter((n) => n.type === 'inject');
    const silent: string[] = [];
    fs.mkdirSync(path.join(ARTIFACTS, 'demo-clicks'), { recursive: true });
    for (const inject of injects) {
      const tab = demo.find((n) => n.id === inject.z);
      const before = (await readDebug(page)).length;
      await page.evaluate((id) => {
        const n = RED.nodes.node(id);
        RED.workspaces.show(n.z);
        RED.view.reveal(id);
      }, inject.id);
      await page
        .locator(`#red-ui-workspace-chart g[id="${inject.id}"] .red-ui-flow-node-button-button`)
        .first()
        .click({ timeout: 10000 });
      // A click on a one-shot inject must show a debug message (the positive marker that the click ran through; the
      // answer may show on another tab, e.g. the Hello service's signal at the Hello client).
      if (String(inject.repeat ?? '') === '') {
        const shown = await waitFor(
          `a debug message after clicking "${inject.name}"`,
          async () => (await readDebug(page)).slice(before).some((m) => m.level === undefined) || undefined,
          15000,
        ).catch(() => false);
        if (!shown) silent.push(`${tab?.label} / ${inject.name}`);
      }
      await page.screenshot({
        path: path.join(ARTIFACTS, 'demo-clicks', `${slug(String(tab?.label))}-${slug(String(inject.name))}.png`),
      });
    }
    await debugSettled(page);
    const msgs = await readDebug(page);
    deployNotes.push({
      example: '(npm start demo, every inject clicked)',
      note: `${msgs.length} debug messages${silent.length ? `; no debug message after: ${silent.join(', ')}` : ''}`,
    });
    assert.deepStrictEqual(problemsIn(msgs, true), [], 'errors or warnings in the debug sidebar');
    assert.deepStrictEqual(silent, [], 'injects whose click showed nothing in the debug sidebar');
  });

  for (const rel of exampleFiles()) {
    it(`imports ${rel} into the running demo twice ("${IMPORT_ANSWER}"), deploys, every node green, no error`, async function () {
      this.timeout(180000);
      await deployDemo(page);
      await waitAllGreen(page, 'the demo green before the import');
      const example = readExample(rel);
      const flowJson = JSON.stringify(example);
      const before = (await ourStatuses(page)).length;
      const asked = [await importIntoRunning(page, flowJson), await importIntoRunning(page, flowJson)];
      // Two copies of the example's flow nodes were added (config nodes reused, so no second broker or uuid).
      const copies = example.filter((n) => ourTypes.has(n.type) && !configTypes.has(n.type)).length;
      assert.strictEqual((await ourStatuses(page)).length, before + 2 * copies, 'our flow nodes after importing twice');
      await collectDebug(page);
      const outcome = await deployWithButton(page);
      try {
        await waitAllGreen(page, `every node green after importing ${rel} twice`);
      } finally {
        await page
          .screenshot({ path: path.join(ARTIFACTS, slug(rel), 'imported-twice-into-demo.png') })
          .catch(() => undefined);
      }
      await debugSettled(page);
      const msgs = await readDebug(page);
      deployNotes.push({
        example: `${rel} imported twice into the demo`,
        note: `asked: ${asked.join(' / ')}; ${outcome}; ${msgs.length} debug messages; warnings: ${
          problemsIn(msgs, true)
            .filter((l) => l.startsWith('warn'))
            .join(' | ') || 'none'
        }`,
      });
      assert.deepStrictEqual(
        asked.map((a) => a !== 'no question'),
        [true, true],
        'Node-RED asks about existing nodes on both imports',
      );
      assert.deepStrictEqual(problemsIn(msgs, false), [], 'errors in the debug sidebar');
    });
  }
});

describe('editor in German (de-DE browser)', function () {
  this.timeout(120000);
  let de: BrowserContext;
  let dePage: Page;

  before(async function () {
    this.timeout(90000);
    await deployFlows(running!.url, []);
    de = await newContext('de-DE');
    dePage = de.pages()[0] ?? (await de.newPage());
    watch(dePage);
    await dePage.goto(running!.url);
    await editorReady(dePage);
  });

  after(async () => {
    if (de) await de.close().catch(() => undefined);
  });

  ours.forEach((t, i) => {
    it(`${t.type}: dialog and help in German`, async () => {
      const report = await inspectFresh(dePage, t.type, i, 'de');
      const help = await dePage.evaluate((type) => {
        RED.sidebar.help.show(type);
        return $('.red-ui-help').text();
      }, t.type);
      assert.deepStrictEqual(report.untranslated, [], 'i18n keys shown instead of German text');
      assert.deepStrictEqual(report.pageErrors, [], 'script errors');
      assert.ok(help.trim().length > 0, 'no help in the sidebar');
      const english = fs.readFileSync(path.join(path.dirname(t.js), 'locales', 'en-US', `${t.set}.html`), 'utf8');
      const firstEnglishLine = /<p>([^<]{12,})/.exec(english);
      if (firstEnglishLine)
        assert.ok(!help.includes(firstEnglishLine[1].trim()), 'the help sidebar shows the English help');
    });
  });
});

function writeReport(): void {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  fs.writeFileSync(path.join(ARTIFACTS, 'report.json'), JSON.stringify({ dialogs, statuses, deployNotes }, null, 2));
  const lines = ['# Editor report (test/e2e/editor.e2e.ts)', ''];
  for (const type of [...ourTypes]) {
    const ds = dialogs.filter((d) => d.type === type);
    lines.push(`## ${type}`, '');
    if (ds.length === 0) {
      lines.push('- no dialog opened (not in any example?)', '');
      continue;
    }
    for (const d of ds) {
      lines.push(
        `- ${d.lang} ${d.example} ${d.id}: ![](${path.relative(ARTIFACTS, path.join(packageRoot, d.screenshot))})`,
      );
      if (d.inputs.length) lines.push(`  - inputs: ${d.inputs.join(', ')}`);
      if (d.defaultsWithoutInput.length)
        lines.push(`  - defaults without an input: ${d.defaultsWithoutInput.join(', ')}`);
      for (const p of d.probes) {
        lines.push(
          `  - ${p.property} = ${JSON.stringify(p.value)}: ${p.flagged ? 'marked' : 'NOT marked'}, ` +
            `${p.message === null ? 'no message' : `"${p.message}"`}${p.messageIgnored ? ' (IGNORED: validate takes one parameter)' : ''}`,
        );
      }
      if (d.untranslated.length) lines.push(`  - untranslated: ${d.untranslated.join(' | ')}`);
      if (d.pageErrors.length) lines.push(`  - page errors: ${d.pageErrors.join(' | ')}`);
      if (d.consoleErrors.length) lines.push(`  - console errors: ${d.consoleErrors.join(' | ')}`);
    }
    for (const s of statuses.filter((x) => x.type === type)) {
      lines.push(
        `- status in ${s.example} ${s.id}: ${s.status ? `${s.status.fill}/${s.status.shape}` : 'none'} "${s.shownText}"`,
      );
    }
    lines.push('');
  }
  for (const n of deployNotes) lines.push(`- deploy of ${n.example}: ${n.note}`);
  fs.writeFileSync(path.join(ARTIFACTS, 'report.md'), lines.join('\n') + '\n');
}
