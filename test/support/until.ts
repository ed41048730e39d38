/** Polling for conditions outside a test body (hooks), where expect.poll is not allowed. */

/** Calls `read` every 250 ms until `holds` accepts its value; throws naming `what` (and the last value) after `timeoutMs`. */
export async function until<T>(
  what: string,
  read: () => Promise<T>,
  holds: (value: T) => boolean,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (holds(last)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(
    `timed out after ${timeoutMs / 1000} s waiting until ${what}; last seen: ${JSON.stringify(last)}`,
  );
}
