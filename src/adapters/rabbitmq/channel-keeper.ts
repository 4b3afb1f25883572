import type { ChannelModel } from 'amqplib';
import type { RabbitMqConnection } from './connection.js';

/**
 * Opens a channel on `model` and sets it up (listeners, a consumer…); resolves to what its user
 * needs of it. It must call `lost` when that channel closes.
 */
export type OpenChannel<A> = (model: ChannelModel, lost: () => void) => Promise<A>;

export interface ChannelKeeperOptions {
  /**
   * For a consumer: once keepOpen() is called, a channel that closed while its connection stayed
   * up (a channel error: a deleted queue, a failed operation) is opened again after this long.
   * A new connection needs no timer: the connection's ready callbacks open it again.
   */
  readonly reopenDelayMs?: number;
  /**
   * Hears of every failed open, which keepOpen() then never rejects with: the consumer reports it
   * and waits for the next try. Without it, the first open's failure rejects keepOpen() and later
   * ones reach the connection, which logs them.
   */
  readonly onOpenFailed?: (err: unknown) => void;
}

interface Slot<A> {
  readonly model: ChannelModel;
  ready: Promise<A>;
  closed: boolean;
}

/**
 * One channel of one kind on the live connection, opened again once it is gone. It serves the
 * publisher's confirm channel (opened on demand), and the task and event consumers (kept open
 * across reconnects, and reopened after their channel alone failed, without which a consumer
 * whose connection stayed up would never come back).
 */
export class ChannelKeeper<A> {
  private slot: Slot<A> | undefined;
  private keeping = false;
  private unregister: (() => void) | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connection: RabbitMqConnection,
    private readonly open: OpenChannel<A>,
    private readonly options: ChannelKeeperOptions = {},
  ) {}

  /** The channel already open on `model`, or a new one. */
  acquire(model: ChannelModel): Promise<A> {
    const current = this.slot;
    if (current && current.model === model && !current.closed) return current.ready;
    const slot: Slot<A> = { model, closed: false, ready: this.open(model, () => this.lost(slot)) };
    this.slot = slot;
    slot.ready.catch((err: unknown) => {
      this.options.onOpenFailed?.(err);
      this.lost(slot);
    });
    return slot.ready;
  }

  /** Opens the channel now if connected, and again on every reconnect, until release(). */
  async keepOpen(): Promise<void> {
    this.keeping = true;
    this.unregister = this.connection.onReady((model) => this.reopen(model));
    const model = this.connection.current();
    if (model) await this.reopen(model);
  }

  /**
   * Stops reopening and forgets the channel; answers it, open or opening, for its user to wind
   * down (cancel a consumer, delete a queue, close it).
   */
  release(): Promise<A> | undefined {
    this.keeping = false;
    this.unregister?.();
    clearTimeout(this.timer);
    const slot = this.slot;
    this.slot = undefined;
    return slot?.ready;
  }

  private reopen(model: ChannelModel): Promise<void> {
    if (!this.keeping) return Promise.resolve();
    return this.acquire(model).then(
      () => undefined,
      (err: unknown) => {
        if (this.options.onOpenFailed === undefined) throw err;
      },
    );
  }

  private lost(slot: Slot<A>): void {
    slot.closed = true;
    if (this.slot !== slot) return;
    this.slot = undefined;
    const delayMs = this.options.reopenDelayMs;
    if (!this.keeping || delayMs === undefined || this.timer) return;
    if (this.connection.current() !== slot.model) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const model = this.connection.current();
      if (model) void this.reopen(model).catch(() => undefined);
    }, delayMs);
    this.timer.unref();
  }
}
