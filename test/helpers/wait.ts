/** The one polling wait of the tests (re-exported by ./common.ts and ./client.ts); imports nothing from vitest. */

/**
 * Polls `cond` every `intervalMs` (default 50 ms) until it is true or `timeoutMs` passes.
 *
 * Without `what` it resolves with the last value of `cond` (so `expect(await waitFor(...)).toBe(true)`
 * shows the failure at the caller's line). With `what` it resolves `true` or rejects with
 * `timed out after <timeoutMs> ms waiting for <what>`.
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what?: undefined, intervalMs?: number): Promise<boolean>;
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, intervalMs?: number): Promise<true>;
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what?: string, intervalMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const last = await cond();
  if (!last && what !== undefined) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
  return last;
}
