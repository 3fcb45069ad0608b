/**
 * sd_notify(3) without libsystemd: machinad run as a systemd service with Type=notify
 * (machinad.service) tells systemd when it serves (READY=1) and when it stops (STOPPING=1), as
 * a datagram to $NOTIFY_SOCKET (a path, or "@NAME" for an abstract socket).
 */
import { sendDatagram } from "./libc.ts";

/** Send `state` when `socket` is set (NOTIFY_SOCKET); the error when it could not be sent. */
export function notifyServiceManager(socket: string | undefined, state: string): Error | undefined {
  if (socket === undefined || socket === "") return undefined;
  if (!socket.startsWith("/") && !socket.startsWith("@")) return new Error(`NOTIFY_SOCKET="${socket}": not a path or an abstract socket (@NAME)`);
  try {
    sendDatagram(socket, state);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}
