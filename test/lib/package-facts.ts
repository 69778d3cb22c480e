// What the package declares and ships, read the way the Flow Library scorecard and Node-RED's loader read it.
import fs from 'fs';
import path from 'path';
import * as acorn from 'acorn';

export interface PackageJson {
  name: string;
  version: string;
  license?: string;
  repository?: string | { url?: string };
  bugs?: string | { url?: string };
  keywords?: string[];
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  files?: string[];
  'node-red'?: { version?: string; nodes?: Record<string, string> };
}

/** One literal `RED.nodes.registerType('<type>', { … })` call found in an editor .html. */
export interface EditorDefinition {
  type: string;
  /** Inline literal properties of the definition object (functions and non-literals are left out). */
  category?: string;
  color?: string;
  icon?: string;
  paletteLabel?: string;
  /** Names of the keys of an inline `defaults` object, if there is one. */
  defaults?: string[];
  credentials?: string[];
}

export const packageRoot = findPackageRoot(__dirname);

function findPackageRoot(from: string): string {
  let dir = from;
  for (;;) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file) && JSON.parse(fs.readFileSync(file, 'utf8')).name === '@busbar/node-red-buses') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no @busbar/node-red-buses package.json above ${from}`);
    dir = up;
  }
}

export function readPackageJson(root = packageRoot): PackageJson {
  return JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson;
}

/** The contents of every `<script type="text/javascript">` block, as the scorecard extracts them. */
export function javascriptBlocks(html: string): string[] {
  const blocks: string[] = [];
  const re = /<script\b([^>]*)>([\s\S]*?)<\/script\s*>/gi;
  for (let m = re.exec(html); m; m = re.exec(html)) {
    const type = /\btype\s*=\s*["']([^"']*)["']/i.exec(m[1]);
    if (type && type[1].trim().toLowerCase() === 'text/javascript') blocks.push(m[2]);
  }
  return blocks;
}

/** `data-template-name` / `data-help-name` values of the text/html or text/markdown blocks. */
export function namedBlocks(html: string, attribute: 'data-template-name' | 'data-help-name'): string[] {
  const names: string[] = [];
  const re = new RegExp(`<script\\b[^>]*\\b${attribute}\\s*=\\s*["']([^"']+)["']`, 'gi');
  for (let m = re.exec(html); m; m = re.exec(html)) names.push(m[1]);
  return names;
}

type AstNode = acorn.Node & Record<string, unknown>;

function isAstNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

function walk(node: AstNode, visit: (n: AstNode) => void): void {
  visit(node);
  for (const key of Object.keys(node)) {
    const child = node[key];
    if (Array.isArray(child)) {
      for (const c of child) if (isAstNode(c)) walk(c, visit);
    } else if (isAstNode(child)) {
      walk(child, visit);
    }
  }
}

function propertyName(p: AstNode): string | undefined {
  const key = p.key as AstNode | undefined;
  if (!key) return undefined;
  if (key.type === 'Identifier') return key.name as string;
  if (key.type === 'Literal') return String(key.value);
  return undefined;
}

function literalString(v: unknown): string | undefined {
  if (isAstNode(v) && v.type === 'Literal' && typeof v.value === 'string') return v.value;
  if (isAstNode(v) && v.type === 'TemplateLiteral' && (v.expressions as unknown[]).length === 0) {
    return ((v.quasis as AstNode[])[0].value as { cooked: string }).cooked;
  }
  return undefined;
}

/**
 * Parses a node set's editor .html like node-red-dev's scorecard: acorn over each text/javascript block, keeping
 * `registerType` calls whose first argument is a string literal and second an object expression.
 * Throws with the parser's message if a block does not parse (the scorecard would report "Unable to parse").
 */
export function editorDefinitions(html: string): EditorDefinition[] {
  const found: EditorDefinition[] = [];
  for (const source of javascriptBlocks(html)) {
    const ast = acorn.parse(source, { ecmaVersion: 'latest', sourceType: 'script' }) as unknown as AstNode;
    walk(ast, (n) => {
      if (n.type !== 'CallExpression') return;
      const callee = n.callee as AstNode;
      const calleeName =
        callee.type === 'MemberExpression'
          ? propertyNameOfMember(callee)
          : callee.type === 'Identifier'
            ? callee.name
            : '';
      if (calleeName !== 'registerType') return;
      const [first, second] = n.arguments as AstNode[];
      const type = literalString(first);
      if (type === undefined || !second || second.type !== 'ObjectExpression') return;
      const def: EditorDefinition = { type };
      for (const p of second.properties as AstNode[]) {
        if (p.type !== 'Property') continue;
        const name = propertyName(p);
        const value = p.value as AstNode;
        if (name === 'category' || name === 'color' || name === 'icon' || name === 'paletteLabel') {
          const s = literalString(value);
          if (s !== undefined) def[name] = s;
        } else if ((name === 'defaults' || name === 'credentials') && value.type === 'ObjectExpression') {
          def[name] = (value.properties as AstNode[]).map(propertyName).filter((k): k is string => !!k);
        }
      }
      found.push(def);
    });
  }
  return found;
}

function propertyNameOfMember(m: AstNode): string {
  const p = m.property as AstNode;
  if (!m.computed && p.type === 'Identifier') return p.name as string;
  return literalString(p) ?? '';
}

/** Every examples/**\/*.json below `dir`, as paths relative to it (forward slashes). */
export function exampleFiles(dir = path.join(packageRoot, 'examples')): string[] {
  const out: string[] = [];
  const visit = (sub: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path.join(dir, sub), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = sub ? `${sub}/${e.name}` : e.name;
      if (e.isDirectory()) visit(rel);
      else if (e.isFile() && e.name.endsWith('.json')) out.push(rel);
    }
  };
  visit('');
  return out.sort();
}

export interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  wires?: string[][];
  [key: string]: unknown;
}

/** The editor-relevant facts of every node type, found in the node sets listed in package.json `node-red.nodes`. */
export interface NodeTypeFacts {
  type: string;
  /** The node set (package.json `node-red.nodes` key) that registers the type: one per bus. */
  set: string;
  js: string;
  html: string;
  definition?: EditorDefinition;
  parseError?: string;
}

export function nodeTypes(root = packageRoot): NodeTypeFacts[] {
  const sets = readPackageJson(root)['node-red']?.nodes ?? {};
  return Object.entries(sets).flatMap(([set, js]): NodeTypeFacts[] => {
    const html = path.join(root, js.replace(/\.c?js$/, '.html'));
    const base = { set, js: path.join(root, js), html };
    try {
      return editorDefinitions(fs.readFileSync(html, 'utf8')).map((definition) => ({
        ...base,
        type: definition.type,
        definition,
      }));
    } catch (err) {
      return [{ ...base, type: set, parseError: (err as Error).message }];
    }
  });
}

/** The node set (bus) a type belongs to: its name's first word (msb, sg, mbus, apigear). */
export function setOf(type: string): string {
  return type.split('-')[0] ?? type;
}

/** Source files of a type's node set: editor .html, catalog and help per language. */
export const sourceFiles = {
  html: (type: string, root = packageRoot): string => path.join(root, 'nodes', setOf(type), `${setOf(type)}.html`),
  catalog: (type: string, lang: string, root = packageRoot): string =>
    path.join(root, 'nodes', setOf(type), 'locales', lang, `${setOf(type)}.json`),
  help: (type: string, lang: string, root = packageRoot): string =>
    path.join(root, 'nodes', setOf(type), 'locales', lang, `${setOf(type)}.html`),
  code: (type: string, root = packageRoot): string => path.join(root, 'nodes', setOf(type), `${type}.ts`),
};

/**
 * One type's part of its set's editor .html: the shared <script src> lines of the set plus the blocks between the
 * `<!-- <type> -->` marker and the next marker.
 */
export function editorSection(type: string, root = packageRoot): string {
  const html = fs.readFileSync(sourceFiles.html(type, root), 'utf8');
  const sources = [...html.matchAll(/^<script src="[^"]*"><\/script>$/gm)].map((m) => m[0]).join('\n');
  const start = html.indexOf(`<!-- ${type} -->`);
  if (start < 0) throw new Error(`no <!-- ${type} --> section in ${sourceFiles.html(type, root)}`);
  const end = html.indexOf('<!-- ', start + 1);
  return `${sources}\n${html.slice(start, end < 0 ? undefined : end)}`;
}
