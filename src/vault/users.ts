// Users as the vault sees them: an authenticated token subject is recorded the first time it acts (one
// idempotent single-document write, audited as `user.create`), and a user marked disabled in the metadata store
// is refused even with a valid token. A short cache keeps this off the hot path of every chunk request; a
// disable takes effect within the cache lifetime.
import { CofferError, ErrorCode } from '../errors.js';
import { appendAudit } from './audit.js';
import type { Actor, VaultContext } from './context.js';

export const USER_CACHE_MS = 30_000;

export class UserRegistry {
  private readonly seen = new Map<string, number>();

  constructor(private readonly ctx: VaultContext) {}

  /** Records the user on first sight. Throws PERMISSION_DENIED for a disabled user, store errors otherwise. */
  async admit(actor: Actor): Promise<void> {
    const now = this.ctx.now().getTime();
    const until = this.seen.get(actor.user);
    if (until !== undefined && until > now) return;
    let user = await this.ctx.store.getUser(actor.user);
    if (!user) {
      user = await this.ctx.store.ensureUser(actor.user);
      await appendAudit(this.ctx.store, { actor: actor.user, action: 'user.create', target: actor.user }, this.ctx.now);
    }
    if (user.disabled) {
      this.seen.delete(actor.user);
      throw new CofferError(ErrorCode.PERMISSION_DENIED, `user ${actor.user} is disabled`);
    }
    if (this.seen.size > 100_000) this.seen.clear();
    this.seen.set(actor.user, now + USER_CACHE_MS);
  }
}
