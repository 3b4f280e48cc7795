// Users as the vault sees them: an authenticated token subject is recorded the first time it acts (one
// idempotent single-document write, audited as `user.create`), and a user marked disabled in the metadata store
// is refused even with a valid token. A short cache keeps this off the hot path of every chunk request; a
// disable takes effect within the cache lifetime (at once on the replica that made it).
// With `homes` (development mode) each user also gets /home/NAME, owned by them, so that users are isolated
// without anyone writing grants: /home itself belongs to `:system`, which no token can carry.
import { CofferError, ErrorCode, isCofferError } from '../errors.js';
import type { User } from '../metadata/types.js';
import { appendAudit } from './audit.js';
import { SYSTEM_ACTOR, type Actor, type VaultContext } from './context.js';
import { checkUserName } from './grants.js';
import { checkName } from './paths.js';
import { resolvePath } from './resolve.js';
import * as tree from './tree.js';

export const USER_CACHE_MS = 30_000;
export const HOMES_DIR = '/home';

export interface UserView {
  name: string;
  createdAt: string;
  disabled: boolean;
}

export class UserRegistry {
  private readonly seen = new Map<string, number>();

  constructor(private readonly ctx: VaultContext, private readonly homes: boolean) {}

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
    if (this.homes) await this.ensureHome(actor.user);
    if (this.seen.size > 100_000) this.seen.clear();
    this.seen.set(actor.user, now + USER_CACHE_MS);
  }

  /** The user's home directory path when homes are on and the name can be one path segment; else null. */
  homeOf(user: string): string | null {
    if (!this.homes) return null;
    try {
      checkName(user);
    } catch {
      return null;
    }
    return `${HOMES_DIR}/${user}`;
  }

  /**
   * Creates /home (owned by :system) and /home/NAME (owned by NAME) when missing; idempotent and safe to race
   * (mkdir with parents converges). A /home that belongs to anyone else is left alone, so its owner never
   * becomes admin of everybody's home: such users get no home.
   */
  private async ensureHome(user: string): Promise<void> {
    const home = this.homeOf(user);
    if (!home) return;
    let resolved;
    try {
      resolved = await resolvePath(this.ctx.store, ['home', user]);
    } catch (e) {
      if (isCofferError(e, ErrorCode.NOT_A_DIRECTORY)) return; // a file named /home: nobody gets a home
      throw e;
    }
    const { chain, found } = resolved;
    if (found) return;
    const homes = chain[1];
    if (homes && (homes.owner !== SYSTEM_ACTOR.user || homes.type !== 'dir')) return;
    if (!homes) await tree.mkdir(this.ctx, SYSTEM_ACTOR, HOMES_DIR, { parents: true });
    try {
      await tree.mkdir(this.ctx, { user, admin: true }, home, { parents: true });
    } catch (e) {
      if (!isCofferError(e, ErrorCode.NOT_A_DIRECTORY)) throw e; // a file named like the user: no home
    }
  }

  /** Every user the vault has seen (token admins only). Throws PERMISSION_DENIED. */
  async list(actor: Actor): Promise<UserView[]> {
    requireTokenAdmin(actor, 'list users');
    return (await this.ctx.store.listUsers()).map(userView);
  }

  /**
   * Disables or enables a user (token admins only; a user not seen yet is recorded first, so one can be
   * disabled before they ever act). Audited as `user.disable` / `user.enable`. Throws PERMISSION_DENIED,
   * INVALID_ARGUMENT.
   */
  async setDisabled(actor: Actor, name: unknown, disabled: boolean): Promise<UserView> {
    requireTokenAdmin(actor, disabled ? 'disable users' : 'enable users');
    checkUserName(name);
    if (disabled && name === actor.user) throw new CofferError(ErrorCode.INVALID_ARGUMENT, 'you cannot disable yourself');
    await this.ctx.store.ensureUser(name);
    const user = await this.ctx.store.setUserDisabled(name, disabled);
    this.seen.delete(name);
    await appendAudit(this.ctx.store, { actor: actor.user, action: disabled ? 'user.disable' : 'user.enable', target: name }, this.ctx.now);
    return userView(user);
  }
}

function requireTokenAdmin(actor: Actor, what: string): void {
  if (!actor.admin) throw new CofferError(ErrorCode.PERMISSION_DENIED, `${what}: needs an admin token`);
}

function userView(u: User): UserView {
  return { name: u.name, createdAt: u.createdAt.toISOString(), disabled: u.disabled };
}
