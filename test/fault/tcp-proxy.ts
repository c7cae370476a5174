/**
 * A TCP proxy on loopback that can be cut: the worker and the gateway reach PostgreSQL through
 * it, so a test can take "the database" away from them (listener closed, every piped connection
 * destroyed) without touching the machine's PostgreSQL cluster, which other work shares.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  /** Connections accepted since the proxy was created, and connections destroyed by cuts. */
  accepted = 0;
  severed = 0;
  cuts = 0;

  private constructor(
    public port: number,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  /** Listens on 127.0.0.1:`port` (0: any free port) and forwards to target. */
  static async open(targetHost: string, targetPort: number, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy(port, targetHost, targetPort);
    const bound = await proxy.listen(port);
    proxy.port = bound;
    return proxy;
  }

  get isOpen(): boolean {
    return this.server !== null;
  }

  get liveConnections(): number {
    return this.sockets.size;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private listen(port: number): Promise<number> {
    const server = createServer((client) => {
      this.accepted++;
      const upstream = connect({ host: this.targetHost, port: this.targetPort });
      this.track(client);
      this.track(upstream);
      // Either side ending or failing ends both: no half-open connection survives.
      const destroyBoth = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', destroyBoth);
      upstream.on('error', destroyBoth);
      client.on('close', destroyBoth);
      upstream.on('close', destroyBoth);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        this.server = server;
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  /** The outage begins: no new connection is accepted, and every open one is destroyed at once. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.cuts++;
    const closed = server ? new Promise<void>((r) => server.close(() => r())) : Promise.resolve();
    for (const socket of this.sockets) {
      this.severed++;
      socket.destroy();
    }
    await closed;
  }

  /** The outage ends: listening again on the same port. */
  async restore(): Promise<void> {
    if (this.server) return;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.listen(this.port);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
