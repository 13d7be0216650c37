/**
 * A pino-compatible logger: `logger.info({ ...fields }, 'message')`. pino, bunyan-style wrappers
 * and `console`-like objects with these four methods fit.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** The default: logs nothing. */
export const silentLogger: Logger = Object.freeze({
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
});

/**
 * Wraps a logger so that no string it receives can contain one of `secrets` (replaced by
 * `[redacted]`), and so that a throwing logger never breaks the client.
 */
export function redactingLogger(logger: Logger, secrets: () => readonly string[]): Logger {
  const scrub = (v: unknown, depth: number): unknown => {
    if (typeof v === 'string') {
      let s = v;
      for (const secret of secrets()) if (secret.length >= 3) s = s.split(secret).join('[redacted]');
      return s;
    }
    if (v instanceof Error) return { name: v.name, message: scrub(v.message, depth + 1), code: (v as { code?: unknown }).code };
    if (depth < 4 && v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = scrub(x, depth + 1);
      return out;
    }
    return v;
  };
  const wrap =
    (level: keyof Logger) =>
    (obj: object, msg?: string): void => {
      try {
        logger[level](scrub(obj, 0) as object, msg === undefined ? undefined : (scrub(msg, 0) as string));
      } catch {
        // a logger must never take the client down
      }
    };
  return { debug: wrap('debug'), info: wrap('info'), warn: wrap('warn'), error: wrap('error') };
}
