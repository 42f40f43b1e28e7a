/** Talking RTSP by hand to the relay's server, for the tests that send what a player or publisher would (or should not). */
import net from 'node:net';

/** A request's bytes: its lines, an empty line, the body. */
export const request = (lines: string[], body = '') => Buffer.from(`${lines.join('\r\n')}\r\n\r\n${body}`, 'latin1');

/** One RTSP exchange on a connection of its own: the response's head and body. */
export async function ask(port: number, lines: string[]): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    socket.write(request(lines));
    let text = '';
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (d) => {
        text += d.toString('latin1');
        const head = text.indexOf('\r\n\r\n');
        const length = Number(/Content-Length: (\d+)/.exec(text)?.[1] ?? 0);
        if (head >= 0 && text.length >= head + 4 + length) resolve();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
      setTimeout(() => reject(new Error('no RTSP answer in 5 s')), 5000).unref();
    });
    return text;
  } finally {
    socket.destroy();
  }
}

/** Requests one after another on one connection: each resolves with its response's text. */
export function conversation(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let text = '';
  let waiting: ((r: string) => void) | undefined;
  socket.on('data', (d) => {
    text += d.toString('latin1');
    const head = text.indexOf('\r\n\r\n');
    const length = Number(/Content-Length: (\d+)/.exec(text.slice(0, Math.max(0, head)))?.[1] ?? 0);
    if (head >= 0 && text.length >= head + 4 + length && waiting) {
      const answer = text.slice(0, head + 4 + length);
      text = text.slice(head + 4 + length);
      const w = waiting;
      waiting = undefined;
      w(answer);
    }
  });
  return {
    ask: (lines: string[], body = '') => new Promise<string>((resolve) => {
      waiting = resolve;
      socket.write(request(lines, body));
    }),
    close: () => socket.destroy(),
  };
}

