/**
 * Turns ssh_config text into a flat list of `{ keyword, args }` lines, using the `ssh-config`
 * npm package's parser for the line and section structure.
 *
 * Known differences from OpenSSH's own tokenizer (`argv_split`, readconf.c), which do not
 * matter for ordinary configs: a `#` inside a word starts a comment; in multi-value keywords
 * (`Host`, `Match`, `Include`, `UserKnownHostsFile`...) `=` also separates values; backslash
 * escapes other than `\"` are kept verbatim.
 *
 * @module config/ssh-config/parse
 */
import { parse as parseSshConfig, LineType, type Line } from 'ssh-config';
import { SshConfigError } from '../../errors.js';

/** One directive of a config file, flattened (Host/Match bodies follow their header). */
export interface ConfigLine {
  /** lowercased keyword */
  readonly keyword: string;
  /** the arguments, unquoted */
  readonly args: readonly string[];
  /** 1-based line number */
  readonly line: number;
}

/** Keywords whose single argument may legitimately contain spaces when quoted. */
const SINGLE_ARG = new Set([
  'identityfile',
  'identityagent',
  'certificatefile',
  'user',
  'hostname',
  'controlpath',
  'forwardagent',
  'proxycommand',
  'localcommand',
  'knownhostscommand',
  'remotecommand',
]);

/** Commands keep their text whole (OpenSSH joins the arguments back with spaces). */
const COMMAND = new Set(['proxycommand', 'localcommand', 'knownhostscommand', 'remotecommand']);

/**
 * OpenSSH `argv_split` over a value the package left as one string: whitespace separates,
 * `"` and `'` quote, backslash escapes a quote, a backslash or a space.
 */
function splitArgs(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (s[i] === ' ' || s[i] === '\t') i++;
    if (i >= s.length) break;
    let arg = '';
    let quote = '';
    for (; i < s.length; i++) {
      const c = s[i]!;
      const n = s[i + 1];
      if (c === '\\' && (n === '"' || n === "'" || n === '\\' || (quote === '' && n === ' '))) {
        arg += n;
        i++;
      } else if (quote === '' && (c === ' ' || c === '\t')) {
        break;
      } else if (quote === '' && (c === '"' || c === "'")) {
        quote = c;
      } else if (quote !== '' && c === quote) {
        quote = '';
      } else {
        arg += c;
      }
    }
    if (quote !== '') throw new Error('invalid quotes');
    out.push(arg);
  }
  return out;
}

/**
 * Splits the criteria of a Match line the way OpenSSH's `match_cfg_line` does with
 * `strdelim`: whitespace or `=` separate, `"..."` groups.
 */
function splitMatchArgs(s: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /[ \t\f\v=]/.test(s[i]!)) i++;
    if (i >= s.length) break;
    if (s[i] === '"') {
      const close = s.indexOf('"', i + 1);
      if (close < 0) throw new Error('no matching quote');
      out.push(s.slice(i + 1, close));
      i = close + 1;
      continue;
    }
    let j = i;
    while (j < s.length && !/[ \t\f\v="]/.test(s[j]!)) j++;
    out.push(s.slice(i, j));
    i = j;
  }
  return out;
}

const MATCH_LINE = /^[ \t]*match(?=[ \t=])[ \t]*=?(.*)$/i;

function countNewlines(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\n') n++;
    else if (c === '\r' && s[i + 1] !== '\n') n++;
  }
  return n;
}

/**
 * Parses config text into flat lines.
 *
 * @param text - the file contents (LF or CRLF line endings).
 * @param file - the file name, for error messages.
 * @throws SshConfigError `ERR_SSH_CONFIG` (field `sshConfig`) when the text cannot be parsed
 * (unbalanced quotes, a Match criterion without its argument...).
 */
export function parseConfigText(text: string, file: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  // Match lines are tokenized here (the package's Match criteria parser rejects negated
  // argument-less criteria such as "!final"); the package sees a placeholder "Match all".
  const matchArgs = new Map<number, string[]>();
  const rawLines = text.split(/\r\n|\n|\r/);
  for (let n = 0; n < rawLines.length; n++) {
    const m = MATCH_LINE.exec(rawLines[n]!);
    if (m === null) continue;
    try {
      matchArgs.set(n + 1, splitMatchArgs(m[1]!));
    } catch (err) {
      throw new SshConfigError(`${file} line ${n + 1}: Match: invalid quotes`, { field: 'Match', cause: err });
    }
    rawLines[n] = 'Match all';
  }
  let parsed: Line[];
  try {
    parsed = parseSshConfig(matchArgs.size > 0 ? rawLines.join('\n') : text);
  } catch (err) {
    throw new SshConfigError(`${file}: cannot parse ssh_config: ${err instanceof Error ? err.message : String(err)}`, {
      field: 'sshConfig',
      cause: err,
    });
  }
  let lineNo = 1;
  const visit = (lines: readonly Line[]): void => {
    for (const l of lines) {
      lineNo += countNewlines(l.before);
      if (l.type === LineType.DIRECTIVE) {
        const keyword = l.param.toLowerCase();
        let args: string[];
        try {
          const ma = keyword === 'match' ? matchArgs.get(lineNo) : undefined;
          if (ma !== undefined) {
            args = ma;
          } else if (Array.isArray(l.value)) {
            args = l.value.map((v) => v.val);
            if (COMMAND.has(keyword)) args = [args.join(' ')];
          } else if (l.value === '') {
            args = [];
          } else if (COMMAND.has(keyword)) {
            args = [l.value];
          } else if (l.quoted === true && SINGLE_ARG.has(keyword) && !/"/.test(l.value)) {
            args = [l.value];
          } else {
            args = splitArgs(l.value);
          }
        } catch (err) {
          throw new SshConfigError(`${file} line ${lineNo}: invalid quotes`, { field: 'sshConfig', cause: err });
        }
        if (keyword !== '') out.push({ keyword, args, line: lineNo });
      }
      lineNo += countNewlines(l.after);
      if ('config' in l && Array.isArray(l.config)) visit(l.config);
    }
  };
  visit(parsed);
  return out;
}
